//! Central-difference gradient checks for layers, used by every layer's tests.
//!
//! The scalar checked is L = Σ forward(x) ⊙ R for a fixed random R, so every output
//! element's gradient takes part; dL/dx is then backward(R). Layers compute in f32, so the
//! step is 1e-2 and sums are taken in f64; a wrong gradient gives an O(1) relative error,
//! a right one about 1e-4 (every layer's check passes at 3e-4, with and without AVX-512),
//! so the bound is 1e-3.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::layers::{Layer, Mode};

const STEP: f32 = 1e-2;
const TOLERANCE: f64 = 1e-3;

pub fn random_matrix(shape: (usize, usize), rng: &mut StdRng) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || StandardNormal.sample(rng))
}

/// `rows` rows of `len` random bytes, each 0 with probability `zeros` (like MNIST's
/// background), for tests of the byte-reading paths.
pub fn sparse_byte_rows(rows: usize, len: usize, zeros: f64, rng: &mut StdRng) -> Vec<Vec<u8>> {
    use rand::Rng;
    let mut byte = || {
        if rng.random_bool(zeros) {
            0
        } else {
            rng.random()
        }
    };
    (0..rows)
        .map(|_| (0..len).map(|_| byte()).collect())
        .collect()
}

fn weighted_sum(y: &Array2<f32>, r: &Array2<f32>) -> f64 {
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// ‖a − n‖ / (‖a‖ + ‖n‖), the usual relative error of a gradient check.
pub fn relative_error(analytic: &[f32], numeric: &[f64]) -> f64 {
    let diff: f64 = analytic
        .iter()
        .zip(numeric)
        .map(|(&a, &n)| (a as f64 - n).powi(2))
        .sum::<f64>()
        .sqrt();
    let na: f64 = analytic
        .iter()
        .map(|&a| (a as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let nn: f64 = numeric.iter().map(|n| n.powi(2)).sum::<f64>().sqrt();
    diff / (na + nn).max(1e-12)
}

/// Checks backward's dx against central differences of forward.
pub fn check_input_grad(layer: &mut dyn Layer, shape: (usize, usize), seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = random_matrix(shape, &mut rng);
    check_input_grad_at(layer, &x, &mut rng);
}

/// The same at a given input (e.g. one without ties for max pooling).
pub fn check_input_grad_at(layer: &mut dyn Layer, x: &Array2<f32>, rng: &mut StdRng) {
    let x = x.clone();
    let y = layer.forward(&x, Mode::Train);
    let r = random_matrix(y.dim(), rng);
    let analytic = layer.backward(&x, &r, true).expect("dx requested");
    let mut numeric = vec![0.0f64; x.len()];
    for (i, n) in numeric.iter_mut().enumerate() {
        let mut xp = x.clone();
        xp.as_slice_mut().expect("standard layout")[i] += STEP;
        let lp = weighted_sum(&layer.forward(&xp, Mode::Train), &r);
        let mut xm = x.clone();
        xm.as_slice_mut().expect("standard layout")[i] -= STEP;
        let lm = weighted_sum(&layer.forward(&xm, Mode::Train), &r);
        *n = (lp - lm) / (2.0 * STEP as f64);
    }
    let err = relative_error(analytic.as_slice().expect("standard layout"), &numeric);
    assert!(err < TOLERANCE, "input gradient relative error {err:.2e}");
}

/// Checks the parameter gradients backward leaves against central differences.
pub fn check_param_grads(layer: &mut dyn Layer, shape: (usize, usize), seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = random_matrix(shape, &mut rng);
    check_param_grads_at(layer, &x, &mut rng);
}

/// [`check_param_grads`] at a given input (for layers whose path depends on it).
pub fn check_param_grads_at(layer: &mut dyn Layer, x: &Array2<f32>, rng: &mut StdRng) {
    let y = layer.forward(x, Mode::Train);
    let r = random_matrix(y.dim(), rng);
    layer.backward(x, &r, false);
    let analytic: Vec<Vec<f32>> = layer
        .params()
        .iter()
        .map(|p| p.grad.iter().copied().collect())
        .collect();
    for (p, analytic) in analytic.iter().enumerate() {
        let mut numeric = vec![0.0f64; analytic.len()];
        for (i, n) in numeric.iter_mut().enumerate() {
            let nudge = |layer: &mut dyn Layer, delta: f32| {
                layer.params()[p]
                    .param
                    .as_slice_mut()
                    .expect("standard layout")[i] += delta;
            };
            nudge(layer, STEP);
            let lp = weighted_sum(&layer.forward(x, Mode::Train), &r);
            nudge(layer, -2.0 * STEP);
            let lm = weighted_sum(&layer.forward(x, Mode::Train), &r);
            nudge(layer, STEP);
            *n = (lp - lm) / (2.0 * STEP as f64);
        }
        let err = relative_error(analytic, &numeric);
        assert!(
            err < TOLERANCE,
            "parameter {p} gradient relative error {err:.2e}"
        );
    }
}
