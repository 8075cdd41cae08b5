//! Comparing computed quantities with a fixture's: bounds from the rounding, relative errors,
//! and the report (table, verdict).

use ndarray::ArrayD;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::fixture::split_iteration;

/// What a quantity is, which fixes the floor of its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `fake`, `d_real`, `d_fake`, `r1.input_grad` (and anything unrecognised: strictest floor).
    Output,
    /// `loss.*` of the step.
    StepLoss,
    /// `grad.*`, `grad_r1.*`, `grad_gan.*`, …
    Gradient,
    /// `k<i>.loss.*`.
    TrajLoss,
    /// `final.*`: parameters after the trajectory.
    FinalParam,
}

impl Kind {
    pub fn of(name: &str) -> Kind {
        if name.starts_with("final.") {
            Kind::FinalParam
        } else if split_iteration(name).is_some_and(|(_, r)| r.starts_with("loss.")) {
            Kind::TrajLoss
        } else if name.starts_with("grad") {
            Kind::Gradient
        } else if name.starts_with("loss.") {
            Kind::StepLoss
        } else {
            Kind::Output
        }
    }

    /// The floor of the bound (GOLDEN.md): rounding alone may be smaller than what a different
    /// but equally valid summation order produces.
    pub fn floor(self) -> f64 {
        match self {
            Kind::Output | Kind::StepLoss => 1e-5,
            Kind::TrajLoss | Kind::Gradient => 1e-4,
            Kind::FinalParam => 1e-3,
        }
    }
}

/// The bound for a quantity: max(floor, 4 × rounding).
pub fn bound_for(name: &str, rounding: &BTreeMap<String, f64>) -> f64 {
    let r = rounding.get(name).copied().unwrap_or(0.0);
    Kind::of(name).floor().max(4.0 * r)
}

/// The table group of a quantity: `grad.D`, `grad_nce.F`, `final.G`, `outputs`, ….
pub fn group_of(name: &str) -> String {
    match Kind::of(name) {
        Kind::Output => "outputs".into(),
        Kind::StepLoss => "step losses".into(),
        Kind::TrajLoss => "traj losses".into(),
        Kind::Gradient | Kind::FinalParam => {
            let mut it = name.splitn(3, '.');
            match (it.next(), it.next()) {
                (Some(a), Some(b)) => format!("{a}.{b}"),
                _ => name.to_string(),
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Pass,
    /// r exceeds the bound.
    TooFar,
    /// The fixture has it, we did not compute it.
    Missing,
    ShapeMismatch {
        ours: Vec<usize>,
        fixture: Vec<usize>,
    },
    /// Our value has a NaN or infinity.
    NonFinite,
    /// The fixture's value has a NaN or infinity (a broken fixture).
    FixtureNonFinite,
}

#[derive(Clone, Debug)]
pub struct QuantityResult {
    pub name: String,
    pub kind: Kind,
    /// ‖ours − fixture‖ / ‖fixture‖ (norms in f64); NaN when not computable.
    pub r: f64,
    pub bound: f64,
    pub status: Status,
}

impl QuantityResult {
    pub fn passed(&self) -> bool {
        self.status == Status::Pass
    }

    /// bound / r: how many times the error could grow before failing (∞ for an exact match,
    /// 0 for a failure that has no r).
    pub fn margin(&self) -> f64 {
        if self.r.is_nan() {
            0.0
        } else if self.r == 0.0 {
            f64::INFINITY
        } else {
            self.bound / self.r
        }
    }

    fn status_text(&self) -> String {
        match &self.status {
            Status::Pass => "ok".into(),
            Status::TooFar => "TOO FAR".into(),
            Status::Missing => "MISSING".into(),
            Status::ShapeMismatch { ours, fixture } => {
                format!("SHAPE {ours:?} vs fixture {fixture:?}")
            }
            Status::NonFinite => "NON-FINITE".into(),
            Status::FixtureNonFinite => "FIXTURE NON-FINITE".into(),
        }
    }
}

/// Relative error in f64. A fixture norm of 0 gives r = 0 for an exact zero and ∞ otherwise.
pub fn relative_error(ours: &ArrayD<f32>, fixture: &ArrayD<f32>) -> f64 {
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&a, &b) in ours.iter().zip(fixture.iter()) {
        let (a, b) = (a as f64, b as f64);
        diff += (a - b) * (a - b);
        norm += b * b;
    }
    if norm == 0.0 {
        if diff == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (diff / norm).sqrt()
    }
}

fn compare_one(
    name: &str,
    fixture: &ArrayD<f32>,
    ours: Option<&ArrayD<f32>>,
    rounding: &BTreeMap<String, f64>,
) -> QuantityResult {
    let mut res = QuantityResult {
        name: name.to_string(),
        kind: Kind::of(name),
        r: f64::NAN,
        bound: bound_for(name, rounding),
        status: Status::Pass,
    };
    res.status = match ours {
        None => Status::Missing,
        Some(o) if o.shape() != fixture.shape() => Status::ShapeMismatch {
            ours: o.shape().to_vec(),
            fixture: fixture.shape().to_vec(),
        },
        Some(_) if fixture.iter().any(|v| !v.is_finite()) => Status::FixtureNonFinite,
        Some(o) if o.iter().any(|v| !v.is_finite()) => Status::NonFinite,
        Some(o) => {
            res.r = relative_error(o, fixture);
            if res.r <= res.bound {
                Status::Pass
            } else {
                Status::TooFar
            }
        }
    };
    res
}

/// Compares every quantity of `expected` with `ours`. Quantities we computed that the fixture
/// lacks are listed as extra (not a failure: fixtures may omit optional terms).
pub fn compare_maps(
    fixture_name: &str,
    expected: &BTreeMap<String, ArrayD<f32>>,
    ours: &BTreeMap<String, ArrayD<f32>>,
    rounding: &BTreeMap<String, f64>,
) -> FixtureReport {
    let results = expected
        .iter()
        .map(|(name, fix)| compare_one(name, fix, ours.get(name), rounding))
        .collect();
    let extra = ours
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    FixtureReport {
        name: fixture_name.to_string(),
        results,
        extra,
    }
}

/// The outcome of checking one fixture.
#[derive(Clone, Debug)]
pub struct FixtureReport {
    pub name: String,
    pub results: Vec<QuantityResult>,
    /// Computed names the fixture does not hold.
    pub extra: Vec<String>,
}

impl FixtureReport {
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(QuantityResult::passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &QuantityResult> {
        self.results.iter().filter(|q| !q.passed())
    }

    /// The `n` quantities closest to (or past) their bound, failures first.
    pub fn worst(&self, n: usize) -> Vec<&QuantityResult> {
        let mut v: Vec<&QuantityResult> = self.results.iter().collect();
        v.sort_by(|a, b| {
            a.passed()
                .cmp(&b.passed())
                .then(a.margin().total_cmp(&b.margin()))
        });
        v.truncate(n);
        v
    }

    /// One line: PASS/FAIL, counts, the worst quantity.
    pub fn verdict(&self) -> String {
        let total = self.results.len();
        let worst = self.worst(1);
        let worst = worst
            .first()
            .map(|q| {
                format!(
                    "worst {} r={} bound={:.1e} margin={} ({})",
                    q.name,
                    fmt_r(q),
                    q.bound,
                    fmt_margin(q),
                    q.status_text()
                )
            })
            .unwrap_or_else(|| "nothing to compare".into());
        if self.passed() {
            format!(
                "PASS {}: {total} quantities within bounds; {worst}",
                self.name
            )
        } else {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for q in self.failures() {
                let key = match q.status {
                    Status::ShapeMismatch { .. } => "shape mismatch".to_string(),
                    _ => q.status_text().to_lowercase(),
                };
                *counts.entry(key).or_default() += 1;
            }
            let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!(
                "FAIL {}: {} of {total} quantities fail ({}); {worst}",
                self.name,
                self.failures().count(),
                counts.join(", ")
            )
        }
    }

    /// A table of the worst quantity per group, then the `worst_n` worst quantities, then the
    /// verdict.
    pub fn table(&self, worst_n: usize) -> String {
        let mut groups: BTreeMap<String, (usize, usize, &QuantityResult)> = BTreeMap::new();
        for q in &self.results {
            let g = groups.entry(group_of(&q.name)).or_insert((0, 0, q));
            g.0 += 1;
            g.1 += usize::from(!q.passed());
            let w = g.2;
            if (q.passed(), q.margin()) < (w.passed(), w.margin()) {
                g.2 = q;
            }
        }
        let mut s = String::new();
        let _ = writeln!(s, "== {}", self.name);
        let _ = writeln!(
            s,
            "{:<14} {:>4} {:>4}  {:<44} {:>10} {:>9} {:>9}",
            "group", "n", "fail", "worst quantity", "r", "bound", "margin"
        );
        for (g, (n, fail, q)) in &groups {
            let _ = writeln!(
                s,
                "{:<14} {:>4} {:>4}  {:<44} {:>10} {:>9.1e} {:>9}",
                g,
                n,
                fail,
                q.name,
                fmt_r(q),
                q.bound,
                fmt_margin(q)
            );
        }
        let _ = writeln!(s, "worst {worst_n}:");
        for q in self.worst(worst_n) {
            let _ = writeln!(
                s,
                "  {:<52} r={:>10} bound={:.1e} margin={:>9}  {}",
                q.name,
                fmt_r(q),
                q.bound,
                fmt_margin(q),
                q.status_text()
            );
        }
        if !self.extra.is_empty() {
            let _ = writeln!(
                s,
                "computed but not in the fixture (not compared): {}",
                self.extra.len()
            );
        }
        let _ = writeln!(s, "{}", self.verdict());
        s
    }
}

fn fmt_r(q: &QuantityResult) -> String {
    if q.r.is_nan() {
        "-".into()
    } else {
        format!("{:.2e}", q.r)
    }
}

fn fmt_margin(q: &QuantityResult) -> String {
    let m = q.margin();
    if m.is_infinite() {
        "exact".into()
    } else if q.r.is_nan() {
        "-".into()
    } else {
        format!("{m:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn arr(shape: &[usize], f: impl Fn(usize) -> f32) -> ArrayD<f32> {
        let n: usize = shape.iter().product();
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap()
    }

    fn sample() -> BTreeMap<String, ArrayD<f32>> {
        let mut m = BTreeMap::new();
        m.insert(
            "fake".into(),
            arr(&[2, 3, 4, 4], |i| (i as f32 * 0.37).sin()),
        );
        m.insert("loss.D".into(), arr(&[1], |_| 1.25));
        m.insert("grad.D.x.weight".into(), arr(&[8, 3], |i| i as f32 - 7.0));
        m.insert("k0.loss.G".into(), arr(&[1], |_| -0.5));
        m.insert("final.G.a.bias".into(), arr(&[1, 4, 1, 1], |i| i as f32));
        m
    }

    #[test]
    fn kinds_floors_and_bounds() {
        assert_eq!(Kind::of("fake"), Kind::Output);
        assert_eq!(Kind::of("r1.input_grad"), Kind::Output);
        assert_eq!(Kind::of("loss.D_R1"), Kind::StepLoss);
        assert_eq!(Kind::of("grad_r1.D.convs.0.0.weight"), Kind::Gradient);
        assert_eq!(Kind::of("k12.loss.NCE"), Kind::TrajLoss);
        assert_eq!(Kind::of("final.F.mlp_0.0.bias"), Kind::FinalParam);
        let mut r = BTreeMap::new();
        r.insert("fake".to_string(), 1e-7);
        r.insert("grad.G.w".to_string(), 1e-2);
        assert_eq!(bound_for("fake", &r), 1e-5);
        assert_eq!(bound_for("grad.G.w", &r), 4e-2);
        assert_eq!(bound_for("final.G.w", &r), 1e-3);
        assert_eq!(bound_for("k0.loss.D", &r), 1e-4);
        assert_eq!(group_of("grad_nce.F.mlp_0.0.bias"), "grad_nce.F");
        assert_eq!(group_of("final.D.x.weight"), "final.D");
    }

    #[test]
    fn exact_passes() {
        let m = sample();
        let rep = compare_maps("t", &m, &m, &BTreeMap::new());
        assert!(rep.passed(), "{}", rep.table(5));
        assert!(rep.results.iter().all(|q| q.r == 0.0));
        assert!(rep.verdict().starts_with("PASS"));
    }

    #[test]
    fn perturbed_fails_only_past_the_bound() {
        let m = sample();
        let mut ours = m.clone();
        // 1e-3 relative on an output (floor 1e-5): must fail.
        ours.get_mut("fake")
            .unwrap()
            .mapv_inplace(|v| v * (1.0 + 1e-3));
        // 1e-4 relative on a final parameter (floor 1e-3): must pass.
        ours.get_mut("final.G.a.bias")
            .unwrap()
            .mapv_inplace(|v| v * (1.0 + 1e-4));
        let rep = compare_maps("t", &m, &ours, &BTreeMap::new());
        assert!(!rep.passed());
        let bad: Vec<&str> = rep.failures().map(|q| q.name.as_str()).collect();
        assert_eq!(bad, vec!["fake"]);
        let fake = &rep.worst(1)[0];
        assert_eq!(fake.status, Status::TooFar);
        assert!((fake.r - 1e-3).abs() < 1e-6, "{}", fake.r);
        assert!(fake.margin() < 1.0);
        assert!(rep.verdict().starts_with("FAIL t: 1 of 5"));
        // A rounding entry widens the bound to 4×rounding.
        let mut rounding = BTreeMap::new();
        rounding.insert("fake".to_string(), 3e-4);
        assert!(compare_maps("t", &m, &ours, &rounding).passed());
    }

    #[test]
    fn missing_shape_and_nonfinite_fail() {
        let m = sample();
        let mut ours = m.clone();
        ours.remove("loss.D");
        ours.insert("grad.D.x.weight".into(), arr(&[3, 8], |i| i as f32 - 7.0));
        ours.get_mut("k0.loss.G").unwrap()[[0]] = f32::NAN;
        ours.insert("grad_gan.G.extra".into(), arr(&[1], |_| 0.0));
        let rep = compare_maps("t", &m, &ours, &BTreeMap::new());
        let status = |n: &str| {
            rep.results
                .iter()
                .find(|q| q.name == n)
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(status("loss.D"), Status::Missing);
        assert!(matches!(
            status("grad.D.x.weight"),
            Status::ShapeMismatch { .. }
        ));
        assert_eq!(status("k0.loss.G"), Status::NonFinite);
        assert_eq!(status("fake"), Status::Pass);
        assert_eq!(rep.extra, vec!["grad_gan.G.extra".to_string()]);
        assert_eq!(rep.failures().count(), 3);
        // Failures are listed first among the worst.
        assert!(rep.worst(3).iter().all(|q| !q.passed()));
    }

    #[test]
    fn zero_reference() {
        let z = arr(&[3], |_| 0.0);
        assert_eq!(relative_error(&z, &z), 0.0);
        assert!(relative_error(&arr(&[3], |_| 1e-9), &z).is_infinite());
    }
}
