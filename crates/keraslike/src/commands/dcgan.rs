//! `keraslike dcgan` (exercise B3) and `keraslike generate`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use clap::Args;
use dataset::output::{Curve, LineChart, write_atomic, write_line_chart};
use dataset::{DataDir, DatasetChoice, LabelledImages, MnistKind};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use keraslike::backend::{self, Backend};
use keraslike::gan::{
    self, Discriminator, GanConfig, Generator, GeneratorCard, bce_with_logits, mean_probability,
    noise,
};
use keraslike::gan_score::{entropy_bits, frechet_distance, mean_and_covariance};
use keraslike::model::Sequential;
use ndarray::Array2;

use super::DataArgs;

/// What a DCGAN run writes into its folder (what `--overwrite` removes).
const DCGAN_OUTPUTS: [&str; 6] = [
    "generator.bpk",
    "generator.toml",
    "discriminator.bpk",
    "losses.csv",
    "loss.png",
    "samples",
];

/// The course's settings (batch 128, Adam 2e-4 with β₁ 0.5, d_n 100).
const DEFAULT_CONFIG: &str = include_str!("../../../../configs/dcgan.toml");

#[derive(Args)]
pub struct DcganArgs {
    /// Settings (TOML) [default: configs/dcgan.toml, compiled in].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Training images: mnist, fashion, cifar10 or folder:DIR (DIR/<any subfolders>/*;
    /// labels are ignored). Pixels are scaled to [-1, 1].
    #[arg(long, default_value = "mnist")]
    dataset: String,
    #[command(flatten)]
    data: DataArgs,
    /// Last epoch to train [default: the config's].
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per iteration B: B/2 real + B/2 generated for D, B generated for G.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Length of z (d_n).
    #[arg(long)]
    latent: Option<usize>,
    /// Adam's learning rate for both networks.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed for the weights, the noise and the order of the images.
    #[arg(long)]
    seed: Option<u64>,
    /// Images the discriminator judges together (PacGAN; 1 = the plain DCGAN).
    #[arg(long)]
    pack: Option<usize>,
    /// The discriminator's target for real images (one-sided label smoothing; 1 = none).
    #[arg(long)]
    real_target: Option<f32>,
    /// Channels of the generator's full-size stage (0 = none; see configs/dcgan.toml).
    #[arg(long)]
    refine: Option<usize>,
    /// Dropout after each of the discriminator's LeakyReLUs (0 = none).
    #[arg(long)]
    dropout: Option<f64>,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Print D and G losses and the mean D(x), D(G(z)) every N iterations.
    #[arg(long, default_value_t = 100)]
    log_every: usize,
    /// Output folder [default: runs/keraslike/dcgan].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the generator and discriminator in --out (Adam's state starts anew).
    #[arg(long)]
    resume: bool,
    /// Start afresh in an --out that holds an earlier run, replacing its outputs (without
    /// it, a folder that is not empty is refused).
    #[arg(long)]
    overwrite: bool,
    /// An MNIST classifier from `keraslike mnist` (model.bpk): score the generator with it
    /// at the end (see `keraslike gan-score`).
    #[arg(long)]
    classifier: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
}

/// Training images as (n, C·H·W) floats in [-1, 1], and their shape.
fn load_images(
    data_set: &DatasetChoice,
    data: &DataArgs,
    limit: Option<usize>,
) -> Result<(Vec<f32>, [usize; 3])> {
    let dirs = DataDir::new(data.data_dir.clone()).with_download(!data.offline);
    let images: LabelledImages = match data_set {
        DatasetChoice::Mnist => dataset::mnist::load(MnistKind::Digits, &dirs)?.train,
        DatasetChoice::Fashion => dataset::mnist::load(MnistKind::Fashion, &dirs)?.train,
        DatasetChoice::Cifar10 => dataset::cifar::load(&dirs)?.train,
        DatasetChoice::Folder(dir) => {
            dataset::ImageFolder::open(dir, dataset::FolderOptions::default())?
                .load_all()?
                .shuffled(1)
        }
    };
    let images = match limit {
        Some(n) => images.truncate(n),
        None => images,
    };
    let s = images.shape;
    let pixels = images
        .pixels
        .iter()
        .map(|&p| p as f32 / 127.5 - 1.0)
        .collect();
    Ok((pixels, [s.channels, s.height, s.width]))
}

pub fn run(args: DcganArgs) -> Result<()> {
    let mut cfg: GanConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read config", p.display()))?;
            dataset::toml_text::parse(&text, &p.display().to_string(), "config")
                .map_err(anyhow::Error::msg)?
        }
        None => toml::from_str(DEFAULT_CONFIG).expect("configs/dcgan.toml parses"),
    };
    cfg.epochs = args.epochs.unwrap_or(cfg.epochs);
    cfg.batch_size = args.batch_size.unwrap_or(cfg.batch_size);
    cfg.latent = args.latent.unwrap_or(cfg.latent);
    cfg.lr = args.lr.unwrap_or(cfg.lr);
    cfg.seed = args.seed.unwrap_or(cfg.seed);
    cfg.pack = args.pack.unwrap_or(cfg.pack);
    cfg.real_target = args.real_target.unwrap_or(cfg.real_target);
    cfg.refine = args.refine.unwrap_or(cfg.refine);
    cfg.dropout = args.dropout.unwrap_or(cfg.dropout);
    if !(0.0..1.0).contains(&cfg.dropout) {
        bail!(
            "dropout = {} must lie in [0, 1): the fraction of D's features dropped",
            cfg.dropout
        );
    }
    if !(0.5..=1.0).contains(&cfg.real_target) {
        bail!(
            "real_target = {} must lie in [0.5, 1]: the discriminator's target for real images",
            cfg.real_target
        );
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        bail!(
            "lr = {} must be a positive number: Adam's learning rate",
            cfg.lr
        );
    }
    if cfg.batch_size < 2 || cfg.latent == 0 {
        bail!("--batch-size must be at least 2 and --latent at least 1");
    }
    if cfg.pack == 0 || !(cfg.batch_size / 2).is_multiple_of(cfg.pack) {
        bail!(
            "pack = {} must divide half the batch ({}): D sees packs of real and of generated images",
            cfg.pack,
            cfg.batch_size / 2
        );
    }
    // Checked before anything else, so that a typo costs nothing (one-line error, not
    // clap's usage text).
    let data_set: DatasetChoice = args
        .dataset
        .parse()
        .map_err(|e| anyhow::anyhow!("--dataset: {e}"))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/keraslike/dcgan"));
    let g_path = out.join("generator.bpk");
    if args.resume && args.overwrite {
        bail!("--resume continues the run in --out and --overwrite replaces it: pass one");
    }

    let (pixels, image) = load_images(&data_set, &args.data, args.train_limit)?;
    gan::check_image_size(image)?;
    let needs = gan::training_bytes(cfg.latent, image, cfg.refine, cfg.pack, cfg.batch_size);
    dataset::memory::check_fits(
        needs,
        &format!(
            "a DCGAN with latent {}, refine {} and batches of {} on {}×{}×{} images",
            cfg.latent, cfg.refine, cfg.batch_size, image[0], image[1], image[2]
        ),
    )
    .map_err(anyhow::Error::msg)?;
    let per_image = image.iter().product::<usize>();
    let n = pixels.len() / per_image;
    let half = cfg.batch_size / 2;
    let iterations = n / half;
    if iterations == 0 {
        bail!("{n} training images are fewer than half a batch ({half})");
    }
    // The folder is made (or checked) once the settings and data are known to be usable.
    if args.resume {
        keraslike::run_folder::check_writable(&out)?;
    } else {
        keraslike::run_folder::prepare_new(&out, args.overwrite, &DCGAN_OUTPUTS)?;
    }

    let device = backend::device(args.backend)?.autodiff();
    device.seed(cfg.seed);
    let (mut generator, mut discriminator, done) = if args.resume {
        let (g, card) = gan::load_generator(&g_path, &device)?;
        // Settings that shape the networks: a resumed run must keep them.
        for (name, trained, asked, why) in [
            (
                "pack",
                card.pack,
                cfg.pack,
                "the discriminator's input differs",
            ),
            (
                "refine",
                card.refine,
                cfg.refine,
                "the generator's layers differ",
            ),
        ] {
            if trained != asked {
                bail!(
                    "{}: trained with {name} = {trained}, not {asked} ({why}): \
                     pass --{name} {trained} to continue it",
                    g_path.display()
                );
            }
        }
        if card.image != image || card.latent != cfg.latent {
            bail!(
                "{}: made for {:?} images from z of {}, not {:?} from {}",
                g_path.display(),
                card.image,
                card.latent,
                image,
                cfg.latent
            );
        }
        let d = gan::load_discriminator(
            &out.join("discriminator.bpk"),
            image,
            cfg.pack,
            cfg.dropout,
            &device,
        )?;
        (g, d, card.epochs)
    } else {
        (
            Generator::new(cfg.latent, image, cfg.refine, &device),
            Discriminator::new(image, cfg.pack, cfg.dropout, &device),
            0,
        )
    };
    if done >= cfg.epochs {
        bail!(
            "{} has {done} epochs already; ask for more with --epochs",
            g_path.display()
        );
    }
    println!(
        "DCGAN on {} ({n} images {}×{}×{}); generator {} parameters, discriminator {}; \
         full-size stage {} channels; batch {}, Adam lr {} β₁ {}, D judges packs of {} (real \
         target {}, dropout {}), {} iterations per epoch -> {}",
        args.dataset,
        image[0],
        image[1],
        image[2],
        generator.num_params(),
        discriminator.num_params(),
        cfg.refine,
        cfg.batch_size,
        cfg.lr,
        cfg.beta1,
        cfg.pack,
        cfg.real_target,
        cfg.dropout,
        iterations,
        out.display()
    );
    let adam = || {
        AdamConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(0.999)
            .init()
    };
    let (mut opt_g, mut opt_d) = (adam(), adam());
    let fixed_z = noise(64, cfg.latent, cfg.seed ^ 0xface, &device);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;

    let mut history = String::from("epoch,d_loss,g_loss,d_real,d_fake,seconds\n");
    let history_path = out.join("losses.csv");
    if args.resume
        && let Ok(old) = std::fs::read_to_string(&history_path)
    {
        history = old;
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut z_seed = cfg.seed.wrapping_mul(7919);
    for epoch in done + 1..=cfg.epochs {
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
        order.shuffle(&mut rng);
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(iterations as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{epoch}/{}", cfg.epochs));
            bar
        } else {
            ProgressBar::hidden()
        };
        let start = Instant::now();
        let (mut sum_d, mut sum_g, mut sum_real, mut sum_fake) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for it in 0..iterations {
            // Discriminator: B/2 real images (target 1), B/2 generated ones (target 0).
            let idx = &order[it * half..(it + 1) * half];
            let mut batch = Vec::with_capacity(half * per_image);
            for &i in idx {
                batch.extend_from_slice(&pixels[i * per_image..(i + 1) * per_image]);
            }
            let real = Tensor::<4>::from_data(
                TensorData::new(batch, [half, image[0], image[1], image[2]]),
                &device,
            );
            z_seed = z_seed.wrapping_add(1);
            let fake = generator
                .forward(noise(half, cfg.latent, z_seed, &device))
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
            discriminator = opt_d.step(cfg.lr, discriminator, grads);

            // Generator: B fresh z, target 1 through D, whose parameters do not change in
            // this step (nor get gradients: `no_grad` on a clone that shares its weights).
            // Loss −log D(G(z)).
            z_seed = z_seed.wrapping_add(1);
            let z = noise(cfg.batch_size, cfg.latent, z_seed, &device);
            let judge = discriminator.clone().no_grad();
            let loss_g = bce_with_logits(judge.forward(generator.forward(z)), 1.0);
            let grads = GradientsParams::from_grads(loss_g.backward(), &generator);
            let loss_g = loss_g.into_scalar::<f32>();
            generator = opt_g.step(cfg.lr, generator, grads);

            if !loss_d.is_finite() || !loss_g.is_finite() {
                bar.abandon();
                bail!(
                    "the losses became NaN or infinite (D {loss_d}, G {loss_g}) in epoch {epoch}, \
                     iteration {}; training stopped. The last good generator and discriminator \
                     (epoch {}) are in {}; try a smaller --lr",
                    it + 1,
                    epoch - 1,
                    out.display()
                );
            }
            sum_d += loss_d as f64;
            sum_g += loss_g as f64;
            sum_real += d_real as f64;
            sum_fake += d_fake as f64;
            bar.inc(1);
            if (it + 1) % args.log_every.max(1) == 0 {
                bar.suspend(|| {
                    println!(
                        "epoch {epoch} iteration {}/{iterations}: D loss {loss_d:.4}, G loss {loss_g:.4}, \
                         D(x) {d_real:.3}, D(G(z)) {d_fake:.3}",
                        it + 1
                    )
                });
            }
            if stop.load(Ordering::Relaxed) {
                bar.abandon();
                eprintln!(
                    "interrupted: the generator of epoch {} is in {} (this epoch is not saved)",
                    epoch - 1,
                    out.display()
                );
                std::process::exit(130);
            }
        }
        bar.finish_and_clear();
        let secs = start.elapsed().as_secs_f64();
        let k = iterations as f64;
        println!(
            "epoch {epoch}/{} - {secs:.1}s - d_loss: {:.4} - g_loss: {:.4} - D(x): {:.3} - D(G(z)): {:.3}",
            cfg.epochs,
            sum_d / k,
            sum_g / k,
            sum_real / k,
            sum_fake / k
        );
        history.push_str(&format!(
            "{epoch},{},{},{},{},{secs:.2}\n",
            sum_d / k,
            sum_g / k,
            sum_real / k,
            sum_fake / k
        ));
        let card = GeneratorCard {
            latent: cfg.latent,
            image,
            dataset: data_set.to_string(),
            epochs: epoch,
            pack: cfg.pack,
            refine: cfg.refine,
        };
        gan::save_pair(&out, &generator, &discriminator, &card)?;
        write_atomic(&history_path, history.as_bytes())?;
        let samples = out.join("samples").join(format!("epoch_{epoch:03}.png"));
        gan::write_grid(
            &samples,
            generator.valid().forward(fixed_z.clone().inner()),
            8,
        )?;
        write_loss_plot(&out, &history);
    }
    println!(
        "saved {} (+ generator.toml, discriminator.bpk), samples/, losses.csv, loss.png",
        g_path.display()
    );
    if let Some(classifier) = &args.classifier {
        let plain = backend::device(args.backend)?;
        let (classifier, _) = keraslike::saved_model::load(classifier, &plain)?;
        let generator = gan::load_generator(&g_path, &plain)?.0;
        let source = Source::Generator(Box::new(generator.valid()), cfg.latent);
        print_score(&source, &classifier, &args.data, 10_000, cfg.seed, &plain)?;
    }
    Ok(())
}

#[derive(Args)]
pub struct ScoreArgs {
    /// A generator written by `keraslike dcgan` (generator.bpk, generator.toml beside it).
    #[arg(long, required_unless_present = "images", conflicts_with = "images")]
    generator: Option<PathBuf>,
    /// Instead of a generator: images made elsewhere (e.g. benches/dcgan_torch.py), as raw
    /// little-endian f32 values in [-1, 1], n × (the classifier's input shape).
    #[arg(long)]
    images: Option<PathBuf>,
    /// An MNIST classifier written by `keraslike mnist` (model.bpk, model.toml beside it).
    #[arg(long)]
    classifier: PathBuf,
    /// Generated images to score.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    count: usize,
    /// Seed for z.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
}

pub fn score_command(args: ScoreArgs) -> Result<()> {
    let device = backend::device(args.backend)?;
    let (classifier, model_card) = keraslike::saved_model::load(&args.classifier, &device)?;
    let input = model_card.model.input;
    let source = match (&args.generator, &args.images) {
        (Some(path), _) => {
            let (generator, card) = gan::load_generator(path, &device)?;
            if input != card.image {
                bail!(
                    "{}: the classifier takes {input:?} images, the generator makes {:?}",
                    args.classifier.display(),
                    card.image
                );
            }
            Source::Generator(Box::new(generator.valid()), card.latent)
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("{}: cannot read images", path.display()))?;
            let per_image = input.iter().product::<usize>() * 4;
            if bytes.is_empty() || bytes.len() % per_image != 0 {
                bail!(
                    "{}: {} bytes is not a whole number of {input:?} f32 images",
                    path.display(),
                    bytes.len()
                );
            }
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Source::Images(values, input)
        }
        (None, None) => bail!("give --generator or --images"),
    };
    print_score(
        &source,
        &classifier,
        &args.data,
        args.count,
        args.seed,
        &device,
    )
}

/// Where the scored images come from.
enum Source {
    /// An inference copy of a generator and its latent size.
    Generator(Box<Generator>, usize),
    /// Ready-made images in [-1, 1], and their shape.
    Images(Vec<f32>, [usize; 3]),
}

impl Source {
    fn available(&self, wanted: usize) -> usize {
        match self {
            Source::Generator(..) => wanted,
            Source::Images(v, shape) => wanted.min(v.len() / shape.iter().product::<usize>()),
        }
    }

    /// Images `start..start + n` in [-1, 1].
    fn chunk(&self, start: usize, n: usize, seed: u64, device: &Device) -> Tensor<4> {
        match self {
            Source::Generator(g, latent) => g.forward(noise(
                n,
                *latent,
                seed.wrapping_add(start as u64 * 7_919),
                device,
            )),
            Source::Images(values, [c, h, w]) => {
                let per = c * h * w;
                let data = values[start * per..(start + n) * per].to_vec();
                Tensor::from_data(TensorData::new(data, [n, *c, *h, *w]), device)
            }
        }
    }
}

/// Classifier outputs and penultimate features of `images` (n, C, H, W) in [0, 1].
fn classify(classifier: &Sequential, images: Tensor<4>) -> Result<(Vec<f32>, Array2<f32>)> {
    let probs = classifier.forward(images.clone());
    let features = classifier.penultimate(images);
    let [n, d] = features.dims();
    let features = Array2::from_shape_vec(
        (n, d),
        features
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )?;
    let probs = probs
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((probs, features))
}

/// Scores `count` generated images against the MNIST test images (see gan_score.rs).
fn print_score(
    source: &Source,
    classifier: &Sequential,
    data: &DataArgs,
    count: usize,
    seed: u64,
    device: &Device,
) -> Result<()> {
    const CHUNK: usize = 500;
    let count = source.available(count);
    if count == 0 {
        bail!("no images to score");
    }
    let classes = 10;
    let (mut counts, mut max_sum) = (vec![0usize; classes], 0.0f64);
    let mut gen_features = Vec::new();
    for start in (0..count).step_by(CHUNK) {
        let n = CHUNK.min(count - start);
        // The generator's [-1, 1] to the classifier's [0, 1].
        let images = (source.chunk(start, n, seed, device) + 1.0) / 2.0;
        let (probs, features) = classify(classifier, images)?;
        let width = probs.len() / n;
        for row in probs.chunks(width) {
            let (best, p) = row
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
            counts[best.min(classes - 1)] += 1;
            max_sum += p as f64;
        }
        gen_features.push(features);
    }
    let dirs = DataDir::new(data.data_dir.clone()).with_download(!data.offline);
    let test = dataset::mnist::load(MnistKind::Digits, &dirs)?.test;
    let mut real_features = Vec::new();
    for start in (0..test.len()).step_by(CHUNK) {
        let n = CHUNK.min(test.len() - start);
        let px: Vec<f32> = (start..start + n)
            .flat_map(|i| test.image(i).iter().map(|&p| p as f32 / 255.0))
            .collect();
        let s = test.shape;
        let images = Tensor::<4>::from_data(
            TensorData::new(px, [n, s.channels, s.height, s.width]),
            device,
        );
        real_features.push(classify(classifier, images)?.1);
    }
    let stack = |parts: Vec<Array2<f32>>| -> Result<Array2<f32>> {
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        Ok(ndarray::concatenate(ndarray::Axis(0), &views)?)
    };
    let fd = frechet_distance(
        &mean_and_covariance(&stack(gen_features)?),
        &mean_and_covariance(&stack(real_features)?),
    );
    println!("GAN score over {count} generated images (classifier's view):");
    println!(
        "  mean max class probability: {:.4}",
        max_sum / count as f64
    );
    println!(
        "  predicted digits: {}",
        counts
            .iter()
            .enumerate()
            .map(|(d, &c)| format!("{d}: {:.2}%", 100.0 * c as f64 / count as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  entropy of the digit histogram: {:.3} bits (uniform: {:.3})",
        entropy_bits(&counts),
        (classes as f64).log2()
    );
    println!(
        "  Fréchet distance to the {} MNIST test images (penultimate-layer features): {fd:.3}",
        test.len()
    );
    Ok(())
}

/// loss.png: D and G loss per epoch (skipped with a warning where no font exists).
fn write_loss_plot(out: &Path, history: &str) {
    let rows: Vec<Vec<f64>> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').filter_map(|v| v.parse().ok()).collect())
        .filter(|r: &Vec<f64>| r.len() >= 3)
        .collect();
    let curve = |label: &str, col: usize| Curve {
        label: label.into(),
        points: rows.iter().map(|r| (r[0], r[col])).collect(),
    };
    let chart = LineChart {
        title: "DCGAN losses".into(),
        x_label: "epoch".into(),
        y_label: "binary cross-entropy".into(),
        curves: vec![curve("discriminator", 1), curve("generator", 2)],
    };
    if let Err(e) = write_line_chart(&out.join("loss.png"), &chart) {
        eprintln!("warning: {e}");
    }
}

#[derive(Args)]
pub struct GenerateArgs {
    /// A generator written by `keraslike dcgan` (generator.bpk, generator.toml beside it).
    #[arg(long)]
    model: PathBuf,
    /// How many images.
    #[arg(short = 'n', long, default_value_t = 64)]
    count: usize,
    /// The PNG grid to write.
    #[arg(long, default_value = "grid.png")]
    out: PathBuf,
    /// Seed for z: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
}

pub fn generate(args: GenerateArgs) -> Result<()> {
    if args.count == 0 {
        bail!("-n must be at least 1");
    }
    let device: Device = backend::device(args.backend)?;
    let (generator, card) = gan::load_generator(&args.model, &device)?;
    let z = noise(args.count, card.latent, args.seed, &device);
    let cols = (args.count as f64).sqrt().ceil() as usize;
    gan::write_grid(&args.out, generator.forward(z), cols)?;
    println!(
        "wrote {} ({} images from {}, {} epochs on {})",
        args.out.display(),
        args.count,
        args.model.display(),
        card.epochs,
        card.dataset
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_holds_the_documented_defaults() {
        let from_file: GanConfig = toml::from_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(from_file, GanConfig::default());
    }
}
