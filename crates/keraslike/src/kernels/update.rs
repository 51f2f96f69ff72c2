//! The fused optimiser updates flex runs in place: one pass over a parameter, its gradient
//! and the optimiser's two accumulators, on plain slices.

use rayon::prelude::*;

/// The update rules [`FlexKernels::fused_update`] runs, with this step's constants (the
/// rules themselves: [`crate::optimizer::Optimizer`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FusedUpdate {
    /// a = E[g²], b = E[Δ²].
    Adadelta { lr: f32, rho: f32, epsilon: f32 },
    /// a = m, b = v; `alpha` is the step's bias-corrected rate lr·√(1−β₂ᵗ)/(1−β₁ᵗ).
    Adam {
        alpha: f32,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
    },
}

/// A [`FusedUpdate`] rule for every value at once, in place; rayon splits long tensors.
/// `a` and `b` are the rule's two accumulators (Adam: m, v; Adadelta: E[g²], E[Δ²]).
pub fn update_in_place(
    param: &mut [f32],
    grad: &[f32],
    a: &mut [f32],
    b: &mut [f32],
    rule: FusedUpdate,
) {
    const CHUNK: usize = 1 << 16;
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(a.par_chunks_mut(CHUNK))
        .zip(b.par_chunks_mut(CHUNK))
        .for_each(|(((w, g), a), b)| {
            let values = w.iter_mut().zip(g).zip(a).zip(b);
            match rule {
                FusedUpdate::Adadelta { lr, rho, epsilon } => {
                    for (((w, &g), eg), ed) in values {
                        *eg = rho * *eg + (1.0 - rho) * g * g;
                        let delta = (*ed + epsilon).sqrt() / (*eg + epsilon).sqrt() * g;
                        *ed = rho * *ed + (1.0 - rho) * delta * delta;
                        *w -= lr * delta;
                    }
                }
                FusedUpdate::Adam {
                    alpha,
                    beta_1,
                    beta_2,
                    epsilon,
                } => {
                    for (((w, &g), m), v) in values {
                        *m += (g - *m) * (1.0 - beta_1);
                        *v += (g * g - *v) * (1.0 - beta_2);
                        *w -= alpha * *m / (v.sqrt() + epsilon);
                    }
                }
            }
        });
}
