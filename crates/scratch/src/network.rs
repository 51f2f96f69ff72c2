//! A network: a sequence of layers ending in softmax-with-loss, built from an
//! [`Architecture`].

use anyhow::Result;
use ndarray::{Array2, Axis, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::data::to_unit;
use crate::init::{self, Init};
use crate::kernels::sparse_affine::SparseAffine;
use crate::kernels::sparse_input;
use crate::layers::im2col::Window;
use crate::layers::{
    Affine, BatchNorm, Conv, Dropout, Flatten, Layer, MaxPool, Mode, ParamGrad, Relu, Sigmoid,
    SoftmaxWithLoss,
};
use crate::spec::{Architecture, LayerSpec};

/// Which code runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// The fast paths where they pay: a first affine layer on raw pixels skips their
    /// zeros and reads batches of bytes ([`crate::kernels`]; CPUs with AVX-512).
    #[default]
    Fast,
    /// The course's layers only, every product a GEMM.
    Plain,
}

/// The first layer: the sparse affine layer, which can also read a batch of bytes, or
/// any layer.
enum First {
    Sparse(Box<SparseAffine>),
    Layer(Box<dyn Layer>),
}

impl First {
    fn layer(&self) -> &(dyn Layer + 'static) {
        match self {
            First::Sparse(l) => l.as_ref(),
            First::Layer(l) => l.as_ref(),
        }
    }

    fn layer_mut(&mut self) -> &mut (dyn Layer + 'static) {
        match self {
            First::Sparse(l) => l.as_mut(),
            First::Layer(l) => l.as_mut(),
        }
    }
}

pub struct Network {
    pub arch: Architecture,
    first: First,
    /// The layers after the first.
    rest: Vec<Box<dyn Layer>>,
    loss: SoftmaxWithLoss,
    /// Each layer's output from the last training forward pass (the first layer's first):
    /// the next layer's input, which its backward pass needs.
    outputs: Vec<Array2<f32>>,
}

/// Rows evaluated at once when predicting a whole data set.
const EVAL_CHUNK: usize = 1000;

impl Network {
    /// A network with fresh weights drawn with `seed`, on the fast kernels.
    pub fn new(arch: &Architecture, seed: u64) -> Result<Self> {
        Self::with_kernels(arch, seed, Kernels::Fast)
    }

    /// The same network (the same weights for the same seed) run by `kernels`.
    pub fn with_kernels(arch: &Architecture, seed: u64, kernels: Kernels) -> Result<Self> {
        let shapes = arch.shapes()?;
        // Weights, gradients and up to two optimiser accumulators each, as f32: refused
        // before any of it is allocated when the machine does not have it.
        let params = arch.parameter_count()?;
        dataset::memory::check_fits(16 * params, &format!("a network of {params} parameters"))
            .map_err(anyhow::Error::msg)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut input = arch.input;
        let mut first = None;
        let mut rest: Vec<Box<dyn Layer>> = Vec::with_capacity(arch.layers.len());
        for (i, (spec, &output)) in arch.layers.iter().zip(&shapes).enumerate() {
            let layer: Box<dyn Layer> = match *spec {
                LayerSpec::Affine { units, init } => {
                    let w = init::weights(
                        input.features(),
                        units,
                        init.unwrap_or(Init::Xavier),
                        &mut rng,
                    );
                    let b = Array2::zeros((1, units));
                    // Raw pixels are mostly zeros (see kernels/sparse_input.rs).
                    if i == 0 && kernels == Kernels::Fast && sparse_input::available() {
                        first = Some(First::Sparse(Box::new(SparseAffine::new(w, b))));
                        input = output;
                        continue;
                    }
                    Box::new(Affine::new(w, b))
                }
                LayerSpec::Sigmoid => Box::new(Sigmoid::default()),
                LayerSpec::Relu => Box::new(Relu::default()),
                LayerSpec::Conv {
                    filters,
                    size,
                    stride,
                    pad,
                    init,
                } => {
                    let window =
                        Window::new(input.hwc(), size, stride, pad).expect("validated by shapes()");
                    // Fan-in of a filter: its size·size·C inputs.
                    let w = init::weights(
                        window.patch_len(),
                        filters,
                        init.unwrap_or(Init::He),
                        &mut rng,
                    );
                    Box::new(Conv::new(window, w, Array2::zeros((1, filters))))
                }
                LayerSpec::MaxPool { size, stride } => {
                    let stride = LayerSpec::pool_stride(size, stride);
                    let window =
                        Window::new(input.hwc(), size, stride, 0).expect("validated by shapes()");
                    Box::new(MaxPool::new(window))
                }
                LayerSpec::Flatten => Box::new(Flatten),
                LayerSpec::Dropout { ratio } => Box::new(Dropout::new(
                    ratio,
                    seed.wrapping_mul(31).wrapping_add(i as u64 + 1),
                )),
                LayerSpec::BatchNorm { momentum, eps } => {
                    Box::new(BatchNorm::new(output.channels, momentum, eps))
                }
            };
            if i == 0 {
                first = Some(First::Layer(layer));
            } else {
                rest.push(layer);
            }
            input = output;
        }
        let first = first.ok_or_else(|| anyhow::anyhow!("a network needs at least one layer"))?;
        Ok(Self {
            arch: arch.clone(),
            first,
            rest,
            loss: SoftmaxWithLoss::default(),
            outputs: Vec::new(),
        })
    }

    /// Logits (batch, classes) for inputs (batch, features).
    pub fn predict(&mut self, x: &Array2<f32>, mode: Mode) -> Array2<f32> {
        let mut h = self.first.layer_mut().forward(x, mode);
        for layer in &mut self.rest {
            h = layer.forward(&h, mode);
        }
        h
    }

    /// Mean cross-entropy of a batch.
    pub fn loss(&mut self, x: &Array2<f32>, labels: &[u8], mode: Mode) -> f32 {
        let logits = self.predict(x, mode);
        self.loss.forward(&logits, labels)
    }

    /// Forward and backward over one training batch: leaves every parameter's gradient in
    /// its layer and returns the loss.
    pub fn gradient(&mut self, x: &Array2<f32>, labels: &[u8]) -> f32 {
        let y = self.first.layer_mut().forward(x, Mode::Train);
        self.gradient_from_first(Some(x), y, labels)
    }

    /// Whether the first layer reads batches of 8-bit pixels ([`Self::gradient_of_bytes`])
    /// without a float copy.
    pub fn reads_bytes(&self) -> bool {
        matches!(&self.first, First::Sparse(l) if l.reads_bytes())
    }

    /// [`Self::gradient`] for a batch given as rows of 8-bit pixels, x = byte / 255 (the
    /// training set's own bytes): the first layer reads them directly when it can,
    /// else they are copied into floats first.
    pub fn gradient_of_bytes(&mut self, rows: &[&[u8]], labels: &[u8]) -> f32 {
        let from_bytes = match &mut self.first {
            First::Sparse(layer) => layer.forward_bytes(rows, Mode::Train),
            First::Layer(_) => None,
        };
        match from_bytes {
            Some(y) => self.gradient_from_first(None, y, labels),
            None => {
                let k = rows.first().map_or(0, |r| r.len());
                let mut x = Array2::zeros((rows.len(), k));
                for (mut dst, src) in x.rows_mut().into_iter().zip(rows) {
                    dst.iter_mut().zip(*src).for_each(|(d, &b)| *d = to_unit(b));
                }
                self.gradient(&x, labels)
            }
        }
    }

    /// The rest of a training step once the first layer has produced `y` from `x` (`None`:
    /// that layer took bytes and its backward does not read x).
    fn gradient_from_first(
        &mut self,
        x: Option<&Array2<f32>>,
        y: Array2<f32>,
        labels: &[u8],
    ) -> f32 {
        self.outputs.clear();
        self.outputs.push(y);
        for (i, layer) in self.rest.iter_mut().enumerate() {
            let y = layer.forward(&self.outputs[i], Mode::Train);
            self.outputs.push(y);
        }
        let logits = self.outputs.last().expect("at least one layer");
        let loss = self.loss.forward(logits, labels);
        let mut dout = self.loss.backward();
        for (i, layer) in self.rest.iter_mut().enumerate().rev() {
            dout = layer
                .backward(&self.outputs[i], &dout, true)
                .expect("asked for dx");
        }
        // The first layer's input gradient is never used.
        let unread = Array2::zeros((0, 0));
        self.first
            .layer_mut()
            .backward(x.unwrap_or(&unread), &dout, false);
        loss
    }

    /// Every learnable parameter with its gradient, in layer order.
    pub fn params(&mut self) -> Vec<ParamGrad<'_>> {
        let Self { first, rest, .. } = self;
        std::iter::once(first.layer_mut())
            .chain(rest.iter_mut().map(|l| l.as_mut()))
            .flat_map(|l| l.params())
            .collect()
    }

    /// Stored tensors named as in the course: W1, b1, W2, b2, ... numbered per name, so
    /// the k-th layer with weights holds Wk and bk, the k-th BatchNorm gammak, betak,
    /// running_meank and running_vark.
    pub fn named_tensors(&self) -> Vec<(String, &Array2<f32>)> {
        course_names(
            std::iter::once(self.first.layer())
                .chain(self.rest.iter().map(|l| l.as_ref()))
                .map(|l| l.tensors()),
        )
    }

    /// The same tensors, for loading.
    pub fn named_tensors_mut(&mut self) -> Vec<(String, &mut Array2<f32>)> {
        let Self { first, rest, .. } = self;
        course_names(
            std::iter::once(first.layer_mut())
                .chain(rest.iter_mut().map(|l| l.as_mut()))
                .map(|l| l.tensors_mut()),
        )
    }

    /// Predicted class of every row of `x`, evaluated in chunks.
    pub fn classify(&mut self, x: &Array2<f32>) -> Vec<u8> {
        let mut out = Vec::with_capacity(x.nrows());
        for start in (0..x.nrows()).step_by(EVAL_CHUNK) {
            let end = (start + EVAL_CHUNK).min(x.nrows());
            let logits = self.predict(&x.slice(s![start..end, ..]).to_owned(), Mode::Eval);
            out.extend(
                logits
                    .axis_iter(Axis(0))
                    .map(|row| argmax(row.as_slice().expect("row-major")) as u8),
            );
        }
        out
    }
}

/// Appends a count to each short name ("W" → "W1", "W2", ...), counting per name.
fn course_names<T>(per_layer: impl Iterator<Item = Vec<(&'static str, T)>>) -> Vec<(String, T)> {
    let mut seen: std::collections::HashMap<&'static str, usize> = Default::default();
    per_layer
        .flatten()
        .map(|(name, t)| {
            let k = seen.entry(name).or_insert(0);
            *k += 1;
            (format!("{name}{k}"), t)
        })
        .collect()
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{random_matrix, relative_error};
    use crate::spec::InputShape;

    fn small_arch(hidden: LayerSpec) -> Architecture {
        Architecture {
            input: InputShape {
                channels: 1,
                height: 2,
                width: 3,
            },
            classes: 4,
            layers: vec![
                LayerSpec::Affine {
                    units: 5,
                    init: None,
                },
                hidden,
                LayerSpec::Affine {
                    units: 4,
                    init: None,
                },
            ],
        }
    }

    /// Central differences of the mean cross-entropy against every parameter's analytic
    /// gradient.
    fn check_network_gradients(net: &mut Network, x: &Array2<f32>, labels: &[u8], h: f32) {
        net.gradient(x, labels);
        let analytic: Vec<Vec<f32>> = net
            .params()
            .iter()
            .map(|p| p.grad.iter().copied().collect())
            .collect();
        for (p, analytic) in analytic.iter().enumerate() {
            let mut numeric = vec![0.0f64; analytic.len()];
            for (i, n) in numeric.iter_mut().enumerate() {
                net.params()[p].param.as_slice_mut().unwrap()[i] += h;
                let lp = net.loss(x, labels, Mode::Train) as f64;
                net.params()[p].param.as_slice_mut().unwrap()[i] -= 2.0 * h;
                let lm = net.loss(x, labels, Mode::Train) as f64;
                net.params()[p].param.as_slice_mut().unwrap()[i] += h;
                *n = (lp - lm) / (2.0 * h as f64);
            }
            let err = relative_error(analytic, &numeric);
            // A gradient that is zero by construction (a bias followed by BatchNorm,
            // which subtracts the mean) makes the relative error meaningless: there
            // both sides must be zero up to rounding.
            let max_diff = analytic
                .iter()
                .zip(&numeric)
                .map(|(&a, &n)| (a as f64 - n).abs())
                .fold(0.0, f64::max);
            assert!(
                err < 1e-3 || max_diff < 1e-4,
                "parameter {p}: relative error {err:.2e}, largest difference {max_diff:.2e}"
            );
        }
    }

    /// Whole-network check: the gradient of the mean cross-entropy with respect to every
    /// parameter, against central differences of the loss.
    #[test]
    fn whole_network_gradients_match_numerical_differentiation() {
        for hidden in [LayerSpec::Sigmoid, LayerSpec::Relu] {
            let mut net = Network::new(&small_arch(hidden), 3).unwrap();
            let mut rng = StdRng::seed_from_u64(4);
            let x = random_matrix((7, 6), &mut rng);
            check_network_gradients(&mut net, &x, &[0, 1, 2, 3, 0, 1, 2], 1e-2);
        }
    }

    /// A small conv net end to end: conv (padded, 2 channels in) → BatchNorm → ReLU →
    /// pool → conv stride 2 → flatten → affine.
    #[test]
    fn conv_net_gradients_match_numerical_differentiation() {
        let arch = Architecture {
            input: InputShape {
                channels: 2,
                height: 6,
                width: 6,
            },
            classes: 3,
            layers: vec![
                LayerSpec::Conv {
                    filters: 3,
                    size: 3,
                    stride: 1,
                    pad: 1,
                    init: None,
                },
                LayerSpec::BatchNorm {
                    momentum: 0.9,
                    eps: 1e-5,
                },
                LayerSpec::Relu,
                LayerSpec::MaxPool {
                    size: 2,
                    stride: None,
                },
                LayerSpec::Conv {
                    filters: 2,
                    size: 2,
                    stride: 2,
                    pad: 1,
                    init: None,
                },
                LayerSpec::Flatten,
                LayerSpec::Affine {
                    units: 3,
                    init: None,
                },
            ],
        };
        let mut net = Network::new(&arch, 8).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let x = random_matrix((5, 72), &mut rng);
        check_network_gradients(&mut net, &x, &[0, 1, 2, 1, 0], 1e-3);
        let names: Vec<String> = net.named_tensors().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "W1",
                "b1",
                "gamma1",
                "beta1",
                "running_mean1",
                "running_var1",
                "W2",
                "b2",
                "W3",
                "b3"
            ]
        );
    }

    #[test]
    fn same_seed_same_weights() {
        let a = Network::new(&small_arch(LayerSpec::Sigmoid), 9).unwrap();
        let b = Network::new(&small_arch(LayerSpec::Sigmoid), 9).unwrap();
        let c = Network::new(&small_arch(LayerSpec::Sigmoid), 10).unwrap();
        let names: Vec<String> = a.named_tensors().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["W1", "b1", "W2", "b2"]);
        for ((_, x), (_, y)) in a.named_tensors().iter().zip(b.named_tensors()) {
            assert_eq!(*x, y);
        }
        assert_ne!(a.named_tensors()[0].1, c.named_tensors()[0].1);
    }

    /// The course's layers alone and the fast kernels train the same network: the same
    /// loss and gradients (up to rounding) from the same seed, step after step.
    #[test]
    fn plain_and_fast_kernels_train_alike() {
        let mut rng = StdRng::seed_from_u64(8);
        let bytes = crate::gradcheck::sparse_byte_rows(32, 784, 0.8, &mut rng);
        let rows: Vec<&[u8]> = bytes.iter().map(|r| r.as_slice()).collect();
        let x = Array2::from_shape_fn((32, 784), |(i, j)| to_unit(bytes[i][j]));
        let labels: Vec<u8> = (0..32).map(|i| (i * 7 % 10) as u8).collect();
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: vec![
                LayerSpec::Affine {
                    units: 30,
                    init: None,
                },
                LayerSpec::Relu,
                LayerSpec::Affine {
                    units: 10,
                    init: None,
                },
            ],
        };
        let mut fast = Network::with_kernels(&arch, 5, Kernels::Fast).unwrap();
        let mut plain = Network::with_kernels(&arch, 5, Kernels::Plain).unwrap();
        assert!(!plain.reads_bytes());
        assert_eq!(fast.reads_bytes(), sparse_input::available());
        for step in 0..3 {
            let a = fast.gradient_of_bytes(&rows, &labels);
            let b = plain.gradient(&x, &labels);
            assert!((a - b).abs() < 1e-5, "step {step}: loss {a} vs {b}");
            for (pa, pb) in fast.params().into_iter().zip(plain.params()) {
                let err = relative_error(
                    &pa.grad.iter().copied().collect::<Vec<_>>(),
                    &pb.grad.iter().map(|&g| g as f64).collect::<Vec<_>>(),
                );
                assert!(err < 1e-4, "step {step}: gradient relative error {err:.1e}");
                pa.param.scaled_add(-0.1, pa.grad);
                pb.param.scaled_add(-0.1, pb.grad);
            }
        }
    }

    #[test]
    fn byte_batches_give_the_gradients_of_their_floats() {
        let mut rng = StdRng::seed_from_u64(4);
        let bytes = crate::gradcheck::sparse_byte_rows(9, 784, 0.8, &mut rng);
        let rows: Vec<&[u8]> = bytes.iter().map(|r| r.as_slice()).collect();
        let x = Array2::from_shape_fn((9, 784), |(i, j)| to_unit(bytes[i][j]));
        let labels = [3, 1, 4, 1, 5, 9, 2, 6, 5];
        let affine = |units| LayerSpec::Affine { units, init: None };
        // The sparse first layer reads the bytes; a first layer that cannot (sigmoid)
        // gets a float copy.
        for first in [affine(20), LayerSpec::Sigmoid] {
            let arch = Architecture {
                input: InputShape::MNIST,
                classes: 10,
                layers: vec![first, LayerSpec::Relu, affine(10)],
            };
            let (mut a, mut b) = (
                Network::new(&arch, 3).unwrap(),
                Network::new(&arch, 3).unwrap(),
            );
            assert_eq!(a.gradient_of_bytes(&rows, &labels), b.gradient(&x, &labels));
            for (pa, pb) in a.params().iter().zip(b.params()) {
                assert_eq!(pa.grad, pb.grad);
            }
        }
    }
}
