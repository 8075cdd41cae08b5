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

/// A lower bound of the bytes a tiled render of an h × w picture allocates: the picture and
/// the result (f32), and G's widest activation over one window (tile plus halo on each side,
/// clipped to the picture) with the next layer's output.
pub fn render_lower_bound(
    cfg: &crate::config::ModelConfig,
    h: usize,
    w: usize,
    tile: usize,
    halo: usize,
) -> f64 {
    let side = |n: usize| (tile as f64 + 2.0 * halo as f64).min(n as f64);
    let picture = 3.0 * h as f64 * w as f64;
    let window = side(h) * side(w) * cfg.g_channels(cfg.model_resolution) as f64;
    4.0 * (2.0 * picture + 2.0 * window)
}

/// A lower bound of the bytes one pyramid level of the SWD allocates: `patches` rows of 7×7×3
/// values per picture, the (147, `directions`) projection matrix, and both pictures'
/// projections (`patches` × `directions`).
pub fn swd_lower_bound(patches: usize, directions: usize) -> f64 {
    let (p, d, dim) = (patches as f64, directions as f64, 147.0);
    4.0 * (2.0 * p * dim + dim * d + 2.0 * p * d)
}

fn gib(b: f64) -> String {
    let g = b / f64::from(1u32 << 30);
    if g < 1e6 {
        format!("{g:.1}")
    } else {
        format!("{g:.1e}")
    }
}

/// Refuses work whose lower bound `need` exceeds `have` bytes, naming the work and both
/// figures (`what` reads as the subject: "one training iteration at batch 4, …").
fn check_within(need: f64, have: Option<u64>, what: &str) -> crate::error::Result<()> {
    match have {
        Some(have) if need > have as f64 => Err(crate::error::Error::new(format!(
            "{what} needs at least {} GiB; this machine has {} GiB",
            gib(need),
            gib(have as f64)
        ))),
        _ => Ok(()),
    }
}

/// Refuses work that cannot fit in the machine's memory, before anything is allocated (such
/// work used to abort in the allocator, or panic on an overflow).
pub fn check_fits(need: f64, what: &str) -> crate::error::Result<()> {
    check_within(need, machine_bytes(), what)
}

/// Refuses a training configuration whose lower bound exceeds the machine's memory.
pub fn check_training_fits(cfg: &crate::config::ModelConfig) -> crate::error::Result<()> {
    check_fits(
        training_lower_bound(cfg),
        &format!(
            "one training iteration at batch {}, crop {}, ngf {}",
            cfg.batch, cfg.crop, cfg.ngf
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_the_work_and_both_figures() {
        let e = check_within(3.0 * f64::from(1u32 << 30), Some(1 << 30), "render 9×9")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "render 9×9 needs at least 3.0 GiB; this machine has 1.0 GiB"
        );
        assert!(check_within(1.0, Some(1 << 30), "x").is_ok());
        assert!(check_within(1e30, None, "x").is_ok());
        assert!(swd_lower_bound(100_000_000_000, 64) > 1e13);
        let cfg = crate::config::ModelConfig::default();
        // The official width at full resolution is 80 channels.
        let r = render_lower_bound(&cfg, 1000, 2000, 512, 30);
        assert_eq!(r, 4.0 * (2.0 * 3.0 * 2e6 + 2.0 * 572.0 * 572.0 * 80.0));
    }
}
