//! Conv2D on plain f32 slices in NCHW order: im2col per image, one GEMM per image, and
//! the two backward products, each image on its own rayon task.
//!
//! What `kernels::flex` runs for Conv2D on the flex backend. flex's own convolution takes
//! ~14 ms forward and ~42 ms forward + backward for the course CNN's second layer (batch
//! 32, 32 → 64 channels, 3×3, 28×28), where the three products themselves are ~1.4 GFLOP,
//! a few milliseconds at this machine's GEMM rate. Per image, the columns (C·kh·kw rows ×
//! H·W pixels, ~0.9 MB for that layer) stay in the core's cache between im2col and the
//! GEMM that reads them, and the backward recomputes them instead of keeping 29 MB per
//! batch alive.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use rayon::prelude::*;

/// Keras's / burn's "same" padding along one axis: (before, after).
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// A layer's zero padding for an input of `height` × `width`: ((top, bottom), (left, right)).
pub fn padding(conv: &Conv2d, height: usize, width: usize) -> ((usize, usize), (usize, usize)) {
    let ([kh, kw], [sh, sw]) = (conv.kernel_size, conv.stride);
    match conv.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (same_padding(kh, sh, height), same_padding(kw, sw, width)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
    }
}

/// The shapes of one Conv2D call (no dilation, no groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    pub filters: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zero padding before the first row and column (the padding after follows from
    /// `output`).
    pub padding: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
}

impl Geometry {
    /// Rows of the column matrix: C·kh·kw.
    pub fn patch(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Output pixels per image.
    pub fn pixels(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Input values per image.
    pub fn image(&self) -> usize {
        self.channels * self.input[0] * self.input[1]
    }

    /// Output values per image.
    pub fn output_image(&self) -> usize {
        self.filters * self.pixels()
    }
}

/// Where output index `o` reads along one axis: `o·stride + tap − padding`, or `None`
/// in the padding.
#[inline]
fn source(o: usize, stride: usize, tap: usize, padding: usize, size: usize) -> Option<usize> {
    (o * stride + tap)
        .checked_sub(padding)
        .filter(|&i| i < size)
}

/// The output range `lo..hi` whose sources along one axis (`o·stride + tap − padding`)
/// lie inside the input; outputs outside it read the padding.
#[inline]
fn valid_range(
    out: usize,
    stride: usize,
    tap: usize,
    padding: usize,
    size: usize,
) -> (usize, usize) {
    let lo = padding.saturating_sub(tap).div_ceil(stride).min(out);
    let hi = (size + padding)
        .saturating_sub(tap)
        .div_ceil(stride)
        .min(out)
        .max(lo);
    (lo, hi)
}

/// What window column `j` reads along a row: outputs `lo..hi` read inside the input,
/// the first of them at `at` in the row as [`split_rows`] stores it (the plain row
/// without a width stride); outputs outside the range read the padding.
#[derive(Clone, Copy)]
struct Tap {
    lo: usize,
    hi: usize,
    at: usize,
}

/// The kw taps of a geometry, computed once per call: the divisions they need would
/// otherwise cost more than copying the few values of each window row.
fn taps(g: &Geometry) -> Vec<Tap> {
    let (ow_n, width, sw, pw) = (g.output[1], g.input[1], g.stride[1], g.padding[1]);
    (0..g.kernel[1])
        .map(|j| {
            let (lo, hi) = valid_range(ow_n, sw, j, pw, width);
            // Output lo reads input lo·sw + j − pw, and each next one sw further on: in
            // the split row, consecutive values of that input's phase.
            let at = if lo < hi {
                let first = lo * sw + j - pw;
                phase_start(width, sw, first % sw) + first / sw
            } else {
                0
            };
            Tap { lo, hi, at }
        })
        .collect()
}

/// Visits every window row of one image: where it lies in the columns (row (c·kh + i)·kw
/// + j, output row oh), where its input row starts (`None` in the padding), and its tap.
fn for_each_row(g: &Geometry, mut visit: impl FnMut(usize, Option<usize>, Tap)) {
    let ([height, width], [kh, kw]) = (g.input, g.kernel);
    let (pixels, ow_n, taps) = (g.pixels(), g.output[1], taps(g));
    for c in 0..g.channels {
        for i in 0..kh {
            for oh in 0..g.output[0] {
                let base = source(oh, g.stride[0], i, g.padding[0], height)
                    .map(|ih| (c * height + ih) * width);
                for (j, &tap) in taps.iter().enumerate() {
                    visit(((c * kh + i) * kw + j) * pixels + oh * ow_n, base, tap);
                }
            }
        }
    }
}

/// Where phase `q` starts in a row of `width` values stored phase by phase for `stride`:
/// x[0], x[s], x[2s], …, then x[1], x[1 + s], …, and so on (see [`split_rows`]).
fn phase_start(width: usize, stride: usize, q: usize) -> usize {
    (0..q)
        .map(|p| width.saturating_sub(p).div_ceil(stride))
        .sum()
}

/// Copies every row of `x` (rows of `width`) into `split` phase by phase, so that the
/// values a strided window row reads (x[f], x[f + s], …) lie next to each other.
fn split_rows(x: &[f32], width: usize, stride: usize, split: &mut [f32]) {
    for (row, out) in x.chunks(width).zip(split.chunks_mut(width)) {
        let mut out = out.iter_mut();
        for q in 0..stride {
            // The phase first: zip stops at its end without taking a slot from `out`.
            for (v, o) in row.iter().skip(q).step_by(stride).zip(&mut out) {
                *o = *v;
            }
        }
    }
}

/// The adjoint of [`split_rows`]: adds each phase-by-phase row back onto `x`.
fn merge_rows(split: &[f32], width: usize, stride: usize, x: &mut [f32]) {
    for (row, from) in x.chunks_mut(width).zip(split.chunks(width)) {
        let mut from = from.iter();
        for q in 0..stride {
            for (t, f) in row.iter_mut().skip(q).step_by(stride).zip(&mut from) {
                *t += f;
            }
        }
    }
}

/// One image's columns: `cols[(c·kh + i)·kw + j][oh·OW + ow] = x[c][oh·sh + i − ph][ow·sw + j − pw]`
/// (0 in the padding). `x` is one image (C·H·W), `cols` is C·kh·kw × OH·OW. With a
/// width stride, the rows are first copied phase by phase into `split` (resized as
/// needed), so that every window row is one contiguous copy.
pub fn im2col(g: &Geometry, x: &[f32], cols: &mut [f32], split: &mut Vec<f32>) {
    let (ow_n, width, sw) = (g.output[1], g.input[1], g.stride[1]);
    let rows = if sw > 1 {
        split.resize(x.len(), 0.0);
        split_rows(x, width, sw, split);
        &split[..]
    } else {
        x
    };
    for_each_row(g, |at, base, Tap { lo, hi, at: from }| {
        let out = &mut cols[at..at + ow_n];
        let Some(base) = base else {
            out.fill(0.0);
            return;
        };
        out[..lo].fill(0.0);
        out[hi..].fill(0.0);
        out[lo..hi].copy_from_slice(&rows[base + from..][..hi - lo]);
    });
}

/// The adjoint of [`im2col`]: adds every column entry back onto the input value it was
/// copied from. `dx` is one image (C·H·W) and is accumulated into; with a width
/// stride the sums are gathered phase by phase in `split` first.
pub fn col2im(g: &Geometry, cols: &[f32], dx: &mut [f32], split: &mut Vec<f32>) {
    let (width, sw) = (g.input[1], g.stride[1]);
    let add = |rows: &mut [f32]| {
        for_each_row(g, |at, base, Tap { lo, hi, at: to }| {
            let Some(base) = base else { return };
            let from = &cols[at + lo..at + hi];
            for (t, f) in rows[base + to..][..hi - lo].iter_mut().zip(from) {
                *t += f;
            }
        });
    };
    if sw > 1 {
        split.clear();
        split.resize(dx.len(), 0.0);
        add(split);
        merge_rows(split, width, sw, dx);
    } else {
        add(dx);
    }
}

/// A row-major matrix view for [`gemm`]: pointer, rows stride, columns stride.
struct View<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    fn rows(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    fn transposed(data: &'a [f32], cols: usize) -> Self {
        View {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }
}

/// `dst (m×n, row-major) = [dst +] lhs (m×k) · rhs (k×n)` on the calling thread.
fn gemm(m: usize, n: usize, k: usize, dst: &mut [f32], accumulate: bool, lhs: View, rhs: View) {
    let last = |v: &View, r: usize, c: usize| (r - 1) * v.row_stride + (c - 1) * v.col_stride;
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.data.len() > last(&lhs, m, k));
    assert!(k == 0 || n == 0 || rhs.data.len() > last(&rhs, k, n));
    // SAFETY: the asserts above keep every index the product touches inside the slices;
    // `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Images per rayon task: one contiguous run of the batch per thread, so each thread
/// allocates its column buffer once per call.
fn run_length(g: &Geometry) -> usize {
    g.batch.div_ceil(rayon::current_num_threads()).max(1)
}

/// One image's output: `y_n (F × P) += w (F × C·kh·kw) · cols`.
fn add_output(g: &Geometry, w: &[f32], cols: &[f32], y_n: &mut [f32]) {
    let (patch, pixels) = (g.patch(), g.pixels());
    gemm(
        g.filters,
        pixels,
        patch,
        y_n,
        true,
        View::rows(w, patch),
        View::rows(cols, pixels),
    );
}

/// One image's share of the weight gradient: `dw += dy_n (F × P) · colsᵀ (P × C·kh·kw)`.
fn add_weight_gradient(g: &Geometry, dy_n: &[f32], cols: &[f32], dw: &mut [f32]) {
    let (patch, pixels) = (g.patch(), g.pixels());
    gemm(
        g.filters,
        patch,
        pixels,
        dw,
        true,
        View::rows(dy_n, pixels),
        View::transposed(cols, pixels),
    );
}

/// `a += b`, element by element: how the runs' weight gradients are summed.
fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
    a
}

/// `y = conv(x, w) + b` for the whole batch. `x` is N·C·H·W, `w` F·C·kh·kw, `b` F;
/// returns N·F·OH·OW.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let (patch, pixels) = (g.patch(), g.pixels());
    let (image, output_image, run) = (g.image().max(1), g.output_image().max(1), run_length(g));
    let mut y = vec![0.0f32; g.batch * g.output_image()];
    y.par_chunks_mut(run * output_image)
        .zip(x.par_chunks(run * image))
        .for_each(|(y_run, x_run)| {
            let (mut cols, mut split) = (vec![0.0f32; patch * pixels], Vec::new());
            for (y_n, x_n) in y_run.chunks_mut(output_image).zip(x_run.chunks(image)) {
                im2col(g, x_n, &mut cols, &mut split);
                for (row, &bias) in y_n.chunks_mut(pixels).zip(b) {
                    row.fill(bias);
                }
                add_output(g, w, &cols, y_n);
            }
        });
    y
}

/// The weight and bias gradients, dL/dw (F·C·kh·kw) and dL/db (F), from the input `x`
/// and the output gradient `dy`.
pub fn backward_params(g: &Geometry, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (patch, pixels, filters) = (g.patch(), g.pixels(), g.filters);
    let (image, output_image, run) = (g.image().max(1), g.output_image().max(1), run_length(g));
    let zeros = || (vec![0.0f32; filters * patch], vec![0.0f32; filters]);
    x.par_chunks(run * image)
        .zip(dy.par_chunks(run * output_image))
        .map(|(x_run, dy_run)| {
            let (mut dw, mut db) = zeros();
            let (mut cols, mut split) = (vec![0.0f32; patch * pixels], Vec::new());
            for (x_n, dy_n) in x_run.chunks(image).zip(dy_run.chunks(output_image)) {
                im2col(g, x_n, &mut cols, &mut split);
                add_weight_gradient(g, dy_n, &cols, &mut dw);
                for (d, row) in db.iter_mut().zip(dy_n.chunks(pixels)) {
                    *d += row.iter().sum::<f32>();
                }
            }
            (dw, db)
        })
        .reduce(zeros, |(dw, db), (dw2, db2)| {
            (add_into(dw, dw2), add_into(db, db2))
        })
}

/// [`forward`] without bias and [`backward_params`]' weight gradient for the same `x`,
/// sharing each image's columns: a transposed convolution's backward needs both (its
/// output gradient is `x` here and its input is `dy`), and im2col would otherwise run
/// twice per image. Returns (y, dL/dw), the same values the two calls return.
pub fn forward_and_weight_gradient(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (patch, pixels, filters) = (g.patch(), g.pixels(), g.filters);
    let (image, output_image, run) = (g.image().max(1), g.output_image().max(1), run_length(g));
    let mut y = vec![0.0f32; g.batch * g.output_image()];
    let zeros = || vec![0.0f32; filters * patch];
    let dw = y
        .par_chunks_mut(run * output_image)
        .zip(x.par_chunks(run * image))
        .zip(dy.par_chunks(run * output_image))
        .map(|((y_run, x_run), dy_run)| {
            let mut dw = zeros();
            let (mut cols, mut split) = (vec![0.0f32; patch * pixels], Vec::new());
            let images = y_run.chunks_mut(output_image).zip(x_run.chunks(image));
            for ((y_n, x_n), dy_n) in images.zip(dy_run.chunks(output_image)) {
                im2col(g, x_n, &mut cols, &mut split);
                add_output(g, w, &cols, y_n); // onto zeros: no bias
                add_weight_gradient(g, dy_n, &cols, &mut dw);
            }
            dw
        })
        .reduce(zeros, add_into);
    (y, dw)
}

/// The input gradient dL/dx (N·C·H·W) from the weights and the output gradient `dy`.
pub fn backward_input(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (patch, pixels) = (g.patch(), g.pixels());
    let (image, output_image, run) = (g.image().max(1), g.output_image().max(1), run_length(g));
    let mut dx = vec![0.0f32; g.batch * g.image()];
    dx.par_chunks_mut(run * image)
        .zip(dy.par_chunks(run * output_image))
        .for_each(|(dx_run, dy_run)| {
            let (mut dcols, mut split) = (vec![0.0f32; patch * pixels], Vec::new());
            for (dx_n, dy_n) in dx_run.chunks_mut(image).zip(dy_run.chunks(output_image)) {
                // dcols (C·kh·kw × P) = wᵀ · dy_n (F × P)
                gemm(
                    patch,
                    pixels,
                    g.filters,
                    &mut dcols,
                    false,
                    View::transposed(w, patch),
                    View::rows(dy_n, pixels),
                );
                col2im(g, &dcols, dx_n, &mut split);
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The definition, one output at a time.
    fn direct(g: &Geometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let ([h, wd], [kh, kw], [oh_n, ow_n]) = (g.input, g.kernel, g.output);
        let mut y = vec![0.0f32; g.batch * g.output_image()];
        for n in 0..g.batch {
            for f in 0..g.filters {
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        let mut sum = b[f];
                        for c in 0..g.channels {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let ih = source(oh, g.stride[0], i, g.padding[0], h);
                                    let iw = source(ow, g.stride[1], j, g.padding[1], wd);
                                    if let (Some(ih), Some(iw)) = (ih, iw) {
                                        sum += x[((n * g.channels + c) * h + ih) * wd + iw]
                                            * w[((f * g.channels + c) * kh + i) * kw + j];
                                    }
                                }
                            }
                        }
                        y[((n * g.filters + f) * oh_n + oh) * ow_n + ow] = sum;
                    }
                }
            }
        }
        y
    }

    /// Same 3×3 stride 1, 'same' 4×4 stride 2 (the DCGAN's), valid 2×3 stride (2, 1), and
    /// a 5×5 kernel over a smaller padded input with strides (2, 3), where some taps
    /// read only padding.
    fn geometries() -> Vec<Geometry> {
        let g = |input: [usize; 2], kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]| {
            let out =
                |a: usize| (input[a] + 2 * padding[a]).saturating_sub(kernel[a]) / stride[a] + 1;
            Geometry {
                batch: 3,
                channels: 2,
                input,
                filters: 4,
                kernel,
                stride,
                padding,
                output: [out(0), out(1)],
            }
        };
        vec![
            g([5, 6], [3, 3], [1, 1], [1, 1]),
            g([8, 8], [4, 4], [2, 2], [1, 1]),
            g([7, 5], [2, 3], [2, 1], [0, 0]),
            g([3, 4], [5, 5], [2, 3], [2, 2]),
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in geometries() {
            let x = values(g.batch * g.image(), 1);
            let w = values(g.filters * g.patch(), 2);
            let b = values(g.filters, 3);
            let (ours, want) = (forward(&g, &x, &w, &b), direct(&g, &x, &w, &b));
            assert_eq!(ours.len(), want.len());
            for (a, e) in ours.iter().zip(&want) {
                assert!((a - e).abs() < 1e-5, "{g:?}: {a} vs {e}");
            }
        }
    }

    /// The shared-columns call gives exactly what the two separate calls give.
    #[test]
    fn forward_and_weight_gradient_equal_the_separate_calls() {
        for g in geometries() {
            let x = values(g.batch * g.image(), 8);
            let w = values(g.filters * g.patch(), 9);
            let dy = values(g.batch * g.output_image(), 10);
            let (y, dw) = forward_and_weight_gradient(&g, &x, &w, &dy);
            assert_eq!(y, forward(&g, &x, &w, &vec![0.0; g.filters]), "{g:?}");
            assert_eq!(dw, backward_params(&g, &x, &dy).0, "{g:?}");
        }
    }

    /// Central differences of L = Σ y·r (r fixed random) against the analytic gradients.
    #[test]
    fn backward_matches_numerical_gradients() {
        for g in geometries() {
            let x = values(g.batch * g.image(), 4);
            let w = values(g.filters * g.patch(), 5);
            let b = values(g.filters, 6);
            let r = values(g.batch * g.output_image(), 7);
            let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
                direct(&g, x, w, b)
                    .iter()
                    .zip(&r)
                    .map(|(y, r)| (*y as f64) * (*r as f64))
                    .sum()
            };
            let (dw, db) = backward_params(&g, &x, &r);
            let dx = backward_input(&g, &w, &r);
            let eps = 1e-2f32;
            let numeric = |which: usize, i: usize| {
                let (mut xp, mut wp, mut bp) = (x.clone(), w.clone(), b.clone());
                let (mut xm, mut wm, mut bm) = (x.clone(), w.clone(), b.clone());
                match which {
                    0 => (xp[i] += eps, xm[i] -= eps),
                    1 => (wp[i] += eps, wm[i] -= eps),
                    _ => (bp[i] += eps, bm[i] -= eps),
                };
                (loss(&xp, &wp, &bp) - loss(&xm, &wm, &bm)) / (2.0 * eps as f64)
            };
            for (which, grad) in [(0, &dx), (1, &dw), (2, &db)] {
                for (i, &analytic) in grad.iter().enumerate() {
                    let n = numeric(which, i);
                    assert!(
                        (analytic as f64 - n).abs() < 1e-3 * (1.0 + n.abs()),
                        "{g:?} input {which} entry {i}: {analytic} vs {n}"
                    );
                }
            }
        }
    }
}
