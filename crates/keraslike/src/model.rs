//! A Keras-style `Sequential` as a burn module, built from a [`ModelConfig`].

use anyhow::Result;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LeakyRelu, LeakyReluConfig, Linear,
    LinearConfig, PaddingConfig2d, Relu, Sigmoid, Tanh,
};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use crate::initializers::Fans;
use crate::model_config::{Activation, LayerConfig, ModelConfig, Padding, Shape};

/// (batch, C, H, W) → (batch, C·H·W).
#[derive(Module, Debug, Default)]
pub struct Flatten;

/// Softmax over the last dimension.
#[derive(Module, Debug, Default)]
pub struct Softmax;

#[derive(Module, Debug)]
pub enum Act {
    Relu(Relu),
    Sigmoid(Sigmoid),
    Tanh(Tanh),
    LeakyRelu(LeakyRelu),
    Softmax(Softmax),
}

#[derive(Module, Debug)]
pub enum Layer {
    Conv2d(Conv2d),
    MaxPool2d(MaxPool2d),
    Flatten(Flatten),
    Dense(Linear),
    Dropout(Dropout),
    BatchNorm(BatchNorm),
    Act(Act),
}

#[derive(Module, Debug)]
pub struct Sequential {
    pub layers: Vec<Layer>,
}

/// Activations flowing between layers: image-shaped until Flatten, then flat.
pub enum Flow {
    Image(Tensor<4>),
    Flat(Tensor<2>),
}

impl Layer {
    /// Keras's class name of a layer with weights; `None` for the others.
    pub fn weighted_kind(&self) -> Option<&'static str> {
        match self {
            Layer::Conv2d(_) => Some("Conv2D"),
            Layer::Dense(_) => Some("Dense"),
            Layer::BatchNorm(_) => Some("BatchNormalization"),
            _ => None,
        }
    }
}

impl Act {
    fn new(a: Activation) -> Option<Self> {
        match a {
            Activation::Linear => None,
            Activation::Relu => Some(Act::Relu(Relu::new())),
            Activation::Sigmoid => Some(Act::Sigmoid(Sigmoid::new())),
            Activation::Tanh => Some(Act::Tanh(Tanh::new())),
            Activation::LeakyRelu => Some(Act::LeakyRelu(
                LeakyReluConfig::new().with_negative_slope(0.2).init(),
            )),
            Activation::Softmax => Some(Act::Softmax(Softmax)),
        }
    }

    fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::Relu(m) => m.forward(x),
            Act::Sigmoid(m) => m.forward(x),
            Act::Tanh(m) => m.forward(x),
            Act::LeakyRelu(m) => m.forward(x),
            Act::Softmax(_) => softmax(x, D - 1),
        }
    }
}

/// `module` with its parameters frozen (no gradient, so no update and no optimiser state)
/// unless `trainable`, as Keras's `layer.trainable = False`.
fn frozen_unless<M: Module>(module: M, trainable: bool) -> M {
    if trainable { module } else { module.no_grad() }
}

/// `param` holding `value` instead, its id and gradient setting kept.
fn replaced<const D: usize>(param: Param<Tensor<D>>, value: Tensor<D>) -> Param<Tensor<D>> {
    param.map(|old| {
        let tracked = old.is_require_grad();
        value.detach().set_require_grad(tracked)
    })
}

/// A Conv2D's or Dense's weight and bias from `from` into `to` when their shapes (and
/// whether each has a bias) agree; whether they did.
fn copy_affine<const D: usize>(
    (weight, bias): (&mut Param<Tensor<D>>, &mut Option<Param<Tensor<1>>>),
    (from_weight, from_bias): (&Param<Tensor<D>>, &Option<Param<Tensor<1>>>),
) -> bool {
    if !same_dims(weight, from_weight) || bias.is_some() != from_bias.is_some() {
        return false;
    }
    *weight = replaced(weight.clone(), from_weight.val());
    if let (Some(b), Some(fb)) = (bias.take(), from_bias) {
        *bias = Some(replaced(b, fb.val()));
    }
    true
}

/// Whether two parameters have the same shape.
fn same_dims<const D: usize>(a: &Param<Tensor<D>>, b: &Param<Tensor<D>>) -> bool {
    a.val().dims() == b.val().dims()
}

impl Sequential {
    /// Transfer learning (`init_from`): every layer of `source` whose kind and weight
    /// shapes match this model's layer at the same position replaces that layer's weights
    /// (each keeps its own `trainable`); the positions copied, in order.
    pub fn copy_matching(mut self, source: &Sequential) -> (Self, Vec<usize>) {
        let mut copied = Vec::new();
        for (i, (layer, from)) in self.layers.iter_mut().zip(&source.layers).enumerate() {
            let done = match (layer, from) {
                (Layer::Conv2d(to), Layer::Conv2d(from)) => {
                    copy_affine((&mut to.weight, &mut to.bias), (&from.weight, &from.bias))
                }
                (Layer::Dense(to), Layer::Dense(from)) => {
                    copy_affine((&mut to.weight, &mut to.bias), (&from.weight, &from.bias))
                }
                (Layer::BatchNorm(to), Layer::BatchNorm(from))
                    if same_dims(&to.gamma, &from.gamma) =>
                {
                    to.gamma = replaced(to.gamma.clone(), from.gamma.val());
                    to.beta = replaced(to.beta.clone(), from.beta.val());
                    to.running_mean = burn::module::RunningState::new(from.running_mean.value());
                    to.running_var = burn::module::RunningState::new(from.running_var.value());
                    true
                }
                _ => false,
            };
            if done {
                copied.push(i);
            }
        }
        (self, copied)
    }

    /// Builds the model `config` describes, with fresh weights on `device`.
    pub fn new(config: &ModelConfig, device: &Device) -> Result<Self> {
        // Shapes are checked, with clear errors, before anything is built; so is the memory
        // the weights take.
        let infos = config.infer()?;
        let params: u128 = infos.iter().map(|l| l.params() as u128).sum();
        dataset::memory::check_fits(4 * params, &format!("the model's {params} parameters"))
            .map_err(anyhow::Error::msg)?;
        let mut input = Shape::Image(config.input);
        let mut layers = Vec::new();
        for (layer, info) in config.layers.iter().zip(&infos) {
            // Channels of an image input, features of a flat one.
            let width = match input {
                Shape::Image([c, _, _]) => c,
                Shape::Flat(n) => n,
            };
            match layer {
                LayerConfig::Conv2D {
                    filters,
                    kernel_size,
                    strides,
                    padding,
                    activation,
                    use_bias,
                    kernel_initializer,
                    bias_initializer,
                    trainable,
                } => {
                    let padding = match padding {
                        Padding::Same => PaddingConfig2d::Same,
                        Padding::Valid => PaddingConfig2d::Valid,
                    };
                    let [kh, kw] = kernel_size.get();
                    let mut conv = Conv2dConfig::new([width, *filters], [kh, kw])
                        .with_stride(strides.get())
                        .with_padding(padding)
                        .with_bias(*use_bias)
                        .init(device);
                    // Keras's initialisers replace burn's (PyTorch's) before any is drawn.
                    let fans = Fans {
                        fan_in: width * kh * kw,
                        fan_out: filters * kh * kw,
                    };
                    conv.weight = kernel_initializer.param([*filters, width, kh, kw], fans, device);
                    if *use_bias {
                        conv.bias = Some(bias_initializer.param([*filters], fans, device));
                    }
                    layers.push(Layer::Conv2d(frozen_unless(conv, *trainable)));
                    layers.extend(Act::new(*activation).map(Layer::Act));
                }
                LayerConfig::MaxPooling2D { pool_size, strides } => {
                    let pool = MaxPool2dConfig::new(pool_size.get())
                        .with_strides(strides.unwrap_or(*pool_size).get())
                        .init();
                    layers.push(Layer::MaxPool2d(pool));
                }
                LayerConfig::Flatten {} => layers.push(Layer::Flatten(Flatten)),
                LayerConfig::Dense {
                    units,
                    activation,
                    use_bias,
                    kernel_initializer,
                    bias_initializer,
                    trainable,
                } => {
                    let mut dense = LinearConfig::new(width, *units)
                        .with_bias(*use_bias)
                        .init(device);
                    let fans = Fans {
                        fan_in: width,
                        fan_out: *units,
                    };
                    // burn's Linear holds its weight as (inputs, outputs).
                    dense.weight = kernel_initializer.param([width, *units], fans, device);
                    if *use_bias {
                        dense.bias = Some(bias_initializer.param([*units], fans, device));
                    }
                    layers.push(Layer::Dense(frozen_unless(dense, *trainable)));
                    layers.extend(Act::new(*activation).map(Layer::Act));
                }
                LayerConfig::Dropout { rate } => {
                    layers.push(Layer::Dropout(DropoutConfig::new(*rate).init()))
                }
                LayerConfig::BatchNormalization {
                    epsilon,
                    momentum,
                    trainable,
                } => {
                    // burn's momentum weighs the new batch statistics; Keras's the old average.
                    let bn = BatchNormConfig::new(width)
                        .with_epsilon(*epsilon)
                        .with_momentum(1.0 - momentum)
                        .init(device);
                    layers.push(Layer::BatchNorm(frozen_unless(bn, *trainable)));
                }
                LayerConfig::Activation { activation } => {
                    layers.extend(Act::new(*activation).map(Layer::Act))
                }
            }
            input = info.output;
        }
        Ok(Self { layers })
    }

    /// Logits: every layer but a final softmax (which the loss applies itself). A binary
    /// head's one unit `z` before its sigmoid gives the two logits `[0, z]`, whose softmax
    /// is `[1 - sigmoid(z), sigmoid(z)]` (crate::class_mode).
    pub fn forward_logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.logits_from(Flow::Image(x), 0)
    }

    /// The logits from `flow`, the output of the first `start` built layers.
    pub fn logits_from(&self, flow: Flow, start: usize) -> Tensor<2> {
        let binary = self.has_binary_head();
        let last_is_softmax = matches!(self.layers.last(), Some(Layer::Act(Act::Softmax(_))));
        let end = self.layers.len() - usize::from(binary || last_is_softmax);
        let z = flat(self.run_layers(flow, start..end));
        if binary {
            Tensor::cat(vec![z.zeros_like(), z], 1)
        } else {
            z
        }
    }

    /// Whether it ends in one sigmoid unit (Keras's `Dense(1, activation="sigmoid")`).
    pub fn has_binary_head(&self) -> bool {
        match self.layers.as_slice() {
            [.., Layer::Dense(dense), Layer::Act(Act::Sigmoid(_))] => dense.weight.dims()[1] == 1,
            _ => false,
        }
    }

    /// The input of the last Dense layer: the "penultimate-layer features" that Fréchet
    /// scores compare (128 values for the course CNN).
    pub fn penultimate(&self, x: Tensor<4>) -> Tensor<2> {
        let last_dense = self
            .layers
            .iter()
            .rposition(|l| matches!(l, Layer::Dense(_)))
            .unwrap_or(self.layers.len());
        self.run(x, last_dense)
    }

    /// The model's output: class probabilities when it ends in softmax.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(x, self.layers.len())
    }

    fn run(&self, x: Tensor<4>, n: usize) -> Tensor<2> {
        flat(self.run_layers(Flow::Image(x), 0..n))
    }

    /// The built layers `range` (indices into `layers`) applied to `flow`.
    pub fn run_layers(&self, mut flow: Flow, range: std::ops::Range<usize>) -> Flow {
        for layer in &self.layers[range] {
            flow = match (layer, flow) {
                (Layer::Conv2d(m), Flow::Image(x)) => {
                    Flow::Image(crate::kernels::conv2d::conv2d(m, x))
                }
                (Layer::MaxPool2d(m), Flow::Image(x)) => Flow::Image(
                    crate::kernels::flex::max_pool2d(m, &x).unwrap_or_else(|| m.forward(x)),
                ),
                (Layer::Flatten(_), Flow::Image(x)) => Flow::Flat(x.flatten(1, 3)),
                (Layer::Dense(m), Flow::Flat(x)) => Flow::Flat(m.forward(x)),
                (Layer::Dropout(m), Flow::Image(x)) => Flow::Image(m.forward(x)),
                (Layer::Dropout(m), Flow::Flat(x)) => Flow::Flat(m.forward(x)),
                (Layer::BatchNorm(m), Flow::Image(x)) => Flow::Image(m.forward(x)),
                (Layer::BatchNorm(m), Flow::Flat(x)) => Flow::Flat(m.forward(x)),
                (Layer::Act(a), Flow::Image(x)) => Flow::Image(a.apply(x)),
                (Layer::Act(a), Flow::Flat(x)) => Flow::Flat(a.apply(x)),
                _ => unreachable!("layer order was checked by ModelConfig::infer"),
            };
        }
        flow
    }
}

fn flat(flow: Flow) -> Tensor<2> {
    match flow {
        Flow::Flat(x) => x,
        Flow::Image(x) => x.flatten(1, 3),
    }
}

/// How many of [`Sequential::new`]'s layers each Keras layer of `config` becomes: a
/// Conv2D or Dense with an activation is two (the activation its own), a linear
/// Activation none, every other one.
pub fn built_per_layer(config: &ModelConfig) -> Vec<usize> {
    let own = |a: &Activation| usize::from(*a != Activation::Linear);
    config
        .layers
        .iter()
        .map(|layer| match layer {
            LayerConfig::Conv2D { activation, .. } | LayerConfig::Dense { activation, .. } => {
                1 + own(activation)
            }
            LayerConfig::Activation { activation } => own(activation),
            _ => 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_config::ModelConfig;

    #[test]
    fn burn_module_of_the_course_cnn_has_keras_parameter_count() {
        let cfg = ModelConfig::parse(
            include_str!("../../../configs/mnist-cnn.toml"),
            "mnist-cnn.toml",
        )
        .unwrap();
        let device = Device::flex();
        let model = Sequential::new(&cfg, &device).unwrap();
        assert_eq!(model.num_params(), 1_625_866);
        let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
        assert_eq!(model.forward_logits(x.clone()).dims(), [2, 10]);
        let probs = model
            .forward(x)
            .sum_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(probs.iter().all(|p| (p - 1.0).abs() < 1e-5), "{probs:?}");
    }

    /// `built_per_layer` counts what `new` builds, for every shipped model and for
    /// activations folded in, separate, or linear.
    #[test]
    fn built_per_layer_counts_the_built_layers() {
        let extra = ModelConfig::parse(
            "input = [1, 4, 4]\n[[layers]]\ntype = \"Flatten\"\n\
             [[layers]]\ntype = \"Dense\"\nunits = 3\n\
             [[layers]]\ntype = \"Activation\"\nactivation = \"linear\"\n\
             [[layers]]\ntype = \"Activation\"\nactivation = \"softmax\"\n",
            "t.toml",
        )
        .unwrap();
        let shipped = [
            include_str!("../../../configs/mnist-cnn.toml"),
            include_str!("../../../configs/mnist-best.toml"),
            include_str!("../../../configs/face.toml"),
            include_str!("../../../configs/faces-64-binary.toml"),
        ]
        .map(|text| ModelConfig::parse(text, "shipped").unwrap());
        for config in shipped.iter().chain([&extra]) {
            let model = Sequential::new(config, &Device::flex()).unwrap();
            let counts = built_per_layer(config);
            assert_eq!(counts.len(), config.layers.len());
            assert_eq!(counts.iter().sum::<usize>(), model.layers.len());
        }
        assert_eq!(built_per_layer(&extra), vec![1, 1, 0, 1]);
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        t.into_data()
            .try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    }

    /// The largest magnitude and the standard deviation (about 0) of `v`.
    fn max_and_std(v: &[f64]) -> (f64, f64) {
        let max = v.iter().fold(0f64, |m, x| m.max(x.abs()));
        let std = (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
        (max, std)
    }

    /// The course CNN as built starts as Keras's does: every kernel glorot_uniform for its
    /// own fans (bound √(6/(fan_in+fan_out)), std bound/√3), every bias zero.
    #[test]
    fn keras_initial_weights() {
        let cfg = ModelConfig::parse(
            include_str!("../../../configs/mnist-cnn.toml"),
            "mnist-cnn.toml",
        )
        .unwrap();
        let device = Device::flex();
        device.seed(21);
        let model = Sequential::new(&cfg, &device).unwrap();
        // (fan_in, fan_out) of conv 1, conv 2, dense 1, dense 2.
        let fans = [(9, 9 * 32), (9 * 32, 9 * 64), (12_544, 128), (128, 10)];
        let mut kernels = Vec::new();
        let mut biases = Vec::new();
        for layer in &model.layers {
            match layer {
                Layer::Conv2d(c) => {
                    kernels.push(values(c.weight.val()));
                    biases.push(values(c.bias.as_ref().expect("bias").val()));
                }
                Layer::Dense(d) => {
                    kernels.push(values(d.weight.val()));
                    biases.push(values(d.bias.as_ref().expect("bias").val()));
                }
                _ => {}
            }
        }
        assert_eq!(kernels.len(), 4);
        for ((kernel, bias), (fan_in, fan_out)) in kernels.iter().zip(&biases).zip(fans) {
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
            let (max, std) = max_and_std(kernel);
            assert!(
                max <= limit * (1.0 + 1e-6),
                "{max} > {limit} for fans {fan_in}/{fan_out}"
            );
            assert!(max > 0.9 * limit, "{max} far inside {limit}");
            // The std of n uniform draws estimates the true one within √(0.2/n) (relative
            // standard error, from the uniform's kurtosis 1.8): allow five of those.
            let tolerance = 5.0 * (0.2 / kernel.len() as f64).sqrt();
            let want = limit / 3f64.sqrt();
            assert!(
                (std / want - 1.0).abs() < tolerance,
                "std {std}, want {want}"
            );
            assert!(bias.iter().all(|&b| b == 0.0), "biases start at zero");
        }
    }

    #[test]
    fn initialisers_and_bias_are_chosen_per_layer() {
        let cfg = "input = [1, 16, 16]\n\
            [[layers]]\ntype = \"Conv2D\"\nfilters = 64\nkernel_size = 3\nuse_bias = false\nkernel_initializer = \"he_normal\"\n\
            [[layers]]\ntype = \"Flatten\"\n\
            [[layers]]\ntype = \"Dense\"\nunits = 3\nbias_initializer = \"ones\"\n";
        let cfg = ModelConfig::parse(cfg, "x").unwrap();
        let infos = cfg.infer().unwrap();
        assert_eq!(infos[0].params(), 9 * 64, "no bias parameters");
        let device = Device::flex();
        device.seed(2);
        let model = Sequential::new(&cfg, &device).unwrap();
        assert_eq!(
            model.num_params(),
            infos.iter().map(|l| l.params()).sum::<usize>()
        );
        let Layer::Conv2d(conv) = &model.layers[0] else {
            panic!("first layer is the convolution")
        };
        assert!(conv.bias.is_none());
        let (_, std) = max_and_std(&values(conv.weight.val()));
        let want = (2.0f64 / 9.0).sqrt();
        assert!(
            (std / want - 1.0).abs() < 0.1,
            "he_normal std {std}, want {want}"
        );
        let Layer::Dense(dense) = &model.layers[2] else {
            panic!("third layer is the dense one")
        };
        assert!(
            values(dense.bias.as_ref().unwrap().val())
                .iter()
                .all(|&b| b == 1.0)
        );
    }

    #[test]
    fn batch_norm_and_dropout_models_build_and_run() {
        let cfg = "input = [3, 16, 16]\n\
            [[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 3\nstrides = 2\npadding = \"same\"\n\
            [[layers]]\ntype = \"BatchNormalization\"\n\
            [[layers]]\ntype = \"Activation\"\nactivation = \"leaky_relu\"\n\
            [[layers]]\ntype = \"Flatten\"\n\
            [[layers]]\ntype = \"Dropout\"\nrate = 0.25\n\
            [[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n";
        let cfg = ModelConfig::parse(cfg, "x").unwrap();
        // burn counts BatchNorm's running mean and variance as Keras's total does.
        let total: usize = cfg.infer().unwrap().iter().map(|l| l.params()).sum();
        let model = Sequential::new(&cfg, &Device::flex()).unwrap();
        assert_eq!(model.num_params(), total);
        let y = model.forward_logits(Tensor::<4>::ones([3, 3, 16, 16], &Device::flex()));
        assert_eq!(y.dims(), [3, 2]);
    }
}
