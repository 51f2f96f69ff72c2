//! One image file as a network's input: the path `predict` takes in both halves of the
//! project, so a photo is read as the training images were.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result};
use crate::image_folder::decode_file;
use crate::{ColorMode, FolderOptions, ImageShape, Interpolation, digit_image};

/// How an image file is made to look like the training images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocess {
    /// MNIST-style: grey, white digit on black, fitted into 20×20 and centred in 28×28
    /// (see [`digit_image`]).
    Digits,
    /// Keras's `load_img(target_size=...)`: grey or RGB by the input's channels (PIL's
    /// conversion), then resized to the input size.
    Resize,
}

/// `path` as an input of `shape`: (C, H, W) planes of values in [0, 1].
pub fn read(
    path: &Path,
    shape: ImageShape,
    preprocess: Preprocess,
    interpolation: Interpolation,
) -> Result<Vec<f32>> {
    let bad = |reason: String| DatasetError::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    let ImageShape {
        channels,
        height,
        width,
    } = shape;
    match preprocess {
        Preprocess::Digits => {
            if (channels, height, width) != (1, digit_image::SIDE, digit_image::SIDE) {
                return Err(bad(format!(
                    "digit preprocessing needs a 1×28×28 input, the network takes \
                     {channels}×{height}×{width}"
                )));
            }
            digit_image::mnist_input(path)
        }
        Preprocess::Resize => {
            let color_mode = match channels {
                1 => ColorMode::Grayscale,
                3 => ColorMode::Rgb,
                c => {
                    return Err(bad(format!(
                        "the network takes {c}-channel images; files are read as 1 (grey) \
                         or 3 (RGB)"
                    )));
                }
            };
            let options = FolderOptions {
                target_size: Some((height as u32, width as u32)),
                color_mode,
                interpolation,
                ..FolderOptions::default()
            };
            let (pixels, _) = decode_file(path, &options)?;
            Ok(pixels.into_iter().map(|p| p as f32 / 255.0).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(channels: usize, height: usize, width: usize) -> ImageShape {
        ImageShape {
            channels,
            height,
            width,
        }
    }

    #[test]
    fn resize_gives_planes_of_the_input_shape_in_unit_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        image::RgbImage::from_fn(10, 6, |x, y| {
            image::Rgb([(x * 25) as u8, (y * 40) as u8, 200])
        })
        .save(&path)
        .unwrap();
        for interpolation in [Interpolation::Nearest, Interpolation::Bilinear] {
            let x = read(&path, shape(3, 4, 5), Preprocess::Resize, interpolation).unwrap();
            assert_eq!(x.len(), 3 * 4 * 5);
            assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
            // The blue plane is constant 200.
            assert!(x[40..].iter().all(|&v| (v - 200.0 / 255.0).abs() < 1e-6));
        }
        let grey = read(
            &path,
            shape(1, 4, 5),
            Preprocess::Resize,
            Interpolation::Nearest,
        );
        assert_eq!(grey.unwrap().len(), 20);
    }

    #[test]
    fn shapes_the_preprocessing_cannot_make_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        image::GrayImage::new(8, 8).save(&path).unwrap();
        let four = read(
            &path,
            shape(4, 8, 8),
            Preprocess::Resize,
            Interpolation::Nearest,
        );
        let msg = four.unwrap_err().to_string();
        assert!(msg.contains("x.png") && msg.contains("4-channel"), "{msg}");
        let digits = read(
            &path,
            shape(3, 32, 32),
            Preprocess::Digits,
            Interpolation::Nearest,
        );
        let msg = digits.unwrap_err().to_string();
        assert!(msg.contains("x.png") && msg.contains("1×28×28"), "{msg}");
    }
}
