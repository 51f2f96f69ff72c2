//! A network: a sequence of layers ending in softmax-with-loss, built from an
//! [`Architecture`].

use anyhow::Result;
use ndarray::{Array2, Axis, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::data::to_unit;
use crate::init::{self, Init};
use crate::layers::im2col::Window;
use crate::layers::{
    Affine, BatchNorm, Conv, Dropout, Flatten, Layer, MaxPool, Mode, ParamGrad, Relu, Sigmoid,
    SoftmaxWithLoss,
};
use crate::spec::{Architecture, LayerSpec};

pub struct Network {
    pub arch: Architecture,
    layers: Vec<Box<dyn Layer>>,
    loss: SoftmaxWithLoss,
    /// Each layer's output from the last training forward pass: the next layer's input,
    /// which its backward pass needs.
    outputs: Vec<Array2<f32>>,
}

/// Rows evaluated at once when predicting a whole data set.
const EVAL_CHUNK: usize = 1000;

impl Network {
    /// A network with fresh weights drawn with `seed`.
    pub fn new(arch: &Architecture, seed: u64) -> Result<Self> {
        let shapes = arch.shapes()?;
        // Weights, gradients and up to two optimiser accumulators each, as f32: refused
        // before any of it is allocated when the machine does not have it.
        let params = arch.parameter_count()?;
        dataset::memory::check_fits(16 * params, &format!("a network of {params} parameters"))
            .map_err(anyhow::Error::msg)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut input = arch.input;
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(arch.layers.len());
        for (i, (spec, &output)) in arch.layers.iter().zip(&shapes).enumerate() {
            layers.push(match *spec {
                LayerSpec::Affine { units, init } => {
                    let w = init::weights(
                        input.features(),
                        units,
                        init.unwrap_or(Init::Xavier),
                        &mut rng,
                    );
                    let layer = Affine::new(w, Array2::zeros((1, units)));
                    // Raw pixels are mostly zeros (see layers/sparse_input.rs).
                    Box::new(if i == 0 {
                        layer.with_sparse_input()
                    } else {
                        layer
                    })
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
            });
            input = output;
        }
        Ok(Self {
            arch: arch.clone(),
            layers,
            loss: SoftmaxWithLoss::default(),
            outputs: Vec::new(),
        })
    }

    /// Logits (batch, classes) for inputs (batch, features).
    pub fn predict(&mut self, x: &Array2<f32>, mode: Mode) -> Array2<f32> {
        let mut h = self.layers[0].forward(x, mode);
        for layer in &mut self.layers[1..] {
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
        let y = self.layers[0].forward(x, Mode::Train);
        self.gradient_from_first(Some(x), y, labels)
    }

    /// Whether the first layer reads batches of 8-bit pixels ([`Self::gradient_of_bytes`])
    /// without a float copy.
    pub fn reads_bytes(&self) -> bool {
        self.layers[0].reads_bytes()
    }

    /// [`Self::gradient`] for a batch given as rows of 8-bit pixels, x = byte / 255 (the
    /// training set's own bytes): the first layer reads them directly when it can,
    /// else they are copied into floats first.
    pub fn gradient_of_bytes(&mut self, rows: &[&[u8]], labels: &[u8]) -> f32 {
        match self.layers[0].forward_bytes(rows, Mode::Train) {
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
        for i in 1..self.layers.len() {
            let y = self.layers[i].forward(&self.outputs[i - 1], Mode::Train);
            self.outputs.push(y);
        }
        let logits = self.outputs.last().expect("at least one layer");
        let loss = self.loss.forward(logits, labels);
        let mut dout = self.loss.backward();
        let unread = Array2::zeros((0, 0));
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            let input = match i {
                0 => x.unwrap_or(&unread),
                _ => &self.outputs[i - 1],
            };
            match layer.backward(input, &dout, i > 0) {
                Some(dx) => dout = dx,
                None => break,
            }
        }
        loss
    }

    /// Every learnable parameter with its gradient, in layer order.
    pub fn params(&mut self) -> Vec<ParamGrad<'_>> {
        self.layers.iter_mut().flat_map(|l| l.params()).collect()
    }

    /// Stored tensors named as in the course: W1, b1, W2, b2, ... numbered per name, so
    /// the k-th layer with weights holds Wk and bk, the k-th BatchNorm gammak, betak,
    /// running_meank and running_vark.
    pub fn named_tensors(&self) -> Vec<(String, &Array2<f32>)> {
        course_names(self.layers.iter().map(|l| l.tensors()))
    }

    /// The same tensors, for loading.
    pub fn named_tensors_mut(&mut self) -> Vec<(String, &mut Array2<f32>)> {
        course_names(self.layers.iter_mut().map(|l| l.tensors_mut()))
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
                err < 1e-2 || max_diff < 1e-4,
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
