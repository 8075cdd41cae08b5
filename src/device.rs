//! Which engine runs the work: `--device auto|cpu|cuda`.

use crate::engine::cuda::CudaEngine;
use crate::error::{Error, Result};

/// The compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Device {
    #[default]
    Cpu,
    /// CUDA when a GPU opens, else CPU (with a one-line notice).
    Auto,
    Cuda,
    /// The device engine's code (src/engine) on its CPU implementation: what `cuda` runs, minus
    /// the kernels, bit-identical to `cpu` and slower. For tests of the GPU path without a GPU.
    #[value(name = "cpu-engine", hide = true)]
    CpuEngine,
}

/// The engine a command runs on: the CPU reference (`crate::nn`, `crate::train`), or the
/// device engine on a GPU.
pub enum Backend {
    Cpu,
    Cuda(Box<CudaEngine>),
    /// `--device cpu-engine`.
    CpuEngine,
}

impl Backend {
    pub fn name(&self) -> String {
        match self {
            Backend::Cpu => "CPU".into(),
            Backend::CpuEngine => "CPU (device engine)".into(),
            Backend::Cuda(e) => format!("CUDA ({}, {})", e.gpu.name(), e.gpu.arch()),
        }
    }
}

/// Opens the engine for `d`. `cuda` without a usable GPU is a one-line error; `auto` then runs
/// on the CPU exactly as `cpu` does, after a one-line notice on stderr (unless `quiet`).
pub fn open_backend(d: Device, quiet: bool) -> Result<Backend> {
    match d {
        Device::Cpu => Ok(Backend::Cpu),
        Device::CpuEngine => Ok(Backend::CpuEngine),
        Device::Cuda => CudaEngine::open(0)
            .map(|e| Backend::Cuda(Box::new(e)))
            .map_err(|e| Error::new(format!("--device cuda: {e}"))),
        Device::Auto => match CudaEngine::open(0) {
            Ok(e) => Ok(Backend::Cuda(Box::new(e))),
            Err(e) => {
                if !quiet {
                    eprintln!("sincut: no usable GPU ({e}); running on the CPU");
                }
                Ok(Backend::Cpu)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a GPU (this test's machine has none), `cuda` fails in one line and `auto` falls
    /// back to the CPU; with one, both open it.
    #[test]
    fn cuda_without_a_gpu_is_one_line_and_auto_falls_back() {
        let gpu = crate::cuda::Gpu::open(0).is_ok();
        match open_backend(Device::Cuda, true) {
            Ok(b) => assert!(gpu && matches!(b, Backend::Cuda(_))),
            Err(e) => {
                let e = e.to_string();
                assert!(!gpu, "a GPU opens but --device cuda failed: {e}");
                assert!(e.starts_with("--device cuda:") && !e.contains('\n'), "{e}");
            }
        }
        let auto = open_backend(Device::Auto, true).unwrap();
        assert_eq!(matches!(auto, Backend::Cuda(_)), gpu);
        assert!(matches!(
            open_backend(Device::Cpu, true).unwrap(),
            Backend::Cpu
        ));
    }
}
