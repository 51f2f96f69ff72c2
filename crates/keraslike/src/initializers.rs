//! Keras's weight initialisers, by their Keras names, for the layers keraslike builds.
//!
//! burn's `Conv2dConfig` and `LinearConfig` default to PyTorch's initialisation (uniform
//! with bound 1/√fan_in, biases too); Keras's Conv2D and Dense start from
//! `glorot_uniform` kernels and zero biases. The difference is not cosmetic: on held-out
//! face photos it was worth 8-10 points of test accuracy after the course's 10 epochs.
//!
//! The formulas are Keras 3's (`keras/src/initializers/random_initializers.py`):
//! variance scaling with `n` = fan_in, fan_out or their mean, uniform on ±√(3·scale/n), or
//! a normal truncated at two standard deviations whose standard deviation after truncation
//! is √(scale/n) (hence the division by 0.8796…, the std of a standard normal truncated
//! at ±2).

use burn::module::{Param, ParamId};
use burn::tensor::{Device, Distribution, Shape, Tensor};
use serde::{Deserialize, Serialize};

/// A Keras initialiser name, as `kernel_initializer = "he_normal"` in a model TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initializer {
    /// U(±√(6 / (fan_in + fan_out))): Keras's default for Conv2D, Conv2DTranspose, Dense.
    GlorotUniform,
    /// Truncated normal, std √(2 / (fan_in + fan_out)).
    GlorotNormal,
    /// U(±√(6 / fan_in)).
    HeUniform,
    /// Truncated normal, std √(2 / fan_in).
    HeNormal,
    /// U(±√(3 / fan_in)).
    LecunUniform,
    /// Truncated normal, std √(1 / fan_in).
    LecunNormal,
    /// N(0, 0.05²) (Keras's `RandomNormal()`).
    RandomNormal,
    /// U(±0.05) (Keras's `RandomUniform()`).
    RandomUniform,
    /// N(0, 0.05²) truncated at ±0.1 (Keras's `TruncatedNormal()`: 0.05 is the std before
    /// truncation, as in TensorFlow's `truncated_normal`; about 0.044 after).
    TruncatedNormal,
    /// Keras's default for biases.
    Zeros,
    Ones,
}

/// The numbers of inputs and outputs a weight connects, as Keras counts them: a Dense
/// kernel's input and output sizes; a convolution kernel's channels times its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fans {
    pub fan_in: usize,
    pub fan_out: usize,
}

/// The standard deviation of N(0, 1) truncated to [-2, 2].
const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;

/// Keras's default standard deviation / bound of the plain random initialisers.
const RANDOM_SCALE: f64 = 0.05;

enum Sampling {
    Constant(f64),
    Uniform { limit: f64 },
    Normal { std: f64 },
    TruncatedNormal { std: f64 },
}

impl Initializer {
    fn sampling(self, fans: Fans) -> Sampling {
        let Fans { fan_in, fan_out } = fans;
        let fan_in = fan_in.max(1) as f64;
        let fan_avg = ((fans.fan_in + fan_out) as f64 / 2.0).max(1.0);
        // Keras's VarianceScaling(scale, mode, distribution).
        let uniform = |scale: f64, n: f64| Sampling::Uniform {
            limit: (3.0 * scale / n).sqrt(),
        };
        let truncated = |scale: f64, n: f64| Sampling::TruncatedNormal {
            std: (scale / n).sqrt() / TRUNCATED_STD,
        };
        match self {
            Initializer::GlorotUniform => uniform(1.0, fan_avg),
            Initializer::GlorotNormal => truncated(1.0, fan_avg),
            Initializer::HeUniform => uniform(2.0, fan_in),
            Initializer::HeNormal => truncated(2.0, fan_in),
            Initializer::LecunUniform => uniform(1.0, fan_in),
            Initializer::LecunNormal => truncated(1.0, fan_in),
            Initializer::RandomNormal => Sampling::Normal { std: RANDOM_SCALE },
            Initializer::RandomUniform => Sampling::Uniform {
                limit: RANDOM_SCALE,
            },
            Initializer::TruncatedNormal => Sampling::TruncatedNormal { std: RANDOM_SCALE },
            Initializer::Zeros => Sampling::Constant(0.0),
            Initializer::Ones => Sampling::Constant(1.0),
        }
    }

    /// A fresh tensor of `shape` drawn from this initialiser (from the device's seeded
    /// generator).
    pub fn tensor<const D: usize>(
        self,
        shape: [usize; D],
        fans: Fans,
        device: &Device,
    ) -> Tensor<D> {
        match self.sampling(fans) {
            Sampling::Constant(v) => Tensor::full(shape, v, device),
            Sampling::Uniform { limit } => {
                Tensor::random(shape, Distribution::Uniform(-limit, limit), device)
            }
            Sampling::Normal { std } => {
                Tensor::random(shape, Distribution::Normal(0.0, std), device)
            }
            Sampling::TruncatedNormal { std } => truncated_normal(shape, device).mul_scalar(std),
        }
    }

    /// A parameter initialised on first use, as burn's own layers do (so that building a
    /// model only to load saved weights into it draws nothing).
    pub fn param<const D: usize>(
        self,
        shape: [usize; D],
        fans: Fans,
        device: &Device,
    ) -> Param<Tensor<D>> {
        Param::uninitialized(
            ParamId::new(),
            move |device, require_grad| {
                let tensor = self.tensor(shape, fans, device);
                if require_grad {
                    tensor.require_grad()
                } else {
                    tensor
                }
            },
            device.clone(),
            true,
            Shape::from(shape),
        )
    }
}

/// N(0, 1) truncated to [-2, 2] by redrawing the values outside, as TensorFlow's
/// `truncated_normal` does. Each round keeps 95.4% of what it redraws, so a handful of
/// rounds leave nothing outside.
fn truncated_normal<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    let mut x = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), device);
    loop {
        let outside = x.clone().abs().greater_elem(2.0);
        if !outside.clone().any().into_scalar::<bool>() {
            return x;
        }
        let fresh = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), device);
        x = x.mask_where(outside, fresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 values")
            .into_iter()
            .map(f64::from)
            .collect()
    }

    fn mean_and_std(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// Each random initialiser, over 40,000 draws (a 3×3 kernel from 64 to 128 channels
    /// plus change), has Keras's bound or standard deviation for the fans it was given:
    /// within 2% of the std, and never past a uniform bound or two truncated stds.
    #[test]
    fn random_initialisers_have_kerass_spread_for_the_fans() {
        let device = Device::flex();
        device.seed(11);
        let fans = Fans {
            fan_in: 3 * 3 * 64,
            fan_out: 3 * 3 * 128,
        };
        let (fi, fo) = (fans.fan_in as f64, fans.fan_out as f64);
        let shape = [128, 64, 3, 3];
        let sqrt3 = 3f64.sqrt();
        // (initialiser, bound if uniform else None, expected std)
        let cases = [
            (
                Initializer::GlorotUniform,
                Some((6.0 / (fi + fo)).sqrt()),
                None,
            ),
            (Initializer::HeUniform, Some((6.0 / fi).sqrt()), None),
            (Initializer::LecunUniform, Some((3.0 / fi).sqrt()), None),
            (Initializer::RandomUniform, Some(0.05), None),
            (
                Initializer::GlorotNormal,
                None,
                Some((2.0 / (fi + fo)).sqrt()),
            ),
            (Initializer::HeNormal, None, Some((2.0 / fi).sqrt())),
            (Initializer::LecunNormal, None, Some((1.0 / fi).sqrt())),
            (
                Initializer::TruncatedNormal,
                None,
                Some(0.05 * TRUNCATED_STD),
            ),
        ];
        for (init, bound, std) in cases {
            let v = values(init.tensor(shape, fans, &device));
            assert_eq!(v.len(), 128 * 64 * 9);
            let (mean, sd) = mean_and_std(&v);
            let max = v.iter().fold(0f64, |m, x| m.max(x.abs()));
            match (bound, std) {
                (Some(limit), _) => {
                    assert!(max <= limit * (1.0 + 1e-6), "{init:?}: {max} > {limit}");
                    assert!(max > limit * 0.99, "{init:?}: max {max} far inside {limit}");
                    let want = limit / sqrt3;
                    assert!(
                        (sd / want - 1.0).abs() < 0.02,
                        "{init:?}: std {sd}, want {want}"
                    );
                }
                (None, Some(want)) => {
                    assert!(
                        (sd / want - 1.0).abs() < 0.02,
                        "{init:?}: std {sd}, want {want}"
                    );
                    // Truncated at two standard deviations of the untruncated normal.
                    let cut = 2.0 * want / TRUNCATED_STD;
                    assert!(max <= cut * (1.0 + 1e-5), "{init:?}: {max} past {cut}");
                    assert!(max > cut * 0.95, "{init:?}: nothing near the cut {cut}");
                }
                _ => unreachable!(),
            }
            // The mean of 73,728 draws is within 0.004 std of 0: allow five times that.
            assert!(mean.abs() < 0.02 * sd, "{init:?}: mean {mean}");
        }
        let plain = values(Initializer::RandomNormal.tensor(shape, fans, &device));
        let (_, sd) = mean_and_std(&plain);
        assert!((sd / 0.05 - 1.0).abs() < 0.02, "random_normal std {sd}");
        assert!(
            plain.iter().any(|x| x.abs() > 2.0 * 0.05),
            "an untruncated normal has tails"
        );
    }

    #[test]
    fn constants_are_exact() {
        let device = Device::flex();
        let fans = Fans {
            fan_in: 3,
            fan_out: 4,
        };
        assert!(
            values(Initializer::Zeros.tensor([5], fans, &device))
                .iter()
                .all(|&x| x == 0.0)
        );
        assert!(
            values(Initializer::Ones.tensor([2, 3], fans, &device))
                .iter()
                .all(|&x| x == 1.0)
        );
    }

    #[test]
    fn names_are_kerass() {
        #[derive(Deserialize)]
        struct Layer {
            init: Initializer,
        }
        let parse = |s: &str| toml::from_str::<Layer>(&format!("init = \"{s}\"")).map(|l| l.init);
        assert_eq!(parse("glorot_uniform").unwrap(), Initializer::GlorotUniform);
        assert_eq!(parse("he_normal").unwrap(), Initializer::HeNormal);
        assert_eq!(parse("lecun_normal").unwrap(), Initializer::LecunNormal);
        assert_eq!(parse("zeros").unwrap(), Initializer::Zeros);
        assert!(parse("xavier").is_err());
    }

    #[test]
    fn a_lazy_parameter_draws_on_first_use_with_the_shape_it_promised() {
        let device = Device::flex();
        device.seed(5);
        let p = Initializer::HeUniform.param(
            [4, 3],
            Fans {
                fan_in: 4,
                fan_out: 3,
            },
            &device,
        );
        assert_eq!(p.shape().dims::<2>(), [4, 3]);
        let v = values(p.val());
        let limit = (6.0f64 / 4.0).sqrt();
        assert!(v.iter().all(|x| x.abs() <= limit) && v.iter().any(|&x| x != 0.0));
    }
}
