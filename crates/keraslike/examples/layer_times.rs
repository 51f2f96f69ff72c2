//! Forward and forward + backward times of the layers keraslike runs on its own kernels
//! on flex, against burn-flex's own ops for the same layers, alternately in one run.
//!
//!     cargo run -p keraslike --example layer_times -- [REPEATS]
//!
//! Shapes: the course CNN's (batch 32: Conv2D 1→32 and 32→64 3×3 'same' on 28×28,
//! MaxPooling2D 2×2 on 64×28×28) and the DCGAN's (batch 128: Conv2D 64→128 4×4 stride 2
//! on 14×14, ConvTranspose2D 128→64 4×4 stride 2 on 7×7). Milliseconds per call,
//! median of REPEATS (default 10) after one warm-up call; the backward includes the
//! input gradient wherever the layer has an input below it.

use std::time::Instant;

use anyhow::Result;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{Device, Distribution, Tensor};
use keraslike::kernels::flex;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Median milliseconds of `repeats` calls of `f`, after one warm-up call.
fn median_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Times one layer both ways: `burn` and `ours` map an input to an output.
fn compare<const D: usize>(
    name: &str,
    x: &Tensor<D>,
    repeats: usize,
    burn: impl Fn(Tensor<D>) -> Tensor<D>,
    ours: impl Fn(Tensor<D>) -> Tensor<D>,
) {
    // Reading one value waits for the work; backward() runs the whole backward pass.
    let forward = |f: &dyn Fn(Tensor<D>) -> Tensor<D>| {
        median_ms(repeats, || {
            let _ = f(x.clone()).sum().into_scalar::<f32>();
        })
    };
    let both = |f: &dyn Fn(Tensor<D>) -> Tensor<D>| {
        median_ms(repeats, || {
            let _ = f(x.clone()).sum().backward();
        })
    };
    let (burn_fwd, ours_fwd) = (forward(&burn), forward(&ours));
    let (burn_both, ours_both) = (both(&burn), both(&ours));
    println!(
        "{name:<44} forward {burn_fwd:>6.2} / {ours_fwd:>6.2} ms   \
         forward+backward {burn_both:>6.2} / {ours_both:>6.2} ms   (burn-flex / keraslike)"
    );
}

fn main() -> Result<()> {
    let repeats: usize = std::env::args().nth(1).map_or(Ok(10), |s| s.parse())?;
    let device = Device::flex().autodiff();
    device.seed(1);
    let random = |shape: [usize; 4], grad: bool| {
        let x = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &device);
        if grad { x.require_grad() } else { x }
    };
    let same3x3 = |channels: [usize; 2]| {
        Conv2dConfig::new(channels, [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(&device)
    };
    let conv1 = same3x3([1, 32]);
    let x1 = random([32, 1, 28, 28], false);
    compare(
        "Conv2D 1→32 3×3, 32×1×28×28",
        &x1,
        repeats,
        |x| conv1.forward(x),
        |x| flex::conv2d(&conv1, &x).expect("flex"),
    );
    let conv2 = same3x3([32, 64]);
    let x2 = random([32, 32, 28, 28], true);
    compare(
        "Conv2D 32→64 3×3, 32×32×28×28",
        &x2,
        repeats,
        |x| conv2.forward(x),
        |x| flex::conv2d(&conv2, &x).expect("flex"),
    );
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let x3 = random([32, 64, 28, 28], true);
    compare(
        "MaxPooling2D 2×2, 32×64×28×28",
        &x3,
        repeats,
        |x| pool.forward(x),
        |x| flex::max_pool2d(&pool, &x).expect("flex"),
    );
    let down = Conv2dConfig::new([64, 128], [4, 4])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x4 = random([128, 64, 14, 14], true);
    compare(
        "Conv2D 64→128 4×4 /2, 128×64×14×14",
        &x4,
        repeats,
        |x| down.forward(x),
        |x| flex::conv2d(&down, &x).expect("flex"),
    );
    let up = ConvTranspose2dConfig::new([128, 64], [4, 4])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .init(&device);
    let x5 = random([128, 128, 7, 7], true);
    compare(
        "ConvTranspose2D 128→64 4×4 /2, 128×128×7×7",
        &x5,
        repeats,
        |x| up.forward(x),
        |x| flex::conv_transpose2d(&up, &x).expect("flex"),
    );
    Ok(())
}
