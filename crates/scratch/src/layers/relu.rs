//! y = max(0, x); the gradient passes where x > 0 (at exactly 0 it is taken as 0).

use ndarray::{Array2, Zip};

use super::{Layer, Mode};

#[derive(Default)]
pub struct Relu {
    /// Where the input was positive.
    mask: Array2<bool>,
}

impl Layer for Relu {
    fn forward(&mut self, x: &Array2<f32>, _mode: Mode) -> Array2<f32> {
        self.mask = x.mapv(|v| v > 0.0);
        x.mapv(|v| v.max(0.0))
    }

    fn backward(
        &mut self,
        _x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        need_dx.then(|| {
            Zip::from(dout)
                .and(&self.mask)
                .map_collect(|&d, &m| if m { d } else { 0.0 })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{Shape, check_against_reference, check_input_grad};
    use ndarray::array;
    use rand::SeedableRng;

    #[test]
    fn kink_at_zero_passes_no_gradient() {
        let mut relu = Relu::default();
        let y = relu.forward(&array![[-1.0f32, 0.0, 2.0]], Mode::Train);
        assert_eq!(y, array![[0.0f32, 0.0, 2.0]]);
        let dx = relu
            .backward(
                &array![[-1.0f32, 0.0, 2.0]],
                &array![[5.0f32, 5.0, 5.0]],
                true,
            )
            .unwrap();
        assert_eq!(dx, array![[0.0f32, 0.0, 5.0]]);
    }

    #[test]
    fn gradient_matches_numerical_differentiation() {
        // Random inputs stay away from the kink by more than the difference step.
        check_input_grad(&mut Relu::default(), (4, 6), 8);
    }

    #[test]
    fn gradient_next_to_the_kink_matches_f64_differences() {
        // Inputs 1e-4 either side of 0: the f64 check's step (1e-6) does not cross the
        // kink, so the derivative on each side (0 and 1) is what is checked.
        let x = array![
            [1e-4f32, -1e-4, 0.5, -0.5, 2e-4, -3e-4],
            [-1.5, 1.5, 1e-4, -1e-4, 0.25, -0.25]
        ];
        let reference =
            |x: &[f64], _: &[Vec<f64>], _: Shape| x.iter().map(|&v| v.max(0.0)).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        check_against_reference(&mut Relu::default(), &x, &reference, &mut rng);
    }
}
