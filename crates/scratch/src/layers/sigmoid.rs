//! y = 1 / (1 + e^-x), elementwise; dy/dx = y (1 - y).

use ndarray::{Array2, Zip};

use super::{Layer, Mode};

#[derive(Default)]
pub struct Sigmoid {
    /// The last output, which is all the backward pass needs.
    y: Array2<f32>,
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Layer for Sigmoid {
    fn forward(&mut self, x: &Array2<f32>, _mode: Mode) -> Array2<f32> {
        let y = x.mapv(sigmoid);
        self.y = y.clone();
        y
    }

    fn backward(
        &mut self,
        _x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        need_dx.then(|| {
            Zip::from(dout)
                .and(&self.y)
                .map_collect(|&d, &y| d * y * (1.0 - y))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{Shape, check_against_reference_random, check_input_grad};
    use ndarray::array;

    #[test]
    fn three_layer_sigmoid_network_of_slide_11() {
        // Slides 004, p. 11: 2-3-2-2 network; x = [1.0, 0.5] gives [0.67948244, 0.7082739].
        let w1 = array![[0.1f32, 0.3, 0.5], [0.2, 0.4, 0.6]];
        let b1 = array![[0.1f32, 0.2, 0.3]];
        let w2 = array![[0.1f32, 0.3], [0.5, 0.2], [0.4, 0.6]];
        let b2 = array![[0.2f32, 0.3]];
        let w3 = array![[0.5f32, 0.2], [0.4, 0.6]];
        let b3 = array![[0.1f32, 0.3]];
        let mut net: Vec<Box<dyn Layer>> = vec![
            Box::new(crate::layers::Affine::new(w1, b1)),
            Box::new(Sigmoid::default()),
            Box::new(crate::layers::Affine::new(w2, b2)),
            Box::new(Sigmoid::default()),
            Box::new(crate::layers::Affine::new(w3, b3)),
            Box::new(Sigmoid::default()),
        ];
        let mut h = array![[1.0f32, 0.5]];
        for layer in &mut net {
            h = layer.forward(&h, Mode::Eval);
        }
        assert!((h[[0, 0]] - 0.679_482_4).abs() < 1e-6, "{h}");
        assert!((h[[0, 1]] - 0.708_273_9).abs() < 1e-6, "{h}");
    }

    #[test]
    fn workshop_example_z_values() {
        // Workshop 001: sig(W·x + b) = [0.574, 0.668, 0.750].
        let z = array![[0.3f32, 0.7, 1.1]].mapv(sigmoid);
        for (a, b) in z.iter().zip([0.574f32, 0.668, 0.750]) {
            assert!((a - b).abs() < 5e-4, "{z}");
        }
    }

    #[test]
    fn gradient_matches_numerical_differentiation() {
        check_input_grad(&mut Sigmoid::default(), (4, 6), 7);
        let reference = |x: &[f64], _: &[Vec<f64>], _: Shape| {
            x.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect()
        };
        check_against_reference_random(&mut Sigmoid::default(), (4, 6), &reference, 7);
    }
}
