//! Which engine runs the work: `--device auto|cpu|cuda`.

use crate::io::{Error, Result};

/// The compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Device {
    #[default]
    Cpu,
    /// CUDA when available, else CPU.
    Auto,
    Cuda,
}

/// Settles the device to run on. The CUDA engine has its kernels but not yet the training step
/// and render, so `auto` runs on the CPU and asking for CUDA explicitly is a clear error.
pub fn resolve_device(d: Device) -> Result<Device> {
    match d {
        Device::Cpu | Device::Auto => Ok(Device::Cpu),
        Device::Cuda => Err(Error::new(
            "--device cuda: the CUDA engine runs its kernel tests only so far (training and render on the GPU come next); use --device cpu",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_is_refused_with_one_line_and_auto_runs_on_the_cpu() {
        assert_eq!(resolve_device(Device::Auto).unwrap(), Device::Cpu);
        let e = resolve_device(Device::Cuda).unwrap_err().to_string();
        assert!(e.starts_with("--device cuda:") && !e.contains('\n'), "{e}");
    }
}
