//! `scratch`: the course's from-scratch exercises on the command line.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use dataset::DataDir;
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use cli::interrupt::Interrupted;
use dataset::DatasetChoice;
use dataset::image_input::{self, Preprocess};
use dataset::{ImageShape, Interpolation};
use scratch::data::{Samples, load_split, planes_to_channels_last};
use scratch::experiment::{
    Experiment, Overrides, check_data, check_fits, check_out, dataset_choice,
};
use scratch::layers::{Mode, softmax_rows};
use scratch::network::{Kernels, Network, argmax};
use scratch::spec::{Architecture, ExperimentConfig, InputShape, LayerSpec};
use scratch::train::{EpochStats, accuracy, confusion_matrix, train};
use scratch::weights_file::{self, Provenance};
use scratch::{compare, gates, optimizer};

/// Training allocates and frees multi-megabyte activations every step. glibc's malloc
/// returns such blocks to the kernel at once, so each step paid page faults and page
/// zeroing again (a fifth of the conv benchmark's time in perf); mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "scratch",
    version,
    about = "Neural networks from scratch: the course's MNIST exercises",
    long_about = "Neural networks from scratch: the course's exercises. No ML framework: \
layers with forward/backward passes, backprop, six optimisers, im2col convolution.\n\n\
Data sets are looked for in --data-dir (or $DL_DATA_DIR), then data/, then downloaded."
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
    /// Test accuracy and the confusion matrix of trained weights.
    Eval(EvalArgs),
    /// Train several configs on the same data and plot their test accuracy and training
    /// loss per epoch side by side (compare.png, compare.csv).
    Compare(CompareArgs),
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Folder holding the data sets (`mnist/`, `fashion/`, `cifar10/`). Looked in first,
    /// then the project's `data/`, then the files are downloaded into `data/`.
    #[arg(long, env = dataset::DATA_DIR_ENV, global = true)]
    data_dir: Option<PathBuf>,
    /// Never download: fail if the files are not found.
    #[arg(long, global = true)]
    offline: bool,
    /// Data set: mnist, fashion, cifar10 or folder:DIR (DIR/train/<class>/*,
    /// DIR/test/<class>/*) [default: the config's, or the weights file's, else mnist].
    #[arg(long)]
    dataset: Option<DatasetChoice>,
}

impl DataArgs {
    /// `--dataset`, else `fallback` (a config's or weights file's), else MNIST.
    fn choice(&self, fallback: Option<&DatasetChoice>) -> DatasetChoice {
        dataset_choice(self.dataset.as_ref(), fallback)
    }

    fn load(&self, choice: &DatasetChoice) -> Result<(Samples, Samples)> {
        self.load_limited(choice, None, None)
    }

    /// The data set, keeping only the first `train_limit` / `test_limit` images if given.
    fn load_limited(
        &self,
        choice: &DatasetChoice,
        train_limit: Option<usize>,
        test_limit: Option<usize>,
    ) -> Result<(Samples, Samples)> {
        let dirs = DataDir::new(self.data_dir.clone()).with_download(!self.offline);
        let split = load_split(choice, &dirs)?;
        let (train, test) = (
            split.train.limited(train_limit),
            split.test.limited(test_limit),
        );
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
    fn network(&self) -> Result<(Network, Provenance)> {
        match &self.weights {
            Some(path) => weights_file::load(path),
            None => {
                let cfg = ExperimentConfig::default_config();
                let net = Network::new(
                    &Architecture {
                        input: InputShape::MNIST,
                        classes: 10,
                        layers: cfg.layers,
                    },
                    self.seed,
                )?;
                Ok((net, Provenance::default()))
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
    /// Test image index (otherwise read from standard input).
    #[arg(long, conflicts_with = "image")]
    index: Option<String>,
    /// Classify this PNG/JPEG instead. For a 28×28 grey network (MNIST) it is converted
    /// to a white digit on black, cropped, scaled to a 20-pixel box and centred by mass,
    /// as MNIST was made; for other networks it is resized to the network's input.
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

/// Settings shared by `train` and `compare`: each overrides the config's value.
#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Epochs to train (this run; a resumed run adds them).
    #[arg(long)]
    epochs: Option<usize>,
    /// Minibatch size B.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate η (α for Adam); AdaDelta has none.
    #[arg(long)]
    lr: Option<f32>,
    /// Seed for the initial weights, dropout masks and the minibatch order.
    #[arg(long)]
    seed: Option<u64>,
    /// Use only the first N training images (for quick runs).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Which code runs the network: `fast` (the sparse first layer and byte batches where
    /// the CPU has AVX-512) or `plain` (the course's layers only, every product a GEMM).
    /// The same seed trains the same network either way, up to rounding.
    #[arg(long, value_enum, default_value_t = KernelChoice::Fast)]
    kernels: KernelChoice,
}

impl RunArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            dataset: self.data.dataset.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KernelChoice {
    Fast,
    Plain,
}

impl From<KernelChoice> for Kernels {
    fn from(k: KernelChoice) -> Self {
        match k {
            KernelChoice::Fast => Kernels::Fast,
            KernelChoice::Plain => Kernels::Plain,
        }
    }
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Experiment config (TOML): layers, optimiser, regularisation, training settings.
    /// Default: configs/mlp-sigmoid.toml (the task-3 network), compiled in.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Hidden units M (the first affine layer's width).
    #[arg(long)]
    hidden: Option<usize>,
    /// Where to write the weights [default: runs/scratch/<config name>.safetensors, or the
    /// --resume file].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue training from these weights.
    #[arg(long)]
    resume: Option<PathBuf>,
}

#[derive(Args)]
struct EvalArgs {
    /// Trained weights (safetensors from `scratch train`).
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// Experiment configs to train, one curve each (e.g. configs/compare/*.toml).
    #[arg(required = true, num_args = 1..)]
    configs: Vec<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
    /// Folder for compare.png and compare.csv.
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
}

fn main() {
    let result = match cli::args::parse::<Cli>().command {
        Command::Gates => {
            print!("{}", gates::truth_tables());
            Ok(())
        }
        Command::Predict(a) => predict(a),
        Command::Loss(a) => loss(a),
        Command::Train(a) => train_command(a),
        Command::Eval(a) => eval(a),
        Command::Compare(a) => compare(a),
    };
    if let Err(e) = result {
        if let Some(stopped) = e.downcast_ref::<Interrupted>() {
            eprintln!("{stopped}");
            std::process::exit(130);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Data set names for a file's classes: the file's own, else "0", "1", ...
fn class_names(prov: &Provenance, classes: usize) -> Vec<String> {
    if prov.classes.len() == classes {
        prov.classes.clone()
    } else {
        (0..classes).map(|c| c.to_string()).collect()
    }
}

fn predict(args: PredictArgs) -> Result<()> {
    let (mut net, prov) = args.net.network()?;
    let names = class_names(&prov, net.arch.classes);
    if let Some(path) = &args.image {
        let input = net.arch.input;
        let pixels = image_input(path, input)?;
        let x = Array2::from_shape_vec((1, input.features()), pixels).expect("one input row");
        let probs = softmax_rows(&net.predict(&x, Mode::Eval));
        let p = probs.as_slice().expect("row-major");
        println!("{}: {}", path.display(), names[argmax(p)]);
        for (name, prob) in names.iter().zip(p) {
            println!("  {name}: {prob:.4}");
        }
        return Ok(());
    }
    let choice = args.data.choice(prov.dataset.as_ref());
    let (_, test) = args.data.load(&choice)?;
    check_fits(&net, &test, args.net.weights.as_deref())?;
    if test.is_empty() {
        bail!("the {choice} test set is empty: there is no image to predict");
    }
    let last = test.len() - 1;
    let text = match &args.index {
        Some(i) => i.clone(),
        None => read_index_from_stdin(last)?,
    };
    let index: usize = text
        .trim()
        .parse()
        .ok()
        .filter(|&i| i <= last)
        .with_context(|| {
            format!(
                "{} is not a test image index (expected an integer 0..={last})",
                shown(text.trim())
            )
        })?;
    let x = test.x().row(index).to_owned().insert_axis(ndarray::Axis(0));
    let logits = net.predict(&x, Mode::Eval);
    let class = argmax(logits.as_slice().expect("row-major"));
    println!("{}", names[class]);
    eprintln!(
        "(test image {index}: label {})",
        names[test.labels[index] as usize]
    );
    Ok(())
}

/// An image file as an input of `shape`, channels-last: a digit made MNIST-like for the
/// MNIST shape, anything else converted to grey or RGB and resized (bilinear).
fn image_input(path: &Path, shape: InputShape) -> Result<Vec<f32>> {
    let preprocess = if shape == InputShape::MNIST {
        Preprocess::Digits
    } else {
        Preprocess::Resize
    };
    let planes = image_input::read(
        path,
        ImageShape {
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
        },
        preprocess,
        Interpolation::Bilinear,
    )?;
    let mut input = vec![0.0; planes.len()];
    planes_to_channels_last(&planes, shape.channels, &mut input);
    Ok(input)
}

/// One line of standard input (at most 1 KiB of it), prompting on a terminal.
fn read_index_from_stdin(last: usize) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("test image index (0-{last}): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(1024)
        .read_line(&mut line)
        .context("cannot read standard input")?;
    if line.trim().is_empty() {
        bail!("no index given on standard input (expected an integer 0..={last})");
    }
    Ok(line)
}

/// `text` quoted for a message, cut to 40 characters.
fn shown(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{:?}...", &text[..at]),
        None => format!("{text:?}"),
    }
}

fn loss(args: LossArgs) -> Result<()> {
    let (mut net, prov) = args.net.network()?;
    let choice = args.data.choice(prov.dataset.as_ref());
    let (train, _) = args.data.load(&choice)?;
    check_fits(&net, &train, args.net.weights.as_deref())?;
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

fn print_epoch(name: Option<&str>, e: &EpochStats, of: usize) {
    println!(
        "{}epoch {:>3}/{}  loss {:.4}  train acc {:.4}  test acc {:.4}  time {:.2}s",
        name.map_or(String::new(), |n| format!("{n}: ")),
        e.epoch,
        of,
        e.loss,
        e.train_accuracy,
        e.test_accuracy,
        e.seconds
    );
}

fn train_command(args: TrainArgs) -> Result<()> {
    let exp = Experiment::new(args.config.as_deref(), &args.run.overrides())?;
    if args.resume.is_some() && (args.hidden.is_some() || args.config.is_some()) {
        eprintln!(
            "warning: --resume takes the network from the weights file; the layers of --config and --hidden are not used"
        );
    }
    let resumed = args
        .resume
        .as_ref()
        .map(|p| weights_file::load_with(p, args.run.kernels.into()))
        .transpose()?;
    let dataset = match (&resumed, &args.run.data.dataset) {
        (Some((_, prov)), None) => args.run.data.choice(prov.dataset.as_ref()),
        _ => exp.dataset.clone(),
    };
    let (train_set, test_set) =
        args.run
            .data
            .load_limited(&dataset, args.run.train_limit, args.run.test_limit)?;
    check_data(&train_set, &test_set, exp.cfg.train.shift)?;
    let (mut net, done) = match resumed {
        Some((net, prov)) => {
            check_fits(&net, &train_set, args.resume.as_deref())?;
            eprintln!(
                "resuming from {} ({} epochs done)",
                args.resume.as_deref().unwrap_or(Path::new("")).display(),
                prov.epochs
            );
            (net, prov.epochs)
        }
        None => {
            let mut arch = exp.architecture(&train_set)?;
            if let Some(m) = args.hidden {
                match arch
                    .layers
                    .iter_mut()
                    .find(|l| matches!(l, LayerSpec::Affine { .. }))
                {
                    Some(LayerSpec::Affine { units, .. }) => *units = m,
                    _ => bail!("--hidden: the config has no affine layer"),
                }
            }
            let net = Network::with_kernels(&arch, exp.seed, args.run.kernels.into())
                .context("invalid network")?;
            (net, 0)
        }
    };
    let out = args
        .out
        .clone()
        .or_else(|| args.resume.clone())
        .unwrap_or_else(|| Path::new("runs/scratch").join(format!("{}.safetensors", exp.name)));
    check_out(&out)?;

    let mut opt = optimizer::build(&exp.optimizer);
    println!(
        "network {}; {:?}; batch {}; {}: {} train / {} test images",
        net.arch.describe(),
        exp.optimizer,
        exp.batch_size,
        dataset,
        train_set.len(),
        test_set.len()
    );
    let stop = cli::interrupt::flag();
    let outcome = train(
        &mut net,
        opt.as_mut(),
        &train_set,
        &test_set,
        &exp.options(done, std::io::stderr().is_terminal()),
        stop,
        |e| print_epoch(None, e, done + exp.epochs),
    );
    let epochs_done = done + outcome.epochs.len();
    if let Some(epoch) = outcome.diverged {
        bail!(
            "the training diverged in epoch {epoch}: its loss became NaN or infinite, or over \
             {}x the first minibatch's (or ln of the class count); try a smaller --lr. {} was \
             not written",
            scratch::train::DIVERGENCE_FACTOR,
            out.display()
        );
    }
    weights_file::save(
        &out,
        &net,
        &Provenance {
            epochs: epochs_done,
            dataset: Some(dataset.clone()),
            classes: train_set.classes.clone(),
        },
    )?;
    if outcome.interrupted {
        return Err(Interrupted(format!(
            "saved the weights after {epochs_done} complete epochs (and the partial one) to {}",
            out.display()
        ))
        .into());
    }
    println!("saved weights to {}", out.display());
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let (mut net, prov) = weights_file::load(&args.weights)?;
    let choice = args.data.choice(prov.dataset.as_ref());
    let (_, test) = args.data.load(&choice)?;
    check_fits(&net, &test, Some(&args.weights))?;
    if test.is_empty() {
        bail!("the {choice} test set is empty: there is nothing to evaluate");
    }
    let acc = accuracy(&mut net, &test);
    println!(
        "{} ({} epochs): test accuracy {:.4} ({} {choice} images)",
        args.weights.display(),
        prov.epochs,
        acc,
        test.len()
    );
    println!("confusion matrix (rows: true class, columns: predicted)");
    let matrix = confusion_matrix(&mut net, &test);
    print!(
        "{}",
        cli::table::confusion(&class_names(&prov, net.arch.classes), &matrix)
    );
    Ok(())
}

fn compare(args: CompareArgs) -> Result<()> {
    // Read every config and check its layers before training any.
    let experiments = args
        .configs
        .iter()
        .map(|p| Experiment::new(Some(p), &args.run.overrides()))
        .collect::<Result<Vec<_>>>()?;
    let mut data: Vec<(DatasetChoice, (Samples, Samples))> = Vec::new();
    for exp in &experiments {
        if !data.iter().any(|(d, _)| *d == exp.dataset) {
            let loaded = args.run.data.load_limited(
                &exp.dataset,
                args.run.train_limit,
                args.run.test_limit,
            )?;
            data.push((exp.dataset.clone(), loaded));
        }
    }
    let data_of = |exp: &Experiment| {
        &data
            .iter()
            .find(|(d, _)| *d == exp.dataset)
            .expect("loaded above")
            .1
    };
    let archs = experiments
        .iter()
        .map(|exp| exp.architecture(&data_of(exp).0))
        .collect::<Result<Vec<_>>>()?;

    let stop = cli::interrupt::flag();
    let mut runs = Vec::new();
    let mut interrupted = false;
    for (exp, arch) in experiments.iter().zip(&archs) {
        let (train_set, test_set) = data_of(exp);
        println!(
            "{}: {}; {:?}; batch {}; {}",
            exp.name,
            arch.describe(),
            exp.optimizer,
            exp.batch_size,
            exp.dataset
        );
        let mut net = Network::new(arch, exp.seed)?;
        let mut opt = optimizer::build(&exp.optimizer);
        let outcome = train(
            &mut net,
            opt.as_mut(),
            train_set,
            test_set,
            &exp.options(0, std::io::stderr().is_terminal()),
            stop,
            |e| print_epoch(Some(&exp.name), e, exp.epochs),
        );
        if let Some(epoch) = outcome.diverged {
            eprintln!(
                "{}: the loss became NaN or infinite in epoch {epoch}; its curve stops there",
                exp.name
            );
        }
        interrupted = outcome.interrupted;
        runs.push(compare::Run {
            name: exp.name.clone(),
            epochs: outcome.epochs,
        });
        if interrupted {
            break;
        }
    }
    let wrote = compare::write(&args.out, &runs)?;
    if interrupted {
        return Err(Interrupted(format!("{wrote} (the runs so far)")).into());
    }
    println!("{wrote}");
    Ok(())
}
