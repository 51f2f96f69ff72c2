//! Max pooling (the course's A7): each output is the largest value in its size × size
//! window, per channel; backward routes each gradient to the input that was the maximum.

use ndarray::{Array2, Zip};

use super::im2col::Window;
use super::{Layer, Mode};

pub struct MaxPool {
    pub window: Window,
    /// For every output value of the last forward: the index (within its image) of the
    /// input value it came from.
    argmax: Array2<u32>,
}

impl MaxPool {
    pub fn new(window: Window) -> Self {
        assert_eq!(window.pad, 0, "pooling windows are not padded");
        Self {
            window,
            argmax: Array2::zeros((0, 0)),
        }
    }

    fn output_len(&self) -> usize {
        self.window.positions() * self.window.channels
    }
}

impl Layer for MaxPool {
    fn forward(&mut self, x: &Array2<f32>, _mode: Mode) -> Array2<f32> {
        let w = self.window;
        let n = x.nrows();
        let mut out = Array2::from_elem((n, self.output_len()), f32::NEG_INFINITY);
        if self.argmax.dim() != out.dim() {
            self.argmax = Array2::zeros(out.dim());
        }
        let c = w.channels;
        Zip::from(out.rows_mut())
            .and(self.argmax.rows_mut())
            .and(x.rows())
            .par_for_each(|mut out, mut arg, image| {
                for oy in 0..w.out_height {
                    for ox in 0..w.out_width {
                        let o = (oy * w.out_width + ox) * c;
                        // Channels are contiguous: scan the window pixel by pixel, all
                        // channels at once. The first maximum wins ties.
                        for ry in 0..w.size {
                            for rx in 0..w.size {
                                let i =
                                    ((oy * w.stride + ry) * w.in_width + ox * w.stride + rx) * c;
                                for ch in 0..c {
                                    if image[i + ch] > out[o + ch] {
                                        out[o + ch] = image[i + ch];
                                        arg[o + ch] = (i + ch) as u32;
                                    }
                                }
                            }
                        }
                    }
                }
            });
        out
    }

    fn backward(
        &mut self,
        x: &Array2<f32>,
        dout: &Array2<f32>,
        need_dx: bool,
    ) -> Option<Array2<f32>> {
        need_dx.then(|| {
            let mut dx = Array2::zeros(x.raw_dim());
            Zip::from(dx.rows_mut())
                .and(dout.rows())
                .and(self.argmax.rows())
                .par_for_each(|mut dx, dout, arg| {
                    for (&d, &i) in dout.iter().zip(arg) {
                        dx[i as usize] += d;
                    }
                });
            dx
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{Shape, check_against_reference, check_input_grad_at};
    use ndarray::{Array2, array};
    use rand::SeedableRng;
    use rand::seq::SliceRandom;

    #[test]
    fn picks_each_windows_maximum_per_channel() {
        // 2×2 image, 2 channels (channels-last): channel 0 = 1 5 3 2, channel 1 = 8 0 4 9.
        let x = array![[1.0f32, 8.0, 5.0, 0.0, 3.0, 4.0, 2.0, 9.0]];
        let mut pool = MaxPool::new(Window::new((2, 2, 2), 2, 2, 0).unwrap());
        let y = pool.forward(&x, Mode::Train);
        assert_eq!(y, array![[5.0f32, 9.0]]);
        let dx = pool.backward(&x, &array![[10.0f32, 20.0]], true).unwrap();
        assert_eq!(dx, array![[0.0f32, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 20.0]]);
    }

    #[test]
    fn gradient_matches_numerical_differentiation() {
        // Distinct values 0.1 apart, shuffled: the maximum cannot change under the
        // check's 0.01 step (at a tie the function has no derivative). Overlapping
        // windows (stride < size) accumulate.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (input, size, stride) in [((4, 4, 2), 2, 2), ((5, 5, 3), 3, 2), ((4, 6, 1), 2, 1)] {
            let mut pool = MaxPool::new(Window::new(input, size, stride, 0).unwrap());
            let n = 3 * input.0 * input.1 * input.2;
            let mut values: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
            values.shuffle(&mut rng);
            let x = Array2::from_shape_vec((3, n / 3), values).unwrap();
            check_input_grad_at(&mut pool, &x, &mut rng);
            let window = pool.window;
            check_against_reference(&mut pool, &x, &reference(window), &mut rng);
        }
    }

    /// Each window's maximum per channel, in f64, from the definition.
    fn reference(w: Window) -> impl Fn(&[f64], &[Vec<f64>], Shape) -> Vec<f64> {
        move |x, _, _| {
            let c = w.channels;
            let mut y = Vec::new();
            for image in x.chunks(w.input_len()) {
                for oy in 0..w.out_height {
                    for ox in 0..w.out_width {
                        for ch in 0..c {
                            let mut max = f64::NEG_INFINITY;
                            for ry in 0..w.size {
                                for rx in 0..w.size {
                                    let (iy, ix) = (oy * w.stride + ry, ox * w.stride + rx);
                                    max = max.max(image[(iy * w.in_width + ix) * c + ch]);
                                }
                            }
                            y.push(max);
                        }
                    }
                }
            }
            y
        }
    }

    #[test]
    fn gradient_next_to_a_tie_matches_f64_differences() {
        // Window maxima only 1e-4 above the runner-up: the f64 step (1e-6) does not
        // change which value wins, so the gradient still goes to the maximum alone.
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut pool = MaxPool::new(Window::new((4, 4, 1), 2, 2, 0).unwrap());
        let x = Array2::from_shape_fn((2, 16), |(n, i)| {
            let (r, c) = (i / 4, i % 4);
            let window = (r / 2) * 2 + c / 2;
            // Each window holds v, v − 1e-4 and two smaller values.
            let v = (n * 4 + window) as f32 * 0.5;
            match (r % 2, c % 2) {
                (0, 0) => v,
                (0, 1) => v - 1e-4,
                _ => v - 1.0,
            }
        });
        let window = pool.window;
        check_against_reference(&mut pool, &x, &reference(window), &mut rng);
    }
}
