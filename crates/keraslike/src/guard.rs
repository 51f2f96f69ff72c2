//! Stopping a run that has gone wrong, as Keras's `TerminateOnNaN` does and a little more:
//! a loss that is NaN or infinite (on any training batch, or in validation) or an epoch
//! whose training loss is far above the first one's. `fit` then writes no model, so a
//! diverged network never replaces a good one.

use std::sync::{Arc, Mutex};

use burn::train::Interrupter;

/// An epoch whose mean training loss exceeds the first epoch's by this factor has diverged.
pub const DIVERGENCE_FACTOR: f64 = 10.0;

/// Watches the losses the renderer sees and interrupts training on the first bad one; the
/// reason stays readable after training ([`TrainingGuard::reason`]).
#[derive(Clone)]
pub struct TrainingGuard {
    interrupter: Interrupter,
    reason: Arc<Mutex<Option<String>>>,
    first_epoch_loss: Option<f64>,
}

impl TrainingGuard {
    pub fn new(interrupter: Interrupter) -> Self {
        Self {
            interrupter,
            reason: Arc::new(Mutex::new(None)),
            first_epoch_loss: None,
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
        }
    }

    /// An epoch's mean training loss.
    pub fn epoch_loss(&mut self, loss: f64, epoch: usize) {
        match self.first_epoch_loss {
            None => self.first_epoch_loss = Some(loss),
            Some(first) if loss > DIVERGENCE_FACTOR * first => self.stop(format!(
                "the training diverged: epoch {epoch}'s loss {loss:.4} is over \
                 {DIVERGENCE_FACTOR}x the first epoch's ({first:.4})"
            )),
            Some(_) => {}
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
        let guard = TrainingGuard::new(interrupter.clone());
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
    fn an_epoch_loss_far_above_the_first_is_a_divergence() {
        let mut guard = TrainingGuard::new(Interrupter::new());
        guard.epoch_loss(2.3, 1);
        guard.epoch_loss(0.4, 2);
        guard.epoch_loss(22.0, 3);
        assert!(guard.reason().is_none(), "22 < 10 x 2.3");
        guard.epoch_loss(23.5, 4);
        let reason = guard.reason().expect("diverged");
        assert!(
            reason.contains("epoch 4") && reason.contains("diverged"),
            "{reason}"
        );
    }
}
