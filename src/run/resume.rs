//! Continuing a run with options given again: which may change, and the record of changes.

use super::{OptionChange, RunConfig};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// The options given on the command line together with `--resume` (None: not given).
///
/// What may change on resume: lr, iterations, the snapshot / checkpoint / eval intervals,
/// the final render's tiles and `--no-ema` (recorded in run.json's `changes`). What may not:
/// the pictures, the model (geometry and loss weights, which the checkpoint was trained with),
/// the seed, the preview size (the run's randomness and its logged metrics would no longer
/// continue) and the EMA's half-life and ramp-up (the average would no longer be one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResumeOptions {
    pub source: Option<PathBuf>,
    pub target: Option<PathBuf>,
    pub preset: Option<String>,
    pub crop: Option<usize>,
    pub batch: Option<usize>,
    pub d_window: Option<usize>,
    pub ngf: Option<usize>,
    pub ndf: Option<usize>,
    pub lambda_gan: Option<f64>,
    pub lambda_nce: Option<f64>,
    pub nce_patches: Option<usize>,
    pub lambda_r1: Option<f64>,
    pub lambda_idt: Option<f64>,
    pub seed: Option<u64>,
    pub preview_size: Option<usize>,
    pub lr: Option<f64>,
    pub iters: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub checkpoint_every: Option<u64>,
    pub eval_every: Option<u64>,
    pub tiles: Option<usize>,
    pub ema_half_life: Option<f64>,
    pub ema_rampup: Option<f64>,
    /// `--no-ema` given again (pictures from the raw weights from now on); not given: the
    /// run's own choice holds.
    pub no_ema: bool,
}

/// `run` with the options of `given` applied at iteration `at` (see [`ResumeOptions`]).
pub fn resumed_config(mut run: RunConfig, given: &ResumeOptions, at: u64) -> Result<RunConfig> {
    fn fixed<T: PartialEq + std::fmt::Display>(
        flag: &str,
        given: Option<T>,
        have: T,
    ) -> Result<()> {
        match given {
            Some(v) if v != have => Err(Error::new(format!(
                "--resume: {flag} {v} differs from the run's {have}, and it is fixed for a run's life (start a new run with --out)"
            ))),
            _ => Ok(()),
        }
    }
    let m = &run.model;
    fixed("--crop", given.crop, m.crop)?;
    fixed("--batch", given.batch, m.batch)?;
    fixed("--d-window", given.d_window, m.d_window)?;
    fixed("--ngf", given.ngf, m.ngf)?;
    fixed("--ndf", given.ndf, m.ndf)?;
    fixed("--lambda-gan", given.lambda_gan, m.lambda_gan)?;
    fixed("--lambda-nce", given.lambda_nce, m.lambda_nce)?;
    fixed("--nce-patches", given.nce_patches, m.nce_patches)?;
    fixed("--lambda-r1", given.lambda_r1, m.lambda_r1)?;
    fixed("--lambda-idt", given.lambda_idt, m.lambda_idt)?;
    fixed("--seed", given.seed, run.seed)?;
    fixed("--preview-size", given.preview_size, run.preview_size)?;
    fixed("--ema-half-life", given.ema_half_life, run.ema_half_life)?;
    fixed("--ema-rampup", given.ema_rampup, run.ema_rampup)?;
    let stored_preset = run.preset.clone().unwrap_or_else(|| "none".into());
    fixed("--preset", given.preset.clone(), stored_preset)?;
    for (what, g, have) in [
        ("SOURCE", &given.source, &run.source),
        ("TARGET", &given.target, &run.target),
    ] {
        if let Some(p) = g {
            // run.json holds canonical paths; a missing file cannot be the run's.
            let same = std::fs::canonicalize(p).is_ok_and(|c| &c == have);
            if !same {
                return Err(Error::new(format!(
                    "--resume: {what} {} is not the run's picture {} (a run keeps its pictures; start a new run with --out)",
                    p.display(),
                    have.display()
                )));
            }
        }
    }
    if let Some(n) = given.iters
        && n < at
    {
        return Err(Error::new(format!(
            "--resume: --iters {n} is fewer than the {at} iterations the run has done"
        )));
    }
    let mut changes = Vec::new();
    let mut change = |option: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            changes.push(OptionChange {
                iter: at,
                option: option.into(),
                from,
                to,
            });
        }
    };
    use serde_json::json;
    if let Some(v) = given.lr {
        change("lr", json!(run.model.lr), json!(v));
        run.model.lr = v;
    }
    if let Some(v) = given.iters {
        change("iters", json!(run.iters), json!(v));
        run.iters = v;
        // A count given outright ends the time budget's estimate.
        if let Some(t) = &mut run.time {
            t.fixed_at.get_or_insert(at);
        }
    }
    if let Some(v) = given.snapshot_every {
        change("snapshot_every", json!(run.snapshot_every), json!(v));
        run.snapshot_every = v;
    }
    if let Some(v) = given.checkpoint_every {
        change("checkpoint_every", json!(run.checkpoint_every), json!(v));
        run.checkpoint_every = v;
    }
    if let Some(v) = given.eval_every {
        change("eval_every", json!(run.eval_every), json!(v));
        run.eval_every = v;
    }
    if let Some(v) = given.tiles {
        change("tiles", json!(run.tiles), json!(v));
        run.tiles = v;
    }
    if given.no_ema {
        change("no_ema", json!(run.no_ema), json!(true));
        run.no_ema = true;
    }
    run.changes.extend(changes);
    Ok(run)
}
