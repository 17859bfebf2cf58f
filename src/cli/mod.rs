//! The command-line front end: arguments, output, the demo. Std only.

pub mod args;
mod commands;
pub mod demo;
mod demo_cases;
mod demo_setup;
pub mod help;
pub mod home;
pub mod logger;
pub mod metrics;
pub mod print;

use std::fmt;
use std::io;
use std::path::Path;

use rusqlite::Connection;
use sandbox_sweep::OpenOptions;

/// Why the CLI stopped: a usage error (exit 2) or anything else (exit 1).
#[derive(Debug)]
pub enum CliError {
    /// A bad command line.
    Usage(String),
    /// Writing output failed (a broken pipe exits 0).
    Io(io::Error),
    /// The library failed.
    Sweep(sandbox_sweep::Error),
    /// Anything else, already phrased for the user.
    Other(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(msg) | CliError::Other(msg) => f.write_str(msg),
            CliError::Io(err) => write!(f, "{err}"),
            CliError::Sweep(
                err @ (sandbox_sweep::Error::MissingTable { .. }
                | sandbox_sweep::Error::MissingColumn { .. }),
            ) => write!(f, "{err:#}; run `sandbox-sweep init` on it first"),
            CliError::Sweep(err) => write!(f, "{err:#}"),
        }
    }
}

impl From<io::Error> for CliError {
    fn from(err: io::Error) -> Self {
        CliError::Io(err)
    }
}

impl From<rusqlite::Error> for CliError {
    fn from(err: rusqlite::Error) -> Self {
        CliError::Sweep(err.into())
    }
}

impl From<sandbox_sweep::Error> for CliError {
    fn from(err: sandbox_sweep::Error) -> Self {
        CliError::Sweep(err)
    }
}

/// Opens a catalog that must already exist; never creates or converts a
/// file. A command that only reads opens it `read_only`: it then works for
/// a user who may read the home but not write it, and changes nothing.
pub fn open_existing(
    home: Option<&args::Home>,
    db: &Path,
    read_only: bool,
) -> Result<Connection, CliError> {
    match std::fs::metadata(db) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(CliError::Other(format!("{}: not a file", db.display()))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(CliError::Other(home::no_catalog(home, db)));
        }
        Err(err) => return Err(CliError::Other(format!("{}: {err}", db.display()))),
    }
    Ok(OpenOptions::new()
        .create(false)
        .read_only(read_only)
        .open(db)?)
}
