//! Statistics of the training crops `sincut fit` draws, one line per crop: `A` or `B`, then per
//! channel (R, G, B) the crop's mean, its standard deviation and its mean absolute horizontal
//! step (which follows the zoom). `scripts/official_crops.py --compare` sets them against the
//! official dataset's crops.
//!
//! `cargo run --release --example crop_stats -- SOURCE TARGET [ITERATIONS] [CROP] [BATCH] [SEED]`

use ndarray::{ArrayView3, Axis};
use sincut::data::Sampler;
use std::path::Path;

fn stats(crop: ArrayView3<f32>) -> String {
    let mut line = String::new();
    for plane in crop.axis_iter(Axis(0)) {
        let n = plane.len() as f64;
        let mean = plane.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = plane
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let (h, w) = plane.dim();
        let step: f64 = plane
            .rows()
            .into_iter()
            .map(|r| {
                r.windows(2)
                    .into_iter()
                    .map(|p| f64::from((p[1] - p[0]).abs()))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / (h * (w - 1)) as f64;
        line += &format!(" {mean:.6} {:.6} {step:.6}", var.sqrt());
    }
    line
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: crop_stats SOURCE TARGET [ITERATIONS=500] [CROP=64] [BATCH=4] [SEED=0]");
        std::process::exit(2);
    }
    let num = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let (iters, crop, batch, seed) = (num(2, 500), num(3, 64), num(4, 4), num(5, 0));
    let load = |p: &str| {
        sincut::image::load_rgb(Path::new(p)).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1)
        })
    };
    let mut sampler = Sampler::new(
        load(&args[0]),
        load(&args[1]),
        crop as usize,
        batch as usize,
        seed,
    )
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    for it in 0..iters {
        let x = sampler.draw(it);
        for (side, crops) in [("A", &x.real_a), ("B", &x.real_b)] {
            for c in crops.axis_iter(Axis(0)) {
                println!("{side}{}", stats(c));
            }
        }
    }
}
