//! `report.html`: one self-contained page per run directory (`sincut report RUN_DIR`, and at
//! the end of `sincut fit`).
//!
//! The page shows the inputs, the final result next to the colour baselines (the source
//! itself, Reinhard transfer, histogram matching; with a metrics table when the run logged
//! quality evaluations), loss and metric curves, the snapshots over time, timings, the device
//! and the configuration. Pictures are embedded as base64 JPEG data URIs and curves as inline
//! SVG drawn here; the page loads nothing else (its Content-Security-Policy forbids it) and
//! needs no JavaScript, so it opens from disk anywhere.
//!
//! Everything is read leniently: a missing picture, a damaged snapshot, an empty or partly
//! unreadable `metrics.jsonl` or fields added by later versions give a note, not a failure.
//! Only a directory that is not a run (no readable `run.json`) is an error.
//!
//! [`page`] lays the page out, section by section; [`charts`] draws the curves; [`metrics`]
//! reads `metrics.jsonl`.

pub mod charts;
pub mod metrics;
pub mod page;

use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::run::run_json_path;
use page::render_page;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Writes `run_dir/report.html` (atomically) and returns its path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    if !run_dir.is_dir() {
        return Err(Error::at(run_dir, "no such run directory"));
    }
    let run_json = run_json_path(run_dir);
    if !run_json.is_file() {
        return Err(Error::at(
            run_dir,
            "not a sincut run directory (no run.json)",
        ));
    }
    let text = std::fs::read_to_string(&run_json).map_err(|e| Error::at(&run_json, e))?;
    let run: Value = serde_json::from_str(&text)
        .map_err(|e| Error::at(&run_json, format_args!("not a sincut run description: {e}")))?;
    let (Some(source), Some(target)) = (
        run.get("source")
            .and_then(crate::run::path_json::from_value),
        run.get("target")
            .and_then(crate::run::path_json::from_value),
    ) else {
        return Err(Error::at(
            &run_json,
            "not a sincut run description (no source and target)",
        ));
    };
    let html = render_page(run_dir, &run, &source, &target);
    let out = run_dir.join("report.html");
    write_atomic(&out, html.as_bytes())?;
    Ok(out)
}
