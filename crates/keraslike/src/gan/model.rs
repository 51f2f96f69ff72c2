//! Exercise B3: a DCGAN (Radford et al. 2015) as the course's Algorithm 1 trains it.
//!
//! Generator: z ~ N(0, I) → dense to 128 × (H/4) × (W/4) → BatchNorm → ReLU → transposed
//! convolution 4×4 stride 2 to 64 channels → BatchNorm → ReLU → transposed convolution
//! 4×4 stride 2 to full size, with `refine` channels → BatchNorm → ReLU → transposed
//! convolution 3×3 to the image's channels (or, with `refine` 0, the 4×4 one straight to
//! the image's channels) → tanh. Discriminator: strided 4×4 convolutions (no pooling),
//! LeakyReLU 0.2 (each followed by dropout while training, `dropout` > 0), BatchNorm on
//! all but the input layer, one logit.
//!
//! One iteration: a discriminator step on B/2 real and B/2 generated images (targets 1
//! and 0), then a generator step on B fresh z with target 1 through the discriminator,
//! whose parameters do not change in that step (only the generator's gradients are
//! applied). The generator minimises −log D(G(z)) (the non-saturating loss).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid, softplus};
use burn::tensor::{Device, Tensor, TensorData};
use cli::write_png;
use dataset::DatasetChoice;
use dataset::output::write_atomic;

use crate::kernels::conv2d::conv2d;
use crate::kernels::dropout::Dropout;
use crate::kernels::flex;
use crate::saved_model::{card_path, load_weights, save_weights};
use serde::{Deserialize, Serialize};

use crate::lr_schedule::ScheduleKind;

/// Training settings, `configs/dcgan.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanConfig {
    /// d_n: the length of z.
    pub latent: usize,
    pub batch_size: usize,
    pub epochs: usize,
    /// Adam's learning rate, for both networks.
    pub lr: f64,
    /// Adam's β₁ (the DCGAN paper's 0.5; Adam's usual 0.9 makes GAN training oscillate).
    pub beta1: f32,
    pub seed: u64,
    /// PacGAN (Lin et al. 2018): the discriminator judges this many images at once,
    /// stacked as channels, all real or all generated. A generator that leaves some
    /// digits out makes packs that differ from real ones, so it is pushed to cover them.
    /// 1 is the plain DCGAN.
    pub pack: usize,
    /// The discriminator's target for real images: one-sided label smoothing (Salimans
    /// et al. 2016) below 1, which keeps D from growing over-confident. Generated images
    /// keep target 0, and the generator's own step target 1. 0.9 was measured and did
    /// not change the mix of digits (docs/BENCHMARKS.md), so the default is 1.
    pub real_target: f32,
    /// Channels of a last generator stage at full size (0: none). With it, the second
    /// transposed convolution makes this many channels (BatchNorm, ReLU) and a 3×3
    /// stride-1 transposed convolution maps them to the image, so strokes are drawn at
    /// full resolution rather than straight out of the 4×4 upsampling.
    pub refine: usize,
    /// Dropout after each of the discriminator's LeakyReLUs (as in TensorFlow's DCGAN
    /// tutorial; 0 = none). A discriminator that cannot lean on any single feature
    /// judges the whole mix of digits more evenly.
    pub dropout: f64,
    /// BatchNorm and dropout in training on keraslike's own kernels (one pass each way
    /// over the values, masks made in the kernel from the seed) instead of burn's ops:
    /// the epoch ~25% shorter on flex. The masks differ from burn's, so a seeded run
    /// follows another course than with burn's ops (docs/BENCHMARKS.md, the DCGAN: with
    /// seed 42 the default recipe then ends with 9s at 16%); off, the seeded run
    /// reproduces exactly.
    pub fused_kernels: bool,
    /// Both networks' learning rate by epoch, as `fit`'s (crate::lr_schedule): constant,
    /// exponential (× `lr_decay` over each epoch), step (× `lr_decay` every
    /// `lr_step_epochs`) or cosine (down to 0 over the run).
    pub lr_schedule: Option<ScheduleKind>,
    pub lr_decay: Option<f64>,
    pub lr_step_epochs: Option<usize>,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            latent: 100,
            batch_size: 128,
            epochs: 5,
            lr: 2e-4,
            beta1: 0.5,
            seed: 42,
            pack: 2,
            real_target: 1.0,
            refine: 32,
            dropout: 0.3,
            fused_kernels: false,
            lr_schedule: None,
            lr_decay: None,
            lr_step_epochs: None,
        }
    }
}

impl GanConfig {
    /// The discriminator's dropout for a run that has done `epochs_done` epochs. With
    /// [`GanConfig::fused_kernels`] its masks follow from the seed, and a continued run
    /// draws other ones than its start; else burn's layer draws them.
    pub fn dropout_layer(&self, epochs_done: usize) -> Dropout {
        if self.fused_kernels {
            Dropout::new(self.dropout, self.seed.wrapping_add(epochs_done as u64))
        } else {
            Dropout::burn(self.dropout)
        }
    }

    /// The ops the networks' BatchNorm layers train with.
    pub fn training_ops(&self) -> TrainingOps {
        if self.fused_kernels {
            TrainingOps::Fused
        } else {
            TrainingOps::Burn
        }
    }
}

/// Which ops BatchNorm trains with (see [`GanConfig::fused_kernels`]); the same either way
/// when judging or sampling, from the running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainingOps {
    #[default]
    Burn,
    Fused,
}

impl TrainingOps {
    fn batch_norm<const D: usize>(self, bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
        match self {
            TrainingOps::Burn => bn.forward(x),
            TrainingOps::Fused => flex::batch_norm(bn, x),
        }
    }
}

/// What a generator file needs beside its weights to be rebuilt: `generator.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorCard {
    pub latent: usize,
    /// [channels, height, width] of the images it makes.
    pub image: [usize; 3],
    /// Where the training images came from (mnist, fashion, cifar10, folder:DIR).
    pub dataset: DatasetChoice,
    /// Epochs trained.
    pub epochs: usize,
    /// The discriminator's pack size (see [`GanConfig::pack`]); 1 in older cards.
    #[serde(default = "unpacked")]
    pub pack: usize,
    /// The generator's full-size stage (see [`GanConfig::refine`]); 0 in older cards.
    #[serde(default)]
    pub refine: usize,
}

/// Cards written before packing existed: D judged single images.
fn unpacked() -> usize {
    1
}

#[derive(Module, Debug)]
pub struct Generator {
    project: Linear,
    bn0: BatchNorm,
    up1: ConvTranspose2d,
    bn1: BatchNorm,
    up2: ConvTranspose2d,
    /// With [`GanConfig::refine`]: BatchNorm after `up2`, and the 3×3 stage to the image.
    refine: Option<(BatchNorm, ConvTranspose2d)>,
    /// 128 × (H/4) × (W/4), the shape `project`'s output is viewed as.
    #[module(skip)]
    start: [usize; 3],
    #[module(skip)]
    ops: TrainingOps,
}

#[derive(Module, Debug)]
pub struct Discriminator {
    conv1: Conv2d,
    conv2: Conv2d,
    bn2: BatchNorm,
    out: Linear,
    /// After each LeakyReLU, in training only (see [`GanConfig::dropout`]).
    #[module(skip)]
    dropout: Dropout,
    /// Images judged together (see [`GanConfig::pack`]).
    #[module(skip)]
    pack: usize,
    #[module(skip)]
    ops: TrainingOps,
}

/// `up.forward(x)`, through keraslike's kernels on flex.
fn conv_transpose2d(up: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    flex::conv_transpose2d(up, &x).unwrap_or_else(|| up.forward(x))
}

/// Transposed convolution 4×4, stride 2, padding 1: doubles height and width.
fn upsample(channels: [usize; 2], device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new(channels, [4, 4])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .init(device)
}

/// Convolution 4×4, stride 2, padding 1: halves height and width.
fn downsample(channels: [usize; 2], device: &Device) -> Conv2d {
    Conv2dConfig::new(channels, [4, 4])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// Height and width must halve twice exactly (28 → 14 → 7, 32 → 16 → 8).
pub fn check_image_size(image: [usize; 3]) -> Result<()> {
    let [c, h, w] = image;
    if h % 4 != 0 || w % 4 != 0 || h < 8 || w < 8 || !(c == 1 || c == 3) {
        bail!(
            "the DCGAN needs 1- or 3-channel images whose height and width are multiples of 4 \
             (at least 8); these are {c}×{h}×{w}"
        );
    }
    Ok(())
}

/// Weights and biases of [`Generator::new`]'s layers, counted before anything is built.
pub fn generator_parameters(latent: usize, image: [usize; 3], refine: usize) -> u128 {
    let [c, h, w] = image.map(|d| d as u128);
    let (latent, refine) = (latent as u128, refine as u128);
    let start = 128 * (h / 4) * (w / 4);
    let last = if refine > 0 { refine } else { c };
    let mut n = (latent + 1) * start + 4 * 128; // project, bn0
    n += 128 * 64 * 16 + 64 + 4 * 64; // up1, bn1
    n += 64 * last * 16 + last; // up2
    if refine > 0 {
        n += 4 * refine + refine * c * 9 + c; // bn, to_image
    }
    n
}

/// Weights and biases of [`Discriminator::new`]'s layers.
pub fn discriminator_parameters(image: [usize; 3], pack: usize) -> u128 {
    let [c, h, w] = image.map(|d| d as u128);
    let pack = pack as u128;
    c * pack * 64 * 16 + 64 + 64 * 128 * 16 + 128 + 4 * 128 + 128 * (h / 4) * (w / 4) + 1
}

/// About what training takes: weights, gradients and Adam's two moments of both
/// networks, and one batch's activations kept for the backward passes (floats per image:
/// the generator's stages at 1/4, 1/2 and full size, the discriminator's at 1/2 and 1/4).
pub fn training_bytes(
    latent: usize,
    image: [usize; 3],
    refine: usize,
    pack: usize,
    batch: usize,
) -> u128 {
    let params =
        generator_parameters(latent, image, refine) + discriminator_parameters(image, pack);
    let [c, h, w] = image.map(|d| d as u128);
    let hw = h * w;
    let last = if refine > 0 { refine as u128 } else { c };
    let generator =
        latent as u128 + 3 * 128 * hw / 16 + 3 * 64 * hw / 4 + 3 * last * hw + 2 * c * hw;
    let discriminator = c * hw + 3 * 64 * hw / 4 + 3 * 128 * hw / 16;
    // D runs on real and generated images, and again on generated ones for G's step.
    16 * params + 4 * batch as u128 * (generator + 2 * discriminator)
}

impl Generator {
    /// `refine`: channels of the full-size stage, 0 for none (see [`GanConfig::refine`]).
    pub fn new(latent: usize, image: [usize; 3], refine: usize, device: &Device) -> Self {
        let [c, h, w] = image;
        let start = [128, h / 4, w / 4];
        Self {
            project: LinearConfig::new(latent, start.iter().product()).init(device),
            bn0: BatchNormConfig::new(128).init(device),
            up1: upsample([128, 64], device),
            bn1: BatchNormConfig::new(64).init(device),
            up2: upsample([64, if refine > 0 { refine } else { c }], device),
            refine: (refine > 0).then(|| {
                let to_image = ConvTranspose2dConfig::new([refine, c], [3, 3])
                    .with_padding([1, 1])
                    .init(device);
                (BatchNormConfig::new(refine).init(device), to_image)
            }),
            start,
            ops: TrainingOps::Burn,
        }
    }

    /// The same network, its BatchNorm layers training with `ops`.
    pub fn with_training_ops(self, ops: TrainingOps) -> Self {
        Self { ops, ..self }
    }

    /// z (n, latent) → images (n, C, H, W) in [-1, 1].
    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let n = z.dims()[0];
        let [c, h, w] = self.start;
        let x = self.project.forward(z).reshape([n, c, h, w]);
        let norm = |bn, x| self.ops.batch_norm(bn, x);
        let x = relu(norm(&self.bn0, x));
        let x = relu(norm(&self.bn1, conv_transpose2d(&self.up1, x)));
        let x = conv_transpose2d(&self.up2, x);
        match &self.refine {
            Some((bn, to_image)) => conv_transpose2d(to_image, relu(norm(bn, x))).tanh(),
            None => x.tanh(),
        }
    }
}

impl Discriminator {
    /// Judges packs of `pack` images (1: each image alone), with `dropout` after each
    /// LeakyReLU while training.
    pub fn new(image: [usize; 3], pack: usize, dropout: Dropout, device: &Device) -> Self {
        let [c, h, w] = image;
        Self {
            conv1: downsample([c * pack, 64], device),
            conv2: downsample([64, 128], device),
            bn2: BatchNormConfig::new(128).init(device),
            out: LinearConfig::new(128 * (h / 4) * (w / 4), 1).init(device),
            dropout,
            pack,
            ops: TrainingOps::Burn,
        }
    }

    /// The same network, its BatchNorm layer training with `ops`.
    pub fn with_training_ops(self, ops: TrainingOps) -> Self {
        Self { ops, ..self }
    }

    /// Images (n, C, H, W) → logits (n / pack, 1), one per pack of consecutive images:
    /// D(pack) = sigmoid(logit). n must be a multiple of the pack size.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = x.dims();
        assert!(
            n.is_multiple_of(self.pack),
            "{n} images do not make packs of {}",
            self.pack
        );
        // Consecutive images side by side as channels (NCHW: a plain reshape).
        let x = x.reshape([n / self.pack, c * self.pack, h, w]);
        // No BatchNorm on the input layer (DCGAN guideline).
        let x = flex::leaky_relu(conv2d(&self.conv1, x), 0.2);
        let x = self.dropout.forward(x);
        let x = self.ops.batch_norm(&self.bn2, conv2d(&self.conv2, x));
        let x = flex::leaky_relu(x, 0.2);
        let x = self.dropout.forward(x);
        self.out.forward(x.flatten(1, 3))
    }
}

/// Mean binary cross-entropy of logits against a constant target t (1: real, 0: fake,
/// between: a smoothed label), in the stable form −t·log σ(z) − (1 − t)·log(1 − σ(z))
/// = t·softplus(−z) + (1 − t)·softplus(z).
pub fn bce_with_logits(logits: Tensor<2>, target: f32) -> Tensor<1> {
    match target {
        1.0 => softplus(-logits, 1.0).mean(),
        0.0 => softplus(logits, 1.0).mean(),
        t => (softplus(-logits.clone(), 1.0) * t + softplus(logits, 1.0) * (1.0 - t)).mean(),
    }
}

/// Mean of D(x) = σ(logit), for reporting.
pub fn mean_probability(logits: Tensor<2>) -> f32 {
    sigmoid(logits).mean().into_scalar::<f32>()
}

/// Standard normal noise (n, latent) drawn from a seeded generator (the same z for the
/// same seed on every backend).
pub fn noise(n: usize, latent: usize, seed: u64, device: &Device) -> Tensor<2> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..n * latent)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    Tensor::from_data(TensorData::new(values, [n, latent]), device)
}

/// Images (n, C, H, W) in [-1, 1] as one PNG grid, `cols` per row, 2-pixel gaps.
pub fn write_grid(path: &Path, images: Tensor<4>, cols: usize) -> Result<()> {
    write_png(path, &grid_image(images, cols)?)?;
    Ok(())
}

/// Images (n, C, H, W) in [-1, 1] as one grid picture, `cols` per row, 2-pixel gaps.
pub fn grid_image(images: Tensor<4>, cols: usize) -> Result<image::RgbImage> {
    let [n, c, h, w] = images.dims();
    let values: Vec<f32> = images
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("cannot read the generated images: {e:?}"))?;
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let gap = 2;
    let (gw, gh) = (cols * (w + gap) + gap, rows * (h + gap) + gap);
    let mut rgb = vec![40u8; gw * gh * 3];
    for i in 0..n {
        let (x0, y0) = (gap + (i % cols) * (w + gap), gap + (i / cols) * (h + gap));
        for y in 0..h {
            for x in 0..w {
                for ch in 0..3 {
                    let src = ch.min(c - 1);
                    let v = values[((i * c + src) * h + y) * w + x];
                    let byte = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                    rgb[((y0 + y) * gw + x0 + x) * 3 + ch] = byte;
                }
            }
        }
    }
    image::RgbImage::from_raw(gw as u32, gh as u32, rgb).ok_or_else(|| anyhow!("grid buffer size"))
}

/// Writes `generator.bpk` + `generator.toml` and `discriminator.bpk` into `dir`, each
/// atomically: an interrupted save leaves the previous epoch's files.
pub fn save_pair(
    dir: &Path,
    generator: &Generator,
    discriminator: &Discriminator,
    card: &GeneratorCard,
) -> Result<()> {
    let g = dir.join("generator.bpk");
    save_weights(&g, generator)?;
    save_weights(&dir.join("discriminator.bpk"), discriminator)?;
    let text = toml::to_string(card).context("cannot serialise the generator card")?;
    write_atomic(&card_path(&g), text.as_bytes())?;
    Ok(())
}

/// A generator file and its card.
pub fn load_generator(path: &Path, device: &Device) -> Result<(Generator, GeneratorCard)> {
    if !path.is_file() {
        bail!("{}: no such generator file", path.display());
    }
    let card_file = card_path(path);
    let text = std::fs::read_to_string(&card_file).with_context(|| {
        format!(
            "{}: cannot read the card that goes with {}",
            card_file.display(),
            path.display()
        )
    })?;
    let card: GeneratorCard =
        dataset::toml_text::parse(&text, &card_file.display().to_string(), "generator card")
            .map_err(anyhow::Error::msg)?;
    // Every parameter is an f32 in the file: a card describing more is refused before the
    // generator is built.
    let params = generator_parameters(card.latent, card.image, card.refine);
    let file_bytes = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    if params * 4 > u128::from(file_bytes) {
        bail!(
            "{}: describes a generator of {params} parameters ({} bytes as f32), but {} holds only {file_bytes} bytes",
            card_file.display(),
            params * 4,
            path.display()
        );
    }
    let generator = load_weights(
        path,
        Generator::new(card.latent, card.image, card.refine, device),
    )?;
    Ok((generator, card))
}

/// A discriminator file; `dropout` is a training setting, not stored in it.
pub fn load_discriminator(
    path: &Path,
    image: [usize; 3],
    pack: usize,
    dropout: Dropout,
    device: &Device,
) -> Result<Discriminator> {
    load_weights(path, Discriminator::new(image, pack, dropout, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flex() -> Device {
        crate::backend::device(crate::backend::Backend::Flex).unwrap()
    }

    #[test]
    fn counted_parameters_match_the_built_networks() {
        let d = flex();
        for (latent, image, refine, pack) in [
            (100, [1, 28, 28], 0, 1),
            (7, [3, 32, 32], 16, 2),
            (1, [1, 8, 12], 3, 4),
        ] {
            assert_eq!(
                generator_parameters(latent, image, refine),
                Generator::new(latent, image, refine, &d).num_params() as u128,
                "{latent} {image:?} {refine}"
            );
            assert_eq!(
                discriminator_parameters(image, pack),
                Discriminator::new(image, pack, Dropout::new(0.0, 1), &d).num_params() as u128,
                "{image:?} {pack}"
            );
        }
    }

    #[test]
    fn shapes_and_parameter_counts_match_the_issue() {
        let d = flex();
        let g = Generator::new(100, [1, 28, 28], 0, &d);
        let out = g.forward(noise(3, 100, 1, &d));
        assert_eq!(out.dims(), [3, 1, 28, 28]);
        let values = out.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)));
        let disc = Discriminator::new([1, 28, 28], 1, Dropout::new(0.3, 1), &d);
        assert_eq!(
            disc.forward(Tensor::zeros([2, 1, 28, 28], &d)).dims(),
            [2, 1]
        );
        // About the sizes the issue names (generator ~778k, discriminator ~139k).
        assert!(
            (700_000..850_000).contains(&g.num_params()),
            "{}",
            g.num_params()
        );
        assert!(
            (120_000..160_000).contains(&disc.num_params()),
            "{}",
            disc.num_params()
        );
        let rgb = Generator::new(16, [3, 32, 32], 0, &d).forward(noise(1, 16, 2, &d));
        assert_eq!(rgb.dims(), [1, 3, 32, 32]);
        assert!(check_image_size([1, 30, 30]).is_err());
    }

    #[test]
    fn a_packed_discriminator_judges_consecutive_images_together() {
        let d = flex();
        let disc = Discriminator::new([1, 8, 8], 2, Dropout::new(0.0, 1), &d);
        let images = |seed: u64| Generator::new(4, [1, 8, 8], 0, &d).forward(noise(4, 4, seed, &d));
        let (x, y) = (images(1), images(2));
        let logits = |x: Tensor<4>| disc.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let first = logits(x.clone());
        assert_eq!(first.len(), 2, "four images make two packs");
        // Changing the second pack's images leaves the first pack's logit alone.
        let mixed = Tensor::cat(vec![x.narrow(0, 0, 2), y.narrow(0, 2, 2)], 0);
        let second = logits(mixed);
        assert_eq!(first[0], second[0]);
        assert_ne!(first[1], second[1]);
    }

    #[test]
    fn dropout_acts_in_training_only() {
        let d = flex();
        let ad = d.clone().autodiff();
        let x = Generator::new(4, [1, 8, 8], 0, &d).forward(noise(4, 4, 5, &d));
        let logits = |disc: &Discriminator, x: Tensor<4>| {
            disc.forward(x).into_data().try_to_vec::<f32>().unwrap()
        };
        // burn's masks and keraslike's.
        for dropout in [Dropout::burn(0.5), Dropout::new(0.5, 1)] {
            let training = Discriminator::new([1, 8, 8], 1, dropout, &ad);
            let x_ad = x.clone().autodiff();
            // Two training passes drop different features.
            assert_ne!(logits(&training, x_ad.clone()), logits(&training, x_ad));
            // For judging, no dropout: the same as a discriminator built without it.
            let judging = training.valid();
            let plain = Discriminator::new([1, 8, 8], 1, Dropout::new(0.0, 1), &d)
                .load_record(judging.clone().into_record());
            assert_eq!(logits(&judging, x.clone()), logits(&judging, x.clone()));
            assert_eq!(
                logits(&judging, x.clone()),
                logits(&plain.valid(), x.clone())
            );
        }
    }

    #[test]
    fn binary_cross_entropy_matches_its_definition() {
        let d = flex();
        let logits = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, -1.0], [2, 1]), &d);
        let s = |z: f32| 1.0 / (1.0 + (-z).exp());
        let real = -(s(2.0).ln() + s(-1.0).ln()) / 2.0;
        let fake = -((1.0 - s(2.0)).ln() + (1.0 - s(-1.0)).ln()) / 2.0;
        let got_real = bce_with_logits(logits.clone(), 1.0).into_scalar::<f32>();
        let got_fake = bce_with_logits(logits.clone(), 0.0).into_scalar::<f32>();
        assert!((got_real - real).abs() < 1e-5 && (got_fake - fake).abs() < 1e-5);
        // A smoothed target mixes the two.
        let got_smooth = bce_with_logits(logits, 0.9).into_scalar::<f32>();
        assert!((got_smooth - (0.9 * real + 0.1 * fake)).abs() < 1e-5);
        // Stable for large logits: no inf or NaN.
        let big = Tensor::<2>::from_data(TensorData::new(vec![80.0f32, -80.0], [2, 1]), &d);
        assert!(
            bce_with_logits(big.clone(), 1.0)
                .into_scalar::<f32>()
                .is_finite()
        );
        assert!(bce_with_logits(big, 0.9).into_scalar::<f32>().is_finite());
    }

    #[test]
    fn the_full_size_stage_keeps_the_image_shape() {
        let d = flex();
        let plain = Generator::new(100, [1, 28, 28], 0, &d);
        let refined = Generator::new(100, [1, 28, 28], 32, &d);
        let out = refined.forward(noise(3, 100, 1, &d));
        assert_eq!(out.dims(), [3, 1, 28, 28]);
        // up2 makes 32 channels instead of 1 (31 more filters of 64·4·4, 31 biases), a
        // BatchNorm of 32 (γ, β and, as burn counts them, the running mean and variance),
        // and the 3×3 stage to the image (32·9 weights + 1 bias).
        let extra = 31 * 64 * 16 + 31 + 4 * 32 + 32 * 9 + 1;
        assert_eq!(refined.num_params(), plain.num_params() + extra);
    }

    #[test]
    fn generator_files_round_trip() {
        let d = flex();
        let dir = tempfile::tempdir().unwrap();
        let g = Generator::new(8, [1, 8, 8], 3, &d);
        let disc = Discriminator::new([1, 8, 8], 1, Dropout::new(0.3, 1), &d);
        let card = GeneratorCard {
            latent: 8,
            image: [1, 8, 8],
            dataset: DatasetChoice::Mnist,
            epochs: 2,
            pack: 1,
            refine: 3,
        };
        save_pair(dir.path(), &g, &disc, &card).unwrap();
        let (loaded, back) = load_generator(&dir.path().join("generator.bpk"), &d).unwrap();
        assert_eq!(back, card);
        let z = noise(2, 8, 3, &d);
        let a = g
            .valid()
            .forward(z.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = loaded
            .valid()
            .forward(z)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(a, b);
        let grid = dir.path().join("grid.png");
        write_grid(&grid, g.valid().forward(noise(5, 8, 4, &d)), 3).unwrap();
        let img = image::open(&grid).unwrap();
        assert_eq!((img.width(), img.height()), (3 * 10 + 2, 2 * 10 + 2));
    }
}
