//! Initial weights.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::layers::Affine;

/// How a weight matrix is drawn; biases start at 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// N(0, 1/n_in): the course's choice for the random-weight predictions (Xavier).
    Xavier,
    /// N(0, 2/n_in): He, for ReLU layers.
    He,
    /// N(0, σ²) with a fixed σ (the book's 0.01).
    Std(f32),
}

impl Init {
    pub fn std(self, fan_in: usize) -> f32 {
        match self {
            Init::Xavier => (1.0 / fan_in as f32).sqrt(),
            Init::He => (2.0 / fan_in as f32).sqrt(),
            Init::Std(s) => s,
        }
    }
}

/// An (n_in, n_out) matrix drawn from `init`.
pub fn weights(n_in: usize, n_out: usize, init: Init, rng: &mut StdRng) -> Array2<f32> {
    let normal = Normal::new(0.0, init.std(n_in)).expect("finite, non-negative std");
    Array2::from_shape_simple_fn((n_in, n_out), || normal.sample(rng))
}

/// An affine layer with weights from `init` and zero bias (for tests and examples).
pub fn affine(n_in: usize, n_out: usize, init: Init, seed: u64) -> Affine {
    let mut rng = StdRng::seed_from_u64(seed);
    Affine::new(
        weights(n_in, n_out, init, &mut rng),
        Array2::zeros((1, n_out)),
    )
}
