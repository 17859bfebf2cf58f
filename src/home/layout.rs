//! Where a microsandbox home keeps its parts: the catalog, the sandboxes
//! directory and the run directory, and the home itself from `$MSB_HOME`
//! or `~/.microsandbox`, as msb finds it.
//!
//! Owns that resolution, for the CLI and for every embedder: nothing else
//! in the crate reads `$MSB_HOME`. Names paths and opens the catalog; never
//! creates a file or a directory, and never changes the process's identity
//! (that is [`ActingAsOwner`](super::ActingAsOwner)'s, on request).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, OpenOptions};
use crate::error::{Error, Result};
use crate::orphans::OrphanScan;
use crate::status::SummaryOptions;
use crate::sweep::sweeper::Sweeper;

/// Where a [`MsbHome`] came from: what a message about a missing home
/// should name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HomeSource {
    /// Given by the caller ([`MsbHome::at`]).
    Given,
    /// `$MSB_HOME`, as msb reads it.
    MsbHomeVar,
    /// `$HOME/.microsandbox`, msb's default.
    HomeDir,
}

/// A microsandbox home: `<home>/db/msb.db`, `<home>/sandboxes` and
/// `<home>/run`, with a catalog open, a [`Sweeper`], an [`OrphanScan`] and
/// a status report's options one call each.
///
/// ```no_run
/// use sandbox_sweep::SweepOutcome;
/// use sandbox_sweep::home::MsbHome;
///
/// let home = MsbHome::from_env()?;
/// let catalog = home.open_catalog()?;
/// match home.sweeper().run(&catalog) {
///     SweepOutcome::Swept(report) => println!("{report}"),
///     SweepOutcome::Skipped(why) => println!("skipped: {why}"),
///     SweepOutcome::Failed(err) => eprintln!("{err:#}"),
/// }
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsbHome {
    path: PathBuf,
    source: HomeSource,
}

impl MsbHome {
    /// The home at `path`, whether or not it exists yet.
    pub fn at(path: impl Into<PathBuf>) -> MsbHome {
        MsbHome {
            path: path.into(),
            source: HomeSource::Given,
        }
    }

    /// The home msb itself would use: `$MSB_HOME` (verbatim), else
    /// `$HOME/.microsandbox`. It may not exist yet: msb makes it on its
    /// first command.
    ///
    /// # Errors
    ///
    /// [`Error::NoHome`] when both variables are unset or empty.
    pub fn from_env() -> Result<MsbHome> {
        MsbHome::from_vars(|name| std::env::var_os(name))
    }

    /// [`MsbHome::from_env`] with the variables from `var` (a test's, a
    /// service's environment).
    ///
    /// # Errors
    ///
    /// As [`MsbHome::from_env`].
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<MsbHome> {
        let set = |name| var(name).filter(|v| !v.is_empty());
        if let Some(path) = set("MSB_HOME") {
            return Ok(MsbHome {
                path: path.into(),
                source: HomeSource::MsbHomeVar,
            });
        }
        match set("HOME") {
            Some(home) => Ok(MsbHome {
                path: PathBuf::from(home).join(".microsandbox"),
                source: HomeSource::HomeDir,
            }),
            None => Err(Error::NoHome),
        }
    }

    /// The home's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where it came from.
    pub fn source(&self) -> HomeSource {
        self.source
    }

    /// `<home>/db/msb.db`, the catalog msb makes on its first command.
    pub fn catalog_path(&self) -> PathBuf {
        self.path.join("db/msb.db")
    }

    /// `<home>/sandboxes`, one directory per sandbox.
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.path.join("sandboxes")
    }

    /// `<home>/run`: the lock files and the runtimes' sockets.
    pub fn run_dir(&self) -> PathBuf {
        self.path.join("run")
    }

    /// Opens the home's catalog for a sweep; never creates it.
    ///
    /// # Errors
    ///
    /// As [`Catalog::open`]: no catalog yet, or it cannot be opened.
    pub fn open_catalog(&self) -> Result<Catalog> {
        Catalog::open(self.catalog_path())
    }

    /// Opens the home's catalog read-only, for a report or a scan that
    /// must change nothing ([`OpenOptions::read_only`]). Drop it before
    /// [`open_catalog`](MsbHome::open_catalog) in the same process writes
    /// ([`Catalog::open_read_only`] says why).
    ///
    /// # Errors
    ///
    /// As [`Catalog::open_read_only`].
    pub fn open_catalog_read_only(&self) -> Result<Catalog> {
        Catalog::from_connection(
            OpenOptions::new()
                .read_only(true)
                .open(self.catalog_path())?,
        )
    }

    /// A sweeper of this home: its sandboxes directory, beside its run
    /// directory (msb's locks honoured, dead runtimes' sockets removed).
    /// A home where msb has started no sandbox has no run directory yet;
    /// a sweep there says so and does nothing.
    pub fn sweeper(&self) -> Sweeper {
        Sweeper::new(self.sandboxes_dir()).run_dir(self.run_dir())
    }

    /// An orphan scan of this home's sandboxes and run directories.
    pub fn orphan_scan(&self) -> OrphanScan {
        OrphanScan::new(self.sandboxes_dir()).run_dir(self.run_dir())
    }

    /// Options for [`Catalog::summary_with`] that read this home's run
    /// directory (held locks, abandoned starts) and its trash.
    pub fn summary_options(&self) -> SummaryOptions {
        SummaryOptions::new()
            .run_dir(self.run_dir())
            .sandboxes_dir(self.sandboxes_dir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msb_home_wins_then_home_then_nothing() {
        let vars = |msb: Option<&str>, home: Option<&str>| {
            let (msb, home) = (msb.map(OsString::from), home.map(OsString::from));
            move |name: &str| match name {
                "MSB_HOME" => msb.clone(),
                "HOME" => home.clone(),
                _ => None,
            }
        };
        let home = MsbHome::from_vars(vars(Some("/srv/msb"), Some("/home/u"))).expect("home");
        assert_eq!(
            (home.path(), home.source()),
            (Path::new("/srv/msb"), HomeSource::MsbHomeVar)
        );
        let home = MsbHome::from_vars(vars(Some(""), Some("/home/u"))).expect("home");
        assert_eq!(
            (home.path(), home.source()),
            (Path::new("/home/u/.microsandbox"), HomeSource::HomeDir)
        );
        assert!(matches!(
            MsbHome::from_vars(vars(None, None)),
            Err(Error::NoHome)
        ));
        let home = MsbHome::at("/h");
        assert_eq!(home.catalog_path(), Path::new("/h/db/msb.db"));
        assert_eq!(home.sandboxes_dir(), Path::new("/h/sandboxes"));
        assert_eq!(home.run_dir(), Path::new("/h/run"));
        assert_eq!(home.source(), HomeSource::Given);
    }
}
