//! `sincut report`: (re)writes a run directory's report.html.

use crate::error::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line of `sincut report`.
#[derive(Args)]
pub struct ReportFlags {
    /// The run directory.
    run_dir: PathBuf,
}

/// Runs `sincut report`: the exit code, or the error `main` prints.
pub fn run(flags: ReportFlags) -> Result<ExitCode> {
    let ReportFlags { run_dir } = flags;
    // Not while a fit writes the run (it rewrites report.html itself at its end).
    let _lock = match run_dir.is_dir() {
        true => Some(crate::run::lock_run_dir(&run_dir)?),
        false => None,
    };
    let path = crate::report::write_report(&run_dir)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
