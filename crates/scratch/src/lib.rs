//! Neural networks from scratch, as in the course: perceptron gates, then a 3-layer MNIST
//! network with forward, minibatch cross-entropy, backprop and SGD, built from small
//! layers that each have a forward and a backward pass; then the advanced tasks: ReLU,
//! Dropout, BatchNorm, six optimisers, L1/L2, colour images, im2col convolution and max
//! pooling, any network described by a TOML config.

pub mod augment;
pub mod compare;
pub mod data;
pub mod experiment;
pub mod first_layer;
pub mod gates;
pub mod init;
pub mod kernels;
pub mod layers;
pub mod network;
pub mod optimizer;
pub mod regularization;
pub mod spec;
pub mod train;
pub mod weights_file;

#[cfg(test)]
pub(crate) mod gradcheck;
