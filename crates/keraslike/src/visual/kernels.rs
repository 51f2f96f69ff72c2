//! The first convolution's kernels as pictures: what the lectures show as the filters a
//! CNN learns (edges, stripes, blobs of colour).

use anyhow::{Result, anyhow};
use image::RgbImage;

use crate::model::{Layer, Sequential};
use cli::picture::{colour_planes, columns, enlarged, grey_plane, grid};

/// Pixels per kernel weight in the picture (a 3×3 kernel becomes 36×36).
const ENLARGE: u32 = 12;

/// The first Conv2D's kernels as a grid: one tile per filter, scaled to its own range;
/// in colour when the layer reads 3 channels (RGB input), else one grey tile per input
/// channel. `None` for a model without Conv2D layers.
pub fn first_conv_kernels(model: &Sequential) -> Result<Option<RgbImage>> {
    let Some(conv) = model.layers.iter().find_map(|l| match l {
        Layer::Conv2d(c) => Some(c),
        _ => None,
    }) else {
        return Ok(None);
    };
    let [filters, channels, kh, kw] = conv.weight.dims();
    let weights = conv
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow!("reading the kernels: {e:?}"))?;
    let per_filter = channels * kh * kw;
    let mut tiles = Vec::new();
    for kernel in weights.chunks_exact(per_filter) {
        if channels == 3 {
            tiles.push(enlarged(&colour_planes(kernel, kw, kh), ENLARGE));
        } else {
            for plane in kernel.chunks_exact(kh * kw) {
                tiles.push(enlarged(&grey_plane(plane, kw, kh), ENLARGE));
            }
        }
    }
    let cols = if channels == 3 || channels == 1 {
        columns(filters, 16)
    } else {
        channels
    };
    Ok(Some(grid(&tiles, cols, 2)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_config::ModelConfig;
    use burn::tensor::Device;

    fn model(channels: usize) -> Sequential {
        let text = format!(
            "input = [{channels}, 8, 8]\n[[layers]]\ntype = \"Conv2D\"\nfilters = 6\nkernel_size = 3\n\
             [[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dense\"\nunits = 2\n"
        );
        Sequential::new(&ModelConfig::parse(&text, "t").unwrap(), &Device::flex()).unwrap()
    }

    #[test]
    fn one_tile_per_filter_in_a_near_square_grid() {
        // 6 filters: 3 columns, 2 rows of 36-pixel tiles 2 pixels apart.
        let side = 3 * ENLARGE;
        for channels in [1, 3] {
            let picture = first_conv_kernels(&model(channels)).unwrap().unwrap();
            assert_eq!(
                picture.dimensions(),
                (3 * (side + 2) + 2, 2 * (side + 2) + 2)
            );
        }
        // Two input channels: a row per filter, a tile per channel.
        let picture = first_conv_kernels(&model(2)).unwrap().unwrap();
        assert_eq!(
            picture.dimensions(),
            (2 * (side + 2) + 2, 6 * (side + 2) + 2)
        );
        let dense = "input = [1, 4, 4]\n[[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dense\"\nunits = 2\n";
        let mlp =
            Sequential::new(&ModelConfig::parse(dense, "t").unwrap(), &Device::flex()).unwrap();
        assert!(first_conv_kernels(&mlp).unwrap().is_none());
    }
}
