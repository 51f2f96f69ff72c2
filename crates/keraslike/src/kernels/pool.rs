//! MaxPooling2D (no padding, no dilation) on plain f32 slices in NCHW order, one
//! channel plane per rayon task, remembering where each maximum came from so that the
//! backward pass is a scatter. What `kernels::flex` runs on flex: burn-flex's pooling took
//! ~8 ms forward + backward for the course CNN's pool (batch 32, 64 × 28 × 28), a pass
//! over 6 MB that needs well under a millisecond.

use rayon::prelude::*;

/// The shapes of one MaxPooling2D call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub batch: usize,
    pub channels: usize,
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub output: [usize; 2],
}

impl PoolGeometry {
    /// Batch × channels: the number of planes pooled independently.
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    fn input_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }
}

/// Planes per rayon task: enough work per task to outweigh the hand-off.
const PLANES_PER_TASK: usize = 16;

/// The maxima (planes × OH × OW) and, for each, the index within its input plane of the
/// value it came from (the first one on ties; NaN wins, as it propagates).
pub fn forward(g: &PoolGeometry, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (input_plane, output_plane) = (g.input_plane().max(1), g.output_plane().max(1));
    let mut y = vec![0.0f32; g.planes() * g.output_plane()];
    let mut from = vec![0u32; g.planes() * g.output_plane()];
    y.par_chunks_mut(PLANES_PER_TASK * output_plane)
        .zip(from.par_chunks_mut(PLANES_PER_TASK * output_plane))
        .zip(x.par_chunks(PLANES_PER_TASK * input_plane))
        .for_each(|((y, from), x)| {
            let planes = y
                .chunks_mut(output_plane)
                .zip(from.chunks_mut(output_plane))
                .zip(x.chunks(input_plane));
            for ((y, from), x) in planes {
                // Keras's default 2×2 window, with the window known to the compiler
                // (unrolled, no loop per value).
                if g.kernel == [2, 2] {
                    pool_plane::<2, 2>(g, x, y, from);
                } else {
                    pool_plane::<0, 0>(g, x, y, from);
                }
            }
        });
    (y, from)
}

/// One plane: a `KH`×`KW` window when those are not 0, else `g.kernel`.
fn pool_plane<const KH: usize, const KW: usize>(
    g: &PoolGeometry,
    x: &[f32],
    y: &mut [f32],
    from: &mut [u32],
) {
    let (kh, kw) = if KH > 0 {
        (KH, KW)
    } else {
        (g.kernel[0], g.kernel[1])
    };
    let ([sh, sw], width, ow_n) = (g.stride, g.input[1], g.output[1]);
    for oh in 0..g.output[0] {
        let rows = y[oh * ow_n..][..ow_n]
            .iter_mut()
            .zip(&mut from[oh * ow_n..][..ow_n]);
        for (ow, (y, from)) in rows.enumerate() {
            let first = oh * sh * width + ow * sw;
            let (mut best, mut at) = (x[first], first);
            for i in 0..kh {
                let row = first + i * width;
                for (k, &v) in x[row..row + kw].iter().enumerate() {
                    // Selects, not branches: which of four random values is largest
                    // is a coin toss for a branch predictor.
                    let better = (v > best) | (v.is_nan() & !best.is_nan());
                    best = if better { v } else { best };
                    at = if better { row + k } else { at };
                }
            }
            *y = best;
            *from = at as u32;
        }
    }
}

/// The input gradient: each output gradient added onto the input its maximum came from.
pub fn backward(g: &PoolGeometry, from: &[u32], dy: &[f32]) -> Vec<f32> {
    let (input_plane, output_plane) = (g.input_plane().max(1), g.output_plane().max(1));
    let mut dx = vec![0.0f32; g.planes() * g.input_plane()];
    dx.par_chunks_mut(PLANES_PER_TASK * input_plane)
        .zip(from.par_chunks(PLANES_PER_TASK * output_plane))
        .zip(dy.par_chunks(PLANES_PER_TASK * output_plane))
        .for_each(|((dx, from), dy)| {
            let planes = dx
                .chunks_mut(input_plane)
                .zip(from.chunks(output_plane))
                .zip(dy.chunks(output_plane));
            for ((dx, from), dy) in planes {
                for (&at, &d) in from.iter().zip(dy) {
                    dx[at as usize] += d;
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(input: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> PoolGeometry {
        let out = |a: usize| (input[a] - kernel[a]) / stride[a] + 1;
        PoolGeometry {
            batch: 3,
            channels: 1,
            input,
            kernel,
            stride,
            output: [out(0), out(1)],
        }
    }

    #[test]
    fn pools_the_maximum_and_routes_the_gradient_to_it() {
        // One 4×5 plane, 2×2 windows with stride 2 (the last column is never read).
        let g = PoolGeometry {
            batch: 1,
            ..geometry([4, 5], [2, 2], [2, 2])
        };
        #[rustfmt::skip]
        let x = [
            1.0, 5.0, 2.0, 0.0, 9.0,
            3.0, 4.0, 7.0, 7.0, 9.0,
            0.0, -1.0, 8.0, 6.0, 9.0,
            -2.0, 2.0, 6.0, 8.0, 9.0,
        ];
        let (y, from) = forward(&g, &x);
        assert_eq!(y, [5.0, 7.0, 2.0, 8.0]);
        assert_eq!(from, [1, 7, 16, 12]); // ties: the first 7 and the first 8
        let dx = backward(&g, &from, &[1.0, 2.0, 3.0, 4.0]);
        let mut want = [0.0f32; 20];
        (want[1], want[7], want[16], want[12]) = (1.0, 2.0, 3.0, 4.0);
        assert_eq!(dx, want);
    }

    /// Overlapping windows (3×3, stride 2) sum the gradients of every window a value wins,
    /// and match central differences of L = Σ y·r.
    #[test]
    fn backward_matches_numerical_gradients() {
        let g = geometry([7, 6], [3, 3], [2, 2]);
        // Distinct values, so no window has a tie that a small step could flip.
        let x: Vec<f32> = (0..g.planes() * 42)
            .map(|i| ((i * 37) % 101) as f32 * 0.1)
            .collect();
        let r: Vec<f32> = (0..g.planes() * g.output_plane())
            .map(|i| (i % 5) as f32 - 2.0)
            .collect();
        let loss = |x: &[f32]| -> f64 {
            let y = forward(&g, x).0;
            y.iter().zip(&r).map(|(y, r)| f64::from(y * r)).sum()
        };
        let (_, from) = forward(&g, &x);
        let dx = backward(&g, &from, &r);
        let eps = 1e-2; // neighbouring values differ by at least 0.1
        for i in 0..x.len() {
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus[i] += eps;
            minus[i] -= eps;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * f64::from(eps));
            let analytic = f64::from(dx[i]);
            assert!(
                (analytic - numeric).abs() < 1e-3 * (1.0 + numeric.abs()),
                "entry {i}: {analytic} vs {numeric}"
            );
        }
    }
}
