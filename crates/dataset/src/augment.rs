//! Random image augmentation like Keras's `ImageDataGenerator`: horizontal flips, small
//! shifts, rotations and zooms, applied to u8 (C, H, W) images.
//!
//! All four are one affine map of the output pixel grid back into the source image,
//! sampled with nearest neighbour or bilinearly (Keras's `interpolation_order` 0 or its
//! default 1); pixels that fall outside take the nearest edge pixel (Keras's default
//! `fill_mode="nearest"`).

use rand::Rng;

use crate::labelled::ImageShape;

/// How a warped image is sampled from the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Warp {
    /// The nearest source pixel (values only copied).
    #[default]
    Nearest,
    /// Weighted by the four nearest source pixels (Keras's default, `interpolation_order=1`).
    Bilinear,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Augmentation {
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Largest shift as a fraction of the width (Keras `width_shift_range`).
    pub width_shift: f32,
    /// Largest shift as a fraction of the height (Keras `height_shift_range`).
    pub height_shift: f32,
    /// Largest rotation in degrees (Keras `rotation_range`).
    pub rotation: f32,
    /// Largest zoom: the scale is drawn from [1 − zoom, 1 + zoom] (Keras `zoom_range`).
    pub zoom: f32,
    pub warp: Warp,
}

impl Augmentation {
    /// The mild settings `--augment` turns on: flips, 10% shifts, 10°, 10% zoom.
    pub fn mild() -> Self {
        Self {
            horizontal_flip: true,
            width_shift: 0.1,
            height_shift: 0.1,
            rotation: 10.0,
            zoom: 0.1,
            warp: Warp::Nearest,
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
        !self.horizontal_flip
            && self.width_shift == 0.0
            && self.height_shift == 0.0
            && self.rotation == 0.0
            && self.zoom == 0.0
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
        let dx = symmetric(rng, self.width_shift) * w as f32;
        let dy = symmetric(rng, self.height_shift) * h as f32;
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
                match self.warp {
                    Warp::Nearest => {
                        let sx = (sx.round().max(0.0) as usize).min(w - 1);
                        let sy = (sy.round().max(0.0) as usize).min(h - 1);
                        for c in 0..shape.channels {
                            out[c * h * w + y * w + x] = pixels[c * h * w + sy * w + sx];
                        }
                    }
                    Warp::Bilinear => {
                        // The edge pixel beyond the border (fill_mode="nearest").
                        let sx = sx.clamp(0.0, (w - 1) as f32);
                        let sy = sy.clamp(0.0, (h - 1) as f32);
                        let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
                        for c in 0..shape.channels {
                            let p =
                                |yy: usize, xx: usize| f32::from(pixels[c * h * w + yy * w + xx]);
                            let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
                            let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
                            let v = top * (1.0 - fy) + bottom * fy;
                            out[c * h * w + y * w + x] = v.round().clamp(0.0, 255.0) as u8;
                        }
                    }
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

    #[test]
    fn a_width_shift_moves_pixels_along_their_rows_only() {
        let a = Augmentation {
            width_shift: 0.3,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..10 {
            let out = a.apply(&ramp(), shape(), &mut rng);
            for row in 0..8 {
                let from = (row * 5) as u8..(row * 5 + 5) as u8;
                assert!(out[row * 5..row * 5 + 5].iter().all(|v| from.contains(v)));
            }
        }
    }

    #[test]
    fn bilinear_warps_blend_neighbours_of_a_ramp_linearly() {
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 20,
        };
        let ramp: Vec<u8> = (0..20).map(|x| x * 10).collect();
        let a = Augmentation {
            width_shift: 0.2,
            warp: Warp::Bilinear,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(11);
        let mut blended = false;
        for _ in 0..10 {
            let out = a.apply(&ramp, shape, &mut rng);
            // Between the clamped ends the ramp stays a ramp of slope 10 (±1 for rounding).
            let inner: Vec<i32> = out
                .iter()
                .map(|&v| i32::from(v))
                .filter(|v| (1..190).contains(v))
                .collect();
            assert!(
                inner.windows(2).all(|w| (9..=11).contains(&(w[1] - w[0]))),
                "{out:?}"
            );
            blended |= out.iter().any(|v| v % 10 != 0);
        }
        assert!(blended, "no draw landed between pixels");
    }
}
