//! CIFAR-10: the official binary batches, an image folder `train/<class>/*.jpg`, or that
//! folder packed as `cifar10-jpg.tar.gz` (read straight from the archive: nothing is
//! unpacked, so a read-only data directory works).

use std::fs;
use std::path::{Path, PathBuf};

use crate::data_dir::DataDir;
use crate::download::{Digested, RemoteFile, fetch};
use crate::error::{DatasetError, Result, io_err};
use crate::image_folder::{ColorMode, FolderOptions, ImageFolder, hwc_to_chw};
use crate::labelled::{ImageShape, LabelledImages, Split};

pub const SIDE: usize = 32;
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// One label byte, then the R, G and B planes.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
pub const TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_BATCH: &str = "test_batch.bin";
/// The folder the official archive unpacks to.
pub const ARCHIVE_FOLDER: &str = "cifar-10-batches-bin";
const ARCHIVE: &str = "cifar-10-binary.tar.gz";
/// The image-folder form packed into one archive (`train/<class>/*.jpg`, `test/...`).
pub const JPEG_ARCHIVE: &str = "cifar10-jpg.tar.gz";
const ARCHIVE_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
const ARCHIVE_MIRRORS: [&str; 1] = ["https://www.cs.toronto.edu/~kriz/"];

fn classes() -> Vec<String> {
    CLASSES.iter().map(|s| s.to_string()).collect()
}

/// Reads one binary batch file.
pub fn read_batch(path: &Path) -> Result<LabelledImages> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let bad = |reason: String| DatasetError::BadCifar {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
        return Err(bad(format!(
            "{} bytes is not a whole number of {RECORD_BYTES}-byte records",
            bytes.len()
        )));
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        if record[0] as usize >= CLASSES.len() {
            return Err(bad(format!(
                "record {i} has label {} (expected 0..9)",
                record[0]
            )));
        }
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(LabelledImages {
        pixels,
        labels,
        shape: ImageShape {
            channels: 3,
            height: SIDE,
            width: SIDE,
        },
        classes: classes(),
    })
}

/// Loads the five training batches and the test batch from `dir` or `dir/cifar-10-batches-bin`.
pub fn load_binary_dir(dir: &Path) -> Result<Split> {
    let dir = binary_dir_in(dir).unwrap_or_else(|| dir.to_path_buf());
    let mut train = read_batch(&dir.join(TRAIN_BATCHES[0]))?;
    for name in &TRAIN_BATCHES[1..] {
        let more = read_batch(&dir.join(name))?;
        train.pixels.extend_from_slice(&more.pixels);
        train.labels.extend_from_slice(&more.labels);
    }
    Ok(Split {
        train,
        test: read_batch(&dir.join(TEST_BATCH))?,
    })
}

fn binary_dir_in(dir: &Path) -> Option<PathBuf> {
    [dir.join(ARCHIVE_FOLDER), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join(TEST_BATCH).is_file())
}

fn is_image_folder(dir: &Path) -> bool {
    dir.join("train").is_dir() && dir.join("test").is_dir()
}

/// Loads `dir/train/<class>/*` and `dir/test/<class>/*` into memory as 32×32 RGB.
pub fn load_image_folder(dir: &Path) -> Result<Split> {
    let options = FolderOptions {
        target_size: Some((SIDE as u32, SIDE as u32)),
        color_mode: ColorMode::Rgb,
        ..FolderOptions::default()
    };
    let train = ImageFolder::open(&dir.join("train"), options.clone())?.load_all()?;
    let test = ImageFolder::open(&dir.join("test"), options)?.load_all()?;
    if train.classes != test.classes {
        return Err(DatasetError::BadFolder {
            path: dir.to_path_buf(),
            reason: format!(
                "train classes {:?} differ from test classes {:?}",
                train.classes, test.classes
            ),
        });
    }
    Ok(Split { train, test })
}

/// CIFAR-10 from the data directory (binary batches or an image folder), else downloaded.
pub fn load(data: &DataDir) -> Result<Split> {
    for dir in data.candidates("cifar10") {
        if binary_dir_in(&dir).is_some() {
            return load_binary_dir(&dir);
        }
        if is_image_folder(&dir) {
            return load_image_folder(&dir);
        }
        if dir.join(JPEG_ARCHIVE).is_file() {
            return load_jpeg_archive(&dir.join(JPEG_ARCHIVE));
        }
    }
    if !data.allow_download() {
        return Err(DatasetError::NotFound {
            name: "CIFAR-10".into(),
            searched: data.describe("cifar10"),
            reason: "downloads are disabled".into(),
        });
    }
    let dir = data.download_dir("cifar10");
    let remote = RemoteFile::mirrored(ARCHIVE, &ARCHIVE_MIRRORS, ARCHIVE_MD5, Digested::File);
    let archive = fetch(&remote, &dir)?;
    unpack(&archive, &dir)?;
    load_binary_dir(&dir)
}

/// Reads `train/<class>/*` and `test/<class>/*` images from a `.tar.gz` into memory as
/// 32×32 RGB (planar, like the binary batches). Classes are the train folder names in
/// sorted order, as Keras' `flow_from_directory` numbers them.
pub fn load_jpeg_archive(path: &Path) -> Result<Split> {
    use rayon::prelude::*;
    use std::io::Read;

    let bad = |reason: String| DatasetError::BadCifar {
        path: path.to_path_buf(),
        reason,
    };
    let file = fs::File::open(path).map_err(io_err(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    // (is_test, class name, member name, encoded bytes)
    let mut members: Vec<(bool, String, String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().map_err(io_err(path))? {
        let mut entry = entry.map_err(io_err(path))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(io_err(path))?
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = name.trim_start_matches("./").split('/').collect();
        let [split @ ("train" | "test"), class, file] = parts.as_slice() else {
            continue;
        };
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(io_err(path))?;
        members.push((*split == "test", class.to_string(), file.to_string(), bytes));
    }
    // Archive order is arbitrary: sort so that loading is reproducible.
    members.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    let mut classes: Vec<String> = members
        .iter()
        .filter(|m| !m.0)
        .map(|m| m.1.clone())
        .collect();
    classes.dedup();
    if classes.is_empty() {
        return Err(bad("no train/<class>/ images in the archive".into()));
    }
    let decoded: Vec<Result<(bool, u8, Vec<u8>)>> = members
        .par_iter()
        .map(|(is_test, class, file, bytes)| {
            let label = classes
                .iter()
                .position(|c| c == class)
                .ok_or_else(|| bad(format!("test class {class:?} has no train folder")))?;
            let img = image::load_from_memory(bytes)
                .map_err(|e| bad(format!("{class}/{file}: {e}")))?
                .to_rgb8();
            let img = if img.dimensions() == (SIDE as u32, SIDE as u32) {
                img
            } else {
                image::imageops::resize(
                    &img,
                    SIDE as u32,
                    SIDE as u32,
                    image::imageops::FilterType::Triangle,
                )
            };
            Ok((*is_test, label as u8, hwc_to_chw(img.as_raw(), 3)))
        })
        .collect();
    let empty = || LabelledImages {
        pixels: Vec::new(),
        labels: Vec::new(),
        shape: ImageShape {
            channels: 3,
            height: SIDE,
            width: SIDE,
        },
        classes: classes.clone(),
    };
    let (mut train, mut test) = (empty(), empty());
    for item in decoded {
        let (is_test, label, pixels) = item?;
        let target = if is_test { &mut test } else { &mut train };
        target.labels.push(label);
        target.pixels.extend_from_slice(&pixels);
    }
    if test.labels.is_empty() {
        return Err(bad("no test/<class>/ images in the archive".into()));
    }
    Ok(Split { train, test })
}

/// Unpacks the verified archive into a temporary folder, then renames it into place.
fn unpack(archive: &Path, dir: &Path) -> Result<()> {
    let staging = tempfile::tempdir_in(dir).map_err(io_err(dir))?;
    let file = fs::File::open(archive).map_err(io_err(archive))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(staging.path())
        .map_err(io_err(archive))?;
    let target = dir.join(ARCHIVE_FOLDER);
    fs::rename(staging.path().join(ARCHIVE_FOLDER), &target).map_err(io_err(&target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    #[test]
    fn reads_generated_binary_batches() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join(ARCHIVE_FOLDER);
        let written = synthetic::write_cifar_dir(&nested, 7, 3).unwrap();
        let split = load_binary_dir(dir.path()).unwrap();
        assert_eq!(split.train.len(), 35);
        assert_eq!(split.test.len(), 7);
        assert_eq!(split.train.pixels, written.train.pixels);
        assert_eq!(split.test.labels, written.test.labels);
        // Planar layout: the first 1024 bytes of an image are its red plane.
        assert_eq!(split.train.image(0).len(), IMAGE_BYTES);
    }

    #[test]
    fn rejects_partial_records_and_bad_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("short.bin");
        fs::write(&p, vec![0u8; RECORD_BYTES + 5]).unwrap();
        let msg = read_batch(&p).unwrap_err().to_string();
        assert!(
            msg.contains("short.bin") && msg.contains("records"),
            "{msg}"
        );
        let mut rec = vec![0u8; RECORD_BYTES];
        rec[0] = 10;
        fs::write(&p, rec).unwrap();
        assert!(read_batch(&p).unwrap_err().to_string().contains("label 10"));
    }

    #[test]
    fn reads_the_jpeg_archive_form_without_unpacking() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        for split in ["train", "test"] {
            synthetic::write_image_folder(&tree.join(split), &["dog", "cat"], 2, (32, 32), 3)
                .unwrap();
        }
        let data_root = dir.path().join("data");
        let cifar = data_root.join("cifar10");
        fs::create_dir_all(&cifar).unwrap();
        let file = fs::File::create(cifar.join(JPEG_ARCHIVE)).unwrap();
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(".", &tree).unwrap();
        tar.into_inner().unwrap().finish().unwrap();

        let data = DataDir::new(Some(data_root)).with_download(false);
        let split = load(&data).unwrap();
        assert_eq!(split.train.classes, vec!["cat", "dog"]);
        assert_eq!(split.train.len(), 4);
        assert_eq!(split.test.len(), 4);
        assert_eq!(split.train.labels, vec![0, 0, 1, 1]);
        // Same pixels as the folder form (PNG is lossless).
        let folder = load_image_folder(&tree).unwrap();
        let mut by_label: Vec<(u8, &[u8])> = (0..4)
            .map(|i| (folder.train.labels[i], folder.train.image(i)))
            .collect();
        by_label.sort();
        let mut ours: Vec<(u8, &[u8])> = (0..4)
            .map(|i| (split.train.labels[i], split.train.image(i)))
            .collect();
        ours.sort();
        assert_eq!(by_label, ours);
    }

    #[test]
    fn loads_the_image_folder_form() {
        let dir = tempfile::tempdir().unwrap();
        for split in ["train", "test"] {
            synthetic::write_image_folder(&dir.path().join(split), &["cat", "dog"], 3, (40, 30), 5)
                .unwrap();
        }
        let data = DataDir::new(Some(dir.path().to_path_buf())).with_download(false);
        let split = load(&data).unwrap();
        assert_eq!(split.train.len(), 6);
        assert_eq!(split.train.classes, vec!["cat", "dog"]);
        assert_eq!(
            split.train.shape,
            ImageShape {
                channels: 3,
                height: 32,
                width: 32
            }
        );
    }
}
