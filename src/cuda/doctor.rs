//! `sincut doctor`: what the CUDA engine finds on this machine, and whether every kernel
//! compiles (without spills) for the GPU's architecture or the one asked for.

use super::nvrtc;
use super::{CudaError, driver_present, guarded};
use cudarc::driver::CudaContext;
use std::fmt::Write;

/// The CUDA driver's version as "major.minor" (cuDriverGetVersion).
fn driver_version() -> Option<String> {
    // Only with libcuda present: cudarc would panic (and print it) otherwise.
    if !driver_present() {
        return None;
    }
    guarded("cuDriverGetVersion", || unsafe {
        let mut v = 0i32;
        let r = cudarc::driver::sys::cuDriverGetVersion(&mut v);
        (r == cudarc::driver::sys::cudaError_enum::CUDA_SUCCESS)
            .then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
    })
    .ok()
    .flatten()
}

/// (name, arch, memory in GiB) of every GPU; Err when there is none or no driver.
fn gpus() -> Result<Vec<(String, String, f64)>, CudaError> {
    super::driver_check().map_err(CudaError::NoDriver)?;
    let count = guarded("cuDeviceGetCount", CudaContext::device_count)
        .map_err(CudaError::NoDriver)?
        .map_err(|e| CudaError::driver("counting GPUs", e))?;
    let mut out = Vec::new();
    for i in 0..count.max(0) as usize {
        let ctx = guarded("creating a context", || CudaContext::new(i))
            .map_err(CudaError::NoDriver)?
            .map_err(|e| CudaError::driver(&format!("opening GPU {i}"), e))?;
        let (a, b) = ctx
            .compute_capability()
            .map_err(|e| CudaError::driver("compute capability", e))?;
        let mem = ctx.total_mem().unwrap_or(0) as f64 / (1u64 << 30) as f64;
        out.push((ctx.name().unwrap_or_default(), format!("sm_{a}{b}"), mem));
    }
    if out.is_empty() {
        return Err(CudaError::NoGpu("the driver sees no GPU".into()));
    }
    Ok(out)
}

/// The doctor's report and whether all is well: NVRTC loads, every kernel compiles for the
/// architecture (`arch`, else GPU 0's, else sm_90) and none spills registers. With
/// `compile` false it stops once NVRTC and the headers are found.
pub fn doctor_report(arch: Option<&str>, compile: bool) -> (String, bool) {
    let mut s = String::new();
    let mut ok = true;
    let gpu_list = gpus();
    match &gpu_list {
        Ok(list) => {
            for (i, (name, a, mem)) in list.iter().enumerate() {
                let _ = writeln!(s, "GPU {i}: {name} ({a}, {mem:.1} GiB)");
            }
        }
        Err(e) => {
            let _ = writeln!(s, "GPU: none ({e})");
        }
    }
    let _ = writeln!(
        s,
        "CUDA driver: {}",
        driver_version().unwrap_or_else(|| "not available".into())
    );
    let arch = arch.map(str::to_string).unwrap_or_else(|| match &gpu_list {
        Ok(list) => list[0].1.clone(),
        Err(_) => "sm_90".to_string(),
    });
    if let Some(lib) = nvrtc::loaded_library("libcuda") {
        let _ = writeln!(s, "libcuda: {}", lib.display());
    }
    match nvrtc::nvrtc_version() {
        Ok((a, b)) => {
            let lib = nvrtc::nvrtc_library()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(path unknown)".into());
            let _ = writeln!(s, "NVRTC: {a}.{b} from {lib}");
        }
        Err(e) => {
            let _ = writeln!(s, "NVRTC: {e}");
            let ok = prebuilt_report(&mut s, &arch, gpu_list.is_ok());
            return (s, ok);
        }
    }
    let inc = nvrtc::include_dirs();
    if inc.is_empty() {
        let _ = writeln!(
            s,
            "CUDA headers: none found (set SINCUT_CUDA_INCLUDE; the kernels need none today)"
        );
    } else {
        for d in &inc {
            let _ = writeln!(s, "CUDA headers: {}", d.display());
        }
    }
    let _ = writeln!(
        s,
        "kernel cache: {}",
        nvrtc::cache_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (no HOME)".into())
    );
    if !compile {
        let _ = writeln!(s, "kernels for {arch}: not compiled (--no-kernels)");
        return (s, ok);
    }
    let _ = writeln!(s, "kernels for {arch}:");
    match nvrtc::compile_all(&arch) {
        Ok(reports) => {
            let _ = writeln!(
                s,
                "  {:<16} {:<22} {:>5} {:>7} {:>6} {:>7} {:>7}",
                "file", "kernel", "regs", "smem", "stack", "spill-s", "spill-l"
            );
            for r in &reports {
                if let Some(log) = &r.error {
                    ok = false;
                    let _ = writeln!(s, "  {:<16} DOES NOT COMPILE:", r.file);
                    for l in log.lines().filter(|l| !l.trim().is_empty()) {
                        let _ = writeln!(s, "    {l}");
                    }
                    continue;
                }
                if r.no_ptxas_report {
                    ok = false;
                    let _ = writeln!(
                        s,
                        "  {:<16} compiled, but NVRTC gave no ptxas report (the CUDA driver's \
                         compute cache answered; run with {}={})",
                        r.file,
                        nvrtc::COMPUTE_CACHE_OFF.0,
                        nvrtc::COMPUTE_CACHE_OFF.1
                    );
                    continue;
                }
                if !r.ok() {
                    ok = false;
                }
                let _ = writeln!(
                    s,
                    "  {:<16} {:<22} {:>5} {:>7} {:>6} {:>7} {:>7}{}",
                    r.file,
                    r.kernel,
                    r.registers,
                    r.smem_bytes,
                    r.stack_bytes,
                    r.spill_stores,
                    r.spill_loads,
                    if r.ok() { "" } else { "  SPILLS" }
                );
            }
            let files = reports
                .iter()
                .map(|r| r.file.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let _ = writeln!(
                s,
                "{} kernels in {files} files: {}",
                reports
                    .iter()
                    .filter(|r| r.error.is_none() && !r.no_ptxas_report)
                    .count(),
                if ok { "ok" } else { "FAILED" }
            );
        }
        Err(e) => {
            ok = false;
            let _ = writeln!(s, "  {e}");
        }
    }
    (s, ok)
}

/// Without NVRTC, the CUDA engine runs the cubins of $SINCUT_PREBUILT_CUBINS: reports whether
/// every kernel file has one for `arch` and, with a GPU, whether the driver loads each.
fn prebuilt_report(s: &mut String, arch: &str, have_gpu: bool) -> bool {
    let Some(dir) = std::env::var_os(nvrtc::PREBUILT_ENV).filter(|v| !v.is_empty()) else {
        let _ = writeln!(
            s,
            "prebuilt cubins: none ({} not set): the CUDA engine cannot run here",
            nvrtc::PREBUILT_ENV
        );
        return false;
    };
    let dir = std::path::PathBuf::from(dir);
    let gpu = if have_gpu {
        super::Gpu::open(0).ok()
    } else {
        None
    };
    let mut missing = Vec::new();
    let mut unloadable = Vec::new();
    for (file, _) in super::kernels::FILES {
        match nvrtc::prebuilt_cubin_in(&dir, file, arch) {
            None => missing.push(*file),
            Some(bytes) => {
                if let Some(g) = &gpu
                    && let Err(e) = g
                        .context()
                        .load_module(cudarc::nvrtc::Ptx::from_binary(bytes))
                {
                    unloadable.push(format!("{file} ({})", CudaError::driver("loading", e)));
                }
            }
        }
    }
    let n = super::kernels::FILES.len();
    let _ = writeln!(
        s,
        "prebuilt cubins: {} ({} of {n} kernel files for {arch}{})",
        dir.display(),
        n - missing.len(),
        match &gpu {
            Some(_) if unloadable.is_empty() && missing.is_empty() => ", each loaded by the driver",
            Some(_) => "",
            None => ", not loaded: no GPU",
        }
    );
    if !missing.is_empty() {
        let _ = writeln!(
            s,
            "  missing (another build or arch?): {}",
            missing.join(", ")
        );
    }
    for u in &unloadable {
        let _ = writeln!(s, "  not loadable: {u}");
    }
    missing.is_empty() && unloadable.is_empty()
}
