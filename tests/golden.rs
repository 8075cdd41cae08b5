//! Golden fixtures: the full replay check over every fixture folder, and checks of the reader
//! and the comparison on the fixtures themselves (which need no training step).

use approx::assert_abs_diff_eq;
use sincut::golden::{CheckOptions, Fixture, Status, check_fixture, compare_maps, find_fixtures};
use std::path::PathBuf;

/// `SINCUT_GOLDEN_DIR`, else `<manifest>/../shared/golden`.
fn golden_root() -> PathBuf {
    match std::env::var_os("SINCUT_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden"),
    }
}

fn fixtures() -> Vec<PathBuf> {
    let root = golden_root();
    assert!(
        root.is_dir(),
        "golden fixtures not found at {} (set SINCUT_GOLDEN_DIR to the folder of fixture folders)",
        root.display()
    );
    find_fixtures(&root).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_fixture_replays_within_bounds() {
    let mut failed = Vec::new();
    for dir in fixtures() {
        let report =
            check_fixture(&dir, &CheckOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", report.table(15));
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

#[test]
fn fixtures_load_and_match_themselves() {
    for dir in fixtures() {
        let fx = Fixture::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let k = fx.traj.len();
        assert!(k >= 1);
        assert!(fx.step_expected.contains_key("fake"));
        assert!(fx.step_expected.contains_key("loss.G"));
        assert!(!fx.step_expected.contains_key("real_A"));
        assert!(fx.traj_expected.contains_key(&format!("k{}.loss.D", k - 1)));
        assert!(!fx.traj_expected.contains_key("k0.noise"));
        assert!(
            fx.params
                .keys()
                .all(|n| ["G.", "D.", "F."].iter().any(|p| n.starts_with(p)))
        );
        // Every parameter has a final value after the trajectory.
        for n in fx.params.keys() {
            assert!(
                fx.traj_expected.contains_key(&format!("final.{n}")),
                "final.{n}"
            );
        }

        let mut all = fx.step_expected.clone();
        all.extend(fx.traj_expected.clone());
        let rep = fx.compare(&all);
        assert!(rep.passed(), "{}", rep.table(5));
        assert!(rep.results.iter().all(|q| q.r == 0.0));

        // A relative 1e-3 change of one gradient fails unless its rounding allows it; a missing
        // loss always fails.
        let mut bad = all.clone();
        let g = bad
            .keys()
            .find(|n| n.starts_with("grad.G."))
            .unwrap()
            .clone();
        bad.get_mut(&g).unwrap().mapv_inplace(|v| v * 1.01);
        bad.remove("loss.D");
        let rep = compare_maps(&fx.name, &all, &bad, &fx.rounding);
        println!("{}", rep.table(5));
        assert!(!rep.passed());
        let st = |n: &str| {
            rep.results
                .iter()
                .find(|q| q.name == n)
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(st("loss.D"), Status::Missing);
        let gq = rep.results.iter().find(|q| q.name == g).unwrap();
        assert_abs_diff_eq!(gq.r, 0.01, epsilon = 1e-6);
        assert_eq!(gq.passed(), 0.01 <= gq.bound);
    }
}

/// A copy of the first fixture in a temporary folder, to break on purpose.
fn broken_copy(tag: &str) -> (PathBuf, PathBuf) {
    let src = fixtures().remove(0);
    let dst = std::env::temp_dir()
        .join(format!("sincut-golden-{tag}-{}", std::process::id()))
        .join(src.file_name().unwrap());
    std::fs::create_dir_all(&dst).unwrap();
    for f in [
        "meta.json",
        "params.safetensors",
        "step.safetensors",
        "traj.safetensors",
        "rounding.json",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
        // Fixture files may be read-only; the copies must be writable.
        let mut perm = std::fs::metadata(dst.join(f)).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(dst.join(f), perm).unwrap();
    }
    (src, dst)
}

#[test]
fn broken_fixtures_give_one_line_errors() {
    // Truncated step file.
    let (src, dst) = broken_copy("trunc");
    let bytes = std::fs::read(dst.join("step.safetensors")).unwrap();
    std::fs::write(dst.join("step.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = Fixture::load(&dst).unwrap_err().to_string();
    assert!(
        e.contains("step.safetensors") && e.contains("truncated"),
        "{e}"
    );
    assert!(!e.contains('\n'));

    // Missing rounding.json.
    std::fs::copy(src.join("step.safetensors"), dst.join("step.safetensors")).unwrap();
    std::fs::remove_file(dst.join("rounding.json")).unwrap();
    let e = Fixture::load(&dst).unwrap_err().to_string();
    assert!(
        e.contains("rounding.json") && e.contains("not found"),
        "{e}"
    );
    std::fs::remove_dir_all(dst.parent().unwrap()).unwrap();

    // A config this engine does not implement, and a missing config key.
    let (_, dst) = broken_copy("meta");
    let meta = std::fs::read_to_string(dst.join("meta.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&meta).unwrap();
    v["config"]["num_patches"] = 256.into();
    std::fs::write(dst.join("meta.json"), v.to_string()).unwrap();
    let e = Fixture::load(&dst).unwrap_err().to_string();
    assert!(e.contains("meta.json") && e.contains("num_patches"), "{e}");
    v["config"]["num_patches"] = 1.into();
    v["config"].as_object_mut().unwrap().remove("crop");
    std::fs::write(dst.join("meta.json"), v.to_string()).unwrap();
    let e = Fixture::load(&dst).unwrap_err().to_string();
    assert!(e.contains("lacks crop"), "{e}");
    std::fs::remove_dir_all(dst.parent().unwrap()).unwrap();

    // A patch id outside its layer's features.
    let (_, dst) = broken_copy("ids");
    let mut f = sincut::io::TensorFile::read(&dst.join("traj.safetensors")).unwrap();
    f.ints.get_mut("k0.nce_ids_y").unwrap()[[2]] = 1 << 20;
    f.write(&dst.join("traj.safetensors")).unwrap();
    let e = Fixture::load(&dst).unwrap_err().to_string();
    assert!(
        e.contains("traj.safetensors") && e.contains("k0.nce_ids_y"),
        "{e}"
    );
    std::fs::remove_dir_all(dst.parent().unwrap()).unwrap();
}

#[test]
fn dump_writes_the_fixture_layout() {
    let src = fixtures().remove(0);
    let fx = Fixture::load(&src).unwrap();
    let out = std::env::temp_dir().join(format!("sincut-dump-{}", std::process::id()));
    let opts = CheckOptions {
        dump: Some(out.clone()),
        ..Default::default()
    };
    let rep = sincut::golden::finish_check(
        &fx,
        fx.step_expected.clone(),
        fx.traj_expected.clone(),
        &opts,
    )
    .unwrap();
    assert!(rep.passed());
    let step = sincut::io::load_tensors(out.join(&fx.name).join("step.safetensors")).unwrap();
    let traj = sincut::io::load_tensors(out.join(&fx.name).join("traj.safetensors")).unwrap();
    assert_eq!(step, fx.step_expected);
    assert_eq!(traj, fx.traj_expected);
    std::fs::remove_dir_all(&out).unwrap();
}

/// `check-golden --device cuda` without a GPU: one line, no panic (with one: all pass).
#[test]
fn check_golden_on_cuda_errors_in_one_line_without_a_gpu() {
    let opts = CheckOptions {
        device: sincut::backend::device::Device::Cuda,
        ..Default::default()
    };
    let mut out = Vec::new();
    match sincut::cli::check_golden::run_check_golden(&[golden_root()], &opts, &mut out) {
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
