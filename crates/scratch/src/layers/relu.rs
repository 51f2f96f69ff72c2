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
    use crate::gradcheck::check_input_grad;
    use ndarray::array;

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
}
