//! Seeing inside a trained classifier: its first convolution's kernels, every
//! convolution's and pooling's feature maps for an image, Grad-CAM and saliency. Used by
//! `keraslike visualize` and `keraslike serve`; the pictures are drawn by `cli::picture`.

pub mod feature_maps;
pub mod grad_cam;
pub mod kernels;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

use crate::model::Sequential;

/// One image's input values (C × H × W, as `ModelCard::image_input` gives them) as a
/// batch of one on `model`'s device.
pub fn one_image(model: &Sequential, input: [usize; 3], pixels: &[f32]) -> Result<Tensor<4>> {
    let device = model
        .devices()
        .into_iter()
        .next()
        .context("the model has no parameters")?;
    let [c, h, w] = input;
    Ok(Tensor::from_data(
        TensorData::new(pixels.to_vec(), [1, c, h, w]),
        &device,
    ))
}
