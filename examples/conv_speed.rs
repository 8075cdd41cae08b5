//! Times the CPU conv2d passes on training-sized shapes: `cargo run --release --example conv_speed`
//! (`-- --bf16`: the conv passes with bf16 operands).

use ndarray::{Array2, Array4, linalg::general_mat_mul};
use sincut::ops::blur::Blur;
use sincut::ops::conv2d::{
    conv_out_len, conv_transpose2d_backward_input, conv_transpose2d_backward_weight,
    conv_transpose2d_forward, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
use sincut::ops::gemm::{MatmulPrecision, gemm};
use std::time::Instant;

fn filled(shape: (usize, usize, usize, usize), seed: u32) -> Array4<f32> {
    // Cheap deterministic values in [-1, 1): the timing does not depend on them.
    let mut s = seed.wrapping_mul(2654435761).max(1);
    Array4::from_shape_simple_fn(shape, || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s as f32 / u32::MAX as f32) * 2.0 - 1.0
    })
}

/// The conv passes' matmul precision: bf16 with `--bf16`.
fn precision() -> MatmulPrecision {
    if std::env::args().any(|a| a == "--bf16") {
        MatmulPrecision::Bf16
    } else {
        MatmulPrecision::Full
    }
}

fn best_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[allow(clippy::too_many_arguments)]
fn case(name: &str, n: usize, cin: usize, cout: usize, hw: usize, k: usize, s: usize, p: usize) {
    let x = filled((n, cin, hw, hw), 1);
    let w = filled((cout, cin, k, k), 2);
    let o = conv_out_len(hw, k, s, p);
    let dy = filled((n, cout, o, o), 3);
    let gflop = 2.0 * (n * cout * cin * k * k * o * o) as f64 / 1e9;
    let reps = 5;
    let tf = best_secs(reps, || {
        drop(conv2d_forward(&x, w.view(), s, p, precision()))
    });
    let tb = best_secs(reps, || {
        drop(conv2d_backward_input(
            &dy,
            w.view(),
            s,
            p,
            (hw, hw),
            precision(),
        ))
    });
    let tw = best_secs(reps, || {
        drop(conv2d_backward_weight(&x, &dy, k, s, p, precision()))
    });
    println!(
        "{name}: {gflop:.2} GFLOP/pass | forward {:.1} ms {:.1} GFLOP/s | backward_input {:.1} ms {:.1} GFLOP/s | backward_weight {:.1} ms {:.1} GFLOP/s",
        tf * 1e3,
        gflop / tf,
        tb * 1e3,
        gflop / tb,
        tw * 1e3,
        gflop / tw
    );
}

fn transposed(name: &str, n: usize, cin: usize, cout: usize, hw: usize) {
    let (k, s) = (3, 2);
    let x = filled((n, cin, hw, hw), 1);
    let w = filled((cin, cout, k, k), 2);
    let o = (hw - 1) * s + k;
    let dy = filled((n, cout, o, o), 3);
    let gflop = 2.0 * (n * cout * cin * k * k * hw * hw) as f64 / 1e9;
    let tf = best_secs(5, || {
        drop(conv_transpose2d_forward(&x, w.view(), s, precision()))
    });
    let tb = best_secs(5, || {
        drop(conv_transpose2d_backward_input(
            &dy,
            w.view(),
            s,
            precision(),
        ))
    });
    let tw = best_secs(5, || {
        drop(conv_transpose2d_backward_weight(&x, &dy, k, s, precision()))
    });
    println!(
        "{name}: {gflop:.2} GFLOP/pass | forward {:.1} ms {:.1} GFLOP/s | backward_input {:.1} ms {:.1} GFLOP/s | backward_weight {:.1} ms {:.1} GFLOP/s",
        tf * 1e3,
        gflop / tf,
        tb * 1e3,
        gflop / tb,
        tw * 1e3,
        gflop / tw
    );
}

fn blur(name: &str, b: Blur, shape: (usize, usize, usize, usize)) {
    let x = filled(shape, 4);
    let y = b.forward(&x);
    let tf = best_secs(5, || drop(b.forward(&x)));
    let tb = best_secs(5, || drop(b.backward(&y, (shape.2, shape.3))));
    let mb = (x.len() + y.len()) as f64 * 4.0 / 1e6;
    println!(
        "{name}: forward {:.1} ms, backward {:.1} ms ({mb:.0} MB in+out)",
        tf * 1e3,
        tb * 1e3
    );
}

/// One GEMM shape on one thread: the crate's `gemm` (AVX-512 kernel where available, unless
/// `SINCUT_GEMM=portable`) in f32 and bf16, the `vdpbf16ps` kernel where the CPU has it, and
/// ndarray's `general_mat_mul`. `ta`/`tb`: operand stored transposed (as the backward passes
/// use it).
fn gemm_case(m: usize, n: usize, k: usize, ta: bool, tb: bool) {
    let f = |r: usize, c: usize, seed: u32| {
        let a = filled((1, 1, r, c), seed);
        a.into_shape_with_order((r, c)).unwrap()
    };
    let a: Array2<f32> = if ta {
        f(k, m, 1).reversed_axes()
    } else {
        f(m, k, 1)
    };
    let b: Array2<f32> = if tb {
        f(n, k, 2).reversed_axes()
    } else {
        f(k, n, 2)
    };
    let mut c = Array2::<f32>::zeros((m, n));
    let gflop = 2.0 * (m * n * k) as f64 / 1e9;
    let mut t_crate = |mm| {
        best_secs(5, || {
            gemm(mm, 1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut(), false)
        })
    };
    let (t_f32, t_bf16) = (
        t_crate(MatmulPrecision::Full),
        t_crate(MatmulPrecision::Bf16),
    );
    let dot = dot_secs(&a, &b, &mut c).map_or("-".into(), |t| format!("{:.1}", gflop / t));
    let t_nd = best_secs(5, || general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    println!(
        "gemm {m}x{k} · {k}x{n}{}{}: GFLOP/s crate f32 {:.1} | crate bf16 {:.1} | vdpbf16ps {dot} | general_mat_mul {:.1}",
        if ta { " (Aᵀ)" } else { "" },
        if tb { " (Bᵀ)" } else { "" },
        gflop / t_f32,
        gflop / t_bf16,
        gflop / t_nd
    );
}

/// Seconds of one product on the `vdpbf16ps` kernel, where this CPU has it.
fn dot_secs(a: &Array2<f32>, b: &Array2<f32>, c: &mut Array2<f32>) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        use sincut::ops::sgemm_avx512::{Mode, bf16_available, sgemm_mode};
        if bf16_available() {
            let (a, b) = (a.view(), b.view());
            return Some(best_secs(5, || {
                sgemm_mode(Mode::Bf16Dot, 1.0, &a, &b, 0.0, &mut c.view_mut())
            }));
        }
    }
    let _ = (a, b, c);
    None
}

/// One core's multiply-add ceiling: 16 independent accumulator chains of f32 FMA, and of
/// `vdpbf16ps` where the CPU has it (GFLOP/s, 2 FLOP per multiply-add).
#[cfg(target_arch = "x86_64")]
fn peak_rates() {
    use std::arch::x86_64::*;
    // Enough chains to cover 2 pipes × the latency, few enough to stay in registers.
    const CHAINS: usize = 16;
    const STEPS: usize = 20_000_000;
    #[target_feature(enable = "avx512f")]
    fn fma() -> f32 {
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        let (x, y) = (_mm512_set1_ps(1.000_001), _mm512_set1_ps(0.999_999));
        for _ in 0..STEPS {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(x, y, *a);
            }
        }
        _mm512_reduce_add_ps(
            acc.iter()
                .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a)),
        )
    }
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn dot() -> f32 {
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        // SAFETY: __m512bh and __m512i are the same 512 bits.
        let x: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(0x3F80_3F80)) };
        for _ in 0..STEPS {
            for a in acc.iter_mut() {
                *a = _mm512_dpbf16_ps(*a, x, x);
            }
        }
        _mm512_reduce_add_ps(
            acc.iter()
                .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a)),
        )
    }
    // Best of 5 short runs: frequency ramps and other tenants only ever slow a run down.
    let rate = |f: &dyn Fn() -> f32, flops_per_op: usize| {
        let secs = best_secs(5, || {
            std::hint::black_box(f());
        });
        (STEPS * CHAINS * flops_per_op) as f64 / secs / 1e9
    };
    if !sincut::ops::sgemm_avx512::available() {
        return;
    }
    // SAFETY (both): the features were detected above / just below.
    let f = rate(&|| unsafe { fma() }, 32);
    print!("one-core peak: f32 FMA {f:.1} GFLOP/s");
    if sincut::ops::sgemm_avx512::bf16_available() {
        let d = rate(&|| unsafe { dot() }, 64);
        print!(" | vdpbf16ps {d:.1} GFLOP/s ({:.2}× FMA)", d / f);
    }
    println!();
}

fn main() {
    println!("conv passes at {:?}", precision());
    #[cfg(target_arch = "x86_64")]
    peak_rates();
    println!("threads: {}", sincut::parallel::num_threads());
    println!("single-thread GEMM:");
    // Forward (W · cols), backward-input (Wᵀ · dy), backward-weight (dy · colsᵀ) shapes.
    gemm_case(160, 4096, 1440, false, false);
    gemm_case(1440, 4096, 160, true, false);
    gemm_case(160, 1440, 4096, false, true);
    gemm_case(256, 1024, 2304, false, false);
    gemm_case(3, 4096, 1440, false, false);
    gemm_case(80, 4096, 27, false, false);
    gemm_case(384, 64, 3456, false, false);
    gemm_case(96, 256, 256, false, false);
    let cases: [(&str, usize, usize, usize, usize, usize, usize, usize); 7] = [
        ("N=32 160->160 32x32 3x3 s1 p1", 32, 160, 160, 32, 3, 1, 1),
        ("N=32 3->80 64x64 1x1", 32, 3, 80, 64, 1, 1, 0),
        ("N=64 64->128 33x33 3x3 s2 p0", 64, 64, 128, 33, 3, 2, 0),
        (
            "N=64 6144->256 1x1 on 1x1 (linear)",
            64,
            6144,
            256,
            1,
            1,
            1,
            0,
        ),
        ("N=1 160->160 128x128 3x3 s1 p1", 1, 160, 160, 128, 3, 1, 1),
        ("N=1 256->256 32x32 3x3 s1 p1", 1, 256, 256, 32, 3, 1, 1),
        ("N=4 384->384 8x8 3x3 s1 p1", 4, 384, 384, 8, 3, 1, 1),
    ];
    for (name, n, cin, cout, hw, k, s, p) in cases {
        case(name, n, cin, cout, hw, k, s, p);
    }
    transposed(
        "N=32 convT 160->160 16x16 -> 33x33 3x3 s2",
        32,
        160,
        160,
        16,
    );
    blur(
        "blur DOWN_3X3 N=64 64ch 32x32",
        Blur::DOWN_3X3,
        (64, 64, 32, 32),
    );
    blur("blur UP N=32 160ch 33x33", Blur::UP, (32, 160, 33, 33));
}
