//! The subcommands: argument parsing and the calls into the library, one file each.

pub mod compare;
pub mod eval;
pub mod loss;
pub mod predict;
pub mod train;
pub mod visualize;

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dataset::DataDir;

use dataset::DatasetChoice;
use scratch::data::{Samples, load_split};
use scratch::experiment::{Overrides, dataset_choice};
use scratch::network::{Kernels, Network};
use scratch::spec::{Architecture, ExperimentConfig, InputShape};
use scratch::train::EpochStats;
use scratch::weights_file::{self, Provenance};

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Folder holding the data sets (`mnist/`, `fashion/`, `cifar10/`). Looked in first,
    /// then the project's `data/`, then the files are downloaded into `data/`.
    #[arg(long, env = dataset::DATA_DIR_ENV, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Never download: fail if the files are not found.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Data set: mnist, fashion, cifar10 or folder:DIR (DIR/train/<class>/*,
    /// DIR/test/<class>/*) [default: the config's, or the weights file's, else mnist].
    #[arg(long)]
    pub dataset: Option<DatasetChoice>,
}

impl DataArgs {
    /// `--dataset`, else `fallback` (a config's or weights file's), else MNIST.
    pub fn choice(&self, fallback: Option<&DatasetChoice>) -> DatasetChoice {
        dataset_choice(self.dataset.as_ref(), fallback)
    }

    pub fn load(&self, choice: &DatasetChoice) -> Result<(Samples, Samples)> {
        self.load_limited(choice, None, None)
    }

    /// The data set, keeping only the first `train_limit` / `test_limit` images if given.
    pub fn load_limited(
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
pub struct NetworkArgs {
    /// Trained weights (safetensors from `scratch train`). Without it the network has
    /// random weights drawn from N(0, 1/N) with --seed.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed for the random weights.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl NetworkArgs {
    pub fn network(&self) -> Result<(Network, Provenance)> {
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

/// Settings shared by `train` and `compare`: each overrides the config's value.
#[derive(Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Epochs to train (this run; a resumed run adds them).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Minibatch size B.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate η (α for Adam); AdaDelta has none.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Seed for the initial weights, dropout masks and the minibatch order.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use only the first N training images (for quick runs).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Which code runs the network: `fast` (the sparse first layer and byte batches where
    /// the CPU has AVX-512) or `plain` (the course's layers only, every product a GEMM).
    /// The same seed trains the same network either way, up to rounding.
    #[arg(long, value_enum, default_value_t = KernelChoice::Fast)]
    pub kernels: KernelChoice,
}

impl RunArgs {
    pub fn overrides(&self) -> Overrides {
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
pub enum KernelChoice {
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

pub fn print_epoch(name: Option<&str>, e: &EpochStats, of: usize) {
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
