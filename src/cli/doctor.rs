//! `sincut doctor`: the GPU, driver and NVRTC, and every CUDA kernel compiled.

use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line of `sincut doctor`.
#[derive(Args)]
pub struct DoctorFlags {
    /// Compile for this architecture (e.g. sm_90) instead of the GPU's own.
    #[arg(long)]
    arch: Option<String>,
    /// Also write every kernel's cubin to DIR, for a GPU machine without NVRTC
    /// (point SINCUT_PREBUILT_CUBINS at it there).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// Only find the GPU, driver, NVRTC and headers; compile no kernel.
    #[arg(long, conflicts_with = "export")]
    no_kernels: bool,
}

/// Runs `sincut doctor`: the exit code, or the error `main` prints.
pub fn run(flags: DoctorFlags) -> Result<ExitCode> {
    let DoctorFlags {
        arch,
        export,
        no_kernels,
    } = flags;
    let (key, value) = crate::cuda::nvrtc::COMPUTE_CACHE_OFF;
    if std::env::var_os(key).is_none() {
        // SAFETY: no other thread exists yet (NVRTC and the driver are loaded below).
        unsafe { std::env::set_var(key, value) };
    }
    let (report, ok) = crate::cuda::doctor_report(arch.as_deref(), !no_kernels);
    print!("{report}");
    if let Some(dir) = export {
        let arch = arch.as_deref().unwrap_or("sm_90");
        let n = crate::cuda::nvrtc::export_prebuilt(&dir, arch)
            .map_err(|e| Error::new(e.to_string()))?;
        println!("exported {n} cubins for {arch} to {}", dir.display());
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
