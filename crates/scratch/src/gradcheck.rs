//! Gradient checks for layers, used by every layer's tests, in two forms:
//!
//! - [`check_against_reference`]: the layer against an independent f64 statement of its
//!   forward pass ([`Reference`], written from the formula in the layer's tests). The
//!   outputs must agree, and backward's gradients must agree with f64 central
//!   differences of the reference (step 1e-6, so inputs 1e-4 from a kink can be checked),
//!   within 1e-5 relative error.
//! - [`check_input_grad`] / [`check_param_grads`]: the layer against central differences
//!   of its own f32 forward. Layers compute in f32, so the step is 1e-2 and sums are taken
//!   in f64; a wrong gradient gives an O(1) relative error, a right one about 1e-4, so the
//!   bound is 1e-3.
//!
//! Both take L = Σ forward(x) ⊙ R for a fixed random R, so every output element's
//! gradient takes part; dL/dx is then backward(R).

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

/// The gradients the last backward left for each parameter, in `params` order.
fn param_grads(layer: &mut dyn Layer) -> Vec<Vec<f32>> {
    layer
        .params()
        .iter()
        .map(|p| p.grad.iter().copied().collect())
        .collect()
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
    let analytic = param_grads(layer);
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

/// An independent statement of a layer's forward pass in f64: `(x, params) → y`, all
/// row-major, `params` in the order `Layer::params` lists them. Written from the
/// formula, with plain loops, sharing no code with the layer.
pub type Reference<'a> = dyn Fn(&[f64], &[Vec<f64>], Shape) -> Vec<f64> + 'a;

/// (rows, columns) of a layer's input.
pub type Shape = (usize, usize);

/// The step of the f64 central differences: small enough that a kink 1e-4 away from an
/// input is not crossed, large enough that rounding (1e-16 / 1e-6) stays far below the
/// bound.
const F64_STEP: f64 = 1e-6;

/// The bound for the f64 check: what is left is the f32 layer's own rounding, about 1e-7
/// relative (every layer's check passes at 1e-6, with and without AVX-512).
const F64_TOLERANCE: f64 = 1e-5;

/// Checks `layer` at `x` against its f64 [`Reference`]: the forward outputs agree, and the
/// input and parameter gradients backward gives agree with f64 central differences of
/// the reference, all projected onto a random upstream gradient R (L = Σ y ⊙ R).
pub fn check_against_reference(
    layer: &mut dyn Layer,
    x: &Array2<f32>,
    reference: &Reference<'_>,
    rng: &mut StdRng,
) {
    let shape = x.dim();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let params: Vec<Vec<f64>> = layer
        .params()
        .iter()
        .map(|p| p.param.iter().map(|&v| v as f64).collect())
        .collect();

    let y = layer.forward(x, Mode::Train);
    let y64 = reference(&x64, &params, shape);
    assert_eq!(
        y.len(),
        y64.len(),
        "the reference's output has another size"
    );
    let y32: Vec<f32> = y.iter().copied().collect();
    let forward_err = relative_error(&y32, &y64);
    assert!(
        forward_err < F64_TOLERANCE,
        "forward differs from the f64 reference: relative error {forward_err:.2e}"
    );

    let r: Vec<f64> = random_matrix(y.dim(), rng)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let r32 = Array2::from_shape_vec(y.dim(), r.iter().map(|&v| v as f32).collect())
        .expect("R has y's shape");
    let loss = |x: &[f64], params: &[Vec<f64>]| -> f64 {
        reference(x, params, shape)
            .iter()
            .zip(&r)
            .map(|(a, b)| a * b)
            .sum()
    };
    let central = |mut values: Vec<f64>, at: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
        (0..values.len())
            .map(|i| {
                let v = values[i];
                values[i] = v + F64_STEP;
                let plus = at(&values);
                values[i] = v - F64_STEP;
                let minus = at(&values);
                values[i] = v;
                (plus - minus) / (2.0 * F64_STEP)
            })
            .collect()
    };

    let dx = layer.backward(x, &r32, true).expect("dx requested");
    let numeric = central(x64.clone(), &|x| loss(x, &params));
    let err = relative_error(dx.as_slice().expect("standard layout"), &numeric);
    assert!(
        err < F64_TOLERANCE,
        "input gradient against f64 differences: relative error {err:.2e}"
    );
    let analytic = param_grads(layer);
    for (p, analytic) in analytic.iter().enumerate() {
        let numeric = central(params[p].clone(), &|values| {
            let mut nudged = params.clone();
            nudged[p] = values.to_vec();
            loss(&x64, &nudged)
        });
        let err = relative_error(analytic, &numeric);
        assert!(
            err < F64_TOLERANCE,
            "parameter {p} gradient against f64 differences: relative error {err:.2e}"
        );
    }
}

/// [`check_against_reference`] at a random N(0, 1) input of `shape`.
pub fn check_against_reference_random(
    layer: &mut dyn Layer,
    shape: Shape,
    reference: &Reference<'_>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = random_matrix(shape, &mut rng);
    check_against_reference(layer, &x, reference, &mut rng);
}
