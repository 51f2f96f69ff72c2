//! Turning numbers into pictures: planes scaled to their own range, grids of tiles, a
//! heat-map colour scale, bilinear upsampling and overlays.

use image::{Rgb, RgbImage};

/// The range of `values`, (0, 1) when empty; a constant plane gets a range starting at it,
/// so it shows black (a ReLU map that never fired).
fn range(values: &[f32]) -> (f32, f32) {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo, lo + 1.0)
    } else {
        (lo, hi)
    }
}

/// `values` to 0-255 with `lo` black and `hi` white.
fn level(v: f32, (lo, hi): (f32, f32)) -> u8 {
    (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8
}

/// A grey `width` × `height` plane, darkest value black and brightest white (each map and
/// kernel has its own scale, so the pattern shows whatever its magnitude).
pub fn grey_plane(values: &[f32], width: usize, height: usize) -> RgbImage {
    let r = range(values);
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let g = level(values[y as usize * width + x as usize], r);
        Rgb([g, g, g])
    })
}

/// Three planes (R, G, B; each `width` × `height`) as one colour picture, scaled together
/// to their joint range, so the kernel's colour balance stays.
pub fn colour_planes(values: &[f32], width: usize, height: usize) -> RgbImage {
    let r = range(values);
    let n = width * height;
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let i = y as usize * width + x as usize;
        Rgb([
            level(values[i], r),
            level(values[n + i], r),
            level(values[2 * n + i], r),
        ])
    })
}

/// A network input (C planes of `width` × `height`, 1 grey or 3 RGB) as a picture.
pub fn input_picture(values: &[f32], channels: usize, width: usize, height: usize) -> RgbImage {
    if channels == 3 {
        colour_planes(values, width, height)
    } else {
        grey_plane(&values[..width * height], width, height)
    }
}

/// The whole factor that enlarges a `height` × `width` picture to about `side` pixels
/// on its longer side (at least 1).
pub fn enlargement(height: usize, width: usize, side: usize) -> u32 {
    (side / height.max(width).max(1)).max(1) as u32
}

/// `image` enlarged `factor` times, nearest neighbour (crisp pixels).
pub fn enlarged(image: &RgbImage, factor: u32) -> RgbImage {
    let factor = factor.max(1);
    RgbImage::from_fn(image.width() * factor, image.height() * factor, |x, y| {
        *image.get_pixel(x / factor, y / factor)
    })
}

/// `tiles` (all the size of the first) in rows of `cols`, `gap` pixels apart on grey.
pub fn grid(tiles: &[RgbImage], cols: usize, gap: u32) -> RgbImage {
    let Some(first) = tiles.first() else {
        return RgbImage::from_pixel(1, 1, Rgb([128, 128, 128]));
    };
    let (w, h) = first.dimensions();
    let cols = cols.clamp(1, tiles.len()) as u32;
    let rows = (tiles.len() as u32).div_ceil(cols);
    let mut canvas = RgbImage::from_pixel(
        cols * (w + gap) + gap,
        rows * (h + gap) + gap,
        Rgb([128, 128, 128]),
    );
    for (i, tile) in tiles.iter().enumerate() {
        let (x0, y0) = (
            gap + (i as u32 % cols) * (w + gap),
            gap + (i as u32 / cols) * (h + gap),
        );
        image::imageops::replace(&mut canvas, tile, x0.into(), y0.into());
    }
    canvas
}

/// Columns for `n` tiles: a near-square grid, at most `max_cols` wide.
pub fn columns(n: usize, max_cols: usize) -> usize {
    (n as f64).sqrt().ceil().clamp(1.0, max_cols.max(1) as f64) as usize
}

/// The "jet" colour of `t` in [0, 1] (blue, cyan, yellow, red), as the Keras Grad-CAM
/// example colours its heat maps.
pub fn jet(t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    let channel = |centre: f32| (1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0);
    let to_u8 = |v: f32| (v * 255.0).round() as u8;
    Rgb([
        to_u8(channel(3.0)),
        to_u8(channel(2.0)),
        to_u8(channel(1.0)),
    ])
}

/// `values` (h × w) resized to `out_h` × `out_w`, bilinear with pixel centres aligned as
/// in OpenCV's and PyTorch's `align_corners=False`.
pub fn upsample(
    values: &[f32],
    (h, w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    let source = |o: usize, out: usize, len: usize| {
        let s = ((o as f32 + 0.5) * len as f32 / out as f32 - 0.5).clamp(0.0, (len - 1) as f32);
        let i = s.floor() as usize;
        (i, (i + 1).min(len - 1), s - i as f32)
    };
    let mut out = Vec::with_capacity(out_h * out_w);
    for oy in 0..out_h {
        let (y0, y1, fy) = source(oy, out_h, h);
        for ox in 0..out_w {
            let (x0, x1, fx) = source(ox, out_w, w);
            let at = |y: usize, x: usize| values[y * w + x];
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// `heat` (values in [0, 1], the picture's size) in jet colours laid over `picture`:
/// 60% picture, 40% heat, as the Keras example superimposes them.
pub fn overlay(picture: &RgbImage, heat: &[f32]) -> RgbImage {
    let width = picture.width() as usize;
    RgbImage::from_fn(picture.width(), picture.height(), |x, y| {
        let colour = jet(heat[y as usize * width + x as usize]);
        let p = picture.get_pixel(x, y);
        Rgb(std::array::from_fn(|c| {
            (0.6 * p[c] as f32 + 0.4 * colour[c] as f32).round() as u8
        }))
    })
}

/// `heat` alone in jet colours, `width` wide.
pub fn heat_picture(heat: &[f32], width: usize, height: usize) -> RgbImage {
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        jet(heat[y as usize * width + x as usize])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_are_scaled_to_their_own_range() {
        let p = grey_plane(&[-3.0, -1.0, 1.0, 5.0], 2, 2);
        assert_eq!(p.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(p.get_pixel(1, 1).0, [255, 255, 255]);
        // A constant plane is black, not a division by zero.
        assert_eq!(grey_plane(&[2.0; 4], 2, 2).get_pixel(0, 0).0, [0; 3]);
        let c = colour_planes(&[0.0, 1.0, 0.5, 0.5, 1.0, 0.0], 2, 1);
        assert_eq!(c.get_pixel(0, 0).0, [0, 128, 255]);
        assert_eq!(c.get_pixel(1, 0).0, [255, 128, 0]);
    }

    #[test]
    fn upsampling_keeps_constants_and_interpolates_between_centres() {
        let up = upsample(&[1.0; 4], (2, 2), (5, 7));
        assert_eq!(up.len(), 35);
        assert!(up.iter().all(|&v| (v - 1.0).abs() < 1e-6));
        // 1 × 2 → 1 × 4: centres at 0.25 and 0.75 of the way: PyTorch gives
        // [0, 0.25, 0.75, 1] for align_corners=False.
        let row = upsample(&[0.0, 1.0], (1, 2), (1, 4));
        for (got, want) in row.iter().zip([0.0, 0.25, 0.75, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{row:?}");
        }
    }

    #[test]
    fn jet_runs_from_blue_to_red_and_grids_place_every_tile() {
        assert_eq!(jet(0.0).0, [0, 0, 128]);
        assert_eq!(jet(1.0).0, [128, 0, 0]);
        assert_eq!(jet(0.5).0[1], 255);
        let tiles: Vec<RgbImage> = (0..5)
            .map(|i| RgbImage::from_pixel(3, 2, Rgb([i * 50, 0, 0])))
            .collect();
        let g = grid(&tiles, 3, 1);
        assert_eq!(g.dimensions(), (3 * 4 + 1, 2 * 3 + 1));
        assert_eq!(g.get_pixel(1 + 4, 1).0, [50, 0, 0]);
        assert_eq!(g.get_pixel(1 + 4, 1 + 3).0, [200, 0, 0]);
        assert_eq!(columns(64, 8), 8);
        assert_eq!(columns(10, 16), 4);
        assert_eq!(
            (enlargement(28, 28, 112), enlargement(300, 20, 112)),
            (4, 1)
        );
    }
}
