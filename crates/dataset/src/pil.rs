//! The two pixel operations of Keras's `load_img` that must match PIL bit for bit for a
//! model to see what it would see in Keras: `Image.convert("L")` and
//! `Image.resize(size, NEAREST)` (the `flow_from_directory` default interpolation).
//!
//! The `image` crate converts to grey with Rec. 709 weights (PIL uses Rec. 601's) and
//! samples nearest neighbours at other positions, so both are written out here as PIL's
//! C code computes them (`Convert.c`, `Geometry.c`).

/// PIL's `L = R·299/1000 + G·587/1000 + B·114/1000`, in its 16-bit fixed point, rounded.
pub fn luma(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            let l = u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471;
            ((l + 0x8000) >> 16) as u8
        })
        .collect()
}

/// For each of `out` positions, the source index PIL's nearest resize reads from a line of
/// `size` pixels: the integer part of (x + ½)·size/out, where PIL computes the position
/// by adding size/out once per pixel in double precision (`Geometry.c`, affine
/// transform). The running sum decides the positions that fall exactly on a pixel edge
/// (2 → 7 reads pixel 0 at x = 3, where 3.5·2/7 is 1 in exact arithmetic).
fn nearest_indices(size: usize, out: usize) -> Vec<usize> {
    let step = size as f64 / out as f64;
    let mut position = step * 0.5;
    (0..out)
        .map(|_| {
            let index = (position as usize).min(size - 1);
            position += step;
            index
        })
        .collect()
}

/// Resizes interleaved `channels`-channel pixels of `width`×`height` to `out_w`×`out_h`
/// as PIL's `resize(NEAREST)` does.
pub fn resize_nearest(
    pixels: &[u8],
    (width, height): (usize, usize),
    channels: usize,
    (out_w, out_h): (usize, usize),
) -> Vec<u8> {
    let (xs, ys) = (
        nearest_indices(width, out_w),
        nearest_indices(height, out_h),
    );
    let mut out = Vec::with_capacity(out_w * out_h * channels);
    for &y in &ys {
        let row = &pixels[y * width * channels..(y + 1) * width * channels];
        for &x in &xs {
            out.extend_from_slice(&row[x * channels..(x + 1) * channels]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Source columns printed by Pillow 13 for `Image.resize(..., NEAREST)` of a 1-pixel
    /// high image whose pixel values are their column index (`list(img.getdata())`).
    /// (The same rule reproduced Pillow on all 5,476 pairs of sizes 1-69, 178, 218, 250,
    /// 500 and 1024, both axes.)
    #[test]
    fn nearest_reads_the_columns_pillow_reads() {
        // 64 → 218: the shared 64×64 faces up to the course's 218×178.
        let up = nearest_indices(64, 218);
        assert_eq!(up.len(), 218);
        assert_eq!(&up[..8], &[0, 0, 0, 1, 1, 1, 1, 2]);
        assert_eq!(&up[50..58], &[14, 15, 15, 15, 16, 16, 16, 16]);
        assert_eq!(up[217], 63);
        // An exact edge that the running sum puts below it.
        assert_eq!(nearest_indices(2, 7), [0, 0, 0, 0, 1, 1, 1]);
        assert_eq!(nearest_indices(5, 3), [0, 2, 4]);
        assert_eq!(nearest_indices(3, 7), [0, 0, 1, 1, 1, 2, 2]);
        assert_eq!(
            nearest_indices(250, 178)[..12],
            [0, 2, 3, 4, 6, 7, 9, 10, 11, 13, 14, 16]
        );
        assert_eq!(
            nearest_indices(640, 218)[100..106],
            [295, 297, 300, 303, 306, 309]
        );
    }

    #[test]
    fn nearest_resize_moves_whole_pixels() {
        // 2×2 RGB to 4×3, as Pillow gives it: the middle row sits on the edge between the
        // two source rows, and the running sum lands on the lower one.
        let px = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4];
        let out = resize_nearest(&px, (2, 2), 3, (4, 3));
        let firsts: Vec<u8> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(firsts, [1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
        assert!(out.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn luma_uses_pils_weights() {
        // Pillow: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0))
        assert_eq!(
            luma(&[255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 200, 30]),
            [76, 150, 29, 255, 124]
        );
    }
}
