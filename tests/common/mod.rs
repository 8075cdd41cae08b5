//! Helpers shared by the integration tests that train tiny runs (each test crate uses a part).
#![allow(dead_code)]

use ndarray::{Array3, Array4};
use sincut::backend::device::Device;
use sincut::config::ModelConfig;
use sincut::fit::{FitOptions, Verbosity};
use sincut::image::{SaveOptions, save_rgb};
use sincut::run::RunConfig;
use std::path::{Path, PathBuf};

/// A temporary folder, removed when dropped unless the test is failing (then it stays for a
/// look).
pub struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TmpDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh, empty temporary folder named after the test crate (`tag`), the process and `name`.
pub fn tmpdir(tag: &str, name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("sincut-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

/// A smooth synthetic picture with structure (so crops differ).
pub fn picture(w: usize, h: usize, phase: f32) -> Array3<f32> {
    Array3::from_shape_fn((3, h, w), |(c, y, x)| {
        let (x, y) = (x as f32 / w as f32, y as f32 / h as f32);
        ((x * 7.0 + phase + c as f32).sin() * (y * 5.0 - phase).cos() * 0.9).clamp(-1.0, 1.0)
    })
}

/// A source (90×70) and a target (80×84) picture saved in `dir`.
pub fn pair(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    save_rgb(&a, &picture(90, 70, 0.0), &SaveOptions::default()).unwrap();
    save_rgb(&b, &picture(80, 84, 1.3), &SaveOptions::default()).unwrap();
    (a, b)
}

/// The smallest model the configuration allows, for runs of a few seconds.
pub fn tiny_model() -> ModelConfig {
    ModelConfig {
        crop: 32,
        batch: 2,
        ngf: 1,
        ndf: 1,
        d_window: 16,
        netf_nc: 16,
        ..Default::default()
    }
}

/// A quiet CPU run of the tiny model: snapshots and quality lines every 3 iterations,
/// checkpoints every 2, final render in tiles of 48, a moving average of G with the default
/// half-life and a ramp-up of 1 (so that the average of a few iterations differs from G).
pub fn tiny_fit_options(src: &Path, tgt: &Path, out: &Path, iters: u64) -> FitOptions {
    FitOptions {
        run: RunConfig {
            source: src.to_path_buf(),
            target: tgt.to_path_buf(),
            model: tiny_model(),
            iters,
            seed: 11,
            snapshot_every: 3,
            checkpoint_every: 2,
            preview_size: 40,
            tiles: 48,
            preset: None,
            eval_every: 3,
            device: None,
            precision: None,
            changes: Vec::new(),
            time: None,
            // An average, whatever the default: every tiny-run test goes through it.
            ema_half_life: 5000.0,
            ema_rampup: 1.0,
            no_ema: false,
        },
        out: out.to_path_buf(),
        resume: false,
        device: Device::Cpu,
        precision: Default::default(),
        verbosity: Verbosity::Quiet,
        stop_at: None,
        no_final_render: false,
        resume_with: Default::default(),
    }
}

/// SplitMix64 uniforms in [-1, 1): seeded random inputs for the kernel and parity tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = sincut::rng::finalise(self.0);
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn a4(&mut self, s: (usize, usize, usize, usize)) -> Array4<f32> {
        Array4::from_shape_simple_fn(s, || self.next())
    }
}
