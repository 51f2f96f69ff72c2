//! The first layer's weights as pictures: for 784 → M, each hidden unit's 784 weights as
//! a 28×28 tile (the classic picture of what an MLP's first layer looks for: stroke
//! pieces, blobs, digit-like templates); for a convolution, each filter as a small tile.

use anyhow::{Result, bail};
use cli::picture::{colour_planes, columns, enlarged, enlargement, grey_plane, grid};
use image::RgbImage;
use ndarray::Array2;

use crate::network::Network;
use crate::spec::{InputShape, LayerSpec};

/// What the picture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLayer {
    /// An affine layer reading the image: one tile per unit.
    Affine { units: usize },
    /// A convolution: one tile per filter.
    Conv { filters: usize, size: usize },
}

/// Channels-last values (h, w, c) as one tile: grey for one channel, colour for three
/// (scaled together), else the first channel.
fn tile(hwc: &[f32], h: usize, w: usize, c: usize) -> RgbImage {
    let plane = |k: usize| -> Vec<f32> { (0..h * w).map(|i| hwc[i * c + k]).collect() };
    if c == 3 {
        let planes: Vec<f32> = (0..3).flat_map(plane).collect();
        colour_planes(&planes, w, h)
    } else {
        grey_plane(&plane(0), w, h)
    }
}

/// Column `j` of `w` as a vector.
fn column(w: &Array2<f32>, j: usize) -> Vec<f32> {
    w.column(j).to_vec()
}

/// The first weighted layer of `net` as a grid of tiles, each scaled to its own range.
pub fn first_layer_picture(net: &Network) -> Result<(FirstLayer, RgbImage)> {
    let tensors = net.named_tensors();
    let Some((_, w)) = tensors.iter().find(|(name, _)| name == "W1") else {
        bail!("the network has no affine or convolution layer");
    };
    let InputShape {
        channels,
        height,
        width,
    } = net.arch.input;
    // Layers before the first weighted one only reshape or drop (Flatten, Dropout): it
    // reads the image itself.
    let first = net
        .arch
        .layers
        .iter()
        .find(|l| matches!(l, LayerSpec::Affine { .. } | LayerSpec::Conv { .. }));
    match first {
        Some(LayerSpec::Affine { units, .. }) => {
            if height == 1 && width == 1 {
                bail!("the input is a feature vector, not an image: no tiles to draw");
            }
            let factor = enlargement(height, width, 56);
            let tiles: Vec<RgbImage> = (0..*units)
                .map(|j| enlarged(&tile(&column(w, j), height, width, channels), factor))
                .collect();
            let picture = grid(&tiles, columns(tiles.len(), 16), 2);
            Ok((FirstLayer::Affine { units: *units }, picture))
        }
        Some(LayerSpec::Conv { filters, size, .. }) => {
            let tiles: Vec<RgbImage> = (0..*filters)
                .map(|k| enlarged(&tile(&column(w, k), *size, *size, channels), 12))
                .collect();
            let picture = grid(&tiles, columns(tiles.len(), 16), 2);
            Ok((
                FirstLayer::Conv {
                    filters: *filters,
                    size: *size,
                },
                picture,
            ))
        }
        _ => bail!("the network has no affine or convolution layer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Architecture;

    fn net(layers: Vec<LayerSpec>, input: InputShape) -> Network {
        Network::new(
            &Architecture {
                input,
                classes: 10,
                layers,
            },
            1,
        )
        .unwrap()
    }

    #[test]
    fn each_hidden_unit_is_a_tile_of_the_input_image() {
        let mut mlp = net(
            vec![
                LayerSpec::Affine {
                    units: 6,
                    init: None,
                },
                LayerSpec::Relu,
                LayerSpec::Affine {
                    units: 10,
                    init: None,
                },
            ],
            InputShape::MNIST,
        );
        // Unit 2 looks for the top-left pixel only: its tile is black but that pixel.
        for (name, w) in mlp.named_tensors_mut() {
            if name == "W1" {
                w.column_mut(2).fill(0.0);
                w[[0, 2]] = 1.0;
            }
        }
        let (kind, picture) = first_layer_picture(&mlp).unwrap();
        assert_eq!(kind, FirstLayer::Affine { units: 6 });
        // 6 tiles of 28×28 enlarged twice, 3 columns, 2 pixels apart.
        assert_eq!(picture.dimensions(), (3 * 58 + 2, 2 * 58 + 2));
        let (x0, y0) = (2 + 2 * 58, 2);
        assert_eq!(picture.get_pixel(x0, y0).0, [255; 3]);
        assert_eq!(picture.get_pixel(x0 + 10, y0 + 10).0, [0; 3]);
    }

    #[test]
    fn convolution_filters_are_tiles_in_colour_for_colour_images() {
        let cnn = net(
            vec![
                LayerSpec::Conv {
                    filters: 4,
                    size: 3,
                    stride: 1,
                    pad: 1,
                    init: None,
                },
                LayerSpec::Relu,
                LayerSpec::Flatten,
                LayerSpec::Affine {
                    units: 10,
                    init: None,
                },
            ],
            InputShape {
                channels: 3,
                height: 8,
                width: 8,
            },
        );
        let (kind, picture) = first_layer_picture(&cnn).unwrap();
        assert_eq!(
            kind,
            FirstLayer::Conv {
                filters: 4,
                size: 3
            }
        );
        assert_eq!(picture.dimensions(), (2 * 38 + 2, 2 * 38 + 2));
        // Colour: some pixel has channels that differ.
        assert!(picture.pixels().any(|p| p[0] != p[1] || p[1] != p[2]));
    }
}
