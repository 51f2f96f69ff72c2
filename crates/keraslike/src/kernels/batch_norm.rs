//! BatchNorm in training mode on NCHW slices (any number of trailing dimensions, one for
//! a Dense layer's output): per-channel statistics and the normalisation, forward and
//! backward, in two passes over the values each way.
//!
//! burn's generic `batch_norm_train` (which flex keeps) builds it from tensor ops: a
//! channel-major copy of x and of (x − mean)² for the statistics, then some fifteen
//! element-wise passes forward and backward. Sums here accumulate in f64.

use rayon::prelude::*;

/// [batch, channels, values per channel and sample] of an NC… tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dims {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl Dims {
    fn per_channel(&self) -> usize {
        self.batch * self.plane
    }

    /// The planes (batch × channel, each `plane` values) of channel `c`.
    fn planes(self, values: &[f32], c: usize) -> impl Iterator<Item = &[f32]> {
        (0..self.batch).map(move |n| {
            let start = (n * self.channels + c) * self.plane;
            &values[start..start + self.plane]
        })
    }
}

/// What the forward pass hands to the backward pass and to the running statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    pub mean: Vec<f32>,
    /// The biased variance (divided by batch · plane), as burn's running statistics take.
    pub variance: Vec<f32>,
}

/// y = (x − mean) / √(variance + ε) · γ + β with each channel's batch mean and variance.
pub fn forward(
    dims: Dims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Statistics) {
    let count = dims.per_channel() as f64;
    let (mean, variance): (Vec<f32>, Vec<f32>) = (0..dims.channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = dims
                .planes(x, c)
                .map(|p| p.iter().map(|&v| v as f64).sum::<f64>())
                .sum();
            let mean = sum / count;
            let squares: f64 = dims
                .planes(x, c)
                .map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>())
                .sum();
            (mean as f32, (squares / count) as f32)
        })
        .unzip();
    let (scale, shift) = affine(&mean, &variance, gamma, beta, epsilon);
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(dims.plane.max(1))
        .zip(x.par_chunks(dims.plane.max(1)))
        .enumerate()
        .for_each(|(p, (y, x))| {
            let (a, b) = (scale[p % dims.channels], shift[p % dims.channels]);
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = x * a + b);
        });
    (y, Statistics { mean, variance })
}

/// Per channel, y = x·a + b with a = γ / √(variance + ε) and b = β − mean·a.
fn affine(
    mean: &[f32],
    variance: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    (0..mean.len())
        .map(|c| {
            let inv_std = 1.0 / (variance[c] as f64 + epsilon).sqrt();
            let a = gamma[c] as f64 * inv_std;
            (a as f32, (beta[c] as f64 - mean[c] as f64 * a) as f32)
        })
        .unzip()
}

/// The gradients (dx, dγ, dβ) from dy, with x̂ = (x − mean) / σ:
/// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/σ · (dy − dβ/M − x̂·dγ/M), M = batch · plane.
pub fn backward(
    dims: Dims,
    x: &[f32],
    gamma: &[f32],
    stats: &Statistics,
    epsilon: f64,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let inv_std: Vec<f64> = stats
        .variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let (d_gamma, d_beta): (Vec<f32>, Vec<f32>) = (0..dims.channels)
        .into_par_iter()
        .map(|c| {
            let mean = stats.mean[c];
            let (mut sum_dy, mut sum_dy_centred) = (0.0f64, 0.0f64);
            for (x, dy) in dims.planes(x, c).zip(dims.planes(dy, c)) {
                let (mut a, mut b) = (0.0f32, 0.0f32);
                for (&x, &dy) in x.iter().zip(dy) {
                    a += dy;
                    b += dy * (x - mean);
                }
                sum_dy += a as f64;
                sum_dy_centred += b as f64;
            }
            ((sum_dy_centred * inv_std[c]) as f32, sum_dy as f32)
        })
        .unzip();
    // dx = k·dy − k·dβ/M − (x − mean)·k·σ⁻¹·dγ/M with k = γ/σ: per channel, dy·k + x·u + v.
    let count = dims.per_channel() as f64;
    let coefficients: Vec<(f32, f32, f32)> = (0..dims.channels)
        .map(|c| {
            let k = gamma[c] as f64 * inv_std[c];
            let u = -k * inv_std[c] * d_gamma[c] as f64 / count;
            let v = -k * d_beta[c] as f64 / count - u * stats.mean[c] as f64;
            (k as f32, u as f32, v as f32)
        })
        .collect();
    let mut dx = vec![0.0f32; x.len()];
    let plane = dims.plane.max(1);
    dx.par_chunks_mut(plane)
        .zip(x.par_chunks(plane).zip(dy.par_chunks(plane)))
        .enumerate()
        .for_each(|(p, (dx, (x, dy)))| {
            let (k, u, v) = coefficients[p % dims.channels];
            for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                *dx = dy * k + x * u + v;
            }
        });
    (dx, d_gamma, d_beta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // A small LCG: reproducible values in about [-2, 3).
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 5.0 - 2.0
            })
            .collect()
    }

    /// Σ y·r for the numerical gradient, in f64 from the forward pass.
    fn loss(dims: Dims, x: &[f32], gamma: &[f32], beta: &[f32], r: &[f32]) -> f64 {
        let (y, _) = forward(dims, x, gamma, beta, 1e-5);
        y.iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum()
    }

    #[test]
    fn normalises_each_channel_over_batch_and_plane() {
        let dims = Dims {
            batch: 3,
            channels: 2,
            plane: 5,
        };
        let x = values(30, 1);
        let (y, stats) = forward(dims, &x, &[1.0, 1.0], &[0.0, 0.0], 1e-5);
        for c in 0..2 {
            let of_c: Vec<f64> = dims.planes(&x, c).flatten().map(|&v| v as f64).collect();
            let mean = of_c.iter().sum::<f64>() / 15.0;
            let var = of_c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 15.0;
            assert!((stats.mean[c] as f64 - mean).abs() < 1e-6);
            assert!((stats.variance[c] as f64 - var).abs() < 1e-6);
            let ys: Vec<f32> = dims.planes(&y, c).flatten().copied().collect();
            let y_mean = ys.iter().map(|&v| v as f64).sum::<f64>() / 15.0;
            let y_var = ys.iter().map(|&v| (v as f64 - y_mean).powi(2)).sum::<f64>() / 15.0;
            assert!(y_mean.abs() < 1e-6 && (y_var - var / (var + 1e-5)).abs() < 1e-5);
        }
    }

    #[test]
    fn gradients_match_numerical_differentiation() {
        for dims in [
            Dims {
                batch: 4,
                channels: 3,
                plane: 6,
            },
            // A Dense layer's output: one value per channel and sample.
            Dims {
                batch: 5,
                channels: 2,
                plane: 1,
            },
        ] {
            let n = dims.batch * dims.channels * dims.plane;
            let (x, r) = (values(n, 2), values(n, 3));
            let gamma: Vec<f32> = values(dims.channels, 4).iter().map(|g| g + 2.5).collect();
            let beta = values(dims.channels, 5);
            let (_, stats) = forward(dims, &x, &gamma, &beta, 1e-5);
            let (dx, d_gamma, d_beta) = backward(dims, &x, &gamma, &stats, 1e-5, &r);
            let eps = 1e-2f32;
            let numeric = |v: &[f32], i: usize, at: &dyn Fn(&[f32]) -> f64| {
                let (mut plus, mut minus) = (v.to_vec(), v.to_vec());
                plus[i] += eps;
                minus[i] -= eps;
                (at(&plus) - at(&minus)) / (2.0 * eps as f64)
            };
            for (i, &d) in dx.iter().enumerate() {
                let g = numeric(&x, i, &|x| loss(dims, x, &gamma, &beta, &r));
                assert!((d as f64 - g).abs() < 2e-3, "dx[{i}] {d} vs {g}");
            }
            for c in 0..dims.channels {
                let g = numeric(&gamma, c, &|gm| loss(dims, &x, gm, &beta, &r));
                assert!((d_gamma[c] as f64 - g).abs() < 2e-3, "dγ[{c}]");
                let g = numeric(&beta, c, &|b| loss(dims, &x, &gamma, b, &r));
                assert!((d_beta[c] as f64 - g).abs() < 2e-3, "dβ[{c}]");
            }
        }
    }
}
