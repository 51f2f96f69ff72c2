//! Softmax followed by cross-entropy, as one layer: its backward is simply (y - t) / batch.

use ndarray::{Array2, ArrayViewMut1, Axis};

/// The course's guard inside log(): cross-entropy of probabilities never takes log(0).
pub const LOG_EPSILON: f32 = 1e-7;

/// Row-wise softmax; subtracting each row's max keeps exp() finite for any input.
pub fn softmax_rows(x: &Array2<f32>) -> Array2<f32> {
    let mut y = x.clone();
    for row in y.axis_iter_mut(Axis(0)) {
        softmax_in_place(row);
    }
    y
}

/// Replaces a row of logits by its softmax; returns the row's max and Σ e^(x - max)
/// (≥ 1, since the max's own term is 1), from which log-softmax follows.
fn softmax_in_place(mut row: ArrayViewMut1<f32>) -> (f32, f32) {
    let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    row.mapv_inplace(|v| (v - max).exp());
    let sum = row.sum();
    row.mapv_inplace(|v| v / sum);
    (max, sum)
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
        self.y = logits.clone();
        let mut total = 0.0f64;
        for ((row, logits), &t) in self.y.axis_iter_mut(Axis(0)).zip(logits.rows()).zip(labels) {
            let (max, sum) = softmax_in_place(row);
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
}
