//! Training on the real MNIST files (CI points `DL_DATA_DIR` at them):
//! `DL_DATA_DIR=../shared/data cargo test -p scratch -- --ignored`.

use std::sync::atomic::AtomicBool;

use dataset::{DataDir, MnistKind};
use scratch::data::Samples;
use scratch::network::Network;
use scratch::optimizer;
use scratch::spec::{Architecture, ExperimentConfig, InputShape};
use scratch::train::{TrainOptions, train};

/// Trains `cfg`'s network with its settings for `epochs` on the first `train_images`
/// training images (all if `None`); returns the final test accuracy on all 10,000.
fn test_accuracy_after(
    cfg: &ExperimentConfig,
    epochs: usize,
    train_images: Option<usize>,
    train_eval_limit: Option<usize>,
) -> f32 {
    let split =
        dataset::mnist::load(MnistKind::Digits, &DataDir::from_env().with_download(false)).unwrap();
    let train_images = match train_images {
        Some(n) => split.train.truncate(n),
        None => split.train,
    };
    let (train_set, test_set) = (
        Samples::from_images(&train_images),
        Samples::from_images(&split.test),
    );
    let arch = Architecture {
        input: InputShape::MNIST,
        classes: 10,
        layers: cfg.layers.clone(),
    };
    let mut net = Network::new(&arch, cfg.train.seed).unwrap();
    let options = TrainOptions {
        epochs,
        batch_size: cfg.train.batch_size,
        seed: cfg.train.seed,
        first_epoch: 0,
        progress: false,
        regularization: cfg.regularization,
        lr_decay: cfg.train.lr_decay,
        shift: cfg.train.shift,
        train_eval_limit,
    };
    let mut opt = optimizer::build(&cfg.optimizer);
    let out = train(
        &mut net,
        opt.as_mut(),
        &train_set,
        &test_set,
        &options,
        &AtomicBool::new(false),
        |e| {
            println!(
                "epoch {} loss {:.4} train acc {:.4} test acc {:.4} ({:.2}s)",
                e.epoch, e.loss, e.train_accuracy, e.test_accuracy, e.seconds
            );
        },
    );
    out.epochs.last().unwrap().test_accuracy
}

#[test]
#[ignore = "needs DL_DATA_DIR with the real MNIST files"]
fn default_network_passes_95_percent_in_a_shortened_run() {
    let acc = test_accuracy_after(&ExperimentConfig::default_config(), 3, None, None);
    assert!(acc >= 0.95, "test accuracy {acc} after 3 epochs");
}

/// The shipped conv net (configs/cnn-mnist.toml: im2col convolutions, pooling, BatchNorm,
/// Dropout, Adam, shifted digits) for two epochs on the first 12,000 training images.
#[test]
#[ignore = "needs DL_DATA_DIR with the real MNIST files"]
fn conv_net_learns_real_digits_in_a_short_run() {
    let cfg = ExperimentConfig::parse(
        include_str!("../../../configs/cnn-mnist.toml"),
        "configs/cnn-mnist.toml",
    )
    .unwrap();
    let acc = test_accuracy_after(&cfg, 2, Some(12_000), Some(2000));
    // Measured 96.97% (94.53% after the first epoch: shifted digits are harder to fit).
    assert!(
        acc >= 0.95,
        "test accuracy {acc} after two epochs of 12,000 images"
    );
}
