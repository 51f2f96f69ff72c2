//! The GPU backend computes what the CPU backend computes: a small CNN's loss, and its
//! loss after three Adam steps, on wgpu against flex from the same weights and batch.
//!
//! Ignored by default: on a machine without a GPU, wgpu runs on the software Vulkan
//! driver (lavapipe, Debian's `mesa-vulkan-drivers`, which `.ci/run` installs) and its
//! first step compiles kernels for minutes. Without any adapter the test says so and
//! passes: there is nothing to compare.
//!
//!     cargo test -p keraslike --test wgpu_step -- --ignored --nocapture

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor, TensorData};
use keraslike::backend::{self, Backend};
use keraslike::data::ImageBatch;
use keraslike::model::Sequential;
use keraslike::model_config::ModelConfig;
use keraslike::optimizer::OptimizerKind;

const MODEL: &str = r#"
input = [1, 12, 12]

[[layers]]
type = "Conv2D"
filters = 4
kernel_size = 3
padding = "same"
activation = "relu"

[[layers]]
type = "MaxPooling2D"
pool_size = 2

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 3
activation = "softmax"
"#;

const BATCH: usize = 6;

/// Losses before and after each of three Adam steps (lr 0.01) on one fixed batch.
fn losses(mut model: Sequential, device: &Device) -> Vec<f32> {
    let pixels: Vec<f32> = (0..BATCH * 144)
        .map(|i| ((i * 37 % 101) as f32) / 100.0)
        .collect();
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [BATCH, 1, 12, 12]), device);
    let labels: Vec<i64> = (0..BATCH as i64).map(|i| i % 3).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [BATCH]), device);
    let mut optim = OptimizerKind::Adam.build();
    let mut out = Vec::new();
    for _ in 0..3 {
        let step = model.classification(ImageBatch {
            images: images.clone(),
            targets: targets.clone(),
            weights: None,
        });
        let grads = GradientsParams::from_grads(step.loss.backward(), &model);
        out.push(step.loss.into_scalar::<f32>());
        model = optim.step(1e-2, model, grads);
    }
    let last = model.classification(ImageBatch {
        images,
        targets,
        weights: None,
    });
    out.push(last.loss.into_scalar::<f32>());
    out
}

#[test]
#[ignore = "compiles GPU kernels: minutes on the software Vulkan driver"]
fn wgpu_training_steps_match_flex() {
    let wgpu = match backend::device(Backend::Wgpu) {
        Ok(d) => d.autodiff(),
        Err(e) => {
            eprintln!("no wgpu adapter, nothing to compare: {e}");
            return;
        }
    };
    let flex = backend::device(Backend::Flex).unwrap().autodiff();
    flex.seed(5);
    let config = ModelConfig::parse(MODEL, "wgpu_step.rs").unwrap();
    let model = Sequential::new(&config, &flex).unwrap();
    // The same weights as fresh leaves on the GPU (`to_device` would keep them in the
    // CPU model's autodiff graph), through the saved-model bytes.
    let bytes = model.clone().into_record().into_bytes().unwrap();
    let on_gpu = Sequential::new(&config, &wgpu)
        .unwrap()
        .load_record(ModuleRecord::from_bytes(bytes).unwrap());
    let cpu = losses(model, &flex);
    let gpu = losses(on_gpu, &wgpu);
    println!("flex losses {cpu:?}\nwgpu losses {gpu:?}");
    assert!(cpu[3] < cpu[0], "training lowers the loss: {cpu:?}");
    for (c, g) in cpu.iter().zip(&gpu) {
        assert!(
            (c - g).abs() <= 1e-3 * c.abs().max(1.0),
            "flex {cpu:?} vs wgpu {gpu:?}"
        );
    }
}
