//! `model.fit()`: burn-train's supervised training of a [`Sequential`] classifier, with
//! checkpoints every epoch, `--resume`, Ctrl-C, and a Keras-style history.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::log_softmax;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::renderer::MetricsRenderer;
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::{
    ClassificationOutput, InferenceStep, Interrupter, Learner, SupervisedTraining, TrainOutput,
    TrainStep,
};

use crate::callbacks::{CallbackOptions, Callbacks};
use crate::checkpoints::KeepLastAndBest;
use crate::data::{ImageBatch, ImageBatcher, ImageItem, WeightedBatcher};
use crate::guard::TrainingGuard;
use crate::history::History;
use crate::loader::OrderedLoader;
use crate::lr_schedule::{Schedule, ScheduledLr};
use crate::model::Sequential;
use crate::optimizer::Optimizer;
use crate::renderer::{CallbackHook, EpochRenderer};
use crate::run_folder;

impl Sequential {
    /// Logits, the cross-entropy of the batch (its images' weights applied, as Keras's
    /// `class_weight`: the mean of the weighted losses), and the targets (what burn's
    /// metrics read).
    pub fn classification(&self, batch: ImageBatch) -> ClassificationOutput {
        let logits = self.forward_logits(batch.images);
        let loss = match batch.weights {
            None => CrossEntropyLossConfig::new()
                .init(&logits.device())
                .forward(logits.clone(), batch.targets.clone()),
            Some(weights) => {
                let n = batch.targets.dims()[0];
                let log_p = log_softmax(logits.clone(), 1);
                let picked = log_p.gather(1, batch.targets.clone().reshape([n, 1]));
                (picked.reshape([n]).neg() * weights).mean()
            }
        };
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
    /// How the learning rate changes from epoch to epoch.
    pub schedule: Schedule,
    /// Keras's EarlyStopping, ModelCheckpoint(save_best_only) and ReduceLROnPlateau.
    pub callbacks: CallbackOptions,
    /// Shuffling seed (the model's initial weights are seeded by the caller).
    pub seed: u64,
    /// Threads preparing batches.
    pub workers: usize,
    /// Continue from the last checkpoint in the output folder.
    pub resume: bool,
    /// Replace the outputs of an earlier run in the output folder.
    pub overwrite: bool,
    /// The classifier's number of classes (its outputs), for the divergence check.
    pub classes: usize,
    /// Training and validation items per epoch when not whole passes (Keras's
    /// `steps_per_epoch` and `validation_steps`, times the batch size).
    pub train_items: Option<usize>,
    pub valid_items: Option<usize>,
    /// Keras's `class_weight`, resolved: one weight per class for the training loss.
    pub class_weights: Option<Vec<f32>>,
    /// Reshuffle the training data every pass (Keras's `shuffle=True`); `false` keeps
    /// the data's own order.
    pub shuffle: bool,
}

pub struct Fitted {
    /// The trained model, in inference mode.
    pub model: Sequential,
    /// All epochs, those of earlier runs resumed included.
    pub history: History,
    /// Training stopped early (Ctrl-C, or `q` in the dashboard).
    pub interrupted: bool,
    /// The epoch whose weights `model` holds when a callback chose it (EarlyStopping's
    /// `restore_best_weights`, ModelCheckpoint's `save_best_only`).
    pub kept_epoch: Option<usize>,
    /// The epoch EarlyStopping stopped after.
    pub stopped_early: Option<usize>,
}

/// The last epoch checkpointed in `out/checkpoint`, if any.
pub fn last_checkpoint(out: &Path) -> Option<usize> {
    crate::checkpoints::saved_epochs(out).last().copied()
}

/// The history file of a run in `out`.
pub fn history_path(out: &Path) -> PathBuf {
    out.join("history.csv")
}

/// What a training run writes into its folder: `--overwrite` removes these and nothing
/// else.
const RUN_OUTPUTS: [&str; 14] = [
    "checkpoint",
    "train",
    "valid",
    "history.csv",
    "loss.png",
    "acc.png",
    "model.bpk",
    "model.toml",
    "model.safetensors",
    "confusion.csv",
    "misclassified.png",
    "predictions.csv",
    "experiment.log",
    "summary.txt",
];

/// The model of checkpoint `epoch` in `out`, loaded into `model`'s shape. A checkpoint
/// that does not fit the config is an error here: burn would panic on the mismatch inside
/// training.
fn load_checkpoint(out: &Path, epoch: usize, model: &Sequential) -> Result<Sequential> {
    let path = out.join("checkpoint").join(format!("model-{epoch}.bpk"));
    let record = burn::store::ModuleRecord::load(&path)
        .map_err(|e| anyhow::anyhow!("{}: not a burnpack checkpoint: {e}", path.display()))?;
    model.clone().try_load_record(record).map_err(|e| {
        anyhow::anyhow!(
            "{}: does not fit the model of this config ({e}); resume with the config that \
             started the run",
            path.display()
        )
    })
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
    if train.is_empty() {
        bail!("no training images: there is nothing to train on");
    }
    if valid.is_empty() {
        bail!("no validation images: there is nothing to validate on");
    }
    let start = match (options.resume, last_checkpoint(out)) {
        (true, Some(epoch)) => {
            if options.overwrite {
                bail!("--resume continues the run in --out and --overwrite replaces it: pass one");
            }
            run_folder::check_writable(out)?;
            let trained = load_checkpoint(out, epoch, &model)?;
            if epoch >= options.epochs {
                // Nothing to train: the checkpoint is the model, and training is not started.
                println!(
                    "{}: already trained for {epoch} epochs (--epochs {}); nothing to do",
                    out.display(),
                    options.epochs
                );
                let mut history: History = History::load_or_empty(&history_path(out))?;
                history.epochs.retain(|r| r.epoch <= epoch);
                return Ok(Fitted {
                    model: trained,
                    history,
                    interrupted: false,
                    kept_epoch: None,
                    stopped_early: None,
                });
            }
            Some(epoch)
        }
        (true, None) => bail!(
            "{}: nothing to resume (no checkpoint/model-N.bpk); drop --resume to start afresh",
            out.display()
        ),
        (false, _) => {
            run_folder::prepare_new(out, options.overwrite, &RUN_OUTPUTS)?;
            None
        }
    };
    let mut history: History = match start {
        Some(_) => History::load_or_empty(&history_path(out))?,
        None => History::default(),
    };
    if let Some(epoch) = start {
        history.epochs.retain(|r| r.epoch <= epoch);
        println!("Resuming from epoch {epoch} ({})", out.display());
    }
    let mut callbacks = options.callbacks.build()?;
    if callbacks.reduce_lr.is_some() && !options.schedule.is_constant() {
        // As Keras, which cannot set the rate of an optimiser driven by a schedule.
        bail!("ReduceLROnPlateau needs a constant learning rate: drop lr_schedule / lr_decay");
    }
    callbacks.replay(&history.epochs, options.learning_rate);
    let steps_per_epoch = options
        .train_items
        .unwrap_or(train.len())
        .div_ceil(options.batch_size)
        .max(1);
    let schedule = ModuleLrScheduler::new(ScheduledLr::new(
        options.schedule,
        options.learning_rate,
        steps_per_epoch,
        options.epochs,
        start.unwrap_or(0),
        callbacks.lr_factor.clone(),
    ));
    let callbacks = Arc::new(Mutex::new(callbacks));
    // Batches in one order whatever the number of workers: a seeded fit repeats exactly.
    // Class weights apply to the training batches only (Keras weighs no validation loss).
    let train_batcher = WeightedBatcher {
        inner: batcher,
        class_weights: options.class_weights.clone(),
    };
    let train_loader: Arc<dyn DataLoader<ImageBatch>> = Arc::new(
        OrderedLoader::new(
            train,
            train_batcher,
            options.batch_size,
            options.workers,
            options.shuffle.then_some(options.seed),
        )
        .per_pass(options.train_items),
    );
    // Validation steps draw from a shuffled cycle (as Keras's flow_from_directory does);
    // whole passes keep the data's order.
    let valid_shuffle = options.valid_items.map(|_| options.seed ^ 0x5eed);
    let valid_loader: Arc<dyn DataLoader<ImageBatch>> = Arc::new(
        OrderedLoader::new(
            valid,
            batcher,
            options.batch_size,
            options.workers,
            valid_shuffle,
        )
        .per_pass(options.valid_items),
    );

    let interrupter = Interrupter::new();
    {
        let interrupter = interrupter.clone();
        cli::interrupt::on_request(move || interrupter.stop(Some("interrupted (Ctrl-C)")));
    }
    let shared = Arc::new(Mutex::new(history));
    let on_terminal = std::io::stdout().is_terminal();
    let dashboard: Option<Box<dyn MetricsRenderer>> = on_terminal
        .then(|| Box::new(TuiMetricsRendererWrapper::new(interrupter.clone(), start)) as _);
    let guard = TrainingGuard::new(interrupter.clone(), options.classes);
    let hook = CallbackHook {
        callbacks: callbacks.clone(),
        interrupter: interrupter.clone(),
        base_lr: options.learning_rate,
    };
    let renderer = EpochRenderer::new(dashboard, shared.clone(), out, guard.clone(), hook);
    let template = model.clone();

    let mut training = SupervisedTraining::new(out, train_loader, valid_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_default_checkpointers()
        .with_checkpointing_strategy(KeepLastAndBest::new(out, callbacks.clone()))
        .num_epochs(options.epochs)
        .with_interrupter(interrupter)
        .renderer(Box::new(renderer));
    if let Some(epoch) = start {
        training = training.checkpoint(epoch);
    }
    let result = training.launch(Learner::new(model, options.optimizer.build(), schedule));

    let history = shared.lock().map(|h| h.clone()).unwrap_or_default();
    history.save(out)?;
    let mut callbacks = callbacks
        .lock()
        .map(|c| c.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    if on_terminal {
        // The dashboard has closed: leave the epochs on screen as Keras does.
        for record in &history.epochs {
            println!("{}", record.line(options.epochs));
        }
    }
    for message in callbacks.take_messages() {
        println!("{message}");
    }
    if let Some(error) = result.error {
        bail!("training failed: {error}");
    }
    if let Some(reason) = guard.reason() {
        let good = history
            .epochs
            .iter()
            .rfind(|r| r.loss.is_finite() && r.val_loss.is_finite())
            .map(|r| r.epoch);
        bail!(
            "{reason}: training stopped and no model was written (history.csv has the epochs \
             run{}); a lower learning rate usually cures this",
            good.map(|e| format!(", the last finite one epoch {e}"))
                .unwrap_or_default()
        );
    }
    let stopped_early = callbacks
        .early_stopping
        .as_ref()
        .and_then(|e| e.stopped_epoch);
    let last = history.epochs.last().map(|r| r.epoch);
    let kept_epoch = callbacks.kept_epoch();
    if let Some(epoch) = kept_epoch {
        println!("{}", kept_message(&callbacks, epoch));
    }
    let model = match kept_epoch {
        Some(epoch) if Some(epoch) != last => load_checkpoint(out, epoch, &template)?,
        _ => result.model,
    };
    Ok(Fitted {
        model,
        history,
        interrupted: result.interrupted.is_some() && stopped_early.is_none(),
        kept_epoch,
        stopped_early,
    })
}

/// What the run ends with, as Keras says it.
fn kept_message(callbacks: &Callbacks, epoch: usize) -> String {
    let restoring = callbacks
        .early_stopping
        .as_ref()
        .is_some_and(|e| e.restore_best_weights);
    if restoring {
        format!("Restoring model weights from the end of the best epoch: {epoch}.")
    } else {
        let monitor = callbacks
            .best_checkpoint
            .as_ref()
            .map_or("val_loss", |b| b.monitor.name());
        format!("save_best_only: the model kept is epoch {epoch}'s, the best {monitor}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_config::ModelConfig;
    use burn::tensor::{Device, Int, Tensor, TensorData};

    /// Keras's class_weight: the batch mean of each image's cross-entropy times its
    /// class's weight; weights of 1 give the plain cross-entropy.
    #[test]
    fn class_weights_scale_each_images_loss_and_average_over_the_batch() {
        let config = ModelConfig::parse(
            "input = [1, 2, 2]\n[[layers]]\ntype = \"Flatten\"\n\
             [[layers]]\ntype = \"Dense\"\nunits = 3\nactivation = \"softmax\"\n",
            "t.toml",
        )
        .unwrap();
        let device = Device::flex();
        let model = Sequential::new(&config, &device).unwrap();
        let images = Tensor::<4>::from_data(
            TensorData::new(
                (0..20).map(|i| (i as f32 * 0.37).sin()).collect(),
                [5, 1, 2, 2],
            ),
            &device,
        );
        let labels = [0i64, 1, 2, 0, 1];
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [5]), &device);
        let loss = |weights: Option<[f32; 3]>| {
            let weights = weights.map(|w| {
                let per_image: Vec<f32> = labels.iter().map(|&l| w[l as usize]).collect();
                Tensor::<1>::from_data(TensorData::new(per_image, [5]), &device)
            });
            let batch = ImageBatch {
                images: images.clone(),
                targets: targets.clone(),
                weights,
            };
            model.classification(batch).loss.into_scalar::<f32>()
        };
        let plain = loss(None);
        assert!((loss(Some([1.0; 3])) - plain).abs() < 1e-6);
        // Each image's loss from the model's probabilities.
        let probs = burn::tensor::activation::softmax(model.forward_logits(images.clone()), 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let nll: Vec<f32> = (0..5)
            .map(|i| -probs[i * 3 + labels[i] as usize].ln())
            .collect();
        let expected = (2.0 * (nll[0] + nll[3]) + 0.5 * nll[2]) / 5.0;
        let weighted = loss(Some([2.0, 0.0, 0.5]));
        assert!(
            (weighted - expected).abs() < 1e-5,
            "{weighted} vs {expected}"
        );
    }

    /// A binary head (one sigmoid unit) trains on binary cross-entropy: the mean of
    /// -[y ln p + (1 - y) ln(1 - p)] with p the model's own sigmoid output, as Keras's
    /// `binary_crossentropy`; and its class probabilities are [1 - p, p].
    #[test]
    fn a_binary_head_trains_on_binary_cross_entropy() {
        let config = ModelConfig::parse(
            "input = [1, 2, 2]\n[[layers]]\ntype = \"Flatten\"\n\
             [[layers]]\ntype = \"Dense\"\nunits = 1\nactivation = \"sigmoid\"\n",
            "t.toml",
        )
        .unwrap();
        let device = Device::flex();
        let model = Sequential::new(&config, &device).unwrap();
        assert!(model.has_binary_head());
        let images = Tensor::<4>::from_data(
            TensorData::new(
                (0..16).map(|i| (i as f32 * 0.9).cos() * 3.0).collect(),
                [4, 1, 2, 2],
            ),
            &device,
        );
        let labels = [0i64, 1, 1, 0];
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [4]), &device);
        let p = model
            .forward(images.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(p.len(), 4);
        let bce: f32 = labels
            .iter()
            .zip(&p)
            .map(|(&y, &p)| if y == 1 { -p.ln() } else { -(1.0 - p).ln() })
            .sum::<f32>()
            / 4.0;
        let batch = ImageBatch {
            images: images.clone(),
            targets,
            weights: None,
        };
        let loss = model.classification(batch).loss.into_scalar::<f32>();
        assert!((loss - bce).abs() < 1e-5, "{loss} vs {bce}");
        let probs = burn::tensor::activation::softmax(model.forward_logits(images), 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (i, &p) in p.iter().enumerate() {
            assert!((probs[2 * i + 1] - p).abs() < 1e-6 && (probs[2 * i] - (1.0 - p)).abs() < 1e-6);
        }
    }
}
