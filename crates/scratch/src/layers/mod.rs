//! Layers with a forward and a backward pass, in the style of the course's `layers.py`.
//!
//! Activations are `(batch, features)` matrices; a layer caches in `forward` exactly what
//! its `backward` needs.

mod affine;
mod relu;
mod sigmoid;
mod softmax_loss;

pub use affine::Affine;
pub use relu::Relu;
pub use sigmoid::Sigmoid;
pub use softmax_loss::{SoftmaxWithLoss, cross_entropy, softmax_rows};

use ndarray::Array2;

/// Training or inference: Dropout and BatchNorm behave differently in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A learnable parameter with the gradient `backward` left for it.
pub struct ParamGrad<'a> {
    pub param: &'a mut Array2<f32>,
    pub grad: &'a Array2<f32>,
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
