//! What the user sees while `fit` runs, and where the per-epoch history comes from.
//!
//! burn-train reports metrics to a renderer. On a terminal this one forwards everything to
//! burn's TUI dashboard; elsewhere (CI logs, pipes) it prints one Keras-style line per epoch,
//! which burn's own plain renderer does not (it prints no metric values). Either way it
//! records each epoch's final loss and accuracy into the shared [`History`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

use burn::train::Interrupter;

use crate::callbacks::Callbacks;
use crate::guard::TrainingGuard;
use crate::history::{EpochRecord, History};

/// The callbacks `fit` runs after every epoch, and how they stop training.
pub struct CallbackHook {
    pub callbacks: Arc<Mutex<Callbacks>>,
    pub interrupter: Interrupter,
    /// The learning rate before ReduceLROnPlateau's reductions.
    pub base_lr: f64,
}

impl CallbackHook {
    /// Runs the callbacks on the epoch's row; their messages when `print` (elsewhere they
    /// wait in the callbacks until `fit` shows them).
    fn on_epoch_end(&self, record: &EpochRecord, print: bool) {
        let Ok(mut callbacks) = self.callbacks.lock() else {
            return;
        };
        if callbacks.on_epoch_end(record, self.base_lr) {
            self.interrupter.stop(Some("early stopping"));
        }
        if print {
            for message in callbacks.take_messages() {
                println!("{message}");
            }
        }
    }
}

/// One split's latest value of each metric, by metric name.
#[derive(Default)]
struct SplitValues {
    values: HashMap<String, f64>,
}

impl SplitValues {
    fn record(&mut self, name: &str, entry: &NumericEntry) {
        self.values.insert(name.to_string(), entry.current());
    }

    fn get(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(f64::NAN)
    }
}

pub struct EpochRenderer {
    /// burn's TUI on a terminal; `None` prints plain lines.
    inner: Option<Box<dyn MetricsRenderer>>,
    names: HashMap<MetricId, String>,
    train: SplitValues,
    valid: SplitValues,
    epoch_started: Instant,
    total_epochs: usize,
    /// The epoch under way, 1-based.
    epoch: usize,
    history: Arc<Mutex<History>>,
    /// The run folder: `history.csv` and the plots are rewritten there after every epoch
    /// (Keras's `CSVLogger`), so a crashed run keeps its curves.
    out: PathBuf,
    guard: TrainingGuard,
    hook: CallbackHook,
}

impl EpochRenderer {
    pub fn new(
        inner: Option<Box<dyn MetricsRenderer>>,
        history: Arc<Mutex<History>>,
        out: &Path,
        guard: TrainingGuard,
        hook: CallbackHook,
    ) -> Self {
        Self {
            inner,
            names: HashMap::new(),
            train: SplitValues::default(),
            valid: SplitValues::default(),
            epoch_started: Instant::now(),
            total_epochs: 0,
            epoch: 1,
            history,
            out: out.to_path_buf(),
            guard,
            hook,
        }
    }

    fn numeric(&self, state: &MetricState) -> Option<(String, NumericEntry)> {
        match state {
            MetricState::Numeric(entry, Some(value)) => {
                let name = self.names.get(&entry.metric_id)?;
                Some((name.clone(), value.clone()))
            }
            _ => None,
        }
    }
}

impl MetricsRendererTraining for EpochRenderer {
    fn update_train(&mut self, state: MetricState) {
        if let Some((name, value)) = self.numeric(&state) {
            if name == "Loss" {
                self.guard.batch_loss(value.current(), self.epoch, false);
            }
            self.train.record(&name, &value);
        }
        if let Some(inner) = &mut self.inner {
            inner.update_train(state);
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        if let Some((name, value)) = self.numeric(&state) {
            if name == "Loss" {
                self.guard.batch_loss(value.current(), self.epoch, true);
            }
            self.valid.record(&name, &value);
        }
        if let Some(inner) = &mut self.inner {
            inner.update_valid(state);
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<burn::train::LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        match &mut self.inner {
            Some(inner) => inner.on_train_end(summary),
            None => Ok(()),
        }
    }
}

impl TrainingProgressLogger for EpochRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        total_items: Option<usize>,
        label: Option<&str>,
    ) {
        self.total_epochs = total_epochs;
        // burn-train's starting epoch is 1-based: the checkpoint resumed from, plus one.
        self.epoch = starting_epoch.max(1);
        self.epoch_started = Instant::now();
        if let Some(inner) = &mut self.inner {
            inner.start(total_epochs, starting_epoch, total_items, label);
        }
    }

    fn update_epoch(&mut self, epoch: usize) {
        let record = EpochRecord {
            epoch,
            loss: self.train.get("Loss"),
            // burn's accuracy is a percentage; Keras's a fraction.
            acc: self.train.get("Accuracy") / 100.0,
            val_loss: self.valid.get("Loss"),
            val_acc: self.valid.get("Accuracy") / 100.0,
            seconds: self.epoch_started.elapsed().as_secs_f64(),
        };
        self.epoch_started = Instant::now();
        self.epoch = epoch + 1;
        if let Ok(mut history) = self.history.lock() {
            history.epochs.push(record);
            if let Err(e) = history.save(&self.out) {
                eprintln!("warning: {e:#}");
            }
        }
        self.guard.epoch_loss(record.loss, epoch);
        match &mut self.inner {
            Some(inner) => inner.update_epoch(epoch),
            None => println!("{}", record.line(self.total_epochs)),
        }
        self.hook.on_epoch_end(&record, self.inner.is_none());
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        if let Some(inner) = &mut self.inner {
            inner.start_split(split, total_items);
        }
    }

    fn update_split(&mut self, items_processed: usize) {
        if let Some(inner) = &mut self.inner {
            inner.update_split(items_processed);
        }
    }

    fn end_split(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.end_split();
        }
    }

    fn end(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.end();
        }
    }

    fn log_event_training(&mut self, event: String) {
        if let Some(inner) = &mut self.inner {
            inner.log_event_training(event);
        }
    }
}

impl EvaluationProgressLogger for EpochRenderer {
    fn start_global_progress(&mut self, total_tests: usize) {
        if let Some(inner) = &mut self.inner {
            inner.start_global_progress(total_tests);
        }
    }

    fn start_test(&mut self, name: &str, total_items: usize) {
        if let Some(inner) = &mut self.inner {
            inner.start_test(name, total_items);
        }
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        if let Some(inner) = &mut self.inner {
            inner.update_test_progress(items_processed);
        }
    }

    fn end_test(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.end_test();
        }
    }

    fn end_global_progress(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.end_global_progress();
        }
    }

    fn log_event_evaluation(&mut self, event: String) {
        if let Some(inner) = &mut self.inner {
            inner.log_event_evaluation(event);
        }
    }
}

impl MetricsRendererEvaluation for EpochRenderer {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        if let Some(inner) = &mut self.inner {
            inner.update_test(name, state);
        }
    }
}

impl MetricsRenderer for EpochRenderer {
    fn manual_close(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.manual_close();
        }
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
        if let Some(inner) = &mut self.inner {
            inner.register_metric(definition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_csv_grows_after_every_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Mutex::new(History::default()));
        let guard = TrainingGuard::new(Interrupter::new(), 10);
        let hook = CallbackHook {
            callbacks: Arc::default(),
            interrupter: Interrupter::new(),
            base_lr: 0.1,
        };
        let mut renderer = EpochRenderer::new(None, shared.clone(), dir.path(), guard, hook);
        let rows = || {
            let text = std::fs::read_to_string(dir.path().join("history.csv")).unwrap();
            text.lines().count() - 1
        };
        renderer.train.values.insert("Loss".into(), 0.5);
        renderer.valid.values.insert("Loss".into(), 0.6);
        renderer.update_epoch(1);
        assert_eq!(rows(), 1);
        renderer.train.values.insert("Loss".into(), 0.4);
        renderer.update_epoch(2);
        assert_eq!(rows(), 2);
        let saved = History::<EpochRecord>::load_or_empty(&dir.path().join("history.csv")).unwrap();
        assert_eq!(saved.epochs[1].loss, 0.4);
        assert!(dir.path().join("loss.png").is_file());
    }
}
