//! Where the network looked: Grad-CAM (Selvaraju et al. 2017) and input-gradient saliency
//! (Simonyan et al. 2014) for one image and one class.
//!
//! Grad-CAM weighs each channel k of the last Conv2D layer's output A by the mean over
//! its positions of ∂y_c/∂A_k (y_c: the class's score before the softmax), and keeps the
//! positive part of Σ_k α_k A_k, upsampled to the input and scaled onto [0, 1]: the
//! regions whose features speak for the class. Where nothing is positive the map is
//! empty, which happens: the class's evidence can lie past that layer (a bias, the
//! dense layers), and Grad-CAM's first-order estimate then credits no position. Saliency is |∂y_c/∂x|, the largest over the colour channels: the pixels
//! whose change would move the score most. A binary head's score for class 1 is its unit's
//! input z and for class 0 −z (the logits are [0, z]: crate::class_mode).

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use crate::model::{Flow, Sequential, built_per_layer};
use crate::model_config::{LayerConfig, ModelConfig};
use cli::picture::upsample;

/// One image explained for one class.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The class explained: the one asked for, else the predicted one.
    pub class: usize,
    pub probabilities: Vec<f32>,
    /// Grad-CAM at the input's size (H × W, row-major), scaled from its minimum to its
    /// maximum onto [0, 1] (all 0 when nothing speaks for the class); `None` without a
    /// Conv2D layer.
    pub cam: Option<Vec<f32>>,
    /// The layer Grad-CAM read (Keras's name, as the summary prints it).
    pub cam_layer: Option<String>,
    /// Saliency, H × W, scaled to [0, 1] by its maximum.
    pub saliency: Vec<f32>,
}

fn values<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow!("reading {what}: {e:?}"))
}

/// `v` from its minimum to its maximum onto [0, 1], as pytorch-grad-cam scales its maps:
/// a map positive everywhere (features that speak for the class at every position) shows
/// where they speak most, not a uniform glow. All 0 when `v` is constant.
fn scaled_min_max(mut v: Vec<f32>) -> Vec<f32> {
    let min = v.iter().cloned().fold(f32::INFINITY, f32::min);
    let max = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    if max > min {
        v.iter_mut().for_each(|x| *x = (*x - min) / (max - min));
    } else {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
    v
}

/// `v` divided by its maximum (left as is when that is not positive).
fn scaled_by_max(mut v: Vec<f32>) -> Vec<f32> {
    let max = v.iter().cloned().fold(0.0f32, f32::max);
    if max > 0.0 {
        v.iter_mut().for_each(|x| *x /= max);
    }
    v
}

/// y_c for the one image whose `logits` these are.
fn class_score(model: &Sequential, logits: Tensor<2>, class: usize) -> Tensor<1> {
    let pick = |i: usize| logits.clone().slice([0..1, i..i + 1]).reshape([1]);
    if model.has_binary_head() {
        pick(class) - pick(1 - class)
    } else {
        pick(class)
    }
}

/// Explains `x` (1 × C × H × W) for `class` (by default the predicted one). `model`, built
/// from `config`, must be on an autodiff device and frozen (`Module::freeze`: no dropout,
/// BatchNorm's running statistics, no parameter gradients), `x` on the same device.
pub fn explain(
    model: &Sequential,
    config: &ModelConfig,
    x: Tensor<4>,
    class: Option<usize>,
) -> Result<Explanation> {
    let [batch, _, height, width] = x.dims();
    if batch != 1 {
        bail!("explain takes one image, not {batch}");
    }
    // Saliency first: it also gives the probabilities and so the predicted class.
    let input = x.clone().detach().require_grad();
    let logits = model.forward_logits(input.clone());
    let probabilities = values(softmax(logits.clone().detach(), 1), "the probabilities")?;
    let class = match class {
        Some(c) if c < probabilities.len() => c,
        Some(c) => bail!("class {c}: the model has {} classes", probabilities.len()),
        None => (0..probabilities.len())
            .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
            .context("the model has no outputs")?,
    };
    let grads = class_score(model, logits, class).backward();
    let gradient = input
        .grad(&grads)
        .context("no gradient reached the input")?;
    let channels = gradient.dims()[1];
    let gradient = values(gradient, "the input gradient")?;
    let plane = height * width;
    let saliency = (0..plane)
        .map(|i| {
            (0..channels)
                .map(|c| gradient[c * plane + i].abs())
                .fold(0.0, f32::max)
        })
        .collect();

    let (cam, cam_layer) = match grad_cam(model, config, x, class)? {
        Some(LayerCam { cam, layer, size }) => (
            Some(scaled_min_max(upsample(&cam, size, (height, width)))),
            Some(layer),
        ),
        None => (None, None),
    };
    Ok(Explanation {
        class,
        probabilities,
        cam,
        cam_layer,
        saliency: scaled_by_max(saliency),
    })
}

/// Grad-CAM at its layer's resolution.
struct LayerCam {
    cam: Vec<f32>,
    layer: String,
    size: (usize, usize),
}

/// Grad-CAM at the last Conv2D layer; `None` without a Conv2D layer.
fn grad_cam(
    model: &Sequential,
    config: &ModelConfig,
    x: Tensor<4>,
    class: usize,
) -> Result<Option<LayerCam>> {
    let Some(last_conv) = config
        .layers
        .iter()
        .rposition(|l| matches!(l, LayerConfig::Conv2D { .. }))
    else {
        return Ok(None);
    };
    let name = config.infer()?[last_conv].name.clone();
    let end: usize = built_per_layer(config)[..=last_conv].iter().sum();
    let Flow::Image(features) = model.run_layers(Flow::Image(x.detach()), 0..end) else {
        bail!("{name}: its output is not image-shaped");
    };
    let features = features.detach().require_grad();
    let logits = model.logits_from(Flow::Image(features.clone()), end);
    let grads = class_score(model, logits, class).backward();
    let gradient = features
        .grad(&grads)
        .with_context(|| format!("no gradient reached {name}"))?;
    let [_, k, h, w] = gradient.dims();
    let weights = values(gradient.mean_dim(3).mean_dim(2), "Grad-CAM's weights")?;
    let maps = values(features.detach(), "the feature maps")?;
    let cam = (0..h * w)
        .map(|i| {
            let sum: f32 = (0..k).map(|c| weights[c] * maps[c * h * w + i]).sum();
            sum.max(0.0)
        })
        .collect();
    Ok(Some(LayerCam {
        cam,
        layer: name,
        size: (h, w),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Layer;
    use burn::module::{Module, Param};
    use burn::tensor::{Device, TensorData};

    const CNN: &str = "input = [2, 6, 5]\n\
        [[layers]]\ntype = \"Conv2D\"\nfilters = 3\nkernel_size = 3\npadding = \"same\"\nactivation = \"tanh\"\n\
        [[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\
        [[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 2\nactivation = \"relu\"\n\
        [[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dropout\"\nrate = 0.5\n\
        [[layers]]\ntype = \"Dense\"\nunits = 3\nactivation = \"softmax\"\n";

    const SEED: u64 = 3;

    fn image(device: &Device, shape: [usize; 4], seed: f32) -> Tensor<4> {
        let n = shape.iter().product::<usize>();
        let v = (0..n).map(|i| ((i as f32 + seed) * 0.77).sin()).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    /// The saliency is |∂y_c/∂x| (largest over channels): checked against central
    /// differences of the model's own logits, through the project's conv and pool kernels.
    #[test]
    fn saliency_is_the_input_gradient_of_the_class_score() {
        let config = ModelConfig::parse(CNN, "t").unwrap();
        let device = Device::flex().autodiff();
        device.seed(SEED);
        let model = Sequential::new(&config, &device).unwrap().freeze();
        let x = image(&device, [1, 2, 6, 5], 0.3);
        let explained = explain(&model, &config, x.clone(), Some(2)).unwrap();
        assert_eq!(explained.class, 2);
        let plain = model.clone().valid();
        let base = values(x.clone().inner(), "x").unwrap();
        let score = |v: &[f32]| -> f64 {
            let t =
                Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 2, 6, 5]), &Device::flex());
            values(plain.forward_logits(t), "logits").unwrap()[2] as f64
        };
        // Small enough that no ReLU or pooling choice flips within ±h.
        let h = 1e-3f32;
        let mut numeric = vec![0.0f64; 30];
        for (i, g) in numeric.iter_mut().enumerate() {
            let mut best = 0.0f64;
            for c in 0..2 {
                let (mut up, mut down) = (base.clone(), base.clone());
                up[c * 30 + i] += h;
                down[c * 30 + i] -= h;
                best = best.max(((score(&up) - score(&down)) / (2.0 * h as f64)).abs());
            }
            *g = best;
        }
        let max = numeric.iter().cloned().fold(0.0, f64::max);
        for (i, (&got, want)) in explained.saliency.iter().zip(&numeric).enumerate() {
            assert!(
                (got as f64 - want / max).abs() < 2e-2,
                "pixel {i}: {got} vs {}",
                want / max
            );
        }
        let cam = explained.cam.unwrap();
        assert_eq!(cam.len(), 30);
        assert!(cam.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(explained.cam_layer.as_deref(), Some("conv2d_1"));
        let sum: f32 = explained.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }

    /// A model whose answer is known: a 1×1 identity convolution and a Dense layer
    /// that adds the right half of the image for class 1 and subtracts it for class 0.
    /// Grad-CAM's weight for class 1 is then positive and its map the image itself; for
    /// class 0 the weight is negative and nothing is left.
    #[test]
    fn grad_cam_of_a_known_model() {
        let config = ModelConfig::parse(
            "input = [1, 2, 4]\n\
             [[layers]]\ntype = \"Conv2D\"\nfilters = 1\nkernel_size = 1\nactivation = \"relu\"\n\
             [[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n",
            "t",
        )
        .unwrap();
        let device = Device::flex().autodiff();
        let mut model = Sequential::new(&config, &device).unwrap();
        let right_half = [0.0f32, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        for layer in model.layers.iter_mut() {
            match layer {
                Layer::Conv2d(conv) => {
                    conv.weight = Param::from_tensor(Tensor::ones([1, 1, 1, 1], &device));
                    conv.bias = Some(Param::from_tensor(Tensor::zeros([1], &device)));
                }
                Layer::Dense(dense) => {
                    let w: Vec<f32> = right_half.iter().flat_map(|&r| [-r, r]).collect();
                    dense.weight =
                        Param::from_tensor(Tensor::from_data(TensorData::new(w, [8, 2]), &device));
                }
                _ => {}
            }
        }
        let model = model.freeze();
        let pixels = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        let x = Tensor::<4>::from_data(TensorData::new(pixels.to_vec(), [1, 1, 2, 4]), &device);
        let for_one = explain(&model, &config, x.clone(), None).unwrap();
        assert_eq!(for_one.class, 1, "the right half is positive");
        // The image itself, from its darkest pixel (0.1) to its brightest (0.8).
        let cam = for_one.cam.unwrap();
        for (got, p) in cam.iter().zip(pixels) {
            assert!((got - (p - 0.1) / 0.7).abs() < 1e-5, "{cam:?}");
        }
        // Saliency: the Dense weights' magnitude, the right half.
        assert_eq!(for_one.saliency, right_half.to_vec());
        let for_zero = explain(&model, &config, x, Some(0)).unwrap();
        assert!(for_zero.cam.unwrap().iter().all(|&v| v == 0.0));
    }
}
