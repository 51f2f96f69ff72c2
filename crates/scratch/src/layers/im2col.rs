//! im2col and col2im: a convolution as one matrix product.
//!
//! Every output position's receptive field (size × size pixels, all channels) is copied
//! into one row of a "column" matrix, so convolving with K filters is
//! `cols (positions, size·size·C) · W (size·size·C, K)`. Images are channels-last, so a
//! window row (size pixels × C channels) is one contiguous run of the input: each is a
//! single `copy_from_slice`. col2im is the adjoint: it adds each row back onto the pixels
//! it came from (overlapping windows accumulate), which is the gradient of im2col.

use ndarray::parallel::prelude::*;
use ndarray::{Array2, Axis};

/// Where a square window of `size` moves over a padded image, in steps of `stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub in_height: usize,
    pub in_width: usize,
    pub channels: usize,
    pub size: usize,
    pub stride: usize,
    pub pad: usize,
    pub out_height: usize,
    pub out_width: usize,
}

impl Window {
    /// `None` when the window does not fit in the padded image or a size is zero.
    pub fn new(
        (in_height, in_width, channels): (usize, usize, usize),
        size: usize,
        stride: usize,
        pad: usize,
    ) -> Option<Self> {
        if size == 0 || stride == 0 || channels == 0 {
            return None;
        }
        let span = |n: usize| (n + 2 * pad).checked_sub(size).map(|d| d / stride + 1);
        Some(Self {
            in_height,
            in_width,
            channels,
            size,
            stride,
            pad,
            out_height: span(in_height)?,
            out_width: span(in_width)?,
        })
    }

    /// Output positions per image.
    pub fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Values in one receptive field: one row of the column matrix.
    pub fn patch_len(&self) -> usize {
        self.size * self.size * self.channels
    }

    pub fn input_len(&self) -> usize {
        self.in_height * self.in_width * self.channels
    }

    /// For output position (oy, ox), window row ry: the input row, and the window columns
    /// `rx_lo..rx_hi` that fall inside the image with the first one's input column.
    #[inline]
    fn row_span(&self, oy: usize, ox: usize, ry: usize) -> Option<(usize, usize, usize, usize)> {
        let iy = (oy * self.stride + ry).checked_sub(self.pad)?;
        if iy >= self.in_height {
            return None;
        }
        let x0 = ox * self.stride; // padded coordinate of window column 0
        let rx_lo = self.pad.saturating_sub(x0).min(self.size);
        let rx_hi = (self.in_width + self.pad).saturating_sub(x0).min(self.size);
        if rx_lo >= rx_hi {
            return None;
        }
        Some((iy, rx_lo, rx_hi, x0 + rx_lo - self.pad))
    }
}

/// One image (channels-last, `w.input_len()` values) into `cols` (positions × patch_len).
pub fn im2col_image(w: &Window, image: &[f32], cols: &mut [f32]) {
    let c = w.channels;
    let row_len = w.size * c;
    for oy in 0..w.out_height {
        for ox in 0..w.out_width {
            let patch = &mut cols[(oy * w.out_width + ox) * w.patch_len()..][..w.patch_len()];
            for ry in 0..w.size {
                let dst = &mut patch[ry * row_len..][..row_len];
                match w.row_span(oy, ox, ry) {
                    None => dst.fill(0.0),
                    Some((iy, lo, hi, ix)) => {
                        dst[..lo * c].fill(0.0);
                        let src = (iy * w.in_width + ix) * c;
                        dst[lo * c..hi * c].copy_from_slice(&image[src..src + (hi - lo) * c]);
                        dst[hi * c..].fill(0.0);
                    }
                }
            }
        }
    }
}

/// Adds one image's column rows back onto its pixels: `image` must start zeroed.
pub fn col2im_image(w: &Window, cols: &[f32], image: &mut [f32]) {
    let c = w.channels;
    let row_len = w.size * c;
    for oy in 0..w.out_height {
        for ox in 0..w.out_width {
            let patch = &cols[(oy * w.out_width + ox) * w.patch_len()..][..w.patch_len()];
            for ry in 0..w.size {
                if let Some((iy, lo, hi, ix)) = w.row_span(oy, ox, ry) {
                    let src = &patch[ry * row_len + lo * c..ry * row_len + hi * c];
                    let dst = (iy * w.in_width + ix) * c;
                    for (d, s) in image[dst..dst + src.len()].iter_mut().zip(src) {
                        *d += s;
                    }
                }
            }
        }
    }
}

/// A batch `x` (n, input_len) into `cols` (n·positions, patch_len), images in parallel.
pub fn im2col(w: &Window, x: &Array2<f32>, cols: &mut Array2<f32>) {
    let n = x.nrows();
    assert_eq!(x.ncols(), w.input_len());
    if cols.dim() != (n * w.positions(), w.patch_len()) {
        *cols = Array2::zeros((n * w.positions(), w.patch_len()));
    }
    cols.axis_chunks_iter_mut(Axis(0), w.positions())
        .into_par_iter()
        .zip(x.axis_iter(Axis(0)).into_par_iter())
        .for_each(|(mut block, image)| {
            im2col_image(
                w,
                image.as_slice().expect("row-major input"),
                block.as_slice_mut().expect("row-major columns"),
            )
        });
}

/// The gradient of [`im2col`]: `dcols` (n·positions, patch_len) back to (n, input_len).
pub fn col2im(w: &Window, dcols: &Array2<f32>, n: usize) -> Array2<f32> {
    let mut dx = Array2::zeros((n, w.input_len()));
    dx.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(
            dcols
                .axis_chunks_iter(Axis(0), w.positions())
                .into_par_iter(),
        )
        .for_each(|(mut image, block)| {
            col2im_image(
                w,
                block.as_slice().expect("row-major columns"),
                image.as_slice_mut().expect("row-major output"),
            )
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious definition: index every window element, zero outside the image.
    fn im2col_reference(w: &Window, image: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        for oy in 0..w.out_height {
            for ox in 0..w.out_width {
                for ry in 0..w.size {
                    for rx in 0..w.size {
                        for ch in 0..w.channels {
                            let iy = (oy * w.stride + ry) as isize - w.pad as isize;
                            let ix = (ox * w.stride + rx) as isize - w.pad as isize;
                            let inside = iy >= 0
                                && ix >= 0
                                && (iy as usize) < w.in_height
                                && (ix as usize) < w.in_width;
                            out.push(if inside {
                                image[(iy as usize * w.in_width + ix as usize) * w.channels + ch]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_element_by_element_definition() {
        for (h, wd, c, size, stride, pad) in [
            (5, 5, 1, 3, 1, 0),
            (5, 4, 2, 3, 2, 1),
            (7, 7, 3, 3, 2, 2),
            (4, 6, 2, 5, 1, 2),
            (6, 6, 1, 2, 2, 0),
            (3, 3, 2, 1, 1, 0),
        ] {
            let w = Window::new((h, wd, c), size, stride, pad).unwrap();
            let image: Vec<f32> = (0..w.input_len()).map(|i| i as f32 + 1.0).collect();
            let mut cols = vec![f32::NAN; w.positions() * w.patch_len()];
            im2col_image(&w, &image, &mut cols);
            assert_eq!(cols, im2col_reference(&w, &image), "{w:?}");
        }
    }

    /// col2im is the adjoint of im2col: <im2col(x), y> = <x, col2im(y)> for all x, y.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let w = Window::new((5, 6, 2), 3, 2, 1).unwrap();
        let x: Vec<f32> = (0..w.input_len())
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let y: Vec<f32> = (0..w.positions() * w.patch_len())
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let mut cols = vec![0.0; y.len()];
        im2col_image(&w, &x, &mut cols);
        let mut back = vec![0.0; x.len()];
        col2im_image(&w, &y, &mut back);
        let lhs: f32 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }

    #[test]
    fn output_size_follows_the_course_formula() {
        // OH = (H + 2P - FH) / S + 1
        let w = Window::new((28, 28, 1), 5, 1, 0).unwrap();
        assert_eq!((w.out_height, w.out_width), (24, 24));
        let w = Window::new((32, 32, 3), 3, 2, 1).unwrap();
        assert_eq!((w.out_height, w.out_width), (16, 16));
        assert!(Window::new((2, 2, 1), 5, 1, 1).is_none());
    }
}
