//! Batch normalisation (the course's A3).
//!
//! Training: each channel is normalised with the batch's mean and variance,
//! x̂ = (x − μ) / √(σ² + ε), then y = γ x̂ + β with learned γ (init 1) and β (init 0);
//! running averages E[x] ← m E[x] + (1 − m) μ (likewise Var[x]) are kept for test time,
//! where x̂ = (x − E[x]) / √(Var[x] + ε).
//!
//! A channel is one column after an affine layer, and one filter's output over every
//! pixel after a convolution (channels-last rows reshape to (n·pixels, C) for free), as
//! Keras' `BatchNormalization` does.

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};

use super::{Layer, Mode, ParamGrad, column_means, column_sums};

pub struct BatchNorm {
    pub channels: usize,
    /// m in the running averages.
    pub momentum: f32,
    pub eps: f32,
    /// (1, C) each.
    pub gamma: Array2<f32>,
    pub beta: Array2<f32>,
    pub dgamma: Array2<f32>,
    pub dbeta: Array2<f32>,
    pub running_mean: Array2<f32>,
    pub running_var: Array2<f32>,
    /// Cached by a training forward for backward: x̂ as (rows, C) and 1/√(σ² + ε).
    x_hat: Array2<f32>,
    inv_std: Array1<f32>,
}

impl BatchNorm {
    pub fn new(channels: usize, momentum: f32, eps: f32) -> Self {
        let ones = Array2::ones((1, channels));
        let zeros = Array2::zeros((1, channels));
        Self {
            channels,
            momentum,
            eps,
            gamma: ones.clone(),
            beta: zeros.clone(),
            dgamma: zeros.clone(),
            dbeta: zeros.clone(),
            running_mean: zeros,
            running_var: ones,
            x_hat: Array2::zeros((0, 0)),
            inv_std: Array1::zeros(0),
        }
    }

    /// `x` (n, pixels·C) viewed as (n·pixels, C).
    fn by_channel<'a>(&self, x: &'a Array2<f32>) -> ArrayView2<'a, f32> {
        x.view()
            .into_shape_with_order((x.len() / self.channels, self.channels))
            .expect("features are a whole number of channels")
    }
}

impl Layer for BatchNorm {
    fn forward(&mut self, x: &Array2<f32>, mode: Mode) -> Array2<f32> {
        let v = self.by_channel(x);
        let (mean, var) = match mode {
            Mode::Train => {
                let mean = column_means(v.view());
                // Σ (x − μ)² per channel, accumulated row by row without temporaries.
                let mut var = Array1::<f32>::zeros(self.channels);
                for row in v.rows() {
                    Zip::from(&mut var)
                        .and(&row)
                        .and(&mean)
                        .for_each(|s, &x, &m| *s += (x - m) * (x - m));
                }
                var /= v.nrows() as f32;
                let m = self.momentum;
                Zip::from(self.running_mean.row_mut(0))
                    .and(&mean)
                    .for_each(|r, &b| *r = m * *r + (1.0 - m) * b);
                Zip::from(self.running_var.row_mut(0))
                    .and(&var)
                    .for_each(|r, &b| *r = m * *r + (1.0 - m) * b);
                (mean, var)
            }
            Mode::Eval => (
                self.running_mean.row(0).to_owned(),
                self.running_var.row(0).to_owned(),
            ),
        };
        let inv_std = var.mapv(|s| 1.0 / (s + self.eps).sqrt());
        let mut x_hat = Array2::zeros(v.raw_dim());
        let mut y = Array2::zeros(v.raw_dim());
        let gamma = self.gamma.as_slice().expect("contiguous");
        let beta = self.beta.as_slice().expect("contiguous");
        let (mean, inv_std_s) = (
            mean.as_slice().expect("contiguous"),
            inv_std.as_slice().expect("contiguous"),
        );
        Zip::from(x_hat.rows_mut())
            .and(y.rows_mut())
            .and(v.rows())
            .for_each(|mut xh, mut y, x| {
                let xh = xh.as_slice_mut().expect("row-major");
                let y = y.as_slice_mut().expect("row-major");
                let x = x.as_slice().expect("row-major");
                for c in 0..xh.len() {
                    xh[c] = (x[c] - mean[c]) * inv_std_s[c];
                    y[c] = gamma[c] * xh[c] + beta[c];
                }
            });
        if mode == Mode::Train {
            self.x_hat = x_hat;
            self.inv_std = inv_std;
        }
        y.into_shape_with_order(x.raw_dim())
            .expect("same number of values")
    }

    fn backward(
        &mut self,
        x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        let dy = self.by_channel(dout);
        let dy_x_hat = &dy * &self.x_hat;
        self.dbeta
            .assign(&column_sums(dy.view()).insert_axis(Axis(0)));
        self.dgamma
            .assign(&column_sums(dy_x_hat.view()).insert_axis(Axis(0)));
        need_dx.then(|| {
            // With g = γ·dy: dx = (g − mean(g) − x̂·mean(g ⊙ x̂)) / √(σ² + ε), the course's
            // chain through μ and σ² written out in closed form. mean(g ⊙ x̂) is
            // γ·mean(dy ⊙ x̂): the product already computed for dγ.
            let g = &dy * &self.gamma;
            let mean_g = column_means(g.view());
            let mean_gx = column_means(dy_x_hat.view()) * self.gamma.row(0);
            let dx = (g - &mean_g - &self.x_hat * &mean_gx) * &self.inv_std;
            dx.into_shape_with_order(x.raw_dim())
                .expect("same number of values")
        })
    }

    fn params(&mut self) -> Vec<ParamGrad<'_>> {
        vec![
            ParamGrad {
                param: &mut self.gamma,
                grad: &mut self.dgamma,
                is_weight: false,
            },
            ParamGrad {
                param: &mut self.beta,
                grad: &mut self.dbeta,
                is_weight: false,
            },
        ]
    }

    fn tensors(&self) -> Vec<(&'static str, &Array2<f32>)> {
        vec![
            ("gamma", &self.gamma),
            ("beta", &self.beta),
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
        ]
    }

    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Array2<f32>)> {
        vec![
            ("gamma", &mut self.gamma),
            ("beta", &mut self.beta),
            ("running_mean", &mut self.running_mean),
            ("running_var", &mut self.running_var),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{
        Shape, check_against_reference_random, check_input_grad, check_param_grads,
    };
    use ndarray::array;

    #[test]
    fn training_output_has_zero_mean_unit_variance_per_channel() {
        let mut bn = BatchNorm::new(2, 0.9, 1e-5);
        let x = array![[1.0f32, 10.0], [3.0, 20.0], [5.0, 60.0]];
        let y = bn.forward(&x, Mode::Train);
        for col in y.columns() {
            assert!(col.mean().unwrap().abs() < 1e-5);
            assert!((col.mapv(|v| v * v).mean().unwrap() - 1.0).abs() < 1e-3);
        }
        // Running averages moved 10% of the way from (0, 1) to the batch's statistics.
        assert!((bn.running_mean[[0, 0]] - 0.3).abs() < 1e-6);
        assert!((bn.running_var[[0, 0]] - (0.9 + 0.1 * 8.0 / 3.0)).abs() < 1e-5);
    }

    #[test]
    fn test_mode_uses_the_running_statistics() {
        let mut bn = BatchNorm::new(1, 0.9, 0.0);
        bn.running_mean = array![[2.0f32]];
        bn.running_var = array![[4.0f32]];
        bn.gamma = array![[3.0f32]];
        bn.beta = array![[1.0f32]];
        assert_eq!(bn.forward(&array![[6.0f32]], Mode::Eval), array![[7.0f32]]);
    }

    #[test]
    fn gradients_match_numerical_differentiation() {
        // Per column after an affine layer, and per channel of a 2×2×3 image.
        for (channels, features) in [(5, 5), (3, 12)] {
            let mut bn = BatchNorm::new(channels, 0.9, 1e-5);
            bn.gamma = Array2::from_shape_fn((1, channels), |(_, j)| 0.5 + j as f32 * 0.3);
            bn.beta = Array2::from_shape_fn((1, channels), |(_, j)| j as f32 * 0.1);
            check_input_grad(&mut bn, (6, features), 4);
            check_param_grads(&mut bn, (6, features), 5);
            check_against_reference_random(&mut bn, (6, features), &reference(channels, 1e-5), 6);
        }
    }

    /// Training-mode batch normalisation in f64 from the formula: per channel, x̂ = (x − μ)
    /// / √(σ² + ε) with the batch's mean μ and biased variance σ², then y = γ·x̂ + β.
    fn reference(channels: usize, eps: f64) -> impl Fn(&[f64], &[Vec<f64>], Shape) -> Vec<f64> {
        move |x, params, _| {
            let (gamma, beta) = (&params[0], &params[1]);
            let rows = x.len() / channels;
            let mut y = vec![0.0; x.len()];
            for ch in 0..channels {
                let values = || (0..rows).map(|r| x[r * channels + ch]);
                let mean = values().sum::<f64>() / rows as f64;
                let var = values().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
                for r in 0..rows {
                    let i = r * channels + ch;
                    y[i] = gamma[ch] * (x[i] - mean) / (var + eps).sqrt() + beta[ch];
                }
            }
            y
        }
    }
}
