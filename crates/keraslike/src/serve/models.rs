//! What `serve` answers with: every loaded classifier's view of one uploaded image, and
//! a DCGAN generator's samples.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use ndarray::Array2;
use serde_json::{Value, json};

use cli::picture::{enlarged, enlargement, input_picture, overlay};
use scratch::layers::{Mode, softmax_rows};
use scratch::network::Network;

use crate::gan::{self, Generator, GeneratorCard};
use crate::model::Sequential;
use crate::saved_model::{self, ModelCard};
use crate::visual::feature_maps::feature_maps;
use crate::visual::grad_cam::explain;
use crate::visual::one_image;

/// Feature-map layers shown per model (the first ones), and maps per layer.
const SHOWN_LAYERS: usize = 2;
const SHOWN_MAPS: usize = 16;

/// A PNG as a `data:` URL, for an `<img src>`.
pub fn data_url(picture: &RgbImage) -> Result<String> {
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding a PNG")?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

/// A loaded classifier of either half of the course.
pub enum Classifier {
    /// A keraslike model, frozen on the autodiff device (Grad-CAM differentiates it).
    Keras {
        model: Sequential,
        card: Box<ModelCard>,
    },
    /// A scratch network (`scratch train`'s safetensors).
    Scratch { net: Network, classes: Vec<String> },
}

pub struct Loaded {
    /// The file it came from, as given.
    pub name: String,
    pub classifier: Classifier,
}

impl Loaded {
    /// `model.bpk` (keraslike, its `model.toml` beside it) or a scratch `.safetensors`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let name = path.display().to_string();
        let is_safetensors = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let classifier = if is_safetensors {
            if path.with_extension("toml").is_file() && path.with_extension("bpk").is_file() {
                bail!(
                    "{name}: this is keraslike's PyTorch-style export; serve its model.bpk instead"
                );
            }
            let (net, provenance) = scratch::weights_file::load(path)?;
            let classes = scratch::weights_file::class_names(&provenance, net.arch.classes);
            Classifier::Scratch { net, classes }
        } else {
            let (model, card) = saved_model::load(path, device)?;
            Classifier::Keras {
                model: model.freeze(),
                card: Box::new(card),
            }
        };
        Ok(Self { name, classifier })
    }

    pub fn classes(&self) -> &[String] {
        match &self.classifier {
            Classifier::Keras { card, .. } => &card.classes,
            Classifier::Scratch { classes, .. } => classes,
        }
    }

    /// What the page shows about the model before any image.
    pub fn info(&self) -> Value {
        let (kind, input) = match &self.classifier {
            Classifier::Keras { card, .. } => ("keraslike", card.model.input),
            Classifier::Scratch { net, .. } => {
                let i = net.arch.input;
                ("scratch", [i.channels, i.height, i.width])
            }
        };
        json!({"name": self.name, "kind": kind, "classes": self.classes(), "input": input})
    }

    /// The model's answer for the image file `image`: the class, every probability, the
    /// input as the model saw it, and for keraslike CNNs the first layers' feature maps
    /// and Grad-CAM over the input.
    pub fn answer(&mut self, image: &Path) -> Result<Value> {
        match &mut self.classifier {
            Classifier::Keras { model, card } => keras_answer(model, card, image),
            Classifier::Scratch { net, classes } => scratch_answer(net, classes, image),
        }
    }
}

fn probabilities_json(classes: &[String], probabilities: &[f32]) -> (String, Value) {
    let best = (0..probabilities.len())
        .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
        .unwrap_or(0);
    let listed: Vec<Value> = classes
        .iter()
        .zip(probabilities)
        .map(|(name, p)| json!({"class": name, "probability": p}))
        .collect();
    (classes[best].clone(), Value::Array(listed))
}

/// Pictures of small inputs are enlarged to about this many pixels a side.
const SHOWN: usize = 112;

fn keras_answer(model: &Sequential, card: &ModelCard, image: &Path) -> Result<Value> {
    let [c, h, w] = card.model.input;
    let pixels = card.image_input(image)?;
    let x = one_image(model, card.model.input, &pixels)?;
    let factor = enlargement(h, w, SHOWN);
    let picture = input_picture(&pixels, c, w, h);
    let mut maps = Vec::new();
    for layer in feature_maps(model, &card.model, x.clone())?
        .iter()
        .take(SHOWN_LAYERS)
    {
        maps.push(json!({
            "layer": layer.name,
            "kind": layer.kind,
            "maps": layer.shape[0].min(SHOWN_MAPS),
            "png": data_url(&layer.picture(SHOWN_MAPS))?,
        }));
    }
    let explained = explain(model, &card.model, x, None)?;
    let (class, probabilities) = probabilities_json(&card.classes, &explained.probabilities);
    let grad_cam = match (&explained.cam, &explained.cam_layer) {
        (Some(cam), Some(layer)) => json!({
            "layer": layer,
            "empty": cam.iter().all(|&v| v == 0.0),
            "png": data_url(&enlarged(&overlay(&picture, cam), factor))?,
        }),
        _ => Value::Null,
    };
    Ok(json!({
        "class": class,
        "probabilities": probabilities,
        "input_png": data_url(&enlarged(&picture, factor))?,
        "feature_maps": maps,
        "grad_cam": grad_cam,
    }))
}

fn scratch_answer(net: &mut Network, classes: &[String], image: &Path) -> Result<Value> {
    let input = net.arch.input;
    let pixels = scratch::data::image_input(image, input)?;
    let x = Array2::from_shape_vec((1, input.features()), pixels.clone())
        .context("the input's size")?;
    let probs = softmax_rows(&net.predict(&x, Mode::Eval));
    let probs: Vec<f32> = probs.iter().copied().collect();
    let (class, probabilities) = probabilities_json(classes, &probs);
    // Channels-last rows as planes, for the picture.
    let (c, h, w) = (input.channels, input.height, input.width);
    let planes: Vec<f32> = (0..c)
        .flat_map(|k| {
            pixels
                .iter()
                .skip(k)
                .step_by(c)
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    let factor = enlargement(h, w, SHOWN);
    let picture = enlarged(&input_picture(&planes, c, w, h), factor);
    Ok(json!({
        "class": class,
        "probabilities": probabilities,
        "input_png": data_url(&picture)?,
        "feature_maps": [],
        "grad_cam": Value::Null,
    }))
}

/// A DCGAN generator on the plain device.
pub struct LoadedGenerator {
    pub name: String,
    pub generator: Generator,
    pub card: GeneratorCard,
    pub device: Device,
}

impl LoadedGenerator {
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (generator, card) = gan::load_generator(path, device)?;
        Ok(Self {
            name: path.display().to_string(),
            generator,
            card,
            device: device.clone(),
        })
    }

    pub fn info(&self) -> Value {
        json!({"name": self.name, "latent": self.card.latent, "image": self.card.image})
    }

    /// `n` samples from z drawn with `seed`, as a grid enlarged for the page.
    pub fn samples(&self, n: usize, seed: u64) -> Result<RgbImage> {
        let z = gan::noise(n, self.card.latent, seed, &self.device);
        let grid = gan::grid_image(self.generator.forward(z), n.min(8))?;
        Ok(enlarged(&grid, 3))
    }

    /// The image at `t` in [0, 1] along the great circle from z(`a`) to z(`b`) (spherical
    /// interpolation keeps z at the length a Gaussian z has; a straight line would pass
    /// through short vectors the generator never saw).
    pub fn walk(&self, a: u64, b: u64, t: f32) -> Result<RgbImage> {
        let latent = self.card.latent;
        let za = gan::noise(1, latent, a, &self.device);
        let zb = gan::noise(1, latent, b, &self.device);
        let values = |z: Tensor<2>| -> Result<Vec<f32>> {
            z.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("reading z: {e:?}"))
        };
        let z = slerp(&values(za)?, &values(zb)?, t.clamp(0.0, 1.0));
        let z = Tensor::<2>::from_data(TensorData::new(z, [1, latent]), &self.device);
        let grid = gan::grid_image(self.generator.forward(z), 1)?;
        Ok(enlarged(&grid, 6))
    }
}

/// Spherical interpolation between `a` and `b` (linear where they are nearly parallel).
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let cos =
        (a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b))).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - t, t)
    } else {
        (
            ((1.0 - t) * omega).sin() / omega.sin(),
            (t * omega).sin() / omega.sin(),
        )
    };
    a.iter().zip(b).map(|(x, y)| wa * x + wb * y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slerp_ends_at_both_vectors_and_keeps_orthogonal_lengths() {
        let (a, b) = ([1.0f32, 0.0], [0.0f32, 1.0]);
        assert_eq!(slerp(&a, &b, 0.0), vec![1.0, 0.0]);
        let end = slerp(&a, &b, 1.0);
        assert!(end[0].abs() < 1e-6 && (end[1] - 1.0).abs() < 1e-6);
        let mid = slerp(&a, &b, 0.5);
        let length = (mid[0] * mid[0] + mid[1] * mid[1]).sqrt();
        assert!((length - 1.0).abs() < 1e-6, "{mid:?}");
        // Parallel vectors: a straight line.
        assert_eq!(slerp(&a, &a, 0.3), vec![1.0, 0.0]);
    }

    #[test]
    fn data_urls_hold_a_png() {
        let url = data_url(&RgbImage::new(2, 2)).unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(url.trim_start_matches("data:image/png;base64,"))
            .unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
