//! The run directory's lock: one process at a time writes a run (fit, resume, report).
//!
//! `<run>/.sincut.lock` holds the holder's pid and carries an advisory `flock`. The kernel
//! drops the flock when its process ends however it ends, so a lock file left by a killed
//! process (a stale lock) is recognised by the lock being free, and taken over.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".sincut.lock";

/// Held while a process writes a run directory; released (the file removed) on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    _file: File,
}

impl RunLock {
    /// Takes the lock of the existing directory `dir`, or fails naming the process holding it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        let fail =
            |e: std::io::Error| Error::at(dir, format_args!("cannot lock the run directory: {e}"));
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(fail)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok())
                        .map_or_else(|| "another process".to_string(), |p| format!("process {p}"));
                    return Err(Error::at(
                        dir,
                        format_args!(
                            "is in use by sincut {holder} (lock file {LOCK_FILE}); wait for it to end or stop it"
                        ),
                    ));
                }
                Err(TryLockError::Error(e)) => return Err(fail(e)),
            }
            // The previous holder removes the file when it ends: if it did so between our open
            // and our lock, we hold a lock on a removed file, and start over.
            if !same_file(&file, &path) {
                continue;
            }
            file.set_len(0).map_err(fail)?;
            writeln!(file, "{}", std::process::id()).map_err(fail)?;
            return Ok(RunLock { path, _file: file });
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked (the file closes after this), so nobody takes a lock on a
        // file about to disappear without noticing (see `same_file`).
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

/// Whether a process with this pid is running. Where that cannot be told (no /proc), every
/// process counts as running, so that nothing of a live process is ever removed.
pub fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}
