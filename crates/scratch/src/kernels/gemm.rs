//! C ← α·A·B + β·C, split over rows of C across the rayon pool when it pays.
//!
//! matrixmultiply (ndarray's GEMM) has its own thread pool, which spins while waiting: on
//! a machine whose cores are busy with anything else it stalls for seconds. Splitting
//! rows over rayon (whose workers sleep) keeps two cores busy without that failure mode.

use ndarray::linalg::general_mat_mul;
use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayBase, ArrayViewMut2, Axis, Data, Ix2};

use crate::kernels::small_gemm;

/// Below this many multiply-adds one thread is faster than handing work out (measured:
/// the TwoLayerNet's 100×784×50 products ran slower on two threads than on one).
const PARALLEL_MIN_WORK: usize = 1 << 23;

pub fn gemm<A, B>(
    alpha: f32,
    a: &ArrayBase<A, Ix2>,
    b: &ArrayBase<B, Ix2>,
    beta: f32,
    c: &mut Array2<f32>,
) where
    A: Data<Elem = f32> + Sync,
    B: Data<Elem = f32> + Sync,
{
    gemm_view(alpha, a, b, beta, c.view_mut());
}

pub fn gemm_view<A, B>(
    alpha: f32,
    a: &ArrayBase<A, Ix2>,
    b: &ArrayBase<B, Ix2>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
) where
    A: Data<Elem = f32> + Sync,
    B: Data<Elem = f32> + Sync,
{
    let (m, k) = a.dim();
    let n = b.ncols();
    if m * n * k <= small_gemm::MAX_WORK && try_small(alpha, a, b, beta, c.view_mut()) {
        return;
    }
    let threads = rayon::current_num_threads();
    if threads < 2 || m < 2 * 8 || m * n * k < PARALLEL_MIN_WORK {
        general_mat_mul(alpha, a, b, beta, &mut c);
        return;
    }
    // Row blocks: a multiple of 8 rows (the GEMM kernel's tile), one or two per thread.
    let rows = m.div_ceil(threads).div_ceil(8) * 8;
    c.axis_chunks_iter_mut(Axis(0), rows)
        .into_par_iter()
        .zip(a.axis_chunks_iter(Axis(0), rows).into_par_iter())
        .for_each(|(mut c_block, a_block)| general_mat_mul(alpha, &a_block, b, beta, &mut c_block));
}

/// The product on [`small_gemm`] when the CPU has it and the layouts suit it: A and B
/// contiguous in memory (either order; B is copied to rows if it is a transpose), C in
/// rows. Returns whether it ran.
fn try_small<A, B>(
    alpha: f32,
    a: &ArrayBase<A, Ix2>,
    b: &ArrayBase<B, Ix2>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
) -> bool
where
    A: Data<Elem = f32>,
    B: Data<Elem = f32>,
{
    if !small_gemm::available() {
        return false;
    }
    let [a_rows, a_cols] = [a.strides()[0], a.strides()[1]];
    let (Some(a_data), Some(c_data)) = (a.as_slice_memory_order(), c.as_slice_mut()) else {
        return false;
    };
    // Slices start at (0, 0) only if no stride is negative.
    if a_rows < 0 || a_cols < 0 {
        return false;
    }
    let (m, k) = a.dim();
    let n = b.ncols();
    let a_view = small_gemm::Strided {
        data: a_data,
        row_stride: a_rows as usize,
        col_stride: a_cols as usize,
    };
    let b_rows = b.as_standard_layout();
    let b_view = small_gemm::Strided {
        data: b_rows.as_slice().expect("standard layout"),
        row_stride: n,
        col_stride: 1,
    };
    small_gemm::gemm((m, n, k), alpha, a_view, b_view, beta, c_data, n);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::random_matrix;
    use rand::SeedableRng;

    /// The small products of a conv net, through the entry point: on the AVX-512 kernel
    /// where the CPU has it, on ndarray's GEMM elsewhere; right either way.
    #[test]
    fn small_products_match_the_plain_product_on_any_cpu() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (m, n, k) in [
            (100, 10, 50),
            (50, 10, 100),
            (1, 1, 1),
            (9, 17, 3),
            (7, 33, 0),
        ] {
            let a = random_matrix((m, k), &mut rng);
            let at = random_matrix((k, m), &mut rng);
            let b = random_matrix((k, n), &mut rng);
            let bt = random_matrix((n, k), &mut rng);
            let c0 = random_matrix((m, n), &mut rng);
            let mut c = c0.clone();
            gemm(2.0, &a, &b, 0.5, &mut c);
            let expected = a.dot(&b) * 2.0 + &c0 * 0.5;
            assert!(
                (&c - &expected).iter().all(|d| d.abs() < 1e-4),
                "{m}×{n}×{k}"
            );
            let mut c = Array2::from_elem((m, n), f32::NAN); // β = 0 must not read C
            gemm(1.0, &at.t(), &bt.t(), 0.0, &mut c);
            let expected = at.t().dot(&bt.t());
            assert!(
                (&c - &expected).iter().all(|d| d.abs() < 1e-4),
                "{m}×{n}×{k} transposed"
            );
        }
    }

    #[test]
    fn matches_the_plain_product_for_big_and_transposed_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // 600·200·80 multiply-adds: above the threshold, so the rows are split.
        const { assert!(600 * 200 * 80 > PARALLEL_MIN_WORK) };
        let a = random_matrix((600, 200), &mut rng);
        let b = random_matrix((200, 80), &mut rng);
        let mut c = random_matrix((600, 80), &mut rng);
        let expected = a.dot(&b) * 2.0 + &c * 0.5;
        gemm(2.0, &a, &b, 0.5, &mut c);
        assert!((&c - &expected).iter().all(|d| d.abs() < 1e-3));
        let at = random_matrix((200, 600), &mut rng);
        let mut c2 = Array2::zeros((600, 80));
        gemm(1.0, &at.t(), &b, 0.0, &mut c2);
        assert!((&c2 - &at.t().dot(&b)).iter().all(|d| d.abs() < 1e-3));
    }
}
