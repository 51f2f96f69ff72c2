//! Keras's training callbacks, with Keras's names, defaults and rules (keras 3,
//! `keras/src/callbacks/`): `EarlyStopping`, `ModelCheckpoint(save_best_only=True)` and
//! `ReduceLROnPlateau`. Each reads the epoch's row of the history once the epoch is done;
//! what they decide (stop, which epoch's weights to keep, a lower learning rate) is
//! carried out by `fit`.
//!
//! They are plain state machines over [`EpochRecord`]s, so a resumed run rebuilds their
//! state by replaying its history ([`Callbacks::replay`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::history::EpochRecord;

/// The quantity a callback watches (Keras's `monitor`), with Keras's `mode="auto"`:
/// losses should fall, accuracies rise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    #[default]
    #[value(name = "val_loss")]
    ValLoss,
    #[value(name = "val_acc")]
    ValAcc,
    #[value(name = "loss")]
    Loss,
    #[value(name = "acc")]
    Acc,
}

impl Monitor {
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValAcc => "val_acc",
            Monitor::Loss => "loss",
            Monitor::Acc => "acc",
        }
    }

    pub fn value(self, record: &EpochRecord) -> f64 {
        match self {
            Monitor::ValLoss => record.val_loss,
            Monitor::ValAcc => record.val_acc,
            Monitor::Loss => record.loss,
            Monitor::Acc => record.acc,
        }
    }

    fn lower_is_better(self) -> bool {
        matches!(self, Monitor::ValLoss | Monitor::Loss)
    }

    /// Keras's `MonitorCallback._is_improvement`: `current` beats `best` by more than
    /// `min_delta` (anything beats no best yet; a NaN never improves).
    fn improves(self, current: f64, best: Option<f64>, min_delta: f64) -> bool {
        let Some(best) = best else {
            return !current.is_nan();
        };
        if self.lower_is_better() {
            current + min_delta < best
        } else {
            current - min_delta > best
        }
    }
}

/// Keras's `EarlyStopping(monitor, min_delta, patience, restore_best_weights)`.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    pub monitor: Monitor,
    pub patience: usize,
    pub min_delta: f64,
    pub restore_best_weights: bool,
    wait: usize,
    best: Option<f64>,
    /// The epoch of `best` (1-based).
    pub best_epoch: Option<usize>,
    /// The epoch at whose end training stopped.
    pub stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    pub fn new(monitor: Monitor, patience: usize, min_delta: f64, restore: bool) -> Self {
        Self {
            monitor,
            patience,
            // Keras takes the magnitude: the sign comes from the mode.
            min_delta: min_delta.abs(),
            restore_best_weights: restore,
            wait: 0,
            best: None,
            best_epoch: None,
            stopped_epoch: None,
        }
    }

    /// After an epoch: `true` to stop training. As Keras's: the first epoch is the best
    /// so far; `wait` counts epochs since the last improvement, and training stops once it
    /// reaches `patience`, never after the very first epoch.
    pub fn on_epoch_end(&mut self, record: &EpochRecord) -> bool {
        let current = self.monitor.value(record);
        if self.best_epoch.is_none() {
            self.best_epoch = Some(record.epoch);
        }
        self.wait += 1;
        if self.monitor.improves(current, self.best, self.min_delta) {
            self.best = Some(current);
            self.best_epoch = Some(record.epoch);
            self.wait = 0;
            return false;
        }
        if self.wait >= self.patience && record.epoch > 1 {
            self.stopped_epoch = Some(record.epoch);
            return true;
        }
        false
    }
}

/// Keras's `ModelCheckpoint(save_best_only=True, monitor)`: the run keeps the weights of
/// the epoch with the best monitored value (strictly better than every earlier one).
#[derive(Debug, Clone)]
pub struct BestCheckpoint {
    pub monitor: Monitor,
    best: Option<f64>,
    pub best_epoch: Option<usize>,
}

impl BestCheckpoint {
    pub fn new(monitor: Monitor) -> Self {
        Self {
            monitor,
            best: None,
            best_epoch: None,
        }
    }

    /// After an epoch: whether it is the new best.
    pub fn on_epoch_end(&mut self, record: &EpochRecord) -> bool {
        let current = self.monitor.value(record);
        let better = self.monitor.improves(current, self.best, 0.0);
        if better {
            self.best = Some(current);
            self.best_epoch = Some(record.epoch);
        }
        better
    }

    pub fn best(&self) -> Option<f64> {
        self.best
    }
}

/// Keras's `ReduceLROnPlateau(monitor, factor=0.1, patience=10, min_delta=1e-4,
/// cooldown=0, min_lr=0)`.
#[derive(Debug, Clone)]
pub struct ReduceLrOnPlateau {
    pub monitor: Monitor,
    pub factor: f64,
    pub patience: usize,
    pub min_delta: f64,
    pub cooldown: usize,
    pub min_lr: f64,
    wait: usize,
    cooldown_counter: usize,
    best: Option<f64>,
}

impl ReduceLrOnPlateau {
    pub fn new(monitor: Monitor, patience: usize, factor: f64, min_lr: f64) -> Self {
        Self {
            monitor,
            factor,
            patience,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr,
            wait: 0,
            cooldown_counter: 0,
            best: None,
        }
    }

    /// After an epoch trained at rate `lr`: the rate to go on with when it is reduced.
    pub fn on_epoch_end(&mut self, record: &EpochRecord, lr: f64) -> Option<f64> {
        let current = self.monitor.value(record);
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if self.monitor.improves(current, self.best, self.min_delta) {
            self.best = Some(current);
            self.wait = 0;
            return None;
        }
        if self.cooldown_counter > 0 {
            return None;
        }
        self.wait += 1;
        if self.wait < self.patience || lr <= self.min_lr {
            return None;
        }
        self.cooldown_counter = self.cooldown;
        self.wait = 0;
        Some((lr * self.factor).max(self.min_lr))
    }
}

/// The learning rate's factor set by [`ReduceLrOnPlateau`], shared between the callbacks
/// (which lower it after an epoch) and the scheduler (which applies it every step).
#[derive(Debug, Clone)]
pub struct LrFactor(Arc<AtomicU64>);

impl Default for LrFactor {
    fn default() -> Self {
        Self(Arc::new(AtomicU64::new(1.0f64.to_bits())))
    }
}

impl LrFactor {
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub fn set(&self, factor: f64) {
        self.0.store(factor.to_bits(), Ordering::Relaxed);
    }
}

/// The callbacks a `fit` asked for (`[fit]` keys and flags), unset ones off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallbackOptions {
    /// What EarlyStopping, save_best_only and ReduceLROnPlateau watch.
    pub monitor: Option<Monitor>,
    /// EarlyStopping: stop after this many epochs without improvement.
    pub patience: Option<usize>,
    /// EarlyStopping: the least change that counts as an improvement.
    pub min_delta: Option<f64>,
    /// EarlyStopping: end with the best epoch's weights.
    pub restore_best_weights: Option<bool>,
    /// ModelCheckpoint: `model.bpk` is the best epoch's weights.
    pub save_best_only: Option<bool>,
    /// ReduceLROnPlateau: lower the rate after this many epochs without improvement.
    pub reduce_lr_patience: Option<usize>,
    /// ReduceLROnPlateau: the factor (Keras's default 0.1).
    pub reduce_lr_factor: Option<f64>,
    /// ReduceLROnPlateau: the rate never goes below this (default 0).
    pub min_lr: Option<f64>,
}

impl CallbackOptions {
    /// `self` with every setting `over` has replacing its own.
    pub fn overridden_by(&self, over: &CallbackOptions) -> CallbackOptions {
        CallbackOptions {
            monitor: over.monitor.or(self.monitor),
            patience: over.patience.or(self.patience),
            min_delta: over.min_delta.or(self.min_delta),
            restore_best_weights: over.restore_best_weights.or(self.restore_best_weights),
            save_best_only: over.save_best_only.or(self.save_best_only),
            reduce_lr_patience: over.reduce_lr_patience.or(self.reduce_lr_patience),
            reduce_lr_factor: over.reduce_lr_factor.or(self.reduce_lr_factor),
            min_lr: over.min_lr.or(self.min_lr),
        }
    }

    /// The callbacks, after checking the settings' ranges.
    pub fn build(&self) -> Result<Callbacks> {
        let monitor = self.monitor.unwrap_or_default();
        let min_delta = self.min_delta.unwrap_or(0.0);
        if !min_delta.is_finite() {
            bail!("min_delta must be a finite number, not {min_delta}");
        }
        let restore = self.restore_best_weights.unwrap_or(false);
        if restore && self.patience.is_none() {
            bail!("restore_best_weights belongs to EarlyStopping: give a patience too");
        }
        if self.min_delta.is_some() && self.patience.is_none() {
            bail!("min_delta belongs to EarlyStopping: give a patience too");
        }
        let factor = self.reduce_lr_factor.unwrap_or(0.1);
        let min_lr = self.min_lr.unwrap_or(0.0);
        if self.reduce_lr_patience.is_some() {
            if !(factor > 0.0 && factor < 1.0) {
                bail!("reduce_lr_factor must be in (0, 1), not {factor}");
            }
            if !(min_lr >= 0.0 && min_lr.is_finite()) {
                bail!("min_lr must be 0 or more, not {min_lr}");
            }
        } else if self.reduce_lr_factor.is_some() || self.min_lr.is_some() {
            bail!(
                "reduce_lr_factor and min_lr belong to ReduceLROnPlateau: give a reduce_lr_patience too"
            );
        }
        Ok(Callbacks {
            early_stopping: self
                .patience
                .map(|p| EarlyStopping::new(monitor, p, min_delta, restore)),
            best_checkpoint: (self.save_best_only == Some(true))
                .then(|| BestCheckpoint::new(monitor)),
            reduce_lr: self
                .reduce_lr_patience
                .map(|p| ReduceLrOnPlateau::new(monitor, p, factor, min_lr)),
            lr_factor: LrFactor::default(),
            messages: Vec::new(),
        })
    }
}

/// A `fit`'s callbacks and what they decided so far.
#[derive(Debug, Clone, Default)]
pub struct Callbacks {
    pub early_stopping: Option<EarlyStopping>,
    pub best_checkpoint: Option<BestCheckpoint>,
    pub reduce_lr: Option<ReduceLrOnPlateau>,
    /// The factor ReduceLROnPlateau put on the learning rate.
    pub lr_factor: LrFactor,
    /// Keras's messages ("Epoch 7: early stopping"), oldest first, not yet shown.
    pub messages: Vec<String>,
}

impl Callbacks {
    /// After each epoch: `true` to stop training. `base_lr` is the rate before any
    /// reduction (the schedule's, for this epoch).
    pub fn on_epoch_end(&mut self, record: &EpochRecord, base_lr: f64) -> bool {
        let epoch = record.epoch;
        if let Some(best) = &mut self.best_checkpoint {
            let before = best.best();
            if best.on_epoch_end(record) {
                let name = best.monitor.name();
                let value = best.monitor.value(record);
                self.messages.push(match before {
                    Some(b) => format!("Epoch {epoch}: {name} improved from {b:.5} to {value:.5}, keeping this epoch's weights"),
                    None => format!("Epoch {epoch}: {name} is {value:.5}, keeping this epoch's weights"),
                });
            }
        }
        if let Some(reduce) = &mut self.reduce_lr {
            let lr = base_lr * self.lr_factor.get();
            if let Some(new_lr) = reduce.on_epoch_end(record, lr) {
                self.lr_factor.set(new_lr / base_lr);
                self.messages.push(format!(
                    "Epoch {epoch}: ReduceLROnPlateau reducing learning rate to {new_lr:.3e}."
                ));
            }
        }
        let stop = self
            .early_stopping
            .as_mut()
            .is_some_and(|early| early.on_epoch_end(record));
        if stop {
            self.messages.push(format!("Epoch {epoch}: early stopping"));
        }
        stop
    }

    /// Rebuilds the callbacks' state from the epochs a resumed run already trained at
    /// `base_lr` (ReduceLROnPlateau runs only with a constant rate); their messages are
    /// dropped.
    pub fn replay(&mut self, epochs: &[EpochRecord], base_lr: f64) {
        for record in epochs {
            self.on_epoch_end(record, base_lr);
        }
        self.messages.clear();
    }

    /// The epoch whose weights the run ends with, when not the last: EarlyStopping's best
    /// with `restore_best_weights`, else ModelCheckpoint's best.
    pub fn kept_epoch(&self) -> Option<usize> {
        let restored = self
            .early_stopping
            .as_ref()
            .filter(|e| e.restore_best_weights)
            .and_then(|e| e.best_epoch);
        restored.or(self.best_checkpoint.as_ref().and_then(|b| b.best_epoch))
    }

    /// Epochs whose checkpoints must not be deleted: the ones [`Self::kept_epoch`] may
    /// still choose.
    pub fn protected_epochs(&self) -> Vec<usize> {
        let mut epochs: Vec<usize> = self
            .early_stopping
            .iter()
            .filter(|e| e.restore_best_weights)
            .filter_map(|e| e.best_epoch)
            .chain(self.best_checkpoint.iter().filter_map(|b| b.best_epoch))
            .collect();
        epochs.dedup();
        epochs
    }

    /// The messages not yet shown, in order.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, val_loss: f64, val_acc: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            loss: 1.0,
            acc: 0.5,
            val_loss,
            val_acc,
            seconds: 1.0,
        }
    }

    /// Runs `early` over the validation losses; the epoch it stopped after.
    fn stops_after(early: &mut EarlyStopping, losses: &[f64]) -> Option<usize> {
        losses
            .iter()
            .enumerate()
            .find(|(i, l)| early.on_epoch_end(&record(i + 1, **l, 0.0)))
            .map(|(i, _)| i + 1)
    }

    #[test]
    fn early_stopping_waits_patience_epochs_after_the_best() {
        let mut early = EarlyStopping::new(Monitor::ValLoss, 2, 0.0, true);
        // Best at epoch 3; epochs 4 and 5 do not improve: stop after 5.
        assert_eq!(
            stops_after(&mut early, &[0.5, 0.4, 0.3, 0.35, 0.31, 0.2]),
            Some(5)
        );
        assert_eq!(early.best_epoch, Some(3));
        assert_eq!(early.stopped_epoch, Some(5));
    }

    #[test]
    fn early_stopping_min_delta_ignores_small_improvements() {
        // Keras: an improvement must beat the best by more than min_delta.
        let mut early = EarlyStopping::new(Monitor::ValLoss, 1, 0.05, false);
        assert_eq!(stops_after(&mut early, &[0.5, 0.47, 0.3]), Some(2));
        let mut early = EarlyStopping::new(Monitor::ValLoss, 1, 0.01, false);
        assert_eq!(stops_after(&mut early, &[0.5, 0.47, 0.3]), None);
    }

    #[test]
    fn early_stopping_patience_zero_stops_on_the_first_non_improvement_not_epoch_one() {
        let mut early = EarlyStopping::new(Monitor::ValLoss, 0, 0.0, false);
        assert_eq!(stops_after(&mut early, &[0.5, 0.4, 0.45]), Some(3));
        // A NaN never improves: patience 0 would stop at once, yet not after epoch 1.
        let mut early = EarlyStopping::new(Monitor::ValLoss, 0, 0.0, false);
        assert_eq!(stops_after(&mut early, &[f64::NAN, f64::NAN]), Some(2));
        assert_eq!(early.best_epoch, Some(1));
    }

    #[test]
    fn accuracy_is_watched_for_a_rise() {
        let mut early = EarlyStopping::new(Monitor::ValAcc, 1, 0.0, true);
        let accs = [0.90, 0.95, 0.94, 0.97];
        let stop = accs
            .iter()
            .enumerate()
            .find(|(i, a)| early.on_epoch_end(&record(i + 1, 0.0, **a)))
            .map(|(i, _)| i + 1);
        assert_eq!(stop, Some(3));
        assert_eq!(early.best_epoch, Some(2));
    }

    #[test]
    fn best_checkpoint_keeps_the_lowest_validation_loss() {
        let mut best = BestCheckpoint::new(Monitor::ValLoss);
        let news: Vec<bool> = [0.5, 0.3, 0.3, 0.4, 0.2]
            .iter()
            .enumerate()
            .map(|(i, l)| best.on_epoch_end(&record(i + 1, *l, 0.0)))
            .collect();
        // An equal value is not an improvement (Keras's `less`).
        assert_eq!(news, [true, true, false, false, true]);
        assert_eq!(best.best_epoch, Some(5));
    }

    #[test]
    fn reduce_lr_on_plateau_as_keras() {
        let mut reduce = ReduceLrOnPlateau::new(Monitor::ValLoss, 2, 0.5, 0.01);
        let mut lr = 0.1;
        let mut rates = Vec::new();
        // Improves, then plateaus (within min_delta 1e-4 is no improvement).
        for (i, l) in [1.0, 0.9, 0.89995, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
            .iter()
            .enumerate()
        {
            if let Some(new) = reduce.on_epoch_end(&record(i + 1, *l, 0.0), lr) {
                lr = new;
            }
            rates.push(lr);
        }
        // Reduced after two epochs without improvement each time, floored at min_lr.
        assert_eq!(
            rates,
            [
                0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.01
            ]
        );
    }

    #[test]
    fn callbacks_lower_the_shared_factor_and_say_so() {
        let options = CallbackOptions {
            patience: Some(3),
            restore_best_weights: Some(true),
            save_best_only: Some(true),
            reduce_lr_patience: Some(1),
            ..Default::default()
        };
        let mut callbacks = options.build().unwrap();
        let factor = callbacks.lr_factor.clone();
        assert!(!callbacks.on_epoch_end(&record(1, 0.5, 0.0), 0.01));
        assert!(!callbacks.on_epoch_end(&record(2, 0.6, 0.0), 0.01));
        assert!((factor.get() - 0.1).abs() < 1e-12);
        assert!(!callbacks.on_epoch_end(&record(3, 0.7, 0.0), 0.01));
        assert!(callbacks.on_epoch_end(&record(4, 0.8, 0.0), 0.01));
        assert_eq!(callbacks.kept_epoch(), Some(1));
        assert_eq!(callbacks.protected_epochs(), [1]);
        let messages = callbacks.take_messages();
        assert!(
            messages[0].contains("Epoch 1: val_loss is 0.50000"),
            "{messages:?}"
        );
        assert!(messages.iter().any(|m| m == "Epoch 4: early stopping"));
        assert!(
            messages
                .iter()
                .any(|m| m.contains("reducing learning rate to 1.000e-4"))
        );
    }

    #[test]
    fn replay_rebuilds_the_state_without_messages() {
        let options = CallbackOptions {
            patience: Some(2),
            reduce_lr_patience: Some(1),
            ..Default::default()
        };
        let epochs = [record(1, 0.5, 0.0), record(2, 0.6, 0.0)];
        let mut resumed = options.build().unwrap();
        resumed.replay(&epochs, 0.01);
        assert!(resumed.messages.is_empty());
        assert!((resumed.lr_factor.get() - 0.1).abs() < 1e-12);
        // One more epoch without improvement reaches the patience of 2.
        assert!(resumed.on_epoch_end(&record(3, 0.7, 0.0), 0.01));
    }

    #[test]
    fn settings_that_belong_to_an_absent_callback_are_refused() {
        let bad = |options: CallbackOptions| options.build().unwrap_err().to_string();
        assert!(
            bad(CallbackOptions {
                restore_best_weights: Some(true),
                ..Default::default()
            })
            .contains("give a patience")
        );
        assert!(
            bad(CallbackOptions {
                reduce_lr_patience: Some(2),
                reduce_lr_factor: Some(1.5),
                ..Default::default()
            })
            .contains("(0, 1)")
        );
        assert!(
            bad(CallbackOptions {
                min_lr: Some(0.1),
                ..Default::default()
            })
            .contains("reduce_lr_patience")
        );
    }
}
