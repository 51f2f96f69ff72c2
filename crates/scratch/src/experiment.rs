//! A training run as the command line describes it: the experiment config with the
//! flags' overrides applied, and the checks made before any work (data, network and
//! output file fit together; nothing of the user's is overwritten).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dataset::DatasetChoice;

use crate::data::Samples;
use crate::network::Network;
use crate::spec::{Architecture, ExperimentConfig, OptimizerSpec};
use crate::train::TrainOptions;
use crate::weights_file;

/// What the command line may change in a config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub dataset: Option<DatasetChoice>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub lr: Option<f32>,
    pub seed: Option<u64>,
}

/// `flag` (`--dataset`), else `fallback` (a config's or weights file's), else MNIST.
pub fn dataset_choice(
    flag: Option<&DatasetChoice>,
    fallback: Option<&DatasetChoice>,
) -> DatasetChoice {
    flag.or(fallback).cloned().unwrap_or(DatasetChoice::Mnist)
}

/// A config with the command line's overrides applied.
pub struct Experiment {
    /// The config file's stem ("mlp-sigmoid" for the built-in default).
    pub name: String,
    pub cfg: ExperimentConfig,
    pub dataset: DatasetChoice,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub optimizer: OptimizerSpec,
}

impl Experiment {
    /// The config at `path` (the built-in default without one) with `overrides` applied,
    /// every setting checked before any work.
    pub fn new(path: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        let (cfg, name) = match path {
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
        let origin = path.map_or("configs/mlp-sigmoid.toml".into(), |p| {
            p.display().to_string()
        });
        let optimizer = match overrides.lr {
            Some(lr) => cfg.optimizer.with_lr(lr)?,
            None => cfg.optimizer.clone(),
        };
        optimizer
            .validate()
            .with_context(|| format!("{origin} (or --lr)"))?;
        let batch_size = overrides.batch_size.unwrap_or(cfg.train.batch_size);
        if batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        let epochs = overrides.epochs.unwrap_or(cfg.train.epochs);
        if epochs == 0 {
            bail!("--epochs must be at least 1 (there is nothing to train or save otherwise)");
        }
        let decay = cfg.train.lr_decay;
        if !(decay.is_finite() && decay > 0.0 && decay <= 1.0) {
            bail!("{origin}: [train] lr_decay = {decay} must be in (0, 1]");
        }
        Ok(Self {
            dataset: dataset_choice(overrides.dataset.as_ref(), cfg.train.dataset.as_ref()),
            epochs,
            seed: overrides.seed.unwrap_or(cfg.train.seed),
            batch_size,
            optimizer,
            name,
            cfg,
        })
    }

    /// The network for `data`, checked before any training starts.
    pub fn architecture(&self, data: &Samples) -> Result<Architecture> {
        let arch = Architecture {
            input: data.input_shape(),
            classes: data.classes.len(),
            layers: self.cfg.layers.clone(),
        };
        arch.validate().with_context(|| {
            format!(
                "config {}: the layers do not fit {}",
                self.name, self.dataset
            )
        })?;
        Ok(arch)
    }

    pub fn options(&self, first_epoch: usize, progress: bool) -> TrainOptions {
        TrainOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: self.seed,
            first_epoch,
            progress,
            regularization: self.cfg.regularization,
            lr_decay: self.cfg.train.lr_decay,
            shift: self.cfg.train.shift,
            train_eval_limit: self.cfg.train.train_eval_limit,
        }
    }
}

/// The network's input and classes must match the data's.
pub fn check_fits(net: &Network, data: &Samples, weights: Option<&Path>) -> Result<()> {
    let shape = data.input_shape();
    if net.arch.input != shape || net.arch.classes < data.classes.len() {
        bail!(
            "{}: the network takes {} inputs with {} classes; the data has {shape} images with {} classes",
            weights.map_or("the network".into(), |p| p.display().to_string()),
            net.arch.input,
            net.arch.classes,
            data.classes.len()
        );
    }
    Ok(())
}

/// Training and test sets must be usable together, before any work: not empty, samples
/// of one shape, and augmentation shifts smaller than the images.
pub fn check_data(train: &Samples, test: &Samples, shift: usize) -> Result<()> {
    if train.is_empty() {
        bail!("no training images (is --train-limit 0, or the file empty?)");
    }
    if test.is_empty() {
        bail!("no test images (is --test-limit 0, or the file empty?)");
    }
    let (a, b) = (train.input_shape(), test.input_shape());
    if a != b {
        bail!("the training images are {a} but the test images {b}: they must have one shape");
    }
    if shift > 0 && (shift >= a.height || shift >= a.width) {
        bail!(
            "[train] shift = {shift} pixels is not smaller than the {}x{} images",
            a.height,
            a.width
        );
    }
    Ok(())
}

/// `--out` may replace only a weights file `scratch` wrote, and its folder must take a new
/// file: both checked before training, so that nothing is lost and no run's work is.
pub fn check_out(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "{}: is a folder; --out names the weights file to write",
            out.display()
        );
    }
    if out.exists() && weights_file::load(out).is_err() {
        bail!(
            "{}: exists and is not a scratch weights file; it is not replaced (choose another --out)",
            out.display()
        );
    }
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("{}: cannot create the folder for --out", folder.display()))?;
    let probe = tempfile::NamedTempFile::new_in(&folder)
        .with_context(|| format!("{}: cannot write the weights file there", folder.display()))?;
    drop(probe);
    Ok(())
}
