//! Training-step throughput of a model on each CPU backend, side by side in one run.
//!
//!     cargo run -p keraslike --example backend_step -- [CONFIG] [STEPS] [BATCH] [BACKENDS] [OPTIMIZER]
//!
//! Defaults: the course CNN (configs/mnist-cnn.toml), 10 steps of 32 random 28×28 images
//! per backend after one warm-up step, Adam at its default rate (or OPTIMIZER: adadelta,
//! sgd, rmsprop). Backends (default `flex,ndarray`) are run alternately twice.

use std::time::Instant;

use anyhow::Result;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use keraslike::backend::{self, Backend};
use keraslike::data::ImageBatch;
use keraslike::model::Sequential;
use keraslike::model_config::ModelConfig;
use keraslike::optimizer::OptimizerKind;

/// A training step allocates and frees many multi-megabyte tensors. glibc's malloc hands
/// such blocks back to the kernel at once, so every step paid page faults and zeroing
/// again; mimalloc keeps them for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn images_per_second(
    config: &ModelConfig,
    device: Device,
    steps: usize,
    batch: usize,
    optimizer: OptimizerKind,
) -> Result<f64> {
    let device = device.autodiff();
    device.seed(1);
    let mut model = Sequential::new(config, &device)?;
    let mut optim = optimizer.build();
    let lr = optimizer.default_lr();
    let [c, h, w] = config.input;
    let x = Tensor::<4>::random(
        [batch, c, h, w],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let classes = match config.infer()?.last().map(|layer| &layer.output) {
        Some(keraslike::model_config::Shape::Flat(units)) => *units as i64,
        _ => anyhow::bail!("the model does not end in a Dense layer"),
    };
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % classes).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    let mut step = |model: Sequential| {
        let out = model.classification(ImageBatch {
            images: x.clone(),
            targets: y.clone(),
            weights: None,
        });
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        // Reading the loss, as training's metrics do, waits for the step's work.
        let _ = out.loss.into_scalar::<f32>();
        optim.step(lr, model, grads)
    };
    model = step(model); // warm-up: allocations, kernel selection
    let start = Instant::now();
    for _ in 0..steps {
        model = step(model);
    }
    Ok((steps * batch) as f64 / start.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config_path = args
        .first()
        .map_or("configs/mnist-cnn.toml", String::as_str);
    let steps: usize = args.get(1).map_or(Ok(10), |s| s.parse())?;
    let batch: usize = args.get(2).map_or(Ok(32), |s| s.parse())?;
    let backends: Vec<Backend> = args
        .get(3)
        .map_or("flex,ndarray", String::as_str)
        .split(',')
        .map(|name| clap::ValueEnum::from_str(name, true).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let optimizer = match args.get(4) {
        Some(name) => clap::ValueEnum::from_str(name, true).map_err(anyhow::Error::msg)?,
        None => OptimizerKind::Adam,
    };
    let config = ModelConfig::load(std::path::Path::new(config_path))?;
    println!("{config_path}: {steps} training steps of batch {batch} per backend");
    for round in 1..=2 {
        for &b in &backends {
            // ndarray's direct-loop convolution is ~100x slower: fewer steps keep it bearable.
            let n = if b == Backend::Ndarray {
                steps.div_ceil(5)
            } else {
                steps
            };
            let ips = images_per_second(&config, backend::device(b)?, n, batch, optimizer)?;
            println!("round {round} {b:?}: {ips:.1} images/s ({n} steps)");
        }
    }
    Ok(())
}
