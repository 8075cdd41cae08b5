//! Times the CPU conv2d passes on training-sized shapes: `cargo run --release --example conv_speed`.

use ndarray::Array4;
use sincut::ops::conv2d::{
    conv_out_len, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
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

fn main() {
    println!("threads: {}", sincut::tensor::num_threads());
    case("N=32 160->160 32x32 3x3 s1 p1", 32, 160, 160, 32, 3, 1, 1);
    case("N=32 3->80 64x64 1x1", 32, 3, 80, 64, 1, 1, 0);
    case("N=64 64->128 33x33 3x3 s2 p0", 64, 64, 128, 33, 3, 2, 0);
    case(
        "N=64 6144->256 1x1 on 1x1 (linear)",
        64,
        6144,
        256,
        1,
        1,
        1,
        0,
    );
}
