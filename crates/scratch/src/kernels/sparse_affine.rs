//! The first affine layer on raw pixels: y = x·W + b exactly as [`Affine`] (which it
//! wraps, for its parameters and its GEMM path on dense batches), computed on
//! the batch's non-zero inputs only ([`super::sparse_input`]), and able to read a batch
//! given as the training set's rows of bytes (no float copy of it). The network chooses
//! it for a first affine layer where the AVX-512 kernels run; [`Affine`] is its
//! reference in the tests below.

use ndarray::{Array2, Axis};

use super::gemm::gemm;
use super::sparse_input::{self, Kernel, NonZeros};
use crate::layers::{Affine, Layer, Mode, ParamGrad, column_sums};

pub struct SparseAffine {
    /// The layer's W, b and their gradients, and its GEMM path for dense batches.
    pub dense: Affine,
    /// The last forward pass's input, listed (when it was sparse enough).
    nonzeros: NonZeros,
    /// The last forward pass took the sparse kernels, so backward does too.
    took_sparse: bool,
    /// A batch given as bytes was too dense for the sparse kernels (CIFAR-10): later
    /// batches come as floats, which the training loop copies on two threads.
    dense_bytes_seen: bool,
}

impl SparseAffine {
    /// The layer on the CPU's best kernels (AVX-512 where there, else portable).
    pub fn new(w: Array2<f32>, b: Array2<f32>) -> Self {
        Self::with_nonzeros(w, b, NonZeros::default())
    }

    /// The layer on the given kernels (the tests run both).
    pub fn with_kernel(w: Array2<f32>, b: Array2<f32>, kernel: Kernel) -> Self {
        Self::with_nonzeros(w, b, NonZeros::with_kernel(kernel))
    }

    fn with_nonzeros(w: Array2<f32>, b: Array2<f32>, nonzeros: NonZeros) -> Self {
        Self {
            dense: Affine::new(w, b),
            nonzeros,
            took_sparse: false,
            dense_bytes_seen: false,
        }
    }

    /// Whether the next batch may come as bytes ([`Self::forward_bytes`]).
    pub fn reads_bytes(&self) -> bool {
        !self.dense_bytes_seen
    }

    /// `forward` for a batch given as rows of 8-bit pixels (x = byte / 255); `None` when
    /// the batch is too dense for the sparse kernels (the caller then copies it into
    /// floats and calls `forward`, and later batches come as floats). After `Some`,
    /// `backward` does not read its `x`.
    pub fn forward_bytes(&mut self, rows: &[&[u8]], _mode: Mode) -> Option<Array2<f32>> {
        self.took_sparse = false;
        let Affine { w, b, .. } = &self.dense;
        let (w, b) = (w.as_slice()?, b.as_slice()?);
        if self.nonzeros.list_bytes(rows, w.len() / b.len()) > sparse_input::MAX_DENSITY {
            self.dense_bytes_seen = true;
            return None;
        }
        let mut out = Array2::zeros((rows.len(), b.len()));
        let dst = out.as_slice_mut().expect("fresh array is contiguous");
        self.nonzeros.forward(w, b, dst);
        self.took_sparse = true;
        Some(out)
    }
}

impl Layer for SparseAffine {
    fn forward(&mut self, x: &Array2<f32>, mode: Mode) -> Array2<f32> {
        self.took_sparse = false;
        let Affine { w, b, .. } = &self.dense;
        if let (Some(xs), Some(ws), Some(bs)) = (x.as_slice(), w.as_slice(), b.as_slice())
            && self.nonzeros.list(xs, w.nrows()) <= sparse_input::MAX_DENSITY
        {
            let mut out = Array2::zeros((x.nrows(), w.ncols()));
            let dst = out.as_slice_mut().expect("fresh array is contiguous");
            self.nonzeros.forward(ws, bs, dst);
            self.took_sparse = true;
            return out;
        }
        // Too dense: Affine's GEMM.
        self.dense.forward(x, mode)
    }

    fn backward(
        &mut self,
        x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        let (true, Some(ds)) = (self.took_sparse, dout.as_slice()) else {
            return self.dense.backward(x, dout, need_dx);
        };
        // dW = xᵀ·dout over the listed non-zeros; db = Σ_batch dout; dx = dout·Wᵀ.
        let Affine { w, dw, db, .. } = &mut self.dense;
        let n = dw.ncols();
        self.nonzeros
            .weight_grad(ds, n, dw.as_slice_mut().expect("own array is contiguous"));
        db.assign(&column_sums(dout.view()).insert_axis(Axis(0)));
        need_dx.then(|| {
            let mut dx = Array2::zeros(x.raw_dim());
            gemm(1.0, dout, &w.t(), 0.0, &mut dx);
            dx
        })
    }

    fn params(&mut self) -> Vec<ParamGrad<'_>> {
        self.dense.params()
    }

    fn tensors(&self) -> Vec<(&'static str, &Array2<f32>)> {
        self.dense.tensors()
    }

    fn tensors_mut(&mut self) -> Vec<(&'static str, &mut Array2<f32>)> {
        self.dense.tensors_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check_param_grads_at, random_matrix, sparse_byte_rows};
    use crate::init::{self, Init};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn kernels() -> Vec<Kernel> {
        let mut all = vec![Kernel::Portable];
        if sparse_input::available() {
            all.push(Kernel::Avx512);
        }
        all
    }

    fn close(a: &Array2<f32>, b: &Array2<f32>) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    /// A (6 × 40) batch with every fifth input non-zero.
    fn sparse_batch(rng: &mut StdRng) -> Array2<f32> {
        let mut x = random_matrix((6, 40), rng);
        x.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = if i % 5 == 0 { *v } else { 0.0 });
        x
    }

    #[test]
    fn gives_what_affine_gives_on_both_kernels() {
        for kernel in kernels() {
            let mut rng = StdRng::seed_from_u64(5);
            let x = sparse_batch(&mut rng);
            let dout = random_matrix((6, 7), &mut rng);
            let mut reference = init::affine(40, 7, Init::Std(0.5), 1);
            reference.b = random_matrix((1, 7), &mut rng);
            let mut sparse =
                SparseAffine::with_kernel(reference.w.clone(), reference.b.clone(), kernel);
            let (y1, y2) = (
                reference.forward(&x, Mode::Train),
                sparse.forward(&x, Mode::Train),
            );
            assert!(close(&y1, &y2), "{kernel:?}");
            assert!(sparse.took_sparse);
            let dx1 = reference.backward(&x, &dout, true).unwrap();
            let dx2 = sparse.backward(&x, &dout, true).unwrap();
            assert!(close(&reference.dw, &sparse.dense.dw), "{kernel:?}");
            assert_eq!(reference.db, sparse.dense.db);
            assert!(close(&dx1, &dx2));
            // Dense input takes the GEMM, as Affine.
            let dense = random_matrix((6, 40), &mut rng);
            let y = sparse.forward(&dense, Mode::Train);
            assert!(!sparse.took_sparse);
            assert!(close(&y, &reference.forward(&dense, Mode::Train)));
        }
    }

    #[test]
    fn gradients_match_numerical_differentiation_on_sparse_input() {
        for kernel in kernels() {
            let mut rng = StdRng::seed_from_u64(3);
            let x = sparse_batch(&mut rng);
            let plain = init::affine(40, 3, Init::Std(0.5), 2);
            let mut layer = SparseAffine::with_kernel(plain.w, plain.b, kernel);
            check_param_grads_at(&mut layer, &x, &mut rng);
            assert!(layer.took_sparse, "{kernel:?}");
        }
    }

    #[test]
    fn byte_rows_give_what_their_floats_give_and_dense_bytes_are_declined_for_good() {
        for kernel in kernels() {
            let mut rng = StdRng::seed_from_u64(9);
            let plain = init::affine(784, 10, Init::Std(0.1), 4);
            let mut layer = SparseAffine::with_kernel(plain.w, plain.b, kernel);
            let bytes = sparse_byte_rows(9, 784, 0.8, &mut rng);
            let rows: Vec<&[u8]> = bytes.iter().map(|r| r.as_slice()).collect();
            let x = Array2::from_shape_fn((9, 784), |(i, j)| crate::data::to_unit(bytes[i][j]));
            let from_bytes = layer.forward_bytes(&rows, Mode::Train).unwrap();
            assert_eq!(from_bytes, layer.forward(&x, Mode::Train), "{kernel:?}");
            assert!(layer.reads_bytes());
            let dense = [[1u8; 784], [2; 784]];
            let rows: Vec<&[u8]> = dense.iter().map(|r| r.as_slice()).collect();
            assert!(layer.forward_bytes(&rows, Mode::Train).is_none());
            assert!(!layer.reads_bytes(), "later batches should come as floats");
        }
    }
}
