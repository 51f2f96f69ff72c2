//! y = x·W + b.

use ndarray::{Array2, Axis};

use crate::gemm::gemm;

use super::{Layer, Mode, ParamGrad, column_sums, sparse_input};

pub struct Affine {
    /// (in, out)
    pub w: Array2<f32>,
    /// (1, out)
    pub b: Array2<f32>,
    pub dw: Array2<f32>,
    pub db: Array2<f32>,
    /// The input is raw data that is mostly zeros (a network's first layer on MNIST):
    /// try the kernels that skip zero inputs.
    pub sparse_input: bool,
    /// The last forward pass's input, listed by the sparse kernels (when they ran).
    nonzeros: sparse_input::NonZeros,
    /// The last forward pass took the sparse kernel, so backward does too.
    took_sparse: bool,
    /// A batch given as bytes was too dense for the sparse kernels (CIFAR-10): later
    /// batches come as floats, which the training loop copies on two threads.
    dense_bytes_seen: bool,
}

impl Affine {
    pub fn new(w: Array2<f32>, b: Array2<f32>) -> Self {
        assert_eq!(b.dim(), (1, w.ncols()), "bias must be (1, out)");
        Self {
            dw: Array2::zeros(w.raw_dim()),
            db: Array2::zeros(b.raw_dim()),
            w,
            b,
            sparse_input: false,
            nonzeros: Default::default(),
            took_sparse: false,
            dense_bytes_seen: false,
        }
    }

    /// The same layer, marked as reading mostly-zero raw input (see [`sparse_input`]).
    pub fn with_sparse_input(mut self) -> Self {
        self.sparse_input = true;
        self
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
        self.took_sparse = false;
        if self.sparse_input
            && sparse_input::available()
            && let (Some(xs), Some(w), Some(b)) =
                (x.as_slice(), self.w.as_slice(), self.b.as_slice())
            && self.nonzeros.list(xs, self.w.nrows()) <= sparse_input::MAX_DENSITY
        {
            let mut out = Array2::zeros((x.nrows(), self.w.ncols()));
            let dst = out.as_slice_mut().expect("fresh array is contiguous");
            self.nonzeros.forward(w, b, dst);
            self.took_sparse = true;
            return out;
        }
        // out starts as the broadcast bias; the GEMM adds x·W onto it.
        let mut out = self
            .b
            .broadcast((x.nrows(), self.w.ncols()))
            .expect("bias is (1, out)")
            .to_owned();
        gemm(1.0, x, &self.w, 1.0, &mut out);
        out
    }

    fn reads_bytes(&self) -> bool {
        self.sparse_input && sparse_input::available() && !self.dense_bytes_seen
    }

    fn forward_bytes(&mut self, rows: &[&[u8]], _mode: Mode) -> Option<Array2<f32>> {
        self.took_sparse = false;
        if !self.reads_bytes() {
            return None;
        }
        let (w, b) = (self.w.as_slice()?, self.b.as_slice()?);
        if self.nonzeros.list_bytes(rows, self.w.nrows()) > sparse_input::MAX_DENSITY {
            self.dense_bytes_seen = true;
            return None;
        }
        let mut out = Array2::zeros((rows.len(), self.w.ncols()));
        let dst = out.as_slice_mut().expect("fresh array is contiguous");
        self.nonzeros.forward(w, b, dst);
        self.took_sparse = true;
        Some(out)
    }

    fn backward(
        &mut self,
        x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        // dW = xᵀ·dout (in, out); db = Σ_batch dout; dx = dout·Wᵀ (batch, in).
        match (self.took_sparse, dout.as_slice()) {
            (true, Some(ds)) => {
                let n = self.dw.ncols();
                let dw = self.dw.as_slice_mut().expect("own array is contiguous");
                self.nonzeros.weight_grad(ds, n, dw);
            }
            _ => gemm(1.0, &x.t(), dout, 0.0, &mut self.dw),
        }
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
    use crate::gradcheck::{check_input_grad, check_param_grads};
    use ndarray::array;

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
    }

    #[test]
    fn sparse_input_gives_the_dense_results() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut x = crate::gradcheck::random_matrix((6, 40), &mut rng);
        x.iter_mut().enumerate().for_each(|(i, v)| {
            if i % 5 != 0 {
                *v = 0.0
            }
        });
        let dout = crate::gradcheck::random_matrix((6, 7), &mut rng);
        let mut dense = crate::init::affine(40, 7, crate::init::Init::Std(0.5), 1);
        dense.b = crate::gradcheck::random_matrix((1, 7), &mut rng);
        let mut sparse = Affine::new(dense.w.clone(), dense.b.clone()).with_sparse_input();
        let (y1, y2) = (
            dense.forward(&x, Mode::Train),
            sparse.forward(&x, Mode::Train),
        );
        assert!(y1.iter().zip(&y2).all(|(a, b)| (a - b).abs() < 1e-5));
        assert_eq!(sparse.took_sparse, sparse_input::available());
        dense.backward(&x, &dout, false);
        sparse.backward(&x, &dout, false);
        assert!(
            dense
                .dw
                .iter()
                .zip(&sparse.dw)
                .all(|(a, b)| (a - b).abs() < 1e-5)
        );
        assert_eq!(dense.db, sparse.db);
        // And the gradients still match numerical differentiation on sparse inputs.
        let mut layer =
            crate::init::affine(40, 3, crate::init::Init::Std(0.5), 2).with_sparse_input();
        let mut rng3 = rand::rngs::StdRng::seed_from_u64(3);
        crate::gradcheck::check_param_grads_at(&mut layer, &x, &mut rng3);
        assert_eq!(layer.took_sparse, sparse_input::available());
    }

    #[test]
    fn dense_bytes_are_declined_for_good() {
        let mut layer =
            crate::init::affine(8, 3, crate::init::Init::Std(0.5), 1).with_sparse_input();
        if !layer.reads_bytes() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let sparse_rows = [[0u8, 0, 9, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 200, 0, 0]];
        let rows: Vec<&[u8]> = sparse_rows.iter().map(|r| r.as_slice()).collect();
        assert!(layer.forward_bytes(&rows, Mode::Train).is_some());
        let dense_rows = [[1u8; 8], [2; 8]];
        let rows: Vec<&[u8]> = dense_rows.iter().map(|r| r.as_slice()).collect();
        assert!(layer.forward_bytes(&rows, Mode::Train).is_none());
        assert!(!layer.reads_bytes(), "later batches should come as floats");
    }
}
