//! Image folders with Keras `flow_from_directory` semantics: one subfolder per class
//! (sorted names give indices 0..n), images found by extension, resized to a target size,
//! converted to a colour mode, rescaled, and streamed in shuffled batches.
//!
//! Streaming: a producer thread decodes each batch on the rayon pool while the consumer
//! works on the previous ones; at most `prefetch` decoded batches exist at a time, so
//! memory stays bounded whatever the folder's size.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use image::imageops::FilterType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::error::{DatasetError, Result, io_err};
use crate::image_file::ScanCheck;
use crate::labelled::{ImageShape, LabelledImages};

/// Extensions read, compared case-insensitively.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "webp"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    #[default]
    Rgb,
    Grayscale,
}

impl ColorMode {
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Rgb => 3,
            ColorMode::Grayscale => 1,
        }
    }
}

/// How images are resized. Keras's `flow_from_directory` default is nearest (PIL's,
/// reproduced exactly: [`crate::pil`]); bilinear is a triangle filter widened when
/// shrinking, as PIL's `BILINEAR` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    #[default]
    Nearest,
    Bilinear,
}

#[derive(Debug, Clone)]
pub struct FolderOptions {
    /// (height, width); `None` keeps each image's own size, which must then agree.
    pub target_size: Option<(u32, u32)>,
    pub color_mode: ColorMode,
    pub interpolation: Interpolation,
    /// Pixels are multiplied by this (Keras `rescale`, e.g. 1/255).
    pub rescale: f32,
    /// Skip unreadable images with a warning instead of failing.
    pub skip_invalid: bool,
    /// Decoded batches kept ready ahead of the consumer.
    pub prefetch: usize,
    /// Also search folders reached through symbolic links inside a class folder (Keras's
    /// `follow_links`); each real folder is searched once, so a link loop ends.
    pub follow_links: bool,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            target_size: None,
            color_mode: ColorMode::Rgb,
            interpolation: Interpolation::Nearest,
            rescale: 1.0,
            skip_invalid: false,
            prefetch: 4,
            follow_links: false,
        }
    }
}

/// Which part of a folder split by Keras's `validation_split` to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subset {
    Training,
    Validation,
}

/// One image file and its class index.
#[derive(Debug, Clone)]
pub struct FolderItem {
    pub path: PathBuf,
    pub class: usize,
}

/// A scanned image folder: the class names and every image file, nothing decoded yet.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    items: Arc<Vec<FolderItem>>,
    options: FolderOptions,
    /// Whether [`ImageFolder::check_headers`] has walked every JPEG's compressed data,
    /// so that decoding need not again.
    scan: ScanCheck,
}

/// A batch of decoded images, (n, C, H, W) row-major, as f32 after rescaling.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub shape: ImageShape,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl ImageFolder {
    /// Scans `root`: its subfolders are the classes; images within them (recursively).
    pub fn open(root: &Path, options: FolderOptions) -> Result<Self> {
        let bad = |reason: String| DatasetError::BadFolder {
            path: root.to_path_buf(),
            reason,
        };
        if !root.is_dir() {
            return Err(bad("no such directory".into()));
        }
        // (name, folder): the folder as the file system names it, the name as shown (a name
        // that is not UTF-8 shows with replacement characters but is still read).
        let mut found = Vec::new();
        for entry in fs::read_dir(root).map_err(io_err(root))? {
            let entry = entry.map_err(io_err(root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !name.starts_with('.') {
                found.push((name, entry.path()));
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(bad(
                "no class subfolders (expected one folder per class)".into()
            ));
        }
        let classes: Vec<String> = found.iter().map(|(name, _)| name.clone()).collect();
        let mut items = Vec::new();
        for (class, (_, dir)) in found.into_iter().enumerate() {
            let mut files = Vec::new();
            let mut seen = HashSet::new();
            collect_images(&dir, &mut files, options.follow_links, &mut seen)?;
            if files.is_empty() {
                return Err(DatasetError::BadFolder {
                    path: dir,
                    reason: format!(
                        "class folder has no images ({})",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                });
            }
            files.sort();
            items.extend(files.into_iter().map(|path| FolderItem { path, class }));
        }
        Ok(Self {
            root: root.to_path_buf(),
            classes,
            items: Arc::new(items),
            options,
            scan: ScanCheck::Walk,
        })
    }

    /// Keras's `ImageDataGenerator(validation_split=split)` with `subset=`: of each class's
    /// files, in path order, the first ⌊split · n⌋ are the validation subset and the rest
    /// the training subset, so the two never share an image.
    pub fn subset(mut self, validation_split: f64, subset: Subset) -> Result<Self> {
        if !(validation_split > 0.0 && validation_split < 1.0) {
            return Err(DatasetError::BadFolder {
                path: self.root.clone(),
                reason: format!("validation_split must be in (0, 1), not {validation_split}"),
            });
        }
        let mut kept = Vec::with_capacity(self.items.len());
        for class in 0..self.classes.len() {
            let files: Vec<&FolderItem> = self.items.iter().filter(|i| i.class == class).collect();
            let cut = (validation_split * files.len() as f64) as usize;
            let part = match subset {
                Subset::Validation => &files[..cut],
                Subset::Training => &files[cut..],
            };
            if part.is_empty() {
                return Err(DatasetError::BadFolder {
                    path: self.root.join(&self.classes[class]),
                    reason: format!(
                        "validation_split {validation_split} of its {} images leaves the {} subset none",
                        files.len(),
                        match subset {
                            Subset::Validation => "validation",
                            Subset::Training => "training",
                        }
                    ),
                });
            }
            kept.extend(part.iter().map(|&item| item.clone()));
        }
        self.items = Arc::new(kept);
        Ok(self)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn items(&self) -> &[FolderItem] {
        &self.items
    }

    pub fn options(&self) -> &FolderOptions {
        &self.options
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Images per class, in class-index order.
    pub fn class_counts(&self) -> Vec<usize> {
        count_classes(&self.items, self.classes.len())
    }

    /// What Keras prints: "Found 10532 images belonging to 2 classes."
    pub fn found_message(&self) -> String {
        format!(
            "Found {} images belonging to {} classes.",
            self.len(),
            self.classes.len()
        )
    }

    /// Checks every image short of decoding it (in parallel; [`crate::image_file::check`]:
    /// header, size, a JPEG's compressed data), so that bad files fail before training
    /// rather than in the middle of it. Unreadable files are an error naming the first one,
    /// or, with `skip_invalid`, dropped with a warning each; with it every file is decoded
    /// whole, so that one whose pixels do not decode (a PNG's data) is dropped too (without
    /// it, such a file stops training with an error naming it).
    pub fn check_headers(mut self) -> Result<Self> {
        let options = self.options.clone();
        let verdicts: Vec<Result<()>> = self
            .items
            .par_iter()
            .map(|item| {
                if options.skip_invalid {
                    decode_file(&item.path, &options).map(|_| ())
                } else {
                    crate::image_file::check(&item.path).map(|_| ())
                }
            })
            .collect();
        let mut kept = Vec::with_capacity(self.items.len());
        for (item, verdict) in self.items.iter().zip(verdicts) {
            match verdict {
                Ok(()) => kept.push(item.clone()),
                Err(e) if self.options.skip_invalid => eprintln!("warning: skipping {e}"),
                Err(e) => return Err(e),
            }
        }
        for (class, count) in self
            .classes
            .iter()
            .zip(count_classes(&kept, self.classes.len()))
        {
            if count == 0 {
                return Err(DatasetError::BadFolder {
                    path: self.root.join(class),
                    reason: "class folder has no readable images".into(),
                });
            }
        }
        self.items = Arc::new(kept);
        self.scan = ScanCheck::AlreadyDone;
        Ok(self)
    }

    /// Decodes image `i` as u8 (C, H, W).
    pub fn decode(&self, i: usize) -> Result<(Vec<u8>, ImageShape)> {
        decode_file_with(&self.items[i].path, &self.options, self.scan)
    }

    /// Streams one pass over the images in batches of `batch_size`; shuffled with
    /// `seed + epoch` when `seed` is given, in file order otherwise.
    pub fn batches(&self, batch_size: usize, shuffle: Option<u64>, epoch: u64) -> Batches {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if let Some(seed) = shuffle {
            order.shuffle(&mut StdRng::seed_from_u64(seed.wrapping_add(epoch)));
        }
        self.batches_of(order, batch_size)
    }

    /// Streams the images at `order`, in that order, in batches of `batch_size`.
    pub fn batches_of(&self, order: Vec<usize>, batch_size: usize) -> Batches {
        let batch_size = batch_size.max(1);
        let (tx, rx) = sync_channel(self.options.prefetch.max(1));
        let items = Arc::clone(&self.items);
        let options = self.options.clone();
        let n_batches = order.len().div_ceil(batch_size);
        let scan = self.scan;
        thread::spawn(move || produce(items, (options, scan), order, batch_size, tx));
        Batches {
            rx,
            remaining: n_batches,
        }
    }

    /// Decodes every image into memory (for small data sets such as CIFAR-10 as JPEG).
    pub fn load_all(&self) -> Result<LabelledImages> {
        let decoded: Vec<Option<(Vec<u8>, ImageShape)>> = self
            .items
            .par_iter()
            .map(|item| decode_or_skip(item, &self.options, self.scan))
            .collect::<Result<_>>()?;
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        let mut shape = None;
        for (item, image) in self.items.iter().zip(decoded) {
            let Some((px, s)) = image else { continue };
            check_same_shape(&mut shape, s, &item.path)?;
            pixels.extend_from_slice(&px);
            labels.push(item.class as u8);
        }
        let shape = shape.ok_or_else(|| DatasetError::BadFolder {
            path: self.root.clone(),
            reason: "no readable images".into(),
        })?;
        Ok(LabelledImages {
            pixels,
            labels,
            shape,
            classes: self.classes.clone(),
        })
    }
}

/// The batches of one pass, arriving as worker threads finish them.
pub struct Batches {
    rx: Receiver<Result<Batch>>,
    remaining: usize,
}

impl Batches {
    /// Batches still to come (an upper bound when images are skipped).
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.rx.recv().ok()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// Runs on the producer thread: decodes batch after batch until done, an error, or the
/// consumer hangs up.
fn produce(
    items: Arc<Vec<FolderItem>>,
    (options, scan): (FolderOptions, ScanCheck),
    order: Vec<usize>,
    batch_size: usize,
    tx: SyncSender<Result<Batch>>,
) {
    for chunk in order.chunks(batch_size) {
        let batch = decode_batch(&items, (&options, scan), chunk);
        let failed = batch.is_err();
        if tx.send(batch).is_err() || failed {
            return;
        }
    }
}

fn decode_batch(
    items: &[FolderItem],
    (options, scan): (&FolderOptions, ScanCheck),
    chunk: &[usize],
) -> Result<Batch> {
    let decoded: Vec<Option<(Vec<u8>, ImageShape)>> = chunk
        .par_iter()
        .map(|&i| decode_or_skip(&items[i], options, scan))
        .collect::<Result<_>>()?;
    let mut shape = None;
    let mut images = Vec::new();
    let mut labels = Vec::with_capacity(chunk.len());
    for (&i, image) in chunk.iter().zip(decoded) {
        let Some((px, s)) = image else { continue };
        check_same_shape(&mut shape, s, &items[i].path)?;
        if images.is_empty() {
            images.reserve(chunk.len() * px.len());
        }
        images.extend(px.iter().map(|&p| p as f32 * options.rescale));
        labels.push(items[i].class);
    }
    let shape = shape.unwrap_or(ImageShape {
        channels: options.color_mode.channels(),
        height: 0,
        width: 0,
    });
    Ok(Batch {
        images,
        labels,
        shape,
    })
}

fn check_same_shape(first: &mut Option<ImageShape>, this: ImageShape, path: &Path) -> Result<()> {
    match first {
        None => *first = Some(this),
        Some(s) if *s != this => {
            return Err(DatasetError::BadImage {
                path: path.to_path_buf(),
                reason: format!(
                    "size {}x{} differs from {}x{} of the other images; set a target size",
                    this.height, this.width, s.height, s.width
                ),
            });
        }
        Some(_) => {}
    }
    Ok(())
}

fn decode_or_skip(
    item: &FolderItem,
    options: &FolderOptions,
    scan: ScanCheck,
) -> Result<Option<(Vec<u8>, ImageShape)>> {
    match decode_file_with(&item.path, options, scan) {
        Ok(image) => Ok(Some(image)),
        Err(e) if options.skip_invalid => {
            eprintln!("warning: skipping {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn count_classes(items: &[FolderItem], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for item in items {
        counts[item.class] += 1;
    }
    counts
}

/// Decodes, resizes and converts one image to u8 (C, H, W).
pub fn decode_file(path: &Path, options: &FolderOptions) -> Result<(Vec<u8>, ImageShape)> {
    decode_file_with(path, options, ScanCheck::Walk)
}

fn decode_file_with(
    path: &Path,
    options: &FolderOptions,
    scan: ScanCheck,
) -> Result<(Vec<u8>, ImageShape)> {
    let bad = |reason: String| DatasetError::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    let image = crate::image_file::open_with(path, scan)?;
    let (h, w) = options
        .target_size
        .unwrap_or((image.height(), image.width()));
    if h == 0 || w == 0 {
        return Err(bad(format!("target size {h}x{w} is empty")));
    }
    // As Keras's load_img: convert the colour mode first (PIL's convert), then resize.
    let (raw, channels) = match options.color_mode {
        ColorMode::Grayscale => {
            let grey = match image {
                image::DynamicImage::ImageLuma8(g) => g,
                other => {
                    let rgb = other.into_rgb8();
                    let (iw, ih) = rgb.dimensions();
                    image::GrayImage::from_raw(iw, ih, crate::pil::luma(rgb.as_raw()))
                        .ok_or_else(|| bad("grey conversion changed the size".into()))?
                }
            };
            (resize(grey, (w, h), options.interpolation), 1)
        }
        ColorMode::Rgb => {
            let rgb = resize(image.into_rgb8(), (w, h), options.interpolation);
            (hwc_to_chw(&rgb, 3), 3)
        }
    };
    let shape = ImageShape {
        channels,
        height: h as usize,
        width: w as usize,
    };
    Ok((raw, shape))
}

/// `image`'s pixels resized to `width`×`height` (unchanged when already that size), as
/// interleaved bytes.
fn resize<P>(
    image: image::ImageBuffer<P, Vec<u8>>,
    (width, height): (u32, u32),
    how: Interpolation,
) -> Vec<u8>
where
    P: image::Pixel<Subpixel = u8> + 'static,
{
    if image.dimensions() == (width, height) {
        return image.into_raw();
    }
    match how {
        Interpolation::Nearest => {
            let (iw, ih) = image.dimensions();
            crate::pil::resize_nearest(
                image.as_raw(),
                (iw as usize, ih as usize),
                usize::from(P::CHANNEL_COUNT),
                (width as usize, height as usize),
            )
        }
        Interpolation::Bilinear => {
            image::imageops::resize(&image, width, height, FilterType::Triangle).into_raw()
        }
    }
}

/// Interleaved (H, W, C) to planar (C, H, W).
pub fn hwc_to_chw(hwc: &[u8], channels: usize) -> Vec<u8> {
    let pixels = hwc.len() / channels;
    let mut chw = vec![0u8; hwc.len()];
    for (p, px) in hwc.chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            chw[c * pixels + p] = v;
        }
    }
    chw
}

/// Image files below `dir`. Symlinked folders are not followed (Keras's default,
/// `follow_links=False`), so a link loop cannot recurse forever.
/// Every image file under `dir`, in its subfolders too (symbolic links to folders are not
/// followed), sorted by path.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    collect_images(dir, &mut files, false, &mut HashSet::new())?;
    files.sort();
    Ok(files)
}

/// The image files under `dir` into `out`; folders behind symbolic links only when
/// `follow_links`, each real folder once (`seen`).
fn collect_images(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    follow_links: bool,
    seen: &mut HashSet<PathBuf>,
) -> Result<()> {
    if let Ok(real) = fs::canonicalize(dir)
        && !seen.insert(real)
    {
        return Ok(());
    }
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err(&path))?;
        if kind.is_dir() || (follow_links && kind.is_symlink() && path.is_dir()) {
            collect_images(&path, out, follow_links, seen)?;
        } else if has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    fn options(h: u32, w: u32) -> FolderOptions {
        FolderOptions {
            target_size: Some((h, w)),
            rescale: 1.0 / 255.0,
            ..FolderOptions::default()
        }
    }

    #[test]
    fn classes_are_sorted_subfolders_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["smile", "nonsmile"], 4, (20, 10), 1).unwrap();
        std::fs::write(dir.path().join("smile/notes.txt"), "ignored").unwrap();
        let folder = ImageFolder::open(dir.path(), options(8, 6)).unwrap();
        assert_eq!(folder.classes(), ["nonsmile", "smile"]);
        assert_eq!(folder.class_counts(), vec![4, 4]);
        assert_eq!(
            folder.found_message(),
            "Found 8 images belonging to 2 classes."
        );
    }

    #[test]
    fn streams_every_image_once_per_epoch_resized_and_rescaled() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a", "b", "c"], 5, (20, 10), 2).unwrap();
        let folder = ImageFolder::open(dir.path(), options(8, 6)).unwrap();
        let batches: Vec<Batch> = folder
            .batches(4, Some(7), 0)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(batches.len(), 4);
        assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), 15);
        let b = &batches[0];
        assert_eq!(
            b.shape,
            ImageShape {
                channels: 3,
                height: 8,
                width: 6
            }
        );
        assert_eq!(b.images.len(), 4 * 3 * 8 * 6);
        assert!(b.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        seen.sort();
        assert_eq!(seen, [vec![0; 5], vec![1; 5], vec![2; 5]].concat());
    }

    #[test]
    fn shuffling_is_seeded_and_changes_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a", "b"], 10, (4, 4), 3).unwrap();
        let folder = ImageFolder::open(dir.path(), options(4, 4)).unwrap();
        let labels = |seed, epoch| -> Vec<usize> {
            folder
                .batches(3, Some(seed), epoch)
                .flat_map(|b| b.unwrap().labels)
                .collect()
        };
        assert_eq!(labels(1, 0), labels(1, 0));
        assert_ne!(labels(1, 0), labels(1, 1));
        let unshuffled: Vec<usize> = folder
            .batches(3, None, 0)
            .flat_map(|b| b.unwrap().labels)
            .collect();
        assert_eq!(unshuffled, [vec![0; 10], vec![1; 10]].concat());
    }

    #[test]
    fn grayscale_mode_and_mixed_input_formats() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["x", "y"], 3, (30, 17), 4).unwrap();
        // A grey JPEG and an RGBA PNG of other sizes in the same class.
        image::GrayImage::from_pixel(50, 40, image::Luma([200]))
            .save(dir.path().join("x/grey.jpg"))
            .unwrap();
        image::RgbaImage::from_pixel(9, 13, image::Rgba([1, 2, 3, 255]))
            .save(dir.path().join("x/rgba.PNG"))
            .unwrap();
        let gray = FolderOptions {
            color_mode: ColorMode::Grayscale,
            ..options(12, 10)
        };
        let folder = ImageFolder::open(dir.path(), gray).unwrap();
        assert_eq!(folder.len(), 8);
        let b: Vec<Batch> = folder.batches(8, None, 0).collect::<Result<_>>().unwrap();
        assert_eq!(
            b[0].shape,
            ImageShape {
                channels: 1,
                height: 12,
                width: 10
            }
        );
        assert_eq!(b[0].images.len(), 8 * 12 * 10);
    }

    #[test]
    fn corrupt_image_is_an_error_naming_the_file_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a", "b"], 3, (8, 8), 5).unwrap();
        std::fs::write(
            dir.path().join("a/broken.jpg"),
            b"\xff\xd8\xff\xe0 not really a jpeg",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b/text.png"),
            b"plain text pretending to be an image",
        )
        .unwrap();
        let folder = ImageFolder::open(dir.path(), options(8, 8)).unwrap();
        let err = folder
            .batches(16, None, 0)
            .find_map(|b| b.err())
            .unwrap()
            .to_string();
        assert!(
            err.contains("broken.jpg") || err.contains("text.png"),
            "{err}"
        );
        assert!(folder.load_all().is_err());

        let skipping = ImageFolder::open(
            dir.path(),
            FolderOptions {
                skip_invalid: true,
                ..options(8, 8)
            },
        )
        .unwrap();
        let n: usize = skipping.batches(4, None, 0).map(|b| b.unwrap().len()).sum();
        assert_eq!(n, 6);

        // The header check finds them before any decoding; skipping drops both.
        let err = folder.clone().check_headers().unwrap_err().to_string();
        assert!(err.contains("broken.jpg"), "{err}");
        assert_eq!(skipping.clone().check_headers().unwrap().len(), 6);

        // A PNG whose header reads but whose compressed pixels are garbage: past the
        // header check without skipping (decoding it names it), dropped with skipping.
        let mut png = std::fs::read(
            dir.path()
                .join("a")
                .read_dir()
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap();
        let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
        for b in &mut png[idat + 8..idat + 20] {
            *b ^= 0x5a;
        }
        std::fs::write(dir.path().join("b/corrupt.png"), &png).unwrap();
        let folder = ImageFolder::open(dir.path(), options(8, 8)).unwrap();
        let err = folder
            .batches(16, None, 0)
            .find_map(|b| b.err())
            .unwrap()
            .to_string();
        assert!(
            err.contains("corrupt.png") || err.contains("broken.jpg"),
            "{err}"
        );
        let skipping = ImageFolder::open(
            dir.path(),
            FolderOptions {
                skip_invalid: true,
                ..options(8, 8)
            },
        )
        .unwrap();
        assert_eq!(skipping.check_headers().unwrap().len(), 6);
    }

    #[test]
    fn header_check_rejects_a_class_left_without_images() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a", "b"], 2, (8, 8), 5).unwrap();
        for entry in std::fs::read_dir(dir.path().join("b")).unwrap() {
            std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
        }
        let folder = ImageFolder::open(
            dir.path(),
            FolderOptions {
                skip_invalid: true,
                ..options(8, 8)
            },
        )
        .unwrap();
        let err = folder.check_headers().unwrap_err().to_string();
        assert!(err.contains("no readable images"), "{err}");
    }

    #[test]
    fn empty_or_missing_folders_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let msg = ImageFolder::open(dir.path(), options(4, 4))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no class subfolders"), "{msg}");
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let msg = ImageFolder::open(dir.path(), options(4, 4))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("empty") && msg.contains("no images"), "{msg}");
        let msg = ImageFolder::open(&dir.path().join("nope"), options(4, 4))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("nope"), "{msg}");
    }

    #[test]
    fn native_sizes_must_agree_without_a_target_size() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a"], 2, (8, 8), 6).unwrap();
        image::GrayImage::new(5, 5)
            .save(dir.path().join("a/odd.png"))
            .unwrap();
        let folder = ImageFolder::open(dir.path(), FolderOptions::default()).unwrap();
        let msg = folder.load_all().unwrap_err().to_string();
        assert!(
            msg.contains("odd.png") && msg.contains("target size"),
            "{msg}"
        );
    }

    #[test]
    fn dropping_the_stream_early_stops_the_producer() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a"], 40, (8, 8), 7).unwrap();
        let folder = ImageFolder::open(
            dir.path(),
            FolderOptions {
                prefetch: 1,
                follow_links: false,
                ..options(8, 8)
            },
        )
        .unwrap();
        let mut it = folder.batches(2, None, 0);
        assert!(it.next().unwrap().is_ok());
        drop(it); // must not hang or panic
    }

    #[cfg(unix)]
    #[test]
    fn a_class_folder_whose_name_is_not_utf8_is_read() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a"], 2, (4, 4), 9).unwrap();
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
        std::fs::rename(dir.path().join("a"), &odd).unwrap();
        let folder = ImageFolder::open(dir.path(), options(4, 4)).unwrap();
        assert_eq!(folder.len(), 2);
        assert_eq!(folder.classes(), ["caf\u{fffd}"]);
    }

    #[cfg(unix)]
    #[test]
    fn follow_links_searches_linked_folders_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let extra = dir.path().join("extra");
        synthetic::write_image_folder(&data, &["a"], 2, (4, 4), 8).unwrap();
        synthetic::write_image_folder(&extra, &["more"], 3, (4, 4), 9).unwrap();
        std::os::unix::fs::symlink(extra.join("more"), data.join("a/more")).unwrap();
        std::os::unix::fs::symlink(data.join("a"), data.join("a/more_loop")).unwrap();
        let open = |follow_links| {
            let options = FolderOptions {
                follow_links,
                ..options(4, 4)
            };
            ImageFolder::open(&data, options).unwrap().len()
        };
        assert_eq!(open(false), 2);
        // The linked folder's 3 images join; the loop back to a/ is not searched twice.
        assert_eq!(open(true), 5);
    }

    #[test]
    fn symlink_loops_inside_a_class_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a"], 2, (4, 4), 8).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("a/loop")).unwrap();
        let folder = ImageFolder::open(dir.path(), options(4, 4)).unwrap();
        assert_eq!(folder.len(), 2);
    }

    #[test]
    fn validation_split_takes_each_classes_first_files_as_keras_does() {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_image_folder(dir.path(), &["a", "b"], 5, (4, 4), 1).unwrap();
        let open = || ImageFolder::open(dir.path(), options(4, 4)).unwrap();
        let names = |f: &ImageFolder| -> Vec<(usize, String)> {
            f.items()
                .iter()
                .map(|i| {
                    (
                        i.class,
                        i.path.file_name().unwrap().to_string_lossy().into_owned(),
                    )
                })
                .collect()
        };
        let all = names(&open());
        let validation = names(&open().subset(0.4, Subset::Validation).unwrap());
        let training = names(&open().subset(0.4, Subset::Training).unwrap());
        // Keras: int(0.4 * 5) = 2 files of each class for validation, the first two.
        assert_eq!(
            validation,
            [
                all[0].clone(),
                all[1].clone(),
                all[5].clone(),
                all[6].clone()
            ]
        );
        assert_eq!(training.len(), 6);
        assert!(training.iter().all(|t| !validation.contains(t)));
        let err = open()
            .subset(0.1, Subset::Validation)
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves the validation subset none"), "{err}");
        assert!(open().subset(1.0, Subset::Training).is_err());
    }

    #[test]
    fn hwc_to_chw_moves_channels_to_planes() {
        assert_eq!(hwc_to_chw(&[1, 2, 3, 4, 5, 6], 3), vec![1, 4, 2, 5, 3, 6]);
    }
}
