//! Layers with a forward and a backward pass, in the style of the course's `layers.py`.
//!
//! Activations are `(batch, features)` matrices; a layer caches in `forward` exactly what
//! its `backward` needs. Images are stored channels-last: a row holds an image's pixels
//! in (row, column, channel) order, so a convolution's output (one row per position, one
//! column per filter) *is* the next layer's input with no transpose, and "Flatten" costs
//! nothing.

mod affine;
mod batch_norm;
mod conv;
mod dropout;
mod flatten;
pub mod im2col;
mod max_pool;
mod relu;
mod sigmoid;
mod softmax_loss;

pub use affine::Affine;
pub use batch_norm::BatchNorm;
pub use conv::Conv;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use max_pool::MaxPool;
pub use relu::Relu;
pub use sigmoid::Sigmoid;
pub use softmax_loss::{SoftmaxWithLoss, cross_entropy, softmax_rows};

use ndarray::{Array1, Array2, ArrayView2};

/// Σ over rows of a row-major matrix, row by row over plain slices: ndarray's
/// `sum_axis(Axis(0))` goes through its general iterator machinery once per row, which
/// was a tenth of a conv net's step for (n·pixels, C) matrices with C = 32.
pub(crate) fn column_sums(a: ArrayView2<'_, f32>) -> Array1<f32> {
    let mut sums = vec![0.0f32; a.ncols()];
    for row in a.rows() {
        match row.as_slice() {
            Some(row) => sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v),
            None => sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v),
        }
    }
    Array1::from(sums)
}

/// Column sums divided by the number of rows.
pub(crate) fn column_means(a: ArrayView2<'_, f32>) -> Array1<f32> {
    let n = a.nrows().max(1) as f32;
    column_sums(a) / n
}

/// Training or inference: Dropout and BatchNorm behave differently in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A learnable parameter with the gradient `backward` left for it.
pub struct ParamGrad<'a> {
    pub param: &'a mut Array2<f32>,
    /// Mutable so that regularisation can add its term before the optimiser reads it.
    pub grad: &'a mut Array2<f32>,
    /// A weight matrix (L1/L2 regularisation applies), not a bias or a BatchNorm γ/β.
    pub is_weight: bool,
}

pub trait Layer: Send {
    /// `x`: (batch, in) → (batch, out).
    fn forward(&mut self, x: &Array2<f32>, mode: Mode) -> Array2<f32>;

    /// `dout`: (batch, out) → dx (batch, in), or `None` when `need_dx` is false (the first
    /// layer's input gradient is never used, and for an affine layer it is a whole GEMM).
    /// `x` is the input of the matching `forward`: the network keeps it, so layers need
    /// not copy it.
    fn backward(
        &mut self,
        x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>>;

    /// The learnable parameters and their gradients, in a fixed order.
    fn params(&mut self) -> Vec<ParamGrad<'_>> {
        Vec::new()
    }

    /// Everything a weights file stores for this layer, by short name ("W", "b", ...).
    fn tensors(&self) -> Vec<(&'static str, &Array2<f32>)> {
        Vec::new()
    }

    /// The same tensors, for loading.
    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Array2<f32>)> {
        Vec::new()
    }
}
