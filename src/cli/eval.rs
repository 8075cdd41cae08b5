//! `sincut eval`: measures a translation (and with `--baselines` the colour baselines) and
//! prints a table; the metrics themselves are [`crate::eval`].

use crate::error::{Error, Result};
use crate::eval::{
    EVAL_MIN_SIDE, Metrics, SWD_PATCH, SwdOptions, evaluate_with, histogram_match,
    reinhard_transfer,
};
use crate::image::{SaveOptions, load_rgb, save_rgb};
use crate::io::write_atomic;
use clap::Args;
use ndarray::Array3;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The command line of `sincut eval`.
#[derive(Args)]
pub struct EvalFlags {
    /// The translated picture.
    #[arg(long)]
    output: PathBuf,
    /// The picture that was translated.
    #[arg(long)]
    source: PathBuf,
    /// The picture whose look was learned.
    #[arg(long)]
    target: PathBuf,
    /// Also write the figures to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also measure the source itself, Reinhard colour transfer and histogram matching.
    #[arg(long)]
    baselines: bool,
    /// Also save the baseline pictures (reinhard.png, histogram.png) into this folder
    /// (implies --baselines).
    #[arg(long, value_name = "DIR")]
    save_baselines: Option<PathBuf>,
    /// 7x7 patches drawn per picture and pyramid level for the SWD.
    #[arg(long, default_value_t = crate::eval::SWD_PATCHES)]
    patches: usize,
    /// Random projection directions for the SWD.
    #[arg(long, default_value_t = crate::eval::SWD_DIRECTIONS)]
    directions: usize,
    /// Seed of the SWD's patch positions and directions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `sincut eval`: the exit code, or the error `main` prints.
pub fn run(flags: EvalFlags) -> Result<ExitCode> {
    let EvalFlags {
        output,
        source,
        target,
        json,
        baselines,
        save_baselines,
        patches,
        directions,
        seed,
    } = flags;
    if patches == 0 || directions == 0 {
        return Err(Error::new("--patches and --directions must be at least 1"));
    }
    crate::memory::check_fits(
        crate::memory::swd_lower_bound(patches, directions),
        &format!("the SWD with --patches {patches} --directions {directions}"),
    )?;
    let args = EvalArgs {
        output,
        source,
        target,
        json,
        baselines: baselines || save_baselines.is_some(),
        save_baselines,
        swd: SwdOptions {
            patches,
            directions,
            seed,
        },
    };
    run_eval(&args, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// What `sincut eval` is asked.
#[derive(Clone, Debug)]
pub struct EvalArgs {
    pub output: PathBuf,
    pub source: PathBuf,
    pub target: PathBuf,
    pub json: Option<PathBuf>,
    pub baselines: bool,
    /// Save the colour baselines' pictures here (`reinhard.png`, `histogram.png`).
    pub save_baselines: Option<PathBuf>,
    pub swd: SwdOptions,
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub metrics: Metrics,
}

#[derive(Serialize)]
struct Report<'a> {
    output: &'a Path,
    source: &'a Path,
    target: &'a Path,
    swd_patch: usize,
    swd_patches_per_level: usize,
    swd_directions: usize,
    seed: u64,
    rows: &'a [Row],
}

fn load_checked(path: &Path) -> Result<Array3<f32>> {
    let img = load_rgb(path)?;
    let (_, h, w) = img.dim();
    if h < EVAL_MIN_SIDE || w < EVAL_MIN_SIDE {
        return Err(Error::at(
            path,
            format!("picture too small to evaluate ({w}x{h}; at least {EVAL_MIN_SIDE} px a side)"),
        ));
    }
    Ok(img)
}

/// `sincut eval`: loads the pictures, measures the result (and with `baselines` the source
/// itself, the Reinhard transfer and histogram matching), prints a table to `out` and writes
/// the JSON report when asked. Errors are one line naming the file.
pub fn run_eval(args: &EvalArgs, out: &mut dyn Write) -> Result<Vec<Row>> {
    let result = load_checked(&args.output)?;
    let source = load_checked(&args.source)?;
    let target = load_checked(&args.target)?;
    if let Some(dir) = &args.save_baselines {
        // Before any measuring: an unwritable folder fails at once.
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::at(dir, format!("cannot create the folder: {e}")))?;
    }
    let mut rows = vec![Row {
        name: "result".into(),
        metrics: evaluate_with(&result, &source, &target, &args.swd),
    }];
    if args.baselines {
        let candidates = [
            ("source", source.clone()),
            ("reinhard", reinhard_transfer(&source, &target)),
            ("histogram", histogram_match(&source, &target)),
        ];
        for (name, pic) in candidates {
            if let (Some(dir), true) = (&args.save_baselines, name != "source") {
                save_rgb(
                    &dir.join(format!("{name}.png")),
                    &pic,
                    &SaveOptions::default(),
                )?;
            }
            rows.push(Row {
                name: name.into(),
                metrics: evaluate_with(&pic, &source, &target, &args.swd),
            });
        }
    }
    let io = |e: std::io::Error| Error::new(format!("cannot print the table: {e}"));
    writeln!(
        out,
        "{:<10} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "", "SWDx1e3", "SWD tex", "SSIM", "SSIM/4", "edge r", "W1 L", "W1 a", "W1 b", "W1 Lab"
    )
    .map_err(io)?;
    for r in &rows {
        let m = &r.metrics;
        let q = m
            .ssim_4x
            .map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        writeln!(
            out,
            "{:<10} {:>9.3} {:>9.3} {:>7.4} {:>7} {:>7.4} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            r.name,
            m.swd.mean,
            m.swd.texture,
            m.ssim,
            q,
            m.edge_correlation,
            m.lab_w1[0],
            m.lab_w1[1],
            m.lab_w1[2],
            m.lab_w1_sum
        )
        .map_err(io)?;
    }
    if let Some(path) = &args.json {
        let report = Report {
            output: &args.output,
            source: &args.source,
            target: &args.target,
            swd_patch: SWD_PATCH,
            swd_patches_per_level: args.swd.patches,
            swd_directions: args.swd.directions,
            seed: args.swd.seed,
            rows: &rows,
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::at(path, format!("cannot encode JSON: {e}")))?;
        write_atomic(path, text.as_bytes())?;
    }
    Ok(rows)
}
