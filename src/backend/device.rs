//! Which backend runs the work: `--device auto|cpu|cuda`, `--precision f32|bf16|auto`.

use crate::backend::Backend;
use crate::backend::cpu::{CpuBackend, MatmulPrecision};
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

/// The precision of the matrix products a command asks for (`--precision`). Master weights, Adam
/// state, losses, normalisations and R1's bookkeeping stay f32 in every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// f32 operands.
    F32,
    /// bfloat16 operands, f32 accumulation. On the CPU the operands are rounded as the GEMM
    /// packs them and the f32 kernel runs (no faster than f32: on Zen 5 `vdpbf16ps` has half
    /// the f32 FMA rate); on CUDA the convolutions run on bf16 tensor cores (sm_80 or newer).
    Bf16,
    /// bf16 where the hardware has it and the quality evidence holds; for now always f32.
    #[default]
    Auto,
}

impl Precision {
    /// What `auto` means today (issue 14: bf16 waits for its quality evidence).
    pub fn resolved(self) -> MatmulPrecision {
        match self {
            Precision::Bf16 => MatmulPrecision::Bf16,
            Precision::F32 | Precision::Auto => MatmulPrecision::Full,
        }
    }
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

    /// The precision of the matrix products: "f32" or "bf16" (run.json, the report).
    pub fn precision(&self) -> &'static str {
        match self {
            OpenBackend::Cpu(e) if e.matmul() == MatmulPrecision::Bf16 => "bf16",
            OpenBackend::Cuda(e) if e.matmul() == MatmulPrecision::Bf16 => "bf16",
            _ => "f32",
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

/// Opens the backend for `d` at precision `p`. `cuda` without a usable GPU is a one-line error;
/// `auto` then runs on the CPU exactly as `cpu` does, after a one-line notice on stderr (unless
/// `quiet`). The precision applies to either backend (bf16 on CUDA: tensor-core convolutions;
/// a GPU older than sm_80 then does not open, so `cuda` fails and `auto` uses the CPU).
pub fn open_backend(d: Device, p: Precision, quiet: bool) -> Result<OpenBackend> {
    let matmul = p.resolved();
    let cpu = || OpenBackend::Cpu(CpuBackend::with_matmul(matmul));
    match d {
        Device::Cpu => Ok(cpu()),
        Device::Cuda => CudaBackend::open_with(0, matmul)
            .map(|e| OpenBackend::Cuda(Box::new(e)))
            .map_err(|e| Error::new(format!("--device cuda: {e}"))),
        Device::Auto => match CudaBackend::open_with(0, matmul) {
            Ok(e) => Ok(OpenBackend::Cuda(Box::new(e))),
            Err(e) => {
                if !quiet {
                    eprintln!("sincut: no usable GPU ({e}); running on the CPU");
                }
                Ok(cpu())
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
        match open_backend(Device::Cuda, Precision::F32, true) {
            Ok(b) => assert!(gpu && matches!(b, OpenBackend::Cuda(_))),
            Err(e) => {
                let e = e.to_string();
                assert!(!gpu, "a GPU opens but --device cuda failed: {e}");
                assert!(e.starts_with("--device cuda:") && !e.contains('\n'), "{e}");
            }
        }
        let auto = open_backend(Device::Auto, Precision::F32, true).unwrap();
        assert_eq!(matches!(auto, OpenBackend::Cuda(_)), gpu);
        assert!(matches!(
            open_backend(Device::Cpu, Precision::F32, true).unwrap(),
            OpenBackend::Cpu(_)
        ));
    }

    /// bf16 opens the CPU backend with bf16 matmuls, and the CUDA backend with bf16
    /// convolutions where a GPU (sm_80+) opens; without one, `cuda` fails in one line and `auto`
    /// falls back to the CPU, still in bf16. `auto` precision is f32 on both.
    #[test]
    fn precision_opens_the_right_backend() {
        let b = open_backend(Device::Cpu, Precision::Bf16, true).unwrap();
        assert_eq!(b.precision(), "bf16");
        assert_eq!(
            open_backend(Device::Cpu, Precision::Auto, true)
                .unwrap()
                .precision(),
            "f32"
        );
        let gpu = crate::cuda::Gpu::open(0)
            .is_ok_and(|g| crate::cuda::launch::conv2d::check_bf16(&g).is_ok());
        match open_backend(Device::Cuda, Precision::Bf16, true) {
            Ok(b) => {
                assert!(gpu && matches!(b, OpenBackend::Cuda(_)));
                assert_eq!(b.precision(), "bf16");
            }
            Err(e) => {
                let e = e.to_string();
                assert!(
                    !gpu,
                    "a GPU opens but --device cuda --precision bf16 failed: {e}"
                );
                assert!(e.starts_with("--device cuda:") && !e.contains('\n'), "{e}");
            }
        }
        let auto = open_backend(Device::Auto, Precision::Bf16, true).unwrap();
        assert_eq!(matches!(auto, OpenBackend::Cuda(_)), gpu);
        assert_eq!(auto.precision(), "bf16");
        if gpu {
            let f = open_backend(Device::Cuda, Precision::Auto, true).unwrap();
            assert_eq!(f.precision(), "f32");
        }
    }
}
