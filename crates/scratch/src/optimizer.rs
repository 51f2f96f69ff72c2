//! Parameter updates from gradients.

use crate::layers::ParamGrad;
use crate::spec::OptimizerSpec;

pub trait Optimizer {
    /// Updates every parameter from its gradient. `params` come in the same order on
    /// every call, so stateful optimisers can key their state by position.
    fn step(&mut self, params: Vec<ParamGrad<'_>>);
}

/// Plain stochastic gradient descent: W ← W − η ∂L/∂W.
pub struct Sgd {
    pub lr: f32,
}

impl Optimizer for Sgd {
    fn step(&mut self, params: Vec<ParamGrad<'_>>) {
        for p in params {
            p.param.scaled_add(-self.lr, p.grad);
        }
    }
}

pub fn build(spec: &OptimizerSpec) -> Box<dyn Optimizer> {
    match *spec {
        OptimizerSpec::Sgd { lr } => Box::new(Sgd { lr }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn sgd_steps_against_the_gradient() {
        let mut w = array![[1.0f32, 2.0]];
        let g = array![[0.5f32, -1.0]];
        let mut sgd = Sgd { lr: 0.5 };
        for _ in 0..2 {
            sgd.step(vec![ParamGrad {
                param: &mut w,
                grad: &g,
            }]);
        }
        assert_eq!(w, array![[0.5f32, 3.0]]);
    }
}
