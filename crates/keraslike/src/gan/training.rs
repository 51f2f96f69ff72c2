//! The DCGAN's training loop (the course's Algorithm 1), as a library function that
//! returns its history, as `fit` does: after every epoch the generator and discriminator,
//! a grid of samples from fixed noise, `losses.csv` and `loss.png` are written to the run
//! folder, so a stopped run keeps its last whole epoch.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::lr_scheduler::LrScheduler;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use cli::LineChart;
use dataset::DatasetChoice;
use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::model::{
    Discriminator, GanConfig, Generator, GeneratorCard, bce_with_logits, mean_probability, noise,
    save_pair, write_grid,
};
use cli::interrupt::{self, Interrupted};

use crate::callbacks::LrFactor;
use crate::history::{History, Record, number};
use crate::lr_schedule::{Schedule, ScheduledLr};

/// One epoch's means over its iterations, a row of `losses.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct GanEpoch {
    pub epoch: usize,
    pub d_loss: f64,
    pub g_loss: f64,
    /// Mean D(x) on real images and D(G(z)) on generated ones.
    pub d_real: f64,
    pub d_fake: f64,
    pub seconds: f64,
}

impl Record for GanEpoch {
    const FILE: &'static str = "losses.csv";
    const HEADER: &'static str = "epoch,d_loss,g_loss,d_real,d_fake,seconds";

    fn epoch(&self) -> usize {
        self.epoch
    }

    fn to_row(&self) -> String {
        format!(
            "{},{},{},{},{},{:.2}",
            self.epoch, self.d_loss, self.g_loss, self.d_real, self.d_fake, self.seconds
        )
    }

    fn from_fields(f: &[&str]) -> std::result::Result<Self, String> {
        Ok(Self {
            epoch: number(f, 0)?,
            d_loss: number(f, 1)?,
            g_loss: number(f, 2)?,
            d_real: number(f, 3)?,
            d_fake: number(f, 4)?,
            seconds: number(f, 5)?,
        })
    }

    /// loss.png: D and G loss per epoch.
    fn charts(history: &History<Self>) -> Vec<(&'static str, LineChart)> {
        vec![(
            "loss.png",
            LineChart {
                title: "DCGAN losses".into(),
                x_label: "epoch".into(),
                y_label: "binary cross-entropy".into(),
                curves: vec![
                    history.curve("discriminator", |e| e.d_loss),
                    history.curve("generator", |e| e.g_loss),
                ],
            },
        )]
    }
}

/// What one run trains on and where it writes.
pub struct Run<'a> {
    pub cfg: &'a GanConfig,
    /// Training images, (n, C·H·W) floats in [-1, 1].
    pub pixels: &'a [f32],
    /// [channels, height, width].
    pub image: [usize; 3],
    /// Where the images came from, for the generator's card.
    pub dataset: &'a DatasetChoice,
    /// The run folder.
    pub out: &'a Path,
    /// Print the losses every this many iterations.
    pub log_every: usize,
}

/// The networks to train on and what they have done: fresh ones ([`Networks::new`]) or a
/// run's files, to continue it.
pub struct Networks {
    pub generator: Generator,
    pub discriminator: Discriminator,
    pub history: History<GanEpoch>,
    pub epochs_done: usize,
}

impl Networks {
    pub fn new(cfg: &GanConfig, image: [usize; 3], device: &Device) -> Self {
        Self {
            generator: Generator::new(cfg.latent, image, cfg.refine, device)
                .with_training_ops(cfg.training_ops()),
            discriminator: Discriminator::new(image, cfg.pack, cfg.dropout_layer(0), device)
                .with_training_ops(cfg.training_ops()),
            history: History::default(),
            epochs_done: 0,
        }
    }
}

/// Trains from `start` up to `cfg.epochs`, B/2 real images per iteration; returns the
/// whole history (the earlier epochs' first). `device` must be an autodiff device.
pub fn train(run: &Run, start: Networks, device: &Device) -> Result<History<GanEpoch>> {
    let cfg = run.cfg;
    let image = run.image;
    let per_image = image.iter().product::<usize>();
    let n = run.pixels.len() / per_image;
    let half = cfg.batch_size / 2;
    let iterations = n / half;
    if iterations == 0 {
        bail!("{n} training images are fewer than half a batch ({half})");
    }
    let Networks {
        mut generator,
        mut discriminator,
        mut history,
        epochs_done,
    } = start;
    let adam = || {
        AdamConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(0.999)
            .init()
    };
    let (mut opt_g, mut opt_d) = (adam(), adam());
    let schedule = Schedule::new(cfg.lr_schedule, cfg.lr_decay, cfg.lr_step_epochs)?;
    let mut lr_by_step = ScheduledLr::new(
        schedule,
        cfg.lr,
        iterations,
        cfg.epochs,
        epochs_done,
        LrFactor::default(),
    );
    let fixed_z = noise(64, cfg.latent, cfg.seed ^ 0xface, device);
    interrupt::install();

    let mut order: Vec<usize> = (0..n).collect();
    let mut z_seed = cfg.seed.wrapping_mul(7919);
    for epoch in epochs_done + 1..=cfg.epochs {
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
        order.shuffle(&mut rng);
        let bar = cli::progress::epoch_bar(true, iterations as u64, epoch, cfg.epochs);
        let started = Instant::now();
        let (mut sum_d, mut sum_g, mut sum_real, mut sum_fake) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let mut lr = cfg.lr;
        for it in 0..iterations {
            lr = lr_by_step.step();
            // Discriminator: B/2 real images (target 1), B/2 generated ones (target 0).
            let idx = &order[it * half..(it + 1) * half];
            let mut batch = Vec::with_capacity(half * per_image);
            for &i in idx {
                batch.extend_from_slice(&run.pixels[i * per_image..(i + 1) * per_image]);
            }
            let real = Tensor::<4>::from_data(
                TensorData::new(batch, [half, image[0], image[1], image[2]]),
                device,
            );
            z_seed = z_seed.wrapping_add(1);
            let fake = generator
                .forward(noise(half, cfg.latent, z_seed, device))
                .detach();
            let real_logits = discriminator.forward(real);
            let fake_logits = discriminator.forward(fake);
            let d_real = mean_probability(real_logits.clone().detach());
            let d_fake = mean_probability(fake_logits.clone().detach());
            let loss_d = (bce_with_logits(real_logits, cfg.real_target)
                + bce_with_logits(fake_logits, 0.0))
                / 2.0;
            let grads = GradientsParams::from_grads(loss_d.backward(), &discriminator);
            let loss_d = loss_d.into_scalar::<f32>();
            discriminator = opt_d.step(lr, discriminator, grads);

            // Generator: B fresh z, target 1 through D, whose parameters do not change in
            // this step (nor get gradients: `no_grad` on a clone that shares its weights).
            // Loss −log D(G(z)).
            z_seed = z_seed.wrapping_add(1);
            let z = noise(cfg.batch_size, cfg.latent, z_seed, device);
            let judge = discriminator.clone().no_grad();
            let loss_g = bce_with_logits(judge.forward(generator.forward(z)), 1.0);
            let grads = GradientsParams::from_grads(loss_g.backward(), &generator);
            let loss_g = loss_g.into_scalar::<f32>();
            generator = opt_g.step(lr, generator, grads);

            if !loss_d.is_finite() || !loss_g.is_finite() {
                bar.abandon();
                bail!(
                    "the losses became NaN or infinite (D {loss_d}, G {loss_g}) in epoch {epoch}, \
                     iteration {}; training stopped. The last good generator and discriminator \
                     (epoch {}) are in {}; try a smaller --lr",
                    it + 1,
                    epoch - 1,
                    run.out.display()
                );
            }
            sum_d += loss_d as f64;
            sum_g += loss_g as f64;
            sum_real += d_real as f64;
            sum_fake += d_fake as f64;
            bar.inc(1);
            if (it + 1) % run.log_every.max(1) == 0 {
                bar.suspend(|| {
                    println!(
                        "epoch {epoch} iteration {}/{iterations}: D loss {loss_d:.4}, G loss {loss_g:.4}, \
                         D(x) {d_real:.3}, D(G(z)) {d_fake:.3}",
                        it + 1
                    )
                });
            }
            if interrupt::requested() {
                bar.abandon();
                return Err(Interrupted(format!(
                    "the generator of epoch {} is in {} (this epoch is not saved)",
                    epoch - 1,
                    run.out.display()
                ))
                .into());
            }
        }
        bar.finish_and_clear();
        let k = iterations as f64;
        let row = GanEpoch {
            epoch,
            d_loss: sum_d / k,
            g_loss: sum_g / k,
            d_real: sum_real / k,
            d_fake: sum_fake / k,
            seconds: started.elapsed().as_secs_f64(),
        };
        let lr_note = if schedule.is_constant() {
            String::new()
        } else {
            format!(" - lr: {lr:.4e}")
        };
        println!(
            "epoch {epoch}/{} - {:.1}s - d_loss: {:.4} - g_loss: {:.4} - D(x): {:.3} - D(G(z)): {:.3}{lr_note}",
            cfg.epochs, row.seconds, row.d_loss, row.g_loss, row.d_real, row.d_fake
        );
        history.epochs.push(row);
        let card = GeneratorCard {
            latent: cfg.latent,
            image,
            dataset: run.dataset.clone(),
            epochs: epoch,
            pack: cfg.pack,
            refine: cfg.refine,
        };
        save_pair(run.out, &generator, &discriminator, &card)?;
        let samples = run
            .out
            .join("samples")
            .join(format!("epoch_{epoch:03}.png"));
        write_grid(
            &samples,
            generator.valid().forward(fixed_z.clone().inner()),
            8,
        )?;
        history.save(run.out)?;
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flex_autodiff() -> Device {
        crate::backend::device(crate::backend::Backend::Flex)
            .unwrap()
            .autodiff()
    }

    /// A run of 8×8 grey images with `cfg` into `out`.
    fn tiny_run<'a>(cfg: &'a GanConfig, pixels: &'a [f32], out: &'a Path) -> Run<'a> {
        Run {
            cfg,
            pixels,
            image: [1, 8, 8],
            dataset: &TEST_DATASET,
            out,
            log_every: 100,
        }
    }

    static TEST_DATASET: std::sync::LazyLock<DatasetChoice> =
        std::sync::LazyLock::new(|| DatasetChoice::Folder("test".into()));

    #[test]
    fn a_short_run_trains_writes_its_files_and_continues() {
        let dir = tempfile::tempdir().unwrap();
        let device = flex_autodiff();
        device.seed(3);
        let cfg = GanConfig {
            latent: 4,
            batch_size: 8,
            epochs: 1,
            pack: 1,
            refine: 0,
            dropout: 0.0,
            ..GanConfig::default()
        };
        let image = [1, 8, 8];
        let pixels: Vec<f32> = (0..16 * 64).map(|i| ((i % 7) as f32 / 3.0) - 1.0).collect();
        let run = tiny_run(&cfg, &pixels, dir.path());
        let history = train(&run, Networks::new(&cfg, image, &device), &device).unwrap();
        assert_eq!(history.epochs.len(), 1);
        assert!(history.epochs[0].d_loss.is_finite() && history.epochs[0].g_loss.is_finite());
        for file in [
            "generator.bpk",
            "discriminator.bpk",
            "losses.csv",
            "samples/epoch_001.png",
        ] {
            assert!(dir.path().join(file).is_file(), "{file}");
        }
        let read = History::<GanEpoch>::load_or_empty(&dir.path().join("losses.csv")).unwrap();
        assert_eq!(read.epochs.len(), 1);
        assert_eq!(read.epochs[0].d_loss, history.epochs[0].d_loss);

        // Continue to epoch 2 from the files.
        let (generator, card) =
            super::super::model::load_generator(&dir.path().join("generator.bpk"), &device)
                .unwrap();
        let discriminator = super::super::model::load_discriminator(
            &dir.path().join("discriminator.bpk"),
            image,
            1,
            cfg.dropout_layer(1),
            &device,
        )
        .unwrap();
        let cfg2 = GanConfig { epochs: 2, ..cfg };
        let run2 = Run { cfg: &cfg2, ..run };
        let start = Networks {
            generator,
            discriminator,
            history: read,
            epochs_done: card.epochs,
        };
        let history = train(&run2, start, &device).unwrap();
        assert_eq!(
            history.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    /// Without dropout the masks play no part: keraslike's BatchNorm kernel and burn's
    /// ops then train the same networks to the same losses, up to rounding.
    #[test]
    fn fused_kernels_train_as_burns_ops_do() {
        let device = flex_autodiff();
        let cfg = GanConfig {
            latent: 4,
            batch_size: 8,
            epochs: 2,
            pack: 2,
            refine: 4,
            dropout: 0.0,
            ..GanConfig::default()
        };
        let image = [1, 8, 8];
        // Built once: other tests draw from the backend's generator meanwhile.
        let start = Networks::new(&cfg, image, &device);
        let epoch = |fused_kernels: bool| {
            let dir = tempfile::tempdir().unwrap();
            let cfg = GanConfig {
                fused_kernels,
                ..cfg.clone()
            };
            let pixels: Vec<f32> = (0..32 * 64)
                .map(|i| ((i % 11) as f32 / 5.0) - 1.0)
                .collect();
            let run = tiny_run(&cfg, &pixels, dir.path());
            let networks = Networks {
                generator: start
                    .generator
                    .clone()
                    .with_training_ops(cfg.training_ops()),
                discriminator: (start.discriminator.clone()).with_training_ops(cfg.training_ops()),
                history: History::default(),
                epochs_done: 0,
            };
            train(&run, networks, &device).unwrap().epochs
        };
        let (burn, fused) = (epoch(false), epoch(true));
        for (b, f) in burn.iter().zip(&fused) {
            for (name, by_burn, fused) in [
                ("d_loss", b.d_loss, f.d_loss),
                ("g_loss", b.g_loss, f.g_loss),
                ("D(x)", b.d_real, f.d_real),
            ] {
                let epoch = b.epoch;
                assert!(
                    (by_burn - fused).abs() < 1e-4,
                    "epoch {epoch}: {name} {by_burn} vs {fused}"
                );
            }
        }
        assert_eq!(burn.len(), 2);
    }
}
