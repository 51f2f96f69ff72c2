//! The TwoLayerNet's first layer alone (784 → 50, batch 100) on real MNIST batches: the
//! sparse kernels of `kernels/sparse_input.rs` against the GEMM, per epoch of 600 steps.
//!
//!     DL_DATA_DIR=../shared/data cargo run -p scratch --example bench_first_layer -- [rounds]
//!
//! The batches are 600 separate arrays, so each is read cold from memory, as the gather
//! leaves it in a real step only partly.

use std::time::{Duration, Instant};

use anyhow::Context;
use dataset::{DataDir, MnistKind};
use ndarray::{Array2, s};
use scratch::data::Samples;
use scratch::kernels::gemm::gemm;
use scratch::kernels::sparse_input::{self, NonZeros};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    anyhow::ensure!(sparse_input::available(), "this CPU has no AVX-512F");
    let split = dataset::mnist::load(MnistKind::Digits, &DataDir::from_env())?;
    let train = Samples::from_images(&split.train);
    let (k, n, batch, steps) = (784, 50, 100, 600);
    let w = Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.01);
    let b = Array2::<f32>::zeros((1, n));
    let dout = Array2::from_shape_fn((batch, n), |(i, j)| ((i + j) % 5) as f32 * 0.1);
    let mut out = Array2::<f32>::zeros((batch, n));
    let mut dw = Array2::<f32>::zeros((k, n));
    let batches: Vec<Array2<f32>> = (0..steps)
        .map(|i| {
            train
                .x()
                .slice(s![i * batch..(i + 1) * batch, ..])
                .to_owned()
        })
        .collect();
    let slice = |a: &Array2<f32>| a.as_slice().context("contiguous").map(<[f32]>::to_vec);
    let (w_s, b_s, dout_s) = (slice(&w)?, slice(&b)?, slice(&dout)?);
    let rounds: usize = std::env::args().nth(1).map_or(Ok(3), |s| s.parse())?;
    let mut nonzeros = NonZeros::default();
    for round in 1..=rounds {
        let timed = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            f();
            t.elapsed()
        };
        let gemm_forward = timed(&mut || {
            for x in &batches {
                gemm(1.0, x, &w, 0.0, &mut out);
            }
        });
        let gemm_dw = timed(&mut || {
            for x in &batches {
                gemm(1.0, &x.t(), &dout, 0.0, &mut dw);
            }
        });
        let (mut list, mut forward, mut weight_grad) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut density = 0.0;
        for x in &batches {
            let xs = x.as_slice().context("contiguous")?;
            list += timed(&mut || density += nonzeros.list(xs, k));
            let out = out.as_slice_mut().context("contiguous")?;
            forward += timed(&mut || nonzeros.forward(&w_s, &b_s, out));
            let dw = dw.as_slice_mut().context("contiguous")?;
            weight_grad += timed(&mut || nonzeros.weight_grad(&dout_s, n, dw));
        }
        println!(
            "round {round}: GEMM forward {:.4} s + dW {:.4} s; sparse list {:.4} s + forward {:.4} s + dW {:.4} s (density {:.3})",
            gemm_forward.as_secs_f64(),
            gemm_dw.as_secs_f64(),
            list.as_secs_f64(),
            forward.as_secs_f64(),
            weight_grad.as_secs_f64(),
            density / steps as f32,
        );
    }
    Ok(())
}
