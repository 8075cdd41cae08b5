//! `sincut info`: what a checkpoint or a run directory holds.

use crate::error::Result;
use crate::fit::load_model_checkpoint;
use crate::run::{checkpoint_path, load_run_config};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The command line of `sincut info`.
#[derive(Args)]
pub struct InfoFlags {
    path: PathBuf,
}

/// Runs `sincut info`: the exit code, or the error `main` prints.
pub fn run(flags: InfoFlags) -> Result<ExitCode> {
    let InfoFlags { path } = flags;
    print!("{}", info_command(&path)?);
    Ok(ExitCode::SUCCESS)
}

/// `sincut info`: what a checkpoint (or a run directory's checkpoint) holds.
pub fn info_command(path: &Path) -> Result<String> {
    let (ck_path, run) = if path.is_dir() {
        (checkpoint_path(path), Some(load_run_config(path)?))
    } else {
        (path.to_path_buf(), None)
    };
    let (ck, nets) = load_model_checkpoint(&ck_path)?;
    let count = |prefix: &str| -> usize {
        ck.params
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.len())
            .sum()
    };
    let c = &ck.config;
    let mut s = String::new();
    s += &format!("checkpoint  {}\n", ck_path.display());
    s += &format!("iteration   {}\n", ck.iteration);
    if let Some(r) = &run {
        s += &format!(
            "run         {} → {}, {} iterations, seed {}{}\n",
            r.source.display(),
            r.target.display(),
            r.iters,
            r.seed,
            r.preset
                .as_ref()
                .map(|p| format!(", preset {p}"))
                .unwrap_or_default()
        );
    }
    s += &format!(
        "model       crop {}, batch {}, ngf {}, ndf {}, D window {}, model resolution {}\n",
        c.crop, c.batch, c.ngf, c.ndf, c.d_window, c.model_resolution
    );
    s += &format!(
        "widths      G {}/{}, D {}…{}\n",
        c.g_channels(c.model_resolution),
        c.g_channels(c.model_resolution / 2),
        c.d_channels(c.d_window),
        c.d_channels(4)
    );
    s += &format!(
        "losses      λ_GAN {}, λ_NCE {} ({} patch{} per layer), λ_R1 {}, λ_idt {}, τ {}\n",
        c.lambda_gan,
        c.lambda_nce,
        c.nce_patches,
        if c.nce_patches == 1 { "" } else { "es" },
        c.lambda_r1,
        c.lambda_idt,
        c.nce_t
    );
    s += &format!(
        "parameters  G {}, D {}, F {} ({} tensors)\n",
        count("G."),
        count("D."),
        count("F."),
        nets.param_shapes().len()
    );
    s += &format!(
        "optimizer   {}\n",
        if ck.adam.is_some() {
            format!(
                "Adam state present, lr {}, β ({}, {})",
                c.lr, c.beta1, c.beta2
            )
        } else {
            "none (inference only)".into()
        }
    );
    let ema = match (&ck.ema, &run) {
        (None, _) => "none (render uses the raw weights)".to_string(),
        (Some(_), None) => "moving average (EMA) of G's weights present; render uses it (--no-ema: the raw weights)".into(),
        (Some(_), Some(r)) => format!(
            "moving average (EMA) of G's weights, half-life {} images, ramp-up {}; render uses it (--no-ema: the raw weights)",
            r.ema_half_life, r.ema_rampup
        ),
    };
    s += &format!("G average   {ema}\n");
    if let Some(r) = &run {
        s += &format!(
            "pictures    snapshots, quality lines and result.png from the {}\n",
            r.picture_weights()
        );
    }
    Ok(s)
}
