//! Times full-resolution rendering with the official widths (ngf 10, random init params with
//! non-zero biases and noise weight) on synthetic smooth images: time, megapixels/s and peak
//! resident memory (VmHWM), tiled and whole-image. Each case runs in its own process so its
//! peak-memory figure is its own.
//!
//!   cargo bench --bench render                          # all cases
//!   cargo bench --bench render -- --size 1200x968 --tile 512
//!   cargo bench --bench render -- --size 1200x968 --whole

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sincut::backend::cpu::CpuBackend;
use sincut::backend::upload_params;
use sincut::config::ModelConfig;
use sincut::nn::{Networks, normal};
use sincut::ops::flops;
use sincut::render::{RenderOptions, receptive_field, render, render_whole};
use sincut::tensor::c;
use std::process::Command;
use std::time::Instant;

use sincut::memory::proc_status_mib as status_mib;

/// CPU seconds (user + system) this process has used: with other work on the machine, wall
/// time alone overstates the cost.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks are 100 Hz on Linux.
    f.iter().sum::<f64>() / 100.0
}

/// A smooth random picture in [-1, 1]: a few random low-frequency waves per channel.
fn smooth_image(w: usize, h: usize, rng: &mut StdRng) -> ndarray::Array3<f32> {
    let waves: Vec<[f32; 4]> = (0..12)
        .map(|_| {
            [
                rng.random_range(-0.02f32..0.02),
                rng.random_range(-0.02f32..0.02),
                rng.random_range(0.0f32..6.3),
                rng.random_range(0.1f32..0.4),
            ]
        })
        .collect();
    ndarray::Array3::from_shape_fn((3, h, w), |(ch, y, x)| {
        let v: f32 = waves[ch * 4..ch * 4 + 4]
            .iter()
            .map(|[fx, fy, ph, a]| a * (fx * x as f32 + fy * y as f32 + ph).sin())
            .sum();
        v.clamp(-1.0, 1.0)
    })
}

fn run_one(w: usize, h: usize, tile: Option<usize>) {
    sincut::memory::keep_freed_memory();
    let cfg = ModelConfig::default();
    let nets = Networks::new(&cfg);
    let mut rng = StdRng::seed_from_u64(7);
    let mut p = nets.init::<f32, _>(&mut rng);
    p.retain(|k, _| k.starts_with("G."));
    for (k, v) in p.iter_mut() {
        if k.ends_with(".bias") || k.ends_with("noise.weight") {
            v.mapv_inplace(|_| c(0.1 * normal(&mut rng)));
        }
    }
    let e = CpuBackend::<f32>::new();
    let p = upload_params(&e, &p).unwrap();
    let img = smooth_image(w, h, &mut rng);
    // Input + output, both (3, H, W) f32.
    let io_mib = 2.0 * (3 * w * h * 4) as f64 / (1024.0 * 1024.0);
    let before = status_mib("VmRSS:");
    flops::reset();
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let (out, mode) = match tile {
        Some(tile) => {
            let opts = RenderOptions { tile, seed: 1 };
            (
                render(&e, &nets, &p, &img, &opts, &mut |done, total| {
                    // Progress with the running rate and peak, so a long case can be read early.
                    if done % 8 == 0 || done == total {
                        eprintln!(
                            "  tile {done}/{total}  {:.1} s  peak RSS {:.0} MiB",
                            t.elapsed().as_secs_f64(),
                            status_mib("VmHWM:")
                        );
                    }
                })
                .unwrap(),
                format!("tiles {tile} (halo {})", receptive_field(&nets.g)),
            )
        }
        None => (
            render_whole(&e, &nets, &p, &img, 1).unwrap(),
            "whole image".to_string(),
        ),
    };
    let secs = t.elapsed().as_secs_f64();
    let gflop = flops::get() as f64 / 1e9;
    let cpu = cpu_secs() - cpu0;
    assert!(out.iter().all(|v| v.is_finite()));
    println!(
        "{w}x{h} {mode:<22} {secs:>7.2} s (CPU {cpu:.1} s, {:.2} cores busy)  {:>5.3} MP/s  peak RSS {:>6.0} MiB  (before render {:.0} MiB; input+output buffers {:.0} MiB; peak beyond them {:.0} MiB)  conv work {gflop:.0} GFLOP ({:.1} GFLOP/s)  threads {}",
        cpu / secs,
        (w * h) as f64 / 1e6 / secs,
        status_mib("VmHWM:"),
        before,
        io_mib,
        status_mib("VmHWM:") - io_mib,
        gflop / secs,
        sincut::parallel::num_threads(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(size) = get("--size") {
        let (w, h) = size
            .split_once('x')
            .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
            .expect("--size WxH");
        let tile = get("--tile").map(|t| t.parse().unwrap());
        let whole = args.iter().any(|a| a == "--whole");
        assert!(tile.is_some() != whole, "give --tile N or --whole");
        run_one(w, h, tile);
        return;
    }
    let exe = std::env::current_exe().expect("bench executable");
    let cases: [&[&str]; 4] = [
        &["--size", "1200x968", "--tile", "512"],
        &["--size", "1200x968", "--whole"],
        &["--size", "4000x3000", "--tile", "512"],
        &["--size", "8000x6000", "--tile", "512"],
    ];
    for case in cases {
        let status = Command::new(&exe)
            .args(case)
            .status()
            .expect("re-running the bench");
        assert!(status.success());
    }
}
