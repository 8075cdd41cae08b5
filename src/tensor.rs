//! CPU tensors: `ndarray` arrays in NCHW layout, generic over the float type.
//!
//! The engine runs in `f32` (what training and the golden fixtures use); every op is also
//! generic over `f64` so that finite-difference checks can be tight.

use ndarray::{Array4, ArrayD, IxDyn};

/// The float types the CPU engine computes in (`f32`, `f64`).
pub trait Real:
    ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::ToPrimitive
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::fmt::Debug
    + std::fmt::Display
    + Send
    + Sync
    + Default
    + 'static
{
}
impl Real for f32 {}
impl Real for f64 {}

/// A constant in the engine's float type (`c(0.2)`).
#[inline(always)]
pub fn c<T: Real>(x: f64) -> T {
    T::from_f64(x).expect("float constant")
}

/// Activations: (batch, channels, height, width), standard (C-contiguous) layout.
pub type Tensor4<T> = Array4<T>;

/// Converts between float types (f32 fixtures ↔ f64 replays).
pub fn cast<A: Real, B: Real>(a: &ArrayD<A>) -> ArrayD<B> {
    a.mapv(|v| B::from_f64(v.to_f64().unwrap()).unwrap())
}

/// Reshapes a dynamic array to 4-D (panics on mismatch: a programming error, not user input).
pub fn to4<T: Real>(a: &ArrayD<T>) -> Array4<T> {
    let s = a.shape();
    assert_eq!(s.len(), 4, "expected a 4-D tensor, got {:?}", s);
    a.clone()
        .into_shape_with_order((s[0], s[1], s[2], s[3]))
        .unwrap()
}

pub fn to_dyn<T: Real>(a: Array4<T>) -> ArrayD<T> {
    a.into_dyn()
}

pub fn zeros_dyn<T: Real>(shape: &[usize]) -> ArrayD<T> {
    ArrayD::zeros(IxDyn(shape))
}

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
