//! Replaying golden fixtures of the official implementation (GOLDEN.md format).
//!
//! A fixture folder holds `meta.json` (the config), `params.safetensors`, `step.safetensors` (one
//! step's inputs and every output, loss and gradient), `traj.safetensors` (K iterations' inputs
//! and losses, and the parameters after them) and `rounding.json` (how much float32 rounding
//! alone moves each quantity). [`check_fixture`] replays the step and the trajectory and compares
//! every quantity by relative norm against a bound derived from the rounding; any folder in this
//! format can be checked, not only the shipped ones.

use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::backend::device::{Device, OnBackend, open_backend};
use crate::config::{ModelConfig, NCE_LAYERS};
use crate::error::{Error, Result};
use crate::io::TensorFile;
use crate::nn::ParamMap;
use crate::train::StepInputs;
use ndarray::{Array4, ArrayD, Ix4};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Step tensors that are inputs, not quantities to compare.
const STEP_INPUTS: [&str; 5] = ["real_A", "real_B", "noise", "nce_ids_x", "nce_ids_y"];

/// One fixture folder, loaded and checked for consistency.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The folder's name (used in reports and under `--dump`).
    pub name: String,
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub params: ParamMap<f32>,
    pub step: StepInputs<f32>,
    /// Every step quantity to compare: outputs, losses, gradients.
    pub step_expected: BTreeMap<String, ArrayD<f32>>,
    /// The inputs of iterations k0..k{K-1}.
    pub traj: Vec<StepInputs<f32>>,
    /// Every trajectory quantity to compare: `k<i>.loss.*`, `final.*`.
    pub traj_expected: BTreeMap<String, ArrayD<f32>>,
    /// `rounding.json`: relative float32 rounding per quantity (missing = 0).
    pub rounding: BTreeMap<String, f64>,
}

impl Fixture {
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::at(dir, "fixture folder not found"));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let (config, iters) = read_meta(&dir.join("meta.json"))?;
        let params = crate::io::load_params(dir.join("params.safetensors"))?;
        let rounding = read_rounding(&dir.join("rounding.json"))?;

        let step_path = dir.join("step.safetensors");
        let mut step_file = TensorFile::read(&step_path)?;
        let step = step_inputs(&step_file, "", &config).map_err(|m| Error::at(&step_path, m))?;
        step_file
            .floats
            .retain(|k, _| !STEP_INPUTS.contains(&k.as_str()));
        if step_file.floats.is_empty() {
            return Err(Error::at(&step_path, "no outputs to compare"));
        }

        let traj_path = dir.join("traj.safetensors");
        let mut traj_file = TensorFile::read(&traj_path)?;
        let k = (0..)
            .take_while(|i| traj_file.floats.contains_key(&format!("k{i}.real_A")))
            .count();
        if k == 0 {
            return Err(Error::at(&traj_path, "no iterations (k0.real_A missing)"));
        }
        if let Some(n) = iters
            && n != k
        {
            return Err(Error::at(
                &traj_path,
                format_args!("holds {k} iterations, meta.json says iters = {n}"),
            ));
        }
        let traj = (0..k)
            .map(|i| step_inputs(&traj_file, &format!("k{i}."), &config))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|m| Error::at(&traj_path, m))?;
        traj_file.floats.retain(|name, _| !is_traj_input(name));
        if !traj_file.floats.keys().any(|n| n.starts_with("final.")) {
            return Err(Error::at(&traj_path, "no final.* parameters"));
        }

        Ok(Fixture {
            name,
            dir: dir.to_path_buf(),
            config,
            params,
            step,
            step_expected: step_file.floats,
            traj,
            traj_expected: traj_file.floats,
            rounding,
        })
    }

    /// Compares computed quantities (step and trajectory together; their names are distinct)
    /// against everything the fixture holds.
    pub fn compare(&self, ours: &BTreeMap<String, ArrayD<f32>>) -> FixtureReport {
        let mut expected = self.step_expected.clone();
        expected.extend(self.traj_expected.clone());
        compare_maps(&self.name, &expected, ours, &self.rounding)
    }
}

/// `k<i>.real_A`, `k<i>.real_B`, `k<i>.noise`, `k<i>.nce_ids_*`.
fn is_traj_input(name: &str) -> bool {
    match split_iteration(name) {
        Some((_, rest)) => STEP_INPUTS.contains(&rest),
        None => false,
    }
}

/// `k12.loss.D` → (12, "loss.D").
fn split_iteration(name: &str) -> Option<(usize, &str)> {
    let (head, rest) = name.split_once('.')?;
    let i = head.strip_prefix('k')?.parse().ok()?;
    Some((i, rest))
}

/// Reads the config from meta.json. Every [`ModelConfig`] field must be present (the struct's
/// serde defaults would otherwise silently replace a missing value); official options this
/// engine fixes must have the values it implements.
fn read_meta(path: &Path) -> Result<(ModelConfig, Option<usize>)> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::at(path, "file not found"),
        _ => Error::at(path, format_args!("cannot read: {e}")),
    })?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::at(path, format_args!("not JSON: {e}")))?;
    let cfg_value = meta
        .get("config")
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::at(path, "no \"config\" object"))?;
    let wanted = serde_json::to_value(ModelConfig::default()).expect("config serialises");
    let obj = cfg_value.as_object().unwrap();
    let missing: Vec<&str> = wanted
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !obj.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::at(
            path,
            format_args!("config lacks {}", missing.join(", ")),
        ));
    }
    // Unknown keys (d_tiles_per_side, nce_layers, iters, …) are ignored by serde here.
    let config: ModelConfig = serde_json::from_value(cfg_value.clone())
        .map_err(|e| Error::at(path, format_args!("config is not valid: {e}")))?;
    config.validate().map_err(|m| Error::at(path, m))?;

    let fixed: [(&str, serde_json::Value); 6] = [
        ("d_tiles_per_side", config.d_tiles_per_side().into()),
        ("nce_layers", NCE_LAYERS.to_vec().into()),
        ("nce_idt", true.into()),
        ("num_patches", 1.into()),
        ("gan_mode", "nonsaturating".into()),
        ("nce_includes_all_negatives_from_minibatch", true.into()),
    ];
    for (key, want) in fixed {
        if let Some(got) = obj.get(key)
            && *got != want
        {
            return Err(Error::at(
                path,
                format_args!("config {key} = {got}, this engine implements {want}"),
            ));
        }
    }
    let iters = match obj.get("iters") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| Error::at(path, "config iters is not a count"))?
                as usize,
        ),
    };
    Ok((config, iters))
}

fn read_rounding(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::at(path, "file not found"),
        _ => Error::at(path, format_args!("cannot read: {e}")),
    })?;
    let map: BTreeMap<String, f64> = serde_json::from_str(&text)
        .map_err(|e| Error::at(path, format_args!("not a JSON object of numbers: {e}")))?;
    if let Some((k, v)) = map.iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::at(
            path,
            format_args!("rounding of {k} is {v}, expected a finite number ≥ 0"),
        ));
    }
    Ok(map)
}

/// The inputs of one step, `prefix` "" for step.safetensors or "k<i>." for an iteration,
/// with shapes checked against the config and patch ids against the NCE layer resolutions.
fn step_inputs(
    file: &TensorFile,
    prefix: &str,
    cfg: &ModelConfig,
) -> std::result::Result<StepInputs<f32>, String> {
    let (n, s) = (cfg.batch, cfg.crop);
    let image = |name: &str, shape: [usize; 4]| -> std::result::Result<Array4<f32>, String> {
        let full = format!("{prefix}{name}");
        let a = file
            .floats
            .get(&full)
            .ok_or_else(|| format!("input '{full}' is missing"))?;
        if a.shape() != shape {
            return Err(format!(
                "input '{full}' has shape {:?}, the config implies {shape:?}",
                a.shape()
            ));
        }
        Ok(a.clone().into_dimensionality::<Ix4>().unwrap())
    };
    // Resolution of each NCE layer's features: layer 0 is the input, layers 2 and 4 come after
    // the encoder's one downsampling ResBlock.
    let res = [s, s / 2, s / 2];
    let ids = |name: &str| -> std::result::Result<[usize; 3], String> {
        let full = format!("{prefix}{name}");
        let a = file
            .ints
            .get(&full)
            .ok_or_else(|| format!("input '{full}' is missing (int64)"))?;
        if a.shape() != [3] {
            return Err(format!("'{full}' has shape {:?}, expected [3]", a.shape()));
        }
        let mut out = [0usize; 3];
        for (l, (&v, o)) in a.iter().zip(out.iter_mut()).enumerate() {
            let hw = res[l] * res[l];
            if v < 0 || v as usize >= hw {
                return Err(format!(
                    "'{full}'[{l}] = {v} is outside the {r}×{r} features of NCE layer {}",
                    NCE_LAYERS[l],
                    r = res[l]
                ));
            }
            *o = v as usize;
        }
        Ok(out)
    };
    Ok(StepInputs {
        real_a: image("real_A", [n, 3, s, s])?,
        real_b: image("real_B", [n, 3, s, s])?,
        noise: image("noise", [2 * n, 1, s, s])?,
        nce_ids_x: ids("nce_ids_x")?,
        nce_ids_y: ids("nce_ids_y")?,
    })
}

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

/// Options of `sincut check-golden`.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    pub device: Device,
    /// Write everything computed to `<dump>/<fixture name>/{step,traj}.safetensors`.
    pub dump: Option<PathBuf>,
    /// How many worst quantities the table lists.
    pub worst_n: usize,
}

/// Replays a fixture's step and trajectory on the CPU backend (f32) and compares.
pub fn check_fixture(dir: impl AsRef<Path>, opts: &CheckOptions) -> Result<FixtureReport> {
    check_fixture_on(&CpuBackend::<f32>::new(), dir, opts)
}

/// Replays a fixture's step and trajectory on backend `engine` (always f32, as the official
/// code) and compares.
pub fn check_fixture_on<E: Backend<Elem = f32>>(
    engine: &E,
    dir: impl AsRef<Path>,
    opts: &CheckOptions,
) -> Result<FixtureReport> {
    let fx = Fixture::load(dir)?;
    let ours_step = crate::train::step::replay_step(engine, &fx.config, &fx.params, &fx.step)?;
    let ours_traj =
        crate::train::step::replay_trajectory(engine, &fx.config, &fx.params, &fx.traj)?;
    finish_check(&fx, ours_step, ours_traj, opts)
}

/// Dumps (when asked) and compares quantities computed for `fx` by any engine.
pub fn finish_check(
    fx: &Fixture,
    ours_step: BTreeMap<String, ArrayD<f32>>,
    ours_traj: BTreeMap<String, ArrayD<f32>>,
    opts: &CheckOptions,
) -> Result<FixtureReport> {
    if let Some(out) = &opts.dump {
        dump(out, fx, &ours_step, &ours_traj)?;
    }
    let mut ours = ours_step;
    ours.extend(ours_traj);
    Ok(fx.compare(&ours))
}

/// Writes computed maps in the fixture's file layout, so other tools can compare them.
fn dump(
    out: &Path,
    fx: &Fixture,
    step: &BTreeMap<String, ArrayD<f32>>,
    traj: &BTreeMap<String, ArrayD<f32>>,
) -> Result<()> {
    let dir = out.join(&fx.name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::at(&dir, format_args!("cannot create folder: {e}")))?;
    let mut meta = BTreeMap::new();
    meta.insert("source".to_string(), "sincut, float32".to_string());
    meta.insert("fixture".to_string(), fx.dir.display().to_string());
    crate::io::save_tensors(dir.join("step.safetensors"), step, Some(&meta))?;
    crate::io::save_tensors(dir.join("traj.safetensors"), traj, Some(&meta))
}

/// [`check_fixture_on`] as work for the opened backend.
struct CheckFixture<'a> {
    dir: &'a Path,
    opts: &'a CheckOptions,
}

impl OnBackend for CheckFixture<'_> {
    type Output = FixtureReport;
    fn run<E: Backend<Elem = f32>>(self, e: &E) -> Result<FixtureReport> {
        check_fixture_on(e, self.dir, self.opts)
    }
}

/// The fixture folders under `dir`: `dir` itself when it holds `meta.json`, else its
/// subfolders that do (sorted by name).
pub fn find_fixtures(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    if dir.join("meta.json").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::at(dir, "folder not found"),
        _ => Error::at(dir, format_args!("cannot list: {e}")),
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(Error::at(
            dir,
            "no golden fixtures (no meta.json in it or its subfolders)",
        ));
    }
    Ok(found)
}

/// `sincut check-golden DIR...`: checks every fixture found, prints a table and a verdict per
/// fixture to `out` and fixture errors as one line each on stderr. Ok(true) when all pass.
pub fn run_check_golden(
    dirs: &[PathBuf],
    opts: &CheckOptions,
    out: &mut dyn std::io::Write,
) -> Result<bool> {
    let backend = open_backend(opts.device, false)?;
    let mut fixtures = Vec::new();
    for d in dirs {
        fixtures.extend(find_fixtures(d)?);
    }
    let worst_n = if opts.worst_n == 0 { 10 } else { opts.worst_n };
    let mut passed = 0;
    for f in &fixtures {
        let checked = backend.run(CheckFixture { dir: f, opts });
        let line = match checked {
            Ok(report) => {
                passed += usize::from(report.passed());
                report.table(worst_n)
            }
            Err(e) => {
                eprintln!("sincut: error: {e}");
                format!("FAIL {}: {e}\n", f.display())
            }
        };
        write!(out, "{line}").map_err(|e| Error::new(format!("cannot write output: {e}")))?;
    }
    writeln!(out, "{passed} of {} fixtures pass", fixtures.len())
        .map_err(|e| Error::new(format!("cannot write output: {e}")))?;
    Ok(passed == fixtures.len())
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
