//! C ← α·A·B + β·C for products too small for a packing GEMM.
//!
//! The TwoLayerNet's second layer multiplies 100×50 by 50×10 (and the two backward
//! products of that size) every step: ~50k multiply-adds, which matrixmultiply spends
//! as much time packing as multiplying (~3 µs each, 9 µs of an ~80 µs step). Here the
//! inputs are read in place: eight rows of C at a time, 16 columns at a time, each kept
//! in a register while the k terms are added (eight independent chains, so the adds do
//! not wait on each other); A's entries are broadcast, B's rows loaded (masked at the
//! right edge). AVX-512F only, chosen at run time; [`crate::kernels::gemm`] falls back to
//! matrixmultiply elsewhere.

/// Products up to this many multiply-adds take this path (the second layer's 50k; a
/// packing GEMM wins well before the first layer's 4M).
pub const MAX_WORK: usize = 1 << 17;

/// Whether this CPU can run the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A matrix read in place: entry (i, j) is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Strided<'_> {
    /// Index of entry (rows - 1, cols - 1): the slice must be longer.
    fn last(&self, rows: usize, cols: usize) -> usize {
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride
    }
}

/// C (m×n, rows `ldc` apart, columns contiguous) ← α·A (m×k)·B (k×n) + β·C, where B's
/// rows are contiguous (`b.col_stride == 1`). With β = 0, C is not read (NaNs in it do
/// not leak). Panics unless [`available`] and the slices hold the shapes.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: Strided,
    b: Strided,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(available(), "small_gemm needs AVX-512F");
    assert_eq!(b.col_stride, 1, "B's rows must be contiguous");
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && c.len() > (m - 1) * ldc + n - 1);
    assert!(k == 0 || (a.data.len() > a.last(m, k) && b.data.len() > b.last(k, n)));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present and every index the kernel forms is one of those
    // asserted above: A's (i < m, p < k), B's (p < k, j < n) and C's (i < m, j < n).
    unsafe {
        avx512::gemm(m, n, k, alpha, a, b, beta, c, ldc)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::Strided;

    /// Rows of C per block: eight accumulators, eight independent chains of adds.
    const ROWS: usize = 8;

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: Strided,
        b: Strided,
        beta: f32,
        c: &mut [f32],
        ldc: usize,
    ) {
        let (alpha_v, beta_v) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
        for j0 in (0..n).step_by(16) {
            let mask = ((1u32 << (n - j0).min(16)) - 1) as __mmask16;
            for i0 in (0..m).step_by(ROWS) {
                let rows = (m - i0).min(ROWS);
                let mut acc = [_mm512_setzero_ps(); ROWS];
                for p in 0..k {
                    // SAFETY (all blocks here): p < k, j0 + lane < n, i0 + r < m: indices
                    // the caller asserted inside the slices; masked lanes are not read.
                    let b_row = unsafe {
                        _mm512_maskz_loadu_ps(mask, b.data.as_ptr().add(p * b.row_stride + j0))
                    };
                    let a_col = a.data.as_ptr().wrapping_add(p * a.col_stride);
                    for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                        let a_ip = unsafe { *a_col.add((i0 + r) * a.row_stride) };
                        *acc = _mm512_fmadd_ps(_mm512_set1_ps(a_ip), b_row, *acc);
                    }
                }
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    let dst = unsafe { c.as_mut_ptr().add((i0 + r) * ldc + j0) };
                    let mut out = _mm512_mul_ps(alpha_v, *acc);
                    if beta != 0.0 {
                        let old = unsafe { _mm512_maskz_loadu_ps(mask, dst) };
                        out = _mm512_fmadd_ps(beta_v, old, out);
                    }
                    // A masked store: rare here (one per 16 columns of a row), unlike the
                    // sparse kernels' inner loops where AMD's slow masked stores hurt.
                    unsafe { _mm512_mask_storeu_ps(dst, mask, out) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::random_matrix;
    use ndarray::Array2;
    use rand::SeedableRng;

    #[test]
    fn matches_the_plain_product_for_awkward_shapes_and_strides() {
        if !available() {
            // The kernel cannot run on this CPU, and the entry point does not choose it:
            // gemm.rs's tests run these shapes through the fallback.
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (m, n, k) in [
            (100, 10, 50),
            (50, 10, 100),
            (100, 50, 10),
            (1, 1, 1),
            (9, 17, 3),
            (7, 33, 0),
        ] {
            let a = random_matrix((m, k), &mut rng);
            let at = random_matrix((k, m), &mut rng); // used transposed
            let b = random_matrix((k, n), &mut rng);
            let c0 = random_matrix((m, n), &mut rng);
            for (transposed, beta) in [(false, 0.0), (true, 0.5)] {
                let (a_view, expected) = if transposed {
                    let s = Strided {
                        data: at.as_slice().unwrap(),
                        row_stride: 1,
                        col_stride: m,
                    };
                    (s, at.t().dot(&b) * 2.0 + &c0 * beta)
                } else {
                    let s = Strided {
                        data: a.as_slice().unwrap(),
                        row_stride: k,
                        col_stride: 1,
                    };
                    (s, a.dot(&b) * 2.0 + &c0 * beta)
                };
                // β = 0 must not read C: start from NaNs.
                let mut c = if beta == 0.0 {
                    Array2::from_elem((m, n), f32::NAN)
                } else {
                    c0.clone()
                };
                let b_view = Strided {
                    data: b.as_slice().unwrap(),
                    row_stride: n,
                    col_stride: 1,
                };
                gemm(
                    (m, n, k),
                    2.0,
                    a_view,
                    b_view,
                    beta,
                    c.as_slice_mut().unwrap(),
                    n,
                );
                let worst = (&c - &expected).iter().fold(0.0f32, |w, d| w.max(d.abs()));
                assert!(worst < 1e-4, "{m}×{n}×{k} transposed {transposed}: {worst}");
            }
        }
    }
}
