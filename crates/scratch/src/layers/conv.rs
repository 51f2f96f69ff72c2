//! Convolution through im2col + GEMM (the course's A6).
//!
//! Forward: `cols = im2col(x)`, `y = cols · W + b`, where W is (size·size·C, K): filter k
//! is column k, its values in (row, column, channel) order. Because images are
//! channels-last, y (n·positions, K) already is the output batch (n, OH·OW·K).
//! Backward: `dW = colsᵀ · dy`, `db = Σ dy`, `dx = col2im(dy · Wᵀ)`.

use ndarray::{Array2, Axis};

use crate::kernels::gemm::gemm;

use super::im2col::{Window, col2im, im2col};
use super::{Layer, Mode, ParamGrad, column_sums};

pub struct Conv {
    pub window: Window,
    /// (size·size·C, K)
    pub w: Array2<f32>,
    /// (1, K)
    pub b: Array2<f32>,
    pub dw: Array2<f32>,
    pub db: Array2<f32>,
    /// im2col of the last forward's input, kept for dW (reused between batches).
    cols: Array2<f32>,
}

impl Conv {
    pub fn new(window: Window, w: Array2<f32>, b: Array2<f32>) -> Self {
        assert_eq!(w.nrows(), window.patch_len(), "W must be (size·size·C, K)");
        assert_eq!(b.dim(), (1, w.ncols()), "bias must be (1, K)");
        Self {
            window,
            dw: Array2::zeros(w.raw_dim()),
            db: Array2::zeros(b.raw_dim()),
            w,
            b,
            cols: Array2::zeros((0, 0)),
        }
    }

    pub fn filters(&self) -> usize {
        self.w.ncols()
    }
}

impl Layer for Conv {
    fn forward(&mut self, x: &Array2<f32>, _mode: Mode) -> Array2<f32> {
        let n = x.nrows();
        im2col(&self.window, x, &mut self.cols);
        let k = self.filters();
        let mut y = self
            .b
            .broadcast((self.cols.nrows(), k))
            .expect("bias is (1, K)")
            .to_owned();
        gemm(1.0, &self.cols, &self.w, 1.0, &mut y);
        y.into_shape_with_order((n, self.window.positions() * k))
            .expect("contiguous (n·positions, K)")
    }

    fn backward(
        &mut self,
        x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        let n = x.nrows();
        let k = self.filters();
        let dy = dout
            .view()
            .into_shape_with_order((n * self.window.positions(), k))
            .expect("dout is (n, positions·K)");
        gemm(1.0, &self.cols.t(), &dy, 0.0, &mut self.dw);
        self.db.assign(&column_sums(dy.view()).insert_axis(Axis(0)));
        need_dx.then(|| {
            // The column buffer is no longer needed: reuse its memory for dcols.
            let mut dcols = std::mem::replace(&mut self.cols, Array2::zeros((0, 0)));
            gemm(1.0, &dy, &self.w.t(), 0.0, &mut dcols);
            let dx = col2im(&self.window, &dcols, n);
            self.cols = dcols;
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
        Shape, check_against_reference_random, check_input_grad, check_param_grads, random_matrix,
    };
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn conv(
        input: (usize, usize, usize),
        k: usize,
        size: usize,
        stride: usize,
        pad: usize,
    ) -> Conv {
        let window = Window::new(input, size, stride, pad).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let w = random_matrix((window.patch_len(), k), &mut rng) * 0.5;
        let b = random_matrix((1, k), &mut rng) * 0.1;
        Conv::new(window, w, b)
    }

    /// The convolution straight from its definition, in f64: y[n, oy, ox, k] = b[k] +
    /// Σ over window (ry, rx) and channel c of x[n, oy·s + ry − pad, ox·s + rx − pad, c] ·
    /// W[(ry·size + rx)·C + c, k], zero outside the image; channels-last throughout.
    fn reference(w: Window) -> impl Fn(&[f64], &[Vec<f64>], Shape) -> Vec<f64> {
        move |x, params, (n, _)| {
            let (weights, bias) = (&params[0], &params[1]);
            let k = bias.len();
            let (h, wd, c) = (w.in_height, w.in_width, w.channels);
            let mut y = Vec::with_capacity(n * w.out_height * w.out_width * k);
            for image in x.chunks(h * wd * c) {
                for oy in 0..w.out_height {
                    for ox in 0..w.out_width {
                        for f in 0..k {
                            let mut sum = bias[f];
                            for ry in 0..w.size {
                                for rx in 0..w.size {
                                    let iy = (oy * w.stride + ry) as isize - w.pad as isize;
                                    let ix = (ox * w.stride + rx) as isize - w.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    for ch in 0..c {
                                        let v = image[(iy as usize * wd + ix as usize) * c + ch];
                                        sum += v * weights[((ry * w.size + rx) * c + ch) * k + f];
                                    }
                                }
                            }
                            y.push(sum);
                        }
                    }
                }
            }
            y
        }
    }

    /// The lecture's example (002): a 4×4 vertical-stripe filter gives 8 on a
    /// vertical-stripe image and 0 on a horizontal one.
    #[test]
    fn stripe_filter_from_the_lecture() {
        let stripe = |vertical: bool| {
            Array2::from_shape_fn((1, 16), |(_, i)| {
                let (r, c) = (i / 4, i % 4);
                let on = if vertical {
                    c == 1 || c == 2
                } else {
                    r == 1 || r == 2
                };
                on as i32 as f32
            })
        };
        let filter = Array2::from_shape_fn((16, 1), |(i, _)| {
            let c = i % 4;
            if c == 1 || c == 2 { 1.0 } else { -1.0 }
        });
        let mut layer = Conv::new(
            Window::new((4, 4, 1), 4, 1, 0).unwrap(),
            filter,
            Array2::zeros((1, 1)),
        );
        assert_eq!(layer.forward(&stripe(true), Mode::Eval)[[0, 0]], 8.0);
        assert_eq!(layer.forward(&stripe(false), Mode::Eval)[[0, 0]], 0.0);
    }

    #[test]
    fn gradients_match_numerical_differentiation() {
        // Plain, padded with stride 2 over several channels, and a 1×1 convolution.
        for (input, k, size, stride, pad) in [
            ((5, 5, 1), 2, 3, 1, 0),
            ((6, 5, 3), 4, 3, 2, 1),
            ((4, 4, 2), 3, 1, 1, 0),
        ] {
            let features = input.0 * input.1 * input.2;
            let mut layer = conv(input, k, size, stride, pad);
            check_input_grad(&mut layer, (3, features), 1);
            check_param_grads(&mut layer, (3, features), 2);
            let window = layer.window;
            check_against_reference_random(&mut layer, (3, features), &reference(window), 3);
        }
    }

    #[test]
    fn output_is_channels_last() {
        // Two 1×1 filters: output pixel p holds (filter 0, filter 1) at columns 2p, 2p+1.
        let mut layer = Conv::new(
            Window::new((2, 2, 1), 1, 1, 0).unwrap(),
            ndarray::array![[1.0f32, -1.0]],
            ndarray::array![[0.0f32, 10.0]],
        );
        let y = layer.forward(&ndarray::array![[1.0f32, 2.0, 3.0, 4.0]], Mode::Eval);
        assert_eq!(
            y,
            ndarray::array![[1.0f32, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0]]
        );
    }
}
