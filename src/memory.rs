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
