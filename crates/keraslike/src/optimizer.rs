//! The optimisers of `--optimizer`, with Keras 3's update rules and defaults.
//!
//! burn has Adam, RMSprop, SGD and AdaGrad, but with PyTorch's formulas: Adam adds ε to
//! the bias-corrected √v̂ (Keras adds it to the uncorrected √v), RMSprop divides by
//! √v + ε (Keras by √(v + ε)), AdaGrad's accumulator starts at 0 (Keras's at 0.1), and
//! there is no Adadelta. So keraslike implements each rule as Keras writes it
//! (`keras/src/optimizers/*.py`, `update_step`), on burn's `Optimizer` trait. On flex,
//! Adam and Adadelta (the course's two) run as one fused in-place pass per parameter
//! ([`crate::kernels::update`]); everything else, and other backends, run the same rule in tensor
//! ops (tested to agree).

use burn::optim::{
    ModuleOptimizer, Optimizer as BurnOptimizer, RecordState, StateSink, StateSource,
};
use burn::tensor::{Device, Tensor};
use burn_pack::Scalar;

use crate::kernels::flex::{fused_update, on_flex};
use crate::kernels::update::FusedUpdate;
use anyhow::{Result, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Which optimiser `compile` uses, as in `model.compile(optimizer=...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// The course's `Adadelta()`; default learning rate 1.0 (Keras 2's, which the course used).
    #[default]
    Adadelta,
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-7), learning rate 0.001.
    Adam,
    /// Stochastic gradient descent (momentum 0, or set `momentum`/`nesterov`), learning rate 0.01.
    Sgd,
    /// RMSprop (ρ 0.9, momentum 0, ε 1e-7), learning rate 0.001.
    Rmsprop,
    /// Adagrad (accumulator starting at 0.1, ε 1e-7), learning rate 0.001.
    Adagrad,
}

impl OptimizerKind {
    /// Keras's default learning rate, except Adadelta: Keras 3 lowered it to 0.001, with
    /// which the course's CNN learns very slowly (67.9% after one epoch, measured with
    /// Keras 3.15); the course was written for Keras 2, whose `Adadelta()` meant 1.0.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Adadelta => 1.0,
            OptimizerKind::Adam | OptimizerKind::Rmsprop | OptimizerKind::Adagrad => 1e-3,
            OptimizerKind::Sgd => 0.01,
        }
    }

    /// The optimiser with every hyper-parameter at Keras's default.
    pub fn keras(self) -> Optimizer {
        match self {
            OptimizerKind::Adadelta => Optimizer::Adadelta {
                rho: 0.95,
                epsilon: 1e-7,
            },
            OptimizerKind::Adam => Optimizer::Adam {
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-7,
            },
            OptimizerKind::Sgd => Optimizer::Sgd {
                momentum: 0.0,
                nesterov: false,
            },
            OptimizerKind::Rmsprop => Optimizer::Rmsprop {
                rho: 0.9,
                momentum: 0.0,
                epsilon: 1e-7,
            },
            OptimizerKind::Adagrad => Optimizer::Adagrad {
                initial_accumulator_value: 0.1,
                epsilon: 1e-7,
            },
        }
    }

    /// The burn optimiser with Keras's defaults.
    pub fn build(self) -> ModuleOptimizer {
        self.keras().build()
    }
}

/// An optimiser and its hyper-parameters (the learning rate is passed to each step), as
/// `keras.optimizers.Adam(beta_1=0.9, ...)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    Sgd {
        momentum: f64,
        nesterov: bool,
    },
    Adam {
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
    },
    Rmsprop {
        rho: f64,
        momentum: f64,
        epsilon: f64,
    },
    Adagrad {
        initial_accumulator_value: f64,
        epsilon: f64,
    },
    Adadelta {
        rho: f64,
        epsilon: f64,
    },
}

/// Hyper-parameters a config may set; `None` keeps Keras's default. Each belongs to some
/// optimisers only, as Keras's constructors' arguments do.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HyperParameters {
    pub momentum: Option<f64>,
    pub nesterov: Option<bool>,
    pub beta_1: Option<f64>,
    pub beta_2: Option<f64>,
    pub rho: Option<f64>,
    pub epsilon: Option<f64>,
    pub initial_accumulator_value: Option<f64>,
}

impl Optimizer {
    pub fn kind(&self) -> OptimizerKind {
        match self {
            Optimizer::Sgd { .. } => OptimizerKind::Sgd,
            Optimizer::Adam { .. } => OptimizerKind::Adam,
            Optimizer::Rmsprop { .. } => OptimizerKind::Rmsprop,
            Optimizer::Adagrad { .. } => OptimizerKind::Adagrad,
            Optimizer::Adadelta { .. } => OptimizerKind::Adadelta,
        }
    }

    /// `kind` with Keras's defaults overridden by `h`; a setting the optimiser does not take
    /// (`beta_1` for SGD, say) or a value out of its range is an error naming it.
    pub fn with(kind: OptimizerKind, h: &HyperParameters) -> Result<Self> {
        let name = format!("{kind:?}").to_lowercase();
        // The settings each optimiser's Keras constructor takes.
        let takes: &[&str] = match kind {
            OptimizerKind::Sgd => &["momentum", "nesterov"],
            OptimizerKind::Adam => &["beta_1", "beta_2", "epsilon"],
            OptimizerKind::Rmsprop => &["rho", "momentum", "epsilon"],
            OptimizerKind::Adagrad => &["initial_accumulator_value", "epsilon"],
            OptimizerKind::Adadelta => &["rho", "epsilon"],
        };
        let number = |v: Option<f64>| v.map(|v| v.to_string());
        let given = [
            ("momentum", number(h.momentum)),
            ("nesterov", h.nesterov.map(|v| v.to_string())),
            ("beta_1", number(h.beta_1)),
            ("beta_2", number(h.beta_2)),
            ("rho", number(h.rho)),
            ("epsilon", number(h.epsilon)),
            (
                "initial_accumulator_value",
                number(h.initial_accumulator_value),
            ),
        ];
        for (key, value) in given {
            if let Some(v) = value
                && !takes.contains(&key)
            {
                bail!("optimizer {name} has no setting {key} (= {v})");
            }
        }
        // In [0, 1] (`closed`) or [0, 1).
        let unit = |key: &str, v: f64, closed: bool| -> Result<f64> {
            let ok = v.is_finite() && v >= 0.0 && if closed { v <= 1.0 } else { v < 1.0 };
            if !ok {
                let end = if closed { "]" } else { ")" };
                bail!("optimizer {name}: {key} = {v} must be in [0, 1{end}");
            }
            Ok(v)
        };
        let positive = |key: &str, v: f64| -> Result<f64> {
            if !(v.is_finite() && v > 0.0) {
                bail!("optimizer {name}: {key} = {v} must be positive");
            }
            Ok(v)
        };
        let optimizer = match kind.keras() {
            Optimizer::Sgd { momentum, nesterov } => Optimizer::Sgd {
                momentum: unit("momentum", h.momentum.unwrap_or(momentum), true)?,
                nesterov: h.nesterov.unwrap_or(nesterov),
            },
            Optimizer::Adam {
                beta_1,
                beta_2,
                epsilon,
            } => Optimizer::Adam {
                beta_1: unit("beta_1", h.beta_1.unwrap_or(beta_1), false)?,
                beta_2: unit("beta_2", h.beta_2.unwrap_or(beta_2), false)?,
                epsilon: positive("epsilon", h.epsilon.unwrap_or(epsilon))?,
            },
            Optimizer::Rmsprop {
                rho,
                momentum,
                epsilon,
            } => Optimizer::Rmsprop {
                rho: unit("rho", h.rho.unwrap_or(rho), true)?,
                momentum: unit("momentum", h.momentum.unwrap_or(momentum), true)?,
                epsilon: positive("epsilon", h.epsilon.unwrap_or(epsilon))?,
            },
            Optimizer::Adagrad {
                initial_accumulator_value,
                epsilon,
            } => {
                let start = h
                    .initial_accumulator_value
                    .unwrap_or(initial_accumulator_value);
                if !(start.is_finite() && start >= 0.0) {
                    bail!("optimizer adagrad: initial_accumulator_value = {start} must be >= 0");
                }
                Optimizer::Adagrad {
                    initial_accumulator_value: start,
                    epsilon: positive("epsilon", h.epsilon.unwrap_or(epsilon))?,
                }
            }
            Optimizer::Adadelta { rho, epsilon } => Optimizer::Adadelta {
                rho: unit("rho", h.rho.unwrap_or(rho), true)?,
                epsilon: positive("epsilon", h.epsilon.unwrap_or(epsilon))?,
            },
        };
        Ok(optimizer)
    }

    pub fn build(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

/// An optimiser's per-parameter state: the step count and one or two accumulators,
/// recorded under the names burn's Adam uses (`time`, `moment_1`, `moment_2`), so that
/// checkpoints written with burn's state load.
///
/// | optimiser | moment_1 | moment_2 |
/// | --- | --- | --- |
/// | SGD with momentum | velocity | — |
/// | Adam | m | v |
/// | RMSprop | E[g²] | momentum (when > 0) |
/// | Adagrad | Σg² (from 0.1) | — |
/// | Adadelta | E[g²] | E[Δ²] |
#[derive(Clone)]
pub struct Slots<const D: usize> {
    pub time: usize,
    pub moment_1: Tensor<D>,
    pub moment_2: Option<Tensor<D>>,
}

impl<const D: usize> RecordState for Slots<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_scalar(prefix, "time", Scalar::from(self.time));
        out.push_tensor(prefix, "moment_1", self.moment_1.clone().into_data());
        if let Some(m) = &self.moment_2 {
            out.push_tensor(prefix, "moment_2", m.clone().into_data());
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let time = usize::try_from(src.take_scalar(prefix, "time")?).ok()?;
        let moment_1 = Tensor::from_data(src.take_tensor(prefix, "moment_1")?, device);
        let moment_2 = src
            .take_tensor(prefix, "moment_2")
            .map(|data| Tensor::from_data(data, device));
        Some(Self {
            time,
            moment_1,
            moment_2,
        })
    }
}

impl BurnOptimizer for Optimizer {
    type State<const D: usize> = Slots<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        w: Tensor<D>,
        g: Tensor<D>,
        state: Option<Slots<D>>,
    ) -> (Tensor<D>, Option<Slots<D>>) {
        let time = state.as_ref().map_or(0, |s| s.time) + 1;
        let zeros = || g.zeros_like();
        let (m1, m2) = match state {
            Some(s) => (s.moment_1, s.moment_2),
            None => (zeros(), None),
        };
        let slots = |moment_1, moment_2| {
            Some(Slots {
                time,
                moment_1,
                moment_2,
            })
        };
        match *self {
            Optimizer::Sgd { momentum, nesterov } => {
                if momentum == 0.0 {
                    return (w - g.mul_scalar(lr), None);
                }
                // m ← μ·m − lr·g; w ← w + m (Nesterov: w + μ·m − lr·g).
                let step = g.mul_scalar(lr);
                let m = m1.mul_scalar(momentum) - step.clone();
                let w = if nesterov {
                    w + m.clone().mul_scalar(momentum) - step
                } else {
                    w + m.clone()
                };
                (w, slots(m, None))
            }
            Optimizer::Adam {
                beta_1,
                beta_2,
                epsilon,
            } => {
                // α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ); m += (g−m)(1−β₁); v += (g²−v)(1−β₂); w −= α·m/(√v + ε).
                let t = time as i32;
                let alpha = lr * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
                let v = m2.unwrap_or_else(zeros);
                let rule = FusedUpdate::Adam {
                    alpha: alpha as f32,
                    beta_1: beta_1 as f32,
                    beta_2: beta_2 as f32,
                    epsilon: epsilon as f32,
                };
                if [&w, &g, &m1, &v].iter().all(|t| on_flex(*t)) {
                    let (w, m, v) = fused_update(w, g, m1, v, rule);
                    return (w, slots(m, Some(v)));
                }
                let m = m1.clone() + (g.clone() - m1).mul_scalar(1.0 - beta_1);
                let v = v.clone() + (g.square() - v).mul_scalar(1.0 - beta_2);
                let w = w - m.clone().mul_scalar(alpha) / v.clone().sqrt().add_scalar(epsilon);
                (w, slots(m, Some(v)))
            }
            Optimizer::Rmsprop {
                rho,
                momentum,
                epsilon,
            } => {
                // v ← ρ·v + (1−ρ)·g²; step = lr·g/√(v + ε); with momentum: m ← μ·m + step.
                let v = m1.mul_scalar(rho) + g.clone().square().mul_scalar(1.0 - rho);
                let step = g.mul_scalar(lr) / v.clone().add_scalar(epsilon).sqrt();
                if momentum == 0.0 {
                    return (w - step, slots(v, None));
                }
                let m = match m2 {
                    Some(m) => m.mul_scalar(momentum) + step,
                    None => step,
                };
                (w - m.clone(), slots(v, Some(m)))
            }
            Optimizer::Adagrad {
                initial_accumulator_value,
                epsilon,
            } => {
                // acc (from the initial value) += g²; w −= lr·g/√(acc + ε).
                let acc = if time == 1 {
                    m1.add_scalar(initial_accumulator_value)
                } else {
                    m1
                } + g.clone().square();
                let w = w - g.mul_scalar(lr) / acc.clone().add_scalar(epsilon).sqrt();
                (w, slots(acc, None))
            }
            Optimizer::Adadelta { rho, epsilon } => {
                let acc_delta = m2.unwrap_or_else(zeros);
                let rule = FusedUpdate::Adadelta {
                    lr: lr as f32,
                    rho: rho as f32,
                    epsilon: epsilon as f32,
                };
                if [&w, &g, &m1, &acc_delta].iter().all(|t| on_flex(*t)) {
                    let (w, acc_grad, acc_delta) = fused_update(w, g, m1, acc_delta, rule);
                    return (w, slots(acc_grad, Some(acc_delta)));
                }
                // E[g²] ← ρ·E[g²] + (1−ρ)·g²; Δ = √(E[Δ²]+ε)/√(E[g²]+ε)·g;
                // E[Δ²] ← ρ·E[Δ²] + (1−ρ)·Δ²; w ← w − lr·Δ.
                let acc_grad = m1.mul_scalar(rho) + g.clone().square().mul_scalar(1.0 - rho);
                let delta = acc_delta.clone().add_scalar(epsilon).sqrt()
                    / acc_grad.clone().add_scalar(epsilon).sqrt()
                    * g;
                let acc_delta =
                    acc_delta.mul_scalar(rho) + delta.clone().square().mul_scalar(1.0 - rho);
                (w - delta.mul_scalar(lr), slots(acc_grad, Some(acc_delta)))
            }
        }
    }

    fn to_device<const D: usize>(mut state: Slots<D>, device: &Device) -> Slots<D> {
        state.moment_1 = state.moment_1.to_device(device);
        state.moment_2 = state.moment_2.map(|m| m.to_device(device));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::GradientsParams;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Keras's `update_step` for one scalar weight, in f64, step by step: what every
    /// optimiser must reproduce (the rules copied from keras/src/optimizers/*.py).
    fn keras_reference(opt: Optimizer, lr: f64, w0: f64, grads: &[f64]) -> f64 {
        let (mut w, mut a, mut b) = (w0, 0.0, 0.0);
        if let Optimizer::Adagrad {
            initial_accumulator_value,
            ..
        } = opt
        {
            a = initial_accumulator_value;
        }
        for (i, &g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            match opt {
                Optimizer::Sgd { momentum, nesterov } => {
                    if momentum == 0.0 {
                        w -= lr * g;
                    } else {
                        a = a * momentum - g * lr;
                        w += if nesterov { a * momentum - g * lr } else { a };
                    }
                }
                Optimizer::Adam {
                    beta_1,
                    beta_2,
                    epsilon,
                } => {
                    let alpha = lr * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
                    a += (g - a) * (1.0 - beta_1);
                    b += (g * g - b) * (1.0 - beta_2);
                    w -= a * alpha / (b.sqrt() + epsilon);
                }
                Optimizer::Rmsprop {
                    rho,
                    momentum,
                    epsilon,
                } => {
                    a = rho * a + (1.0 - rho) * g * g;
                    let inc = lr * g / (a + epsilon).sqrt();
                    if momentum > 0.0 {
                        b = momentum * b + inc;
                        w -= b;
                    } else {
                        w -= inc;
                    }
                }
                Optimizer::Adagrad { epsilon, .. } => {
                    a += g * g;
                    w -= lr * g / (a + epsilon).sqrt();
                }
                Optimizer::Adadelta { rho, epsilon } => {
                    a = rho * a + (1.0 - rho) * g * g;
                    let delta = (b + epsilon).sqrt() / (a + epsilon).sqrt() * g;
                    b = rho * b + (1.0 - rho) * delta * delta;
                    w -= lr * delta;
                }
            }
        }
        w
    }

    /// Every optimiser (defaults, and momentum / Nesterov / a large ε where they change the
    /// rule) against Keras's rule, on flex (fused where it is) and ndarray (tensor ops):
    /// four steps of growing and sign-changing gradients.
    #[test]
    fn every_optimizer_follows_kerass_update_rule_on_every_path() {
        let grads = [0.5, -1.0, 0.25, 2.0];
        let lr = 0.1;
        let mut optimizers: Vec<Optimizer> = OptimizerKind::value_variants()
            .iter()
            .map(|k| k.keras())
            .collect();
        optimizers.extend([
            Optimizer::Sgd {
                momentum: 0.9,
                nesterov: false,
            },
            Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            Optimizer::Rmsprop {
                rho: 0.9,
                momentum: 0.5,
                epsilon: 1e-7,
            },
            // ε large enough that its placement shows: Keras adds it to √v, not √v̂.
            Optimizer::Adam {
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 0.1,
            },
            Optimizer::Adadelta {
                rho: 0.9,
                epsilon: 1e-2,
            },
        ]);
        #[allow(deprecated)] // burn-ndarray: kept selectable by the project
        let devices = [Device::flex(), Device::ndarray()];
        for opt in optimizers {
            let want: Vec<f64> = [1.0, -2.0]
                .iter()
                .map(|&w0| keras_reference(opt, lr, w0, &grads))
                .collect();
            for device in &devices {
                let mut w = Tensor::<1>::from_floats([1.0, -2.0], device);
                let mut state = None;
                for &g in &grads {
                    let g = Tensor::<1>::from_floats([g as f32, -g as f32], device);
                    (w, state) = opt.step(lr, w, g, state);
                }
                let got = values(w);
                // The second weight saw the negated gradients.
                let want2 = keras_reference(opt, lr, -2.0, &grads.map(|g| -g));
                assert!(
                    (f64::from(got[0]) - want[0]).abs() < 1e-5
                        && (f64::from(got[1]) - want2).abs() < 1e-5,
                    "{opt:?} on {device:?}: {got:?}, Keras {want:?} / {want2}"
                );
            }
        }
    }

    /// The fused pass leaves a parameter tensor still shared elsewhere unchanged.
    #[test]
    fn fused_update_copies_a_shared_parameter() {
        let device = Device::flex();
        let w = Tensor::<1>::from_floats([0.3, -1.2, 2.0], &device);
        let before = w.clone();
        let g = Tensor::<1>::from_floats([0.5, -1.0, 0.25], &device);
        let (w, _) = OptimizerKind::Adam.keras().step(0.1, w, g, None);
        assert_eq!(values(before), [0.3, -1.2, 2.0]);
        assert_ne!(values(w), [0.3, -1.2, 2.0]);
    }

    #[test]
    fn state_records_and_restores_under_burns_names() {
        let device = Device::flex();
        let opt = OptimizerKind::Adam.keras();
        let w = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let g = Tensor::<1>::from_floats([0.5, -0.5], &device);
        let (_, state) = opt.step(0.01, w, g, None);
        let state = state.expect("Adam keeps state");
        let mut sink = StateSink::default();
        state.state_flatten("p", &mut sink);
        let names: Vec<&str> = sink.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["p.moment_1", "p.moment_2"]);
        let mut source = StateSource::new(sink.scalars.into_iter().collect());
        for (name, data) in sink.tensors {
            source.insert_tensor(name, data);
        }
        let back = Slots::<1>::state_unflatten("p", &mut source, &device).expect("restores");
        assert_eq!(back.time, 1);
        assert_eq!(values(back.moment_1), values(state.moment_1));
    }

    #[test]
    fn settings_belong_to_their_optimizers() {
        let h = HyperParameters {
            momentum: Some(0.9),
            nesterov: Some(true),
            ..Default::default()
        };
        assert_eq!(
            Optimizer::with(OptimizerKind::Sgd, &h).unwrap(),
            Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true
            }
        );
        let err = Optimizer::with(OptimizerKind::Adam, &h)
            .unwrap_err()
            .to_string();
        assert!(err.contains("adam") && err.contains("momentum"), "{err}");
        let bad_beta = HyperParameters {
            beta_1: Some(1.0),
            ..Default::default()
        };
        assert!(Optimizer::with(OptimizerKind::Adam, &bad_beta).is_err());
        let bad_eps = HyperParameters {
            epsilon: Some(-1.0),
            ..Default::default()
        };
        assert!(Optimizer::with(OptimizerKind::Rmsprop, &bad_eps).is_err());
        assert_eq!(
            Optimizer::with(OptimizerKind::Adagrad, &HyperParameters::default()).unwrap(),
            OptimizerKind::Adagrad.keras()
        );
    }

    #[test]
    fn every_optimizer_lowers_a_quadratic() {
        #[derive(Module, Debug)]
        struct Point {
            w: Param<Tensor<1>>,
        }
        let device = Device::flex().autodiff();
        for kind in OptimizerKind::value_variants() {
            let mut point = Point {
                w: Param::from_tensor(Tensor::from_floats([3.0, -2.0], &device)),
            };
            let mut optim = kind.build();
            let loss = |p: &Point| p.w.val().square().sum();
            let before = loss(&point).into_scalar::<f32>();
            for _ in 0..20 {
                let l = loss(&point);
                let grads = GradientsParams::from_grads(l.backward(), &point);
                point = optim.step(kind.default_lr(), point, grads);
            }
            let after = loss(&point).into_scalar::<f32>();
            assert!(after < before, "{kind:?}: {before} -> {after}");
        }
    }
}
