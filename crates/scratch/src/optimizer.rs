//! Parameter updates from gradients: the six optimisers of the course (A4).
//!
//! Each optimiser keeps its per-parameter state (velocities, squared-gradient averages)
//! in the order the network lists its parameters, which never changes.

use ndarray::{Array2, Zip};

use crate::kernels::team;
use crate::layers::ParamGrad;
use crate::spec::OptimizerSpec;

pub trait Optimizer {
    /// Updates every parameter from its gradient. `params` come in the same order on
    /// every call, so stateful optimisers can key their state by position.
    fn step(&mut self, params: Vec<ParamGrad<'_>>);

    /// The learning rate, for schedules; `None` for AdaDelta, which has none.
    fn lr_mut(&mut self) -> Option<&mut f32>;
}

/// Per-parameter state arrays, created as zeros (or `init`) on the first step.
#[derive(Default)]
struct Slots(Vec<Array2<f32>>);

impl Slots {
    fn get(&mut self, i: usize, like: &Array2<f32>, init: f32) -> &mut Array2<f32> {
        while self.0.len() <= i {
            self.0.push(Array2::zeros((0, 0)));
        }
        if self.0[i].dim() != like.dim() {
            self.0[i] = Array2::from_elem(like.raw_dim(), init);
        }
        &mut self.0[i]
    }
}

/// W ← W − η g
pub struct Sgd {
    pub lr: f32,
}

impl Optimizer for Sgd {
    fn lr_mut(&mut self) -> Option<&mut f32> {
        Some(&mut self.lr)
    }

    fn step(&mut self, params: Vec<ParamGrad<'_>>) {
        let lr = self.lr;
        for p in params {
            team::by_rows(p.param, p.grad, |mut w, g| w.scaled_add(-lr, &g));
        }
    }
}

/// v ← α v − η g; W ← W + v
pub struct Momentum {
    pub lr: f32,
    pub momentum: f32,
    v: Slots,
}

impl Optimizer for Momentum {
    fn lr_mut(&mut self) -> Option<&mut f32> {
        Some(&mut self.lr)
    }

    fn step(&mut self, params: Vec<ParamGrad<'_>>) {
        let (lr, a) = (self.lr, self.momentum);
        for (i, p) in params.into_iter().enumerate() {
            let v = self.v.get(i, p.param, 0.0);
            Zip::from(&mut *p.param)
                .and(v)
                .and(&*p.grad)
                .for_each(|w, v, &g| {
                    *v = a * *v - lr * g;
                    *w += *v;
                });
        }
    }
}

/// h ← h + g²; W ← W − η g / √h, with h starting at h0 (no division by zero).
pub struct AdaGrad {
    pub lr: f32,
    pub h0: f32,
    h: Slots,
}

impl Optimizer for AdaGrad {
    fn lr_mut(&mut self) -> Option<&mut f32> {
        Some(&mut self.lr)
    }

    fn step(&mut self, params: Vec<ParamGrad<'_>>) {
        let lr = self.lr;
        for (i, p) in params.into_iter().enumerate() {
            let h = self.h.get(i, p.param, self.h0);
            Zip::from(&mut *p.param)
                .and(h)
                .and(&*p.grad)
                .for_each(|w, h, &g| {
                    *h += g * g;
                    *w -= lr * g / h.sqrt();
                });
        }
    }
}

/// h ← ρ h + (1 − ρ) g²; W ← W − η g / (√h + ε)
pub struct RmsProp {
    pub lr: f32,
    pub rho: f32,
    pub eps: f32,
    h: Slots,
}

impl Optimizer for RmsProp {
    fn lr_mut(&mut self) -> Option<&mut f32> {
        Some(&mut self.lr)
    }

    fn step(&mut self, params: Vec<ParamGrad<'_>>) {
        let (lr, rho, eps) = (self.lr, self.rho, self.eps);
        for (i, p) in params.into_iter().enumerate() {
            let h = self.h.get(i, p.param, 0.0);
            Zip::from(&mut *p.param)
                .and(h)
                .and(&*p.grad)
                .for_each(|w, h, &g| {
                    *h = rho * *h + (1.0 - rho) * g * g;
                    *w -= lr * g / (h.sqrt() + eps);
                });
        }
    }
}

/// h ← ρ h + (1 − ρ) g²; Δ = √(s + ε) / √(h + ε) · g; s ← ρ s + (1 − ρ) Δ²; W ← W − Δ.
/// No learning rate: the ratio of the two running averages sets the step's units.
pub struct AdaDelta {
    pub rho: f32,
    pub eps: f32,
    h: Slots,
    s: Slots,
}

impl Optimizer for AdaDelta {
    fn lr_mut(&mut self) -> Option<&mut f32> {
        None
    }

    fn step(&mut self, params: Vec<ParamGrad<'_>>) {
        let (rho, eps) = (self.rho, self.eps);
        for (i, p) in params.into_iter().enumerate() {
            let h = self.h.get(i, p.param, 0.0);
            let s = self.s.get(i, p.param, 0.0);
            Zip::from(&mut *p.param)
                .and(h)
                .and(s)
                .and(&*p.grad)
                .for_each(|w, h, s, &g| {
                    *h = rho * *h + (1.0 - rho) * g * g;
                    let delta = ((*s + eps).sqrt() / (*h + eps).sqrt()) * g;
                    *s = rho * *s + (1.0 - rho) * delta * delta;
                    *w -= delta;
                });
        }
    }
}

/// m ← β₁ m + (1 − β₁) g; v ← β₂ v + (1 − β₂) g²; W ← W − α m̂ / (√v̂ + ε) with
/// m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ) (bias correction for the zero start).
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    t: i32,
    m: Slots,
    v: Slots,
}

impl Optimizer for Adam {
    fn lr_mut(&mut self) -> Option<&mut f32> {
        Some(&mut self.lr)
    }

    fn step(&mut self, params: Vec<ParamGrad<'_>>) {
        self.t += 1;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        let lr = self.lr;
        for (i, p) in params.into_iter().enumerate() {
            let m = self.m.get(i, p.param, 0.0);
            let v = self.v.get(i, p.param, 0.0);
            Zip::from(&mut *p.param)
                .and(m)
                .and(v)
                .and(&*p.grad)
                .for_each(|w, m, v, &g| {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *w -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                });
        }
    }
}

pub fn build(spec: &OptimizerSpec) -> Box<dyn Optimizer> {
    match *spec {
        OptimizerSpec::Sgd { lr } => Box::new(Sgd { lr }),
        OptimizerSpec::Momentum { lr, momentum } => Box::new(Momentum {
            lr,
            momentum,
            v: Slots::default(),
        }),
        OptimizerSpec::AdaGrad { lr, h0 } => Box::new(AdaGrad {
            lr,
            h0,
            h: Slots::default(),
        }),
        OptimizerSpec::RmsProp { lr, rho, eps } => Box::new(RmsProp {
            lr,
            rho,
            eps,
            h: Slots::default(),
        }),
        OptimizerSpec::AdaDelta { rho, eps } => Box::new(AdaDelta {
            rho,
            eps,
            h: Slots::default(),
            s: Slots::default(),
        }),
        OptimizerSpec::Adam {
            lr,
            beta1,
            beta2,
            eps,
        } => Box::new(Adam {
            lr,
            beta1,
            beta2,
            eps,
            t: 0,
            m: Slots::default(),
            v: Slots::default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Runs `steps` updates of a one-element parameter with constant gradient `g`.
    fn run(spec: OptimizerSpec, g: f32, steps: usize) -> Vec<f32> {
        let mut opt = build(&spec);
        let mut w = array![[1.0f32]];
        let mut grad = array![[g]];
        (0..steps)
            .map(|_| {
                opt.step(vec![ParamGrad {
                    param: &mut w,
                    grad: &mut grad,
                    is_weight: true,
                }]);
                w[[0, 0]]
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5 * y.abs().max(1.0), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn sgd_steps_against_the_gradient() {
        close(&run(OptimizerSpec::Sgd { lr: 0.5 }, 0.5, 2), &[0.75, 0.5]);
    }

    // The expected values below are the update rules worked by hand for g = 0.5.

    #[test]
    fn momentum_accumulates_velocity() {
        // v1 = -0.05, w = 0.95; v2 = 0.9·(-0.05) - 0.05 = -0.095, w = 0.855
        let spec = OptimizerSpec::Momentum {
            lr: 0.1,
            momentum: 0.9,
        };
        close(&run(spec, 0.5, 2), &[0.95, 0.855]);
    }

    #[test]
    fn adagrad_shrinks_its_steps() {
        // h1 = 0.25 (+h0), step 0.1·0.5/0.5 = 0.1; h2 = 0.5, step 0.05/√0.5
        let spec = OptimizerSpec::AdaGrad { lr: 0.1, h0: 1e-8 };
        close(&run(spec, 0.5, 2), &[0.9, 0.9 - 0.05 / 0.5f32.sqrt()]);
    }

    #[test]
    fn rmsprop_uses_a_decaying_average() {
        // h1 = 0.1·0.25 = 0.025, step 0.01·0.5/√0.025
        let spec = OptimizerSpec::RmsProp {
            lr: 0.01,
            rho: 0.9,
            eps: 1e-8,
        };
        close(&run(spec, 0.5, 1), &[1.0 - 0.005 / 0.025f32.sqrt()]);
    }

    #[test]
    fn adadelta_step_is_the_ratio_of_running_averages() {
        // h1 = 0.05·0.25 = 0.0125; Δ = √1e-6/√(0.0125+1e-6)·0.5
        let spec = OptimizerSpec::AdaDelta {
            rho: 0.95,
            eps: 1e-6,
        };
        let delta = (1e-6f32).sqrt() / (0.0125f32 + 1e-6).sqrt() * 0.5;
        close(&run(spec, 0.5, 1), &[1.0 - delta]);
    }

    #[test]
    fn adam_first_step_is_the_learning_rate() {
        // With bias correction m̂ = g, v̂ = g², so every step is α·g/|g| = α.
        let spec = OptimizerSpec::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        close(&run(spec, 0.5, 3), &[0.99, 0.98, 0.97]);
    }

    /// Every optimiser (the course's settings; AdaGrad with a larger η) walks down
    /// f(w) = ½‖w − 3‖².
    #[test]
    fn every_optimizer_minimises_a_quadratic() {
        let specs = [
            OptimizerSpec::Sgd { lr: 0.01 },
            OptimizerSpec::Momentum {
                lr: 0.01,
                momentum: 0.9,
            },
            OptimizerSpec::AdaGrad { lr: 0.5, h0: 1e-8 },
            OptimizerSpec::RmsProp {
                lr: 0.01,
                rho: 0.9,
                eps: 1e-8,
            },
            OptimizerSpec::AdaDelta {
                rho: 0.95,
                eps: 1e-6,
            },
            OptimizerSpec::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
        ];
        for spec in specs {
            let mut opt = build(&spec);
            let mut w = array![[0.0f32, 6.0]];
            let start = (&w - 3.0).mapv(|d| d * d).sum();
            for _ in 0..1000 {
                let mut g = &w - 3.0;
                opt.step(vec![ParamGrad {
                    param: &mut w,
                    grad: &mut g,
                    is_weight: true,
                }]);
            }
            let end = (&w - 3.0).mapv(|d| d * d).sum();
            // AdaDelta starts with steps of about √ε and is by far the slowest here.
            assert!(end < 0.9 * start, "{spec:?}: {start} → {end}");
        }
    }
}
