//! `keraslike dcgan` (exercise B3) and `keraslike generate`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use clap::Args;
use dataset::{DataDir, DatasetChoice, LabelledImages, MnistKind};

use keraslike::backend::{self, Backend};
use keraslike::gan::score::Source;
use keraslike::gan::{self, GanConfig, Networks, noise};
use keraslike::history::History;
use keraslike::lr_schedule::ScheduleKind;
use keraslike::model::Sequential;

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
    dataset: DatasetChoice,
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
    /// Learning-rate schedule for both networks: constant, exponential (× --lr-decay over
    /// each epoch), step (× --lr-decay every --lr-step-epochs epochs) or cosine (down to 0
    /// over the run) [default: the config's, else constant].
    #[arg(long, value_enum)]
    lr_schedule: Option<ScheduleKind>,
    /// The exponential or step schedule's factor, in (0, 1].
    #[arg(long)]
    lr_decay: Option<f64>,
    /// The step schedule's period in epochs [default: 1].
    #[arg(long)]
    lr_step_epochs: Option<usize>,
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
    /// BatchNorm and dropout on keraslike's own kernels: a shorter epoch, but a seeded run
    /// draws other dropout masks than with burn's ops (see configs/dcgan.toml).
    #[arg(long)]
    fused_kernels: bool,
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
    // A folder is one pool of images (any subfolders, labels ignored), not train/ and test/.
    let images: LabelledImages = match data_set {
        DatasetChoice::Folder(dir) => {
            dataset::ImageFolder::open(dir, dataset::FolderOptions::default())?
                .load_all()?
                .shuffled(1)
        }
        named => named.load(&dirs)?.train,
    }
    .limited(limit);
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
    cfg.lr_schedule = args.lr_schedule.or(cfg.lr_schedule);
    cfg.lr_decay = args.lr_decay.or(cfg.lr_decay);
    cfg.lr_step_epochs = args.lr_step_epochs.or(cfg.lr_step_epochs);
    // Refused before any data is read.
    let schedule =
        keraslike::lr_schedule::Schedule::new(cfg.lr_schedule, cfg.lr_decay, cfg.lr_step_epochs)?;
    cfg.pack = args.pack.unwrap_or(cfg.pack);
    cfg.real_target = args.real_target.unwrap_or(cfg.real_target);
    cfg.refine = args.refine.unwrap_or(cfg.refine);
    cfg.dropout = args.dropout.unwrap_or(cfg.dropout);
    cfg.fused_kernels |= args.fused_kernels;
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
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/keraslike/dcgan"));
    let g_path = out.join("generator.bpk");
    if args.resume && args.overwrite {
        bail!("--resume continues the run in --out and --overwrite replaces it: pass one");
    }

    let (pixels, image) = load_images(&args.dataset, &args.data, args.train_limit)?;
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
    let start = if args.resume {
        resume(&out, &cfg, image, &device)?
    } else {
        Networks::new(&cfg, image, &device)
    };
    if start.epochs_done >= cfg.epochs {
        bail!(
            "{} has {} epochs already; ask for more with --epochs",
            g_path.display(),
            start.epochs_done
        );
    }
    println!(
        "DCGAN on {} ({n} images {}×{}×{}); generator {} parameters, discriminator {}; \
         full-size stage {} channels; batch {}, Adam lr {} ({schedule}) β₁ {}, D judges packs of {} (real \
         target {}, dropout {}), {} iterations per epoch -> {}",
        args.dataset,
        image[0],
        image[1],
        image[2],
        start.generator.num_params(),
        start.discriminator.num_params(),
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
    let run = gan::Run {
        cfg: &cfg,
        pixels: &pixels,
        image,
        dataset: &args.dataset,
        out: &out,
        log_every: args.log_every,
    };
    gan::train(&run, start, &device)?;
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

/// The networks and history in `out`, to continue that run; refused when the settings
/// that shape the networks differ from the run's.
fn resume(out: &Path, cfg: &GanConfig, image: [usize; 3], device: &Device) -> Result<Networks> {
    let g_path = out.join("generator.bpk");
    let (generator, card) = gan::load_generator(&g_path, device)?;
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
    let discriminator = gan::load_discriminator(
        &out.join("discriminator.bpk"),
        image,
        cfg.pack,
        cfg.dropout_layer(card.epochs),
        device,
    )?;
    Ok(Networks {
        generator: generator.with_training_ops(cfg.training_ops()),
        discriminator: discriminator.with_training_ops(cfg.training_ops()),
        history: History::load_or_empty(&out.join("losses.csv"))?,
        epochs_done: card.epochs,
    })
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

/// Scores `count` generated images against the MNIST test images (see gan/score.rs).
fn print_score(
    source: &Source,
    classifier: &Sequential,
    data: &DataArgs,
    count: usize,
    seed: u64,
    device: &Device,
) -> Result<()> {
    let dirs = DataDir::new(data.data_dir.clone()).with_download(!data.offline);
    let test = dataset::mnist::load(MnistKind::Digits, &dirs)?.test;
    let score = gan::score::score(source, classifier, &test, count, seed, device)?;
    print!("{}", score.report());
    Ok(())
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
