//! `sincut fit` / `render` / `info` end to end on tiny configurations: exact resume, interrupts,
//! divergence, and bad input (one-line errors, non-zero exit, nothing half-written).

use sincut::backend::device::{Device, Precision};
use sincut::cli::render::{RenderArgs, render_command};
use sincut::fit::{FitOptions, FitOutcome, fit};
use sincut::image::{SaveOptions, load_rgb, save_rgb};
use sincut::io::{load_checkpoint, save_checkpoint};
use sincut::run::checkpoint_path;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{pair, picture};

fn tmpdir(name: &str) -> common::TmpDir {
    common::tmpdir("test", name)
}

fn options(src: &Path, tgt: &Path, out: &Path, iters: u64) -> FitOptions {
    common::tiny_fit_options(src, tgt, out, iters)
}

/// metrics.jsonl of a run: (loss lines, quality lines).
fn metrics_lines(run_dir: &Path) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .partition(|v| v.get("eval").is_none())
}

#[test]
fn resume_is_bit_exact_and_the_run_directory_is_complete() {
    let dir = tmpdir("resume");
    let (a, b) = pair(&dir);
    let whole = dir.join("whole");
    let out = fit(&options(&a, &b, &whole, 6)).unwrap();
    assert_eq!(
        out,
        FitOutcome::Finished {
            iteration: 6,
            result: Some(whole.join("result.png"))
        }
    );

    let split = dir.join("split");
    let mut o = options(&a, &b, &split, 6);
    o.stop_at = Some(3);
    assert_eq!(fit(&o).unwrap(), FitOutcome::Stopped { iteration: 3 });
    assert_eq!(
        load_checkpoint(checkpoint_path(&split)).unwrap().iteration,
        3
    );
    o.stop_at = None;
    o.resume = true;
    // As if the first run had logged an iteration past its last checkpoint before dying.
    let mut log = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap();
    log.push_str(r#"{"iter":3,"lr":0.002}"#);
    log.push('\n');
    std::fs::write(split.join("metrics.jsonl"), log).unwrap();
    fit(&o).unwrap();
    let (split_losses, split_evals) = metrics_lines(&split);
    let iters: Vec<u64> = split_losses
        .iter()
        .map(|v| v["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, (0..6).collect::<Vec<u64>>(), "metrics after resume");
    // Quality lines after 3 and 6 iterations, the same as the uninterrupted run's.
    let (whole_losses, whole_evals) = metrics_lines(&whole);
    let eval_iters: Vec<u64> = split_evals
        .iter()
        .map(|v| v["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(eval_iters, [3, 6], "quality lines after resume");
    for (a, b) in whole_evals.iter().zip(&split_evals) {
        assert_eq!(a["eval"], b["eval"]);
    }
    for key in [
        "swd",
        "ssim",
        "ssim_4x",
        "edge_correlation",
        "lab_w1",
        "lab_w1_sum",
    ] {
        assert!(
            whole_evals[0]["eval"].get(key).is_some(),
            "quality line lacks {key}: {}",
            whole_evals[0]
        );
    }
    let ssim = whole_evals[1]["eval"]["ssim"].as_f64().unwrap();
    assert!(ssim > -1.0 && ssim < 1.0, "SSIM {ssim}");

    let (x, y) = (
        load_checkpoint(checkpoint_path(&whole)).unwrap(),
        load_checkpoint(checkpoint_path(&split)).unwrap(),
    );
    assert_eq!(x.iteration, 6);
    assert_eq!(
        x.params, y.params,
        "weights after 3 + 3 iterations differ from 6 uninterrupted"
    );
    assert_eq!(x.adam, y.adam);
    // The moving average of G continues bit for bit across the resume, and is an average:
    // neither G's latest weights nor its initial ones.
    let (xe, ye) = (x.ema.as_ref().unwrap(), y.ema.as_ref().unwrap());
    assert_eq!(
        xe.len(),
        x.params.keys().filter(|k| k.starts_with("G.")).count()
    );
    for (name, w) in xe {
        let same = w
            .iter()
            .zip(ye[name].iter())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "EMA {name} after 3 + 3 iterations differs from 6 uninterrupted"
        );
    }
    assert!(
        xe.iter().any(|(n, w)| *w != x.params[n]),
        "the EMA equals G's latest weights"
    );
    // The quality lines say the pictures came from the average.
    assert!(
        whole_evals.iter().all(|v| v["weights"] == "ema"),
        "{whole_evals:?}"
    );
    // The run directory: config, metrics (one line per iteration), snapshots, result.
    assert!(whole.join("run.json").is_file());
    assert_eq!(whole_losses.len(), 6);
    let first = &whole_losses[0];
    for key in [
        "iter", "lr", "d", "d_r1", "g", "g_gan", "nce", "nce_y", "idt", "it_per_s",
    ] {
        assert!(
            first.get(key).is_some(),
            "metrics line lacks {key}: {first}"
        );
    }
    assert!(whole.join("snapshots/iter0000003-preview.png").is_file());
    assert!(whole.join("snapshots/iter0000006-crops.png").is_file());
    let result = load_rgb(&whole.join("result.png")).unwrap();
    assert_eq!(result.dim(), (3, 70, 90));
}

#[test]
fn divergence_stops_with_the_last_checkpoint_intact() {
    let dir = tmpdir("diverge");
    let (a, b) = pair(&dir);
    let out = dir.join("run");
    let mut o = options(&a, &b, &out, 20);
    o.run.model.lr = 1e30;
    let err = fit(&o).unwrap_err().to_string();
    assert!(err.contains("not finite") && !err.contains('\n'), "{err}");
    let ck = load_checkpoint(checkpoint_path(&out)).unwrap();
    assert!(ck.params.values().all(|v| v.iter().all(|x| x.is_finite())));
}

#[test]
fn bad_training_input_is_refused_before_anything_is_written() {
    let dir = tmpdir("badfit");
    let (a, b) = pair(&dir);
    let small = dir.join("small.png");
    save_rgb(&small, &picture(20, 40, 0.0), &SaveOptions::default()).unwrap();
    let cases: Vec<(&str, Box<dyn Fn(&mut FitOptions)>)> = vec![
        (
            "file not found",
            Box::new(|o| o.run.source = PathBuf::from("/nonexistent/x.png")),
        ),
        (
            "smaller than",
            Box::new(move |o| o.run.target = small.clone()),
        ),
        (
            "multiple of the D window",
            Box::new(|o| o.run.model.crop = 40),
        ),
        ("batch", Box::new(|o| o.run.model.batch = 1)),
    ];
    // Without a GPU, `--device cuda` is refused the same way (with one it trains).
    let mut cases = cases;
    if sincut::cuda::Gpu::open(0).is_err() {
        cases.push((
            "--device cuda: no CUDA",
            Box::new(|o| o.device = Device::Cuda),
        ));
    }
    for (i, (needle, edit)) in cases.iter().enumerate() {
        let out = dir.join(format!("run{i}"));
        let mut o = options(&a, &b, &out, 2);
        edit(&mut o);
        let err = fit(&o).unwrap_err().to_string();
        assert!(
            err.contains(needle) && !err.contains('\n'),
            "case {needle}: {err}"
        );
        assert!(!out.exists(), "case {needle}: run directory was created");
    }
    // An existing run is not overwritten; resuming needs a checkpoint.
    let out = dir.join("existing");
    fit(&options(&a, &b, &out, 1)).unwrap();
    let err = fit(&options(&a, &b, &out, 1)).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    let mut o = options(&a, &b, &dir.join("nothing"), 1);
    o.resume = true;
    assert!(fit(&o).is_err());
}

#[test]
fn render_refuses_foreign_truncated_and_unwritable() {
    let dir = tmpdir("badrender");
    let (a, b) = pair(&dir);
    let run = dir.join("run");
    let mut o = options(&a, &b, &run, 1);
    o.no_final_render = true;
    fit(&o).unwrap();
    let args = |ck: Option<PathBuf>, output: PathBuf| RenderArgs {
        run_dir: if ck.is_none() {
            Some(run.clone())
        } else {
            None
        },
        checkpoint: ck,
        input: Some(a.clone()),
        output: Some(output),
        tiles: 32,
        save: SaveOptions::default(),
        seed: None,
        device: Device::Cpu,
        precision: Default::default(),
        no_ema: false,
        quiet: true,
    };
    // Works, and tiles do not change the picture beyond one 8-bit level.
    let p1 = render_command(&args(None, dir.join("r32.png"))).unwrap();
    let mut big = args(None, dir.join("r512.png"));
    big.tiles = 512;
    let p2 = render_command(&big).unwrap();
    let (x, y) = (load_rgb(&p1).unwrap(), load_rgb(&p2).unwrap());
    let worst = x
        .iter()
        .zip(y.iter())
        .map(|(u, v)| (u - v).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 2.0 / 255.0 + 1e-6,
        "tiled renders differ by {worst}"
    );
    // bf16 matrix operands: a different picture, within a few 8-bit levels of the f32 one.
    let mut half = args(None, dir.join("r32-bf16.png"));
    half.precision = Precision::Bf16;
    let z = load_rgb(&render_command(&half).unwrap()).unwrap();
    let diff = x.iter().zip(z.iter()).map(|(u, v)| (u - v).abs());
    let (changed, worst) = diff.fold((0usize, 0.0f32), |(n, m), d| {
        (n + usize::from(d > 0.0), m.max(d))
    });
    assert!(
        changed > 0 && worst <= 16.0 / 255.0,
        "bf16 render: {changed} values changed, worst {worst}"
    );

    let foreign = dir.join("foreign.safetensors");
    std::fs::write(&foreign, b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ").unwrap();
    let e = render_command(&args(Some(foreign), dir.join("f.png")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("foreign.safetensors") && !e.contains('\n'),
        "{e}"
    );

    let bytes = std::fs::read(checkpoint_path(&run)).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = render_command(&args(Some(truncated), dir.join("t.png")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated.safetensors") && !e.contains('\n'),
        "{e}"
    );

    let e = render_command(&args(None, PathBuf::from("/nonexistent-dir/out.png")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("out.png") && !e.contains('\n'), "{e}");
    assert!(!dir.join("f.png").exists() && !dir.join("t.png").exists());
}

/// Issue 15, item 2: fit's pictures and `render` come from the moving average of G's weights
/// by default, from the raw weights with `--no-ema`; the average does not change training;
/// a run without one has no `ema.*` tensors and its pictures are the raw weights'.
#[test]
fn pictures_use_the_ema_unless_no_ema() {
    let dir = tmpdir("ema");
    let (a, b) = pair(&dir);
    let render = |run_dir: Option<&Path>, ck: Option<PathBuf>, no_ema: bool, name: &str| {
        let out = dir.join(name);
        render_command(&RenderArgs {
            run_dir: run_dir.map(Path::to_path_buf),
            checkpoint: ck,
            input: Some(a.clone()),
            output: Some(out.clone()),
            tiles: 48,
            save: SaveOptions::default(),
            seed: Some(11),
            device: Device::Cpu,
            precision: Default::default(),
            no_ema,
            quiet: true,
        })
        .unwrap();
        load_rgb(&out).unwrap()
    };
    let result = |run: &Path| load_rgb(&run.join("result.png")).unwrap();
    let eval_weights = |run: &Path| -> Vec<String> {
        metrics_lines(run)
            .1
            .iter()
            .map(|v| v["weights"].as_str().unwrap().to_string())
            .collect()
    };

    // A run with an average (common: half-life 5000 images, ramp-up 1): the default is the average.
    let run = dir.join("run");
    fit(&options(&a, &b, &run, 4)).unwrap();
    let ema = render(Some(&run), None, false, "ema.png");
    let raw = render(Some(&run), None, true, "raw.png");
    assert_ne!(ema, raw, "--no-ema rendered the same picture");
    assert_eq!(result(&run), ema, "fit's result.png is not the average's");
    assert_eq!(eval_weights(&run), ["ema", "ema"]);
    // G's weights replaced by the average in a checkpoint without one render the default.
    let mut ck = load_checkpoint(checkpoint_path(&run)).unwrap();
    let avg = ck.ema.take().unwrap();
    ck.params.extend(avg);
    let swapped = dir.join("swapped.safetensors");
    save_checkpoint(&swapped, &ck).unwrap();
    assert_eq!(render(None, Some(swapped.clone()), false, "s.png"), ema);
    assert_eq!(render(None, Some(swapped), true, "s-raw.png"), ema);
    let info = sincut::cli::info::info_command(&run).unwrap();
    assert!(
        info.contains(
            "G average   moving average (EMA) of G's weights, half-life 5000 images, ramp-up 1;"
        ),
        "{info}"
    );
    assert!(info.contains("result.png from the EMA weights"), "{info}");

    // fit --no-ema: pictures from the raw weights; the same average is still kept.
    let run_raw = dir.join("run-no-ema");
    let mut o = options(&a, &b, &run_raw, 4);
    o.run.no_ema = true;
    fit(&o).unwrap();
    assert_eq!(result(&run_raw), raw, "fit --no-ema's result.png");
    assert_eq!(eval_weights(&run_raw), ["raw", "raw"]);
    let ck_raw = load_checkpoint(checkpoint_path(&run_raw)).unwrap();
    let ck_ema = load_checkpoint(checkpoint_path(&run)).unwrap();
    assert_eq!(ck_raw.ema, ck_ema.ema);
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_raw.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        (&run_json["no_ema"], &run_json["ema_half_life"]),
        (&serde_json::json!(true), &serde_json::json!(5000.0))
    );
    let info = sincut::cli::info::info_command(&run_raw).unwrap();
    assert!(info.contains("result.png from the raw weights"), "{info}");

    // --ema-half-life 0: no average; training and the raw pictures are the same.
    let run_none = dir.join("run-none");
    let mut o = options(&a, &b, &run_none, 4);
    o.run.ema_half_life = 0.0;
    fit(&o).unwrap();
    let ck_none = load_checkpoint(checkpoint_path(&run_none)).unwrap();
    assert!(ck_none.ema.is_none());
    assert_eq!(
        ck_none.params, ck_ema.params,
        "the average changed training"
    );
    assert_eq!(ck_none.adam, ck_ema.adam);
    assert_eq!(result(&run_none), raw);
    assert_eq!(render(Some(&run_none), None, false, "none.png"), raw);
    assert_eq!(eval_weights(&run_none), ["raw", "raw"]);
    let info = sincut::cli::info::info_command(&run_none).unwrap();
    assert!(info.contains("G average   none"), "{info}");
    // Resumed, it stays without one (a run.json of before the average reads the same way).
    let mut o = options(&a, &b, &run_none, 6);
    o.resume = true;
    o.resume_with.iters = Some(6);
    o.no_final_render = true;
    fit(&o).unwrap();
    let ck_none = load_checkpoint(checkpoint_path(&run_none)).unwrap();
    assert_eq!((ck_none.iteration, ck_none.ema.is_none()), (6, true));
    // A run.json that asks for an average its checkpoint lacks is refused, and vice versa.
    for (run_dir, half_life, needle) in [
        (&run_none, 5000.0, "the checkpoint holds none"),
        (&run, 0.0, "run.json keeps none"),
    ] {
        let path = run_dir.join("run.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["ema_half_life"] = serde_json::json!(half_life);
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        let mut o = options(&a, &b, run_dir, 8);
        o.resume = true;
        let e = fit(&o).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
}

#[test]
fn cli_interrupt_saves_a_checkpoint_that_info_reports() {
    let dir = tmpdir("sigint");
    let (a, b) = pair(&dir);
    let out = dir.join("run");
    let exe = env!("CARGO_BIN_EXE_sincut");
    let mut child = Command::new(exe)
        .args([
            "fit",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(tiny_cli())
        .args(["--iters", "100000", "--checkpoint-every", "100000"])
        .spawn()
        .unwrap();
    // Wait for the run to start iterating (its first checkpoint is written at iteration 0).
    let t0 = std::time::Instant::now();
    while !out.join("metrics.jsonl").exists()
        || std::fs::metadata(out.join("metrics.jsonl")).unwrap().len() == 0
    {
        assert!(t0.elapsed().as_secs() < 120, "fit did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let ck = load_checkpoint(checkpoint_path(&out)).unwrap();
    assert!(
        ck.iteration >= 1,
        "interrupt did not checkpoint the progress"
    );
    let lines = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(lines, ck.iteration);
    // The checkpoint is readable and reports the interrupted iteration (resuming is tested above).
    let info = Command::new(exe)
        .args(["info", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(info.status.success());
    assert!(
        String::from_utf8_lossy(&info.stdout).contains(&format!("iteration   {}", ck.iteration))
    );
}

#[test]
fn cli_errors_are_one_line_with_a_non_zero_exit() {
    let exe = env!("CARGO_BIN_EXE_sincut");
    let dir = tmpdir("cli");
    let (a, _) = pair(&dir);
    let text = dir.join("not-an-image.png");
    std::fs::write(&text, "hello").unwrap();
    for args in [
        vec![
            "fit".to_string(),
            "/nonexistent.jpg".into(),
            a.to_str().unwrap().into(),
        ],
        vec![
            "fit".into(),
            text.to_str().unwrap().into(),
            a.to_str().unwrap().into(),
            "--out".into(),
            dir.join("r").to_str().unwrap().into(),
        ],
        vec!["info".into(), "/nonexistent.safetensors".into()],
        vec![
            "render".into(),
            "--checkpoint".into(),
            "/nonexistent.safetensors".into(),
            "--input".into(),
            a.to_str().unwrap().into(),
        ],
    ] {
        let o = Command::new(exe).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("sincut: error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// A full disk while checkpointing: the error is one line, the previous checkpoint stays
/// intact and no temporary file is left. Needs a tmpfs mount (root, as here and in CI).
#[test]
fn disk_full_keeps_the_previous_checkpoint() {
    let dir = tmpdir("diskfull");
    let (a, b) = pair(&dir);
    // Size of one checkpoint of this model.
    let probe = dir.join("probe");
    let mut o = options(&a, &b, &probe, 1);
    o.run.snapshot_every = 0;
    o.no_final_render = true;
    fit(&o).unwrap();
    let ck_len = std::fs::metadata(checkpoint_path(&probe)).unwrap().len();
    let mnt = dir.join("tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    // Room for one checkpoint and the small files, not for a second copy beside it.
    let size_kib = (ck_len * 3 / 2) / 1024 + 8;
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size_kib}k"),
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let out = mnt.join("run");
    let mut o = options(&a, &b, &out, 5);
    o.run.snapshot_every = 0;
    o.run.checkpoint_every = 1;
    o.no_final_render = true;
    let result = fit(&o);
    let entries: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let ck = load_checkpoint(checkpoint_path(&out));
    Command::new("umount").arg(&mnt).status().unwrap();
    let err = result.unwrap_err().to_string();
    assert!(err.contains("checkpoint") && !err.contains('\n'), "{err}");
    assert_eq!(
        ck.unwrap().iteration,
        0,
        "the previous checkpoint must stay intact"
    );
    assert!(
        entries.iter().all(|e| !e.contains("tmp")),
        "temporary file left behind: {entries:?}"
    );
}

/// The tiny model's options on the command line (as `common::tiny_model`, CPU, quiet).
fn tiny_cli() -> Vec<String> {
    [
        "--crop",
        "32",
        "--batch",
        "2",
        "--ngf",
        "1",
        "--ndf",
        "1",
        "--d-window",
        "16",
        "--device",
        "cpu",
        "-q",
    ]
    .map(String::from)
    .to_vec()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Runs the binary; (exit code, stderr). Asserts the no-panic, one-line error contract.
fn sincut_cli(args: &[String], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sincut"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    if !o.status.success() {
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("sincut: error: "), "{args:?}: {err}");
    }
    (o.status.code(), err)
}

/// Issue 13, items 2 and 6: `--tiles`, rates and weights are checked before anything is
/// trained or written (fit once trained the whole run and then panicked on --tiles 0).
#[test]
fn cli_fit_options_are_checked_before_anything_is_written() {
    let dir = tmpdir("cliopts");
    let (a, b) = pair(&dir);
    for (i, (flag, needle)) in [
        ("--tiles=0", "--tiles 0 is too small"),
        ("--tiles=1", "--tiles 1 is too small"),
        ("--lr=nan", "lr NaN"),
        ("--lr=-0.5", "lr -0.5"),
        ("--lambda-nce=-1", "lambda_NCE -1"),
        ("--lambda-gan=inf", "lambda_GAN inf"),
        ("--nce-patches=0", "NCE patches 0 must lie in 1..="),
        (
            "--nce-patches=100000",
            "NCE patches 100000 must lie in 1..=",
        ),
        ("--checkpoint-every=0", "--checkpoint-every"),
        ("--ema-half-life=-1", "--ema-half-life -1 must"),
        ("--ema-half-life=nan", "--ema-half-life NaN must"),
        ("--ema-half-life=inf", "--ema-half-life inf must"),
        ("--ema-rampup=0", "--ema-rampup 0 must lie in (0, 1]"),
        ("--ema-rampup=1.5", "--ema-rampup 1.5 must"),
        ("--ema-rampup=-0.1", "--ema-rampup -0.1 must"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.join(format!("run{i}"));
        let mut args = vec!["fit".into(), s(&a), s(&b), "--out".into(), s(&out)];
        args.extend(tiny_cli());
        args.extend(["--iters".into(), "2".into(), flag.into()]);
        let (code, err) = sincut_cli(&args, &[]);
        assert_eq!(code, Some(2), "{flag}: {err}");
        assert!(err.contains(needle), "{flag}: {err}");
        assert!(!out.exists(), "{flag}: a run directory was created");
    }
}

/// `--nce-patches`: the run trains with several PatchNCE positions per crop and layer and
/// records the count in run.json (as the official option's name), where resume reads it.
#[test]
fn cli_nce_patches_train_and_are_recorded() {
    let dir = tmpdir("clipatches");
    let (a, b) = pair(&dir);
    let out = dir.join("run");
    let mut args = vec!["fit".into(), s(&a), s(&b), "--out".into(), s(&out)];
    args.extend(tiny_cli());
    args.extend(["--iters", "2", "--nce-patches", "7", "--no-render"].map(String::from));
    let (code, err) = sincut_cli(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["model"]["num_patches"], 7, "{run}");
    let (losses, _) = metrics_lines(&out);
    assert_eq!(losses.len(), 2);
    assert!(
        losses
            .iter()
            .all(|l| l["nce"].as_f64().is_some_and(f64::is_finite)),
        "{losses:?}"
    );
}

/// Issue 13, items 2 and 6: on resume, lr, iterations, intervals and tiles may change (the
/// run uses the new values and run.json records each change with its iteration); the model,
/// the pictures and the seed may not, and such a resume is refused without touching the run.
#[test]
fn cli_resume_uses_changed_options_and_refuses_fixed_ones() {
    let dir = tmpdir("cliresume");
    let (a, b) = pair(&dir);
    let out = dir.join("run");
    let mut o = options(&a, &b, &out, 4);
    o.stop_at = Some(2);
    o.no_final_render = true;
    assert_eq!(fit(&o).unwrap(), FitOutcome::Stopped { iteration: 2 });
    let run_json = || std::fs::read_to_string(out.join("run.json")).unwrap();
    let before = run_json();
    let resume = |extra: &[&str]| {
        let mut args = vec!["fit".to_string(), "--resume".into(), s(&out)];
        args.extend(["--device", "cpu", "-q"].map(String::from));
        args.extend(extra.iter().map(|x| x.to_string()));
        sincut_cli(&args, &[])
    };
    let (sa, sb) = (s(&a), s(&b));
    for (extra, needle) in [
        (vec!["--crop", "64"], "--crop 64 differs"),
        (vec!["--ngf", "2"], "--ngf 2 differs"),
        (vec!["--seed", "5"], "--seed 5 differs"),
        (vec!["--lambda-nce", "2"], "--lambda-nce 2 differs"),
        (vec!["--nce-patches", "3"], "--nce-patches 3 differs"),
        (vec!["--preset", "quick"], "--preset quick differs"),
        (vec![&sb, &sa], "is not the run's picture"),
        (vec!["--iters", "1"], "fewer than the 2 iterations"),
        (vec!["--tiles", "0"], "--tiles 0 is too small"),
        (vec!["--lr", "nan"], "lr NaN"),
        (
            vec!["--ema-half-life", "100"],
            "--ema-half-life 100 differs",
        ),
        (vec!["--ema-rampup", "0.5"], "--ema-rampup 0.5 differs"),
    ] {
        let (code, err) = resume(&extra);
        assert_eq!(code, Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert_eq!(run_json(), before, "{extra:?} changed run.json");
    }
    // The same pictures and geometry given again are fine; lr, iters and tiles change.
    let (code, err) = resume(&[
        &s(&a),
        &s(&b),
        "--crop",
        "32",
        "--lr",
        "0.001",
        "--iters",
        "6",
        "--tiles",
        "32",
        "--snapshot-every",
        "0",
        "--no-ema",
        "--ema-rampup",
        "1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (losses, _) = metrics_lines(&out);
    let lrs: Vec<(u64, f64)> = losses
        .iter()
        .map(|v| (v["iter"].as_u64().unwrap(), v["lr"].as_f64().unwrap()))
        .collect();
    let want: Vec<(u64, f64)> = (0..6)
        .map(|i| {
            let lr = if i < 2 {
                sincut::fit::lr_at(0.002, i, 4)
            } else {
                sincut::fit::lr_at(0.001, i, 6)
            };
            (i, lr)
        })
        .collect();
    assert_eq!(
        lrs, want,
        "the resumed run must use the new lr and iterations"
    );
    let run: serde_json::Value = serde_json::from_str(&run_json()).unwrap();
    assert_eq!(run["model"]["lr"], 0.001);
    assert_eq!(
        (run["iters"].as_u64(), run["tiles"].as_u64()),
        (Some(6), Some(32))
    );
    let changes: Vec<(u64, &str)> = run["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["iter"].as_u64().unwrap(), c["option"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            (2, "lr"),
            (2, "iters"),
            (2, "snapshot_every"),
            (2, "tiles"),
            (2, "no_ema")
        ]
    );
    assert_eq!(run["no_ema"], true);
    assert_eq!(run["changes"][0]["from"], 0.002);
    assert_eq!(load_checkpoint(checkpoint_path(&out)).unwrap().iteration, 6);
    assert_eq!(
        load_rgb(&out.join("result.png")).unwrap().dim(),
        (3, 70, 90)
    );
}

/// Issue 13, item 13: SINCUT_THREADS / SINCUT_GEMM / SINCUT_BF16_TILE / SINCUT_BF16_CONV values that mean nothing
/// are an error (they used to be ignored silently).
#[test]
fn cli_invalid_thread_and_gemm_settings_are_refused() {
    let dir = tmpdir("env");
    let (a, b) = pair(&dir);
    let out = dir.join("run");
    let mut o = options(&a, &b, &out, 1);
    o.no_final_render = true;
    fit(&o).unwrap();
    let info = vec!["info".to_string(), s(&out)];
    for (k, v) in [
        ("SINCUT_THREADS", "abc"),
        ("SINCUT_THREADS", "0"),
        ("SINCUT_GEMM", "fast"),
        ("SINCUT_BF16_TILE", "128"),
        ("SINCUT_BF16_CONV", "im2col"),
    ] {
        let (code, err) = sincut_cli(&info, &[(k, v)]);
        assert_eq!(code, Some(2), "{k}={v}: {err}");
        assert!(err.contains(&format!("{k}=\"{v}\"")), "{k}={v}: {err}");
    }
    for (k, v) in [
        ("SINCUT_THREADS", "1"),
        ("SINCUT_GEMM", "portable"),
        ("SINCUT_BF16_TILE", "80"),
        ("SINCUT_BF16_CONV", "gather"),
    ] {
        assert_eq!(sincut_cli(&info, &[(k, v)]).0, Some(0), "{k}={v}");
    }
}

/// Waits for `child` at most `secs` seconds (killing it then): its exit code and stderr.
fn wait_for(mut child: std::process::Child, secs: u64) -> (Option<i32>, String) {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            return (status.code(), err);
        }
        if t0.elapsed().as_secs() > secs {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `sincut fit` of the tiny model on a and b into `out` (stderr piped), with `extra` options.
fn spawn_fit(a: &Path, b: &Path, out: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sincut"))
        .args(["fit".to_string(), s(a), s(b), "--out".into(), s(out)])
        .args(tiny_cli())
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Issue 13, item 5: one process at a time writes a run directory. While a fit runs, a second
/// fit, a resume and a report of its directory are refused naming the holder; of two fits
/// started at once into one directory exactly one runs.
#[test]
fn cli_one_process_at_a_time_per_run_directory() {
    let dir = tmpdir("lock");
    let (a, b) = pair(&dir);
    let out = dir.join("run");
    let long = ["--iters", "100000", "--checkpoint-every", "100000"];
    // Killed if the test fails before it ends (no run left training for hours).
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if self.0 != 0 {
                let _ = Command::new("kill").arg(self.0.to_string()).status();
            }
        }
    }
    let holder = spawn_fit(&a, &b, &out, &long);
    let mut kill = KillOnDrop(holder.id());
    let metrics = out.join("metrics.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&metrics).map_or(true, |m| m.len() == 0) {
        assert!(t0.elapsed().as_secs() < 120, "fit did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let busy = format!("in use by sincut process {}", holder.id());
    let exe = env!("CARGO_BIN_EXE_sincut");
    let others = [
        spawn_fit(&a, &b, &out, &["--iters", "3"]),
        Command::new(exe)
            .args([
                "fit",
                "--resume",
                &s(&out),
                "--iters",
                "3",
                "--device",
                "cpu",
                "-q",
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        Command::new(exe)
            .args(["report", &s(&out)])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ];
    for (i, child) in others.into_iter().enumerate() {
        let (code, err) = wait_for(child, 60);
        assert_eq!(code, Some(2), "case {i}: {err}");
        assert!(err.contains(&busy), "case {i}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "case {i}: {err}");
    }
    Command::new("kill")
        .args(["-INT", &holder.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(wait_for(holder, 60).0, Some(130));
    kill.0 = 0; // reaped: its pid may be reused
    assert!(!out.join(".sincut.lock").exists(), "lock file left behind");

    // Two fits started at once into one new directory: one runs, the other is refused.
    let twin = dir.join("twin");
    let short = ["--iters", "8", "--no-render"];
    let (x, y) = (
        spawn_fit(&a, &b, &twin, &short),
        spawn_fit(&a, &b, &twin, &short),
    );
    let results = [wait_for(x, 120), wait_for(y, 120)];
    let ok = results.iter().filter(|(c, _)| *c == Some(0)).count();
    assert_eq!(ok, 1, "{results:?}");
    for (code, err) in &results {
        assert!(
            *code == Some(0)
                || err.contains("in use by sincut process")
                || err.contains("already holds a run"),
            "{err}"
        );
    }
    let (losses, _) = metrics_lines(&twin);
    assert_eq!(losses.len(), 8, "metrics of two runs interleaved");
}

/// Issue 13, items 5 and 7: a lock file and temporary checkpoint files left by a process that
/// was killed are taken over and removed by the next run; a live process's file is kept.
#[test]
fn cli_stale_lock_and_temporary_files_are_taken_over() {
    let dir = tmpdir("stale");
    let (a, b) = pair(&dir);
    let out = dir.join("run");
    let mut o = options(&a, &b, &out, 3);
    o.stop_at = Some(2);
    o.no_final_render = true;
    fit(&o).unwrap();
    // A pid that certainly belongs to no process: a child that has ended and been reaped.
    let mut done = Command::new("true").spawn().unwrap();
    let dead = done.id();
    done.wait().unwrap();
    std::fs::write(out.join(".sincut.lock"), format!("{dead}\n")).unwrap();
    let stale = out.join(format!(".checkpoint.safetensors.tmp.{dead}"));
    std::fs::write(&stale, vec![0u8; 4096]).unwrap();
    let stale_snap = out.join(format!("snapshots/.iter0000003-preview.png.tmp.{dead}"));
    std::fs::create_dir_all(stale_snap.parent().unwrap()).unwrap();
    std::fs::write(&stale_snap, b"partial").unwrap();
    let live = out.join(format!(
        ".checkpoint.safetensors.tmp.{}",
        std::process::id()
    ));
    std::fs::write(&live, b"being written").unwrap();
    let args = [
        "fit",
        "--resume",
        &s(&out),
        "--device",
        "cpu",
        "-q",
        "--no-render",
    ];
    let (code, err) = sincut_cli(&args.map(String::from), &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(load_checkpoint(checkpoint_path(&out)).unwrap().iteration, 3);
    assert!(!stale.exists(), "stale temporary checkpoint left behind");
    assert!(!stale_snap.exists(), "stale temporary snapshot left behind");
    assert!(live.exists(), "a live process's temporary file was removed");
    assert!(!out.join(".sincut.lock").exists(), "lock file left behind");
}

/// Issue 13, item 1: a picture path that is not UTF-8 is stored losslessly in run.json (it
/// used to panic and leave an empty run folder); resume, info and report read it back.
#[cfg(unix)]
#[test]
fn cli_non_utf8_picture_paths_are_kept_losslessly() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tmpdir("nonutf8");
    let (a, b) = pair(&dir);
    let odd = dir.join(OsStr::from_bytes(b"a\xff.png"));
    std::fs::copy(&a, &odd).unwrap();
    let out = dir.join("run");
    let exe = env!("CARGO_BIN_EXE_sincut");
    let o = Command::new(exe)
        .arg("fit")
        .arg(&odd)
        .arg(&b)
        .arg("--out")
        .arg(&out)
        .args(tiny_cli())
        .args(["--iters", "2", "--tiles", "32"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let run = sincut::run::load_run_config(&out).unwrap();
    assert_eq!(run.source, std::fs::canonicalize(&odd).unwrap());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert!(
        json["source"]["unix_bytes"].is_array(),
        "{}",
        json["source"]
    );
    assert_eq!(
        load_rgb(&out.join("result.png")).unwrap().dim(),
        (3, 70, 90)
    );
    for args in [
        vec!["info".to_string(), s(&out)],
        vec!["report".to_string(), s(&out)],
        vec![
            "fit".into(),
            "--resume".into(),
            s(&out),
            "--iters".into(),
            "3".into(),
        ]
        .into_iter()
        .chain(["--device", "cpu", "-q", "--no-render"].map(String::from))
        .collect(),
    ] {
        let (code, err) = sincut_cli(&args, &[]);
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        !report.contains("picture not available"),
        "the report lost the source"
    );
}

/// Issue 13, item 8: the output of `render` (and of fit's final render) is checked before any
/// work: format, 16 bits, a directory or device in the way. The checkpoint here does not even
/// exist, so an error about it means the output was not checked first. A legal 250-byte name
/// works (its temporary name used to pass 255 bytes).
#[cfg(unix)]
#[test]
fn cli_output_is_checked_before_any_work() {
    let dir = tmpdir("output");
    let (a, b) = pair(&dir);
    let folder = dir.join("folder.png");
    std::fs::create_dir_all(&folder).unwrap();
    // /dev/full under a picture name: a rename over it would replace the device.
    std::os::unix::fs::symlink("/dev/full", dir.join("full.png")).unwrap();
    let render = |output: &Path, extra: &[&str]| {
        let mut args = vec!["render".to_string(), "--checkpoint".into()];
        args.extend([s(&dir.join("missing.safetensors")), "--input".into(), s(&a)]);
        args.extend([
            "--output".into(),
            s(output),
            "--device".into(),
            "cpu".into(),
        ]);
        args.extend(extra.iter().map(|x| x.to_string()));
        sincut_cli(&args, &[])
    };
    for (output, extra, needle) in [
        (
            dir.join("x.bmp"),
            vec![],
            "unknown picture extension \"bmp\"",
        ),
        (
            dir.join("x.webp"),
            vec![],
            "unknown picture extension \"webp\"",
        ),
        (folder.clone(), vec![], "is a directory"),
        (dir.join("full.png"), vec![], "is not a regular file"),
        (dir.join("x.jpg"), vec!["--sixteen-bit"], "16 bits"),
        (
            dir.join(format!("{}.png", "n".repeat(260))),
            vec![],
            "at most 255",
        ),
    ] {
        let (code, err) = render(&output, &extra);
        assert_eq!(code, Some(2), "{}: {err}", output.display());
        assert!(err.contains(needle), "{}: {err}", output.display());
    }
    // A device is never replaced by a rename (as root /dev is writable).
    let (_, err) = render(Path::new("/dev/full"), &[]);
    assert!(err.contains("unknown picture extension"), "{err}");

    // fit: a directory where result.png goes is refused before training.
    let out = dir.join("run");
    std::fs::create_dir_all(out.join("result.png")).unwrap();
    let mut args = vec!["fit".into(), s(&a), s(&b), "--out".into(), s(&out)];
    args.extend(tiny_cli());
    args.extend(["--iters".into(), "2".into()]);
    let (code, err) = sincut_cli(&args, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("result.png: is a directory"), "{err}");
    assert!(
        !checkpoint_path(&out).exists(),
        "trained before checking the output"
    );

    // A 250-byte name renders.
    let run = dir.join("ok");
    let mut o = options(&a, &b, &run, 1);
    o.no_final_render = true;
    fit(&o).unwrap();
    let long = dir.join(format!("{}.png", "l".repeat(246)));
    let args = [
        "render",
        &s(&run),
        "--output",
        &s(&long),
        "--tiles",
        "32",
        "--device",
        "cpu",
        "-q",
    ];
    let (code, err) = sincut_cli(&args.map(String::from), &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(load_rgb(&long).unwrap().dim(), (3, 70, 90));
}

/// Issue 13, item 9: Ctrl-C during fit's final render stops it (exit 130, no result.png, the
/// last checkpoint intact) instead of rendering to the end and exiting 0; a resume renders.
#[test]
fn cli_interrupt_during_the_final_render_exits_130() {
    use std::io::BufRead;
    let dir = tmpdir("sigint-render");
    let (_, b) = pair(&dir);
    // A large source in small tiles: thousands of tiles, seconds of rendering at least.
    let big = dir.join("big.png");
    save_rgb(&big, &picture(1600, 1200, 0.4), &SaveOptions::default()).unwrap();
    let out = dir.join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sincut"))
        .args(["fit".to_string(), s(&big), s(&b), "--out".into(), s(&out)])
        .args(tiny_cli().into_iter().filter(|a| a != "-q"))
        .args([
            "--iters",
            "2",
            "--tiles",
            "16",
            "--snapshot-every",
            "0",
            "--eval-every",
            "0",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    // The hook: fit announces the render once training is over.
    for line in lines.by_ref() {
        if line
            .unwrap()
            .contains("rendering the full-resolution result")
        {
            break;
        }
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("stopped at iteration 2")),
        "{rest:?}"
    );
    assert!(!out.join("result.png").exists(), "rendered to the end");
    assert_eq!(load_checkpoint(checkpoint_path(&out)).unwrap().iteration, 2);
}

/// Issue 13, item 10: a checkpoint whose weights are not finite is refused where it is loaded
/// (render, info, resume) naming the tensor; it used to render an all-black picture silently.
#[test]
fn non_finite_weights_are_refused_on_load() {
    let dir = tmpdir("nanweights");
    let (a, b) = pair(&dir);
    let run = dir.join("run");
    let mut o = options(&a, &b, &run, 1);
    o.no_final_render = true;
    fit(&o).unwrap();
    let mut ck = load_checkpoint(checkpoint_path(&run)).unwrap();
    let name = ck
        .params
        .keys()
        .find(|k| k.starts_with("G."))
        .unwrap()
        .clone();
    ck.params.get_mut(&name).unwrap()[[0, 0, 0, 0]] = f32::NAN;
    sincut::io::save_checkpoint(checkpoint_path(&run), &ck).unwrap();
    let needle = format!("tensor 'param.{name}' holds a non-finite value (NaN)");
    let render = vec![
        "render".to_string(),
        s(&run),
        "--output".into(),
        s(&dir.join("black.png")),
        "--device".into(),
        "cpu".into(),
    ];
    let info = vec!["info".to_string(), s(&run)];
    let resume = [
        "fit",
        "--resume",
        &s(&run),
        "--iters",
        "2",
        "--device",
        "cpu",
        "-q",
    ]
    .map(String::from)
    .to_vec();
    for args in [&render, &info, &resume] {
        let (code, err) = sincut_cli(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(&needle), "{args:?}: {err}");
    }
    assert!(!dir.join("black.png").exists());
    // The same for an infinite value in the moving average of G.
    ck.params.get_mut(&name).unwrap()[[0, 0, 0, 0]] = 0.0;
    ck.ema.as_mut().unwrap().get_mut(&name).unwrap()[[0, 0, 0, 0]] = f32::INFINITY;
    sincut::io::save_checkpoint(checkpoint_path(&run), &ck).unwrap();
    let needle = format!("tensor 'ema.{name}' holds a non-finite value (inf)");
    for args in [&render, &info, &resume] {
        let (code, err) = sincut_cli(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(&needle), "{args:?}: {err}");
    }
    assert!(!dir.join("black.png").exists());
}

/// Issue 13, item 13: a checkpoint with a foreign `format` value says which; `render RUN
/// --checkpoint OTHER` (one run's source and seed with another's weights) is refused.
#[test]
fn foreign_checkpoints_and_mixed_runs_are_refused() {
    let dir = tmpdir("foreign");
    let (a, b) = pair(&dir);
    let foreign = dir.join("foreign.safetensors");
    let meta = [("format".to_string(), "other-tool".to_string())].into();
    let tensors = [("w".to_string(), ndarray::ArrayD::<f32>::zeros(vec![2]))].into();
    sincut::io::save_tensors(&foreign, &tensors, Some(&meta)).unwrap();
    let (code, err) = sincut_cli(&["info".to_string(), s(&foreign)], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("metadata 'format' is \"other-tool\", not \"sincut-checkpoint\""),
        "{err}"
    );

    let (one, two) = (dir.join("one"), dir.join("two"));
    for run in [&one, &two] {
        let mut o = options(&a, &b, run, 1);
        o.no_final_render = true;
        fit(&o).unwrap();
    }
    let render = |ck: &Path| {
        let args = ["render", &s(&one), "--checkpoint", &s(ck), "--output"];
        let mut args: Vec<String> = args.map(String::from).to_vec();
        args.extend([s(&dir.join("mix.png")), "--tiles".into(), "32".into()]);
        args.extend(["--device", "cpu", "-q"].map(String::from));
        sincut_cli(&args, &[])
    };
    let (code, err) = render(&checkpoint_path(&two));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not the checkpoint of run"), "{err}");
    assert!(!dir.join("mix.png").exists());
    // The run's own checkpoint named explicitly is fine.
    let (code, err) = render(&checkpoint_path(&one));
    assert_eq!(code, Some(0), "{err}");
}

/// Issue 13, item 11: pictures and checkpoints are read only from regular files: a FIFO named
/// x.png used to block forever, /dev/zero to be read until memory ran out.
#[cfg(unix)]
#[test]
fn cli_special_files_are_refused_as_input() {
    let dir = tmpdir("special");
    let (a, b) = pair(&dir);
    let fifo = dir.join("x.png");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo_ck = dir.join("x.safetensors");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo_ck)
            .status()
            .unwrap()
            .success()
    );
    let run = |args: Vec<String>| {
        let child = Command::new(env!("CARGO_BIN_EXE_sincut"))
            .args(&args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (code, err) = wait_for(child, 60);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("is not a regular file"), "{args:?}: {err}");
    };
    let out = dir.join("run");
    let mut fit_args = vec!["fit".into(), s(&fifo), s(&b), "--out".into(), s(&out)];
    fit_args.extend(tiny_cli());
    run(fit_args);
    assert!(!out.exists());
    let render = |ck: &str, input: &str| {
        ["render", "--checkpoint", ck, "--input", input, "--output"]
            .map(String::from)
            .into_iter()
            .chain([s(&dir.join("o.png")), "--device".into(), "cpu".into()])
            .collect::<Vec<String>>()
    };
    run(render(&s(&fifo_ck), &s(&a)));
    run(render("/dev/zero", &s(&a)));
    run(["info", "/dev/zero"].map(String::from).to_vec());
    // A good checkpoint with /dev/zero as the picture.
    let ok = dir.join("ok");
    let mut o = options(&a, &b, &ok, 1);
    o.no_final_render = true;
    fit(&o).unwrap();
    run(render(&s(&checkpoint_path(&ok)), "/dev/zero"));
}

/// Issue 13, item 3: absurd model sizes are refused before anything is allocated or written,
/// with the estimate and the machine's memory (they aborted in the allocator, or panicked on
/// an overflow for --batch 2^64-1).
#[test]
fn cli_absurd_model_sizes_are_refused_with_the_memory_figures() {
    let dir = tmpdir("absurd");
    let (a, b) = pair(&dir);
    for (i, flag) in [
        "--batch=18446744073709551615",
        "--batch=1000000",
        "--ngf=100000",
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.join(format!("run{i}"));
        let mut args = vec!["fit".into(), s(&a), s(&b), "--out".into(), s(&out)];
        let small = ["--crop", "32", "--d-window", "16", "--device", "cpu", "-q"];
        args.extend(small.map(String::from));
        args.extend(["--iters".into(), "1".into(), flag.into()]);
        let (code, err) = sincut_cli(&args, &[]);
        assert_eq!(code, Some(2), "{flag}: {err}");
        assert!(
            err.starts_with("sincut: error: one training iteration at batch")
                && err.contains("GiB; this machine has"),
            "{flag}: {err}"
        );
        assert!(!out.exists(), "{flag}: a run directory was created");
    }
}

/// Issue 13, item 12: an incomplete libcuda (a stub built here exporting only `cuInit`, and
/// one with every entry point but `cuDevicePrimaryCtxRetain`) made cudarc panic ("Missing
/// symbol ..."), even under `--device auto`. Now `auto` falls back to the CPU with one line and
/// `cuda` fails with one line, without panic text.
#[test]
fn cli_incomplete_libcuda_falls_back_or_fails_in_one_line() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if Command::new(&cc).arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no C compiler ({cc})"
        );
        eprintln!("skipped: no C compiler ({cc})");
        return;
    }
    let dir = tmpdir("stubcuda");
    let (a, b) = pair(&dir);
    // Every entry point sincut checks for, minus cuDevicePrimaryCtxRetain for the second stub.
    let all: Vec<&str> = sincut::cuda::DRIVER_SYMBOLS
        .iter()
        .copied()
        .filter(|s| *s != "cuDevicePrimaryCtxRetain")
        .collect();
    // Every stub function succeeds and reports one device, so cudarc goes on to the next call.
    for (name, symbols) in [("only-init", &all[..1]), ("no-ctx-retain", &all[..])] {
        let lib_dir = dir.join(name);
        std::fs::create_dir_all(&lib_dir).unwrap();
        let src: String = symbols
            .iter()
            .map(|s| format!("int {s}(int *p) {{ if (p) *p = 1; return 0; }}\n"))
            .collect();
        std::fs::write(lib_dir.join("stub.c"), src).unwrap();
        let built = Command::new(&cc)
            .args(["-shared", "-fPIC", "-w", "-o"])
            .arg(lib_dir.join("libcuda.so.1"))
            .arg(lib_dir.join("stub.c"))
            .status()
            .unwrap();
        assert!(built.success());
        std::os::unix::fs::symlink("libcuda.so.1", lib_dir.join("libcuda.so")).unwrap();
        let env = [("LD_LIBRARY_PATH", lib_dir.to_str().unwrap())];
        let fit_args = |device: &str, out: &str| -> Vec<String> {
            let mut v = vec![
                "fit".into(),
                s(&a),
                s(&b),
                "--out".into(),
                s(&dir.join(out)),
                "--iters".into(),
                "1".into(),
                "--no-render".into(),
            ];
            v.extend(tiny_cli());
            v.retain(|x| x != "cpu" && x != "--device");
            v.extend(["--device".into(), device.into()]);
            v
        };
        let (code, err) = sincut_cli(&fit_args("cuda", &format!("{name}-cuda")), &env);
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(
            err.contains("incomplete or not NVIDIA's driver"),
            "{name}: {err}"
        );
        let (code, err) = sincut_cli(&fit_args("auto", &format!("{name}-auto")), &env);
        // Quiet (-q): at most the one fallback line, and the run trained on the CPU.
        assert_eq!(code, Some(0), "{name}: {err}");
        assert!(err.trim_end().lines().count() <= 1, "{name}: {err}");
        assert!(
            dir.join(format!("{name}-auto/checkpoint.safetensors"))
                .is_file()
        );
        // The doctor reports it (a failure, on stdout like the rest of its report).
        let o = Command::new(env!("CARGO_BIN_EXE_sincut"))
            .arg("doctor")
            .envs(env)
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            out.contains("incomplete or not NVIDIA's driver"),
            "{name}: {out}"
        );
    }
}

/// Issue 14: `--precision bf16` trains on the CPU with bf16 matrix operands (recorded in
/// run.json as "bf16"; the parameters come out different from the f32 run's and finite), `auto`
/// is f32 (bit-identical to `f32`), and bf16 with a GPU device uses the GPU's bf16 kernels.
#[test]
fn cli_fit_precision_is_used_and_recorded() {
    let dir = tmpdir("precision");
    let (a, b) = pair(&dir);
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = vec!["fit".into(), s(&a), s(&b), "--out".into(), s(&out)];
        args.extend(tiny_cli());
        args.extend(["--iters", "3", "--no-render"].map(String::from));
        args.extend(extra.iter().map(|v| v.to_string()));
        let (code, err) = sincut_cli(&args, &[]);
        (out, code, err)
    };
    let params = |out: &Path| {
        load_checkpoint(out.join("checkpoint.safetensors"))
            .unwrap()
            .params
    };
    let precision = |out: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
        v["precision"].as_str().unwrap().to_string()
    };
    let (f32_run, code, err) = run("f32", &["--precision", "f32"]);
    assert_eq!(code, Some(0), "{err}");
    let (auto_run, code, err) = run("auto", &[]);
    assert_eq!(code, Some(0), "{err}");
    let (bf16_run, code, err) = run("bf16", &["--precision", "bf16"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(precision(&f32_run), "f32");
    assert_eq!(precision(&auto_run), "f32");
    assert_eq!(precision(&bf16_run), "bf16");
    let (p32, pauto, p16) = (params(&f32_run), params(&auto_run), params(&bf16_run));
    assert_eq!(p32, pauto, "auto is f32");
    let differ = p32.iter().filter(|(k, v)| p16[*k] != **v).count();
    assert!(
        differ > p32.len() / 2,
        "bf16 changed only {differ} of {} tensors",
        p32.len()
    );
    assert!(p16.values().all(|v| v.iter().all(|x| x.is_finite())));
    // Resume keeps the run's precision; one given again is recorded as a change.
    let resume = |iters: &str, extra: &[&str]| {
        let mut args = vec!["fit".into(), "--resume".into(), s(&bf16_run)];
        args.extend(["--iters", iters, "--device", "cpu", "-q"].map(String::from));
        args.extend(extra.iter().map(|v| v.to_string()));
        sincut_cli(&args, &[])
    };
    let run_json = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(bf16_run.join("run.json")).unwrap()).unwrap()
    };
    let (code, err) = resume("4", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(run_json()["precision"], "bf16");
    assert!(
        run_json()
            .get("changes")
            .is_none_or(|c| !c.to_string().contains("precision"))
    );
    let (code, err) = resume("5", &["--precision", "f32"]);
    assert_eq!(code, Some(0), "{err}");
    let v = run_json();
    assert_eq!(v["precision"], "f32");
    let change = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["option"] == "precision")
        .unwrap_or_else(|| panic!("no precision change in {v}"));
    assert_eq!(
        (
            change["iter"].as_u64(),
            change["from"].as_str(),
            change["to"].as_str()
        ),
        (Some(4), Some("bf16"), Some("f32"))
    );
    // bf16 on a GPU device: the CUDA backend's tensor-core convolutions where an sm_80+ GPU
    // opens; without one `cuda` fails in one line before anything is written and `auto` trains
    // on the CPU, bf16 either way.
    let gpu = sincut::cuda::Gpu::open(0)
        .is_ok_and(|g| sincut::cuda::launch::conv2d::check_bf16(&g).is_ok());
    for device in ["cuda", "auto"] {
        let out = dir.join(format!("bf16-{device}"));
        let mut args = vec!["fit".into(), s(&a), s(&b), "--out".into(), s(&out)];
        let mut tiny = tiny_cli();
        let at = tiny.iter().position(|v| v == "--device").unwrap();
        tiny[at + 1] = device.to_string();
        args.extend(tiny);
        args.extend(["--precision", "bf16", "--iters", "1", "--no-render"].map(String::from));
        let (code, err) = sincut_cli(&args, &[]);
        if device == "cuda" && !gpu {
            assert_eq!(code, Some(2), "{device}: {err}");
            assert!(err.contains("--device cuda: "), "{err}");
            assert!(!out.exists());
        } else {
            assert_eq!(code, Some(0), "{device}: {err}");
            assert_eq!(precision(&out), "bf16");
        }
    }
}

/// Issue 15, item 4: `--time` sets the count from the measured speed while the lr is constant,
/// fixes it where the decay begins (so the schedule still ends at 0), records it in run.json,
/// and a resume keeps it; `--iters` given on resume replaces an estimate still open.
#[test]
fn fit_by_time_fixes_the_count_where_the_lr_decay_begins() {
    use sincut::fit::lr_at;
    use sincut::run::{TimeBudget, load_run_config};
    let dir = tmpdir("bytime");
    let (a, b) = pair(&dir);
    let budget = |seconds| {
        Some(TimeBudget {
            seconds,
            s_per_iter: None,
            fixed_at: None,
        })
    };

    // A budget of a few seconds: whatever this machine's speed, the count is final at its
    // half, every iteration ran at the lr of the final schedule, and the run did them all.
    let out = dir.join("run");
    let mut o = options(&a, &b, &out, 1);
    o.run.time = budget(2.0);
    o.no_final_render = true;
    let FitOutcome::Finished { iteration, .. } = fit(&o).unwrap() else {
        panic!("stopped")
    };
    let run = load_run_config(&out).unwrap();
    let t = run.time.clone().unwrap();
    let (fixed_at, s_per_iter) = (t.fixed_at.unwrap(), t.s_per_iter.unwrap());
    assert_eq!(iteration, run.iters);
    assert_eq!(fixed_at, run.iters / 2, "{t:?}");
    assert_eq!(run.iters, t.iters_for(s_per_iter, fixed_at - 1), "{t:?}");
    let (losses, _) = metrics_lines(&out);
    assert_eq!(losses.len() as u64, run.iters);
    for l in &losses {
        let i = l["iter"].as_u64().unwrap();
        let (got, want) = (l["lr"].as_f64().unwrap(), lr_at(run.model.lr, i, run.iters));
        // serde_json's default float parsing may miss the last bit.
        assert!(
            (got - want).abs() <= 1e-15 * want,
            "lr at iteration {i}: {got} vs {want}"
        );
    }
    println!(
        "2 s budget: {} iterations at {s_per_iter:.3} s/iteration",
        run.iters
    );

    // Stopped after the count became final: the resume keeps it.
    let out = dir.join("kept");
    let mut o = options(&a, &b, &out, 1);
    o.run.time = budget(1e-9); // final at once: 2 iterations
    o.no_final_render = true;
    o.stop_at = Some(1);
    assert_eq!(fit(&o).unwrap(), FitOutcome::Stopped { iteration: 1 });
    let stopped = load_run_config(&out).unwrap();
    assert_eq!(
        (stopped.iters, stopped.time.unwrap().fixed_at),
        (2, Some(1))
    );
    o.stop_at = None;
    o.resume = true;
    let done = fit(&o).unwrap();
    assert!(
        matches!(done, FitOutcome::Finished { iteration: 2, .. }),
        "{done:?}"
    );

    // Stopped while the count is still an estimate (a budget far away): run.json holds the
    // estimate; --iters on resume fixes the count there.
    let out = dir.join("open");
    let mut o = options(&a, &b, &out, 1);
    o.run.time = budget(1e7);
    o.no_final_render = true;
    o.stop_at = Some(3);
    assert_eq!(fit(&o).unwrap(), FitOutcome::Stopped { iteration: 3 });
    let open = load_run_config(&out).unwrap();
    assert_eq!(open.time.as_ref().unwrap().fixed_at, None);
    assert!(open.iters > 1000, "estimate {}", open.iters);
    o.stop_at = None;
    o.resume = true;
    o.resume_with.iters = Some(5);
    let done = fit(&o).unwrap();
    assert!(
        matches!(done, FitOutcome::Finished { iteration: 5, .. }),
        "{done:?}"
    );
    let run = load_run_config(&out).unwrap();
    assert_eq!(run.time.unwrap().fixed_at, Some(3));
    let (losses, _) = metrics_lines(&out);
    assert_eq!(losses.len(), 5);
}

/// `--time` takes a duration with units, and not together with `--iters`.
#[test]
fn cli_time_needs_a_unit_and_excludes_iters() {
    let dir = tmpdir("clitime");
    let (a, b) = pair(&dir);
    for (extra, needle) in [
        (&["--time", "30"][..], "needs a unit"),
        (
            &["--time", "10m", "--iters", "5"][..],
            "cannot be used with",
        ),
    ] {
        let out = dir.join("run");
        let mut args = vec!["fit".into(), s(&a), s(&b), "--out".into(), s(&out)];
        args.extend(tiny_cli());
        args.extend(extra.iter().map(|x| x.to_string()));
        let o = Command::new(env!("CARGO_BIN_EXE_sincut"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?}: a run directory was created");
    }
}
