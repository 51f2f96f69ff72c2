//! The first affine layer's two products, skipping zero inputs.
//!
//! About 81% of MNIST's pixels are exactly 0 (the black background), and the first layer
//! is nearly all of a small MLP's work: x·W forward and xᵀ·dout for dW (its input gradient
//! is never needed). A dense GEMM multiplies every zero; here the batch's non-zeros are
//! listed once per step and only their multiply-adds are done.
//!
//! The batch is listed column by column (per pixel: the images where it is non-zero, and
//! the values), 16 images × 16 pixels at a time: all-zero blocks (the borders) are
//! skipped, the others are transposed in registers and an AVX-512 compress packs each
//! pixel's non-zeros, with no branch per pixel.
//!
//! - Forward walks the pixels: the pixel's weight row stays in four registers and is
//!   added, scaled, to the output rows of the images that have that pixel.
//! - dW walks the pixels too: the pixel's dW row stays in registers while the dout rows
//!   of those images are added, then it is stored once. (Building dW by images instead
//!   reads and writes each dW row once per image: slower than the GEMM.)
//! - No masked stores (microcoded and slow on AMD Zen 4) in the loops.
//!
//! Measured (`examples/bench_first_layer.rs`, docs/BENCHMARKS.md): the two products
//! take about half the GEMM's time, listing included.
//!
//! Splitting these over two threads was measured slower: the pieces are tens of
//! microseconds, about what a fork-join costs.
//!
//! Only x86-64 CPUs with AVX-512F use these; [`available`] says so at run time, and
//! [`super::Affine`] keeps the GEMM elsewhere.

/// Above this fraction of non-zero inputs the GEMM is faster (MNIST: 0.19; CIFAR: ~1).
pub const MAX_DENSITY: f32 = 0.4;

/// Whether this CPU can run the kernels.
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

/// The non-zero entries of a (rows × k) batch, listed column by column: for each input
/// column (pixel), the rows (images) where it is non-zero, in row order, and the values.
/// Buffers are kept between steps, so a training step allocates nothing here.
#[derive(Default)]
pub struct NonZeros {
    k: usize,
    rows: usize,
    /// Room per column: `rows` rounded up to 16. Column c's entries are
    /// `c·capacity .. c·capacity + count[c]` of `row` and `value`.
    capacity: usize,
    count: Vec<usize>,
    row: Vec<u32>,
    value: Vec<f32>,
    /// Forward's output rows padded to a multiple of 64 columns, so the kernel loads and
    /// stores whole vectors.
    padded_out: Vec<f32>,
}

impl NonZeros {
    /// Lists the non-zeros of `x` (rows × k, row-major) and returns their fraction.
    /// Panics unless [`available`].
    pub fn list(&mut self, x: &[f32], k: usize) -> f32 {
        assert!(available(), "sparse_input needs AVX-512F");
        assert!(k > 0 && x.len().is_multiple_of(k) && x.len() / k < u32::MAX as usize);
        (self.k, self.rows) = (k, x.len() / k);
        self.capacity = self.rows.next_multiple_of(16);
        self.count.clear();
        self.count.resize(k, 0);
        self.row.resize(k * self.capacity, 0);
        self.value.resize(k * self.capacity, 0.0);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (asserted above); the buffers were sized above.
        unsafe {
            avx512::list_columns(self, x)
        };
        let nonzeros: usize = self.count.iter().sum();
        nonzeros as f32 / x.len().max(1) as f32
    }

    /// Column c's entries (indices into `row` and `value`).
    fn entries(&self, c: usize) -> std::ops::Range<usize> {
        c * self.capacity..c * self.capacity + self.count[c]
    }

    /// out (rows × n) = x · w (k × n) + b (n), for the x last listed.
    pub fn forward(&mut self, w: &[f32], b: &[f32], out: &mut [f32]) {
        let n = b.len();
        assert!(available(), "sparse_input needs AVX-512F");
        assert_eq!(w.len(), self.k * n);
        assert_eq!(out.len(), self.rows * n);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present; listed rows are < rows, and w and out have the
        // sizes checked above.
        unsafe {
            avx512::forward(self, w, b, out)
        }
    }

    /// dw (k × n) = xᵀ · dout (rows × n), for the x last listed.
    pub fn weight_grad(&self, dout: &[f32], n: usize, dw: &mut [f32]) {
        assert!(available(), "sparse_input needs AVX-512F");
        assert_eq!(dw.len(), self.k * n);
        assert_eq!(dout.len(), self.rows * n);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present; listed rows are < rows, and dout and dw have the
        // sizes checked above.
        unsafe {
            avx512::weight_grad(self, dout, n, dw)
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::NonZeros;

    /// Columns held in registers at once: four vectors of 16 floats.
    const TILE: usize = 64;

    /// Load masks for the (up to) four vectors covering columns `c0..min(c0 + 64, n)`.
    fn tile_masks(c0: usize, n: usize) -> [__mmask16; 4] {
        std::array::from_fn(|j| {
            let len = n.saturating_sub(c0 + 16 * j).min(16);
            ((1u32 << len) - 1) as __mmask16
        })
    }

    /// Transposes 16 rows of 16 floats: `out[j]` lane `i` = `r[i]` lane `j`.
    #[target_feature(enable = "avx512f")]
    pub(super) fn transpose16(r: &[__m512; 16]) -> [__m512; 16] {
        // Pairs of rows interleaved within each 128-bit lane...
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // ...then groups of four rows: u[4g + m] lane L = column 4L + m of rows 4g..4g+4.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (g, m) = (i / 4 * 4, i % 4);
            let (a, b) = (t[g + m / 2], t[g + 2 + m / 2]);
            if m % 2 == 0 {
                _mm512_shuffle_ps::<0x44>(a, b)
            } else {
                _mm512_shuffle_ps::<0xEE>(a, b)
            }
        });
        // ...then 128-bit lanes: column 4L + m gathers lane L of u[m], u[4+m], u[8+m],
        // u[12+m].
        let mut out = [_mm512_setzero_ps(); 16];
        for m in 0..4 {
            let even_lo = _mm512_shuffle_f32x4::<0x88>(u[m], u[4 + m]);
            let odd_lo = _mm512_shuffle_f32x4::<0xDD>(u[m], u[4 + m]);
            let even_hi = _mm512_shuffle_f32x4::<0x88>(u[8 + m], u[12 + m]);
            let odd_hi = _mm512_shuffle_f32x4::<0xDD>(u[8 + m], u[12 + m]);
            out[m] = _mm512_shuffle_f32x4::<0x88>(even_lo, even_hi);
            out[8 + m] = _mm512_shuffle_f32x4::<0xDD>(even_lo, even_hi);
            out[4 + m] = _mm512_shuffle_f32x4::<0x88>(odd_lo, odd_hi);
            out[12 + m] = _mm512_shuffle_f32x4::<0xDD>(odd_lo, odd_hi);
        }
        out
    }

    /// Lists x's non-zeros column by column, 16 rows × 16 columns at a time: a block is
    /// loaded, skipped if all zero (MNIST's borders), else transposed in registers so
    /// that each vector is one column of 16 rows; a compress packs that column's
    /// non-zeros and their row numbers, stored whole at the column's end.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn list_columns(nz: &mut NonZeros, x: &[f32]) {
        let (k, rows) = (nz.k, nz.rows);
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for c0 in (0..k).step_by(16) {
            let in_row = ((1u32 << (k - c0).min(16)) - 1) as __mmask16;
            for r0 in (0..rows).step_by(16) {
                // SAFETY: masked loads read columns c0..min(c0 + 16, k) of rows < rows.
                let block: [__m512; 16] = std::array::from_fn(|i| {
                    if r0 + i < rows {
                        unsafe { _mm512_maskz_loadu_ps(in_row, x.as_ptr().add((r0 + i) * k + c0)) }
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                // Bitwise OR of the block (-0.0 counts as non-zero here: it is only a shortcut).
                let any = block.iter().fold(_mm512_setzero_si512(), |a, &b| {
                    _mm512_or_si512(a, _mm512_castps_si512(b))
                });
                if _mm512_test_epi32_mask(any, any) == 0 {
                    continue;
                }
                let row_ids = _mm512_add_epi32(lanes, _mm512_set1_epi32(r0 as i32));
                let columns = transpose16(&block);
                for (j, &v) in columns.iter().enumerate().take((k - c0).min(16)) {
                    let c = c0 + j;
                    let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, _mm512_setzero_ps());
                    let at = c * nz.capacity + nz.count[c];
                    // SAFETY: count[c] ≤ r0 and r0 + 16 ≤ capacity: the 16 lanes stay in
                    // column c's room. Compress into a register, then a plain store:
                    // compress straight to memory is microcoded and slow on AMD.
                    unsafe {
                        _mm512_storeu_ps(
                            nz.value.as_mut_ptr().add(at),
                            _mm512_maskz_compress_ps(nonzero, v),
                        );
                        _mm512_storeu_si512(
                            nz.row.as_mut_ptr().add(at).cast(),
                            _mm512_maskz_compress_epi32(nonzero, row_ids),
                        );
                    }
                    nz.count[c] += nonzero.count_ones() as usize;
                }
            }
        }
    }

    /// Column by column: the weight row stays in four registers and is added, scaled,
    /// to the output row of every image where that input is non-zero. Output rows are
    /// padded to a multiple of 64 columns so they are loaded and stored as whole vectors.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward(nz: &mut NonZeros, w: &[f32], b: &[f32], out: &mut [f32]) {
        let n = b.len();
        let stride = n.div_ceil(TILE) * TILE;
        let mut padded = std::mem::take(&mut nz.padded_out);
        padded.resize(nz.rows * stride, 0.0);
        for row in padded.chunks_exact_mut(stride) {
            row[..n].copy_from_slice(b);
        }
        for c0 in (0..n).step_by(TILE) {
            let masks = tile_masks(c0, n);
            for c in 0..nz.k {
                // SAFETY: masked lanes stay inside columns c0..n of row c < k of w.
                let wv: [__m512; 4] = std::array::from_fn(|j| unsafe {
                    _mm512_maskz_loadu_ps(masks[j], w.as_ptr().add(c * n + c0 + 16 * j))
                });
                for e in nz.entries(c) {
                    let v = _mm512_set1_ps(nz.value[e]);
                    // SAFETY: row[e] < rows and c0 + 64 <= stride: inside `padded`.
                    unsafe {
                        let h = padded.as_mut_ptr().add(nz.row[e] as usize * stride + c0);
                        for (j, wv) in wv.iter().enumerate() {
                            let sum = _mm512_fmadd_ps(v, *wv, _mm512_loadu_ps(h.add(16 * j)));
                            _mm512_storeu_ps(h.add(16 * j), sum);
                        }
                    }
                }
            }
        }
        for (out_row, row) in out.chunks_exact_mut(n).zip(padded.chunks_exact(stride)) {
            out_row.copy_from_slice(&row[..n]);
        }
        nz.padded_out = padded;
    }

    /// One input column at a time: its dW row stays in registers while the dout rows of
    /// the images where that input is non-zero are added, scaled; two entries at a time
    /// into two sets of accumulators, so the adds do not wait on each other.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_grad(nz: &NonZeros, dout: &[f32], n: usize, dw: &mut [f32]) {
        for (c, dw_row) in dw.chunks_exact_mut(n).enumerate() {
            let entries = nz.entries(c);
            for c0 in (0..n).step_by(TILE) {
                let masks = tile_masks(c0, n);
                // SAFETY: masked lanes stay inside columns c0..n of row row[e] (< rows)
                // of dout.
                let load = |e: usize, j: usize| unsafe {
                    let d_row = dout.as_ptr().add(nz.row[e] as usize * n + c0);
                    _mm512_maskz_loadu_ps(masks[j], d_row.add(16 * j))
                };
                let mut acc = [[_mm512_setzero_ps(); 4]; 2];
                let mut e = entries.start;
                while e + 1 < entries.end {
                    let (v0, v1) = (_mm512_set1_ps(nz.value[e]), _mm512_set1_ps(nz.value[e + 1]));
                    let [even, odd] = &mut acc;
                    for (j, (a0, a1)) in even.iter_mut().zip(odd.iter_mut()).enumerate() {
                        *a0 = _mm512_fmadd_ps(v0, load(e, j), *a0);
                        *a1 = _mm512_fmadd_ps(v1, load(e + 1, j), *a1);
                    }
                    e += 2;
                }
                if e < entries.end {
                    let v = _mm512_set1_ps(nz.value[e]);
                    for (j, a) in acc[0].iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(v, load(e, j), *a);
                    }
                }
                let sum = std::array::from_fn(|j| _mm512_add_ps(acc[0][j], acc[1][j]));
                store_tile(&sum, &mut dw_row[c0..]);
            }
        }
    }

    /// Writes the first min(64, dst.len()) lanes of `acc` to `dst`: whole vectors where
    /// they fit, the rest through a stack buffer (no masked store: slow on AMD).
    #[target_feature(enable = "avx512f")]
    fn store_tile(acc: &[__m512; 4], dst: &mut [f32]) {
        let mut buf = [0.0f32; TILE];
        for (j, a) in acc.iter().enumerate() {
            // SAFETY: buf holds 64 floats: lanes 16j..16j + 16 are inside it.
            unsafe { _mm512_storeu_ps(buf.as_mut_ptr().add(16 * j), *a) };
        }
        let len = dst.len().min(TILE);
        dst[..len].copy_from_slice(&buf[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::random_matrix;
    use ndarray::Array2;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A random (rows × cols) matrix with about `density` of its entries non-zero.
    fn sparse_matrix(rows: usize, cols: usize, density: f64, rng: &mut StdRng) -> Array2<f32> {
        let mask = Array2::from_shape_simple_fn((rows, cols), || rng.random_bool(density));
        let mut m = random_matrix((rows, cols), rng);
        m.zip_mut_with(&mask, |v, &keep| *v = if keep { *v } else { 0.0 });
        m
    }

    fn close(a: &Array2<f32>, b: &Array2<f32>) -> bool {
        a.dim() == b.dim()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
    }

    #[test]
    fn products_match_the_dense_ones_for_awkward_shapes() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut rng = StdRng::seed_from_u64(7);
        let mut nz = NonZeros::default();
        // Widths below, at and across the 16- and 64-column boundaries; input lengths
        // that are and are not multiples of 16; an all-zero batch; the buffers reused
        // from a bigger batch to a smaller one.
        for (rows, k, n, density) in [
            (5, 784, 50, 0.2),
            (3, 17, 1, 0.5),
            (4, 33, 64, 0.2),
            (2, 16, 65, 1.0),
            (7, 100, 130, 0.1),
            (3, 20, 5, 0.0),
            (100, 784, 50, 0.2), // the TwoLayerNet's batch: seven 16-row blocks
        ] {
            let x = sparse_matrix(rows, k, density, &mut rng);
            let w = random_matrix((k, n), &mut rng);
            let b = random_matrix((1, n), &mut rng);
            let fraction = nz.list(x.as_slice().unwrap(), k);
            let expected = x.iter().filter(|&&v| v != 0.0).count() as f32 / x.len() as f32;
            assert_eq!(fraction, expected);
            let mut out = Array2::zeros((rows, n));
            nz.forward(
                w.as_slice().unwrap(),
                b.as_slice().unwrap(),
                out.as_slice_mut().unwrap(),
            );
            assert!(close(&out, &(x.dot(&w) + &b)), "forward {rows}×{k}×{n}");

            let dout = random_matrix((rows, n), &mut rng);
            let mut dw = random_matrix((k, n), &mut rng); // overwritten, not added to
            nz.weight_grad(dout.as_slice().unwrap(), n, dw.as_slice_mut().unwrap());
            assert!(close(&dw, &x.t().dot(&dout)), "dW {rows}×{k}×{n}");
        }
    }
}
