//! Random image augmentation like Keras's `ImageDataGenerator`: horizontal flips, small
//! shifts, rotations and zooms, applied to u8 (C, H, W) images.
//!
//! All four are one affine map of the output pixel grid back into the source image,
//! sampled with nearest neighbour; pixels that fall outside take the nearest edge pixel
//! (Keras's default `fill_mode="nearest"`).

use rand::Rng;

use crate::labelled::ImageShape;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Augmentation {
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Largest shift as a fraction of the width / height (Keras `width_shift_range`).
    pub shift: f32,
    /// Largest rotation in degrees (Keras `rotation_range`).
    pub rotation: f32,
    /// Largest zoom: the scale is drawn from [1 − zoom, 1 + zoom] (Keras `zoom_range`).
    pub zoom: f32,
}

impl Augmentation {
    /// The mild settings `--augment` turns on: flips, 10% shifts, 10°, 10% zoom.
    pub fn mild() -> Self {
        Self {
            horizontal_flip: true,
            shift: 0.1,
            rotation: 10.0,
            zoom: 0.1,
        }
    }

    /// For digits (`keraslike mnist --augment`): as `mild` but never mirrored (a mirrored
    /// 2 or 7 is not a digit): Keras's usual MNIST recipe.
    pub fn digits() -> Self {
        Self {
            horizontal_flip: false,
            ..Self::mild()
        }
    }

    pub fn is_identity(&self) -> bool {
        !self.horizontal_flip && self.shift == 0.0 && self.rotation == 0.0 && self.zoom == 0.0
    }

    /// A randomly transformed copy of `pixels`.
    pub fn apply(&self, pixels: &[u8], shape: ImageShape, rng: &mut impl Rng) -> Vec<u8> {
        let (h, w) = (shape.height, shape.width);
        let symmetric = |rng: &mut dyn rand::RngCore, r: f32| {
            if r > 0.0 {
                rng.random_range(-r..=r)
            } else {
                0.0
            }
        };
        let flip = self.horizontal_flip && rng.random_bool(0.5);
        let dx = symmetric(rng, self.shift) * w as f32;
        let dy = symmetric(rng, self.shift) * h as f32;
        let angle = symmetric(rng, self.rotation).to_radians();
        let scale = 1.0 + symmetric(rng, self.zoom);
        let (sin, cos) = angle.sin_cos();
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let mut out = vec![0u8; pixels.len()];
        for y in 0..h {
            for x in 0..w {
                // Output pixel → source pixel: undo shift, rotation and zoom about the centre.
                let (ox, oy) = (x as f32 - cx - dx, y as f32 - cy - dy);
                let mut sx = (cos * ox + sin * oy) / scale + cx;
                let sy = (-sin * ox + cos * oy) / scale + cy;
                if flip {
                    sx = w as f32 - 1.0 - sx;
                }
                let sx = (sx.round().max(0.0) as usize).min(w - 1);
                let sy = (sy.round().max(0.0) as usize).min(h - 1);
                for c in 0..shape.channels {
                    out[c * h * w + y * w + x] = pixels[c * h * w + sy * w + sx];
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn shape() -> ImageShape {
        ImageShape {
            channels: 2,
            height: 4,
            width: 5,
        }
    }

    fn ramp() -> Vec<u8> {
        (0..40).collect()
    }

    #[test]
    fn no_augmentation_is_the_identity() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = Augmentation::default();
        assert!(a.is_identity());
        assert_eq!(a.apply(&ramp(), shape(), &mut rng), ramp());
    }

    #[test]
    fn flip_mirrors_every_row_of_every_channel() {
        let a = Augmentation {
            horizontal_flip: true,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen_flip = false;
        for _ in 0..20 {
            let out = a.apply(&ramp(), shape(), &mut rng);
            if out != ramp() {
                seen_flip = true;
                for row in 0..8 {
                    let src: Vec<u8> = ramp()[row * 5..row * 5 + 5].iter().rev().copied().collect();
                    assert_eq!(&out[row * 5..row * 5 + 5], &src[..]);
                }
            }
        }
        assert!(seen_flip, "20 draws without one flip");
    }

    #[test]
    fn shifts_rotations_and_zooms_keep_pixel_values_from_the_source() {
        let a = Augmentation::mild();
        let mut rng = StdRng::seed_from_u64(7);
        let src = ramp();
        for _ in 0..10 {
            let out = a.apply(&src, shape(), &mut rng);
            assert_eq!(out.len(), src.len());
            // Nearest-neighbour sampling only copies values, channel by channel.
            assert!(out[..20].iter().all(|v| *v < 20));
            assert!(out[20..].iter().all(|v| (20..40).contains(v)));
        }
    }
}
