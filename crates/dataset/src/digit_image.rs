//! Any photo or drawing of a digit → a 28×28 MNIST-like input.
//!
//! MNIST digits are white on black, fit in a 20×20 box, and are centred by their centre of
//! mass in a 28×28 field. So: convert to grey; invert when the background (the border
//! pixels) is light; crop to the pixels brighter than a fraction of the maximum; scale the
//! longer side to 20 pixels keeping the aspect ratio; paste so the centre of mass lands at
//! the centre.

use std::path::Path;

use image::{GrayImage, imageops::FilterType};

use crate::error::{DatasetError, Result};

pub const SIDE: usize = 28;
const BOX: u32 = 20;
/// Pixels above this fraction of the brightest pixel belong to the digit when cropping.
const INK_FRACTION: f32 = 0.2;

/// Loads `path` and returns 784 values in [0, 1], row-major, white digit on black.
pub fn mnist_input(path: &Path) -> Result<Vec<f32>> {
    let bad = |reason: String| DatasetError::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    let img = crate::image_file::open(path)?;
    to_mnist(&img.to_luma8()).map_err(|why| bad(format!("no digit found: {why}")))
}

/// The same for an image already in memory; `Err` says why no digit was found.
pub fn to_mnist(grey: &GrayImage) -> std::result::Result<Vec<f32>, &'static str> {
    let (w, h) = grey.dimensions();
    if w == 0 || h == 0 {
        return Err("the image is empty");
    }
    let border: Vec<u8> = grey
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x == w - 1 || *y == h - 1)
        .map(|(_, _, p)| p[0])
        .collect();
    let border_mean = border.iter().map(|&v| v as f32).sum::<f32>() / border.len() as f32;
    let mut ink = grey.clone();
    if border_mean > 127.0 {
        image::imageops::invert(&mut ink);
    }
    // Background to 0, so faint paper texture does not count as ink.
    let background = border_mean.min(255.0 - border_mean) as u8;
    for p in ink.pixels_mut() {
        p[0] = p[0].saturating_sub(background);
    }
    let max = ink.pixels().map(|p| p[0]).max().unwrap_or(0);
    if max == 0 {
        return Err("the image is blank");
    }
    let threshold = (max as f32 * INK_FRACTION) as u8;
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in ink.enumerate_pixels() {
        if p[0] > threshold {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    let crop = image::imageops::crop_imm(&ink, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    let scale = BOX as f32 / crop.width().max(crop.height()) as f32;
    let (cw, ch) = (
        ((crop.width() as f32 * scale).round() as u32).max(1),
        ((crop.height() as f32 * scale).round() as u32).max(1),
    );
    let digit = image::imageops::resize(&crop, cw, ch, FilterType::Triangle);
    // Centre of mass of the scaled digit.
    let (mut mx, mut my, mut mass) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y, p) in digit.enumerate_pixels() {
        let v = p[0] as f32;
        mx += v * x as f32;
        my += v * y as f32;
        mass += v;
    }
    let (cx, cy) = if mass > 0.0 {
        (mx / mass, my / mass)
    } else {
        (cw as f32 / 2.0, ch as f32 / 2.0)
    };
    let off_x = (SIDE as f32 / 2.0 - cx).round() as i64;
    let off_y = (SIDE as f32 / 2.0 - cy).round() as i64;
    let mut out = vec![0.0f32; SIDE * SIDE];
    for (x, y, p) in digit.enumerate_pixels() {
        let (tx, ty) = (x as i64 + off_x, y as i64 + off_y);
        if (0..SIDE as i64).contains(&tx) && (0..SIDE as i64).contains(&ty) {
            out[ty as usize * SIDE + tx as usize] = p[0] as f32 / 255.0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dark vertical stroke on white paper, off-centre, in a 100×60 picture.
    fn stroke_on_paper() -> GrayImage {
        GrayImage::from_fn(60, 100, |x, y| {
            image::Luma([if (10..16).contains(&x) && (20..80).contains(&y) {
                20
            } else {
                240
            }])
        })
    }

    #[test]
    fn light_background_is_inverted_cropped_and_centred() {
        let v = to_mnist(&stroke_on_paper()).unwrap();
        assert_eq!(v.len(), 784);
        let at = |x: usize, y: usize| v[y * SIDE + x];
        assert!(at(0, 0) == 0.0 && at(27, 27) == 0.0, "background is black");
        assert!(at(14, 14) > 0.5, "the stroke is white and centred");
        let rows_with_ink = (0..SIDE)
            .filter(|&y| (0..SIDE).any(|x| at(x, y) > 0.1))
            .count();
        assert!(
            (18..=21).contains(&rows_with_ink),
            "scaled to the 20-pixel box: {rows_with_ink}"
        );
    }

    #[test]
    fn blank_image_is_an_error() {
        assert!(to_mnist(&GrayImage::from_pixel(28, 28, image::Luma([255]))).is_err());
    }
}
