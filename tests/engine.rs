//! The device engine (`sincut::engine`) on its CPU implementation: every line of its network
//! and step code except the CUDA trait impl runs here.
//! - against the reference engine (`sincut::nn`, `sincut::train`) on random parameters and
//!   inputs: the same ops in the same order, so tensors agree bit for bit and losses to f32
//!   rounding of R1's sum (the only value read back through an f32 scalar);
//! - against the golden fixtures, within GOLDEN.md's bounds (step outputs, losses, every
//!   gradient incl. R1's, the Adam trajectory).

use ndarray::{Array3, Array4, ArrayD};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use sincut::config::ModelConfig;
use sincut::engine::cpu::CpuEngine;
use sincut::engine::step::{EngineInputs, EngineState, replay_step, replay_trajectory};
use sincut::engine::trainer::render_engine;
use sincut::engine::{download_params, engine_shape, upload_params};
use sincut::golden::{CheckOptions, check_fixture_on, find_fixtures};
use sincut::nn::{Networks, ParamMap, normal};
use sincut::render::{RenderOptions, render};
use sincut::train::{self, StepInputs, TrainState};
use std::collections::BTreeMap;
use std::path::PathBuf;
mod common;

/// Small widths with odd channel counts and 2×2 D windows per crop (as src/train/tests.rs).
fn small_cfg() -> ModelConfig {
    ModelConfig {
        crop: 16,
        batch: 3,
        ngf: 3,
        ndf: 3,
        d_window: 8,
        netf_nc: 7,
        ..Default::default()
    }
}

/// Random parameters with every path carrying signal, and random inputs.
fn setup(cfg: &ModelConfig, seed: u64) -> (ParamMap<f32>, Vec<StepInputs<f32>>) {
    let nets = Networks::new(cfg);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p: ParamMap<f32> = nets.init(&mut rng);
    for (name, v) in p.iter_mut() {
        if name.ends_with(".bias") || name.ends_with("noise.weight") {
            v.mapv_inplace(|_| 0.1 * normal(&mut rng) as f32);
        }
        if name.starts_with("F.") && name.ends_with(".weight") {
            v.mapv_inplace(|x| x * 25.0);
        }
    }
    let (n, s) = (cfg.batch, cfg.crop);
    let h = s / 2;
    let inputs = (0..3)
        .map(|_| {
            let mut img =
                || Array4::from_shape_simple_fn((n, 3, s, s), || rng.random_range(-1.0f32..1.0));
            let (real_a, real_b) = (img(), img());
            StepInputs {
                real_a,
                real_b,
                noise: Array4::from_shape_simple_fn((2 * n, 1, s, s), || normal(&mut rng) as f32),
                nce_ids_x: [
                    rng.random_range(0..s * s),
                    rng.random_range(0..h * h),
                    rng.random_range(0..h * h),
                ],
                nce_ids_y: [
                    rng.random_range(0..s * s),
                    rng.random_range(0..h * h),
                    rng.random_range(0..h * h),
                ],
            }
        })
        .collect();
    (p, inputs)
}

fn is_loss(name: &str) -> bool {
    name.starts_with("loss.") || name.contains(".loss.")
}

/// Every quantity of `reference` is in `ours`: tensors bit for bit, losses within 1e-6 relative.
fn assert_same(
    what: &str,
    reference: &BTreeMap<String, ArrayD<f32>>,
    ours: &BTreeMap<String, ArrayD<f32>>,
) {
    assert_eq!(
        reference.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "{what}: the same quantities"
    );
    for (name, r) in reference {
        let o = &ours[name];
        assert_eq!(r.shape(), o.shape(), "{what}: {name} shape");
        if is_loss(name) {
            let (a, b) = (r[[0]] as f64, o[[0]] as f64);
            assert!(
                (a - b).abs() <= 1e-6 * a.abs().max(1e-3),
                "{what}: {name}: reference {a} vs engine {b}"
            );
        } else {
            let diff = r
                .iter()
                .zip(o.iter())
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                diff,
                0,
                "{what}: {name}: {diff} of {} elements differ",
                r.len()
            );
        }
    }
}

#[test]
fn step_matches_the_reference_bit_for_bit() {
    for (cfg, seed) in [
        (small_cfg(), 1),
        (
            ModelConfig {
                batch: 2,
                d_window: 16,
                ..small_cfg()
            },
            2,
        ),
    ] {
        let (p, inputs) = setup(&cfg, seed);
        let reference = train::replay_step(&cfg, &p, &inputs[0]);
        let ours = replay_step(&CpuEngine, &cfg, &p, &inputs[0]).unwrap();
        assert!(reference.contains_key("grad_r1.D.convs.0.0.weight"));
        assert_same(&format!("step seed {seed}"), &reference, &ours);
    }
}

#[test]
fn iterations_match_the_reference_bit_for_bit() {
    let cfg = small_cfg();
    let (p, inputs) = setup(&cfg, 3);
    let reference = train::replay_trajectory(&cfg, &p, &inputs);
    let ours = replay_trajectory(&CpuEngine, &cfg, &p, &inputs).unwrap();
    assert_same("trajectory", &reference, &ours);
    // The parameters moved (the comparison is not between two copies of the start).
    let moved = p
        .iter()
        .filter(|(k, v)| ours[&format!("final.{k}")] != **v)
        .count();
    assert!(
        moved > p.len() / 2,
        "only {moved} of {} parameters moved",
        p.len()
    );
}

/// The training state survives a trip to the engine and back (checkpoints of GPU runs), also
/// with Adam moments after a few steps at a learning rate off the configuration's.
#[test]
fn state_round_trips_and_adam_moments_match() {
    let cfg = small_cfg();
    let nets = Networks::new(&cfg);
    let (p, inputs) = setup(&cfg, 4);
    let mut reference = TrainState::new(p.clone());
    let mut state = EngineState::upload(&CpuEngine, &TrainState::new(p)).unwrap();
    for inp in &inputs {
        let a = train::train_iteration(&cfg, &nets, &mut reference, inp, 0.0007);
        let e_inp = EngineInputs::upload(&CpuEngine, inp).unwrap();
        let b = sincut::engine::step::train_iteration(
            &CpuEngine, &cfg, &nets, &mut state, &e_inp, 0.0007,
        )
        .unwrap();
        assert!(
            (a.g - b.g).abs() <= 1e-6 * a.g.abs() && (a.d - b.d).abs() <= 1e-6 * a.d.abs(),
            "{a:?} vs {b:?}"
        );
    }
    let back = state.download(&CpuEngine, &nets).unwrap();
    assert_eq!(back.step, reference.step);
    for (map, want) in [
        (&back.params, &reference.params),
        (&back.exp_avg, &reference.exp_avg),
        (&back.exp_avg_sq, &reference.exp_avg_sq),
    ] {
        assert_eq!(map.len(), want.len());
        for (k, v) in want {
            assert_eq!(&map[k], v, "{k}");
        }
    }
    // Official shapes come back (5-D styled weight, (out, in) linears, (C) biases).
    let p2 = download_params(
        &CpuEngine,
        &nets,
        &upload_params(&CpuEngine, &back.params).unwrap(),
    )
    .unwrap();
    assert_eq!(p2, back.params);
}

#[test]
fn engine_shapes() {
    assert_eq!(engine_shape(&[1, 80, 160, 3, 3]).unwrap(), [80, 160, 3, 3]);
    assert_eq!(engine_shape(&[384, 6144]).unwrap(), [384, 6144, 1, 1]);
    assert_eq!(engine_shape(&[7]).unwrap(), [7, 1, 1, 1]);
    assert_eq!(engine_shape(&[1, 80, 1, 1]).unwrap(), [1, 80, 1, 1]);
    assert!(engine_shape(&[2, 1, 1, 1, 1]).is_err());
}

/// The engine's tiled render equals the reference's (same tiles, windows, noise and ops).
#[test]
fn render_matches_the_reference() {
    let cfg = small_cfg();
    let nets = Networks::new(&cfg);
    let (p, _) = setup(&cfg, 5);
    let mut rng = StdRng::seed_from_u64(6);
    let img = Array3::from_shape_simple_fn((3, 45, 70), || rng.random_range(-1.0f32..1.0));
    let opts = RenderOptions { tile: 24, seed: 9 };
    let want = render(&nets.g, &p, &img, &opts, &mut |_, _| {});
    let ep = upload_params(&CpuEngine, &p).unwrap();
    let mut calls = 0;
    let got = render_engine(&CpuEngine, &nets, &ep, &img, &opts, &mut |_, _| calls += 1).unwrap();
    assert!(calls > 4);
    assert_eq!(got, want);
}

/// `SINCUT_GOLDEN_DIR`, else `<manifest>/../shared/golden`.
fn golden_root() -> PathBuf {
    match std::env::var_os("SINCUT_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden"),
    }
}

#[test]
fn every_fixture_replays_within_bounds_on_the_cpu_engine() {
    let root = golden_root();
    assert!(
        root.is_dir(),
        "golden fixtures not found at {}",
        root.display()
    );
    let mut failed = Vec::new();
    for dir in find_fixtures(&root).unwrap() {
        let report = check_fixture_on(&CpuEngine, &dir, &CheckOptions::default()).unwrap();
        println!("{}", report.table(10));
        assert!(
            report
                .results
                .iter()
                .any(|q| q.name.starts_with("grad_r1."))
        );
        assert!(report.results.iter().any(|q| q.name.starts_with("final.")));
        if !report.passed() {
            failed.push(report.verdict());
        }
    }
    assert!(
        failed.is_empty(),
        "fixtures failing:\n{}",
        failed.join("\n")
    );
}

/// `sincut check-golden --device cpu-engine` dispatches to the engine and passes.
#[test]
fn check_golden_dispatches_cpu_engine() {
    let first = find_fixtures(golden_root()).unwrap().remove(0);
    let opts = CheckOptions {
        device: sincut::device::Device::CpuEngine,
        ..Default::default()
    };
    let mut out = Vec::new();
    let passed = sincut::golden::run_check_golden(&[first], &opts, &mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(passed && text.contains("1 of 1 fixtures pass"), "{text}");
}

/// `check-golden --device cuda` without a GPU: one line, no panic (with one: all pass).
#[test]
fn check_golden_on_cuda_errors_in_one_line_without_a_gpu() {
    let opts = CheckOptions {
        device: sincut::device::Device::Cuda,
        ..Default::default()
    };
    let mut out = Vec::new();
    match sincut::golden::run_check_golden(&[golden_root()], &opts, &mut out) {
        Ok(passed) => {
            assert!(sincut::cuda::Gpu::open(0).is_ok(), "ran without a GPU");
            assert!(passed, "{}", String::from_utf8_lossy(&out));
        }
        Err(e) => {
            let e = e.to_string();
            assert!(sincut::cuda::Gpu::open(0).is_err(), "a GPU opens but: {e}");
            assert!(e.starts_with("--device cuda:") && !e.contains('\n'), "{e}");
            assert!(out.is_empty());
        }
    }
}

/// The same through the command line: exit status 1 and one `sincut: error:` line.
#[test]
fn cli_check_golden_on_cuda_without_a_gpu() {
    if sincut::cuda::Gpu::open(0).is_ok() {
        println!("a GPU opens: the refusal cannot be shown here");
        return;
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sincut"))
        .args(["check-golden", "--device", "cuda"])
        .arg(golden_root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("sincut: error: --device cuda: "), "{err}");
}

// ---- `fit` and `render` through the device engine's path (`--device cpu-engine`: Trainer's
// engine arm, checkpoints downloaded from the engine, resume by upload, the engine's render). ----

mod fit_path {
    use sincut::cli::render::{RenderArgs, render_command};
    use sincut::device::Device;
    use sincut::fit::{FitOptions, FitOutcome, fit};
    use sincut::image::SaveOptions;
    use sincut::io::load_checkpoint;
    use sincut::run::checkpoint_path;
    use std::path::{Path, PathBuf};

    use super::common::{self, pair};

    fn tmpdir(name: &str) -> PathBuf {
        common::tmpdir("engine", name)
    }

    fn options(src: &Path, tgt: &Path, out: &Path, device: Device) -> FitOptions {
        FitOptions {
            device,
            ..common::tiny_fit_options(src, tgt, out, 6)
        }
    }

    fn same_checkpoints(a: &Path, b: &Path) {
        let (x, y) = (
            load_checkpoint(checkpoint_path(a)).unwrap(),
            load_checkpoint(checkpoint_path(b)).unwrap(),
        );
        assert_eq!(x.iteration, y.iteration);
        assert_eq!(x.params, y.params, "parameters");
        let (ax, ay) = (x.adam.unwrap(), y.adam.unwrap());
        assert_eq!(ax.step, ay.step);
        assert_eq!(ax.exp_avg, ay.exp_avg, "Adam first moments");
        assert_eq!(ax.exp_avg_sq, ay.exp_avg_sq, "Adam second moments");
    }

    fn bytes(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A run on the engine path equals the CPU reference's run bit for bit (checkpoints,
    /// snapshots, the final render), and a run moves between the two by its checkpoint.
    #[test]
    fn fit_on_the_engine_path_equals_the_reference_and_resumes_across() {
        let dir = tmpdir("fit");
        let (a, b) = pair(&dir);
        let reference = dir.join("cpu");
        fit(&options(&a, &b, &reference, Device::Cpu)).unwrap();

        let engine = dir.join("engine");
        let out = fit(&options(&a, &b, &engine, Device::CpuEngine)).unwrap();
        assert!(matches!(out, FitOutcome::Finished { iteration: 6, .. }));
        same_checkpoints(&reference, &engine);
        for f in [
            "result.png",
            "snapshots/iter0000003-preview.png",
            "snapshots/iter0000006-crops.png",
        ] {
            assert_eq!(bytes(&reference.join(f)), bytes(&engine.join(f)), "{f}");
        }

        // Engine → reference → engine, by checkpoints.
        let split = dir.join("split");
        let mut o = options(&a, &b, &split, Device::CpuEngine);
        o.stop_at = Some(2);
        assert_eq!(fit(&o).unwrap(), FitOutcome::Stopped { iteration: 2 });
        o.resume = true;
        o.device = Device::Cpu;
        o.stop_at = Some(4);
        assert_eq!(fit(&o).unwrap(), FitOutcome::Stopped { iteration: 4 });
        o.device = Device::CpuEngine;
        o.stop_at = None;
        fit(&o).unwrap();
        same_checkpoints(&reference, &split);
        assert_eq!(
            bytes(&reference.join("result.png")),
            bytes(&split.join("result.png"))
        );

        // `sincut render` through the engine writes the reference's picture.
        let render = |device, name: &str| {
            let output = dir.join(name);
            render_command(&RenderArgs {
                run_dir: Some(reference.clone()),
                checkpoint: None,
                input: None,
                output: Some(output.clone()),
                tiles: 32,
                save: SaveOptions::default(),
                seed: None,
                device,
                quiet: true,
            })
            .unwrap();
            bytes(&output)
        };
        assert_eq!(
            render(Device::Cpu, "cpu.png"),
            render(Device::CpuEngine, "engine.png")
        );
    }
}
