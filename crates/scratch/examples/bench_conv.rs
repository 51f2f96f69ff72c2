//! Training throughput of the course's SimpleConvNet (configs/simple-convnet.toml):
//! conv 30 5×5 → ReLU → pool 2 → affine 100 → ReLU → affine 10, SGD lr 0.1, batch 100.
//! The NumPy and PyTorch versions of the same network are benches/conv_numpy.py and
//! benches/conv_torch.py; benches/conv_bench.sh runs all three alternately.
//!
//!     DL_DATA_DIR=../shared/data cargo run --release -p scratch --example bench_conv [iterations] [config]
//!
//! With a config file (an MNIST network) it measures that network's step instead, with
//! the config's optimiser.

use std::time::Instant;

use anyhow::{Context, Result};
use dataset::{DataDir, MnistKind};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use scratch::data::Samples;
use scratch::network::Network;
use scratch::spec::{Architecture, ExperimentConfig, InputShape};

/// Training allocates and frees multi-megabyte activations every step. glibc's malloc
/// returns such blocks to the kernel at once, so each step paid page faults and page
/// zeroing again (a fifth of the conv benchmark's time in perf); mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIG: &str = include_str!("../../../configs/simple-convnet.toml");
const BATCH: usize = 100;
const WARMUP: usize = 5;

fn main() -> Result<()> {
    let iterations: usize = match std::env::args().nth(1) {
        Some(s) => s.parse().context("iterations must be a whole number")?,
        None => 100,
    };
    let split = dataset::mnist::load(MnistKind::Digits, &DataDir::from_env().with_download(false))?;
    let train = Samples::from_images(&split.train);
    let cfg = match std::env::args().nth(2) {
        Some(path) => ExperimentConfig::load(std::path::Path::new(&path))?,
        None => ExperimentConfig::parse(CONFIG, "configs/simple-convnet.toml")?,
    };
    let arch = Architecture {
        input: InputShape::MNIST,
        classes: 10,
        layers: cfg.layers,
    };
    let mut net = Network::new(&arch, 1)?;
    let mut opt = scratch::optimizer::build(&cfg.optimizer);
    let mut rng = StdRng::seed_from_u64(1);
    let (mut x, mut labels) = (ndarray::Array2::zeros((BATCH, 784)), Vec::new());
    let mut step = |net: &mut Network| {
        let idx = sample(&mut rng, train.len(), BATCH).into_vec();
        train.gather(&idx, &mut x, &mut labels);
        let loss = net.gradient(&x, &labels);
        opt.step(net.params());
        loss
    };
    for _ in 0..WARMUP {
        step(&mut net);
    }
    let start = Instant::now();
    let mut loss = 0.0;
    for _ in 0..iterations {
        loss = step(&mut net);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "scratch (Rust, {} threads): {:.0} images/s ({iterations} iterations of {BATCH} in {secs:.2}s, last loss {loss:.3})",
        rayon::current_num_threads(),
        (iterations * BATCH) as f64 / secs
    );
    Ok(())
}
