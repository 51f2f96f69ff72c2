//! Random shifts of training images (Keras' `width_shift_range` / `height_shift_range`
//! in whole pixels): each time an image is drawn it moves by up to `max` pixels in each
//! direction, zeros filling in. The network then cannot memorise where strokes sit,
//! which curbs over-fitting on MNIST.

use ndarray::Array2;
use rand::Rng;
use rand::rngs::StdRng;

use crate::spec::InputShape;

/// Moves one channels-last image down by `dy` and right by `dx` pixels (negative: up,
/// left) into `dst`; pixels shifted in are 0.
pub fn shift_image(src: &[f32], dst: &mut [f32], shape: InputShape, dy: isize, dx: isize) {
    let (h, w, c) = (shape.height as isize, shape.width as isize, shape.channels);
    dst.fill(0.0);
    let width = (w - dx.abs()).max(0) as usize * c;
    if width == 0 {
        return;
    }
    for y in 0..h {
        let sy = y - dy;
        if sy < 0 || sy >= h {
            continue;
        }
        let (sx, tx) = if dx >= 0 { (0, dx) } else { (-dx, 0) };
        let from = ((sy * w + sx) as usize) * c;
        let to = ((y * w + tx) as usize) * c;
        dst[to..to + width].copy_from_slice(&src[from..from + width]);
    }
}

/// Shifts every row of `x` (a batch of images of `shape`) by its own random offset.
pub fn shift_batch(x: &mut Array2<f32>, shape: InputShape, max: usize, rng: &mut StdRng) {
    let max = max as i32;
    let mut shifted = vec![0.0f32; x.ncols()];
    for mut row in x.rows_mut() {
        let dy = rng.random_range(-max..=max) as isize;
        let dx = rng.random_range(-max..=max) as isize;
        if (dy, dx) == (0, 0) {
            continue;
        }
        let row = row.as_slice_mut().expect("row-major batch");
        shift_image(row, &mut shifted, shape, dy, dx);
        row.copy_from_slice(&shifted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SHAPE: InputShape = InputShape {
        channels: 2,
        height: 3,
        width: 3,
    };

    #[test]
    fn shifts_move_pixels_and_fill_with_zeros() {
        // Pixel (y, x) holds channels (10y + x, -(10y + x)).
        let src: Vec<f32> = (0..9)
            .flat_map(|p| {
                let v = (10 * (p / 3) + p % 3) as f32;
                [v, -v]
            })
            .collect();
        let mut dst = vec![f32::NAN; 18];
        shift_image(&src, &mut dst, SHAPE, 1, -1);
        // Output (y, x) = input (y - 1, x + 1): row 0 is empty, column 2 is empty.
        let at = |y: usize, x: usize| dst[(y * 3 + x) * 2];
        assert_eq!([at(0, 0), at(0, 1), at(0, 2)], [0.0, 0.0, 0.0]);
        assert_eq!([at(1, 0), at(1, 1), at(1, 2)], [1.0, 2.0, 0.0]);
        assert_eq!([at(2, 0), at(2, 1)], [11.0, 12.0]);
        assert_eq!(dst[(2 * 3 + 1) * 2 + 1], -12.0);
        shift_image(&src, &mut dst, SHAPE, 0, 0);
        assert_eq!(dst, src);
    }

    #[test]
    fn batch_shifts_are_seeded_and_keep_the_ink() {
        let x = Array2::from_shape_fn((4, 18), |(r, i)| if i == 8 { r as f32 + 1.0 } else { 0.0 });
        let (mut a, mut b) = (x.clone(), x.clone());
        shift_batch(&mut a, SHAPE, 1, &mut StdRng::seed_from_u64(3));
        shift_batch(&mut b, SHAPE, 1, &mut StdRng::seed_from_u64(3));
        assert_eq!(a, b);
        // The centre pixel moves at most one step, so it stays inside the 3×3 image.
        assert_eq!(a.sum(), x.sum());
    }
}
