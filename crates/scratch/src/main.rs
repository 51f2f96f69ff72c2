//! `scratch`: the course's from-scratch exercises on the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dataset::{DataDir, MnistKind};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use dataset::digit_image;
use scratch::data::Samples;
use scratch::layers::{Mode, softmax_rows};
use scratch::network::{Network, argmax};
use scratch::spec::{Architecture, ExperimentConfig, InputShape, LayerSpec};
use scratch::train::{TrainOptions, accuracy, confusion_matrix, train};
use scratch::weights_file::{self, Provenance};
use scratch::{gates, optimizer};

#[derive(Parser)]
#[command(
    name = "scratch",
    version,
    about = "Neural networks from scratch: the course's MNIST exercises"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the truth tables of the AND, OR, NAND perceptrons and the two-layer XOR.
    Gates,
    /// Tasks 1 and 4: classify MNIST test image i (read from stdin, or --index), or any
    /// PNG/JPEG (--image). Random weights unless --weights is given.
    Predict(PredictArgs),
    /// Task 2: mean cross-entropy of the network on a random training minibatch.
    Loss(LossArgs),
    /// Task 3: train 784 → M → 10 with backprop and minibatch SGD; saves the weights as
    /// safetensors at the end and on Ctrl-C.
    Train(TrainArgs),
    /// Test accuracy and the 10×10 confusion matrix of trained weights.
    Eval(EvalArgs),
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Folder holding the data sets (`mnist/`, `fashion/`, ...). Looked in first, then the
    /// project's `data/`, then the files are downloaded into `data/`.
    #[arg(long, env = dataset::DATA_DIR_ENV, global = true)]
    data_dir: Option<PathBuf>,
    /// Never download: fail if the files are not found.
    #[arg(long, global = true)]
    offline: bool,
    /// Which MNIST-format data set.
    #[arg(long, value_enum, default_value_t = DatasetName::Mnist)]
    dataset: DatasetName,
}

#[derive(Clone, Copy, ValueEnum)]
enum DatasetName {
    Mnist,
    Fashion,
}

impl DataArgs {
    fn load(&self) -> Result<(Samples, Samples)> {
        self.load_limited(None, None)
    }

    /// The data set, keeping only the first `train_limit` / `test_limit` images if given.
    fn load_limited(
        &self,
        train_limit: Option<usize>,
        test_limit: Option<usize>,
    ) -> Result<(Samples, Samples)> {
        let kind = match self.dataset {
            DatasetName::Mnist => MnistKind::Digits,
            DatasetName::Fashion => MnistKind::Fashion,
        };
        let dirs = DataDir::new(self.data_dir.clone()).with_download(!self.offline);
        let split = dataset::mnist::load(kind, &dirs)?;
        let keep = |images: dataset::LabelledImages, limit: Option<usize>| match limit {
            Some(n) => images.truncate(n),
            None => images,
        };
        let (train, test) = (keep(split.train, train_limit), keep(split.test, test_limit));
        Ok((Samples::from_images(&train), Samples::from_images(&test)))
    }
}

#[derive(Args)]
struct NetworkArgs {
    /// Trained weights (safetensors from `scratch train`). Without it the network has
    /// random weights drawn from N(0, 1/N) with --seed.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed for the random weights.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl NetworkArgs {
    fn network(&self) -> Result<Network> {
        match &self.weights {
            Some(path) => Ok(weights_file::load(path)?.0),
            None => {
                let cfg = ExperimentConfig::default_config();
                Network::new(
                    &Architecture {
                        input: InputShape::MNIST,
                        classes: 10,
                        layers: cfg.layers,
                    },
                    self.seed,
                )
            }
        }
    }
}

#[derive(Args)]
struct PredictArgs {
    #[command(flatten)]
    net: NetworkArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Test image index 0..9999 (otherwise read from standard input).
    #[arg(long, conflicts_with = "image")]
    index: Option<String>,
    /// Classify this PNG/JPEG instead: converted to 28×28 grey, white digit on black,
    /// cropped, scaled to a 20-pixel box and centred by mass, as MNIST was made.
    #[arg(long)]
    image: Option<PathBuf>,
}

#[derive(Args)]
struct LossArgs {
    #[command(flatten)]
    net: NetworkArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Minibatch size B.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Experiment config (TOML). Default: configs/mlp-sigmoid.toml, compiled in.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Epochs to train (this run; a resumed run adds them).
    #[arg(long)]
    epochs: Option<usize>,
    /// Minibatch size B.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate η.
    #[arg(long)]
    lr: Option<f32>,
    /// Hidden units M (the first affine layer's width).
    #[arg(long)]
    hidden: Option<usize>,
    /// Seed for the initial weights and the minibatch order.
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write the weights [default: runs/scratch/<config name>.safetensors, or the
    /// --resume file].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue training from these weights.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Use only the first N training images (for quick runs).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
}

#[derive(Args)]
struct EvalArgs {
    /// Trained weights (safetensors from `scratch train`).
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gates => {
            print!("{}", gates::truth_tables());
            Ok(())
        }
        Command::Predict(a) => predict(a),
        Command::Loss(a) => loss(a),
        Command::Train(a) => train_command(a),
        Command::Eval(a) => eval(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn predict(args: PredictArgs) -> Result<()> {
    let mut net = args.net.network()?;
    if net.arch.input != InputShape::MNIST || net.arch.classes != 10 {
        bail!(
            "the weights are for {:?} inputs with {} classes, not 28×28 MNIST digits",
            net.arch.input,
            net.arch.classes
        );
    }
    if let Some(path) = &args.image {
        let x =
            Array2::from_shape_vec((1, 784), digit_image::mnist_input(path)?).expect("784 values");
        let probs = softmax_rows(&net.predict(&x, Mode::Eval));
        let p = probs.as_slice().expect("row-major");
        println!("{}: {}", path.display(), argmax(p));
        for (digit, prob) in p.iter().enumerate() {
            println!("  {digit}: {prob:.4}");
        }
        return Ok(());
    }
    let text = match &args.index {
        Some(i) => i.clone(),
        None => read_index_from_stdin()?,
    };
    let (_, test) = args.data.load()?;
    let index: usize = text
        .trim()
        .parse()
        .ok()
        .filter(|&i| i < test.len())
        .with_context(|| {
            format!(
                "{:?} is not a test image index (expected an integer 0..{})",
                text.trim(),
                test.len() - 1
            )
        })?;
    let x = test.x.row(index).to_owned().insert_axis(ndarray::Axis(0));
    let logits = net.predict(&x, Mode::Eval);
    let digit = argmax(logits.as_slice().expect("row-major"));
    println!("{digit}");
    eprintln!("(test image {index}: label {})", test.labels[index]);
    Ok(())
}

fn read_index_from_stdin() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("MNIST test image index (0-9999): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read standard input")?;
    if line.trim().is_empty() {
        bail!("no index given on standard input (expected an integer 0..9999)");
    }
    Ok(line)
}

fn loss(args: LossArgs) -> Result<()> {
    let mut net = args.net.network()?;
    let (train, _) = args.data.load()?;
    if args.batch_size == 0 || args.batch_size > train.len() {
        bail!("--batch-size must be in 1..={}", train.len());
    }
    let mut rng = StdRng::seed_from_u64(args.net.seed);
    let idx = sample(&mut rng, train.len(), args.batch_size).into_vec();
    let (mut x, mut labels) = (Array2::zeros((0, 0)), Vec::new());
    train.gather(&idx, &mut x, &mut labels);
    println!("{:.6}", net.loss(&x, &labels, Mode::Eval));
    eprintln!(
        "(mean cross-entropy over {} random training images)",
        args.batch_size
    );
    Ok(())
}

fn train_command(args: TrainArgs) -> Result<()> {
    let (cfg, cfg_name) = match &args.config {
        Some(p) => (
            ExperimentConfig::load(p)?,
            p.file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
        ),
        None => (
            ExperimentConfig::default_config(),
            "mlp-sigmoid".to_string(),
        ),
    };
    let settings = &cfg.train;
    let epochs = args.epochs.unwrap_or(settings.epochs);
    let batch_size = args.batch_size.unwrap_or(settings.batch_size);
    let seed = args.seed.unwrap_or(settings.seed);
    let mut opt_spec = cfg.optimizer.clone();
    if let Some(lr) = args.lr {
        let scratch::spec::OptimizerSpec::Sgd { lr: l } = &mut opt_spec;
        *l = lr;
    }

    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.resume.is_some() && (args.hidden.is_some() || args.config.is_some()) {
        eprintln!(
            "warning: --resume takes the network from the weights file; the layers of --config and --hidden are not used"
        );
    }
    let (mut net, done) = match &args.resume {
        Some(path) => {
            let (net, prov) = weights_file::load(path)?;
            eprintln!(
                "resuming from {} ({} epochs done)",
                path.display(),
                prov.epochs
            );
            (net, prov.epochs)
        }
        None => {
            let mut layers = cfg.layers.clone();
            if let Some(m) = args.hidden {
                match layers
                    .iter_mut()
                    .find(|l| matches!(l, LayerSpec::Affine { .. }))
                {
                    Some(LayerSpec::Affine { units, .. }) => *units = m,
                    _ => bail!("--hidden: the config has no affine layer"),
                }
            }
            let arch = Architecture {
                input: InputShape::MNIST,
                classes: 10,
                layers,
            };
            (Network::new(&arch, seed).context("invalid network")?, 0)
        }
    };
    let out = args
        .out
        .clone()
        .or_else(|| args.resume.clone())
        .unwrap_or_else(|| Path::new("runs/scratch").join(format!("{cfg_name}.safetensors")));

    let (train_set, test_set) = args.data.load_limited(args.train_limit, args.test_limit)?;
    let mut opt = optimizer::build(&opt_spec);
    println!(
        "network {}; {opt_spec:?}; batch {batch_size}; {} train / {} test images",
        describe(&net.arch),
        train_set.len(),
        test_set.len()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let options = TrainOptions {
        epochs,
        batch_size,
        seed,
        first_epoch: done,
        progress: std::io::stderr().is_terminal(),
    };
    let outcome = train(
        &mut net,
        opt.as_mut(),
        &train_set,
        &test_set,
        &options,
        &stop,
        |e| {
            println!(
                "epoch {:>3}/{}  loss {:.4}  train acc {:.4}  test acc {:.4}  time {:.2}s",
                e.epoch,
                done + epochs,
                e.loss,
                e.train_accuracy,
                e.test_accuracy,
                e.seconds
            );
        },
    );
    let epochs_done = done + outcome.epochs.len();
    weights_file::save(
        &out,
        &net,
        &Provenance {
            epochs: epochs_done,
        },
    )?;
    if outcome.interrupted {
        eprintln!(
            "interrupted: saved the weights after {epochs_done} complete epochs (and the partial one) to {}",
            out.display()
        );
        std::process::exit(130);
    }
    println!("saved weights to {}", out.display());
    Ok(())
}

fn describe(arch: &Architecture) -> String {
    let mut parts = vec![arch.input.features().to_string()];
    for l in &arch.layers {
        parts.push(match l {
            LayerSpec::Affine { units, .. } => format!("affine {units}"),
            LayerSpec::Sigmoid => "sigmoid".into(),
            LayerSpec::Relu => "relu".into(),
        });
    }
    parts.join(" → ")
}

fn eval(args: EvalArgs) -> Result<()> {
    let (mut net, prov) = weights_file::load(&args.weights)?;
    let (_, test) = args.data.load()?;
    if net.arch.input.features() != test.x.ncols() {
        bail!(
            "{}: the network expects {} inputs, the data has {}",
            args.weights.display(),
            net.arch.input.features(),
            test.x.ncols()
        );
    }
    let acc = accuracy(&mut net, &test);
    println!(
        "{} ({} epochs): test accuracy {:.4} ({} images)",
        args.weights.display(),
        prov.epochs,
        acc,
        test.len()
    );
    println!("confusion matrix (rows: true class, columns: predicted)");
    let m = confusion_matrix(&mut net, &test);
    print!("     ");
    for j in 0..m.len() {
        print!("{j:>6}");
    }
    println!();
    for (i, row) in m.iter().enumerate() {
        print!("{i:>4} ");
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
    Ok(())
}
