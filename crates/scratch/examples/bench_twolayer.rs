//! Training throughput of the lecture's TwoLayerNet: 784 → 50 ReLU → 10, SGD η 0.1,
//! batch 100, initial weights 0.01·N(0, 1), one epoch = 600 iterations.
//!
//!     DL_DATA_DIR=../shared/data cargo run -p scratch --example bench_twolayer -- [epochs]
//!
//! Prints images/s per epoch and the test accuracy at the end; `benches/mlp_vs_numpy.sh`
//! runs it beside the NumPy version (`benches/twolayer_numpy.py`).

use std::sync::atomic::AtomicBool;

use dataset::{DataDir, MnistKind};
use scratch::data::Samples;
use scratch::init::Init;
use scratch::network::Network;
use scratch::optimizer::Sgd;
use scratch::spec::{Architecture, InputShape, LayerSpec};
use scratch::train::{TrainOptions, accuracy, train};

/// Training allocates and frees multi-megabyte activations every step. glibc's malloc
/// returns such blocks to the kernel at once, so each step paid page faults and page
/// zeroing again (a fifth of the conv benchmark's time in perf); mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let epochs: usize = std::env::args().nth(1).map_or(Ok(3), |s| s.parse())?;
    let split = dataset::mnist::load(MnistKind::Digits, &DataDir::from_env())?;
    let (train_set, test_set) = (
        Samples::from_images(&split.train),
        Samples::from_images(&split.test),
    );
    let label = "rust   ";
    let init = Some(Init::Std(0.01));
    let arch = Architecture {
        input: InputShape::MNIST,
        classes: 10,
        layers: vec![
            LayerSpec::Affine { units: 50, init },
            LayerSpec::Relu,
            LayerSpec::Affine { units: 10, init },
        ],
    };
    let mut net = Network::new(&arch, 1)?;
    // Train-only timing: accuracy passes are measured separately, as in the NumPy script.
    let empty = Samples::from_floats(
        ndarray::Array2::zeros((0, 784)),
        vec![],
        split.test.shape,
        split.test.classes.clone(),
    );
    let stop = AtomicBool::new(false);
    for e in 0..epochs {
        let options = TrainOptions {
            epochs: 1,
            batch_size: 100,
            seed: 1,
            first_epoch: e,
            progress: false,
            regularization: Default::default(),
            lr_decay: 1.0,
            shift: 0,
            // Untimed, but kept short so that profiles show the training step.
            train_eval_limit: Some(1000),
        };
        let out = rayon::scope(|_| {
            train(
                &mut net,
                &mut Sgd { lr: 0.1 },
                &train_set,
                &empty,
                &options,
                &stop,
                |_| {},
            )
        });
        let s = out.epochs[0].seconds;
        println!(
            "{label}epoch {}: {:.3} s, {:.0} images/s",
            e + 1,
            s,
            train_set.len() as f64 / s
        );
    }
    println!(
        "{label}test accuracy after {epochs} epochs: {:.4}",
        accuracy(&mut net, &test_set)
    );
    Ok(())
}
