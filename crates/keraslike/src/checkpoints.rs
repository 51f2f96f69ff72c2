//! Which epoch checkpoints a `fit` keeps in `checkpoint/`: the last two (what `--resume`
//! needs, one spare) and the ones the callbacks may still end the run with (the best epoch
//! of `save_best_only` or `restore_best_weights`), every other one deleted as soon as it
//! is no longer needed.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use burn::train::checkpoint::{CheckpointingAction, CheckpointingStrategy};
use burn::train::metric::store::EventStoreClient;

use crate::callbacks::Callbacks;

pub struct KeepLastAndBest {
    callbacks: Arc<Mutex<Callbacks>>,
    /// Epochs with a checkpoint on disk.
    saved: BTreeSet<usize>,
}

impl KeepLastAndBest {
    /// For the run in `out`, whose checkpoints of earlier (resumed) epochs are found there.
    pub fn new(out: &Path, callbacks: Arc<Mutex<Callbacks>>) -> Self {
        Self {
            callbacks,
            saved: saved_epochs(out),
        }
    }

    /// The actions after `epoch`'s checkpoint, given the epochs the callbacks protect.
    fn actions(&mut self, epoch: usize, protected: &[usize]) -> Vec<CheckpointingAction> {
        self.saved.insert(epoch);
        let keep = |e: usize| e + 1 >= epoch || protected.contains(&e);
        let stale: Vec<usize> = self.saved.iter().copied().filter(|&e| !keep(e)).collect();
        let mut actions = vec![CheckpointingAction::Save];
        for e in stale {
            self.saved.remove(&e);
            actions.push(CheckpointingAction::Delete(e));
        }
        actions
    }
}

impl CheckpointingStrategy for KeepLastAndBest {
    fn checkpointing(&mut self, epoch: usize, _: &EventStoreClient) -> Vec<CheckpointingAction> {
        let protected = self
            .callbacks
            .lock()
            .map(|c| c.protected_epochs())
            .unwrap_or_default();
        self.actions(epoch, &protected)
    }
}

/// The epochs of the `checkpoint/model-N.bpk` files in `out`.
pub fn saved_epochs(out: &Path) -> BTreeSet<usize> {
    let Ok(entries) = std::fs::read_dir(out.join("checkpoint")) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckpointingAction::{Delete, Save};

    #[test]
    fn keeps_the_last_two_and_the_protected_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let mut strategy = KeepLastAndBest::new(dir.path(), Arc::default());
        assert_eq!(strategy.actions(1, &[]), [Save]);
        assert_eq!(strategy.actions(2, &[]), [Save]);
        assert_eq!(strategy.actions(3, &[2]), [Save, Delete(1)]);
        // Epoch 2 stays while protected, then goes once it is neither best nor recent.
        assert_eq!(strategy.actions(4, &[2]), [Save]);
        assert_eq!(strategy.actions(5, &[2]), [Save, Delete(3)]);
        assert_eq!(strategy.actions(6, &[6]), [Save, Delete(2), Delete(4)]);
        assert_eq!(strategy.saved, BTreeSet::from([5, 6]));
    }

    #[test]
    fn a_resumed_run_knows_the_checkpoints_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = dir.path().join("checkpoint");
        std::fs::create_dir(&checkpoints).unwrap();
        for name in ["model-3.bpk", "model-4.bpk", "optim-4.bpk", "notes.txt"] {
            std::fs::write(checkpoints.join(name), b"").unwrap();
        }
        let mut strategy = KeepLastAndBest::new(dir.path(), Arc::default());
        assert_eq!(strategy.actions(5, &[]), [Save, Delete(3)]);
    }
}
