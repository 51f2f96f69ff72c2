//! L2 weight decay and L1 regularisation (the lecture on regularisation): a penalty on
//! the weight matrices added to the loss, and its gradient added to theirs.
//!
//! L2: λ/2 Σ W² (gradient λW) pulls weights towards zero in proportion to their size;
//! L1: λ Σ |W| (gradient λ sign W) pushes every weight towards zero by the same amount,
//! which drives many exactly to zero. Biases and BatchNorm's γ, β are not penalised.

use crate::layers::ParamGrad;
use crate::spec::Regularization;

/// Adds the penalty's gradient to every weight's gradient; returns the penalty.
pub fn apply(reg: &Regularization, params: &mut [ParamGrad<'_>]) -> f32 {
    if reg.l1 == 0.0 && reg.l2 == 0.0 {
        return 0.0;
    }
    let mut penalty = 0.0f64;
    for p in params.iter_mut().filter(|p| p.is_weight) {
        if reg.l2 != 0.0 {
            penalty += 0.5 * reg.l2 as f64 * p.param.iter().map(|w| (w * w) as f64).sum::<f64>();
            p.grad.scaled_add(reg.l2, p.param);
        }
        if reg.l1 != 0.0 {
            penalty += reg.l1 as f64 * p.param.iter().map(|w| w.abs() as f64).sum::<f64>();
            p.grad
                .zip_mut_with(p.param, |g, &w| *g += reg.l1 * w.signum());
        }
    }
    penalty as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn penalty_gradient_matches_numerical_differentiation() {
        let reg = Regularization { l2: 0.3, l1: 0.2 };
        let w0 = array![[0.5f32, -1.5], [2.0, -0.25]];
        let penalty_of = |w: &ndarray::Array2<f32>| {
            let mut w = w.clone();
            let mut g = ndarray::Array2::zeros(w.raw_dim());
            apply(
                &reg,
                &mut [ParamGrad {
                    param: &mut w,
                    grad: &mut g,
                    is_weight: true,
                }],
            )
        };
        let mut w = w0.clone();
        let mut grad = ndarray::Array2::zeros(w.raw_dim());
        let penalty = apply(
            &reg,
            &mut [ParamGrad {
                param: &mut w,
                grad: &mut grad,
                is_weight: true,
            }],
        );
        // 0.15·(0.25+2.25+4+0.0625) + 0.2·(0.5+1.5+2+0.25)
        assert!((penalty - (0.15 * 6.5625 + 0.2 * 4.25)).abs() < 1e-5);
        let h = 1e-3f32;
        for i in 0..4 {
            let mut plus = w0.clone();
            plus.as_slice_mut().unwrap()[i] += h;
            let mut minus = w0.clone();
            minus.as_slice_mut().unwrap()[i] -= h;
            let numeric = (penalty_of(&plus) - penalty_of(&minus)) / (2.0 * h);
            let analytic = grad.as_slice().unwrap()[i];
            assert!(
                (numeric - analytic).abs() < 1e-2,
                "{i}: {numeric} vs {analytic}"
            );
        }
    }

    #[test]
    fn biases_are_not_penalised() {
        let reg = Regularization { l2: 1.0, l1: 1.0 };
        let mut b = array![[3.0f32]];
        let mut g = array![[0.0f32]];
        let penalty = apply(
            &reg,
            &mut [ParamGrad {
                param: &mut b,
                grad: &mut g,
                is_weight: false,
            }],
        );
        assert_eq!((penalty, g[[0, 0]]), (0.0, 0.0));
    }
}
