//! Replaying golden fixtures of the official implementation (GOLDEN.md format).
//!
//! A fixture folder holds `meta.json` (the config), `params.safetensors`, `step.safetensors` (one
//! step's inputs and every output, loss and gradient), `traj.safetensors` (K iterations' inputs
//! and losses, and the parameters after them) and `rounding.json` (how much float32 rounding
//! alone moves each quantity). [`check_fixture`] replays the step and the trajectory and compares
//! every quantity by relative norm against a bound derived from the rounding; any folder in this
//! format can be checked, not only the shipped ones.

mod compare;
mod fixture;

pub use compare::{
    FixtureReport, Kind, QuantityResult, Status, bound_for, compare_maps, group_of, relative_error,
};
pub use fixture::Fixture;

use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::backend::device::Device;
use crate::error::{Error, Result};
use ndarray::ArrayD;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
pub fn check_fixture_on<B: Backend<Elem = f32>>(
    engine: &B,
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
