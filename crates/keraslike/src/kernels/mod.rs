//! keraslike's own CPU kernels and their burn glue, apart from the Keras API (which uses
//! them; they use nothing of it).
//!
//! - [`conv`]: Conv2D and ConvTranspose2D as im2col + GEMM, forward and backward, on
//!   plain slices; Keras's padding rules.
//! - [`pool`]: MaxPooling2D forward and backward.
//! - [`batch_norm`]: BatchNorm's training-mode forward and backward.
//! - [`dropout`]: dropout masks that are a function of (seed, call, index), and the
//!   layer that draws one per call.
//! - [`update`]: the Adam and Adadelta updates fused into one pass.
//! - [`conv2d`]: the Conv2D forward the model calls, choosing by backend: these kernels
//!   on flex, im2col in burn tensor ops on ndarray (whose own convolution has no GEMM),
//!   burn's elsewhere.
//! - [`flex`]: all of the above plugged into burn's flex backend (and its autodiff) as a
//!   backend extension; the rest of the crate calls these, which decline (return `None`)
//!   for tensors that are not f32 on flex.

pub mod batch_norm;
pub mod conv;
pub mod conv2d;
pub mod dropout;
pub mod flex;
pub mod pool;
pub mod update;

/// The largest absolute difference between two tensors, for the kernels' tests against
/// burn's own operations.
#[cfg(test)]
pub(crate) fn max_difference(a: burn::tensor::Tensor<4>, b: burn::tensor::Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}
