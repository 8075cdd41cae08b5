//! The `sincut` command line. Subcommand logic lives in the library (`sincut::cli`); this only
//! parses and reports. Errors are one line on stderr with a non-zero exit code.

use clap::Parser;
use sincut::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    sincut::memory::keep_freed_memory();
    let cli = Cli::parse();
    match sincut::parallel::check_env().and_then(|()| sincut::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sincut: error: {e}");
            ExitCode::from(2)
        }
    }
}
