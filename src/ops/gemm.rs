//! Shared GEMM plumbing for the convolution ops: a thread-split `general_mat_mul` and the
//! batch partition used to run one image per thread chunk.

use crate::tensor::{Real, num_threads, par_for_each};
use ndarray::{ArrayView2, ArrayViewMut2, Axis, linalg::general_mat_mul, s};
use std::ops::Range;

/// Below this many flops a thread split costs more than it saves.
const PAR_MIN_FLOPS: usize = 4_000_000;

/// c = alpha·a·b + beta·c, split over the worker threads along c's longer axis when `parallel`.
pub fn gemm<T: Real>(
    alpha: T,
    a: &ArrayView2<T>,
    b: &ArrayView2<T>,
    beta: T,
    c: &mut ArrayViewMut2<T>,
    parallel: bool,
) {
    let (m, kd) = a.dim();
    let n = b.dim().1;
    let threads = num_threads();
    if !parallel || threads <= 1 || 2 * m * n * kd < PAR_MIN_FLOPS || m.max(n) < 32 {
        general_mat_mul(alpha, a, b, beta, c);
        return;
    }
    // Chunks rounded to 16 so every part stays a whole number of micro-kernel tiles.
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    let chunk = len.div_ceil(threads).div_ceil(16) * 16;
    let axis = if split_rows { Axis(0) } else { Axis(1) };
    let parts: Vec<ArrayViewMut2<T>> = c.axis_chunks_iter_mut(axis, chunk).collect();
    par_for_each(parts, |i, mut cp| {
        let lo = i * chunk;
        let hi = lo + if split_rows { cp.dim().0 } else { cp.dim().1 };
        if split_rows {
            general_mat_mul(alpha, &a.slice(s![lo..hi, ..]), b, beta, &mut cp);
        } else {
            general_mat_mul(alpha, a, &b.slice(s![.., lo..hi]), beta, &mut cp);
        }
    });
}

/// How a batch of `n` images is spread over the threads: one contiguous range per thread when
/// that balances well, else `None` (loop over images and split each GEMM instead).
pub fn batch_ranges(n: usize) -> Option<Vec<Range<usize>>> {
    let t = num_threads();
    if t <= 1 || n < t || (!n.is_multiple_of(t) && n < 4 * t) {
        return None;
    }
    Some(even_ranges(n, t))
}

/// `0..n` cut into `parts` contiguous ranges whose lengths differ by at most one.
pub fn even_ranges(n: usize, parts: usize) -> Vec<Range<usize>> {
    let (q, r) = (n / parts, n % parts);
    let mut out = Vec::with_capacity(parts);
    let mut lo = 0;
    for p in 0..parts {
        let hi = lo + q + usize::from(p < r);
        out.push(lo..hi);
        lo = hi;
    }
    out
}

/// Splits `data` (images of `per` elements each) into the mutable pieces matching `ranges`.
pub fn split_by_ranges<'a, T>(
    mut data: &'a mut [T],
    ranges: &[Range<usize>],
    per: usize,
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let (head, tail) = data.split_at_mut(r.len() * per);
        out.push(head);
        data = tail;
    }
    out
}
