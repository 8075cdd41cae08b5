//! The run directory: its files and their formats, shared by `fit` (which writes them) and
//! `render`, `info` and `report` (which read them). What each file holds is described in
//! [`crate::fit`].

mod config;
pub mod metrics;
mod resume;

pub use config::{OptionChange, RunConfig, TimeBudget, load_run_config, path_json, write_json};
pub use resume::{ResumeOptions, resumed_config};

use crate::error::Result;
use std::path::{Path, PathBuf};

pub fn checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint.safetensors")
}

pub fn result_path(run_dir: &Path) -> PathBuf {
    run_dir.join("result.png")
}

pub fn run_json_path(run_dir: &Path) -> PathBuf {
    run_dir.join("run.json")
}

/// The metrics log (see [`metrics`]).
pub fn metrics_path(run_dir: &Path) -> PathBuf {
    run_dir.join("metrics.jsonl")
}

/// Takes the run directory's lock (see `crate::lock`) and removes the temporary files that
/// killed processes left in it.
pub fn lock_run_dir(run_dir: &Path) -> Result<crate::lock::RunLock> {
    let lock = crate::lock::RunLock::acquire(run_dir)?;
    crate::io::remove_stale_temporaries(run_dir);
    crate::io::remove_stale_temporaries(&run_dir.join("snapshots"));
    Ok(lock)
}

/// The default run directory for a pair: `runs/<source stem>-to-<target stem>`.
pub fn default_run_dir(source: &Path, target: &Path) -> PathBuf {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into())
    };
    PathBuf::from("runs").join(format!("{}-to-{}", stem(source), stem(target)))
}
