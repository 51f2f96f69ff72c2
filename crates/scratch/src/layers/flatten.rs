//! Flatten: images to feature vectors. A row already holds an image's values in
//! channels-last order, which is the order the next affine layer reads, so this layer
//! only marks the change of shape in the network description.

use ndarray::Array2;

use super::{Layer, Mode};

pub struct Flatten;

impl Layer for Flatten {
    fn forward(&mut self, x: &Array2<f32>, _mode: Mode) -> Array2<f32> {
        x.clone()
    }

    fn backward(
        &mut self,
        _x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        need_dx.then(|| dout.clone())
    }
}
