//! Dropout (the course's A2), inverted: in training each input is kept with probability
//! 1 − ρ and scaled by 1/(1 − ρ); at test time the layer is the identity. The course
//! instead multiplies by (1 − ρ) at test time; both give the same expected activation,
//! and inverted dropout leaves inference untouched.

use ndarray::{Array2, Zip};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Layer, Mode};

pub struct Dropout {
    /// ρ: the probability of dropping an input.
    pub ratio: f32,
    rng: StdRng,
    /// 0 where dropped, 1/(1 − ρ) where kept: forward and backward multiply by it.
    mask: Array2<f32>,
    /// Reuse the last mask instead of drawing a new one (gradient checks need a fixed
    /// mask).
    frozen: bool,
}

impl Dropout {
    pub fn new(ratio: f32, seed: u64) -> Self {
        assert!(
            (0.0..1.0).contains(&ratio),
            "dropout ratio must be in [0, 1)"
        );
        Self {
            ratio,
            rng: StdRng::seed_from_u64(seed),
            mask: Array2::zeros((0, 0)),
            frozen: false,
        }
    }

    #[cfg(test)]
    fn freeze_mask(&mut self) {
        self.frozen = true;
    }
}

impl Layer for Dropout {
    fn forward(&mut self, x: &Array2<f32>, mode: Mode) -> Array2<f32> {
        if mode == Mode::Eval {
            return x.clone();
        }
        if !(self.frozen && self.mask.dim() == x.dim()) {
            let keep = 1.0 - self.ratio;
            let scale = 1.0 / keep;
            let rng = &mut self.rng;
            self.mask = Array2::from_shape_simple_fn(x.dim(), || {
                if rng.random::<f32>() < keep {
                    scale
                } else {
                    0.0
                }
            });
        }
        x * &self.mask
    }

    fn backward(
        &mut self,
        _x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        need_dx.then(|| Zip::from(dout).and(&self.mask).map_collect(|&d, &m| d * m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{Shape, check_against_reference_random, check_input_grad};

    #[test]
    fn drops_about_rho_and_keeps_the_expected_value() {
        let mut layer = Dropout::new(0.3, 1);
        let x = Array2::from_elem((100, 100), 1.0f32);
        let y = layer.forward(&x, Mode::Train);
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f32 / 10_000.0;
        assert!((dropped - 0.3).abs() < 0.02, "dropped {dropped}");
        assert!((y.mean().unwrap() - 1.0).abs() < 0.03);
        assert_eq!(layer.forward(&x, Mode::Eval), x);
    }

    #[test]
    fn gradient_with_a_fixed_mask_matches_numerical_differentiation() {
        let mut layer = Dropout::new(0.5, 2);
        layer.freeze_mask();
        check_input_grad(&mut layer, (4, 7), 3);
        // The reference multiplies by the frozen mask, read off as the layer's output for
        // an input of ones (kept / (1 − ρ) or dropped: the inverted convention).
        let mask: Vec<f64> = layer
            .forward(&Array2::ones((4, 7)), Mode::Train)
            .iter()
            .map(|&m| m as f64)
            .collect();
        assert!(mask.contains(&0.0) && mask.contains(&2.0));
        let reference =
            |x: &[f64], _: &[Vec<f64>], _: Shape| x.iter().zip(&mask).map(|(v, m)| v * m).collect();
        check_against_reference_random(&mut layer, (4, 7), &reference, 4);
    }
}
