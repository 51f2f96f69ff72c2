//! MNIST and Fashion-MNIST: four IDX files each, found in the data directory or downloaded.

use std::path::{Path, PathBuf};

use crate::data_dir::DataDir;
use crate::download::{Digested, RemoteFile, fetch};
use crate::error::{DatasetError, Result};
use crate::idx::read_idx;
use crate::labelled::{ImageShape, LabelledImages, Split};

/// Which of the two MNIST-format data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MnistKind {
    Digits,
    Fashion,
}

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

// The official MD5s of the uncompressed MNIST files (the mirrors' gzip wrappers differ).
const MNIST_MD5: [&str; 4] = [
    "6bbc9ace898e44ae57da46a324031adb",
    "a25bea736e30d166cdddb491f175f624",
    "2646ac647ad5339dbf082846283269ea",
    "27ae3e4e09519cfbb04c329615203637",
];
// Fashion-MNIST publishes MD5s of its .gz files.
const FASHION_MD5: [&str; 4] = [
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310",
];
const MNIST_MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];
const FASHION_MIRRORS: [&str; 1] = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

const DIGIT_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

impl MnistKind {
    /// The subfolder of the data directory it lives in.
    pub fn folder(self) -> &'static str {
        match self {
            MnistKind::Digits => "mnist",
            MnistKind::Fashion => "fashion",
        }
    }

    fn classes(self) -> Vec<String> {
        let names: &[&str] = match self {
            MnistKind::Digits => &DIGIT_CLASSES,
            MnistKind::Fashion => &FASHION_CLASSES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    fn remote(self, i: usize) -> RemoteFile {
        let name = format!("{}.gz", FILES[i]);
        match self {
            MnistKind::Digits => {
                RemoteFile::mirrored(&name, &MNIST_MIRRORS, MNIST_MD5[i], Digested::Gunzipped)
            }
            MnistKind::Fashion => {
                RemoteFile::mirrored(&name, &FASHION_MIRRORS, FASHION_MD5[i], Digested::File)
            }
        }
    }
}

/// Loads MNIST (or Fashion-MNIST): from the data directory, else downloading it.
pub fn load(kind: MnistKind, data: &DataDir) -> Result<Split> {
    let dir = match locate(kind, data) {
        Some(dir) => dir,
        None if data.allow_download() => {
            let dir = data.download_dir(kind.folder());
            for (i, name) in FILES.iter().enumerate() {
                fetch(&kind.remote(i), &dir).map_err(|e| DatasetError::NotFound {
                    name: name.to_string(),
                    searched: data.describe(kind.folder()),
                    reason: e.to_string(),
                })?;
            }
            dir
        }
        None => {
            return Err(DatasetError::NotFound {
                name: format!("{} files", kind.folder()),
                searched: data.describe(kind.folder()),
                reason: "downloads are disabled".into(),
            });
        }
    };
    load_dir(&dir, kind)
}

/// The first candidate directory holding all four files.
fn locate(kind: MnistKind, data: &DataDir) -> Option<PathBuf> {
    data.candidates(kind.folder())
        .into_iter()
        .find(|d| FILES.iter().all(|f| find_file(d, f).is_some()))
}

/// `name` or `name.gz` in `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// Loads the four files from one directory.
pub fn load_dir(dir: &Path, kind: MnistKind) -> Result<Split> {
    let path = |name: &str| {
        find_file(dir, name).ok_or_else(|| DatasetError::Io {
            path: dir.join(name),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found (nor .gz)"),
        })
    };
    let classes = kind.classes();
    Ok(Split {
        train: load_pair(&path(TRAIN_IMAGES)?, &path(TRAIN_LABELS)?, classes.clone())?,
        test: load_pair(&path(TEST_IMAGES)?, &path(TEST_LABELS)?, classes)?,
    })
}

/// One images file and its labels file.
pub fn load_pair(images: &Path, labels: &Path, classes: Vec<String>) -> Result<LabelledImages> {
    let img = read_idx(images)?;
    if img.dims.len() != 3 {
        return Err(DatasetError::BadIdx {
            path: images.to_path_buf(),
            reason: format!(
                "images must have rank 3 (n, rows, cols), found {:?}",
                img.dims
            ),
        });
    }
    let lab = read_idx(labels)?;
    if lab.dims.len() != 1 {
        return Err(DatasetError::BadIdx {
            path: labels.to_path_buf(),
            reason: format!("labels must have rank 1, found {:?}", lab.dims),
        });
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DatasetError::CountMismatch {
            images: images.to_path_buf(),
            n_images: img.dims[0],
            labels: labels.to_path_buf(),
            n_labels: lab.dims[0],
        });
    }
    if let Some(&bad) = lab.data.iter().find(|&&l| l as usize >= classes.len()) {
        return Err(DatasetError::BadIdx {
            path: labels.to_path_buf(),
            reason: format!("label {bad} is out of range 0..{}", classes.len()),
        });
    }
    Ok(LabelledImages {
        pixels: img.data,
        labels: lab.data,
        shape: ImageShape {
            channels: 1,
            height: img.dims[1],
            width: img.dims[2],
        },
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    #[test]
    fn loads_a_generated_directory_gz_and_raw() {
        for gz in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let written = synthetic::write_mnist_dir(dir.path(), 50, 20, gz, 1).unwrap();
            let data = DataDir::new(Some(dir.path().to_path_buf())).with_download(false);
            let split = load(MnistKind::Digits, &data).unwrap();
            assert_eq!(split.train.len(), 50);
            assert_eq!(split.test.len(), 20);
            assert_eq!(split.train.pixels, written.train.pixels);
            assert_eq!(split.test.labels, written.test.labels);
            assert_eq!(
                split.train.shape,
                ImageShape {
                    channels: 1,
                    height: 28,
                    width: 28
                }
            );
        }
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_mnist_dir(dir.path(), 50, 20, false, 1).unwrap();
        // Replace the training labels with only 49 of them.
        std::fs::write(
            dir.path().join(TRAIN_LABELS),
            crate::idx::encode_idx(&[49], &[0; 49]),
        )
        .unwrap();
        let msg = load_dir(dir.path(), MnistKind::Digits)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(TRAIN_IMAGES) && msg.contains(TRAIN_LABELS),
            "{msg}"
        );
        assert!(msg.contains("50") && msg.contains("49"), "{msg}");
    }

    #[test]
    fn missing_files_without_download_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(Some(dir.path().to_path_buf()))
            .with_default(dir.path().join("nothing"))
            .with_download(false);
        let msg = load(MnistKind::Fashion, &data).unwrap_err().to_string();
        assert!(
            msg.contains("fashion") && msg.contains("downloads are disabled"),
            "{msg}"
        );
    }
}
