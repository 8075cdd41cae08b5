//! GPU benchmark of the device engine (src/engine on CUDA): ms per training iteration at crop
//! 64 and crop 128 (batch 16, ngf 10, ndf 8: the official widths), the peak GPU memory of the
//! iterations (the memory pool's high-water mark, parameters and Adam state included), and
//! the tiled render's megapixels per second (tiles 512). With `--profile`, also per-op times of
//! one iteration (each op synchronised, so launch gaps are not hidden) with achieved TFLOP/s
//! of the convolutions and GB/s of the rest.
//!
//!   cargo bench --bench gpu                        # everything, 5 timed iterations per crop
//!   cargo bench --bench gpu -- --iters 10 --profile
//!   cargo bench --bench gpu -- --bf16 --crops 128     # bf16 tensor-core convolutions
//!   cargo bench --bench gpu -- --crops 32 --batch 2 --ngf 2 --ndf 2 --render-side 256
//!                                                  # a tiny run (the CPU emulator's dry run)
//!
//! Without a GPU it prints `skipped: no CUDA device (...)` and exits 0.

use ndarray::{Array3, Array4};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use sincut::backend::cpu::MatmulPrecision;
use sincut::backend::cuda::CudaBackend;
use sincut::backend::profile::Profiled;
use sincut::backend::upload_params;
use sincut::config::ModelConfig;
use sincut::nn::Networks;
use sincut::render::RenderOptions;
use sincut::render::render as render_tiled;
use sincut::train::step::{BackendInputs, BackendState, train_iteration};
use sincut::train::{StepInputs, TrainState};
use std::time::Instant;

fn inputs(rng: &mut StdRng, n: usize, crop: usize) -> StepInputs<f32> {
    let mut img =
        || Array4::from_shape_simple_fn((n, 3, crop, crop), || rng.random_range(-1.0f32..1.0));
    let (real_a, real_b) = (img(), img());
    StepInputs::with_crops(real_a, real_b, 1, rng)
}

/// The memory pool's high-water mark in MiB (NaN where the driver does not report it).
fn peak_mib(e: &CudaBackend) -> f64 {
    e.gpu
        .peak_pool_bytes()
        .map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
}

/// The measured configuration: the official widths and batch unless asked otherwise.
struct Bench {
    iters: usize,
    profile: bool,
    crops: Vec<usize>,
    batch: usize,
    ngf: usize,
    ndf: usize,
    render_side: usize,
    /// Convolutions with bf16 operands (`--precision bf16`).
    bf16: bool,
}

impl Bench {
    fn from_args() -> Result<Bench, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let value = |name: &str| -> Result<Option<&str>, String> {
            match args.iter().position(|a| a == name) {
                None => Ok(None),
                Some(i) => args
                    .get(i + 1)
                    .map(|v| Some(v.as_str()))
                    .ok_or(format!("{name} needs a value")),
            }
        };
        let number = |name: &str, default: usize| -> Result<usize, String> {
            value(name)?.map_or(Ok(default), |v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("{name} {v}: not a positive number"))
            })
        };
        let crops = match value("--crops")? {
            None => vec![64, 128],
            Some(v) => v
                .split(',')
                .map(|c| c.trim().parse::<usize>().ok().filter(|&n| n > 0))
                .collect::<Option<Vec<_>>>()
                .ok_or(format!("--crops {v}: not a list of sizes"))?,
        };
        Ok(Bench {
            iters: number("--iters", 5)?,
            profile: args.iter().any(|a| a == "--profile"),
            crops,
            batch: number("--batch", 16)?,
            ngf: number("--ngf", 10)?,
            ndf: number("--ndf", 8)?,
            render_side: number("--render-side", 2048)?,
            bf16: args.iter().any(|a| a == "--bf16"),
        })
    }

    fn model(&self, crop: usize) -> ModelConfig {
        ModelConfig {
            crop,
            batch: self.batch,
            ngf: self.ngf,
            ndf: self.ndf,
            d_window: crop.min(ModelConfig::default().d_window),
            ..Default::default()
        }
    }
}

/// Times `b.iters` iterations after two warm-up ones; returns (median ms, peak MiB).
fn train(e: &CudaBackend, b: &Bench, crop: usize) -> sincut::error::Result<(f64, f64)> {
    let (iters, profile) = (b.iters, b.profile);
    let cfg = b.model(crop);
    let nets = Networks::new(&cfg);
    let mut rng = StdRng::seed_from_u64(7);
    let _ = e.gpu.reset_peak_pool_bytes();
    let mut state = BackendState::upload(e, &TrainState::new(nets.init::<f32, _>(&mut rng)))?;
    for _ in 0..2 {
        let inp = BackendInputs::upload(e, &inputs(&mut rng, cfg.batch, crop))?;
        train_iteration(e, &cfg, &nets, &mut state, &inp, cfg.lr)?;
    }
    let mut times = Vec::new();
    let converted_before = e.gpu.converted_bytes();
    for _ in 0..iters {
        let host = inputs(&mut rng, cfg.batch, crop);
        let t = Instant::now();
        // Upload included: it is part of every iteration of `fit`. Reading the losses at the
        // end synchronises, so the time covers all the iteration's GPU work.
        let inp = BackendInputs::upload(e, &host)?;
        let l = train_iteration(e, &cfg, &nets, &mut state, &inp, cfg.lr)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if !l.is_finite() {
            return Err(sincut::error::Error::new(format!(
                "crop {crop}: losses not finite: {l:?}"
            )));
        }
    }
    let peak = peak_mib(e);
    let converted = e.gpu.converted_bytes();
    let per_iter_mb = |after: u64, before: u64| (after - before) as f64 / iters as f64 / 1e6;
    let (act_mb, weight_mb) = (
        per_iter_mb(converted.0, converted_before.0),
        per_iter_mb(converted.1, converted_before.1),
    );
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "train crop {crop:>3} batch {} ngf {} ndf {}: median {median:8.1} ms/iter (min {:.1}, max {:.1}, {iters} iters)  peak GPU memory {peak:.0} MiB  bf16 operand conversions per iter: activations {act_mb:.1} MB, weights {weight_mb:.1} MB",
        cfg.batch,
        cfg.ngf,
        cfg.ndf,
        times[0],
        times[times.len() - 1]
    );
    if profile {
        let p = Profiled::new(e);
        let inp = BackendInputs::upload(&p, &inputs(&mut rng, cfg.batch, crop))?;
        let mut st = BackendState {
            params: state.params,
            exp_avg: state.exp_avg,
            exp_avg_sq: state.exp_avg_sq,
            step: state.step,
            ema: None,
        };
        train_iteration(&p, &cfg, &nets, &mut st, &inp, cfg.lr)?;
        println!("per-op times of one iteration at crop {crop} (each op synchronised):");
        print!("{}", p.table());
        println!("conv passes per layer, the slowest 24 (each op synchronised):");
        print!("{}", p.conv_table(24));
    }
    Ok((median, peak))
}

fn render(e: &CudaBackend, b: &Bench) -> sincut::error::Result<f64> {
    let side = b.render_side;
    let cfg = b.model(ModelConfig::default().crop);
    let nets = Networks::new(&cfg);
    let mut rng = StdRng::seed_from_u64(9);
    let p = upload_params(e, &nets.init::<f32, _>(&mut rng))?;
    let img = Array3::from_shape_simple_fn((3, side, side), || rng.random_range(-1.0f32..1.0));
    let opts = RenderOptions { tile: 512, seed: 1 };
    // Warm-up on a small image (kernel loading), then the timed render.
    let small = Array3::from_shape_simple_fn((3, 300, 200), || 0.1f32);
    render_tiled(e, &nets, &p, &small, &opts, &mut |_, _| {})?;
    let _ = e.gpu.reset_peak_pool_bytes();
    let t = Instant::now();
    let out = render_tiled(e, &nets, &p, &img, &opts, &mut |_, _| {})?;
    let secs = t.elapsed().as_secs_f64();
    if out.iter().any(|v| !v.is_finite()) {
        return Err(sincut::error::Error::new("render: output not finite"));
    }
    let mp = (side * side) as f64 / 1e6;
    println!(
        "render {side}×{side} ({mp:.1} MP) tiles 512: {secs:.2} s, {:.2} MP/s  peak GPU memory {:.0} MiB",
        mp / secs,
        peak_mib(e)
    );
    Ok(mp / secs)
}

fn main() {
    let b = match Bench::from_args() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bench gpu: {e}");
            std::process::exit(2);
        }
    };
    let matmul = if b.bf16 {
        MatmulPrecision::Bf16
    } else {
        MatmulPrecision::Full
    };
    let e = match CudaBackend::open_with(0, matmul) {
        Ok(e) => e,
        Err(err) => {
            println!("skipped: no CUDA device ({err})");
            return;
        }
    };
    println!(
        "GPU: {} ({}), convolutions in {}",
        e.gpu.name(),
        e.gpu.arch(),
        if b.bf16 { "bf16" } else { "f32" }
    );
    let run = || -> sincut::error::Result<()> {
        let mut rows = Vec::new();
        for &crop in &b.crops {
            let (ms, mem) = train(&e, &b, crop)?;
            rows.push((crop, ms, mem));
        }
        let mps = render(&e, &b)?;
        println!("| measure | value |");
        println!("|---|---|");
        for (crop, ms, mem) in rows {
            println!(
                "| train crop {crop} / b{} ngf {} ndf {}, ms/iter (peak GPU memory) | {ms:.1} ({mem:.0} MiB) |",
                b.batch, b.ngf, b.ndf
            );
        }
        println!(
            "| render {0}×{0} tiles 512, MP/s | {mps:.2} |",
            b.render_side
        );
        Ok(())
    };
    if let Err(err) = run() {
        eprintln!("bench gpu: error: {err}");
        std::process::exit(1);
    }
}
