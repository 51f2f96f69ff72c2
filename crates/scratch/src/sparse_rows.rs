//! The non-zero entries of a mostly-zero matrix, row by row (CSR), and the two products an
//! affine layer needs with it.
//!
//! MNIST images are about 81% exact zeros (black background), so for the first layer
//! `x·W` and `xᵀ·dout` do a fifth of the multiply-adds when the zeros are skipped. The
//! results are the same sums in a different order.

use ndarray::{Array2, ArrayView2};

/// Below this fraction of non-zeros the sparse products beat the dense GEMM.
pub const MAX_DENSITY: f32 = 0.35;

#[derive(Debug, Default, Clone)]
pub struct SparseRows {
    /// Row i's entries are `cols[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    cols: Vec<u32>,
    values: Vec<f32>,
    ncols: usize,
}

impl SparseRows {
    /// Rebuilds from `x` (reusing the buffers) if at most `MAX_DENSITY` of it is non-zero;
    /// returns whether it did.
    pub fn rebuild_if_sparse(&mut self, x: &ArrayView2<f32>) -> bool {
        let Some(data) = x.as_slice() else {
            return false;
        };
        let nonzero = data.iter().filter(|&&v| v != 0.0).count();
        if nonzero as f32 > MAX_DENSITY * data.len() as f32 {
            return false;
        }
        self.starts.clear();
        self.ncols = x.ncols();
        // Branchless compaction: every entry is written, and the cursor only advances past
        // non-zeros (a branch per pixel would be mispredicted about one time in five).
        self.cols.resize(data.len(), 0);
        self.values.resize(data.len(), 0.0);
        let mut k = 0;
        for row in data.chunks_exact(x.ncols().max(1)) {
            self.starts.push(k);
            for (j, &v) in row.iter().enumerate() {
                self.cols[k] = j as u32;
                self.values[k] = v;
                k += usize::from(v != 0.0);
            }
        }
        self.cols.truncate(k);
        self.values.truncate(k);
        self.starts.push(k);
        true
    }

    pub fn nrows(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.starts[i]..self.starts[i + 1];
        self.cols[range.clone()]
            .iter()
            .map(|&c| c as usize)
            .zip(self.values[range].iter().copied())
    }

    /// out += self · w, with `w` (ncols, n) and `out` (nrows, n), both row-major.
    pub fn matmul_add(&self, w: &Array2<f32>, out: &mut Array2<f32>) {
        let n = w.ncols();
        let w = w.as_slice().expect("row-major weights");
        let out = out.as_slice_mut().expect("row-major output");
        for i in 0..self.nrows() {
            let out_row = &mut out[i * n..(i + 1) * n];
            for (j, v) in self.row(i) {
                axpy(v, &w[j * n..(j + 1) * n], out_row);
            }
        }
    }

    /// dw = selfᵀ · dout, with `dout` (nrows, n) and `dw` (ncols, n), both row-major.
    pub fn transpose_matmul(&self, dout: &Array2<f32>, dw: &mut Array2<f32>) {
        let n = dout.ncols();
        dw.fill(0.0);
        let dout = dout.as_slice().expect("row-major gradient");
        let dw = dw.as_slice_mut().expect("row-major gradient");
        for i in 0..self.nrows() {
            let d_row = &dout[i * n..(i + 1) * n];
            for (j, v) in self.row(i) {
                axpy(v, d_row, &mut dw[j * n..(j + 1) * n]);
            }
        }
    }
}

/// y += a·x (the compiler vectorises this loop).
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::random_matrix;
    use rand::SeedableRng;

    #[test]
    fn products_equal_the_dense_ones() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut x = random_matrix((7, 20), &mut rng);
        x.mapv_inplace(|v| if v > 0.8 { v } else { 0.0 }); // about 20% non-zero
        let w = random_matrix((20, 5), &mut rng);
        let dout = random_matrix((7, 5), &mut rng);
        let mut s = SparseRows::default();
        assert!(s.rebuild_if_sparse(&x.view()));
        let mut out = Array2::ones((7, 5));
        s.matmul_add(&w, &mut out);
        assert!((&out - &(x.dot(&w) + 1.0)).iter().all(|d| d.abs() < 1e-5));
        let mut dw = Array2::from_elem((20, 5), 9.0);
        s.transpose_matmul(&dout, &mut dw);
        assert!((&dw - &x.t().dot(&dout)).iter().all(|d| d.abs() < 1e-5));
    }

    #[test]
    fn dense_inputs_are_left_to_the_gemm() {
        let x = Array2::<f32>::ones((4, 4));
        assert!(!SparseRows::default().rebuild_if_sparse(&x.view()));
    }
}
