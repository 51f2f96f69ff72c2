//! Sequential models described in TOML with Keras's layer names and options.
//!
//! ```toml
//! input = [1, 28, 28]          # channels, height, width
//! [[layers]]
//! type = "Conv2D"
//! filters = 32
//! kernel_size = 3
//! padding = "same"
//! activation = "relu"
//! ```
//!
//! Shapes and parameter counts are worked out here, as Keras's `model.summary()` shows
//! them, before anything is built; a layer that does not fit its input is an error naming
//! the layer.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::callbacks::{CallbackOptions, Monitor};
use crate::class_mode::ClassMode;
use crate::class_weight::ClassWeight;
use crate::initializers::Initializer;
use crate::lr_schedule::ScheduleKind;
use crate::optimizer::{HyperParameters, Optimizer, OptimizerKind};
use crate::saved_model::Resample;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Linear,
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
    /// LeakyReLU with slope 0.2 (the DCGAN paper's).
    LeakyRelu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    #[default]
    Valid,
    Same,
}

/// `3` or `[3, 3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pair {
    One(usize),
    Two([usize; 2]),
}

impl Pair {
    pub fn get(self) -> [usize; 2] {
        match self {
            Pair::One(k) => [k, k],
            Pair::Two(p) => p,
        }
    }
}

/// Keras's Conv2D `strides` default, (1, 1): every position.
fn keras_conv_strides() -> Pair {
    Pair::One(1)
}

/// Keras's `use_bias` default for Conv2D and Dense.
fn keras_use_bias() -> bool {
    true
}

/// Keras's `kernel_initializer` default for Conv2D and Dense.
fn keras_kernel_initializer() -> Initializer {
    Initializer::GlorotUniform
}

/// Keras's `bias_initializer` default.
fn keras_bias_initializer() -> Initializer {
    Initializer::Zeros
}

/// One Keras layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum LayerConfig {
    Conv2D {
        filters: usize,
        kernel_size: Pair,
        #[serde(default = "keras_conv_strides")]
        strides: Pair,
        #[serde(default)]
        padding: Padding,
        #[serde(default)]
        activation: Activation,
        #[serde(default = "keras_use_bias")]
        use_bias: bool,
        #[serde(default = "keras_kernel_initializer")]
        kernel_initializer: Initializer,
        #[serde(default = "keras_bias_initializer")]
        bias_initializer: Initializer,
        /// `false`: frozen (no gradient, no optimiser state), as Keras's `trainable`.
        #[serde(default = "keras_trainable", skip_serializing_if = "is_true")]
        trainable: bool,
    },
    MaxPooling2D {
        pool_size: Pair,
        /// Defaults to the pool size, as in Keras.
        #[serde(default)]
        strides: Option<Pair>,
    },
    /// A struct variant (not a unit one) so that unknown options are rejected.
    Flatten {},
    Dense {
        units: usize,
        #[serde(default)]
        activation: Activation,
        #[serde(default = "keras_use_bias")]
        use_bias: bool,
        #[serde(default = "keras_kernel_initializer")]
        kernel_initializer: Initializer,
        #[serde(default = "keras_bias_initializer")]
        bias_initializer: Initializer,
        #[serde(default = "keras_trainable", skip_serializing_if = "is_true")]
        trainable: bool,
    },
    Dropout {
        rate: f64,
    },
    BatchNormalization {
        #[serde(default = "keras_bn_epsilon")]
        epsilon: f64,
        /// Keras's momentum: the weight of the old running average.
        #[serde(default = "keras_bn_momentum")]
        momentum: f64,
        #[serde(default = "keras_trainable", skip_serializing_if = "is_true")]
        trainable: bool,
    },
    Activation {
        activation: Activation,
    },
}

/// Keras's `trainable` default.
fn keras_trainable() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Keras's BatchNormalization defaults (`epsilon`, `momentum`).
fn keras_bn_epsilon() -> f64 {
    1e-3
}

fn keras_bn_momentum() -> f64 {
    0.99
}

impl LayerConfig {
    /// Whether its weights train (`trainable = false` freezes them).
    pub fn trainable(&self) -> bool {
        match self {
            LayerConfig::Conv2D { trainable, .. }
            | LayerConfig::Dense { trainable, .. }
            | LayerConfig::BatchNormalization { trainable, .. } => *trainable,
            _ => true,
        }
    }

    /// Keras's layer class name.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerConfig::Conv2D { .. } => "Conv2D",
            LayerConfig::MaxPooling2D { .. } => "MaxPooling2D",
            LayerConfig::Flatten {} => "Flatten",
            LayerConfig::Dense { .. } => "Dense",
            LayerConfig::Dropout { .. } => "Dropout",
            LayerConfig::BatchNormalization { .. } => "BatchNormalization",
            LayerConfig::Activation { .. } => "Activation",
        }
    }
}

/// A model file: the input shape and the layers, and optionally how to train it
/// (Keras's `compile` and `fit` arguments; command-line flags override them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// (channels, height, width)
    pub input: [usize; 3],
    pub layers: Vec<LayerConfig>,
    #[serde(default)]
    pub compile: CompileConfig,
    #[serde(default)]
    pub fit: FitConfig,
}

/// `model.compile(optimizer=...)`: the optimiser, its learning rate and schedule, and any
/// of its Keras constructor arguments (`momentum = 0.9`, `nesterov = true`, `beta_1`,
/// `beta_2`, `rho`, `epsilon`, `initial_accumulator_value`), Keras's defaults otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompileConfig {
    pub optimizer: Option<OptimizerKind>,
    pub learning_rate: Option<f64>,
    /// Multiply the learning rate by this over every epoch, smoothly step by step (Keras's
    /// `ExponentialDecay(decay_steps=steps per epoch)`); 1 or absent: constant.
    pub lr_decay: Option<f64>,
    /// How the rate changes by epoch: constant, exponential (× `lr_decay` over each
    /// epoch; the default when `lr_decay` is set), step (× `lr_decay` every
    /// `lr_step_epochs` epochs) or cosine (down to 0 over the run).
    pub lr_schedule: Option<ScheduleKind>,
    pub lr_step_epochs: Option<usize>,
    pub momentum: Option<f64>,
    pub nesterov: Option<bool>,
    pub beta_1: Option<f64>,
    pub beta_2: Option<f64>,
    pub rho: Option<f64>,
    pub epsilon: Option<f64>,
    pub initial_accumulator_value: Option<f64>,
}

impl CompileConfig {
    fn hyper_parameters(&self) -> HyperParameters {
        HyperParameters {
            momentum: self.momentum,
            nesterov: self.nesterov,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            rho: self.rho,
            epsilon: self.epsilon,
            initial_accumulator_value: self.initial_accumulator_value,
        }
    }

    /// The optimiser and learning rate, command-line choices first. The config's learning
    /// rate and settings belong to the config's optimiser: choosing another one on the
    /// command line takes that optimiser's Keras defaults (and its default rate without
    /// `--lr`).
    pub fn resolve(
        &self,
        optimizer: Option<OptimizerKind>,
        lr: Option<f64>,
    ) -> Result<(Optimizer, f64)> {
        let chosen = optimizer.or(self.optimizer).unwrap_or_default();
        let own = self.optimizer.unwrap_or_default() == chosen;
        let config_lr = self.learning_rate.filter(|_| own);
        let settings = if own {
            self.hyper_parameters()
        } else {
            HyperParameters::default()
        };
        let lr = lr.or(config_lr).unwrap_or(chosen.default_lr());
        if !(lr.is_finite() && lr > 0.0) {
            bail!("the learning rate must be a positive number, not {lr}");
        }
        Ok((Optimizer::with(chosen, &settings)?, lr))
    }
}

/// `model.fit(...)` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FitConfig {
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    /// Train on the first N training images only (to show over-fitting).
    pub train_limit: Option<usize>,
    /// Batches per epoch, cycling through the data (Keras `steps_per_epoch`).
    pub steps_per_epoch: Option<usize>,
    /// Validation batches per epoch (Keras `validation_steps`).
    pub validation_steps: Option<usize>,
    pub seed: Option<u64>,
    /// Randomly transform every training image anew each epoch, as `--augment` does
    /// (MNIST: shifts, rotations, zoom; faces: also left-right flips).
    pub augment: Option<bool>,
    /// Keras's callbacks (crate::callbacks): what they watch, `val_loss` by default.
    pub monitor: Option<Monitor>,
    /// EarlyStopping(patience): stop after this many epochs without improvement.
    pub patience: Option<usize>,
    /// EarlyStopping(min_delta): the least change that counts as an improvement.
    pub min_delta: Option<f64>,
    /// EarlyStopping(restore_best_weights): end with the best epoch's weights.
    pub restore_best_weights: Option<bool>,
    /// ModelCheckpoint(save_best_only): `model.bpk` is the best epoch's weights.
    pub save_best_only: Option<bool>,
    /// ReduceLROnPlateau(patience): lower the rate after this many epochs without
    /// improvement, by `reduce_lr_factor` (0.1) down to `min_lr` (0).
    pub reduce_lr_patience: Option<usize>,
    pub reduce_lr_factor: Option<f64>,
    pub min_lr: Option<f64>,
    /// Keras's `class_weight`: `"balanced"` or one weight per class, in class order.
    pub class_weight: Option<ClassWeight>,
    /// flow_from_directory's class_mode: `categorical` (one softmax output per class) or
    /// `binary` (two classes, one sigmoid unit); by default what the last layer is.
    pub class_mode: Option<ClassMode>,
    /// `false`: train in the data's own order every epoch (Keras's `shuffle=False`).
    pub shuffle: Option<bool>,
    /// Transfer learning: start from this saved model's weights (`model.bpk`) for every
    /// layer whose kind and shape match, position by position.
    pub init_from: Option<std::path::PathBuf>,
    /// ImageDataGenerator's augmentation, one setting at a time (over `augment`'s preset):
    /// the largest rotation in degrees, shifts and zoom as fractions, left-right flips,
    /// and how warped images are sampled (nearest or bilinear, Keras's default).
    pub rotation_range: Option<f32>,
    pub width_shift_range: Option<f32>,
    pub height_shift_range: Option<f32>,
    pub zoom_range: Option<f32>,
    pub horizontal_flip: Option<bool>,
    pub augment_interpolation: Option<Resample>,
}

impl FitConfig {
    /// The callback settings among these.
    pub fn callbacks(&self) -> CallbackOptions {
        CallbackOptions {
            monitor: self.monitor,
            patience: self.patience,
            min_delta: self.min_delta,
            restore_best_weights: self.restore_best_weights,
            save_best_only: self.save_best_only,
            reduce_lr_patience: self.reduce_lr_patience,
            reduce_lr_factor: self.reduce_lr_factor,
            min_lr: self.min_lr,
        }
    }
}

/// The shape of the activations between layers (batch dimension left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// (channels, height, width)
    Image([usize; 3]),
    Flat(usize),
}

impl Shape {
    /// As Keras prints it (channels last): `(None, 28, 28, 32)`, `(None, 128)`.
    pub fn keras(&self) -> String {
        match self {
            Shape::Image([c, h, w]) => format!("(None, {h}, {w}, {c})"),
            Shape::Flat(n) => format!("(None, {n})"),
        }
    }
}

/// One row of the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    pub name: String,
    pub kind: &'static str,
    pub output: Shape,
    pub trainable: usize,
    pub non_trainable: usize,
}

impl LayerInfo {
    pub fn params(&self) -> usize {
        self.trainable + self.non_trainable
    }
}

impl ModelConfig {
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        dataset::toml_text::parse(text, origin, "model config").map_err(anyhow::Error::msg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Every layer's output shape and parameters; errors name the layer (1-based) and the
    /// shape it was given.
    pub fn infer(&self) -> Result<Vec<LayerInfo>> {
        let [c, h, w] = self.input;
        if c == 0 || h == 0 || w == 0 {
            bail!("input shape {:?} has a zero dimension", self.input);
        }
        let mut shape = Shape::Image(self.input);
        let mut counters = std::collections::HashMap::<&str, usize>::new();
        let mut infos = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let fail = |why: String| {
                anyhow::anyhow!(
                    "layer {} ({}): {why}; its input is {}",
                    i + 1,
                    layer.kind(),
                    shape.keras()
                )
            };
            let (output, trainable, non_trainable) = match (layer, shape) {
                (
                    LayerConfig::Conv2D {
                        filters,
                        kernel_size,
                        strides,
                        padding,
                        use_bias,
                        ..
                    },
                    Shape::Image([c, h, w]),
                ) => {
                    let ([kh, kw], [sh, sw]) = (kernel_size.get(), strides.get());
                    if *filters == 0 || kh == 0 || kw == 0 || sh == 0 || sw == 0 {
                        return Err(fail(
                            "filters, kernel size and strides must be at least 1".into(),
                        ));
                    }
                    let (oh, ow) = match padding {
                        Padding::Same => (h.div_ceil(sh), w.div_ceil(sw)),
                        Padding::Valid if kh <= h && kw <= w => {
                            ((h - kh) / sh + 1, (w - kw) / sw + 1)
                        }
                        Padding::Valid => {
                            return Err(fail(format!(
                                "a {kh}x{kw} kernel does not fit (use padding = \"same\")"
                            )));
                        }
                    };
                    (
                        Shape::Image([*filters, oh, ow]),
                        (kh * kw * c + usize::from(*use_bias)) * filters,
                        0,
                    )
                }
                (LayerConfig::MaxPooling2D { pool_size, strides }, Shape::Image([c, h, w])) => {
                    let [ph, pw] = pool_size.get();
                    let [sh, sw] = strides.unwrap_or(*pool_size).get();
                    if ph == 0 || pw == 0 || sh == 0 || sw == 0 || ph > h || pw > w {
                        return Err(fail(format!(
                            "pool {ph}x{pw} with strides {sh}x{sw} does not fit"
                        )));
                    }
                    (
                        Shape::Image([c, (h - ph) / sh + 1, (w - pw) / sw + 1]),
                        0,
                        0,
                    )
                }
                (LayerConfig::Conv2D { .. } | LayerConfig::MaxPooling2D { .. }, Shape::Flat(_)) => {
                    return Err(fail("needs an image input; it comes after Flatten".into()));
                }
                (LayerConfig::Flatten {}, Shape::Image([c, h, w])) => {
                    (Shape::Flat(c * h * w), 0, 0)
                }
                (LayerConfig::Flatten {}, Shape::Flat(_)) => {
                    return Err(fail("the input is already flat".into()));
                }
                (
                    LayerConfig::Dense {
                        units, use_bias, ..
                    },
                    Shape::Flat(n),
                ) => {
                    if *units == 0 {
                        return Err(fail("units must be at least 1".into()));
                    }
                    (Shape::Flat(*units), (n + usize::from(*use_bias)) * units, 0)
                }
                (LayerConfig::Dense { .. }, Shape::Image(_)) => {
                    return Err(fail(
                        "needs a flat input: add a Flatten layer before it".into(),
                    ));
                }
                (LayerConfig::Dropout { rate }, s) => {
                    if !(0.0..1.0).contains(rate) {
                        return Err(fail(format!("rate {rate} is not in [0, 1)")));
                    }
                    (s, 0, 0)
                }
                (
                    LayerConfig::BatchNormalization {
                        epsilon, momentum, ..
                    },
                    s,
                ) => {
                    if !(0.0..=1.0).contains(momentum) {
                        return Err(fail(format!("momentum {momentum} is not in [0, 1]")));
                    }
                    if !(epsilon.is_finite() && *epsilon > 0.0) {
                        return Err(fail(format!("epsilon {epsilon} must be positive")));
                    }
                    let features = match s {
                        Shape::Image([c, ..]) => c,
                        Shape::Flat(n) => n,
                    };
                    // γ and β are trained; the moving mean and variance are not.
                    (s, 2 * features, 2 * features)
                }
                (LayerConfig::Activation { .. }, s) => (s, 0, 0),
            };
            // A frozen layer's weights count as non-trainable, as in Keras's summary.
            let (trainable, non_trainable) = if layer.trainable() {
                (trainable, non_trainable)
            } else {
                (0, trainable + non_trainable)
            };
            let base = keras_name(layer.kind());
            let n = counters.entry(base).or_insert(0);
            let name = if *n == 0 {
                base.to_string()
            } else {
                format!("{base}_{n}")
            };
            *n += 1;
            infos.push(LayerInfo {
                name,
                kind: layer.kind(),
                output,
                trainable,
                non_trainable,
            });
            shape = output;
        }
        if infos.is_empty() {
            bail!("the model has no layers");
        }
        Ok(infos)
    }
}

/// Rough bytes that training `infos`' model with batches of `batch` takes: each parameter
/// four times (weights, gradients, two optimiser moments) and, per image, every layer's
/// output twice (values and gradients), as f32. For refusing what cannot fit, before any
/// of it is allocated.
pub fn training_bytes(input: [usize; 3], infos: &[LayerInfo], batch: usize) -> u128 {
    let params: u128 = infos.iter().map(|l| l.params() as u128).sum();
    let size = |s: Shape| match s {
        Shape::Image([c, h, w]) => (c * h * w) as u128,
        Shape::Flat(n) => n as u128,
    };
    let per_image: u128 =
        size(Shape::Image(input)) + infos.iter().map(|l| size(l.output)).sum::<u128>();
    4 * (4 * params + 2 * per_image * batch as u128)
}

/// Keras's default layer names: `conv2d`, `conv2d_1`, `max_pooling2d`, `dense_1`, ...
fn keras_name(kind: &str) -> &'static str {
    match kind {
        "Conv2D" => "conv2d",
        "MaxPooling2D" => "max_pooling2d",
        "Flatten" => "flatten",
        "Dense" => "dense",
        "Dropout" => "dropout",
        "BatchNormalization" => "batch_normalization",
        _ => "activation",
    }
}

/// Keras's `model.summary()` table.
pub fn summary_table(title: &str, infos: &[LayerInfo]) -> String {
    let mut out = format!("Model: \"{title}\"\n");
    let rule = "─".repeat(70);
    out.push_str(&format!("┏{}┓\n", "━".repeat(70)));
    out.push_str(&format!(
        "┃ {:<32}┃ {:<22}┃ {:>11} ┃\n",
        "Layer (type)", "Output Shape", "Param #"
    ));
    out.push_str(&format!("┡{}┩\n", "━".repeat(70)));
    for (i, l) in infos.iter().enumerate() {
        let name = format!("{} ({})", l.name, l.kind);
        out.push_str(&format!(
            "│ {:<32}│ {:<22}│ {:>11} │\n",
            name,
            l.output.keras(),
            thousands(l.params())
        ));
        if i + 1 < infos.len() {
            out.push_str(&format!("├{rule}┤\n"));
        }
    }
    out.push_str(&format!("└{rule}┘\n"));
    let trainable: usize = infos.iter().map(|l| l.trainable).sum();
    let frozen: usize = infos.iter().map(|l| l.non_trainable).sum();
    out.push_str(&format!(
        " Total params: {}\n",
        thousands(trainable + frozen)
    ));
    out.push_str(&format!(" Trainable params: {}\n", thousands(trainable)));
    out.push_str(&format!(" Non-trainable params: {}\n", thousands(frozen)));
    out
}

/// 1625866 → "1,625,866".
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const COURSE_CNN: &str = include_str!("../../../configs/mnist-cnn.toml");

    #[test]
    fn callbacks_and_schedules_are_read_from_fit_and_compile() {
        let text = COURSE_CNN.replace(
            "[fit]",
            "[fit]\nmonitor = \"val_acc\"\npatience = 3\nrestore_best_weights = true\n\
             save_best_only = true\nreduce_lr_patience = 2\nmin_lr = 1e-5",
        );
        let text = text.replace(
            "[compile]",
            "[compile]\nlr_schedule = \"step\"\nlr_step_epochs = 2",
        );
        let config = ModelConfig::parse(&text, "t.toml").unwrap();
        let callbacks = config.fit.callbacks();
        assert_eq!(callbacks.monitor, Some(Monitor::ValAcc));
        assert_eq!(callbacks.patience, Some(3));
        assert_eq!(callbacks.restore_best_weights, Some(true));
        assert_eq!(callbacks.save_best_only, Some(true));
        assert_eq!(callbacks.reduce_lr_patience, Some(2));
        assert_eq!(callbacks.min_lr, Some(1e-5));
        assert_eq!(config.compile.lr_schedule, Some(ScheduleKind::Step));
        assert_eq!(config.compile.lr_step_epochs, Some(2));
        // A monitor Keras would not know is refused with the file's position.
        let bad = COURSE_CNN.replace("[fit]", "[fit]\nmonitor = \"val_auc\"");
        let err = ModelConfig::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(
            err.contains("val_auc") || err.contains("unknown variant"),
            "{err}"
        );
    }

    #[test]
    fn course_cnn_counts_equal_keras() {
        // Keras's model.summary() for the course's model.
        let infos = ModelConfig::parse(COURSE_CNN, "mnist-cnn.toml")
            .unwrap()
            .infer()
            .unwrap();
        let counts: Vec<usize> = infos.iter().map(LayerInfo::params).collect();
        assert_eq!(counts, [320, 18_496, 0, 0, 1_605_760, 1_290]);
        assert_eq!(counts.iter().sum::<usize>(), 1_625_866);
        let shapes: Vec<String> = infos.iter().map(|l| l.output.keras()).collect();
        assert_eq!(
            shapes,
            [
                "(None, 28, 28, 32)",
                "(None, 28, 28, 64)",
                "(None, 14, 14, 64)",
                "(None, 12544)",
                "(None, 128)",
                "(None, 10)"
            ]
        );
        let names: Vec<&str> = infos.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv2d",
                "conv2d_1",
                "max_pooling2d",
                "flatten",
                "dense",
                "dense_1"
            ]
        );
        let table = summary_table("sequential", &infos);
        assert!(table.contains("Total params: 1,625,866"), "{table}");
    }

    #[test]
    fn training_memory_counts_parameters_and_activations() {
        let cfg = ModelConfig::parse(
            "input = [1, 4, 4]\n[[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dense\"\nunits = 2\n",
            "x",
        )
        .unwrap();
        let infos = cfg.infer().unwrap();
        // 34 parameters x 4 copies; per image 16 inputs + 16 flat + 2 outputs, twice.
        assert_eq!(
            training_bytes(cfg.input, &infos, 10),
            4 * (4 * 34 + 2 * 34 * 10)
        );
    }

    #[test]
    fn batch_norm_has_non_trainable_moving_statistics() {
        let cfg = ModelConfig::parse(
            "input = [3, 8, 8]\n[[layers]]\ntype = \"BatchNormalization\"\n",
            "x",
        )
        .unwrap();
        let info = &cfg.infer().unwrap()[0];
        assert_eq!((info.trainable, info.non_trainable), (6, 6));
    }

    #[test]
    fn layers_that_do_not_fit_are_reported_with_index_and_shape() {
        let dense_first = "input = [1, 28, 28]\n[[layers]]\ntype = \"Dense\"\nunits = 10\n";
        let msg = ModelConfig::parse(dense_first, "x")
            .unwrap()
            .infer()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("layer 1 (Dense)")
                && msg.contains("Flatten")
                && msg.contains("(None, 28, 28, 1)"),
            "{msg}"
        );
        let big_kernel =
            "input = [1, 4, 4]\n[[layers]]\ntype = \"Conv2D\"\nfilters = 2\nkernel_size = 5\n";
        let msg = ModelConfig::parse(big_kernel, "x")
            .unwrap()
            .infer()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("layer 1 (Conv2D)") && msg.contains("5x5"),
            "{msg}"
        );
        let unknown = "input = [1, 4, 4]\n[[layers]]\ntype = \"Conv3D\"\n";
        assert!(ModelConfig::parse(unknown, "x").is_err());
        let bad_option = "input = [1, 4, 4]\n[[layers]]\ntype = \"Flatten\"\nunits = 3\n";
        assert!(ModelConfig::parse(bad_option, "x").is_err());
    }

    #[test]
    fn strided_same_and_valid_shapes_follow_keras() {
        let cfg = "input = [3, 64, 64]\n[[layers]]\ntype = \"Conv2D\"\nfilters = 8\nkernel_size = 4\nstrides = 2\npadding = \"same\"\n\
                   [[layers]]\ntype = \"Conv2D\"\nfilters = 8\nkernel_size = [3, 5]\n";
        let infos = ModelConfig::parse(cfg, "x").unwrap().infer().unwrap();
        assert_eq!(infos[0].output, Shape::Image([8, 32, 32]));
        assert_eq!(infos[1].output, Shape::Image([8, 30, 28]));
    }

    #[test]
    fn a_different_optimizer_on_the_command_line_brings_its_own_learning_rate() {
        let compile = CompileConfig {
            optimizer: Some(OptimizerKind::Adadelta),
            learning_rate: Some(1.0),
            rho: Some(0.9),
            ..Default::default()
        };
        let resolve = |o, lr| {
            let (opt, lr) = compile.resolve(o, lr).unwrap();
            (opt.kind(), lr)
        };
        assert_eq!(resolve(None, None), (OptimizerKind::Adadelta, 1.0));
        assert_eq!(
            resolve(Some(OptimizerKind::Adam), None),
            (OptimizerKind::Adam, 1e-3)
        );
        assert_eq!(
            resolve(Some(OptimizerKind::Adam), Some(0.01)),
            (OptimizerKind::Adam, 0.01)
        );
        assert_eq!(
            resolve(Some(OptimizerKind::Adadelta), None),
            (OptimizerKind::Adadelta, 1.0)
        );
        // The config's ρ goes with its Adadelta, not with an Adam chosen instead.
        assert_eq!(
            compile.resolve(None, None).unwrap().0,
            Optimizer::Adadelta {
                rho: 0.9,
                epsilon: 1e-7
            }
        );
        assert_eq!(
            compile.resolve(Some(OptimizerKind::Adam), None).unwrap().0,
            OptimizerKind::Adam.keras()
        );
        let (opt, lr) = CompileConfig::default().resolve(None, Some(0.5)).unwrap();
        assert_eq!((opt.kind(), lr), (OptimizerKind::Adadelta, 0.5));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                CompileConfig::default().resolve(None, Some(bad)).is_err(),
                "{bad}"
            );
        }
    }
}
