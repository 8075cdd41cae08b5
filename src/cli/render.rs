//! `sincut render`: translates a picture at full resolution with a trained generator.

use crate::backend::device::{Device, Precision, open_backend};
use crate::error::{Error, Result};
use crate::fit::load_model_checkpoint;
use crate::image::{SaveOptions, load_rgb, save_rgb};
use crate::render::RenderOptions;
use crate::run::{RunConfig, checkpoint_path, load_run_config};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line of `sincut render`.
#[derive(Args)]
pub struct RenderFlags {
    /// A run directory (uses its checkpoint and, by default, its source picture).
    run_dir: Option<PathBuf>,
    /// A checkpoint file instead of a run directory.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The picture to translate (default: the run's source).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output file; the format follows the extension (.png, .jpg, .tif).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Tile size (memory is bounded by the tile, not the picture).
    #[arg(long, default_value_t = 512)]
    tiles: usize,
    /// JPEG quality.
    #[arg(long, default_value_t = 95, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// 16 bits per channel (PNG, TIFF).
    #[arg(long)]
    sixteen_bit: bool,
    /// Noise seed (default: the run's seed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    device: Device,
    /// Matrix-product operands (see `fit --help`).
    #[arg(long, value_enum, default_value_t = Precision::Auto)]
    precision: Precision,
    /// G's raw weights instead of the moving average (EMA) the checkpoint holds when its run
    /// kept one.
    #[arg(long)]
    no_ema: bool,
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `sincut render`: the exit code, or the error `main` prints.
pub fn run(flags: RenderFlags) -> Result<ExitCode> {
    let RenderFlags {
        run_dir,
        checkpoint,
        input,
        output,
        tiles,
        quality,
        sixteen_bit,
        seed,
        device,
        precision,
        no_ema,
        quiet,
    } = flags;
    let args = RenderArgs {
        run_dir,
        checkpoint,
        input,
        output,
        tiles,
        save: SaveOptions {
            jpeg_quality: quality,
            sixteen_bit,
        },
        seed,
        device,
        precision,
        no_ema,
        quiet,
    };
    let out = render_command(&args)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
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
    pub precision: Precision,
    /// The raw weights even where the checkpoint holds an average of G's.
    pub no_ema: bool,
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
    let (_, h, w) = img.dim();
    crate::memory::check_fits(
        crate::memory::render_lower_bound(
            &ck.config,
            h,
            w,
            a.tiles,
            crate::render::receptive_field(&nets.g),
        ),
        &format!(
            "rendering {w}×{h} with --tiles {} (ngf {})",
            a.tiles, ck.config.ngf
        ),
    )?;
    let backend = open_backend(a.device, a.precision, a.quiet)?;
    let seed = a.seed.or(run.as_ref().map(|r| r.seed)).unwrap_or(0);
    let (_, h, w) = img.dim();
    // G's moving average when the checkpoint holds one (it names only G's parameters, all
    // that rendering reads), unless --no-ema.
    let (params, weights) = match (&ck.ema, a.no_ema) {
        (Some(ema), false) => (ema, "EMA weights"),
        _ => (&ck.params, "raw weights"),
    };
    // A progress line rewritten in place on a terminal; in a log, one line at the end.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut report = |done: usize, total: usize| {
        if a.quiet {
        } else if terminal {
            eprint!("\rrendering {w}×{h} ({weights}): tile {done}/{total}");
            if done == total {
                eprintln!();
            }
        } else if done == total {
            eprintln!("rendered {w}×{h} in {total} tiles ({weights})");
        }
    };
    let out = backend.run(crate::render::RenderJob {
        nets: &nets,
        params,
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
