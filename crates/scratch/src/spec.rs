//! Experiment configs: a TOML list of layers plus optimiser and training settings.
//!
//! ```toml
//! [train]
//! epochs = 10
//! [optimizer]
//! type = "sgd"
//! lr = 0.5
//! [[layers]]
//! type = "affine"
//! units = 100
//! [[layers]]
//! type = "sigmoid"
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::init::Init;
use crate::layers::im2col::Window;

/// One layer of a network description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// Fully connected: y = x·W + b (flattens an image input).
    Affine {
        units: usize,
        /// Default: xavier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
    },
    Sigmoid,
    Relu,
    /// `filters` square filters of `size`, moved by `stride` over the input padded with
    /// `pad` zeros on every side.
    Conv {
        filters: usize,
        size: usize,
        #[serde(default = "unit_stride")]
        stride: usize,
        #[serde(default)]
        pad: usize,
        /// Default: he.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
    },
    /// Maximum over `size` × `size` windows; `stride` defaults to `size`.
    MaxPool {
        size: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
    },
    /// Images to feature vectors. Rows already hold an image's values in a fixed order,
    /// so this only changes the shape the next layer sees.
    Flatten,
    /// Drops each input with probability `ratio` while training.
    Dropout {
        ratio: f32,
    },
    /// Normalises each channel over the batch; learned γ, β.
    BatchNorm {
        #[serde(default = "bn_momentum")]
        momentum: f32,
        #[serde(default = "bn_eps")]
        eps: f32,
    },
}

/// A convolution visits every position unless told otherwise.
fn unit_stride() -> usize {
    1
}
fn bn_momentum() -> f32 {
    0.9
}
fn bn_eps() -> f32 {
    1e-5
}

impl LayerSpec {
    /// A short description, e.g. "conv 32×3×3 stride 1 pad 1".
    pub fn describe(&self) -> String {
        match self {
            LayerSpec::Affine { units, .. } => format!("affine {units}"),
            LayerSpec::Sigmoid => "sigmoid".into(),
            LayerSpec::Relu => "relu".into(),
            LayerSpec::Conv {
                filters,
                size,
                stride,
                pad,
                ..
            } => format!("conv {filters}×{size}×{size} stride {stride} pad {pad}"),
            LayerSpec::MaxPool { size, stride } => {
                format!("max_pool {size}×{size} stride {}", stride.unwrap_or(*size))
            }
            LayerSpec::Flatten => "flatten".into(),
            LayerSpec::Dropout { ratio } => format!("dropout {ratio}"),
            LayerSpec::BatchNorm { .. } => "batch_norm".into(),
        }
    }

    /// The pooling stride (its window size unless given).
    pub fn pool_stride(size: usize, stride: Option<usize>) -> usize {
        stride.unwrap_or(size)
    }

    /// The shape this layer outputs for `input`, or why it cannot take that input.
    pub fn output_shape(&self, input: InputShape) -> std::result::Result<InputShape, String> {
        let flat = |n: usize| InputShape {
            channels: n,
            height: 1,
            width: 1,
        };
        let window = |size: usize, stride: usize, pad: usize| {
            Window::new(input.hwc(), size, stride, pad).ok_or_else(|| {
                if size == 0 || stride == 0 {
                    "size and stride must be at least 1".to_string()
                } else {
                    format!(
                        "a {size}×{size} window does not fit a {}×{} input padded by {pad}",
                        input.height, input.width
                    )
                }
            })
        };
        match *self {
            LayerSpec::Affine { units, .. } => {
                if units == 0 {
                    return Err("units must be at least 1".into());
                }
                Ok(flat(units))
            }
            LayerSpec::Sigmoid | LayerSpec::Relu => Ok(input),
            LayerSpec::Conv {
                filters,
                size,
                stride,
                pad,
                ..
            } => {
                if filters == 0 {
                    return Err("filters must be at least 1".into());
                }
                let w = window(size, stride, pad)?;
                Ok(InputShape {
                    channels: filters,
                    height: w.out_height,
                    width: w.out_width,
                })
            }
            LayerSpec::MaxPool { size, stride } => {
                let w = window(size, Self::pool_stride(size, stride), 0)?;
                Ok(InputShape {
                    channels: input.channels,
                    height: w.out_height,
                    width: w.out_width,
                })
            }
            LayerSpec::Flatten => Ok(flat(input.features())),
            LayerSpec::Dropout { ratio } => {
                if !(0.0..1.0).contains(&ratio) {
                    return Err(format!("ratio {ratio} is not in [0, 1)"));
                }
                Ok(input)
            }
            LayerSpec::BatchNorm { momentum, eps } => {
                if !(0.0..1.0).contains(&momentum) || eps < 0.0 {
                    return Err(format!(
                        "momentum {momentum} must be in [0, 1) and eps {eps} non-negative"
                    ));
                }
                Ok(input)
            }
        }
    }
}

/// The shape of one sample: an image, or (height = width = 1) a feature vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl InputShape {
    pub const MNIST: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn hwc(&self) -> (usize, usize, usize) {
        (self.height, self.width, self.channels)
    }
}

impl std::fmt::Display for InputShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.height == 1 && self.width == 1 {
            write!(f, "{}", self.channels)
        } else {
            write!(f, "{}×{}×{}", self.height, self.width, self.channels)
        }
    }
}

/// Everything needed to rebuild a network: stored with its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub input: InputShape,
    pub classes: usize,
    pub layers: Vec<LayerSpec>,
}

impl Architecture {
    /// Sets the first affine layer's width M (the hidden units of the course's 784 → M →
    /// 10 network).
    pub fn set_hidden_units(&mut self, m: usize) -> Result<()> {
        match self
            .layers
            .iter_mut()
            .find(|l| matches!(l, LayerSpec::Affine { .. }))
        {
            Some(LayerSpec::Affine { units, .. }) => {
                *units = m;
                Ok(())
            }
            _ => bail!("the config has no affine layer"),
        }
    }

    /// Every layer's output shape, checking that the layers chain from the input to
    /// `classes` outputs; errors name the layer (1-based, as in the config file) and the
    /// shapes.
    pub fn shapes(&self) -> Result<Vec<InputShape>> {
        if self.layers.is_empty() {
            bail!("the network has no layers");
        }
        if self.input.features() == 0 {
            bail!("the data's samples are {}: empty", self.input);
        }
        let mut shape = self.input;
        let mut shapes = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            shape = layer.output_shape(shape).map_err(|why| {
                anyhow::anyhow!(
                    "layer {} ({}): {why} (its input is {shape})",
                    i + 1,
                    layer.describe()
                )
            })?;
            shapes.push(shape);
        }
        if shape.features() != self.classes {
            bail!(
                "the last layer outputs {shape} values but the data has {} classes \
                 (make the last affine layer's units {})",
                self.classes,
                self.classes
            );
        }
        Ok(shapes)
    }

    pub fn validate(&self) -> Result<()> {
        self.shapes().map(|_| ())
    }

    /// The number of weights, biases and BatchNorm statistics, counted from the shapes
    /// (before anything is allocated).
    pub fn parameter_count(&self) -> Result<u128> {
        let shapes = self.shapes()?;
        let mut input = self.input;
        let mut count = 0u128;
        for (layer, &output) in self.layers.iter().zip(&shapes) {
            count += match *layer {
                LayerSpec::Affine { units, .. } => (input.features() as u128 + 1) * units as u128,
                LayerSpec::Conv { filters, size, .. } => {
                    (input.channels as u128 * (size * size) as u128 + 1) * filters as u128
                }
                LayerSpec::BatchNorm { .. } => 4 * output.channels as u128,
                _ => 0,
            };
            input = output;
        }
        Ok(count)
    }

    /// "784 → affine 50 → relu → affine 10", with shapes after shape-changing layers.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.input.to_string()];
        let mut shape = self.input;
        for l in &self.layers {
            let next = l.output_shape(shape).unwrap_or(shape);
            if next != shape && !matches!(l, LayerSpec::Affine { .. } | LayerSpec::Flatten) {
                parts.push(format!("{} [{next}]", l.describe()));
            } else {
                parts.push(l.describe());
            }
            shape = next;
        }
        parts.join(" → ")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// mnist, fashion, cifar10 or folder:DIR (`--dataset` overrides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<dataset::DatasetChoice>,
    /// Multiply the learning rate by this after every epoch (Keras' ExponentialDecay per
    /// epoch; 1 = constant).
    pub lr_decay: f32,
    /// Shift each training image by up to this many pixels in each direction, freshly
    /// every time it is drawn (0 = off).
    pub shift: usize,
    /// Measure the per-epoch training accuracy on only the first N training images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_eval_limit: Option<usize>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 100,
            seed: 42,
            dataset: None,
            lr_decay: 1.0,
            shift: 0,
            train_eval_limit: None,
        }
    }
}

/// The optimisers of the course (A4), each with the course's default settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// W ← W − η ∂L/∂W
    Sgd {
        #[serde(default = "course::sgd_lr")]
        lr: f32,
    },
    /// v ← α v − η ∂L/∂W; W ← W + v
    Momentum {
        #[serde(default = "course::momentum_lr")]
        lr: f32,
        #[serde(default = "course::momentum")]
        momentum: f32,
    },
    /// h ← h + g²; W ← W − η g / √h (h starts at h0)
    #[serde(rename = "adagrad")]
    AdaGrad {
        #[serde(default = "course::adagrad_lr")]
        lr: f32,
        #[serde(default = "course::adagrad_h0")]
        h0: f32,
    },
    /// h ← ρ h + (1 − ρ) g²; W ← W − η g / (√h + ε)
    #[serde(rename = "rmsprop")]
    RmsProp {
        #[serde(default = "course::rmsprop_lr")]
        lr: f32,
        #[serde(default = "course::rmsprop_rho")]
        rho: f32,
        #[serde(default = "course::rmsprop_eps")]
        eps: f32,
    },
    /// h ← ρ h + (1 − ρ) g²; Δ = √(s + ε) / √(h + ε) · g; s ← ρ s + (1 − ρ) Δ²; W ← W − Δ
    #[serde(rename = "adadelta")]
    AdaDelta {
        #[serde(default = "course::adadelta_rho")]
        rho: f32,
        #[serde(default = "course::adadelta_eps")]
        eps: f32,
    },
    /// Bias-corrected moment estimates m̂, v̂; W ← W − α m̂ / (√v̂ + ε)
    Adam {
        #[serde(default = "course::adam_lr")]
        lr: f32,
        #[serde(default = "course::adam_beta1")]
        beta1: f32,
        #[serde(default = "course::adam_beta2")]
        beta2: f32,
        #[serde(default = "course::adam_eps")]
        eps: f32,
    },
}

/// Each optimiser's settings when a config leaves them out: the course's
/// (`common/optimizer.py`), named by what they set.
mod course {
    pub fn sgd_lr() -> f32 {
        0.01
    }
    pub fn momentum_lr() -> f32 {
        0.01
    }
    pub fn momentum() -> f32 {
        0.9
    }
    pub fn adagrad_lr() -> f32 {
        0.001
    }
    /// h's starting value, so the first step does not divide by zero.
    pub fn adagrad_h0() -> f32 {
        1e-8
    }
    pub fn rmsprop_lr() -> f32 {
        0.001
    }
    pub fn rmsprop_rho() -> f32 {
        0.9
    }
    pub fn rmsprop_eps() -> f32 {
        1e-8
    }
    pub fn adadelta_rho() -> f32 {
        0.95
    }
    pub fn adadelta_eps() -> f32 {
        1e-6
    }
    pub fn adam_lr() -> f32 {
        0.001
    }
    pub fn adam_beta1() -> f32 {
        0.9
    }
    pub fn adam_beta2() -> f32 {
        0.999
    }
    pub fn adam_eps() -> f32 {
        1e-8
    }
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Sgd { lr: 0.1 }
    }
}

impl OptimizerSpec {
    /// The same optimiser with learning rate `new`; AdaDelta has none.
    pub fn with_lr(&self, new: f32) -> Result<Self> {
        let mut spec = self.clone();
        match &mut spec {
            OptimizerSpec::Sgd { lr }
            | OptimizerSpec::Momentum { lr, .. }
            | OptimizerSpec::AdaGrad { lr, .. }
            | OptimizerSpec::RmsProp { lr, .. }
            | OptimizerSpec::Adam { lr, .. } => *lr = new,
            OptimizerSpec::AdaDelta { .. } => {
                bail!("--lr: AdaDelta has no learning rate (it adapts its own step size)")
            }
        }
        Ok(spec)
    }
}

/// Penalties on the weight matrices (not biases or BatchNorm's γ, β), added to the loss:
/// L2: λ/2 Σ W², L1: λ Σ |W|.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Regularization {
    pub l2: f32,
    pub l1: f32,
}

/// A whole experiment config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    #[serde(default)]
    pub train: TrainSettings,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    #[serde(default)]
    pub regularization: Regularization,
    pub layers: Vec<LayerSpec>,
}

/// The task-3 network, also in `configs/mlp-sigmoid.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/mlp-sigmoid.toml");

impl OptimizerSpec {
    /// Every setting in its range: a learning rate that is a positive number, momentum and
    /// decay rates in [0, 1), ε and h0 not negative. Errors name the setting.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f32| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                bail!("optimizer {name} = {v} must be a positive number");
            }
            Ok(())
        };
        let rate = |name: &str, v: f32| -> Result<()> {
            if !(0.0..1.0).contains(&v) {
                bail!("optimizer {name} = {v} must be in [0, 1)");
            }
            Ok(())
        };
        let non_negative = |name: &str, v: f32| -> Result<()> {
            if !(v.is_finite() && v >= 0.0) {
                bail!("optimizer {name} = {v} must not be negative");
            }
            Ok(())
        };
        match *self {
            OptimizerSpec::Sgd { lr } => positive("lr", lr),
            OptimizerSpec::Momentum { lr, momentum } => {
                positive("lr", lr)?;
                rate("momentum", momentum)
            }
            OptimizerSpec::AdaGrad { lr, h0 } => {
                positive("lr", lr)?;
                non_negative("h0", h0)
            }
            OptimizerSpec::RmsProp { lr, rho, eps } => {
                positive("lr", lr)?;
                rate("rho", rho)?;
                non_negative("eps", eps)
            }
            OptimizerSpec::AdaDelta { rho, eps } => {
                rate("rho", rho)?;
                non_negative("eps", eps)
            }
            OptimizerSpec::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                positive("lr", lr)?;
                rate("beta1", beta1)?;
                rate("beta2", beta2)?;
                non_negative("eps", eps)
            }
        }
    }
}

impl ExperimentConfig {
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        dataset::toml_text::parse(text, origin, "config").map_err(anyhow::Error::msg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn default_config() -> Self {
        Self::parse(DEFAULT_CONFIG, "configs/mlp-sigmoid.toml")
            .expect("the shipped default config parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_parses_and_chains() {
        let cfg = ExperimentConfig::default_config();
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: cfg.layers,
        };
        arch.validate().unwrap();
    }

    #[test]
    fn unknown_layer_types_and_options_are_rejected() {
        let bad_type = "[[layers]]\ntype = \"convolution\"\n";
        let msg = format!(
            "{:#}",
            ExperimentConfig::parse(bad_type, "x.toml").unwrap_err()
        );
        assert!(
            msg.contains("x.toml") && msg.contains("convolution"),
            "{msg}"
        );
        let bad_option = "[[layers]]\ntype = \"affine\"\nunits = 10\nwidth = 3\n";
        let msg = format!(
            "{:#}",
            ExperimentConfig::parse(bad_option, "y.toml").unwrap_err()
        );
        assert!(msg.contains("width"), "{msg}");
    }

    #[test]
    fn shapes_that_do_not_chain_are_reported() {
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: vec![
                LayerSpec::Affine {
                    units: 50,
                    init: None,
                },
                LayerSpec::Relu,
            ],
        };
        let msg = arch.validate().unwrap_err().to_string();
        assert!(msg.contains("50") && msg.contains("10 classes"), "{msg}");
    }

    #[test]
    fn conv_shapes_chain_and_misfits_name_the_layer() {
        let layers = |size: usize| {
            vec![
                LayerSpec::Conv {
                    filters: 8,
                    size: 3,
                    stride: 1,
                    pad: 1,
                    init: None,
                },
                LayerSpec::MaxPool {
                    size: 2,
                    stride: None,
                },
                LayerSpec::Conv {
                    filters: 4,
                    size,
                    stride: 2,
                    pad: 0,
                    init: None,
                },
                LayerSpec::Flatten,
                LayerSpec::Affine {
                    units: 10,
                    init: None,
                },
            ]
        };
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: layers(3),
        };
        let shapes = arch.shapes().unwrap();
        let dims: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
        assert_eq!(dims, ["28×28×8", "14×14×8", "6×6×4", "144", "10"]);
        let bad = Architecture {
            layers: layers(15),
            ..arch
        };
        let msg = bad.validate().unwrap_err().to_string();
        assert!(
            msg.contains("layer 3") && msg.contains("14×14×8") && msg.contains("15×15"),
            "{msg}"
        );
    }

    #[test]
    fn optimizers_take_the_course_defaults() {
        let cfg = ExperimentConfig::parse(
            "[optimizer]\ntype = \"adam\"\n[[layers]]\ntype = \"affine\"\nunits = 10\n",
            "a.toml",
        )
        .unwrap();
        assert_eq!(
            cfg.optimizer,
            OptimizerSpec::Adam {
                lr: 0.001,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8
            }
        );
        let ada = OptimizerSpec::AdaDelta {
            rho: 0.95,
            eps: 1e-6,
        };
        assert!(ada.with_lr(0.1).is_err());
        assert_eq!(
            OptimizerSpec::Momentum {
                lr: 0.01,
                momentum: 0.9
            }
            .with_lr(0.1)
            .unwrap(),
            OptimizerSpec::Momentum {
                lr: 0.1,
                momentum: 0.9
            }
        );
    }
}
