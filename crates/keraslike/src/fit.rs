//! `model.fit()`: burn-train's supervised training of a [`Sequential`] classifier, with
//! checkpoints every epoch, `--resume`, Ctrl-C, and a Keras-style history.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::lr_scheduler::exponential::ExponentialLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::renderer::MetricsRenderer;
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::{
    ClassificationOutput, InferenceStep, Interrupter, Learner, SupervisedTraining, TrainOutput,
    TrainStep,
};

use crate::data::{ImageBatch, ImageBatcher, ImageItem};
use crate::history::History;
use crate::model::Sequential;
use crate::optimizer::Optimizer;
use crate::renderer::EpochRenderer;

impl Sequential {
    /// Logits, the cross-entropy of the batch, and the targets (what burn's metrics read).
    pub fn classification(&self, batch: ImageBatch) -> ClassificationOutput {
        let logits = self.forward_logits(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl TrainStep for Sequential {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.classification(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Sequential {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ImageBatch) -> ClassificationOutput {
        self.classification(batch)
    }
}

/// `fit`'s settings (Keras's `compile` and `fit` arguments).
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// The last epoch to train (as Keras's `epochs` with `initial_epoch` on resume).
    pub epochs: usize,
    pub batch_size: usize,
    /// The optimiser with its Keras hyper-parameters.
    pub optimizer: Optimizer,
    pub learning_rate: f64,
    /// The learning rate's factor per epoch (1: constant).
    pub lr_decay: f64,
    /// Shuffling seed (the model's initial weights are seeded by the caller).
    pub seed: u64,
    /// Threads preparing batches.
    pub workers: usize,
    /// Continue from the last checkpoint in the output folder.
    pub resume: bool,
}

pub struct Fitted {
    /// The trained model, in inference mode.
    pub model: Sequential,
    /// All epochs, those of earlier runs resumed included.
    pub history: History,
    /// Training stopped early (Ctrl-C, or `q` in the dashboard).
    pub interrupted: bool,
}

/// The last epoch checkpointed in `out/checkpoint`, if any.
pub fn last_checkpoint(out: &Path) -> Option<usize> {
    let dir = out.join("checkpoint");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()
        })
        .max()
}

/// The history file of a run in `out`.
pub fn history_path(out: &Path) -> PathBuf {
    out.join("history.csv")
}

/// Trains `model` on `train`, validating on `valid` after every epoch. Writes into `out`:
/// checkpoints (`checkpoint/`), burn's metric logs, and `history.csv` with its figures.
pub fn fit<T, V>(
    model: Sequential,
    train: T,
    valid: V,
    batcher: ImageBatcher,
    out: &Path,
    options: &FitOptions,
) -> Result<Fitted>
where
    T: Dataset<ImageItem> + 'static,
    V: Dataset<ImageItem> + 'static,
{
    let start = match (options.resume, last_checkpoint(out)) {
        (true, Some(epoch)) => Some(epoch),
        (true, None) => bail!(
            "{}: nothing to resume (no checkpoint/model-N.bpk); drop --resume to start afresh",
            out.display()
        ),
        (false, Some(_)) => bail!(
            "{}: already holds a training run; pass --resume to continue it, or choose another --out",
            out.display()
        ),
        (false, None) => None,
    };
    let mut history = match start {
        Some(_) => History::load_or_empty(&history_path(out))?,
        None => History::default(),
    };
    if let Some(epoch) = start {
        history.epochs.retain(|r| r.epoch <= epoch);
        if epoch >= options.epochs {
            println!(
                "{}: already trained for {epoch} epochs (--epochs {}); nothing to do",
                out.display(),
                options.epochs
            );
        } else {
            println!("Resuming from epoch {epoch} ({})", out.display());
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;

    // Decay is applied per step, so an epoch of n steps multiplies the rate by lr_decay.
    let schedule = if options.lr_decay == 1.0 {
        ModuleLrScheduler::from(options.learning_rate)
    } else {
        let steps = train.len().div_ceil(options.batch_size).max(1);
        ExponentialLrSchedulerConfig::new(
            options.learning_rate,
            options.lr_decay.powf(1.0 / steps as f64),
        )
        .init()
        .map_err(|e| anyhow::anyhow!("learning-rate schedule: {e}"))?
    };
    let train_loader = DataLoaderBuilder::new(batcher)
        .batch_size(options.batch_size)
        .shuffle(options.seed)
        .num_workers(options.workers)
        .build(train);
    let valid_loader = DataLoaderBuilder::new(batcher)
        .batch_size(options.batch_size)
        .num_workers(options.workers)
        .build(valid);

    let interrupter = Interrupter::new();
    {
        let interrupter = interrupter.clone();
        // A second fit in the same process keeps the first handler (same interrupter
        // semantics); the error is only "handler already set".
        let _ = ctrlc::set_handler(move || interrupter.stop(Some("interrupted (Ctrl-C)")));
    }
    let shared = Arc::new(Mutex::new(history));
    let on_terminal = std::io::stdout().is_terminal();
    let dashboard: Option<Box<dyn MetricsRenderer>> = on_terminal
        .then(|| Box::new(TuiMetricsRendererWrapper::new(interrupter.clone(), start)) as _);
    let renderer = EpochRenderer::new(dashboard, shared.clone());

    let mut training = SupervisedTraining::new(out, train_loader, valid_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_default_checkpointers()
        .num_epochs(options.epochs)
        .with_interrupter(interrupter)
        .renderer(Box::new(renderer));
    if let Some(epoch) = start {
        training = training.checkpoint(epoch);
    }
    let result = training.launch(Learner::new(model, options.optimizer.build(), schedule));

    let history = shared.lock().map(|h| h.clone()).unwrap_or_default();
    history.save(out)?;
    if on_terminal {
        // The dashboard has closed: leave the epochs on screen as Keras does.
        for record in &history.epochs {
            println!("{}", record.line(options.epochs));
        }
    }
    if let Some(error) = result.error {
        bail!("training failed: {error}");
    }
    Ok(Fitted {
        model: result.model,
        history,
        interrupted: result.interrupted.is_some(),
    })
}
