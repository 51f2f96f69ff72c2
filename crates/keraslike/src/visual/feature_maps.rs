//! What every Conv2D and MaxPooling2D layer makes of one image: its channels as grey
//! pictures, each scaled to its own range (as Chollet's "visualizing intermediate
//! activations" shows them).

use anyhow::{Result, anyhow};
use burn::tensor::Tensor;
use image::RgbImage;

use crate::model::{Flow, Sequential, built_per_layer};
use crate::model_config::{LayerConfig, ModelConfig};
use cli::picture::{columns, enlarged, enlargement, grey_plane, grid};

/// One layer's output for one image.
#[derive(Debug, Clone)]
pub struct LayerMaps {
    /// Keras's layer name (`conv2d_1`), as the summary prints it.
    pub name: String,
    pub kind: &'static str,
    /// (channels, height, width)
    pub shape: [usize; 3],
    pub values: Vec<f32>,
}

/// The output of every Conv2D and MaxPooling2D layer of `model` (built from `config`)
/// for the one image `x` (1 × C × H × W), in layer order. `model` should be in inference
/// mode (`valid()`), so that dropout leaves the maps alone.
pub fn feature_maps(
    model: &Sequential,
    config: &ModelConfig,
    x: Tensor<4>,
) -> Result<Vec<LayerMaps>> {
    let infos = config.infer()?;
    let mut flow = Flow::Image(x);
    let mut start = 0;
    let mut maps = Vec::new();
    for ((layer, info), n) in config
        .layers
        .iter()
        .zip(&infos)
        .zip(built_per_layer(config))
    {
        flow = model.run_layers(flow, start..start + n);
        start += n;
        let Flow::Image(t) = &flow else {
            break;
        };
        if matches!(
            layer,
            LayerConfig::Conv2D { .. } | LayerConfig::MaxPooling2D { .. }
        ) {
            let [_, c, h, w] = t.dims();
            let values = t
                .clone()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow!("reading {}'s output: {e:?}", info.name))?;
            maps.push(LayerMaps {
                name: info.name.clone(),
                kind: layer.kind(),
                shape: [c, h, w],
                values: values[..c * h * w].to_vec(),
            });
        }
    }
    Ok(maps)
}

impl LayerMaps {
    /// The first `max_maps` channels as a grid of grey tiles, each at least ~56 pixels.
    pub fn picture(&self, max_maps: usize) -> RgbImage {
        let [c, h, w] = self.shape;
        let factor = enlargement(h, w, 56);
        let tiles: Vec<RgbImage> = self
            .values
            .chunks_exact(h * w)
            .take(max_maps.min(c))
            .map(|plane| enlarged(&grey_plane(plane, w, h), factor))
            .collect();
        grid(&tiles, columns(tiles.len(), 16), 2)
    }

    /// The mean of each channel (how strongly each filter answered the image).
    pub fn channel_means(&self) -> Vec<f32> {
        let [_, h, w] = self.shape;
        self.values
            .chunks_exact(h * w)
            .map(|p| p.iter().sum::<f32>() / p.len() as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn every_conv_and_pool_layer_gives_its_maps_with_keras_names() {
        let config = ModelConfig::parse(
            "input = [1, 8, 8]\n\
             [[layers]]\ntype = \"Conv2D\"\nfilters = 3\nkernel_size = 3\npadding = \"same\"\nactivation = \"relu\"\n\
             [[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\
             [[layers]]\ntype = \"Conv2D\"\nfilters = 5\nkernel_size = 3\n\
             [[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n",
            "t",
        )
        .unwrap();
        let device = Device::flex();
        let model = Sequential::new(&config, &device).unwrap();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                (0..64).map(|i| (i % 7) as f32 / 7.0).collect(),
                [1, 1, 8, 8],
            ),
            &device,
        );
        let maps = feature_maps(&model, &config, x.clone()).unwrap();
        let names: Vec<_> = maps.iter().map(|m| (m.name.as_str(), m.shape)).collect();
        assert_eq!(
            names,
            [
                ("conv2d", [3, 8, 8]),
                ("max_pooling2d", [3, 4, 4]),
                ("conv2d_1", [5, 2, 2])
            ]
        );
        // The first conv's maps are after its ReLU, as Keras's layer output is.
        assert!(maps[0].values.iter().all(|&v| v >= 0.0));
        // The pool is the 2×2 maximum of the conv's maps.
        let conv = &maps[0].values;
        let pooled = maps[1].values[0];
        let top_left = [conv[0], conv[1], conv[8], conv[9]];
        assert_eq!(pooled, top_left.iter().cloned().fold(f32::MIN, f32::max));
        assert_eq!(maps[2].channel_means().len(), 5);
        let picture = maps[2].picture(4);
        // 4 of 5 maps, 2 × 2 grid of 2×2 maps enlarged 28 times.
        assert_eq!(picture.dimensions(), (2 * (56 + 2) + 2, 2 * (56 + 2) + 2));
    }
}
