//! Training-quality regression: a short seeded run of the quick preset's model on the official
//! pair (`../shared/data`, painting → photo), measured as the run logs it (`--eval-every`: a
//! preview translation against the previews of source and target), compared with the figures
//! recorded in `tests/quality-reference.json`.
//!
//! The reference and its tolerances come from measured runs (see that file's `measured`): a
//! change that makes training learn less (a broken loss term, gradient or optimizer step) moves
//! these figures far beyond the spread between seeds and GEMM kernels.
//!
//! Re-record after an intended change of the training or of the metrics:
//! `SINCUT_RECORD_QUALITY=1 cargo test --release --test quality -- --nocapture`
//! (then update `measured` by hand from the runs you made to choose the tolerances).

use serde_json::Value;
use sincut::commands::Preset;
use sincut::device::Device;
use sincut::fit::{FitOptions, RunConfig, Verbosity, fit};
use std::path::{Path, PathBuf};

fn shared_data() -> PathBuf {
    match std::env::var_os("SINCUT_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}

fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/quality-reference.json")
}

/// The figures the test compares, from a metrics.jsonl quality line.
const FIGURES: [(&str, &[&str]); 5] = [
    ("swd_mean", &["swd", "mean"]),
    ("swd_texture", &["swd", "texture"]),
    ("ssim", &["ssim"]),
    ("edge_correlation", &["edge_correlation"]),
    ("lab_w1_sum", &["lab_w1_sum"]),
];

fn figure(eval: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(eval, |v, k| &v[*k])
        .as_f64()
        .unwrap_or_else(|| panic!("quality line lacks {path:?}: {eval}"))
}

/// Trains the short run described by the reference and returns its last quality line.
fn short_run(reference: &Value, out: &Path) -> Value {
    let data = shared_data();
    let (mut model, ..) = Preset::Quick.settings();
    let iters = reference["iters"].as_u64().unwrap();
    model.crop = reference["crop"].as_u64().unwrap() as usize;
    let opts = FitOptions {
        run: RunConfig {
            source: data.join("monet-etretat-painting.jpg"),
            target: data.join("etretat-photo.jpg"),
            model,
            iters,
            seed: reference["seed"].as_u64().unwrap(),
            snapshot_every: 0,
            checkpoint_every: iters,
            preview_size: reference["preview_size"].as_u64().unwrap() as usize,
            tiles: 512,
            preset: Some("quick".into()),
            eval_every: iters,
            device: None,
        },
        out: out.to_path_buf(),
        resume: false,
        device: Device::Cpu,
        verbosity: Verbosity::Quiet,
        stop_at: None,
        no_final_render: true,
    };
    fit(&opts).unwrap();
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("eval").is_some())
        .last()
        .expect("the run logged its quality");
    assert_eq!(last["iter"].as_u64(), Some(iters));
    last["eval"].clone()
}

#[test]
fn a_short_quick_run_learns_as_much_as_recorded() {
    let data = shared_data();
    if !data.join("etretat-photo.jpg").is_file() {
        // CI always has ../shared; elsewhere say plainly that nothing was checked.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI without {}",
            data.display()
        );
        println!("skipped: no {}", data.display());
        return;
    }
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(reference_path()).unwrap()).unwrap();
    let out = std::env::temp_dir().join(format!("sincut-quality-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let eval = short_run(&reference, &out);
    let _ = std::fs::remove_dir_all(&out);

    if std::env::var("SINCUT_RECORD_QUALITY").as_deref() == Ok("1") {
        let mut updated = reference.clone();
        for (name, path) in FIGURES {
            updated["figures"][name] = figure(&eval, path).into();
        }
        let text = serde_json::to_string_pretty(&updated).unwrap() + "\n";
        std::fs::write(reference_path(), text).unwrap();
        println!(
            "recorded {}: {}",
            reference_path().display(),
            updated["figures"]
        );
        return;
    }

    println!("figure              fresh   recorded  bound");
    let mut failures = Vec::new();
    for (name, path) in FIGURES {
        let fresh = figure(&eval, path);
        let recorded = reference["figures"][name].as_f64().unwrap();
        let tol = &reference["tolerance"][name];
        // Distances may not grow by more than a fraction; similarities may not drop by more
        // than an amount.
        let (ok, bound) = if let Some(frac) = tol["max_increase"].as_f64() {
            let b = recorded * (1.0 + frac);
            (fresh <= b, format!("<= {b:.4}"))
        } else {
            let d = tol["max_decrease"].as_f64().unwrap();
            let b = recorded - d;
            (fresh >= b, format!(">= {b:.4}"))
        };
        println!("{name:<18} {fresh:>8.4} {recorded:>9.4}  {bound}");
        if !ok {
            failures.push(format!(
                "{name} {fresh:.4} (recorded {recorded:.4}, bound {bound})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "training quality regressed: {}",
        failures.join("; ")
    );
}
