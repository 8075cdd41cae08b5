//! `sincut check-golden`: replays golden fixtures of the official implementation (the
//! comparison itself is [`crate::golden`]).

use crate::backend::Backend;
use crate::backend::device::Device;
use crate::backend::device::{OnBackend, Precision, open_backend};
use crate::error::Error;
use crate::error::Result;
use crate::golden::{CheckOptions, FixtureReport, check_fixture_on, find_fixtures};
use clap::Args;
use std::path::Path;
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

/// [`check_fixture_on`] as work for the opened backend.
struct CheckFixture<'a> {
    dir: &'a Path,
    opts: &'a CheckOptions,
}

impl OnBackend for CheckFixture<'_> {
    type Output = FixtureReport;
    fn run<B: Backend<Elem = f32>>(self, e: &B) -> Result<FixtureReport> {
        check_fixture_on(e, self.dir, self.opts)
    }
}

/// `sincut check-golden DIR...`: checks every fixture found, prints a table and a verdict per
/// fixture to `out` and fixture errors as one line each on stderr. Ok(true) when all pass.
pub fn run_check_golden(
    dirs: &[PathBuf],
    opts: &CheckOptions,
    out: &mut dyn std::io::Write,
) -> Result<bool> {
    // The fixtures are the official f32 numbers: always f32.
    let backend = open_backend(opts.device, Precision::F32, false)?;
    let mut fixtures = Vec::new();
    for d in dirs {
        fixtures.extend(find_fixtures(d)?);
    }
    let worst_n = if opts.worst_n == 0 { 10 } else { opts.worst_n };
    let mut passed = 0;
    for f in &fixtures {
        let checked = backend.run(CheckFixture { dir: f, opts });
        let line = match checked {
            Ok(report) => {
                passed += usize::from(report.passed());
                report.table(worst_n)
            }
            Err(e) => {
                eprintln!("sincut: error: {e}");
                format!("FAIL {}: {e}\n", f.display())
            }
        };
        write!(out, "{line}").map_err(|e| Error::new(format!("cannot write output: {e}")))?;
    }
    writeln!(out, "{passed} of {} fixtures pass", fixtures.len())
        .map_err(|e| Error::new(format!("cannot write output: {e}")))?;
    Ok(passed == fixtures.len())
}
