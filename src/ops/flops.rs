//! A process-wide count of convolution arithmetic (2 FLOP per multiply-add), for benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

static FLOPS: AtomicU64 = AtomicU64::new(0);

pub fn add(n: u64) {
    FLOPS.fetch_add(n, Ordering::Relaxed);
}

pub fn get() -> u64 {
    FLOPS.load(Ordering::Relaxed)
}

pub fn reset() {
    FLOPS.store(0, Ordering::Relaxed);
}
