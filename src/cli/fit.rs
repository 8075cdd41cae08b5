//! `sincut fit`: the command line of a training run, turned into [`FitOptions`] (a fresh run's
//! configuration, or the options given again with `--resume`).

use crate::backend::device::{Device, Precision};
use crate::cli::presets::Preset;
use crate::error::{Error, Result};
use crate::fit::{FitOptions, FitOutcome, Verbosity, fit};
use crate::run::{ResumeOptions, RunConfig, TimeBudget, default_run_dir};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line of `sincut fit`.
#[derive(Args)]
pub struct FitFlags {
    /// The picture to translate (e.g. a painting).
    source: Option<PathBuf>,
    /// The picture whose look to learn (e.g. a photo).
    target: Option<PathBuf>,
    /// Run directory (default: runs/<source>-to-<target>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Starting point for the options below [default: default].
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Total iterations (lr constant for the first half, then linear decay to 0).
    #[arg(long)]
    iters: Option<u64>,
    /// Train for this long instead of a given count, e.g. 30m, 1h30m, 90s: the count is set
    /// from the speed measured during the run's first half (while the lr is constant), so the
    /// lr still decays to 0 on time. The final render comes after.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with_all = ["iters", "resume"])]
    time: Option<f64>,
    /// Side of the square crops trained on (a multiple of the D window) [default: the preset's]
    #[arg(long)]
    crop: Option<usize>,
    /// Crops of each picture per iteration; PatchNCE's negatives come from the others (≥ 2)
    /// [default: the preset's]
    #[arg(long)]
    batch: Option<usize>,
    /// Discriminator window: D scores each non-overlapping window of a crop.
    #[arg(long)]
    d_window: Option<usize>,
    /// Generator width: G has round(16384·ngf/32/r) channels at resolution r [default: the preset's]
    #[arg(long)]
    ngf: Option<usize>,
    /// Discriminator width: D has int(16384·ndf/64/r) channels at resolution r [default: the preset's]
    #[arg(long)]
    ndf: Option<usize>,
    /// Adam learning rate, constant for the first half, then decaying linearly to 0 [default: 0.002]
    #[arg(long)]
    lr: Option<f64>,
    /// Weight of G's non-saturating GAN loss [default: 1]
    #[arg(long)]
    lambda_gan: Option<f64>,
    /// Weight of PatchNCE, which keeps the translation's content [default: 4]
    #[arg(long)]
    lambda_nce: Option<f64>,
    /// PatchNCE positions per crop and layer; each patch's negatives are the batch's other
    /// patches (official SinCUT: 1; more gives the contrastive loss more to tell apart)
    /// [default: the preset's]
    #[arg(long)]
    nce_patches: Option<usize>,
    /// Weight of D's R1 gradient penalty on the real pictures [default: 1]
    #[arg(long)]
    lambda_r1: Option<f64>,
    /// Weight of the identity losses (G on the target picture) [default: 1]
    #[arg(long)]
    lambda_idt: Option<f64>,
    /// [default: 0]
    #[arg(long)]
    seed: Option<u64>,
    /// Snapshot interval in iterations (0: none).
    #[arg(long)]
    snapshot_every: Option<u64>,
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Quality metrics (as `sincut eval`) of a preview-size translation every N iterations,
    /// logged to metrics.jsonl (default: the snapshot interval; 0: none).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Long side of the preview snapshots (and of the pictures the logged metrics compare)
    /// [default: 512].
    #[arg(long)]
    preview_size: Option<usize>,
    /// Tile size of the final full-resolution render [default: 512].
    #[arg(long)]
    tiles: Option<usize>,
    /// Skip the final full-resolution render.
    #[arg(long)]
    no_render: bool,
    /// Half-life in images of the moving average (EMA) of G's weights kept beside them
    /// (0: keep none) [default: see `crate::train::ema::DEFAULT_EMA_HALF_LIFE`].
    #[arg(long, value_name = "IMAGES", help = format!(
        "Half-life in images of the moving average (EMA) of G's weights kept beside them (0: keep none) [default: {}; fixed for a run's life]",
        crate::train::ema::DEFAULT_EMA_HALF_LIFE
    ))]
    ema_half_life: Option<f64>,
    /// The EMA's ramp-up: its half-life is at most R times the images seen so far, so early
    /// averages are short (StyleGAN2's).
    #[arg(long, value_name = "R", help = format!(
        "The EMA's ramp-up: its half-life is at most R times the images seen so far, so early averages are short (StyleGAN2's) [default: {}; fixed for a run's life]",
        crate::train::ema::DEFAULT_EMA_RAMPUP
    ))]
    ema_rampup: Option<f64>,
    /// Snapshots, logged quality metrics and result.png from the raw weights instead of the
    /// EMA (which is still kept and stored, for `render`).
    #[arg(long)]
    no_ema: bool,
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    device: Device,
    /// Matrix-product operands: f32, or bf16 with f32 accumulation (on CUDA: tensor cores,
    /// sm_80+; on the CPU: operands rounded inside the AVX-512 GEMM, no faster than f32);
    /// auto is f32 for now [default: auto; on resume: the run's].
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Only errors and the final result path.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// A line per iteration.
    #[arg(short, long)]
    verbose: bool,
}

/// What `fit` is asked, from its command line.
pub fn fit_options(a: FitFlags) -> Result<FitOptions> {
    let verbosity = if a.quiet {
        Verbosity::Quiet
    } else if a.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    // On resume only what was given counts (checked against the run in `fit`); defaults
    // would otherwise silently replace the run's own values.
    if let Some(out) = a.resume {
        let resume_with = ResumeOptions {
            source: a.source,
            target: a.target,
            preset: a.preset.map(|p| p.name().to_string()),
            crop: a.crop,
            batch: a.batch,
            d_window: a.d_window,
            ngf: a.ngf,
            ndf: a.ndf,
            lambda_gan: a.lambda_gan,
            lambda_nce: a.lambda_nce,
            nce_patches: a.nce_patches,
            lambda_r1: a.lambda_r1,
            lambda_idt: a.lambda_idt,
            seed: a.seed,
            preview_size: a.preview_size,
            lr: a.lr,
            iters: a.iters,
            snapshot_every: a.snapshot_every,
            checkpoint_every: a.checkpoint_every,
            eval_every: a.eval_every,
            tiles: a.tiles,
            ema_half_life: a.ema_half_life,
            ema_rampup: a.ema_rampup,
            no_ema: a.no_ema,
        };
        return Ok(FitOptions {
            run: RunConfig::from_preset(Preset::Default),
            out,
            resume: true,
            device: a.device,
            precision: a.precision,
            verbosity,
            stop_at: None,
            no_final_render: a.no_render,
            resume_with,
        });
    }
    let preset = a.preset.unwrap_or(Preset::Default);
    let mut run = RunConfig::from_preset(preset);
    let model = &mut run.model;
    let set = |dst: &mut usize, v: Option<usize>| v.into_iter().for_each(|v| *dst = v);
    set(&mut model.crop, a.crop);
    set(&mut model.batch, a.batch);
    set(&mut model.d_window, a.d_window);
    set(&mut model.ngf, a.ngf);
    set(&mut model.ndf, a.ndf);
    set(&mut model.nce_patches, a.nce_patches);
    let setf = |dst: &mut f64, v: Option<f64>| v.into_iter().for_each(|v| *dst = v);
    setf(&mut model.lr, a.lr);
    setf(&mut model.lambda_gan, a.lambda_gan);
    setf(&mut model.lambda_nce, a.lambda_nce);
    setf(&mut model.lambda_r1, a.lambda_r1);
    setf(&mut model.lambda_idt, a.lambda_idt);
    let (Some(source), Some(target)) = (a.source, a.target) else {
        return Err(Error::new(
            "fit needs a SOURCE and a TARGET picture (or --resume RUN_DIR)",
        ));
    };
    let out = a.out.unwrap_or_else(|| default_run_dir(&source, &target));
    run.source = source;
    run.target = target;
    run.iters = a.iters.unwrap_or(run.iters);
    run.time = a.time.map(|seconds| TimeBudget {
        seconds,
        s_per_iter: None,
        fixed_at: None,
    });
    run.seed = a.seed.unwrap_or(0);
    // The eval interval follows the snapshot interval unless given.
    run.eval_every = a
        .eval_every
        .or(a.snapshot_every)
        .unwrap_or(run.snapshot_every);
    run.snapshot_every = a.snapshot_every.unwrap_or(run.snapshot_every);
    run.checkpoint_every = a.checkpoint_every.unwrap_or(run.checkpoint_every);
    run.preview_size = a.preview_size.unwrap_or(run.preview_size);
    run.tiles = a.tiles.unwrap_or(run.tiles);
    run.ema_half_life = a.ema_half_life.unwrap_or(run.ema_half_life);
    run.ema_rampup = a.ema_rampup.unwrap_or(run.ema_rampup);
    run.no_ema = a.no_ema;
    Ok(FitOptions {
        run,
        out,
        resume: false,
        device: a.device,
        precision: a.precision,
        verbosity,
        stop_at: None,
        no_final_render: a.no_render,
        resume_with: ResumeOptions::default(),
    })
}

/// Runs `sincut fit`: the exit code, or the error `main` prints.
pub fn run(a: FitFlags) -> Result<ExitCode> {
    let quiet = a.quiet;
    let opts = fit_options(a)?;
    match fit(&opts)? {
        FitOutcome::Finished { result, iteration } => {
            match result {
                Some(p) => println!("{}", p.display()),
                None => {
                    if !quiet {
                        eprintln!("finished {iteration} iterations in {}", opts.out.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FitOutcome::Stopped { iteration } => {
            eprintln!(
                "stopped at iteration {iteration}; continue with: sincut fit --resume {}",
                opts.out.display()
            );
            Ok(ExitCode::from(130))
        }
    }
}

/// Seconds in a duration such as `30m`, `1h30m`, `90s` or `1.5h` (a unit on every number).
pub fn parse_duration(text: &str) -> std::result::Result<f64, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 30m, 1h30m, 90s)");
    let (mut total, mut number) = (0.0f64, String::new());
    for ch in text.trim().chars() {
        match ch {
            '0'..='9' | '.' => number.push(ch),
            'h' | 'm' | 's' => {
                let v: f64 = number.parse().map_err(|_| bad())?;
                total += v * match ch {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                number.clear();
            }
            _ => return Err(bad()),
        }
    }
    if !number.is_empty() {
        return Err(format!("{text:?} needs a unit: h, m or s (e.g. 30m)"));
    }
    if !(total.is_finite() && total > 0.0) {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_with_units_only() {
        assert_eq!(parse_duration("30m"), Ok(1800.0));
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_duration("90s"), Ok(90.0));
        assert_eq!(parse_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_duration("2m30s"), Ok(150.0));
        for bad in ["30", "", "m", "0m", "1x", "-5m", "1..5m", "1h 30m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
