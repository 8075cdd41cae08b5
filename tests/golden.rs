//! Golden fixtures: the full replay check over every fixture folder, and checks of the reader
//! and the comparison on the fixtures themselves (which need no training step).

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
        assert!((gq.r - 0.01).abs() < 1e-6);
        assert_eq!(gq.passed(), 0.01 <= gq.bound);
    }
}
