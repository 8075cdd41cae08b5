//! The user-facing commands besides `fit` itself: presets, `render`, `info`.

use crate::config::ModelConfig;
use crate::backend::device::{Device, open_backend};
use crate::error::{Error, Result};
use crate::fit::{RunConfig, checkpoint_path, load_model_checkpoint, load_run_config};
use crate::image::{SaveOptions, load_rgb, save_rgb};
use crate::render::RenderOptions;
use std::path::{Path, PathBuf};

/// A named set of training options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// This project's defaults: crop 128, batch 16, ngf 10, ndf 8, ≈100k iterations (GPU-sized).
    Default,
    /// The official SinCUT geometry: crop 64, batch 16, ngf 10, ndf 8, 100k iterations.
    Official,
    /// A visible translation in about 10 minutes on a 2-core CPU (smaller model and batch).
    Quick,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::Official => "official",
            Preset::Quick => "quick",
        }
    }

    /// (model, iterations, snapshot interval, checkpoint interval).
    pub fn settings(self) -> (ModelConfig, u64, u64, u64) {
        let base = ModelConfig::default();
        match self {
            Preset::Default => (base, 100_000, 2_000, 1_000),
            Preset::Official => (ModelConfig { crop: 64, ..base }, 100_000, 2_000, 1_000),
            Preset::Quick => (
                ModelConfig {
                    crop: 64,
                    batch: 4,
                    ngf: 4,
                    ndf: 4,
                    ..base
                },
                1_500,
                250,
                250,
            ),
        }
    }
}

impl RunConfig {
    /// A fresh run's configuration from a preset (pictures empty, seed 0, 512-pixel previews
    /// and tiles, quality metrics at the snapshot interval).
    pub fn from_preset(preset: Preset) -> RunConfig {
        let (model, iters, snapshot_every, checkpoint_every) = preset.settings();
        RunConfig {
            source: PathBuf::new(),
            target: PathBuf::new(),
            model,
            iters,
            seed: 0,
            snapshot_every,
            checkpoint_every,
            preview_size: 512,
            tiles: 512,
            preset: Some(preset.name().to_string()),
            eval_every: snapshot_every,
            device: None,
            changes: Vec::new(),
        }
    }
}

/// `sincut render`: translates a picture at full resolution with a trained generator.
pub struct RenderArgs {
    pub run_dir: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
    pub input: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub tiles: usize,
    pub save: SaveOptions,
    pub seed: Option<u64>,
    pub device: Device,
    pub quiet: bool,
}

pub fn render_command(a: &RenderArgs) -> Result<PathBuf> {
    crate::render::check_tile(a.tiles)?;
    let run: Option<RunConfig> = a.run_dir.as_deref().map(load_run_config).transpose()?;
    let ck_path = match (&a.checkpoint, &a.run_dir) {
        (Some(c), Some(d)) => {
            // The run's source and seed with another run's weights would be a silent mix.
            let own = std::fs::canonicalize(checkpoint_path(d)).ok();
            if own.is_none() || std::fs::canonicalize(c).ok() != own {
                return Err(Error::new(format!(
                    "--checkpoint {} is not the checkpoint of run {}; give one of them (with --checkpoint, --input and --seed say what the run would)",
                    c.display(),
                    d.display()
                )));
            }
            c.clone()
        }
        (Some(c), None) => c.clone(),
        (None, Some(d)) => checkpoint_path(d),
        (None, None) => return Err(Error::new("give a run directory or --checkpoint FILE")),
    };
    let input = match (&a.input, &run) {
        (Some(i), _) => i.clone(),
        (None, Some(r)) => r.source.clone(),
        (None, None) => return Err(Error::new("--input IMAGE is needed with --checkpoint")),
    };
    let output = match (&a.output, &a.run_dir) {
        (Some(o), _) => o.clone(),
        (None, Some(d)) => d.join("render.png"),
        (None, None) => {
            let stem = input
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            PathBuf::from(format!("{stem}-sincut.png"))
        }
    };
    crate::image::check_output(&output, &a.save)?;
    let (ck, nets) = load_model_checkpoint(&ck_path)?;
    let img = load_rgb(&input)?;
    let backend = open_backend(a.device, a.quiet)?;
    let seed = a.seed.or(run.as_ref().map(|r| r.seed)).unwrap_or(0);
    let (_, h, w) = img.dim();
    // A progress line rewritten in place on a terminal; in a log, one line at the end.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut report = |done: usize, total: usize| {
        if a.quiet {
        } else if terminal {
            eprint!("\rrendering {w}×{h}: tile {done}/{total}");
            if done == total {
                eprintln!();
            }
        } else if done == total {
            eprintln!("rendered {w}×{h} in {total} tiles");
        }
    };
    let out = backend.run(crate::render::RenderJob {
        nets: &nets,
        params: &ck.params,
        img: &img,
        opts: RenderOptions {
            tile: a.tiles,
            seed,
        },
        progress: &mut report,
    })?;
    save_rgb(&output, &out, &a.save)?;
    Ok(output)
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
        "losses      λ_GAN {}, λ_NCE {}, λ_R1 {}, λ_idt {}, τ {}\n",
        c.lambda_gan, c.lambda_nce, c.lambda_r1, c.lambda_idt, c.nce_t
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
    Ok(s)
}
