//! run.json: what a run was asked to do, read back on resume, render, info and report.

use super::run_json_path;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a run was asked to do; saved as `run.json` and read back on resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(with = "path_json")]
    pub source: PathBuf,
    #[serde(with = "path_json")]
    pub target: PathBuf,
    pub model: ModelConfig,
    /// Total iterations (lr constant for the first half, then linear decay to 0).
    pub iters: u64,
    pub seed: u64,
    pub snapshot_every: u64,
    pub checkpoint_every: u64,
    /// Long side of the preview snapshots.
    pub preview_size: usize,
    /// Tile size of the final full-resolution render.
    pub tiles: usize,
    /// The preset the options came from, if any.
    pub preset: Option<String>,
    /// Quality metrics of a preview-size translation every this many iterations (0: none).
    #[serde(default)]
    pub eval_every: u64,
    /// The engine of the latest start or resume ("cpu", "cuda"); set by `fit`.
    #[serde(default)]
    pub device: Option<String>,
    /// The matrix products' precision of the latest start or resume ("f32", "bf16"); set by
    /// `fit` (master weights and Adam state are f32 whatever it is).
    #[serde(default)]
    pub precision: Option<String>,
    /// Options changed on resume, in order; each holds from its iteration on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<OptionChange>,
    /// `--time`: the iteration count comes from a training-time budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeBudget>,
    /// Half-life in images of the moving average of G's weights (`crate::train::ema`);
    /// 0: none is kept (also the meaning of run.json files from before the average).
    #[serde(default)]
    pub ema_half_life: f64,
    /// The average's ramp-up: its half-life is at most this fraction of the images seen.
    #[serde(default = "default_ema_rampup")]
    pub ema_rampup: f64,
    /// `--no-ema`: snapshots, quality lines and result.png from the raw weights although an
    /// average is kept (false: from the average whenever the run keeps one).
    #[serde(default)]
    pub no_ema: bool,
}

fn default_ema_rampup() -> f64 {
    crate::train::ema::DEFAULT_EMA_RAMPUP
}

/// A training-time budget (`fit --time`). While the learning rate is constant (the first half
/// of the run) `iters` is re-estimated after every iteration as the number of iterations that
/// fit in `seconds` at the speed measured so far; the count becomes final at the iteration
/// where the decay begins, so the schedule still ends at 0, and a resume keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeBudget {
    /// Seconds of training asked for (snapshots, quality lines and checkpoints included;
    /// the final render comes after).
    pub seconds: f64,
    /// Measured seconds per iteration behind the current count.
    pub s_per_iter: Option<f64>,
    /// The iteration at which the count became final; `None` while it is still an estimate.
    pub fixed_at: Option<u64>,
}

impl TimeBudget {
    /// The iteration count for `s_per_iter` once iteration `it` is done: the iterations that
    /// fit in the budget, but at least 2·(it + 1), since iterations 0..=it all ran at the
    /// constant lr of a schedule's first half.
    pub fn iters_for(&self, s_per_iter: f64, it: u64) -> u64 {
        let fit = (self.seconds / s_per_iter.max(1e-9)).floor();
        // Float → int saturates; the budget is validated to be finite and positive.
        (fit as u64).max(2 * (it + 1))
    }
}

/// Picture paths in run.json, losslessly: a string when the path is UTF-8 (JSON text must be),
/// else `{"unix_bytes": [...]}` with the path's bytes (a Unix path is any bytes but / and NUL).
pub mod path_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::path::{Path, PathBuf};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes { unix_bytes: Vec<u8> },
    }

    pub fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        match p.to_str() {
            Some(t) => Repr::Text(t.to_string()),
            None => Repr::Bytes {
                unix_bytes: bytes_of(p),
            },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(PathBuf::from(t)),
            Repr::Bytes { unix_bytes } => from_bytes(unix_bytes).map_err(serde::de::Error::custom),
        }
    }

    /// A run.json path value (either form) as a path; None for anything else.
    pub fn from_value(v: &serde_json::Value) -> Option<PathBuf> {
        Repr::deserialize(v).ok().and_then(|r| match r {
            Repr::Text(t) => Some(PathBuf::from(t)),
            Repr::Bytes { unix_bytes } => from_bytes(unix_bytes).ok(),
        })
    }

    #[cfg(unix)]
    fn bytes_of(p: &Path) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        p.as_os_str().as_bytes().to_vec()
    }

    #[cfg(not(unix))]
    fn bytes_of(p: &Path) -> Vec<u8> {
        p.to_string_lossy().into_owned().into_bytes()
    }

    #[cfg(unix)]
    fn from_bytes(b: Vec<u8>) -> Result<PathBuf, String> {
        use std::os::unix::ffi::OsStringExt;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(b)))
    }

    #[cfg(not(unix))]
    fn from_bytes(b: Vec<u8>) -> Result<PathBuf, String> {
        String::from_utf8(b)
            .map(PathBuf::from)
            .map_err(|_| "a non-UTF-8 path recorded on Unix cannot be used here".into())
    }
}

/// One option changed by a resume: from iteration `iter` on, the run uses `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptionChange {
    pub iter: u64,
    pub option: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

impl RunConfig {
    /// Whether the run keeps a moving average of G's weights.
    pub fn keeps_ema(&self) -> bool {
        self.ema_half_life > 0.0
    }

    /// Whether the run's pictures (snapshots, quality lines, result.png) come from the average.
    pub fn pictures_from_ema(&self) -> bool {
        self.keeps_ema() && !self.no_ema
    }

    /// Which weights the run's pictures come from, in words (report, info).
    pub fn picture_weights(&self) -> &'static str {
        if self.pictures_from_ema() {
            "EMA weights"
        } else {
            "raw weights"
        }
    }

    /// The one check of a run's options, for fresh and resumed runs alike, before anything is
    /// written or trained.
    pub fn validate(&self) -> Result<()> {
        self.model.validate().map_err(Error::new)?;
        crate::memory::check_training_fits(&self.model)?;
        if self.iters == 0 {
            return Err(Error::new("--iters must be at least 1"));
        }
        if let Some(t) = &self.time
            && !(t.seconds.is_finite() && t.seconds > 0.0)
        {
            return Err(Error::new("--time must be a positive duration"));
        }
        if !(self.ema_half_life.is_finite() && self.ema_half_life >= 0.0) {
            return Err(Error::new(format!(
                "--ema-half-life {} must be a number of images ≥ 0 (0: no average)",
                self.ema_half_life
            )));
        }
        if !(self.ema_rampup.is_finite() && self.ema_rampup > 0.0 && self.ema_rampup <= 1.0) {
            return Err(Error::new(format!(
                "--ema-rampup {} must lie in (0, 1]",
                self.ema_rampup
            )));
        }
        if self.checkpoint_every == 0 {
            return Err(Error::new("--checkpoint-every must be at least 1"));
        }
        if self.preview_size < 16 {
            return Err(Error::new(format!(
                "--preview-size {} is too small (at least 16)",
                self.preview_size
            )));
        }
        crate::render::check_tile(self.tiles)
    }
}

/// Reads a run directory's `run.json`.
pub fn load_run_config(run_dir: &Path) -> Result<RunConfig> {
    let p = run_json_path(run_dir);
    let text = std::fs::read_to_string(&p).map_err(|e| Error::at(&p, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::at(&p, format_args!("not a sincut run description: {e}")))
}

/// Writes `value` as pretty-printed JSON, atomically (a crash leaves the old file or the new).
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::at(path, format_args!("cannot encode: {e}")))?;
    crate::io::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::presets::Preset;

    /// A run.json written before the moving average existed reads as a run without one.
    #[test]
    fn old_run_json_keeps_no_average() {
        let mut v = serde_json::to_value(RunConfig::from_preset(Preset::Quick)).unwrap();
        let m = v.as_object_mut().unwrap();
        assert!(m.contains_key("ema_half_life") && m.contains_key("no_ema"));
        for k in ["ema_half_life", "ema_rampup", "no_ema"] {
            m.remove(k);
        }
        let old: RunConfig = serde_json::from_value(v).unwrap();
        assert!(!old.keeps_ema() && !old.pictures_from_ema());
        assert_eq!(old.ema_rampup, crate::train::ema::DEFAULT_EMA_RAMPUP);
        assert_eq!(old.picture_weights(), "raw weights");
        let new = RunConfig::from_preset(Preset::Quick);
        assert_eq!(new.ema_half_life, crate::train::ema::DEFAULT_EMA_HALF_LIFE);
        let with = RunConfig {
            ema_half_life: 5000.0,
            ..new
        };
        assert!(with.keeps_ema() && with.pictures_from_ema());
    }
}
