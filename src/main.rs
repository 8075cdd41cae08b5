//! The `sincut` command line. Subcommand logic lives in the library; this only parses and
//! reports.

use clap::{Parser, Subcommand};
use sincut::golden::{CheckOptions, Device, run_check_golden};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sincut", version, about = "SinCUT single-image translation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn run(cli: Cli) -> sincut::io::Result<bool> {
    match cli.command {
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
            run_check_golden(&dirs, &opts, &mut std::io::stdout().lock())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sincut: error: {e}");
            ExitCode::from(2)
        }
    }
}
