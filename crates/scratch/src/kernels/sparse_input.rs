//! The first affine layer's two products, skipping zero inputs.
//!
//! About 81% of MNIST's pixels are exactly 0 (the black background), and the first layer
//! is nearly all of a small MLP's work: x·W forward and xᵀ·dout for dW (its input gradient
//! is never needed). A dense GEMM multiplies every zero; here the batch's non-zeros are
//! listed once per step and only their multiply-adds are done.
//!
//! The batch is listed by pairs of neighbouring pixels (per pair: the images where
//! either is non-zero, and both values), 16 images × 16 pixels at a time: all-zero
//! blocks (the borders) are skipped, the others are transposed in registers and an
//! AVX-512 compress packs each pair's entries, with no branch per pixel. Strokes are a
//! few pixels wide, so a pair's list is 58% as long as its two pixels' lists (MNIST).
//!
//! - Forward walks the pairs: the two weight rows stay in eight registers and are
//!   added, scaled, to the output rows of the images that have either pixel. Its cost
//!   is those read-modify-writes of output rows, one per entry, which is why pairs pay
//!   (one pixel per list: epochs ~8% longer); summing each image's row in registers
//!   instead (from lists by rows) was no faster, and listing twice cost more.
//! - dW walks the pairs too: the two dW rows stay in registers while the dout rows of
//!   those images are added, then they are stored once. (Building dW by images instead
//!   reads and writes each dW row once per image: slower than the GEMM.)
//! - No masked stores (microcoded and slow on AMD Zen 4) in the loops.
//!
//! Measured (`examples/bench_first_layer.rs`, docs/BENCHMARKS.md): the two products
//! take about half the GEMM's time, listing included.
//!
//! Each product runs in two halves of the pixels on the two threads of [`crate::kernels::team`]
//! (rayon's fork-join was measured slower than one thread: the pieces are tens of
//! microseconds, about what waking a sleeping worker costs).
//!
//! The kernels are AVX-512F (and popcnt), chosen at run time ([`available`]); a portable
//! version of each gives the same lists and products (up to rounding) on any CPU, for
//! the tests, which run it everywhere. The network uses the sparse layer
//! ([`super::sparse_affine`]) only where AVX-512 is there: elsewhere the GEMM is faster.

use std::sync::Mutex;

use crate::kernels::team;

/// Output columns held in registers at once: four vectors of 16 floats.
const TILE: usize = 64;

/// Above this fraction of non-zero inputs the GEMM is faster (MNIST: 0.19; CIFAR: ~1).
pub const MAX_DENSITY: f32 = 0.4;

/// Whether this CPU can run the kernels.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The non-zero entries of a (rows × k) batch, listed by pairs of input columns (pixels
/// 2p and 2p + 1, side by side in an image): for each pair, the rows (images) where
/// either is non-zero, in row order, and both values. Strokes are a few pixels wide, so
/// the two are mostly non-zero together: on MNIST a pair's list has 58% of the entries
/// of the two columns' lists, and the forward product's read-modify-writes of output
/// rows (its cost) drop by as much. Buffers are kept between steps, so a training step
/// allocates nothing here.
///
/// The work is split between the two threads of the [`team`] by input columns: each
/// part lists the columns up to / from [`team::split_point`]`(k, 16)` (where the SGD
/// update cuts too, so each core's data stays in its own cache), then adds its share of
/// the forward product and computes its rows of dW, cut where the non-zeros balance.
pub struct NonZeros {
    /// Which kernels list and multiply: AVX-512 where the CPU has it, else portable.
    kernel: Kernel,
    k: usize,
    rows: usize,
    /// Room per pair: `rows` rounded up to 16. Pair p's entries are
    /// `p·capacity .. p·capacity + count[p]` of `row`, `left` and `right`.
    capacity: usize,
    count: Vec<usize>,
    /// Where the products cut the pairs between the two parts (see `pairs`).
    balanced_cut: usize,
    row: Vec<u32>,
    /// The values of column 2p and of column 2p + 1 (0 past the last column).
    left: Vec<f32>,
    right: Vec<f32>,
    /// Each part's working rows (rows × n padded to a multiple of 64 columns, on a
    /// 64-byte boundary, so kernels load and store whole vectors within cache lines):
    /// its share of the forward product, or its copy of dout for dW.
    part_rows: [Vec<f32>; team::PARTS],
}

/// The kernels a [`NonZeros`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Avx512,
    Portable,
}

impl Default for NonZeros {
    fn default() -> Self {
        Self::with_kernel(if available() {
            Kernel::Avx512
        } else {
            Kernel::Portable
        })
    }
}

/// A batch to list: (rows × k) floats, row-major, or rows of k bytes standing for
/// byte / 255.
#[derive(Clone, Copy)]
enum Source<'a> {
    Floats(&'a [f32]),
    Bytes(&'a [&'a [u8]]),
}

/// One part's share of the lists while they are written: pairs
/// `first_pair .. first_pair + count.len()`.
struct PairLists<'a> {
    first_pair: usize,
    count: &'a mut [usize],
    nonzeros: usize,
    row: &'a mut [u32],
    left: &'a mut [f32],
    right: &'a mut [f32],
}

impl NonZeros {
    /// Lists kept by `kernel` (the portable one on any CPU; AVX-512 only where
    /// [`available`]).
    pub fn with_kernel(kernel: Kernel) -> Self {
        assert!(
            kernel == Kernel::Portable || available(),
            "the AVX-512 kernels need AVX-512F"
        );
        Self {
            kernel,
            k: 0,
            rows: 0,
            capacity: 0,
            count: Vec::new(),
            balanced_cut: 0,
            row: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
            part_rows: Default::default(),
        }
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Lists the non-zeros of `x` (rows × k, row-major) and returns their fraction.
    pub fn list(&mut self, x: &[f32], k: usize) -> f32 {
        assert!(k > 0 && x.len().is_multiple_of(k));
        self.list_source(Source::Floats(x), x.len() / k, k)
    }

    /// The same for a batch given as rows of 8-bit pixels, each standing for byte / 255
    /// (the value [`crate::data::Samples`] gives it): the training loop lists a minibatch
    /// straight from the data set's bytes, with no float copy of it in between.
    pub fn list_bytes(&mut self, rows: &[&[u8]], k: usize) -> f32 {
        assert!(
            k > 0 && rows.iter().all(|r| r.len() == k),
            "rows of {k} bytes"
        );
        self.list_source(Source::Bytes(rows), rows.len(), k)
    }

    fn list_source(&mut self, source: Source, rows: usize, k: usize) -> f32 {
        assert!(rows < u32::MAX as usize);
        (self.k, self.rows) = (k, rows);
        self.capacity = self.rows.next_multiple_of(16);
        let pairs = k.div_ceil(2);
        self.count.clear();
        self.count.resize(pairs, 0);
        self.row.resize(pairs * self.capacity, 0);
        self.left.resize(pairs * self.capacity, 0.0);
        self.right.resize(pairs * self.capacity, 0.0);
        // A multiple of 16 columns: blocks of 16 columns hold whole pairs.
        let middle = team::split_point(k, 16) / 2;
        let at = middle * self.capacity;
        let count = self.count.split_at_mut(middle);
        let row = self.row.split_at_mut(at);
        let (left, right) = (self.left.split_at_mut(at), self.right.split_at_mut(at));
        let parts = [
            (0, count.0, row.0, left.0, right.0),
            (middle, count.1, row.1, left.1, right.1),
        ]
        .map(|(first_pair, count, row, left, right)| {
            Mutex::new(PairLists {
                first_pair,
                count,
                nonzeros: 0,
                row,
                left,
                right,
            })
        });
        let capacity = self.capacity;
        let kernel = self.kernel;
        team::split(&|part| {
            let mut lists = parts[part].lock().expect("each part locks its lists once");
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F is present (checked when the kernel was chosen); each
                // part's slices hold its pairs' room, sized above.
                Kernel::Avx512 => unsafe {
                    avx512::list_pairs(&mut lists, source, k, rows, capacity)
                },
                _ => portable::list_pairs(&mut lists, source, k, rows, capacity),
            }
        });
        let nonzeros: usize = parts
            .iter()
            .map(|p| p.lock().expect("listed").nonzeros)
            .sum();
        let entries: usize = self.count.iter().sum();
        let mut before = 0;
        self.balanced_cut = match entries {
            0 => middle,
            _ => self
                .count
                .iter()
                .take_while(|&&c| {
                    before += c;
                    before - c < entries / 2
                })
                .count(),
        };
        nonzeros as f32 / (rows * k).max(1) as f32
    }

    /// Pair p's rows and the two columns' values. Every listed row is < `rows`: the
    /// kernels rely on it (the listing only takes lanes of real rows; padding rows are zero).
    fn pair(&self, p: usize) -> (&[u32], &[f32], &[f32]) {
        let entries = p * self.capacity..p * self.capacity + self.count[p];
        let row = &self.row[entries.clone()];
        (row, &self.left[entries.clone()], &self.right[entries])
    }

    /// Part `part`'s pairs in the products: cut where the entries listed before it reach
    /// half of them, so both parts do the same number of multiply-adds (MNIST's lower
    /// half holds 52% of the ink: an even cut left one core waiting ~10% of a step). The
    /// listing itself cuts at [`team::split_point`]; the few pairs between the two cuts
    /// are read from the other core's cache.
    fn pairs(&self, part: usize) -> std::ops::Range<usize> {
        [0..self.balanced_cut, self.balanced_cut..self.count.len()][part].clone()
    }

    /// out (rows × n) = x · w (k × n) + b (n), for the x last listed.
    pub fn forward(&mut self, w: &[f32], b: &[f32], out: &mut [f32]) {
        let n = b.len();
        assert_eq!(w.len(), self.k * n);
        assert_eq!(out.len(), self.rows * n);
        let stride = n.next_multiple_of(TILE);
        let mut partials = std::mem::take(&mut self.part_rows);
        {
            let parts = partials.each_mut().map(Mutex::new);
            let lists = &*self;
            team::split(&|part| {
                let mut partial = parts[part].lock().expect("each part locks its sum once");
                let partial = aligned_zeros(&mut partial, lists.rows * stride);
                match lists.kernel {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX-512F is present; listed rows are < rows, so their
                    // padded rows are inside `partial`; w has the size checked above.
                    Kernel::Avx512 => unsafe {
                        avx512::forward(lists, lists.pairs(part), w, n, partial)
                    },
                    _ => portable::forward(lists, lists.pairs(part), w, n, partial),
                }
            });
        }
        let len = self.rows * stride;
        let [p0, p1] = partials.each_mut().map(|p| &*aligned(p, len));
        for (out_row, (r0, r1)) in out
            .chunks_exact_mut(n)
            .zip(p0.chunks_exact(stride).zip(p1.chunks_exact(stride)))
        {
            for (((o, a), c), bias) in out_row.iter_mut().zip(r0).zip(r1).zip(b) {
                *o = a + c + bias;
            }
        }
        self.part_rows = partials;
    }

    /// dw (k × n) = xᵀ · dout (rows × n), for the x last listed.
    pub fn weight_grad(&mut self, dout: &[f32], n: usize, dw: &mut [f32]) {
        assert_eq!(dw.len(), self.k * n);
        assert_eq!(dout.len(), self.rows * n);
        let stride = n.next_multiple_of(TILE);
        let mut buffers = std::mem::take(&mut self.part_rows);
        {
            let (dw0, dw1) = dw.split_at_mut((2 * self.pairs(0).end).min(self.k) * n);
            let [b0, b1] = buffers.each_mut();
            let parts = [Mutex::new((dw0, b0)), Mutex::new((dw1, b1))];
            let lists = &*self;
            team::split(&|part| {
                let mut guard = parts[part].lock().expect("each part locks its rows once");
                let (dw, buffer) = &mut *guard;
                let padded = aligned_zeros(buffer, lists.rows * stride);
                for (row, d) in padded.chunks_exact_mut(stride).zip(dout.chunks_exact(n)) {
                    row[..n].copy_from_slice(d);
                }
                match lists.kernel {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX-512F is present; listed rows are < rows, so their
                    // padded dout rows are inside `padded`; this part's dW rows are its
                    // columns'.
                    Kernel::Avx512 => unsafe {
                        avx512::weight_grad(lists, padded, n, lists.pairs(part), dw)
                    },
                    _ => portable::weight_grad(lists, padded, n, lists.pairs(part), dw),
                }
            });
        }
        self.part_rows = buffers;
    }
}

/// `len` floats of `buf` starting on a 64-byte boundary, as last zeroed by
/// [`aligned_zeros`]: whole-vector loads and stores then never straddle cache lines.
fn aligned(buf: &mut [f32], len: usize) -> &mut [f32] {
    let skip = buf.as_ptr().align_offset(64).min(15);
    &mut buf[skip..skip + len]
}

/// [`aligned`], zeroed (the buffer is kept and grown as needed).
fn aligned_zeros(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + 15 {
        buf.resize(len + 15, 0.0);
    }
    let out = aligned(buf, len);
    out.fill(0.0);
    out
}

/// The same three operations in plain Rust, entry for entry as the AVX-512 ones: the same
/// lists, and products with the same multiply-adds in the same order (fused here too).
mod portable {
    use super::{NonZeros, PairLists, Source, TILE};

    /// The value of column c of row r (byte / 255 for bytes, as [`crate::data::Samples`]).
    fn value(source: Source, k: usize, r: usize, c: usize) -> f32 {
        match source {
            Source::Floats(x) => x[r * k + c],
            Source::Bytes(x) => f32::from(x[r][c]) / 255.0,
        }
    }

    pub(super) fn list_pairs(
        lists: &mut PairLists,
        source: Source,
        k: usize,
        rows: usize,
        capacity: usize,
    ) {
        for local in 0..lists.count.len() {
            let c = 2 * (lists.first_pair + local);
            for r in 0..rows {
                let left = if c < k { value(source, k, r, c) } else { 0.0 };
                let right = if c + 1 < k {
                    value(source, k, r, c + 1)
                } else {
                    0.0
                };
                // `!= 0.0` as the AVX-512 compare (NaN counts as non-zero).
                let (l, rt) = (left != 0.0 || left.is_nan(), right != 0.0 || right.is_nan());
                if l || rt {
                    let at = local * capacity + lists.count[local];
                    lists.row[at] = r as u32;
                    lists.left[at] = left;
                    lists.right[at] = right;
                    lists.count[local] += 1;
                    lists.nonzeros += usize::from(l) + usize::from(rt);
                }
            }
        }
    }

    pub(super) fn forward(
        nz: &NonZeros,
        pairs: std::ops::Range<usize>,
        w: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        let stride = n.next_multiple_of(TILE);
        let weight = |c: usize, j: usize| if c < nz.k { w[c * n + j] } else { 0.0 };
        for c0 in (0..n).step_by(TILE) {
            for p in pairs.clone() {
                let (rows, left, right) = nz.pair(p);
                for ((&r, &vl), &vr) in rows.iter().zip(left).zip(right) {
                    let h = &mut out[r as usize * stride..][..stride];
                    let end = (c0 + TILE).min(n);
                    for (j, hj) in h.iter_mut().enumerate().take(end).skip(c0) {
                        let sum = vl.mul_add(weight(2 * p, j), *hj);
                        *hj = vr.mul_add(weight(2 * p + 1, j), sum);
                    }
                }
            }
        }
    }

    pub(super) fn weight_grad(
        nz: &NonZeros,
        dout: &[f32],
        n: usize,
        pairs: std::ops::Range<usize>,
        dw: &mut [f32],
    ) {
        let stride = n.next_multiple_of(TILE);
        let first_column = 2 * pairs.start;
        for p in pairs {
            let (rows, left, right) = nz.pair(p);
            for (side, values) in [left, right].into_iter().enumerate() {
                let c = 2 * p + side;
                if c >= nz.k {
                    continue;
                }
                let dst = &mut dw[(c - first_column) * n..][..n];
                dst.fill(0.0);
                for (&r, &v) in rows.iter().zip(values) {
                    let d = &dout[r as usize * stride..][..n];
                    for (acc, &dj) in dst.iter_mut().zip(d) {
                        *acc = v.mul_add(dj, *acc);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{NonZeros, PairLists, Source, TILE};

    /// Load masks for the (up to) four vectors covering columns `c0..min(c0 + 64, n)`.
    fn tile_masks(c0: usize, n: usize) -> [__mmask16; 4] {
        std::array::from_fn(|j| {
            let len = n.saturating_sub(c0 + 16 * j).min(16);
            ((1u32 << len) - 1) as __mmask16
        })
    }

    /// Transposes 16 rows of 16 floats: `out[j]` lane `i` = `r[i]` lane `j`.
    #[target_feature(enable = "avx512f,popcnt")]
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

    /// Lists the batch's non-zeros by pairs of columns, 16 rows × 16 columns at a time:
    /// a block is loaded, skipped if all zero (MNIST's borders), else transposed in
    /// registers so that each vector is one column of 16 rows; for each pair of columns
    /// a compress packs the rows where either is non-zero, with both values, stored
    /// whole at the pair's end. Only the pairs of `lists`.
    #[target_feature(enable = "avx512f,popcnt")]
    pub(super) unsafe fn list_pairs(
        lists: &mut PairLists,
        source: Source,
        k: usize,
        rows: usize,
        capacity: usize,
    ) {
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let first = 2 * lists.first_pair;
        let end = (first + 2 * lists.count.len()).min(k);
        for c0 in (first..end).step_by(16) {
            let width = (end - c0).min(16);
            for r0 in (0..rows).step_by(16) {
                let block = match source {
                    // SAFETY: columns c0..c0 + width < k of rows < rows.
                    Source::Floats(x) => unsafe { float_block(x, k, rows, r0, c0, width) },
                    Source::Bytes(x) => byte_block(x, r0, c0, width),
                };
                let Some(block) = block else { continue };
                let row_ids = _mm512_add_epi32(lanes, _mm512_set1_epi32(r0 as i32));
                // Columns past `width` are zero (masked or padded loads).
                let columns = transpose16(&block);
                for (j, pair) in columns.chunks_exact(2).enumerate().take(width.div_ceil(2)) {
                    let local = (c0 - first) / 2 + j;
                    let zero = _mm512_setzero_ps();
                    let left = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(pair[0], zero);
                    let right = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(pair[1], zero);
                    let either = left | right;
                    let at = local * capacity + lists.count[local];
                    assert!(at + 16 <= lists.row.len() && at + 16 <= lists.left.len());
                    assert!(at + 16 <= lists.right.len());
                    // SAFETY: count ≤ r0 and r0 + 16 ≤ capacity: the 16 lanes stay in
                    // the pair's room (asserted). Compress into a register, then a
                    // plain store: compress straight to memory is microcoded and slow on AMD.
                    unsafe {
                        _mm512_storeu_ps(
                            lists.left.as_mut_ptr().add(at),
                            _mm512_maskz_compress_ps(either, pair[0]),
                        );
                        _mm512_storeu_ps(
                            lists.right.as_mut_ptr().add(at),
                            _mm512_maskz_compress_ps(either, pair[1]),
                        );
                        _mm512_storeu_si512(
                            lists.row.as_mut_ptr().add(at).cast(),
                            _mm512_maskz_compress_epi32(either, row_ids),
                        );
                    }
                    lists.count[local] += either.count_ones() as usize;
                    lists.nonzeros += (left.count_ones() + right.count_ones()) as usize;
                }
            }
        }
    }

    /// Rows r0..r0 + 16 (zeros past `rows`), columns c0..c0 + width of a row-major
    /// (rows × k) matrix, one vector per row; `None` if all of it is zero (-0.0 counts
    /// as non-zero here: this is only a shortcut).
    ///
    /// # Safety
    /// c0 + width ≤ k, width ≤ 16 and x holds rows × k floats.
    #[target_feature(enable = "avx512f,popcnt")]
    unsafe fn float_block(
        x: &[f32],
        k: usize,
        rows: usize,
        r0: usize,
        c0: usize,
        width: usize,
    ) -> Option<[__m512; 16]> {
        let in_row = ((1u32 << width) - 1) as __mmask16;
        let block: [__m512; 16] = std::array::from_fn(|i| {
            if r0 + i < rows {
                // SAFETY: the masked lanes are columns c0..c0 + width of row r0 + i.
                unsafe { _mm512_maskz_loadu_ps(in_row, x.as_ptr().add((r0 + i) * k + c0)) }
            } else {
                _mm512_setzero_ps()
            }
        });
        let any = block.iter().fold(_mm512_setzero_si512(), |a, &b| {
            _mm512_or_si512(a, _mm512_castps_si512(b))
        });
        (_mm512_test_epi32_mask(any, any) != 0).then_some(block)
    }

    /// The same block from rows of bytes, as floats byte / 255 (a division, like
    /// [`crate::data::Samples`]'s, so both give the same floats); the zero test is done
    /// on the bytes, before any conversion.
    #[target_feature(enable = "avx512f,popcnt")]
    fn byte_block(x: &[&[u8]], r0: usize, c0: usize, width: usize) -> Option<[__m512; 16]> {
        // Plain loops, not array `map`s: closures do not inherit the target features
        // and were not inlined.
        let mut bytes = [_mm_setzero_si128(); 16];
        for (b, row) in bytes.iter_mut().zip(x.iter().skip(r0)) {
            let lanes = &row[c0..c0 + width];
            *b = if width == 16 {
                // SAFETY: `lanes` holds 16 bytes.
                unsafe { _mm_loadu_si128(lanes.as_ptr().cast()) }
            } else {
                let mut padded = [0u8; 16];
                padded[..width].copy_from_slice(lanes);
                // SAFETY: `padded` holds 16 bytes.
                unsafe { _mm_loadu_si128(padded.as_ptr().cast()) }
            };
        }
        let mut any = _mm_setzero_si128();
        for b in bytes {
            any = _mm_or_si128(any, b);
        }
        if _mm_test_all_zeros(any, any) == 1 {
            return None;
        }
        let scale = _mm512_set1_ps(255.0);
        let mut block = [_mm512_setzero_ps(); 16];
        for (v, b) in block.iter_mut().zip(bytes) {
            *v = _mm512_div_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), scale);
        }
        Some(block)
    }

    /// Pair by pair: the two weight rows stay in eight registers and are added, scaled,
    /// to the output row of every image where either input is non-zero (one read and one
    /// write of that row for both). Only `pairs`; `out` rows are padded to a multiple of
    /// 64 so they are loaded and stored whole.
    #[target_feature(enable = "avx512f,popcnt")]
    pub(super) unsafe fn forward(
        nz: &NonZeros,
        pairs: std::ops::Range<usize>,
        w: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        let stride = n.next_multiple_of(TILE);
        assert!(nz.rows * stride <= out.len());
        for c0 in (0..n).step_by(TILE) {
            let masks = tile_masks(c0, n);
            let weight_row = |c: usize| -> [__m512; 4] {
                std::array::from_fn(|j| {
                    if c < nz.k {
                        // SAFETY: masked lanes stay inside columns c0..n of row c < k of w.
                        unsafe {
                            _mm512_maskz_loadu_ps(masks[j], w.as_ptr().add(c * n + c0 + 16 * j))
                        }
                    } else {
                        _mm512_setzero_ps()
                    }
                })
            };
            for p in pairs.clone() {
                let (wl, wr) = (weight_row(2 * p), weight_row(2 * p + 1));
                let (rows, left, right) = nz.pair(p);
                for ((&r, &vl), &vr) in rows.iter().zip(left).zip(right) {
                    let (vl, vr) = (_mm512_set1_ps(vl), _mm512_set1_ps(vr));
                    // SAFETY: r < nz.rows (listing invariant) and c0 + 64 <= stride, so
                    // the 64 lanes are inside `out` (asserted to hold rows × stride).
                    unsafe {
                        let h = out.as_mut_ptr().add(r as usize * stride + c0);
                        for j in 0..4 {
                            let sum = _mm512_fmadd_ps(vl, wl[j], _mm512_loadu_ps(h.add(16 * j)));
                            let sum = _mm512_fmadd_ps(vr, wr[j], sum);
                            _mm512_storeu_ps(h.add(16 * j), sum);
                        }
                    }
                }
            }
        }
    }

    /// One pair at a time: its two dW rows stay in registers while the dout rows of the
    /// images where either input is non-zero are added, scaled by each value (eight
    /// accumulators: eight independent chains of adds). `dw` holds the dW rows of the
    /// columns of `pairs`; `dout` rows padded as `part_rows`.
    #[target_feature(enable = "avx512f,popcnt")]
    pub(super) unsafe fn weight_grad(
        nz: &NonZeros,
        dout: &[f32],
        n: usize,
        pairs: std::ops::Range<usize>,
        dw: &mut [f32],
    ) {
        let stride = n.next_multiple_of(TILE);
        assert!(nz.rows * stride <= dout.len());
        let first_column = 2 * pairs.start;
        for p in pairs {
            let (rows, left, right) = nz.pair(p);
            for c0 in (0..n).step_by(TILE) {
                let mut acc = [[_mm512_setzero_ps(); 4]; 2];
                for ((&r, &vl), &vr) in rows.iter().zip(left).zip(right) {
                    // SAFETY: r < nz.rows (listing invariant) and c0 + 64 <= stride, so
                    // the row's 64 lanes from c0 are inside `dout` (asserted to hold
                    // rows × stride).
                    let d = unsafe { dout.as_ptr().add(r as usize * stride + c0) };
                    let (vl, vr) = (_mm512_set1_ps(vl), _mm512_set1_ps(vr));
                    let [acc_left, acc_right] = &mut acc;
                    for (j, (al, ar)) in acc_left.iter_mut().zip(acc_right).enumerate() {
                        // SAFETY: lanes 16j..16j + 16 of the row above.
                        let dj = unsafe { _mm512_loadu_ps(d.add(16 * j)) };
                        *al = _mm512_fmadd_ps(vl, dj, *al);
                        *ar = _mm512_fmadd_ps(vr, dj, *ar);
                    }
                }
                for (side, acc) in acc.iter().enumerate() {
                    let c = 2 * p + side;
                    if c < nz.k {
                        let at = (c - first_column) * n + c0;
                        store_tile(acc, &mut dw[at..at + (n - c0).min(TILE)]);
                    }
                }
            }
        }
    }

    /// Writes the first min(64, dst.len()) lanes of `acc` to `dst`: whole vectors where
    /// they fit, the rest through a stack buffer (no masked store: slow on AMD).
    #[target_feature(enable = "avx512f,popcnt")]
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

    /// The portable kernels on every CPU, and the AVX-512 ones where there are.
    fn kernels() -> Vec<Kernel> {
        let mut all = vec![Kernel::Portable];
        if available() {
            all.push(Kernel::Avx512);
        }
        all
    }

    fn close(a: &Array2<f32>, b: &Array2<f32>) -> bool {
        a.dim() == b.dim()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
    }

    #[test]
    fn results_are_the_same_with_and_without_the_worker() {
        let mut rng = StdRng::seed_from_u64(11);
        let (rows, k, n) = (37, 300, 70);
        let x = sparse_matrix(rows, k, 0.2, &mut rng);
        let w = random_matrix((k, n), &mut rng);
        let b = random_matrix((1, n), &mut rng);
        let dout = random_matrix((rows, n), &mut rng);
        for kernel in kernels() {
            let run = || {
                let mut nz = NonZeros::with_kernel(kernel);
                nz.list(x.as_slice().unwrap(), k);
                let (mut out, mut dw) = (vec![0.0; rows * n], vec![0.0; k * n]);
                nz.forward(w.as_slice().unwrap(), b.as_slice().unwrap(), &mut out);
                nz.weight_grad(dout.as_slice().unwrap(), n, &mut dw);
                (out, dw)
            };
            let shared = run();
            // Inside a team job, splits run both parts on their own thread.
            let alone = Mutex::new(None);
            team::split(&|part| {
                if part == 0 {
                    *alone.lock().unwrap() = Some(run());
                }
            });
            assert_eq!(alone.into_inner().unwrap(), Some(shared), "{kernel:?}");
        }
    }

    #[test]
    fn products_match_the_dense_ones_for_awkward_shapes() {
        for kernel in kernels() {
            let mut rng = StdRng::seed_from_u64(7);
            let mut nz = NonZeros::with_kernel(kernel);
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
                assert!(
                    close(&dw, &x.t().dot(&dout)),
                    "dW {rows}×{k}×{n} {kernel:?}"
                );
            }
        }
    }

    #[test]
    fn byte_rows_give_what_their_floats_give() {
        for kernel in kernels() {
            let mut rng = StdRng::seed_from_u64(5);
            let (mut from_floats, mut from_bytes) =
                (NonZeros::with_kernel(kernel), NonZeros::with_kernel(kernel));
            // Row lengths below, at and across 16; row counts below and across 16.
            for (rows, k, n) in [(3, 5, 7), (17, 16, 50), (33, 100, 64), (100, 784, 50)] {
                let bytes = crate::gradcheck::sparse_byte_rows(rows, k, 0.7, &mut rng);
                let x: Vec<f32> = bytes
                    .iter()
                    .flatten()
                    .map(|&b| crate::data::to_unit(b))
                    .collect();
                let row_refs: Vec<&[u8]> = bytes.iter().map(|r| r.as_slice()).collect();
                assert_eq!(from_bytes.list_bytes(&row_refs, k), from_floats.list(&x, k));
                assert_eq!(from_bytes.count, from_floats.count);
                for p in 0..k.div_ceil(2) {
                    assert_eq!(from_bytes.pair(p), from_floats.pair(p), "pair {p}");
                }
                let w = random_matrix((k, n), &mut rng);
                let b = random_matrix((1, n), &mut rng);
                let (w, b) = (w.as_slice().unwrap(), b.as_slice().unwrap());
                let (mut out_bytes, mut out_floats) = (vec![0.0; rows * n], vec![0.0; rows * n]);
                from_bytes.forward(w, b, &mut out_bytes);
                from_floats.forward(w, b, &mut out_floats);
                assert_eq!(out_bytes, out_floats);
            }
        }
    }

    /// Where the CPU has AVX-512, its kernels and the portable ones list the same entries
    /// and give the same products: both do the same fused multiply-adds in the same order.
    #[test]
    fn the_avx512_kernels_agree_with_the_portable_ones() {
        if !available() {
            // Nothing to compare with: the tests above ran the portable kernels.
            return;
        }
        let mut rng = StdRng::seed_from_u64(13);
        for (rows, k, n) in [(37, 300, 70), (100, 784, 50), (5, 17, 130)] {
            let x = sparse_matrix(rows, k, 0.2, &mut rng);
            let w = random_matrix((k, n), &mut rng);
            let b = random_matrix((1, n), &mut rng);
            let dout = random_matrix((rows, n), &mut rng);
            let results = [Kernel::Portable, Kernel::Avx512].map(|kernel| {
                let mut nz = NonZeros::with_kernel(kernel);
                let fraction = nz.list(x.as_slice().unwrap(), k);
                let (mut out, mut dw) = (vec![0.0; rows * n], vec![0.0; k * n]);
                nz.forward(w.as_slice().unwrap(), b.as_slice().unwrap(), &mut out);
                nz.weight_grad(dout.as_slice().unwrap(), n, &mut dw);
                let lists: Vec<_> = (0..k.div_ceil(2))
                    .map(|p| {
                        let (r, l, rt) = nz.pair(p);
                        (r.to_vec(), l.to_vec(), rt.to_vec())
                    })
                    .collect();
                (fraction, lists, out, dw)
            });
            assert!(results[0] == results[1], "{rows}×{k}×{n}");
        }
    }
}
