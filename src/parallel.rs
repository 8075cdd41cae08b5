//! The CPU engine's threads: scoped workers over contiguous chunks of a job.

/// Number of worker threads for the CPU engine (all cores, overridable by `SINCUT_THREADS`).
pub fn num_threads() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("SINCUT_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
    })
}

/// Refuses invalid `SINCUT_THREADS` / `SINCUT_GEMM` / `SINCUT_BF16_TILE` / `SINCUT_BF16_CONV` values (called by the command line before
/// anything runs). An error rather than a warning: both are set on purpose, and a typo that
/// silently runs on all cores or on another GEMM kernel spoils exactly the timing or
/// bit-for-bit comparison they were set for. The library's own readers keep their fallback.
pub fn check_env() -> crate::error::Result<()> {
    use crate::error::Error;
    if let Some(v) = std::env::var_os("SINCUT_THREADS") {
        let ok = v
            .to_str()
            .and_then(|s| s.parse::<usize>().ok())
            .is_some_and(|n| n > 0);
        if !ok {
            return Err(Error::new(format!(
                "SINCUT_THREADS={v:?} is not a whole number ≥ 1 (unset it to use all cores)"
            )));
        }
    }
    if let Some(v) = std::env::var_os("SINCUT_GEMM")
        && v != "portable"
        && v != "bf16-dot"
    {
        return Err(Error::new(format!(
            "SINCUT_GEMM={v:?} is not understood (\"portable\" or \"bf16-dot\"; unset it for the fastest kernel)"
        )));
    }
    if let Some(v) = std::env::var_os("SINCUT_BF16_TILE")
        && v != "80"
        && v != "160"
    {
        return Err(Error::new(format!(
            "SINCUT_BF16_TILE={v:?} is not understood (\"80\" or \"160\": the tallest bf16 conv tile; unset it for 160)"
        )));
    }
    if let Some(v) = std::env::var_os("SINCUT_BF16_CONV")
        && v != "nhwc"
        && v != "gather"
    {
        return Err(Error::new(format!(
            "SINCUT_BF16_CONV={v:?} is not understood (\"nhwc\" or \"gather\": the bf16 GPU conv kernels; unset it for nhwc)"
        )));
    }
    Ok(())
}

/// Runs `f(i, item)` for every item of `items`, split in contiguous chunks over the worker threads.
pub fn par_for_each<I: Send, F: Fn(usize, I) + Sync>(items: Vec<I>, f: F) {
    let n = items.len();
    let threads = num_threads().min(n.max(1));
    if threads <= 1 {
        for (i, it) in items.into_iter().enumerate() {
            f(i, it);
        }
        return;
    }
    let chunk = n.div_ceil(threads);
    let mut buckets: Vec<Vec<(usize, I)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, it) in items.into_iter().enumerate() {
        buckets[i / chunk].push((i, it));
    }
    let f = &f;
    std::thread::scope(|s| {
        for b in buckets {
            s.spawn(move || {
                for (i, it) in b {
                    f(i, it)
                }
            });
        }
    });
}

/// Maps `f` over `0..n` on the worker threads, returning results in order.
pub fn par_map<R: Send, F: Fn(usize) -> R + Sync>(n: usize, f: F) -> Vec<R> {
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let slots: Vec<&mut Option<R>> = out.iter_mut().collect();
    par_for_each(slots, |i, slot| *slot = Some(f(i)));
    out.into_iter().map(|r| r.unwrap()).collect()
}
