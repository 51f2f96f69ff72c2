//! Seeing inside a trained classifier: its first convolution's kernels, every
//! convolution's and pooling's feature maps for an image, Grad-CAM and saliency. Used by
//! `keraslike visualize` and `keraslike serve`; the pictures are drawn by `cli::picture`.

pub mod feature_maps;
pub mod grad_cam;
pub mod kernels;
