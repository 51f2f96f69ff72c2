//! The optimisers of `--optimizer`, with Keras's defaults, and Adadelta (which burn lacks).

use burn::optim::{
    AdamConfig, AdaptiveMomentumState, ModuleOptimizer, Optimizer as BurnOptimizer, RmsPropConfig,
    SgdConfig,
};
use burn::tensor::{Device, Tensor};

use crate::flex_ops::{AdadeltaStep, adadelta_step, on_flex};
use clap::ValueEnum;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which optimiser `compile` uses, as in `model.compile(optimizer=...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// The course's `Adadelta()`; default learning rate 1.0 (Keras 2's, which the course used).
    #[default]
    Adadelta,
    /// Adam, learning rate 0.001.
    Adam,
    /// Plain stochastic gradient descent, learning rate 0.01.
    Sgd,
    /// RMSprop (ρ 0.9), learning rate 0.001.
    Rmsprop,
}

impl OptimizerKind {
    /// Keras's default learning rate, except Adadelta: Keras 3 lowered it to 0.001, with
    /// which the course's CNN learns very slowly (67.9% after one epoch, measured with
    /// Keras 3.15); the course was written for Keras 2, whose `Adadelta()` meant 1.0.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Adadelta => 1.0,
            OptimizerKind::Adam | OptimizerKind::Rmsprop => 1e-3,
            OptimizerKind::Sgd => 0.01,
        }
    }

    /// The burn optimiser, with Keras's hyper-parameters (ε = 1e-7 throughout).
    pub fn build(self) -> ModuleOptimizer {
        match self {
            OptimizerKind::Adadelta => ModuleOptimizer::from(Adadelta::keras()),
            OptimizerKind::Adam => AdamConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.999)
                .with_epsilon(1e-7)
                .init(),
            OptimizerKind::Sgd => SgdConfig::new().init(),
            OptimizerKind::Rmsprop => RmsPropConfig::new()
                .with_alpha(0.9)
                .with_momentum(0.0)
                .with_epsilon(1e-7)
                .init(),
        }
    }
}

/// Adadelta (Zeiler 2012) as Keras implements it:
///
/// ```text
/// E[g²]  ← ρ·E[g²] + (1−ρ)·g²
/// Δ      = √(E[Δ²] + ε) / √(E[g²] + ε) · g
/// E[Δ²]  ← ρ·E[Δ²] + (1−ρ)·Δ²
/// w      ← w − lr·Δ
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Adadelta {
    pub rho: f32,
    pub epsilon: f32,
}

impl Adadelta {
    pub fn keras() -> Self {
        Self {
            rho: 0.95,
            epsilon: 1e-7,
        }
    }
}

impl BurnOptimizer for Adadelta {
    // burn's two-accumulator state: moment_1 holds E[g²], moment_2 holds E[Δ²].
    type State<const D: usize> = AdaptiveMomentumState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (time, acc_grad, acc_delta) = match state {
            Some(s) => (s.time, s.moment_1, s.moment_2),
            None => (0, grad.zeros_like(), grad.zeros_like()),
        };
        let (rho, eps) = (self.rho, self.epsilon);
        let settings = AdadeltaStep {
            lr: lr as f32,
            rho,
            epsilon: eps,
        };
        // One fused pass on flex; the same rule in tensor ops elsewhere.
        if [&tensor, &grad, &acc_grad, &acc_delta]
            .iter()
            .all(|t| on_flex(*t))
        {
            let (tensor, acc_grad, acc_delta) =
                adadelta_step(tensor, grad, acc_grad, acc_delta, settings);
            let state = AdaptiveMomentumState::new(time + 1, acc_grad, acc_delta);
            return (tensor, Some(state));
        }
        let acc_grad = acc_grad.mul_scalar(rho) + grad.clone().square().mul_scalar(1.0 - rho);
        let delta = acc_delta.clone().add_scalar(eps).sqrt()
            / acc_grad.clone().add_scalar(eps).sqrt()
            * grad;
        let acc_delta = acc_delta.mul_scalar(rho) + delta.clone().square().mul_scalar(1.0 - rho);
        let state = AdaptiveMomentumState::new(time + 1, acc_grad, acc_delta);
        (tensor - delta.mul_scalar(lr), Some(state))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.moment_1 = state.moment_1.to_device(device);
        state.moment_2 = state.moment_2.to_device(device);
        state
    }
}

/// The Adadelta rule above for every value at once, in place; rayon splits long tensors.
pub fn adadelta_in_place(
    param: &mut [f32],
    grad: &[f32],
    acc_grad: &mut [f32],
    acc_delta: &mut [f32],
    s: AdadeltaStep,
) {
    const CHUNK: usize = 1 << 16;
    let AdadeltaStep { lr, rho, epsilon } = s;
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(acc_grad.par_chunks_mut(CHUNK))
        .zip(acc_delta.par_chunks_mut(CHUNK))
        .for_each(|(((w, g), eg), ed)| {
            for (((w, &g), eg), ed) in w.iter_mut().zip(g).zip(eg).zip(ed) {
                *eg = rho * *eg + (1.0 - rho) * g * g;
                let delta = (*ed + epsilon).sqrt() / (*eg + epsilon).sqrt() * g;
                *ed = rho * *ed + (1.0 - rho) * delta * delta;
                *w -= lr * delta;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn adadelta_matches_the_update_rule_worked_by_hand() {
        let device = Device::flex();
        let opt = Adadelta {
            rho: 0.9,
            epsilon: 1e-2,
        };
        let w = Tensor::<1>::from_floats([1.0, -2.0], &device);
        let g = Tensor::<1>::from_floats([0.5, -1.0], &device);
        let (w1, s1) = opt.step(1.0, w, g.clone(), None);
        let (w2, _) = opt.step(1.0, w1.clone(), g, s1);
        // By hand for g = 0.5, ρ 0.9, ε 0.01, lr 1:
        let (rho, eps, g) = (0.9f64, 1e-2f64, 0.5f64);
        let eg1 = (1.0 - rho) * g * g;
        let d1 = (0.0 + eps).sqrt() / (eg1 + eps).sqrt() * g;
        let ed1 = (1.0 - rho) * d1 * d1;
        let eg2 = rho * eg1 + (1.0 - rho) * g * g;
        let d2 = (ed1 + eps).sqrt() / (eg2 + eps).sqrt() * g;
        let w1 = values(w1);
        let w2 = values(w2);
        assert!((w1[0] as f64 - (1.0 - d1)).abs() < 1e-6, "{w1:?}");
        assert!((w2[0] as f64 - (1.0 - d1 - d2)).abs() < 1e-6, "{w2:?}");
        // The update is odd in g: the second weight moves the other way.
        assert!(w2[1] < -2.0 + 1e-6 + (d1 + d2) as f32 * 2.0 && w2[1] > -2.0);
    }

    /// flex runs the fused in-place pass, ndarray the same rule in tensor ops: three
    /// steps of both agree, and a parameter tensor still shared elsewhere is not changed.
    #[test]
    fn fused_adadelta_matches_the_tensor_op_rule() {
        #[allow(deprecated)] // burn-ndarray: kept selectable by the project
        let devices = [Device::flex(), Device::ndarray()];
        let opt = Adadelta::keras();
        let runs: Vec<Vec<f32>> = devices
            .iter()
            .map(|device| {
                let mut w = Tensor::<1>::from_floats([0.3, -1.2, 2.0, 0.0, 5.0], device);
                let before = w.clone();
                let mut state = None;
                for step in 0..3 {
                    let g = Tensor::<1>::from_floats([0.5, -1.0, 0.25, 2.0, -3.0], device)
                        .mul_scalar(1.0 + step as f32);
                    (w, state) = opt.step(0.5, w, g, state);
                }
                assert_eq!(values(before), [0.3, -1.2, 2.0, 0.0, 5.0]);
                values(w)
            })
            .collect();
        for (a, b) in runs[0].iter().zip(&runs[1]) {
            assert!((a - b).abs() < 1e-6, "{:?} vs {:?}", runs[0], runs[1]);
        }
        assert_ne!(runs[0], [0.3, -1.2, 2.0, 0.0, 5.0]);
    }

    #[test]
    fn every_optimizer_lowers_a_quadratic() {
        use burn::module::{Module, Param};
        use burn::optim::GradientsParams;

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
