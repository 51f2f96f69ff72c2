//! Softmax followed by cross-entropy, as one layer: its backward is simply (y - t) / batch.

use ndarray::Array2;

/// The course's guard inside log(): cross-entropy of probabilities never takes log(0).
pub const LOG_EPSILON: f32 = 1e-7;

/// Row-wise softmax; subtracting each row's max keeps exp() finite for any input.
pub fn softmax_rows(x: &Array2<f32>) -> Array2<f32> {
    let mut y = x.as_standard_layout().into_owned();
    softmax_in_place(&mut y);
    y
}

/// Replaces each row of logits by its softmax; returns each row's max and Σ e^(x - max)
/// (≥ 1, since the max's own term is 1), from which log-softmax follows. The exps run
/// over the whole matrix at once: a call of libm's expf per entry was most of a small
/// network's loss time.
fn softmax_in_place(y: &mut Array2<f32>) -> Vec<(f32, f32)> {
    let classes = y.ncols().max(1);
    let entries = y.as_slice_mut().expect("standard layout");
    let mut stats: Vec<(f32, f32)> = entries
        .chunks_exact_mut(classes)
        .map(|row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            row.iter_mut().for_each(|v| *v -= max);
            (max, 0.0)
        })
        .collect();
    exp_in_place(entries);
    for (row, (_, sum)) in entries.chunks_exact_mut(classes).zip(&mut stats) {
        *sum = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= *sum);
    }
    stats
}

/// e^v for every v ≤ 0 (softmax's shifted logits), within 2 ulp of the exact value; the
/// loop has no calls or branches, so it compiles to vector code. Cephes' expf: e^v =
/// 2^n · e^r with n = round(v / ln 2) and |r| ≤ ln 2 / 2, e^r by a degree-7 polynomial.
fn exp_in_place(values: &mut [f32]) {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];
    for v in values {
        // Below ln(2^-126) the result is 0 (no subnormals).
        let x = v.max(-87.0);
        let shifted = x * std::f32::consts::LOG2_E + ROUND;
        let n = shifted - ROUND;
        let r = x - n * LN2_HI - n * LN2_LO;
        let p = P.iter().fold(0.0, |acc, &c| acc * r + c);
        let er = p * r * r + r + 1.0;
        // 2^n from n's bits: the low bits of `shifted` hold n (two's complement).
        let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
        let scale = f32::from_bits(((n_bits + 127) as u32) << 23);
        // NaN stays NaN, so a diverged network's loss is not hidden.
        *v = if *v < -87.0 {
            0.0
        } else if v.is_nan() {
            *v
        } else {
            er * scale
        };
    }
}

/// Mean cross-entropy of probabilities `y` (batch, classes) for integer labels.
pub fn cross_entropy(y: &Array2<f32>, labels: &[u8]) -> f32 {
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &t)| -((y[[i, t as usize]] + LOG_EPSILON) as f64).ln())
        .sum();
    (total / labels.len() as f64) as f32
}

#[derive(Default)]
pub struct SoftmaxWithLoss {
    /// Softmax output of the last forward, (batch, classes).
    y: Array2<f32>,
    labels: Vec<u8>,
}

impl SoftmaxWithLoss {
    /// Mean loss over the batch. Computed from log-softmax (x - max - log Σ e^(x - max)), so
    /// it is exact and finite even where a probability rounds to 0.
    pub fn forward(&mut self, logits: &Array2<f32>, labels: &[u8]) -> f32 {
        assert_eq!(logits.nrows(), labels.len(), "one label per row");
        // One pass of exp per row gives both the softmax and log Σ e^(x - max).
        if self.y.dim() == logits.dim() {
            self.y.assign(logits);
        } else {
            self.y = logits.as_standard_layout().into_owned();
        }
        let mut total = 0.0f64;
        for (((max, sum), logits), &t) in softmax_in_place(&mut self.y)
            .into_iter()
            .zip(logits.rows())
            .zip(labels)
        {
            total += (sum as f64).ln() - (logits[t as usize] - max) as f64;
        }
        self.labels.clear();
        self.labels.extend_from_slice(labels);
        (total / labels.len() as f64) as f32
    }

    /// d(mean loss)/d(logits) = (softmax - one_hot) / batch.
    pub fn backward(&self) -> Array2<f32> {
        let batch = self.labels.len() as f32;
        let mut dx = self.y.clone();
        for (i, &t) in self.labels.iter().enumerate() {
            dx[[i, t as usize]] -= 1.0;
        }
        dx.mapv_inplace(|v| v / batch);
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn softmax_of_the_slides_example() {
        // Slides 004: softmax([2.2, 0.4, 0.7]) = [0.72023846, 0.11905462, 0.16070692].
        let y = softmax_rows(&array![[2.2f32, 0.4, 0.7]]);
        for (a, b) in y.iter().zip([0.720_238_46f32, 0.119_054_62, 0.160_706_92]) {
            assert!((a - b).abs() < 1e-6, "{y}");
        }
    }

    #[test]
    fn vector_exp_is_within_two_ulp() {
        let xs: Vec<f32> = (0..=870_000).map(|i| -(i as f32) * 1e-4).collect();
        let mut ys = xs.clone();
        exp_in_place(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let exact = (x as f64).exp();
            let ulp = (exact as f32).to_bits().abs_diff(y.to_bits());
            assert!(ulp <= 2, "exp({x}) = {y}, exact {exact}");
        }
        let mut edge = [0.0f32, -87.5, -1000.0, f32::NEG_INFINITY, f32::NAN];
        exp_in_place(&mut edge);
        assert_eq!(edge[..4], [1.0, 0.0, 0.0, 0.0]);
        assert!(edge[4].is_nan());
    }

    #[test]
    fn softmax_and_loss_stay_finite_for_huge_logits() {
        let x = array![[1000.0f32, 0.0, -1000.0], [f32::MAX / 2.0, 1.0, 2.0]];
        let y = softmax_rows(&x);
        assert!(y.iter().all(|v| v.is_finite()));
        assert!((y[[0, 0]] - 1.0).abs() < 1e-6);
        let mut loss = SoftmaxWithLoss::default();
        // Label 2 has probability ~e^-2000: the exact loss is 2000, not infinity.
        let l = loss.forward(&array![[1000.0f32, 0.0, -1000.0]], &[2]);
        assert!((l - 2000.0).abs() < 1e-2, "{l}");
        assert!(loss.backward().iter().all(|v| v.is_finite()));
        // Cross-entropy of probabilities guards log(0) with the course's 1e-7.
        let ce = cross_entropy(&array![[1.0f32, 0.0]], &[1]);
        assert!((ce - (-(1e-7f32).ln())).abs() < 1e-3, "{ce}");
    }

    #[test]
    fn cross_entropy_of_the_lecture_example() {
        // Lecture 000: t = 2, y = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0] → 0.5108.
        let y = array![[0.1f32, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]];
        assert!((cross_entropy(&y, &[2]) - 0.510_825_6).abs() < 1e-5);
    }

    #[test]
    fn gradient_matches_numerical_differentiation() {
        let x = array![
            [0.3f32, -1.2, 2.0, 0.5],
            [1.0, 0.1, -0.4, 0.0],
            [-2.0, 0.7, 0.2, 1.5]
        ];
        let labels = [2u8, 0, 3];
        let mut layer = SoftmaxWithLoss::default();
        layer.forward(&x, &labels);
        let analytic = layer.backward();
        let h = 1e-2f32;
        let mut worst = 0.0f32;
        for i in 0..x.len() {
            let mut xp = x.clone();
            let mut xm = x.clone();
            xp.as_slice_mut().unwrap()[i] += h;
            xm.as_slice_mut().unwrap()[i] -= h;
            let numeric = (layer.forward(&xp, &labels) - layer.forward(&xm, &labels)) / (2.0 * h);
            worst = worst.max((numeric - analytic.as_slice().unwrap()[i]).abs());
        }
        assert!(worst < 1e-3, "max abs error {worst}");
    }

    #[test]
    fn gradient_matches_f64_differences_of_the_formula() {
        // The mean cross-entropy of softmax in f64 from its definition, differentiated by
        // central differences, against the layer's (y − t) / batch.
        let x = array![
            [0.3f32, -1.2, 2.0, 0.5],
            [1.0, 0.1, -0.4, 0.0],
            [-2.0, 0.7, 0.2, 1.5]
        ];
        let labels = [2u8, 0, 3];
        let loss = |x: &[f64]| -> f64 {
            x.chunks(4)
                .zip(&labels)
                .map(|(row, &t)| {
                    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                    let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
                    log_sum - row[t as usize]
                })
                .sum::<f64>()
                / labels.len() as f64
        };
        let mut layer = SoftmaxWithLoss::default();
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        assert!((layer.forward(&x, &labels) as f64 - loss(&x64)).abs() < 1e-6);
        let analytic = layer.backward();
        let step = 1e-6;
        let numeric: Vec<f64> = (0..x64.len())
            .map(|i| {
                let (mut plus, mut minus) = (x64.clone(), x64.clone());
                plus[i] += step;
                minus[i] -= step;
                (loss(&plus) - loss(&minus)) / (2.0 * step)
            })
            .collect();
        let err = crate::gradcheck::relative_error(analytic.as_slice().unwrap(), &numeric);
        assert!(err < 1e-5, "relative error {err:.2e}");
    }
}
