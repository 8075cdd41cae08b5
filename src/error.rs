//! The crate's one error type: a one-line, user-facing message.

use std::fmt;
use std::path::Path;

/// A one-line, user-facing error (file problems, bad fixtures, bad options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// An error about `path`: "<path>: <msg>".
    pub fn at(path: &Path, msg: impl fmt::Display) -> Self {
        Error(format!("{}: {}", path.display(), msg))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it on one line whatever the cause said.
        f.write_str(&self.0.replace('\n', " "))
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
