//! Shared GEMM plumbing for the convolution ops: a thread-split matrix product and the batch
//! partition used to run one image per thread chunk.
//!
//! f32 products run on the AVX-512 kernel of [`super::sgemm_avx512`] when the CPU has
//! AVX-512F (about twice the AVX2 throughput of `matrixmultiply` on 512-bit FMA hardware);
//! everything else, and every product when `SINCUT_GEMM=portable`, uses ndarray's
//! `general_mat_mul`. At [`MatmulPrecision::Bf16`] the operands are rounded to bf16 first:
//! while packing on the AVX-512 kernel, by copying otherwise.

use crate::parallel::{num_threads, par_for_each};
use crate::tensor::Real;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, linalg::general_mat_mul, s};
use std::any::TypeId;
use std::ops::Range;

/// What the inputs of the matrix products (convolutions, linear layers, and their gradients)
/// are rounded to before they are multiplied; products accumulate in the element type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatmulPrecision {
    /// No rounding: the element type throughout.
    #[default]
    Full,
    /// Both operands rounded to bfloat16 (round to nearest even), as tensor cores and AVX-512
    /// BF16 take them; each product of two bf16 values is exact in f32, so kernels differ only
    /// in the order of their f32 sums (and in whether f32 subnormals, below 1.2e-38, survive).
    Bf16,
}

/// The `SINCUT_GEMM` setting, read once.
fn gemm_env() -> Option<&'static str> {
    static ENV: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| std::env::var("SINCUT_GEMM").ok())
        .as_deref()
}

/// Whether f32 products go to the AVX-512 kernel: detected once, off with `SINCUT_GEMM=portable`.
fn use_avx512() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let fast = super::sgemm_avx512::available();
        #[cfg(not(target_arch = "x86_64"))]
        let fast = false;
        fast && gemm_env() != Some("portable")
    })
}

/// How the AVX-512 kernel runs bf16 products. The `vdpbf16ps` kernel only with
/// `SINCUT_GEMM=bf16-dot` (and AVX512_BF16): on the Zen 5 this project measures on, `vdpbf16ps`
/// retires half the multiply-adds per cycle of f32 FMA (docs/PERF-NOTES.md), so rounding the
/// packed operands and running the f32 kernel is faster there, with the same operands.
#[cfg(target_arch = "x86_64")]
fn bf16_mode() -> super::sgemm_avx512::Mode {
    use super::sgemm_avx512::{Mode, bf16_available};
    if gemm_env() == Some("bf16-dot") && bf16_available() {
        Mode::Bf16Dot
    } else {
        Mode::Bf16Rounded
    }
}

/// One single-threaded product c = alpha·a·b + beta·c on the fastest kernel for `T`.
fn mat_mul<T: Real>(
    mm: MatmulPrecision,
    alpha: T,
    a: &ArrayView2<T>,
    b: &ArrayView2<T>,
    beta: T,
    c: &mut ArrayViewMut2<T>,
) {
    #[cfg(target_arch = "x86_64")]
    if TypeId::of::<T>() == TypeId::of::<f32>() && use_avx512() {
        // SAFETY: T is f32 (same TypeId), so these are the same types under another name.
        let (a, b, c) = unsafe {
            (
                &*(a as *const ArrayView2<T>).cast::<ArrayView2<f32>>(),
                &*(b as *const ArrayView2<T>).cast::<ArrayView2<f32>>(),
                &mut *(c as *mut ArrayViewMut2<T>).cast::<ArrayViewMut2<f32>>(),
            )
        };
        let (alpha, beta) = (alpha.to_f32().unwrap(), beta.to_f32().unwrap());
        let mode = match mm {
            MatmulPrecision::Full => super::sgemm_avx512::Mode::F32,
            MatmulPrecision::Bf16 => bf16_mode(),
        };
        super::sgemm_avx512::sgemm_mode(mode, alpha, a, b, beta, c);
        return;
    }
    match mm {
        MatmulPrecision::Full => general_mat_mul(alpha, a, b, beta, c),
        MatmulPrecision::Bf16 => {
            let (a, b) = (a.mapv(round_bf16), b.mapv(round_bf16));
            general_mat_mul(alpha, &a, &b, beta, c);
        }
    }
}

/// `v` rounded to the nearest bfloat16 (ties to even; through f32 for f64 values).
pub fn round_bf16<T: Real>(v: T) -> T {
    let r = half::bf16::from_f32(v.to_f32().unwrap_or(f32::NAN)).to_f32();
    crate::tensor::c(f64::from(r))
}

/// Granularity of a thread split of c's rows / columns: whole micro-kernel tiles.
fn split_align(rows: bool) -> usize {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        return if rows {
            super::sgemm_avx512::TILE_ROWS
        } else {
            super::sgemm_avx512::TILE_COLS
        };
    }
    let _ = rows;
    16
}

/// Below this many flops a thread split costs more than it saves.
const PAR_MIN_FLOPS: usize = 4_000_000;

/// c = alpha·a·b + beta·c at precision `mm`, split over the worker threads along c's longer
/// axis when `parallel`.
pub fn gemm<T: Real>(
    mm: MatmulPrecision,
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
        mat_mul(mm, alpha, a, b, beta, c);
        return;
    }
    // Chunks rounded so every part stays a whole number of micro-kernel tiles.
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    let align = split_align(split_rows);
    let chunk = len.div_ceil(threads).div_ceil(align) * align;
    let axis = if split_rows { Axis(0) } else { Axis(1) };
    let parts: Vec<ArrayViewMut2<T>> = c.axis_chunks_iter_mut(axis, chunk).collect();
    par_for_each(parts, |i, mut cp| {
        let lo = i * chunk;
        let hi = lo + if split_rows { cp.dim().0 } else { cp.dim().1 };
        if split_rows {
            mat_mul(mm, alpha, &a.slice(s![lo..hi, ..]), b, beta, &mut cp);
        } else {
            mat_mul(mm, alpha, a, &b.slice(s![.., lo..hi]), beta, &mut cp);
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
