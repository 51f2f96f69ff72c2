//! Images as network inputs: (n, features) f32 in [0, 1], each row one image in
//! channels-last (row, column, channel) order.

use crate::spec::InputShape;
use dataset::{DataDir, DatasetChoice, ImageShape, LabelledImages, Split};
use std::ops::Range;

use ndarray::{Array2, ArrayViewMut2, Axis};

pub struct Samples {
    /// (n, H·W·C), pixels / 255, channels-last.
    x: Array2<f32>,
    /// The same pixels as bytes (x = bytes / 255), when they came from 8-bit images.
    /// Minibatch copies read these: a quarter of the memory of `x`, and copying random
    /// rows is bound by memory latency (PyTorch's MNIST keeps uint8 for the same reason).
    /// Private with `x`, so the two cannot disagree: only the constructors set them.
    bytes: Option<Array2<u8>>,
    pub labels: Vec<u8>,
    pub shape: ImageShape,
    pub classes: Vec<String>,
}

impl Samples {
    pub fn from_images(images: &LabelledImages) -> Self {
        let features = images.shape.len();
        let c = images.shape.channels;
        // The data sets store planes (C, H, W); convolutions here want (H, W, C).
        let mut bytes = Array2::zeros((images.len(), features));
        for (mut row, i) in bytes.axis_iter_mut(Axis(0)).zip(0..images.len()) {
            let row = row.as_slice_mut().expect("row-major");
            planes_to_channels_last(images.image(i), c, row);
        }
        Self::from_bytes(
            bytes,
            images.labels.clone(),
            images.shape,
            images.classes.clone(),
        )
    }

    /// Samples from 8-bit pixels, (n, H·W·C) channels-last; x = bytes / 255.
    pub fn from_bytes(
        bytes: Array2<u8>,
        labels: Vec<u8>,
        shape: ImageShape,
        classes: Vec<String>,
    ) -> Self {
        assert_eq!(bytes.nrows(), labels.len(), "one label per sample");
        Self {
            x: bytes.mapv(to_unit),
            bytes: Some(bytes),
            labels,
            shape,
            classes,
        }
    }

    /// Samples from floats, (n, H·W·C) channels-last, with no byte copy.
    pub fn from_floats(
        x: Array2<f32>,
        labels: Vec<u8>,
        shape: ImageShape,
        classes: Vec<String>,
    ) -> Self {
        assert_eq!(x.nrows(), labels.len(), "one label per sample");
        Self {
            x,
            bytes: None,
            labels,
            shape,
            classes,
        }
    }

    /// (n, H·W·C), pixels / 255, channels-last.
    pub fn x(&self) -> &Array2<f32> {
        &self.x
    }

    /// The same pixels as bytes, when they came from 8-bit images.
    pub fn bytes(&self) -> Option<&Array2<u8>> {
        self.bytes.as_ref()
    }

    /// The shape of one sample, as network descriptions state it.
    pub fn input_shape(&self) -> InputShape {
        InputShape {
            channels: self.shape.channels,
            height: self.shape.height,
            width: self.shape.width,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Copies rows `idx` into `x` and `labels` (reused buffers: no allocation per batch).
    pub fn gather(&self, idx: &[usize], x: &mut Array2<f32>, labels: &mut Vec<u8>) {
        if x.nrows() != idx.len() {
            *x = Array2::zeros((idx.len(), self.x.ncols()));
        }
        self.copy_rows(idx, 0..self.x.ncols(), x.view_mut());
        labels.clear();
        labels.extend(idx.iter().map(|&i| self.labels[i]));
    }

    /// Row i (features,).
    pub fn row(&self, i: usize) -> &[f32] {
        self.x.row(i).to_slice().expect("row-major")
    }

    /// Copies `columns` of the rows `idx` into the rows of `x` (idx.len() × columns).
    pub fn copy_rows(&self, idx: &[usize], columns: Range<usize>, mut x: ArrayViewMut2<f32>) {
        assert_eq!(x.dim(), (idx.len(), columns.len()));
        for (mut row, &i) in x.axis_iter_mut(Axis(0)).zip(idx) {
            let row = row.as_slice_mut().expect("row-major");
            match &self.bytes {
                Some(bytes) => {
                    let src = &bytes.row(i).to_slice().expect("row-major")[columns.clone()];
                    row.iter_mut().zip(src).for_each(|(v, &b)| *v = to_unit(b));
                }
                None => row.copy_from_slice(&self.row(i)[columns.clone()]),
            }
        }
    }

    /// The memory a minibatch copy reads for sample i: worth prefetching ahead.
    pub fn source_row(&self, i: usize) -> &[u8] {
        match &self.bytes {
            Some(bytes) => bytes.row(i).to_slice().expect("row-major"),
            None => bytemuck_f32(self.row(i)),
        }
    }
}

/// One image's (C, H, W) planes `chw` as (H, W, C) into `hwc`, the order of this crate's
/// inputs.
pub fn planes_to_channels_last<T: Copy>(chw: &[T], channels: usize, hwc: &mut [T]) {
    let plane = chw.len() / channels.max(1);
    for (p, pixel) in hwc.chunks_exact_mut(channels).enumerate() {
        for (ch, v) in pixel.iter_mut().enumerate() {
            *v = chw[ch * plane + p];
        }
    }
}

/// An image file as an input of `shape`, channels-last: a digit made MNIST-like for the
/// MNIST shape, anything else converted to grey or RGB and resized (bilinear).
pub fn image_input(path: &std::path::Path, shape: InputShape) -> dataset::Result<Vec<f32>> {
    let preprocess = if shape == InputShape::MNIST {
        dataset::image_input::Preprocess::Digits
    } else {
        dataset::image_input::Preprocess::Resize
    };
    let planes = dataset::image_input::read(
        path,
        ImageShape {
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
        },
        preprocess,
        dataset::Interpolation::Bilinear,
    )?;
    let mut input = vec![0.0; planes.len()];
    planes_to_channels_last(&planes, shape.channels, &mut input);
    Ok(input)
}

/// A pixel byte as a network input in [0, 1].
pub fn to_unit(b: u8) -> f32 {
    b as f32 / 255.0
}

/// The bytes of a float slice (for prefetching only).
fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: any initialised memory may be viewed as bytes; u8 has alignment 1.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), size_of_val(v)) }
}

/// Train and test images of a data set, from the data directory (downloaded there if
/// allowed); a folder holds `DIR/train/<class>/*` and `DIR/test/<class>/*`, all images the
/// same size. Image folders come class by class; they are shuffled once (fixed seed) so
/// that `--train-limit N` keeps a mix of classes.
pub fn load_split(choice: &DatasetChoice, dirs: &DataDir) -> anyhow::Result<Split> {
    let split = choice.load(dirs)?;
    Ok(match choice {
        DatasetChoice::Mnist | DatasetChoice::Fashion => split,
        DatasetChoice::Cifar10 | DatasetChoice::Folder(_) => Split {
            train: split.train.shuffled(1),
            test: split.test.shuffled(2),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_copied_from_bytes_equal_the_float_rows() {
        let shape = ImageShape {
            channels: 3,
            height: 5,
            width: 4,
        };
        let samples = Samples::from_images(&dataset::synthetic::bars(20, shape, 4, 3));
        assert!(samples.bytes.is_some());
        let idx = [7, 0, 19, 7];
        for columns in [0..60, 16..60, 0..16] {
            let mut x = Array2::zeros((idx.len(), columns.len()));
            samples.copy_rows(&idx, columns.clone(), x.view_mut());
            for (row, &i) in x.rows().into_iter().zip(&idx) {
                assert_eq!(row.to_vec(), samples.row(i)[columns.clone()].to_vec());
            }
        }
    }

    #[test]
    fn colour_images_become_channels_last_rows() {
        // One 1×2 RGB image stored as planes: R = (10, 20), G = (30, 40), B = (50, 60).
        let images = LabelledImages {
            pixels: vec![10, 20, 30, 40, 50, 60],
            labels: vec![0],
            shape: ImageShape {
                channels: 3,
                height: 1,
                width: 2,
            },
            classes: vec!["a".into()],
        };
        let s = Samples::from_images(&images);
        let row: Vec<u8> =
            s.x.row(0)
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect();
        assert_eq!(row, [10, 30, 50, 20, 40, 60]);
    }
}
