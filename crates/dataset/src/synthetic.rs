//! Small generated data sets, so tests run on a fresh clone with no data.
//!
//! The images are learnable: class `c` draws a bright vertical bar whose column depends on
//! `c`, at a random height, over faint noise. A network that learns anything gets them
//! right; one that learns nothing scores 1/classes.

use std::fs;
use std::io::Write;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cifar;
use crate::error::{DatasetError, Result, io_err};
use crate::idx::encode_idx;
use crate::labelled::{ImageShape, LabelledImages, Split};
use crate::mnist;

/// `n` images of `shape` in `classes` classes (labels cycle through the classes).
pub fn bars(n: usize, shape: ImageShape, classes: usize, seed: u64) -> LabelledImages {
    let mut rng = StdRng::seed_from_u64(seed);
    let (h, w) = (shape.height, shape.width);
    let mut pixels = vec![0u8; n * shape.len()];
    let mut labels = Vec::with_capacity(n);
    for (i, image) in pixels.chunks_exact_mut(shape.len()).enumerate() {
        let class = i % classes;
        labels.push(class as u8);
        let column = (class * w) / classes + w / (2 * classes);
        let top = rng.random_range(0..h / 3 + 1);
        let bottom = (top + h / 2).min(h);
        for c in 0..shape.channels {
            let plane = &mut image[c * h * w..(c + 1) * h * w];
            for v in plane.iter_mut() {
                *v = rng.random_range(0..40);
            }
            for y in top..bottom {
                for x in column.saturating_sub(1)..(column + 1).min(w) {
                    plane[y * w + x] = 200 + rng.random_range(0..56u8);
                }
            }
        }
    }
    LabelledImages {
        pixels,
        labels,
        shape,
        classes: (0..classes).map(|c| c.to_string()).collect(),
    }
}

const MNIST_SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 28,
    width: 28,
};

/// Writes the four MNIST IDX files (gzip or raw) with generated digits; returns what was written.
pub fn write_mnist_dir(
    dir: &Path,
    n_train: usize,
    n_test: usize,
    gz: bool,
    seed: u64,
) -> Result<Split> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let split = Split {
        train: bars(n_train, MNIST_SHAPE, 10, seed),
        test: bars(n_test, MNIST_SHAPE, 10, seed + 1),
    };
    for (images, labels, set) in [
        (mnist::TRAIN_IMAGES, mnist::TRAIN_LABELS, &split.train),
        (mnist::TEST_IMAGES, mnist::TEST_LABELS, &split.test),
    ] {
        write_idx(dir, images, &[set.len(), 28, 28], &set.pixels, gz)?;
        write_idx(dir, labels, &[set.len()], &set.labels, gz)?;
    }
    Ok(split)
}

fn write_idx(dir: &Path, name: &str, dims: &[usize], data: &[u8], gz: bool) -> Result<()> {
    let bytes = encode_idx(dims, data);
    let (path, bytes) = if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).map_err(io_err(dir))?;
        (
            dir.join(format!("{name}.gz")),
            enc.finish().map_err(io_err(dir))?,
        )
    } else {
        (dir.join(name), bytes)
    };
    fs::write(&path, bytes).map_err(io_err(&path))
}

/// Writes the five CIFAR-10 training batches and the test batch, `per_batch` records each.
pub fn write_cifar_dir(dir: &Path, per_batch: usize, seed: u64) -> Result<Split> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let shape = ImageShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let train = bars(per_batch * 5, shape, 10, seed);
    let test = bars(per_batch, shape, 10, seed + 1);
    let record = |set: &LabelledImages, i: usize| [&[set.labels[i]], set.image(i)].concat();
    for (b, name) in cifar::TRAIN_BATCHES.iter().enumerate() {
        let bytes: Vec<u8> = (b * per_batch..(b + 1) * per_batch)
            .flat_map(|i| record(&train, i))
            .collect();
        fs::write(dir.join(name), bytes).map_err(io_err(dir.join(name)))?;
    }
    let bytes: Vec<u8> = (0..per_batch).flat_map(|i| record(&test, i)).collect();
    fs::write(dir.join(cifar::TEST_BATCH), bytes).map_err(io_err(dir))?;
    let classes: Vec<String> = cifar::CLASSES.iter().map(|s| s.to_string()).collect();
    Ok(Split {
        train: LabelledImages {
            classes: classes.clone(),
            ..train
        },
        test: LabelledImages { classes, ..test },
    })
}

/// Writes `root/<class>/<i>.png` colour images of `(width, height)`, `per_class` per class.
/// Each class has its own bar position, so a classifier can learn them.
pub fn write_image_folder(
    root: &Path,
    classes: &[&str],
    per_class: usize,
    size: (u32, u32),
    seed: u64,
) -> Result<()> {
    let (w, h) = size;
    let shape = ImageShape {
        channels: 3,
        height: h as usize,
        width: w as usize,
    };
    let data = bars(per_class * classes.len(), shape, classes.len(), seed);
    for (class, name) in classes.iter().enumerate() {
        let dir = root.join(name);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for k in 0..per_class {
            let i = k * classes.len() + class;
            let chw = data.image(i);
            let plane = (w * h) as usize;
            let hwc: Vec<u8> = (0..plane)
                .flat_map(|p| [chw[p], chw[plane + p], chw[2 * plane + p]])
                .collect();
            let path = dir.join(format!("{k:05}.png"));
            image::RgbImage::from_raw(w, h, hwc)
                .ok_or_else(|| DatasetError::BadImage {
                    path: path.clone(),
                    reason: "bad buffer size".into(),
                })?
                .save(&path)
                .map_err(|e| DatasetError::BadImage {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
        }
    }
    Ok(())
}
