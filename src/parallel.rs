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
