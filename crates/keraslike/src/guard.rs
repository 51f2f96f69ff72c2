//! Stopping a run that has gone wrong, as Keras's `TerminateOnNaN` does and a little more:
//! a loss that is NaN or infinite (on any training batch, or in validation), or an epoch
//! whose mean training loss is over ten times the larger of the run's first batch loss
//! and ln K (the loss of guessing the K classes uniformly; the floor keeps a resumed,
//! already good run from reading a normal wobble as divergence). `fit` then writes no
//! model, so a diverged network never replaces a good one.

use std::sync::{Arc, Mutex};

use burn::train::Interrupter;

/// An epoch whose mean training loss exceeds the reference by this factor has diverged.
pub const DIVERGENCE_FACTOR: f64 = 10.0;

/// Watches the losses the renderer sees and interrupts training on the first bad one; the
/// reason stays readable after training ([`TrainingGuard::reason`]).
#[derive(Clone)]
pub struct TrainingGuard {
    interrupter: Interrupter,
    reason: Arc<Mutex<Option<String>>>,
    /// ln K for K classes.
    uniform_loss: f64,
    first_batch_loss: Arc<Mutex<Option<f64>>>,
}

impl TrainingGuard {
    /// For a classifier of `classes` classes.
    pub fn new(interrupter: Interrupter, classes: usize) -> Self {
        Self {
            interrupter,
            reason: Arc::new(Mutex::new(None)),
            uniform_loss: (classes.max(2) as f64).ln(),
            first_batch_loss: Arc::new(Mutex::new(None)),
        }
    }

    fn stop(&self, why: String) {
        if let Ok(mut reason) = self.reason.lock()
            && reason.is_none()
        {
            self.interrupter.stop(Some(&why));
            *reason = Some(why);
        }
    }

    /// One batch's loss, in training (`validation` false) or validation, during `epoch`.
    pub fn batch_loss(&self, loss: f64, epoch: usize, validation: bool) {
        if !loss.is_finite() {
            let split = if validation { "validation" } else { "training" };
            self.stop(format!("the {split} loss became {loss} in epoch {epoch}"));
            return;
        }
        if !validation && let Ok(mut first) = self.first_batch_loss.lock() {
            first.get_or_insert(loss);
        }
    }

    /// An epoch's mean training loss.
    pub fn epoch_loss(&self, loss: f64, epoch: usize) {
        let first = self.first_batch_loss.lock().ok().and_then(|f| *f);
        let reference = first.unwrap_or(0.0).max(self.uniform_loss);
        if loss > DIVERGENCE_FACTOR * reference {
            self.stop(format!(
                "the training diverged: epoch {epoch}'s loss {loss:.4} is over \
                 {DIVERGENCE_FACTOR}x {reference:.4} (the first batch's loss, or ln of the class count)"
            ));
        }
    }

    /// Why training was stopped, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_batch_loss_stops_training_once_with_its_reason() {
        let interrupter = Interrupter::new();
        let guard = TrainingGuard::new(interrupter.clone(), 10);
        guard.batch_loss(0.7, 1, false);
        assert!(guard.reason().is_none() && !interrupter.should_stop());
        guard.batch_loss(f64::NAN, 2, false);
        guard.batch_loss(f64::INFINITY, 2, true);
        let reason = guard.reason().expect("stopped");
        assert!(
            reason.contains("training loss became NaN in epoch 2"),
            "{reason}"
        );
        assert!(interrupter.should_stop());
    }

    #[test]
    fn an_epoch_loss_far_above_the_first_batch_is_a_divergence() {
        let guard = TrainingGuard::new(Interrupter::new(), 10);
        guard.batch_loss(3.0, 1, false);
        guard.batch_loss(0.1, 1, false);
        guard.epoch_loss(0.4, 1);
        guard.epoch_loss(29.0, 2);
        assert!(guard.reason().is_none(), "29 < 10 x 3.0");
        guard.epoch_loss(31.0, 3);
        let reason = guard.reason().expect("diverged");
        assert!(
            reason.contains("epoch 3") && reason.contains("diverged"),
            "{reason}"
        );
    }

    /// A resumed run starts from a small loss: ln K, not that, sets the bar.
    #[test]
    fn a_resumed_runs_small_first_loss_is_not_the_reference() {
        let guard = TrainingGuard::new(Interrupter::new(), 2);
        guard.batch_loss(0.01, 5, false);
        guard.epoch_loss(0.2, 5);
        assert!(guard.reason().is_none(), "0.2 < 10 x ln 2");
        guard.epoch_loss(7.0, 6);
        assert!(guard.reason().is_some(), "7 > 10 x ln 2 = 6.93");
    }
}
