//! Exercise B3, the DCGAN: the networks and their files ([`model`]), the training loop
//! ([`training`]) and the classifier-based score of a generator ([`score`]).

pub mod model;
pub mod score;
pub mod training;

pub use model::*;
pub use training::{GanEpoch, Networks, Run, train};
