//! This process's memory: allocator tunables for training, figures for benchmarks.

/// Keeps freed activation buffers in the process instead of returning them to the OS.
///
/// glibc serves large blocks with mmap and unmaps them on free, so every iteration would fault
/// in (and zero) fresh pages for its large tensors, with TLB shootdowns across the worker
/// threads; profiling showed ~15% of a CPU training iteration there. Heap-only allocation with
/// no trimming reuses the same pages. Call once at start-up, before other threads run.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        // SAFETY: mallopt only changes glibc allocator tunables; called before threads start.
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

/// A memory figure of this process from /proc/self/status in MiB (`"VmHWM:"`: peak resident
/// set, `"VmRSS:"`: current); NaN where unavailable. For benchmarks.
pub fn proc_status_mib(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The machine's memory in bytes (MemTotal of /proc/meminfo); None where unknown.
pub fn machine_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = s
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A lower bound of the bytes one training iteration of `cfg` allocates, in f64 so that absurd
/// options cannot overflow: the batch of source and target crops, and G's first activation
/// (full crop resolution, its widest) for both, with its gradient. Real use is several times
/// this, so a configuration above the machine's memory can never run.
pub fn training_lower_bound(cfg: &crate::config::ModelConfig) -> f64 {
    let pixels = (cfg.crop as f64).powi(2);
    let batch = cfg.batch as f64;
    let crops = 2.0 * batch * 3.0 * pixels;
    let first = 2.0 * 2.0 * batch * cfg.g_channels(cfg.model_resolution) as f64 * pixels;
    4.0 * (crops + first)
}

/// Refuses a configuration whose lower bound exceeds the machine's memory, with both figures,
/// before anything is allocated (it used to abort in the allocator, or panic on an overflow).
pub fn check_training_fits(cfg: &crate::config::ModelConfig) -> crate::error::Result<()> {
    let need = training_lower_bound(cfg);
    let gib = |b: f64| {
        let g = b / f64::from(1u32 << 30);
        if g < 1e6 {
            format!("{g:.1}")
        } else {
            format!("{g:.1e}")
        }
    };
    match machine_bytes() {
        Some(have) if need > have as f64 => Err(crate::error::Error::new(format!(
            "batch {}, crop {}, ngf {} need at least {} GiB for one training iteration; this machine has {} GiB",
            cfg.batch,
            cfg.crop,
            cfg.ngf,
            gib(need),
            gib(have as f64)
        ))),
        _ => Ok(()),
    }
}
