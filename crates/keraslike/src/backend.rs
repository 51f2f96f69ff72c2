//! Choosing where burn runs: `--backend flex|ndarray|wgpu`, all compiled in.

use anyhow::{Result, anyhow};
use burn::tensor::{Device, DeviceKind, Tensor};
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (im2col + GEMM convolution, SIMD, rayon).
    Flex,
    /// burn-ndarray, deprecated upstream; kept selectable for comparison.
    Ndarray,
    /// The GPU backend (Vulkan, Metal, DX12 or WebGPU through wgpu).
    Wgpu,
}

/// The device for `backend`. For wgpu the adapter is probed with the fallible initialiser,
/// so a machine without one gets an error instead of a panic on the first operation.
pub fn device(backend: Backend) -> Result<Device> {
    match backend {
        Backend::Flex => Ok(Device::flex()),
        #[allow(deprecated)] // selectable on purpose: the project compares it with flex
        Backend::Ndarray => Ok(Device::ndarray()),
        Backend::Wgpu => Device::wgpu_options().device_kind(DeviceKind::DefaultDevice).init().map_err(|e| {
            anyhow!("no usable wgpu adapter on this machine ({e}); use a CPU backend: --backend flex")
        }),
    }
}

/// Runs a small matrix product on `device` and returns its sum (a smoke test).
pub fn smoke_test(device: &Device) -> Result<f32> {
    let a = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], device);
    let b = Tensor::<2>::from_floats([[5.0, 6.0], [7.0, 8.0]], device);
    let sum = a.matmul(b).sum().into_scalar::<f32>();
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backends_compute_a_matrix_product() {
        // [[19, 22], [43, 50]] sums to 134.
        for backend in [Backend::Flex, Backend::Ndarray] {
            let sum = smoke_test(&device(backend).unwrap()).unwrap();
            assert_eq!(sum, 134.0, "{backend:?}");
        }
    }

    #[test]
    fn wgpu_either_runs_or_reports_a_clear_error() {
        match device(Backend::Wgpu) {
            Ok(d) => assert_eq!(smoke_test(&d).unwrap(), 134.0),
            Err(e) => assert!(e.to_string().contains("--backend flex"), "{e}"),
        }
    }
}
