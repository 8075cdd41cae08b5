//! `sincut check-golden`: replays golden fixtures of the official implementation (the
//! comparison itself is [`crate::golden`]).

use crate::backend::device::Device;
use crate::error::Result;
use crate::golden::{CheckOptions, run_check_golden};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command line of `sincut check-golden`.
#[derive(Args)]
pub struct CheckGoldenFlags {
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
}

/// Runs `sincut check-golden`: the exit code, or the error `main` prints.
pub fn run(flags: CheckGoldenFlags) -> Result<ExitCode> {
    let CheckGoldenFlags {
        dirs,
        device,
        dump,
        worst,
    } = flags;
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
