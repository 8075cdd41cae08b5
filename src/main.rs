//! The `sincut` command line. Subcommand logic lives in the library; this only parses and
//! reports. Errors are one line on stderr with a non-zero exit code.

use clap::{Args, Parser, Subcommand};
use sincut::commands::{Preset, RenderArgs, info_command, render_command};
use sincut::backend::device::Device;
use sincut::error::Error;
use sincut::fit::{
    FitOptions, FitOutcome, ResumeOptions, RunConfig, Verbosity, default_run_dir, fit,
};
use sincut::golden::{CheckOptions, run_check_golden};
use sincut::image::SaveOptions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sincut",
    version,
    about = "SinCUT: learn to translate one picture into the look of another"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct FitArgs {
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
    #[arg(long)]
    crop: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    /// Discriminator window: D scores each non-overlapping window of a crop.
    #[arg(long)]
    d_window: Option<usize>,
    #[arg(long)]
    ngf: Option<usize>,
    #[arg(long)]
    ndf: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    lambda_gan: Option<f64>,
    #[arg(long)]
    lambda_nce: Option<f64>,
    #[arg(long)]
    lambda_r1: Option<f64>,
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
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    device: Device,
    /// Only errors and the final result path.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// A line per iteration.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Train on a source and a target picture.
    Fit(Box<FitArgs>),
    /// Translate a picture at full resolution, tile by tile.
    Render {
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
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show what a checkpoint or run directory holds.
    Info { path: PathBuf },
    /// (Re)write a run directory's report.html: inputs, result next to the baselines,
    /// curves, snapshots, timings and configuration, in one self-contained page.
    Report {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Report the GPU, driver and NVRTC, and compile every CUDA kernel (registers, shared
    /// memory, spills). Exits non-zero when a kernel does not compile or spills.
    Doctor {
        /// Compile for this architecture (e.g. sm_90) instead of the GPU's own.
        #[arg(long)]
        arch: Option<String>,
        /// Also write every kernel's cubin to DIR, for a GPU machine without NVRTC
        /// (point SINCUT_PREBUILT_CUBINS at it there).
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
    /// Measure a translation: style distance to the target (patch SWD), content kept from the
    /// source (SSIM, edge correlation) and colour distance to the target (Lab W1).
    Eval {
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
        #[arg(long, default_value_t = sincut::eval::SWD_PATCHES)]
        patches: usize,
        /// Random projection directions for the SWD.
        #[arg(long, default_value_t = sincut::eval::SWD_DIRECTIONS)]
        directions: usize,
        /// Seed of the SWD's patch positions and directions.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Replay golden fixtures of the official implementation and compare every quantity.
    CheckGolden {
        /// Fixture folders, or folders holding fixture folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Device::Cpu)]
        device: Device,
        /// Write everything computed to OUT_DIR/<fixture>/{step,traj}.safetensors.
        #[arg(long, value_name = "OUT_DIR")]
        dump: Option<PathBuf>,
        /// How many of the worst quantities to list per fixture.
        #[arg(long, default_value_t = 10)]
        worst: usize,
    },
}

fn fit_options(a: FitArgs) -> sincut::error::Result<FitOptions> {
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
        };
        return Ok(FitOptions {
            run: RunConfig::from_preset(Preset::Default),
            out,
            resume: true,
            device: a.device,
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
    Ok(FitOptions {
        run,
        out,
        resume: false,
        device: a.device,
        verbosity,
        stop_at: None,
        no_final_render: a.no_render,
        resume_with: ResumeOptions::default(),
    })
}

fn run(cli: Cli) -> sincut::error::Result<ExitCode> {
    match cli.command {
        Command::Fit(a) => {
            let quiet = a.quiet;
            let opts = fit_options(*a)?;
            match fit(&opts)? {
                FitOutcome::Finished { result, iteration } => {
                    match result {
                        Some(p) => println!("{}", p.display()),
                        None => {
                            if !quiet {
                                eprintln!(
                                    "finished {iteration} iterations in {}",
                                    opts.out.display()
                                );
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
        Command::Render {
            run_dir,
            checkpoint,
            input,
            output,
            tiles,
            quality,
            sixteen_bit,
            seed,
            device,
            quiet,
        } => {
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
                quiet,
            };
            let out = render_command(&args)?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { path } => {
            print!("{}", info_command(&path)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { run_dir } => {
            // Not while a fit writes the run (it rewrites report.html itself at its end).
            let _lock = match run_dir.is_dir() {
                true => Some(sincut::fit::lock_run_dir(&run_dir)?),
                false => None,
            };
            let path = sincut::report::write_report(&run_dir)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { arch, export } => {
            let (report, ok) = sincut::cuda::doctor_report(arch.as_deref());
            print!("{report}");
            if let Some(dir) = export {
                let arch = arch.as_deref().unwrap_or("sm_90");
                let n = sincut::cuda::nvrtc::export_prebuilt(&dir, arch)
                    .map_err(|e| Error::new(e.to_string()))?;
                println!("exported {n} cubins for {arch} to {}", dir.display());
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Eval {
            output,
            source,
            target,
            json,
            baselines,
            save_baselines,
            patches,
            directions,
            seed,
        } => {
            if patches == 0 || directions == 0 {
                return Err(Error::new("--patches and --directions must be at least 1"));
            }
            let args = sincut::eval::EvalArgs {
                output,
                source,
                target,
                json,
                baselines: baselines || save_baselines.is_some(),
                save_baselines,
                swd: sincut::eval::SwdOptions {
                    patches,
                    directions,
                    seed,
                },
            };
            sincut::eval::run_eval(&args, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckGolden {
            dirs,
            device,
            dump,
            worst,
        } => {
            let opts = CheckOptions {
                device,
                dump,
                worst_n: worst,
            };
            let ok = run_check_golden(&dirs, &opts, &mut std::io::stdout().lock())?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn main() -> ExitCode {
    sincut::memory::keep_freed_memory();
    let cli = Cli::parse();
    match sincut::parallel::check_env().and_then(|()| run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sincut: error: {e}");
            ExitCode::from(2)
        }
    }
}
