//! The learning rate over a `fit`: a schedule by epoch (constant, exponential, step or
//! cosine, as Keras's `ExponentialDecay`, PyTorch's `StepLR` and Keras's `CosineDecay`
//! compute them), times the factor `ReduceLROnPlateau` has set. One burn `LrScheduler`
//! applies both every step.

use anyhow::{Result, bail};
use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use serde::{Deserialize, Serialize};

use crate::callbacks::LrFactor;

/// How the rate changes from epoch to epoch (`[compile] lr_schedule`, `--lr-schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// The same rate throughout.
    #[default]
    Constant,
    /// × `lr_decay` over each epoch, smoothly step by step (Keras's `ExponentialDecay`
    /// with `decay_steps` = the steps of an epoch).
    Exponential,
    /// × `lr_decay` once every `lr_step_epochs` epochs (PyTorch's `StepLR`).
    Step,
    /// From the rate down to 0 along half a cosine over all the run's steps (Keras's
    /// `CosineDecay(decay_steps = epochs × steps)`).
    Cosine,
}

/// A schedule with its settings, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    Constant,
    Exponential { per_epoch: f64 },
    Step { every: usize, gamma: f64 },
    Cosine,
}

impl Schedule {
    /// From the config's or the flags' `lr_schedule`, `lr_decay` and `lr_step_epochs`.
    pub fn new(
        kind: Option<ScheduleKind>,
        decay: Option<f64>,
        every: Option<usize>,
    ) -> Result<Self> {
        let kind = kind.unwrap_or(if decay.is_some_and(|d| d != 1.0) {
            ScheduleKind::Exponential
        } else {
            ScheduleKind::Constant
        });
        let decay_in_range = |d: f64| {
            if d > 0.0 && d <= 1.0 {
                Ok(d)
            } else {
                // NaN fails the test too.
                bail!("lr_decay must be in (0, 1], not {d}")
            }
        };
        if every.is_some() && kind != ScheduleKind::Step {
            bail!("lr_step_epochs belongs to the step schedule: add lr_schedule = \"step\"");
        }
        Ok(match kind {
            ScheduleKind::Constant => match decay {
                Some(d) if d != 1.0 => {
                    bail!(
                        "lr_decay {d} with a constant schedule: drop lr_decay, or choose exponential or step"
                    )
                }
                _ => Schedule::Constant,
            },
            ScheduleKind::Exponential => Schedule::Exponential {
                per_epoch: decay_in_range(decay.unwrap_or(0.9))?,
            },
            ScheduleKind::Step => {
                let every = every.unwrap_or(1);
                if every == 0 {
                    bail!("lr_step_epochs must be at least 1");
                }
                Schedule::Step {
                    every,
                    gamma: decay_in_range(decay.unwrap_or(0.1))?,
                }
            }
            ScheduleKind::Cosine => {
                if decay.is_some() {
                    bail!("lr_decay has no meaning for the cosine schedule");
                }
                Schedule::Cosine
            }
        })
    }

    pub fn is_constant(&self) -> bool {
        *self == Schedule::Constant
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Exponential { per_epoch } => write!(f, "× {per_epoch} per epoch"),
            Schedule::Step { every, gamma } => write!(f, "× {gamma} every {every} epochs"),
            Schedule::Cosine => write!(f, "cosine down to 0"),
        }
    }
}

/// burn's scheduler for a `fit`: `base` at step 0, following `schedule`, for
/// `steps_per_epoch` steps an epoch over `epochs` epochs, times `factor`.
#[derive(Debug, Clone)]
pub struct ScheduledLr {
    schedule: Schedule,
    base: f64,
    steps_per_epoch: u64,
    total_steps: u64,
    /// Steps taken so far (the next step's index).
    step: u64,
    /// The exponential schedule's last rate, multiplied step by step as burn's
    /// `ExponentialLrScheduler` does, so its rates are the same to the last bit.
    previous_lr: f64,
    gamma_per_step: f64,
    factor: LrFactor,
}

impl ScheduledLr {
    /// Starting after `start_epoch` epochs (0 for a fresh run; a resumed run's checkpoint
    /// also restores the step).
    pub fn new(
        schedule: Schedule,
        base: f64,
        steps_per_epoch: usize,
        epochs: usize,
        start_epoch: usize,
        factor: LrFactor,
    ) -> Self {
        let steps_per_epoch = steps_per_epoch.max(1) as u64;
        let step = start_epoch as u64 * steps_per_epoch;
        let gamma_per_step = match schedule {
            Schedule::Exponential { per_epoch } => per_epoch.powf(1.0 / steps_per_epoch as f64),
            _ => 1.0,
        };
        Self {
            schedule,
            base,
            steps_per_epoch,
            total_steps: (epochs as u64 * steps_per_epoch).max(1),
            step,
            // Divided once so that the first step's product gives `base` back (burn's).
            previous_lr: base * gamma_per_step.powf(step as f64) / gamma_per_step,
            gamma_per_step,
            factor,
        }
    }

    fn scheduled(&self, step: u64, exponential: f64) -> f64 {
        match self.schedule {
            Schedule::Constant => self.base,
            Schedule::Exponential { .. } => exponential,
            Schedule::Step { every, gamma } => {
                let epoch = step / self.steps_per_epoch;
                self.base * gamma.powi((epoch / every as u64) as i32)
            }
            Schedule::Cosine => {
                let t = step.min(self.total_steps) as f64 / self.total_steps as f64;
                self.base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

impl LrScheduler for ScheduledLr {
    fn step(&mut self) -> f64 {
        self.previous_lr *= self.gamma_per_step;
        let lr = self.scheduled(self.step, self.previous_lr);
        self.step += 1;
        lr * self.factor.get()
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new()
            .with_scalar("step", self.step)
            .with_scalar("previous_lr", self.previous_lr)
    }

    /// Also reads the checkpoints of runs that used burn's own exponential scheduler
    /// (`previous_lr` only); the step then stays the one the resumed epoch gives.
    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(step) = record.scalar::<u64>("step") {
            self.step = step;
        }
        if let Some(previous) = record.scalar::<f64>("previous_lr") {
            self.previous_lr = previous;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::lr_scheduler::exponential::ExponentialLrSchedulerConfig;

    fn rates(mut lr: ScheduledLr, n: usize) -> Vec<f64> {
        (0..n).map(|_| lr.step()).collect()
    }

    #[test]
    fn exponential_gives_burns_rates_to_the_last_bit() {
        let steps = 7;
        let ours = ScheduledLr::new(
            Schedule::Exponential { per_epoch: 0.7 },
            0.001,
            steps,
            3,
            0,
            LrFactor::default(),
        );
        let mut burns = ExponentialLrSchedulerConfig::new(0.001, 0.7f64.powf(1.0 / steps as f64))
            .init()
            .unwrap();
        let theirs: Vec<f64> = (0..21).map(|_| burns.step().base()).collect();
        assert_eq!(rates(ours, 21), theirs);
    }

    #[test]
    fn each_schedule_by_epoch() {
        let make = |s| ScheduledLr::new(s, 0.1, 2, 4, 0, LrFactor::default());
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
        };
        assert_eq!(rates(make(Schedule::Constant), 3), [0.1; 3]);
        let step = rates(
            make(Schedule::Step {
                every: 2,
                gamma: 0.5,
            }),
            8,
        );
        assert!(
            close(&step, &[0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05]),
            "{step:?}"
        );
        // Exponential: ×0.5 over each epoch of 2 steps; the epoch's second step halfway.
        let exp = rates(make(Schedule::Exponential { per_epoch: 0.5 }), 3);
        assert!(close(&exp, &[0.1, 0.1 * 0.5f64.sqrt(), 0.05]), "{exp:?}");
        // Cosine over 8 steps: 0.1 at step 0, 0.05 at step 4, 0 from step 8 on.
        let cos = rates(make(Schedule::Cosine), 10);
        assert!((cos[0] - 0.1).abs() < 1e-12 && (cos[4] - 0.05).abs() < 1e-12);
        assert!(cos[8].abs() < 1e-12 && cos[9].abs() < 1e-12);
        assert!(cos.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn the_plateau_factor_multiplies_every_step() {
        let factor = LrFactor::default();
        let mut lr = ScheduledLr::new(Schedule::Constant, 0.1, 2, 4, 0, factor.clone());
        assert_eq!(lr.step(), 0.1);
        factor.set(0.5);
        assert_eq!(lr.step(), 0.05);
    }

    #[test]
    fn a_resumed_schedule_goes_on_where_it_stopped() {
        let s = Schedule::Exponential { per_epoch: 0.5 };
        let whole = rates(ScheduledLr::new(s, 0.1, 2, 4, 0, LrFactor::default()), 6);
        let mut first = ScheduledLr::new(s, 0.1, 2, 4, 0, LrFactor::default());
        for _ in 0..4 {
            first.step();
        }
        let mut resumed = ScheduledLr::new(s, 0.1, 2, 4, 2, LrFactor::default());
        resumed.load_record(first.to_record());
        assert_eq!(rates(resumed, 2), whole[4..]);
        // Without a record (an old checkpoint), the epoch alone puts it in place.
        let fresh = ScheduledLr::new(s, 0.1, 2, 4, 2, LrFactor::default());
        let again = rates(fresh, 2);
        assert!(
            again
                .iter()
                .zip(&whole[4..])
                .all(|(a, b)| (a - b).abs() < 1e-15)
        );
        let step = ScheduledLr::new(
            Schedule::Step {
                every: 1,
                gamma: 0.5,
            },
            0.1,
            2,
            4,
            0,
            LrFactor::default(),
        );
        // Epoch 3's first step (step 4 at 2 steps an epoch).
        assert_eq!(rates(step, 5)[4], 0.025);
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let err = |k, d, e| Schedule::new(k, d, e).unwrap_err().to_string();
        assert!(err(Some(ScheduleKind::Step), Some(1.5), None).contains("lr_decay"));
        assert!(err(Some(ScheduleKind::Step), None, Some(0)).contains("lr_step_epochs"));
        assert!(err(None, None, Some(3)).contains("step schedule"));
        assert!(err(Some(ScheduleKind::Cosine), Some(0.5), None).contains("cosine"));
        assert!(err(Some(ScheduleKind::Constant), Some(0.5), None).contains("constant"));
        assert_eq!(
            Schedule::new(None, Some(0.7), None).unwrap(),
            Schedule::Exponential { per_epoch: 0.7 }
        );
        assert_eq!(
            Schedule::new(None, Some(1.0), None).unwrap(),
            Schedule::Constant
        );
    }
}
