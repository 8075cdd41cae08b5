//! Which engine runs the work: `--device auto|cpu|cuda`.

use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::CudaBackend;
use crate::error::{Error, Result};

/// The compute device a command asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Device {
    #[default]
    Cpu,
    /// CUDA when a GPU opens, else CPU (with a one-line notice).
    Auto,
    Cuda,
}

/// The backend a command runs on, opened.
pub enum OpenBackend {
    Cpu(CpuBackend<f32>),
    Cuda(Box<CudaBackend>),
}

/// Work written once over the backend: [`OpenBackend::run`] calls it with the concrete one.
pub trait OnBackend {
    type Output;
    fn run<B: Backend<Elem = f32>>(self, e: &B) -> Result<Self::Output>;
}

impl OpenBackend {
    pub fn name(&self) -> String {
        match self {
            OpenBackend::Cpu(_) => "CPU".into(),
            OpenBackend::Cuda(e) => format!("CUDA ({}, {})", e.gpu.name(), e.gpu.arch()),
        }
    }

    /// The one place where the backend's type is chosen.
    pub fn run<J: OnBackend>(&self, job: J) -> Result<J::Output> {
        match self {
            OpenBackend::Cpu(e) => job.run(e),
            OpenBackend::Cuda(e) => job.run(&**e),
        }
    }
}

/// Opens the backend for `d`. `cuda` without a usable GPU is a one-line error; `auto` then runs
/// on the CPU exactly as `cpu` does, after a one-line notice on stderr (unless `quiet`).
pub fn open_backend(d: Device, quiet: bool) -> Result<OpenBackend> {
    match d {
        Device::Cpu => Ok(OpenBackend::Cpu(CpuBackend::new())),
        Device::Cuda => CudaBackend::open(0)
            .map(|e| OpenBackend::Cuda(Box::new(e)))
            .map_err(|e| Error::new(format!("--device cuda: {e}"))),
        Device::Auto => match CudaBackend::open(0) {
            Ok(e) => Ok(OpenBackend::Cuda(Box::new(e))),
            Err(e) => {
                if !quiet {
                    eprintln!("sincut: no usable GPU ({e}); running on the CPU");
                }
                Ok(OpenBackend::Cpu(CpuBackend::new()))
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
            Ok(b) => assert!(gpu && matches!(b, OpenBackend::Cuda(_))),
            Err(e) => {
                let e = e.to_string();
                assert!(!gpu, "a GPU opens but --device cuda failed: {e}");
                assert!(e.starts_with("--device cuda:") && !e.contains('\n'), "{e}");
            }
        }
        let auto = open_backend(Device::Auto, true).unwrap();
        assert_eq!(matches!(auto, OpenBackend::Cuda(_)), gpu);
        assert!(matches!(
            open_backend(Device::Cpu, true).unwrap(),
            OpenBackend::Cpu(_)
        ));
    }
}
