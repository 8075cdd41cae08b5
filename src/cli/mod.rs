//! The `sincut` command line: one module per subcommand, each with its flags and what it runs.
//! Errors are returned to `main`, which prints them as one line.

pub mod check_golden;
pub mod doctor;
pub mod eval;
pub mod fit;
pub mod info;
pub mod presets;
pub mod render;
pub mod report;

use crate::error::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sincut",
    version,
    about = "SinCUT: learn to translate one picture into the look of another"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train on a source and a target picture.
    Fit(Box<fit::FitFlags>),
    /// Translate a picture at full resolution, tile by tile.
    Render(render::RenderFlags),
    /// Show what a checkpoint or run directory holds.
    Info(info::InfoFlags),
    /// (Re)write a run directory's report.html: inputs, result next to the baselines,
    /// curves, snapshots, timings and configuration, in one self-contained page.
    Report(report::ReportFlags),
    /// Report the GPU, driver and NVRTC, and compile every CUDA kernel (registers, shared
    /// memory, spills). Exits non-zero when a kernel does not compile or spills.
    Doctor(doctor::DoctorFlags),
    /// Measure a translation: style distance to the target (patch SWD), content kept from the
    /// source (SSIM, edge correlation) and colour distance to the target (Lab W1).
    Eval(eval::EvalFlags),
    /// Replay golden fixtures of the official implementation and compare every quantity.
    CheckGolden(check_golden::CheckGoldenFlags),
}

/// Runs the parsed command; the exit code of success or of a finding (stopped run, failed
/// check).
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Fit(flags) => fit::run(*flags),
        Command::Render(flags) => render::run(flags),
        Command::Info(flags) => info::run(flags),
        Command::Report(flags) => report::run(flags),
        Command::Doctor(flags) => doctor::run(flags),
        Command::Eval(flags) => eval::run(flags),
        Command::CheckGolden(flags) => check_golden::run(flags),
    }
}
