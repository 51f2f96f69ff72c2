//! The training loop: shuffled minibatches, N/B iterations per epoch, SGD-style updates,
//! and per-epoch loss and accuracy.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::augment::shift_batch;
use crate::data::Samples;
use crate::kernels::batches::{Minibatch, for_each_batch};
use crate::network::Network;
use crate::optimizer::Optimizer;
use crate::regularization;
use crate::spec::Regularization;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Epochs already done (for numbering and shuffling when resuming).
    pub first_epoch: usize,
    /// Draw a progress bar (it only appears on a terminal).
    pub progress: bool,
    /// L1/L2 penalties on the weights.
    pub regularization: Regularization,
    /// Multiply the learning rate by this after every epoch (1 = constant).
    pub lr_decay: f32,
    /// Random shifts of up to this many pixels for every training image drawn (0 = off).
    pub shift: usize,
    /// Measure training accuracy on at most this many training images (the first ones):
    /// a full pass over 50,000 images costs a third of a conv net's epoch.
    pub train_eval_limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// 1-based, counting epochs of earlier runs when resumed.
    pub epoch: usize,
    /// Mean training cross-entropy over the epoch's minibatches.
    pub loss: f32,
    pub train_accuracy: f32,
    pub test_accuracy: f32,
    pub seconds: f64,
}

/// How a training run ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub epochs: Vec<EpochStats>,
    /// Stopped early by the `stop` flag (Ctrl-C).
    pub interrupted: bool,
    /// The loss became NaN or infinite, or an epoch's mean loss rose over
    /// [`DIVERGENCE_FACTOR`] times the reference (the first minibatch's loss, at least ln of
    /// the class count), in this epoch (learning rate too high?): training stopped there,
    /// and the epoch's weights are not to be saved.
    pub diverged: Option<usize>,
}

/// An epoch whose mean loss exceeds the reference by this factor has diverged (the same
/// rule as keraslike's, `crates/keraslike/src/guard.rs`).
pub const DIVERGENCE_FACTOR: f32 = 10.0;

/// Why an epoch ended before its last batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Interrupted,
    Diverged,
}

/// Trains `net` for `options.epochs` epochs; checks `stop` after every iteration and
/// returns early when it is set. `on_epoch` sees each epoch's numbers as they arrive.
pub fn train(
    net: &mut Network,
    optimizer: &mut dyn Optimizer,
    train: &Samples,
    test: &Samples,
    options: &TrainOptions,
    stop: &AtomicBool,
    mut on_epoch: impl FnMut(&EpochStats),
) -> TrainOutcome {
    let batch = options.batch_size.clamp(1, train.len().max(1));
    let iterations = (train.len() / batch).max(1);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut epochs = Vec::new();
    let base_lr = optimizer.lr_mut().map(|lr| *lr);
    let shape = train.input_shape();
    // The reference for divergence: ln K (guessing uniformly), or the first minibatch's
    // loss if higher.
    let mut reference = (train.classes.len().max(2) as f32).ln();
    let mut first_batch = true;
    for e in 0..options.epochs {
        let epoch = options.first_epoch + e + 1;
        // Exponential decay per epoch, counted from the first epoch of the first run, so
        // a resumed run continues the schedule.
        if let (Some(base), Some(lr)) = (base_lr, optimizer.lr_mut()) {
            *lr = base * options.lr_decay.powi(epoch as i32 - 1);
        }
        // One generator per epoch, from the seed and the epoch number: a resumed run draws
        // the same minibatches as an uninterrupted one.
        let mut rng = StdRng::seed_from_u64(
            options
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(epoch as u64),
        );
        order.shuffle(&mut rng);
        let bar = cli::progress::epoch_bar(
            options.progress,
            iterations as u64,
            epoch,
            options.first_epoch + options.epochs,
        );
        // The first layer lists the minibatch straight from the training set's bytes,
        // unless augmentation changes the batch first (asked each epoch: the layer stops
        // taking bytes once it has seen them too dense for its kernels).
        let as_bytes = options.shift == 0 && net.reads_bytes();
        let start = Instant::now();
        let mut loss_sum = 0.0f64;
        let flow = for_each_batch(
            train,
            &order,
            batch,
            iterations,
            as_bytes,
            |it, x, labels| {
                let mut loss = match x {
                    Minibatch::Floats(x) => {
                        if options.shift > 0 {
                            shift_batch(x, shape, options.shift, &mut rng);
                        }
                        net.gradient(x, labels)
                    }
                    Minibatch::Bytes(rows) => net.gradient_of_bytes(rows, labels),
                };
                let mut params = net.params();
                loss += regularization::apply(&options.regularization, &mut params);
                optimizer.step(params);
                if !loss.is_finite() {
                    return ControlFlow::Break(StopReason::Diverged);
                }
                if first_batch {
                    reference = reference.max(loss);
                    first_batch = false;
                }
                loss_sum += loss as f64;
                if it % 20 == 0 {
                    bar.set_message(format!("loss {:.4}", loss_sum / (it + 1) as f64));
                }
                bar.inc(1);
                if stop.load(Ordering::Relaxed) {
                    return ControlFlow::Break(StopReason::Interrupted);
                }
                ControlFlow::Continue(())
            },
        );
        if let ControlFlow::Break(reason) = flow {
            bar.abandon();
            return TrainOutcome {
                epochs,
                interrupted: reason == StopReason::Interrupted,
                diverged: (reason == StopReason::Diverged).then_some(epoch),
            };
        }
        let train_seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let mean_loss = (loss_sum / iterations as f64) as f32;
        if mean_loss > DIVERGENCE_FACTOR * reference {
            return TrainOutcome {
                epochs,
                interrupted: false,
                diverged: Some(epoch),
            };
        }
        let stats = EpochStats {
            epoch,
            loss: mean_loss,
            train_accuracy: match options.train_eval_limit {
                Some(n) if n < train.len() => accuracy_of_first(net, train, n),
                _ => accuracy(net, train),
            },
            test_accuracy: accuracy(net, test),
            seconds: train_seconds,
        };
        on_epoch(&stats);
        epochs.push(stats);
    }
    TrainOutcome {
        epochs,
        interrupted: false,
        diverged: None,
    }
}

/// Fraction of `samples` classified correctly.
pub fn accuracy(net: &mut Network, samples: &Samples) -> f32 {
    let predicted = net.classify(samples.x());
    let correct = predicted
        .iter()
        .zip(&samples.labels)
        .filter(|(p, t)| p == t)
        .count();
    correct as f32 / samples.len().max(1) as f32
}

/// Fraction of the first `n` samples classified correctly.
pub fn accuracy_of_first(net: &mut Network, samples: &Samples, n: usize) -> f32 {
    let n = n.min(samples.len());
    let predicted = net.classify(&samples.x().slice(ndarray::s![..n, ..]).to_owned());
    let correct = predicted
        .iter()
        .zip(&samples.labels[..n])
        .filter(|(p, t)| p == t)
        .count();
    correct as f32 / n.max(1) as f32
}

/// `m[true][predicted]` counts.
pub fn confusion_matrix(net: &mut Network, samples: &Samples) -> Vec<Vec<usize>> {
    let k = net.arch.classes;
    let mut m = vec![vec![0; k]; k];
    for (&p, &t) in net.classify(samples.x()).iter().zip(&samples.labels) {
        m[t as usize][p as usize] += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::Sgd;
    use crate::spec::{Architecture, InputShape, LayerSpec};
    use dataset::synthetic;

    fn data(n: usize, seed: u64) -> Samples {
        Samples::from_images(&synthetic::bars(
            n,
            dataset::ImageShape {
                channels: 1,
                height: 28,
                width: 28,
            },
            10,
            seed,
        ))
    }

    /// Trains `net` with SGD on generated digits (`sizes` = train, test images); `stop`
    /// sets the stop flag before the first step.
    fn fit(
        net: &mut Network,
        lr: f32,
        epochs: usize,
        batch_size: usize,
        seed: u64,
        sizes: (usize, usize),
        stop: bool,
    ) -> TrainOutcome {
        let options = TrainOptions {
            epochs,
            batch_size,
            seed,
            first_epoch: 0,
            progress: false,
            regularization: Regularization::default(),
            lr_decay: 1.0,
            shift: 0,
            train_eval_limit: None,
        };
        let (train_set, test_set) = (data(sizes.0, 1), data(sizes.1, 2));
        train(
            net,
            &mut Sgd { lr },
            &train_set,
            &test_set,
            &options,
            &AtomicBool::new(stop),
            |_| {},
        )
    }

    fn run(seed: u64) -> (Vec<EpochStats>, Network) {
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: vec![
                LayerSpec::Affine {
                    units: 32,
                    init: None,
                },
                LayerSpec::Sigmoid,
                LayerSpec::Affine {
                    units: 10,
                    init: None,
                },
            ],
        };
        let mut net = Network::new(&arch, seed).unwrap();
        let out = fit(&mut net, 0.5, 3, 20, seed, (600, 200), false);
        (out.epochs, net)
    }

    #[test]
    fn learns_the_generated_digits() {
        let (epochs, _) = run(7);
        let last = epochs.last().unwrap();
        assert!(last.test_accuracy > 0.9, "{epochs:?}");
        assert!(epochs[0].loss > last.loss, "{epochs:?}");
    }

    #[test]
    fn same_seed_same_result() {
        let (a, na) = run(11);
        let (b, nb) = run(11);
        let strip = |v: &[EpochStats]| {
            v.iter()
                .map(|e| (e.loss, e.test_accuracy))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&a), strip(&b));
        assert_eq!(na.named_tensors()[0].1, nb.named_tensors()[0].1);
    }

    #[test]
    fn learning_rate_decays_per_epoch_and_resumes_on_schedule() {
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: vec![LayerSpec::Affine {
                units: 10,
                init: None,
            }],
        };
        let (train_set, test_set) = (data(50, 1), data(10, 2));
        let mut sgd = Sgd { lr: 1.0 };
        let mut options = TrainOptions {
            epochs: 3,
            batch_size: 25,
            seed: 1,
            first_epoch: 0,
            progress: false,
            regularization: Regularization::default(),
            lr_decay: 0.5,
            shift: 0,
            train_eval_limit: None,
        };
        let mut net = Network::new(&arch, 1).unwrap();
        let stop = AtomicBool::new(false);
        train(
            &mut net,
            &mut sgd,
            &train_set,
            &test_set,
            &options,
            &stop,
            |_| {},
        );
        assert_eq!(sgd.lr, 0.25, "epochs 1, 2, 3 ran at 1, 0.5, 0.25");
        // A resumed run (2 epochs done) starts its first epoch at 1 · 0.5².
        let mut fresh = Sgd { lr: 1.0 };
        options.first_epoch = 2;
        options.epochs = 1;
        train(
            &mut net,
            &mut fresh,
            &train_set,
            &test_set,
            &options,
            &stop,
            |_| {},
        );
        assert_eq!(fresh.lr, 0.25);
    }

    #[test]
    fn stop_flag_ends_training_early() {
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: vec![LayerSpec::Affine {
                units: 10,
                init: None,
            }],
        };
        let mut net = Network::new(&arch, 1).unwrap();
        let out = fit(&mut net, 0.1, 5, 10, 1, (100, 10), true);
        assert!(out.interrupted);
        assert!(out.epochs.is_empty());
    }
}
