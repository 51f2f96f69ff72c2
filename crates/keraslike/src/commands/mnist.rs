//! Exercise B1: the course's CNN (or any config) trained on MNIST with the test set as
//! validation data.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::module::Module;
use clap::{Args, ValueEnum};
use dataset::{DataDir, LabelledImages, MnistKind};

use keraslike::backend::{self, Backend};
use keraslike::data::{ImageBatcher, InMemoryImages};
use keraslike::evaluate::evaluate;
use keraslike::fit::{FitOptions, fit};
use keraslike::model::Sequential;
use keraslike::model_config::{ModelConfig, summary_table};
use keraslike::optimizer::OptimizerKind;
use keraslike::saved_model::{self, DataSource, ModelCard, Preprocess};

use super::DataArgs;

#[derive(Clone, Copy, ValueEnum)]
pub enum MnistName {
    Mnist,
    Fashion,
}

#[derive(Args)]
pub struct MnistArgs {
    /// Model and training settings (TOML) [default: the course's CNN, configs/mnist-cnn.toml].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Last epoch to train [default: the config's, else 10].
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step [default: the config's, else 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Optimiser [default: the config's, else adadelta].
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Learning rate [default: the config's, else the optimiser's: adadelta 1.0, adam and
    /// rmsprop 0.001, sgd 0.01].
    #[arg(long)]
    lr: Option<f64>,
    /// Output folder [default: runs/keraslike/<config name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, up to --epochs.
    #[arg(long)]
    resume: bool,
    /// Seed of the initial weights, shuffling and dropout [default: the config's, else 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Train on the first N training images only.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Validate and test on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = MnistName::Mnist)]
    dataset: MnistName,
    #[command(flatten)]
    data: DataArgs,
    /// Where the model runs: flex (fastest on CPU), ndarray, or wgpu (GPU).
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
    /// Threads preparing batches.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

const COURSE_CNN: &str = include_str!("../../../../configs/mnist-cnn.toml");

pub fn load_mnist(
    kind: MnistKind,
    data: &DataArgs,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<(LabelledImages, LabelledImages)> {
    let dirs = DataDir::new(data.data_dir.clone()).with_download(!data.offline);
    let split = dataset::mnist::load(kind, &dirs)?;
    let keep = |images: LabelledImages, limit: Option<usize>| match limit {
        Some(n) => images.truncate(n),
        None => images,
    };
    Ok((keep(split.train, train_limit), keep(split.test, test_limit)))
}

pub fn run(args: MnistArgs) -> Result<()> {
    let (config, name) = match &args.config {
        Some(path) => (
            ModelConfig::load(path)?,
            path.file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
        ),
        None => (
            ModelConfig::parse(COURSE_CNN, "configs/mnist-cnn.toml")?,
            "mnist-cnn".to_string(),
        ),
    };
    let infos = config.infer()?;
    if config.input != [1, 28, 28] {
        bail!(
            "MNIST images are [1, 28, 28]; the model's input is {:?}",
            config.input
        );
    }
    let (optimizer, learning_rate) = config.compile.resolve(args.optimizer, args.lr);
    let options = FitOptions {
        epochs: args.epochs.or(config.fit.epochs).unwrap_or(10),
        batch_size: args.batch_size.or(config.fit.batch_size).unwrap_or(32),
        optimizer,
        learning_rate,
        seed: args.seed.or(config.fit.seed).unwrap_or(42),
        workers: args.workers,
        resume: args.resume,
    };
    if options.epochs == 0 || options.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs/keraslike").join(&name));
    let (kind, source) = match args.dataset {
        MnistName::Mnist => (MnistKind::Digits, DataSource::Mnist),
        MnistName::Fashion => (MnistKind::Fashion, DataSource::Fashion),
    };
    let train_limit = args.train_limit.or(config.fit.train_limit);
    let (train, test) = load_mnist(kind, &args.data, train_limit, args.test_limit)?;
    let classes = train.classes.clone();
    let shape = train.shape;

    let device = backend::device(args.backend)?;
    device.seed(options.seed);
    // Parameters live on the autodiff device so that training can differentiate them.
    let model = Sequential::new(&config, &device.clone().autodiff())?;
    print!("{}", summary_table(&name, &infos));
    println!(
        "Train on {} images, validate on {} ({:?}, {:?} lr {}, batch {}, {} epochs) -> {}",
        train.len(),
        test.len(),
        args.backend,
        options.optimizer,
        options.learning_rate,
        options.batch_size,
        options.epochs,
        out.display()
    );

    let test = InMemoryImages::new(test);
    let fitted = fit(
        model,
        InMemoryImages::new(train),
        test.clone(),
        ImageBatcher::unit(shape),
        &out,
        &options,
    )?;
    let card = ModelCard {
        classes: classes.clone(),
        preprocess: Preprocess::Digits,
        source,
        model: config,
    };
    let model_path = out.join("model.bpk");
    saved_model::save(&model_path, &fitted.model, &card)?;

    let plain = device.clone();
    let result = evaluate(
        &fitted.model.valid(),
        test,
        ImageBatcher::unit(shape),
        classes.len(),
        256,
        &plain,
    )?;
    println!("Confusion matrix (rows: true digit, columns: predicted):");
    print!("{}", result.confusion_table(&classes));
    result.write_confusion_csv(&out.join("confusion.csv"), &classes)?;
    println!("Test loss: {:.4}", result.loss);
    println!("Test accuracy: {:.4}", result.accuracy());
    println!(
        "Wrote {} (+ model.toml), history.csv, loss.png, acc.png, confusion.csv in {}",
        model_path.display(),
        out.display()
    );
    if fitted.interrupted {
        eprintln!("interrupted: the model and history so far were saved; --resume continues");
        std::process::exit(130);
    }
    Ok(())
}
