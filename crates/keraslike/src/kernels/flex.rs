//! keraslike's own kernels plugged into burn's flex backend as a backend extension, with
//! handwritten backward passes: Conv2D and ConvTranspose2D ([`super::conv`]),
//! MaxPooling2D ([`super::pool`]), BatchNorm in training ([`super::batch_norm`]),
//! LeakyReLU, dropout ([`super::dropout`]) and the Adam and Adadelta updates
//! ([`super::update`]).
//!
//! burn's `#[backend_extension]` generates the runtime dispatch from a `Tensor` to the
//! backend it lives on; the implementations below cover flex and flex under autodiff.
//! The public functions only take this path for f32 tensors on flex ([`on_flex`]), so
//! other backends and dtypes keep burn's ops (an extension called on a backend it does
//! not list panics).

use std::sync::Arc;

use rayon::prelude::*;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{Bytes, DType, Device, Shape, Tensor};
use burn_flex::{FlexTensor, Layout};

use super::batch_norm::{self as bn_kernels, Dims, Statistics};
use super::conv::{self as conv_kernels, Geometry, padding};
use super::dropout::Mask;
use super::pool::{self as pool_kernels, PoolGeometry};
use super::update::{FusedUpdate, update_in_place};

#[backend_extension(Flex, Autodiff)]
pub trait FlexKernels: Backend {
    /// `conv(x, weight) + bias`, shapes as described by `geometry`.
    fn im2col_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;

    /// The transposed convolution of `x` (N·Cin·H·W, weights Cin·Cout·kh·kw) plus `bias`:
    /// the input gradient of the convolution `geometry` describes, whose input is this
    /// op's output (channels Cout) and whose output is `x` (filters Cin).
    fn im2col_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;

    /// Max pooling of `x`, shapes as described by `geometry`.
    fn max_pool2d(x: FloatTensor<Self>, geometry: PoolGeometry) -> FloatTensor<Self>;

    /// LeakyReLU: `x` where x ≥ 0, `slope·x` below, in one pass (burn's takes a
    /// comparison, a scaled copy and a select forward, and twice that backward).
    fn leaky_relu(x: FloatTensor<Self>, slope: f32) -> FloatTensor<Self>;

    /// BatchNorm with the batch's statistics: returns (y, mean, biased variance).
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `x ⊙ mask / keep` in one pass; the backward pass recomputes the mask.
    fn dropout(x: FloatTensor<Self>, mask: Mask) -> FloatTensor<Self>;

    /// One optimiser update of a parameter with two accumulators, in one pass and in
    /// place where the tensors are not shared: returns the new (parameter, a, b).
    fn fused_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        rule: FusedUpdate,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// A contiguous tensor whose storage holds exactly its values, so that it can be
/// updated in place (copied when shared or a view).
fn owned(t: FlexTensor) -> FlexTensor {
    let t = contiguous(t);
    let n = t.layout().num_elements();
    if t.layout().start_offset() == 0 && t.bytes().len() == n * size_of::<f32>() {
        t
    } else {
        let shape = t.layout().shape().clone();
        FlexTensor::new(
            Bytes::from_elems(values(&t).to_vec()),
            Layout::contiguous(shape),
            DType::F32,
        )
    }
}

/// A flex tensor's f32 values in row-major order (copied only when it is a strided view).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("the flex kernels are only called with contiguous f32 tensors")
}

fn flex_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::new(shape)),
        DType::F32,
    )
}

/// [batch, channels, the rest] of an NC… tensor.
fn norm_dims(x: &FlexTensor) -> Dims {
    let shape = x.layout().shape();
    let dims: Vec<usize> = (0..shape.num_dims()).map(|i| shape[i]).collect();
    Dims {
        batch: dims[0],
        channels: dims[1],
        plane: dims[2..].iter().product(),
    }
}

/// `values` shaped like `like`.
fn same_shape(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(like.layout().shape().clone()),
        DType::F32,
    )
}

impl FlexKernels for Flex {
    fn im2col_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        g: Geometry,
    ) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let y = conv_kernels::forward(&g, values(&x), values(&weight), values(&bias));
        flex_tensor(y, [g.batch, g.filters, g.output[0], g.output[1]])
    }

    fn im2col_conv_transpose2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        g: Geometry,
    ) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let mut y = conv_kernels::backward_input(&g, values(&weight), values(&x));
        let (plane, bias) = (g.input[0] * g.input[1], values(&bias));
        for (i, plane) in y.chunks_mut(plane.max(1)).enumerate() {
            let b = bias[i % g.channels];
            plane.iter_mut().for_each(|v| *v += b);
        }
        flex_tensor(y, [g.batch, g.channels, g.input[0], g.input[1]])
    }

    fn max_pool2d(x: FlexTensor, g: PoolGeometry) -> FlexTensor {
        let x = contiguous(x);
        let (y, _) = pool_kernels::forward(&g, values(&x));
        flex_tensor(y, [g.batch, g.channels, g.output[0], g.output[1]])
    }

    fn leaky_relu(x: FlexTensor, slope: f32) -> FlexTensor {
        let x = contiguous(x);
        let y = values(&x)
            .par_iter()
            .map(|&v| if v < 0.0 { v * slope } else { v })
            .collect();
        same_shape(y, &x)
    }

    fn batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let dims = norm_dims(&x);
        let (y, stats) =
            bn_kernels::forward(dims, values(&x), values(&gamma), values(&beta), epsilon);
        let channels = [dims.channels];
        (
            same_shape(y, &x),
            flex_tensor(stats.mean, channels),
            flex_tensor(stats.variance, channels),
        )
    }

    fn dropout(x: FlexTensor, mask: Mask) -> FlexTensor {
        let x = contiguous(x);
        same_shape(mask.apply(values(&x)), &x)
    }

    fn fused_update(
        param: FlexTensor,
        grad: FlexTensor,
        a: FlexTensor,
        b: FlexTensor,
        rule: FusedUpdate,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (mut param, grad) = (owned(param), contiguous(grad));
        let (mut a, mut b) = (owned(a), owned(b));
        update_in_place(
            param.storage_mut::<f32>(),
            values(&grad),
            a.storage_mut::<f32>(),
            b.storage_mut::<f32>(),
            rule,
        );
        (param, a, b)
    }
}

/// The backward step of [`FlexKernels::im2col_conv2d`]: its state is the input, the
/// weights and the geometry; the parents are x, weight, bias.
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    type State = (FlexTensor, FlexTensor, Geometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, weight, g) = ops.state;
        if let Some(node) = node_x {
            let dx = conv_kernels::backward_input(&g, values(&weight), values(&dy));
            let shape = [g.batch, g.channels, g.input[0], g.input[1]];
            grads.register::<Flex>(node.id, flex_tensor(dx, shape));
        }
        if node_weight.is_some() || node_bias.is_some() {
            let (dw, db) = conv_kernels::backward_params(&g, values(&x), values(&dy));
            if let Some(node) = node_weight {
                let shape = [g.filters, g.channels, g.kernel[0], g.kernel[1]];
                grads.register::<Flex>(node.id, flex_tensor(dw, shape));
            }
            if let Some(node) = node_bias {
                grads.register::<Flex>(node.id, flex_tensor(db, [g.filters]));
            }
        }
    }
}

/// The backward step of [`FlexKernels::im2col_conv_transpose2d`]: the adjoint of the
/// convolution's input gradient is the convolution itself, and the weight gradient is
/// the convolution's with the roles of input and output swapped.
#[derive(Debug)]
struct ConvTranspose2dBackward;

impl Backward<Flex, 3> for ConvTranspose2dBackward {
    type State = (FlexTensor, FlexTensor, Geometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, weight, g) = ops.state;
        let (dy_v, w, x) = (values(&dy), values(&weight), values(&x));
        let (dx, dw) = match (&node_x, &node_weight) {
            (Some(_), Some(_)) => {
                let (dx, dw) = conv_kernels::forward_and_weight_gradient(&g, dy_v, w, x);
                (Some(dx), Some(dw))
            }
            (Some(_), None) => {
                let no_bias = vec![0.0f32; g.filters];
                (Some(conv_kernels::forward(&g, dy_v, w, &no_bias)), None)
            }
            (None, Some(_)) => (None, Some(conv_kernels::backward_params(&g, dy_v, x).0)),
            (None, None) => (None, None),
        };
        if let (Some(node), Some(dx)) = (node_x, dx) {
            let shape = [g.batch, g.filters, g.output[0], g.output[1]];
            grads.register::<Flex>(node.id, flex_tensor(dx, shape));
        }
        if let (Some(node), Some(dw)) = (node_weight, dw) {
            let shape = [g.filters, g.channels, g.kernel[0], g.kernel[1]];
            grads.register::<Flex>(node.id, flex_tensor(dw, shape));
        }
        if let Some(node) = node_bias {
            let plane = g.input[0] * g.input[1];
            let mut db = vec![0.0f32; g.channels];
            for (i, plane) in dy_v.chunks(plane.max(1)).enumerate() {
                db[i % g.channels] += plane.iter().sum::<f32>();
            }
            grads.register::<Flex>(node.id, flex_tensor(db, [g.channels]));
        }
    }
}

/// The backward step of [`FlexKernels::max_pool2d`]: its state is where each maximum
/// came from.
#[derive(Debug)]
struct MaxPool2dBackward;

impl Backward<Flex, 1> for MaxPool2dBackward {
    type State = (Arc<Vec<u32>>, PoolGeometry);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (from, g) = ops.state;
        if let Some(node) = node_x {
            let dx = pool_kernels::backward(&g, &from, values(&dy));
            let shape = [g.batch, g.channels, g.input[0], g.input[1]];
            grads.register::<Flex>(node.id, flex_tensor(dx, shape));
        }
    }
}

/// The backward step of [`FlexKernels::leaky_relu`]: dL/dx = dL/dy where x ≥ 0,
/// slope·dL/dy below (the values burn's composed LeakyReLU gives).
#[derive(Debug)]
struct LeakyReluBackward;

impl Backward<Flex, 1> for LeakyReluBackward {
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, slope) = ops.state;
        if let Some(node) = node_x {
            let dx = values(&x)
                .par_iter()
                .zip(values(&dy))
                .map(|(&v, &d)| if v < 0.0 { d * slope } else { d })
                .collect();
            grads.register::<Flex>(node.id, same_shape(dx, &x));
        }
    }
}

/// The backward step of [`FlexKernels::batch_norm_train`]: its state is x, γ, the batch
/// statistics and ε; the parents are x, γ, β.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = (FlexTensor, FlexTensor, Arc<Statistics>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, gamma, stats, epsilon) = ops.state;
        let dims = norm_dims(&x);
        let (dx, d_gamma, d_beta) = bn_kernels::backward(
            dims,
            values(&x),
            values(&gamma),
            &stats,
            epsilon,
            values(&dy),
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, same_shape(dx, &x));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex_tensor(d_gamma, [dims.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex_tensor(d_beta, [dims.channels]));
        }
    }
}

/// The backward step of [`FlexKernels::dropout`]: the same mask applied to the gradient.
#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    type State = Mask;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, Flex::dropout(dy, ops.state));
        }
    }
}

/// The autodiff side shared by the two convolutions: runs `forward` on flex and, when an
/// input is tracked, records (x, weight, geometry) for `step`.
fn tracked_conv<C, S>(
    step: S,
    [x, weight, bias]: [FloatTensor<Autodiff<Flex, C>>; 3],
    g: Geometry,
    forward: fn(FlexTensor, FlexTensor, FlexTensor, Geometry) -> FlexTensor,
) -> FloatTensor<Autodiff<Flex, C>>
where
    C: CheckpointStrategy,
    S: Backward<Flex, 3, State = (FlexTensor, FlexTensor, Geometry)>,
{
    let prepared = step
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful();
    let (x, weight) = (
        contiguous(x.into_primitive()),
        contiguous(weight.into_primitive()),
    );
    let bias = bias.into_primitive();
    match prepared {
        OpsKind::Tracked(prep) => {
            let state = (x.clone(), weight.clone(), g);
            prep.finish(state, forward(x, weight, bias, g))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, bias, g)),
    }
}

impl<C: CheckpointStrategy> FlexKernels for Autodiff<Flex, C> {
    fn im2col_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        g: Geometry,
    ) -> FloatTensor<Self> {
        tracked_conv::<C, _>(Conv2dBackward, [x, weight, bias], g, Flex::im2col_conv2d)
    }

    fn im2col_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        g: Geometry,
    ) -> FloatTensor<Self> {
        let forward = Flex::im2col_conv_transpose2d;
        tracked_conv::<C, _>(ConvTranspose2dBackward, [x, weight, bias], g, forward)
    }

    fn max_pool2d(x: FloatTensor<Self>, g: PoolGeometry) -> FloatTensor<Self> {
        let prepared = MaxPool2dBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let x = contiguous(x.into_primitive());
        match prepared {
            OpsKind::Tracked(prep) => {
                let (y, from) = pool_kernels::forward(&g, values(&x));
                let y = flex_tensor(y, [g.batch, g.channels, g.output[0], g.output[1]]);
                prep.finish((Arc::new(from), g), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::max_pool2d(x, g)),
        }
    }

    fn leaky_relu(x: FloatTensor<Self>, slope: f32) -> FloatTensor<Self> {
        let prepared = LeakyReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let x = contiguous(x.into_primitive());
        match prepared {
            OpsKind::Tracked(prep) => {
                let y = Flex::leaky_relu(x.clone(), slope);
                prep.finish((x, slope), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::leaky_relu(x, slope)),
        }
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prepared = BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma) = (
            contiguous(x.into_primitive()),
            contiguous(gamma.into_primitive()),
        );
        let (y, mean, variance) =
            Flex::batch_norm_train(x.clone(), gamma.clone(), beta.into_primitive(), epsilon);
        let y = match prepared {
            OpsKind::Tracked(prep) => {
                let stats = Statistics {
                    mean: values(&mean).to_vec(),
                    variance: values(&variance).to_vec(),
                };
                prep.finish((x, gamma, Arc::new(stats), epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, Self::from_inner(mean), Self::from_inner(variance))
    }

    fn dropout(x: FloatTensor<Self>, mask: Mask) -> FloatTensor<Self> {
        let prepared = DropoutBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let x = x.into_primitive();
        match prepared {
            OpsKind::Tracked(prep) => prep.finish(mask, Flex::dropout(x, mask)),
            OpsKind::UnTracked(prep) => prep.finish(Flex::dropout(x, mask)),
        }
    }

    /// Optimisers run on the inner backend; this only unwraps and rewraps, untracked.
    fn fused_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        rule: FusedUpdate,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (p, g, a, b) = (
            Self::inner(param),
            Self::inner(grad),
            Self::inner(a),
            Self::inner(b),
        );
        let (p, a, b) = Flex::fused_update(p, g, a, b, rule);
        (
            Self::from_inner(p),
            Self::from_inner(a),
            Self::from_inner(b),
        )
    }
}

/// True for an f32 tensor on flex (with or without autodiff): what the kernels take.
pub fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.device().without_autodiff() == Device::flex() && x.dtype() == DType::F32
}

/// `conv.forward(x)` through keraslike's kernels when `x` is an f32 tensor on flex and the
/// layer has a bias and neither dilation nor groups; `None` otherwise.
pub fn conv2d(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    if !on_flex(x) || conv.dilation != [1, 1] || conv.groups != 1 {
        return None;
    }
    let bias = conv.bias.as_ref()?;
    let [batch, channels, height, width] = x.dims();
    let [filters, _, kh, kw] = conv.weight.dims();
    let [sh, sw] = conv.stride;
    let ((top, bottom), (left, right)) = padding(conv, height, width);
    let out = |size: usize, before: usize, after: usize, k: usize, s: usize| {
        (size + before + after)
            .checked_sub(k)
            .map(|span| span / s + 1)
    };
    let geometry = Geometry {
        batch,
        channels,
        input: [height, width],
        filters,
        kernel: [kh, kw],
        stride: [sh, sw],
        padding: [top, left],
        output: [
            out(height, top, bottom, kh, sh)?,
            out(width, left, right, kw, sw)?,
        ],
    };
    let y = Dispatch::im2col_conv2d(
        x.clone().into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        geometry,
    );
    Some(Tensor::from_dispatch(y))
}

/// `conv.forward(x)` for a transposed convolution through keraslike's kernels when `x` is
/// an f32 tensor on flex and the layer has a bias and neither dilation nor groups; `None`
/// otherwise.
pub fn conv_transpose2d(conv: &ConvTranspose2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    if !on_flex(x) || conv.dilation != [1, 1] || conv.groups != 1 {
        return None;
    }
    let bias = conv.bias.as_ref()?;
    let [batch, channels_in, height, width] = x.dims();
    let [_, channels_out, kh, kw] = conv.weight.dims();
    let ([sh, sw], [ph, pw], [oh, ow]) = (conv.stride, conv.padding, conv.padding_out);
    // (H − 1)·stride − 2·padding + kernel + output padding, as burn and PyTorch size it.
    let size = |input: usize, s: usize, p: usize, k: usize, extra: usize| {
        (input.checked_sub(1)? * s + k + extra).checked_sub(2 * p)
    };
    let output = [size(height, sh, ph, kh, oh)?, size(width, sw, pw, kw, ow)?];
    // The convolution this is the input gradient of: from `output` back to `x`'s size.
    let geometry = Geometry {
        batch,
        channels: channels_out,
        input: output,
        filters: channels_in,
        kernel: [kh, kw],
        stride: [sh, sw],
        padding: [ph, pw],
        output: [height, width],
    };
    let y = Dispatch::im2col_conv_transpose2d(
        x.clone().into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.val().into_dispatch(),
        geometry,
    );
    Some(Tensor::from_dispatch(y))
}

/// One optimiser step through [`FlexKernels::fused_update`]: returns (parameter, a, b).
/// Only for tensors that [`on_flex`] accepts. The tensors are taken by value so that,
/// when nothing else holds them, they are updated in place.
pub fn fused_update<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    a: Tensor<D>,
    b: Tensor<D>,
    rule: FusedUpdate,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (p, a, b) = Dispatch::fused_update(
        param.into_dispatch(),
        grad.into_dispatch(),
        a.into_dispatch(),
        b.into_dispatch(),
        rule,
    );
    (
        Tensor::from_dispatch(p),
        Tensor::from_dispatch(a),
        Tensor::from_dispatch(b),
    )
}

/// `pool.forward(x)` through keraslike's kernels when `x` is an f32 tensor on flex and the
/// layer has no padding, dilation or ceil mode (Keras's MaxPooling2D defaults); `None`
/// otherwise.
pub fn max_pool2d(pool: &MaxPool2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    if !on_flex(x)
        || pool.dilation != [1, 1]
        || pool.ceil_mode
        || !matches!(pool.padding, PaddingConfig2d::Valid)
    {
        return None;
    }
    let [batch, channels, height, width] = x.dims();
    let ([kh, kw], [sh, sw]) = (pool.kernel_size, pool.stride);
    let out = |size: usize, k: usize, s: usize| size.checked_sub(k).map(|span| span / s + 1);
    let geometry = PoolGeometry {
        batch,
        channels,
        input: [height, width],
        kernel: [kh, kw],
        stride: [sh, sw],
        output: [out(height, kh, sh)?, out(width, kw, sw)?],
    };
    let y = Dispatch::max_pool2d(x.clone().into_dispatch(), geometry);
    Some(Tensor::from_dispatch(y))
}

/// LeakyReLU with negative slope `slope` (Keras's `LeakyReLU(alpha)`): keraslike's
/// one-pass kernel for f32 tensors on flex, burn's activation elsewhere.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f32) -> Tensor<D> {
    if !on_flex(&x) {
        return burn::tensor::activation::leaky_relu(x, slope as f64);
    }
    Tensor::from_dispatch(Dispatch::leaky_relu(x.into_dispatch(), slope))
}

/// `bn.forward(x)`: in training (an autodiff device, the layer not frozen) on an f32
/// tensor on flex through keraslike's kernel, with the running statistics updated as
/// burn's BatchNorm updates them (by the biased batch variance); burn's otherwise.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !on_flex(&x) || !device.is_autodiff() || !bn.training.is_enabled() || D < 2 {
        return bn.forward(x);
    }
    let (y, mean, variance) = Dispatch::batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
    );
    let (mean, variance) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(variance),
    );
    let m = bn.momentum;
    let running = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
        let updated = state
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(batch.detach().mul_scalar(m));
        state.update(updated.detach());
    };
    running(&bn.running_mean, mean);
    running(&bn.running_var, variance);
    Tensor::from_dispatch(y)
}

/// `x ⊙ mask / keep`: keraslike's one-pass kernel for f32 tensors on flex; elsewhere the
/// same mask as a tensor times `x`, so every backend drops the same values.
pub fn dropout<const D: usize>(x: Tensor<D>, mask: Mask) -> Tensor<D> {
    if on_flex(&x) {
        return Tensor::from_dispatch(Dispatch::dropout(x.into_dispatch(), mask));
    }
    let ones = vec![1.0f32; x.shape().num_elements()];
    let factors = Tensor::<D>::from_data(
        burn::tensor::TensorData::new(mask.apply(&ones), x.shape()),
        &x.device(),
    );
    x * factors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::max_difference;
    use burn::nn::conv::ConvTranspose2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::Distribution;

    #[test]
    fn conv_transpose_matches_burns_and_its_gradients() {
        let device = Device::flex().autodiff();
        device.seed(6);
        // The DCGAN generator's 4×4 stride 2 padding 1, a 3×3 'same', an output padding.
        for (kernel, stride, padding, padding_out) in [(4, 2, 1, 0), (3, 1, 1, 0), (3, 2, 0, 1)] {
            let conv = ConvTranspose2dConfig::new([3, 2], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding([padding, padding])
                .with_padding_out([padding_out, padding_out])
                .init(&device);
            let x =
                Tensor::<4>::random([2, 3, 5, 4], Distribution::Default, &device).require_grad();
            let ours = conv_transpose2d(&conv, &x).expect("an f32 flex tensor takes the kernels");
            let burns = conv.forward(x.clone());
            let case = format!("kernel {kernel} stride {stride} padding {padding}+{padding_out}");
            assert_eq!(ours.dims(), burns.dims(), "{case}");
            assert!(max_difference(ours.clone(), burns.clone()) < 1e-5, "{case}");
            let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &device);
            let g_ours = (ours * r.clone()).sum().backward();
            let g_burn = (burns * r).sum().backward();
            let grads = |g: &burn::tensor::Gradients| {
                let bias = conv.bias.as_ref().expect("bias").val();
                (
                    x.grad(g).expect("x grad"),
                    conv.weight.val().grad(g).expect("weight grad"),
                    bias.grad(g).expect("bias grad"),
                )
            };
            let ((dx1, dw1, db1), (dx2, dw2, db2)) = (grads(&g_ours), grads(&g_burn));
            assert!(max_difference(dx1, dx2) < 1e-4, "dx, {case}");
            assert!(max_difference(dw1, dw2) < 1e-4, "dw, {case}");
            let db = (db1 - db2).abs().max().into_scalar::<f32>();
            assert!(db < 1e-4, "db, {case}");
        }
    }

    /// Exactly burn's values and gradient, and the gradient numerically.
    #[test]
    fn leaky_relu_matches_burns_and_its_gradient() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let x = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let ours = leaky_relu(x.clone(), 0.2);
        let burns = burn::tensor::activation::leaky_relu(x.clone(), 0.2);
        assert_eq!(ours.clone().into_data(), burns.clone().into_data());
        let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &device);
        let g_ours = x.grad(&(ours * r.clone()).sum().backward()).expect("ours");
        let g_burn = x
            .grad(&(burns * r.clone()).sum().backward())
            .expect("burn's");
        assert_eq!(g_ours.clone().into_data(), g_burn.into_data());
        // Central differences of L = Σ leaky_relu(x)·r, one entry at a time.
        let (xs, rs, gs) = (
            x.clone().into_data().try_to_vec::<f32>().expect("f32"),
            r.into_data().try_to_vec::<f32>().expect("f32"),
            g_ours.into_data().try_to_vec::<f32>().expect("f32"),
        );
        let loss = |xs: &[f32]| -> f64 {
            let x = Tensor::<1>::from_floats(xs, &Device::flex());
            let y = leaky_relu(x, 0.2)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            y.iter()
                .zip(&rs)
                .map(|(y, r)| (*y as f64) * (*r as f64))
                .sum()
        };
        let eps = 1e-3f32;
        for i in (0..xs.len()).filter(|&i| xs[i].abs() > 2.0 * eps) {
            let (mut plus, mut minus) = (xs.clone(), xs.clone());
            plus[i] += eps;
            minus[i] -= eps;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * eps as f64);
            assert!(
                (gs[i] as f64 - numeric).abs() < 1e-3,
                "entry {i}: {} vs {numeric}",
                gs[i]
            );
        }
        // Off flex's f32 fast path it is burn's own.
        let plain = Tensor::<2>::from_floats([[-1.0, 0.0, 2.0]], &Device::flex());
        let y = leaky_relu(plain, 0.5)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert_eq!(y, vec![-0.5, 0.0, 2.0]);
    }

    /// Values, the gradients of x, γ and β, and the running statistics against burn's
    /// BatchNorm, on images and on a Dense layer's output; frozen or without autodiff it
    /// is burn's own.
    #[test]
    fn batch_norm_matches_burns_values_gradients_and_running_statistics() {
        use burn::module::Module;
        use burn::nn::BatchNormConfig;
        let device = Device::flex().autodiff();
        device.seed(9);
        let check = |shape: Vec<usize>| {
            let channels = shape[1];
            let config = BatchNormConfig::new(channels).with_momentum(0.3);
            // Non-trivial γ and β, the same in both; separate running statistics.
            let mut ours_bn = config.init(&device);
            let gamma = Tensor::<1>::random([channels], Distribution::Uniform(0.5, 2.0), &device);
            let beta = Tensor::<1>::random([channels], Distribution::Uniform(-1.0, 1.0), &device);
            ours_bn.gamma = burn::module::Param::from_tensor(gamma);
            ours_bn.beta = burn::module::Param::from_tensor(beta);
            let burns_bn = config
                .init(&device)
                .load_record(ours_bn.clone().into_record());
            let x = Tensor::<4>::random(
                [shape[0], shape[1], shape[2], shape[3]],
                Distribution::Normal(1.5, 3.0),
                &device,
            )
            .require_grad();
            let ours = batch_norm(&ours_bn, x.clone());
            let burns = burns_bn.forward(x.clone());
            assert!(
                max_difference(ours.clone(), burns.clone()) < 1e-5,
                "{shape:?}"
            );
            let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &device);
            let g_ours = (ours * r.clone()).sum().backward();
            let g_burn = (burns * r).sum().backward();
            let dx = (
                x.grad(&g_ours).expect("ours"),
                x.grad(&g_burn).expect("burn's"),
            );
            assert!(max_difference(dx.0, dx.1) < 1e-4, "dx {shape:?}");
            for (a, b) in [
                (ours_bn.gamma.val(), burns_bn.gamma.val()),
                (ours_bn.beta.val(), burns_bn.beta.val()),
            ] {
                let (a, b) = (
                    a.grad(&g_ours).expect("ours"),
                    b.grad(&g_burn).expect("burn's"),
                );
                let d = (a - b).abs().max().into_scalar::<f32>();
                assert!(d < 1e-4, "dγ/dβ {shape:?}: {d}");
            }
            for (a, b) in [
                (ours_bn.running_mean.value(), burns_bn.running_mean.value()),
                (ours_bn.running_var.value(), burns_bn.running_var.value()),
            ] {
                let d = (a - b).abs().max().into_scalar::<f32>();
                assert!(d < 1e-5, "running statistics {shape:?}: {d}");
            }
        };
        check(vec![4, 3, 5, 6]);
        check(vec![6, 5, 1, 1]);
        // The Dense case as burn sees it, rank 2: the same as rank 4 with 1×1 planes.
        let bn = BatchNormConfig::new(3).init(&device);
        let x = Tensor::<2>::random([5, 3], Distribution::Default, &device);
        let flat = batch_norm(&bn, x.clone());
        let planes = batch_norm(&bn, x.reshape([5, 3, 1, 1])).reshape([5, 3]);
        let d = (flat - planes).abs().max().into_scalar::<f32>();
        assert!(d < 1e-6);
        // Inference: burn's, from the running statistics.
        let plain = Tensor::<4>::random([2, 3, 2, 2], Distribution::Default, &Device::flex());
        let valid = bn.valid();
        assert_eq!(
            max_difference(batch_norm(&valid, plain.clone()), valid.forward(plain)),
            0.0
        );
    }

    /// The kernel against burn's ops with the same mask as a tensor: the same values and
    /// the same gradient (the mask over keep), on flex and through the fallback.
    #[test]
    fn dropout_matches_burns_product_with_its_mask_and_its_gradient() {
        let device = Device::flex().autodiff();
        device.seed(8);
        let x = Tensor::<4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let mask = Mask::new(5, 2, 0.7);
        let keeps: Vec<f32> = (0..x.shape().num_elements())
            .map(|i| if mask.keeps(i) { 1.0 } else { 0.0 })
            .collect();
        let keeps =
            Tensor::<4>::from_data(burn::tensor::TensorData::new(keeps, x.shape()), &device);
        let ours = dropout(x.clone(), mask);
        let burns = x.clone() * keeps.clone() * (1.0 / 0.7);
        assert!(max_difference(ours.clone(), burns.clone()) < 1e-6);
        let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &device);
        let g_ours = x.grad(&(ours * r.clone()).sum().backward()).expect("ours");
        let g_burn = x
            .grad(&(burns * r.clone()).sum().backward())
            .expect("burn's");
        assert!(max_difference(g_ours.clone(), g_burn) < 1e-6);
        // The gradient of Σ dropout(x)·r is r·mask/keep (dropout is linear in x).
        let expected = r.inner() * keeps.inner() * (1.0 / 0.7);
        assert!(max_difference(g_ours, expected) < 1e-6);
        // ndarray takes the fallback and drops the same values.
        #[allow(deprecated)]
        let nd = Device::ndarray();
        let x_nd = Tensor::<4>::from_data(x.clone().into_data(), &nd);
        let (a, b) = (
            dropout(x.clone().inner(), mask)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32"),
            dropout(x_nd, mask)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32"),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn max_pool_matches_burns_and_its_gradient() {
        let device = Device::flex().autodiff();
        device.seed(5);
        for (kernel, stride) in [([2, 2], [2, 2]), ([3, 3], [2, 2]), ([2, 3], [1, 2])] {
            let pool = MaxPool2dConfig::new(kernel).with_strides(stride).init();
            let x =
                Tensor::<4>::random([2, 3, 7, 6], Distribution::Default, &device).require_grad();
            let ours = max_pool2d(&pool, &x).expect("an f32 flex tensor takes the kernels");
            let burns = pool.forward(x.clone());
            assert_eq!(ours.dims(), burns.dims(), "{kernel:?} {stride:?}");
            assert_eq!(max_difference(ours.clone(), burns.clone()), 0.0);
            let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &device);
            let g_ours = (ours * r.clone()).sum().backward();
            let g_burn = (burns * r).sum().backward();
            let (a, b) = (
                x.grad(&g_ours).expect("ours"),
                x.grad(&g_burn).expect("burn's"),
            );
            assert!(max_difference(a, b) < 1e-6, "{kernel:?} {stride:?}");
        }
        // Without autodiff, and padded pools left to burn.
        let plain = Tensor::<4>::random([1, 2, 4, 4], Distribution::Default, &Device::flex());
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let ours = max_pool2d(&pool, &plain).expect("flex f32");
        assert_eq!(max_difference(ours, pool.forward(plain.clone())), 0.0);
        let padded = MaxPool2dConfig::new([2, 2])
            .with_padding(PaddingConfig2d::Same)
            .init();
        assert!(max_pool2d(&padded, &plain).is_none());
    }
}
