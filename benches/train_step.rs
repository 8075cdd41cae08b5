//! Times full CPU training iterations at the official geometry (crop 64, batch 16, ngf 10,
//! ndf 8) and at this project's default (crop 128, batch 16): s/iteration, achieved GFLOP/s of
//! the convolutions, peak resident memory. Each configuration runs in its own process so the
//! peak-memory figure is its own.
//!
//!   cargo bench --bench train_step                  # both configurations, 3 timed iterations
//!   cargo bench --bench train_step -- --crop 64 --iters 5
//!   cargo bench --bench train_step -- --crop 64 --bf16   # bf16 matrix operands (issue 14)

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sincut::backend::cpu::{CpuBackend, MatmulPrecision};
use sincut::config::ModelConfig;
use sincut::nn::Networks;
use sincut::ops::flops;
use sincut::train::step::{BackendInputs, BackendState, train_iteration};
use sincut::train::{StepInputs, TrainState};
use std::process::Command;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    sincut::memory::proc_status_mib("VmHWM:")
}

fn run_one(crop: usize, iters: usize, bf16: bool) {
    sincut::memory::keep_freed_memory();
    let cfg = ModelConfig {
        crop,
        batch: 16,
        ngf: 10,
        ndf: 8,
        ..Default::default()
    };
    let nets = Networks::new(&cfg);
    let mut rng = StdRng::seed_from_u64(7);
    let e = CpuBackend::<f32>::with_matmul(if bf16 {
        MatmulPrecision::Bf16
    } else {
        MatmulPrecision::Full
    });
    let mut state =
        BackendState::upload(&e, &TrainState::new(nets.init::<f32, _>(&mut rng))).unwrap();
    let n = cfg.batch;
    let mut inputs = || {
        let img = |rng: &mut StdRng| {
            ndarray::Array4::from_shape_simple_fn((n, 3, crop, crop), || {
                rng.random_range(-1.0f32..1.0)
            })
        };
        let real_a = img(&mut rng);
        let real_b = img(&mut rng);
        StepInputs::with_crops(real_a, real_b, 1, &mut rng)
    };
    // One warm-up iteration (first-touch page faults, thread start-up).
    let mut iteration = |inp: &StepInputs<f32>| {
        let inp = BackendInputs::upload(&e, inp).unwrap();
        train_iteration(&e, &cfg, &nets, &mut state, &inp, cfg.lr).unwrap()
    };
    iteration(&inputs());
    let mut times = Vec::new();
    let mut conv_flops = 0u64;
    for _ in 0..iters {
        let inp = inputs();
        flops::reset();
        let t = Instant::now();
        let l = iteration(&inp);
        times.push(t.elapsed().as_secs_f64());
        conv_flops = flops::get();
        assert!(l.is_finite());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = times[times.len() / 2];
    println!(
        "crop {crop:>3} batch {n}  ngf {} ndf {}  {}  median {median:.2} s/iter (min {:.2}, max {:.2}, {iters} iters)  conv work {:.3} TFLOP/iter  {:.1} GFLOP/s  peak RSS {:.0} MiB  threads {}",
        cfg.ngf,
        cfg.ndf,
        if bf16 { "bf16" } else { "f32" },
        times[0],
        times[times.len() - 1],
        conv_flops as f64 / 1e12,
        conv_flops as f64 / median / 1e9,
        peak_rss_mib(),
        sincut::parallel::num_threads(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let iters = get("--iters").unwrap_or(3);
    let bf16 = args.iter().any(|a| a == "--bf16");
    if let Some(crop) = get("--crop") {
        run_one(crop, iters, bf16);
        return;
    }
    let exe = std::env::current_exe().expect("bench executable");
    for crop in [64, 128] {
        let status = Command::new(&exe)
            .args(["--crop", &crop.to_string(), "--iters", &iters.to_string()])
            .args(bf16.then_some("--bf16"))
            .status()
            .expect("re-running the bench");
        assert!(status.success());
    }
}
