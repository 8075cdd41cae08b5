//! Times the CPU conv2d passes on training-sized shapes: `cargo run --release --example conv_speed`.

use ndarray::{Array2, Array4, linalg::general_mat_mul};
use sincut::ops::blur::Blur;
use sincut::ops::conv2d::{
    conv_out_len, conv_transpose2d_backward_input, conv_transpose2d_backward_weight,
    conv_transpose2d_forward, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
use sincut::ops::gemm::gemm;
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
    let tf = best_secs(reps, || drop(conv2d_forward(&x, w.view(), s, p)));
    let tb = best_secs(reps, || {
        drop(conv2d_backward_input(&dy, w.view(), s, p, (hw, hw)))
    });
    let tw = best_secs(reps, || drop(conv2d_backward_weight(&x, &dy, k, s, p)));
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
    let tf = best_secs(5, || drop(conv_transpose2d_forward(&x, w.view(), s)));
    let tb = best_secs(5, || {
        drop(conv_transpose2d_backward_input(&dy, w.view(), s))
    });
    let tw = best_secs(5, || drop(conv_transpose2d_backward_weight(&x, &dy, k, s)));
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
/// `SINCUT_GEMM=portable`) against ndarray's `general_mat_mul`. `ta`/`tb`: operand stored
/// transposed (as the backward passes use it).
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
    let t_crate = best_secs(5, || {
        gemm(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut(), false)
    });
    let t_nd = best_secs(5, || general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    println!(
        "gemm {m}x{k} · {k}x{n}{}{}: crate gemm {:.1} GFLOP/s | general_mat_mul {:.1} GFLOP/s",
        if ta { " (Aᵀ)" } else { "" },
        if tb { " (Bᵀ)" } else { "" },
        gflop / t_crate,
        gflop / t_nd
    );
}

fn main() {
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
