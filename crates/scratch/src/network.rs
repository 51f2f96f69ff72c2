//! A network: a sequence of layers ending in softmax-with-loss, built from an
//! [`Architecture`].

use anyhow::Result;
use ndarray::{Array2, Axis, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::init::{self, Init};
use crate::layers::{Affine, Layer, Mode, ParamGrad, Relu, Sigmoid, SoftmaxWithLoss};
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
        arch.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut features = arch.input.features();
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(arch.layers.len());
        for spec in &arch.layers {
            layers.push(match *spec {
                LayerSpec::Affine { units, init } => {
                    let w = init::weights(features, units, init.unwrap_or(Init::Xavier), &mut rng);
                    features = units;
                    Box::new(Affine::new(w, Array2::zeros((1, units))))
                }
                LayerSpec::Sigmoid => Box::new(Sigmoid::default()),
                LayerSpec::Relu => Box::new(Relu::default()),
            });
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
        self.outputs.clear();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let input = if i == 0 { x } else { &self.outputs[i - 1] };
            let y = layer.forward(input, Mode::Train);
            self.outputs.push(y);
        }
        let logits = self.outputs.last().expect("at least one layer");
        let loss = self.loss.forward(logits, labels);
        let mut dout = self.loss.backward();
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            let input = if i == 0 { x } else { &self.outputs[i - 1] };
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

    /// Stored tensors named as in the course: W1, b1, W2, b2, ... numbered by layer with
    /// parameters.
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

/// Appends k to each layer's short names ("W" → "W1"), k counting the layers that have
/// tensors.
fn course_names<T>(per_layer: impl Iterator<Item = Vec<(&'static str, T)>>) -> Vec<(String, T)> {
    per_layer
        .filter(|tensors| !tensors.is_empty())
        .enumerate()
        .flat_map(|(i, tensors)| {
            tensors
                .into_iter()
                .map(move |(name, t)| (format!("{name}{}", i + 1), t))
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

    /// Whole-network check: the gradient of the mean cross-entropy with respect to every
    /// parameter, against central differences of the loss.
    #[test]
    fn whole_network_gradients_match_numerical_differentiation() {
        for hidden in [LayerSpec::Sigmoid, LayerSpec::Relu] {
            let mut net = Network::new(&small_arch(hidden), 3).unwrap();
            let mut rng = StdRng::seed_from_u64(4);
            let x = random_matrix((7, 6), &mut rng);
            let labels = [0u8, 1, 2, 3, 0, 1, 2];
            net.gradient(&x, &labels);
            let analytic: Vec<Vec<f32>> = net
                .params()
                .iter()
                .map(|p| p.grad.iter().copied().collect())
                .collect();
            let h = 1e-2f32;
            for (p, analytic) in analytic.iter().enumerate() {
                let mut numeric = vec![0.0f64; analytic.len()];
                for (i, n) in numeric.iter_mut().enumerate() {
                    net.params()[p].param.as_slice_mut().unwrap()[i] += h;
                    let lp = net.loss(&x, &labels, Mode::Train) as f64;
                    net.params()[p].param.as_slice_mut().unwrap()[i] -= 2.0 * h;
                    let lm = net.loss(&x, &labels, Mode::Train) as f64;
                    net.params()[p].param.as_slice_mut().unwrap()[i] += h;
                    *n = (lp - lm) / (2.0 * h as f64);
                }
                let err = relative_error(analytic, &numeric);
                assert!(err < 1e-2, "parameter {p}: relative error {err:.2e}");
            }
        }
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
}
