//! y = x·W + b.

use ndarray::{Array2, Axis};

use crate::kernels::gemm::gemm;

use super::{Layer, Mode, ParamGrad, column_sums};

pub struct Affine {
    /// (in, out)
    pub w: Array2<f32>,
    /// (1, out)
    pub b: Array2<f32>,
    pub dw: Array2<f32>,
    pub db: Array2<f32>,
}

impl Affine {
    pub fn new(w: Array2<f32>, b: Array2<f32>) -> Self {
        assert_eq!(b.dim(), (1, w.ncols()), "bias must be (1, out)");
        Self {
            dw: Array2::zeros(w.raw_dim()),
            db: Array2::zeros(b.raw_dim()),
            w,
            b,
        }
    }

    pub fn inputs(&self) -> usize {
        self.w.nrows()
    }

    pub fn outputs(&self) -> usize {
        self.w.ncols()
    }
}

impl Layer for Affine {
    fn forward(&mut self, x: &Array2<f32>, _mode: Mode) -> Array2<f32> {
        // out starts as the broadcast bias; the GEMM adds x·W onto it.
        let mut out = self
            .b
            .broadcast((x.nrows(), self.w.ncols()))
            .expect("bias is (1, out)")
            .to_owned();
        gemm(1.0, x, &self.w, 1.0, &mut out);
        out
    }

    fn backward(
        &mut self,
        x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        // dW = xᵀ·dout (in, out); db = Σ_batch dout; dx = dout·Wᵀ (batch, in).
        gemm(1.0, &x.t(), dout, 0.0, &mut self.dw);
        self.db
            .assign(&column_sums(dout.view()).insert_axis(Axis(0)));
        need_dx.then(|| {
            let mut dx = Array2::zeros(x.raw_dim());
            gemm(1.0, dout, &self.w.t(), 0.0, &mut dx);
            dx
        })
    }

    fn params(&mut self) -> Vec<ParamGrad<'_>> {
        vec![
            ParamGrad {
                param: &mut self.w,
                grad: &mut self.dw,
                is_weight: true,
            },
            ParamGrad {
                param: &mut self.b,
                grad: &mut self.db,
                is_weight: false,
            },
        ]
    }

    fn tensors(&self) -> Vec<(&'static str, &Array2<f32>)> {
        vec![("W", &self.w), ("b", &self.b)]
    }

    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Array2<f32>)> {
        vec![("W", &mut self.w), ("b", &mut self.b)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{
        Shape, check_against_reference_random, check_input_grad, check_param_grads,
    };
    use ndarray::array;

    /// y = x·W + b in f64; params (W (in, out), b (1, out)).
    fn reference(x: &[f64], params: &[Vec<f64>], (n, d): Shape) -> Vec<f64> {
        let (w, b) = (&params[0], &params[1]);
        let m = b.len();
        let mut y = vec![0.0; n * m];
        for i in 0..n {
            for j in 0..m {
                y[i * m + j] = b[j] + (0..d).map(|k| x[i * d + k] * w[k * m + j]).sum::<f64>();
            }
        }
        y
    }

    #[test]
    fn forward_matches_the_worked_example() {
        // Workshop 001: W·x + b with W = [[.1,.2],[.3,.4],[.5,.6]] (3×2), x = [1, .5].
        let w = array![[0.1f32, 0.3, 0.5], [0.2, 0.4, 0.6]];
        let mut layer = Affine::new(w, array![[0.1f32, 0.2, 0.3]]);
        let y = layer.forward(&array![[1.0f32, 0.5]], Mode::Train);
        for (a, b) in y.iter().zip([0.3f32, 0.7, 1.1]) {
            assert!((a - b).abs() < 1e-6, "{y}");
        }
    }

    #[test]
    fn gradients_match_numerical_differentiation() {
        let mut layer = crate::init::affine(4, 3, crate::init::Init::Std(0.5), 1);
        layer.b = array![[0.1f32, -0.2, 0.3]];
        check_input_grad(&mut layer, (5, 4), 2);
        check_param_grads(&mut layer, (5, 4), 3);
        check_against_reference_random(&mut layer, (5, 4), &reference, 4);
    }
}
