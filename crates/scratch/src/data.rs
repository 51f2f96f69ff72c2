//! Images as network inputs: (n, features) f32 in [0, 1].

use dataset::{ImageShape, LabelledImages};
use ndarray::{Array2, ArrayViewMut1, Axis};

pub struct Samples {
    /// (n, C·H·W), pixels / 255.
    pub x: Array2<f32>,
    pub labels: Vec<u8>,
    pub shape: ImageShape,
    pub classes: Vec<String>,
}

impl Samples {
    pub fn from_images(images: &LabelledImages) -> Self {
        let features = images.shape.len();
        let x = Array2::from_shape_vec(
            (images.len(), features),
            images.pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        )
        .expect("pixels hold n · C·H·W values");
        Self {
            x,
            labels: images.labels.clone(),
            shape: images.shape,
            classes: images.classes.clone(),
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
        labels.clear();
        for (mut row, &i) in x.axis_iter_mut(Axis(0)).zip(idx) {
            copy_row(&mut row, self.x.row(i).as_slice().expect("row-major"));
            labels.push(self.labels[i]);
        }
    }
}

fn copy_row(dst: &mut ArrayViewMut1<f32>, src: &[f32]) {
    dst.as_slice_mut().expect("row-major").copy_from_slice(src);
}
