//! The crate's one error type, and attaching a path where an error is made.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `log` target of every record that says something was left in place
/// because a call failed (a row kept since its runtime's files could not
/// be moved, a tree the trash could not delete, an orphan kept), with the
/// path and the error: what a person must act on. Other records use the
/// module's path. The CLI shows these without `-v`.
///
/// ```
/// fn show(record: &log::Record<'_>) -> bool {
///     record.target() == sandbox_sweep::LOG_KEPT || record.level() <= log::Level::Error
/// }
/// # let _ = show;
/// ```
pub const LOG_KEPT: &str = "sandbox_sweep::kept";

/// Everything that can go wrong in this crate.
///
/// Per-row problems met during a sweep (a bad name, a directory that will not
/// move) are not errors: they are counted in the [`Report`](crate::Report)
/// and logged, and the row is left as it was. An `Error` means the operation
/// as a whole could not go on.
///
/// # The chain
///
/// Each variant's `Display` (`{}`) says only its own level, and
/// [`source()`](std::error::Error::source) returns the error it wraps (the
/// `source` field of [`Error::Io`], [`Error::DuplicateName`] and
/// [`Error::ReadOnlyWal`], the SQLite error of [`Error::Sqlite`] and
/// [`Error::Busy`]), so a chain walker such as `anyhow`'s `{:#}` prints
/// every cause once. [`Error::Install`] is transparent: it says the
/// refusal's words and has no source. The alternate form, `{:#}`, prints
/// the whole chain on one line, each level joined by `": "`, as `anyhow`
/// does, except that a level whose words contain the level before it (as
/// rusqlite's `Error code 5: database is locked` repeats its message) is
/// left out: that is what a log line or an `error:` line wants.
///
/// ```
/// use std::error::Error as _;
/// use sandbox_sweep::Error;
///
/// let err = Error::Io {
///     path: "/srv/msb/sandboxes".into(),
///     source: std::io::Error::from(std::io::ErrorKind::NotFound),
/// };
/// assert_eq!(err.to_string(), "/srv/msb/sandboxes");
/// // Walk the chain the way anyhow does.
/// let mut chain = err.to_string();
/// let mut cause = err.source();
/// while let Some(inner) = cause {
///     chain.push_str(&format!(": {inner}"));
///     cause = inner.source();
/// }
/// assert_eq!(chain, "/srv/msb/sandboxes: entity not found");
/// assert_eq!(format!("{err:#}"), chain);
/// ```
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, Error};
///
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// // No tables yet: the catalog must be initialised first.
/// match Catalog::from_connection(conn) {
///     Err(Error::MissingTable { table }) => assert_eq!(table, "sandbox"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// SQLite reported an error.
    Sqlite(rusqlite::Error),
    /// SQLite stayed busy (locked by another connection) past the busy timeout.
    Busy(rusqlite::Error),
    /// A table the sweep needs is not in the catalog;
    /// [`migrate`](crate::migrate) creates it.
    MissingTable {
        /// The missing table's name.
        table: &'static str,
    },
    /// A column this operation needs is not in the catalog;
    /// [`migrate`](crate::migrate) adds it.
    MissingColumn {
        /// The table.
        table: &'static str,
        /// The missing column.
        column: &'static str,
    },
    /// A filesystem operation failed on `path`.
    Io {
        /// The path the operation was about.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A sandbox name is not a single normal path component, so it cannot
    /// name a directory inside the sandboxes directory.
    InvalidName {
        /// The rejected name, as stored in the catalog.
        name: String,
    },
    /// Text that is not one of a catalog column's known strings (parsing a
    /// [`SandboxStatus`](crate::SandboxStatus) or a
    /// [`TerminationReason`](crate::TerminationReason)).
    UnknownString {
        /// The column whose strings were expected (`sandbox.status`, say).
        column: &'static str,
        /// The text given.
        text: String,
    },
    /// A sandbox of this name is already in the catalog (names are unique).
    DuplicateName {
        /// The name asked for.
        name: String,
        /// SQLite's unique-constraint error (the error's `source()`).
        source: rusqlite::Error,
    },
    /// The install-exclusive lease said no: another installer holds it, or
    /// this holder lost it.
    Install(InstallRefusal),
    /// A read-only open ([`OpenOptions::read_only`](crate::OpenOptions::read_only))
    /// of a catalog in WAL mode found no `-shm` file beside it and could
    /// not make one (the directory is not writable by this user).
    ReadOnlyWal {
        /// The catalog file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The paths a tool run as root was to act in cannot be acted in as
    /// one user safely ([`ActingAsOwner::of`](crate::home::ActingAsOwner::of)).
    Ownership {
        /// The path that decided it.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// No microsandbox home to resolve: `$MSB_HOME` and `$HOME` are both
    /// unset or empty ([`MsbHome::from_env`](crate::home::MsbHome::from_env)).
    NoHome,
    /// A `/proc` record (or another process fact) could not be read or parsed.
    Process {
        /// The process id concerned.
        pid: i64,
        /// What went wrong.
        detail: String,
    },
}

/// Why an install-exclusive call was refused
/// ([`InstallLease`](crate::lease::InstallLease)); public as
/// `sandbox_sweep::lease::InstallRefusal`. It lives here, beside [`Error`],
/// so the error type imports nothing above it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallRefusal {
    /// Another installer holds the lease until this time (stored text).
    Held {
        /// `holder_pid`, when it is an integer.
        holder_pid: Option<i64>,
        /// `lease_expires_at`, as stored.
        until: String,
    },
    /// This lease is no longer the row's: it expired and was taken, or was
    /// cleared.
    NotHolder,
}

/// One line; `{:#}` adds the holder's pid when the row has one.
///
/// ```
/// use sandbox_sweep::lease::InstallRefusal;
/// let held = InstallRefusal::Held { holder_pid: Some(7), until: "2026-06-04 00:30:00".into() };
/// assert_eq!(held.to_string(), "an install operation is in progress until 2026-06-04 00:30:00");
/// assert_eq!(
///     format!("{held:#}"),
///     "an install operation is in progress until 2026-06-04 00:30:00 (holder pid 7)"
/// );
/// ```
impl fmt::Display for InstallRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallRefusal::Held { until, holder_pid } => {
                write!(f, "an install operation is in progress until {until}")?;
                match holder_pid {
                    Some(pid) if f.alternate() => write!(f, " (holder pid {pid})"),
                    _ => Ok(()),
                }
            }
            InstallRefusal::NotHolder => {
                f.write_str("the install-exclusive lease is no longer held by this process")
            }
        }
    }
}

impl Error {
    /// Classifies a SQLite error, separating "busy past the timeout" from the rest.
    pub(crate) fn from_sqlite(err: rusqlite::Error) -> Error {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Busy(err)
            }
            _ => Error::Sqlite(err),
        }
    }

    /// Whether this error means the database was locked past the busy timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = sandbox_sweep::Error::MissingTable { table: "run" };
    /// assert!(!err.is_busy());
    /// ```
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy(_))
    }

    /// Whether a statement was stopped at the sweep's deadline.
    pub(crate) fn is_interrupt(&self) -> bool {
        matches!(self, Error::Sqlite(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Error {
        Error::from_sqlite(err)
    }
}

/// `{}`: this level only; `{:#}`: the whole chain, joined by `": "`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(_) => f.write_str("database error"),
            Error::Busy(_) => f.write_str("database busy past the busy timeout"),
            Error::MissingTable { table } => {
                write!(f, "catalog has no `{table}` table; `migrate` creates it")
            }
            Error::MissingColumn { table, column } => write!(
                f,
                "catalog has no `{table}.{column}` column; `migrate` adds it"
            ),
            Error::Io { path, .. } => write!(f, "{}", path.display()),
            Error::InvalidName { name } => write!(
                f,
                "sandbox name {name:?} is not a single normal path component"
            ),
            Error::UnknownString { column, text } => {
                write!(f, "{text:?} is not a known `{column}` value")
            }
            Error::DuplicateName { name, .. } => {
                write!(f, "a sandbox named {name:?} is already in the catalog")
            }
            // Transparent: the refusal's own `{}` or `{:#}`.
            Error::Install(refusal) => fmt::Display::fmt(refusal, f),
            // SQLite's own words vary with what was missing; they are
            // the source.
            Error::ReadOnlyWal { path, .. } => write!(
                f,
                "{}: cannot be read read-only: its -wal or -shm file is missing, and only a \
                 user who may write its directory can make them (any msb command run by \
                 the home's owner does)",
                path.display()
            ),
            Error::Ownership { path, detail } => write!(f, "{}: {detail}", path.display()),
            Error::Process { pid, detail } => write!(f, "process {pid}: {detail}"),
            Error::NoHome => {
                f.write_str("no microsandbox home: $MSB_HOME and $HOME are both unset or empty")
            }
        }?;
        if f.alternate() {
            let mut cause = std::error::Error::source(self);
            let mut said = String::new();
            // Bounded: a chain of errors that loops would be a bug in a
            // dependency, and must not hang a log line.
            for _ in 0..32 {
                let Some(inner) = cause else { break };
                // rusqlite's error shows its source's words again (all of
                // them without a message, `Error code 14: unable to open
                // database file` after `unable to open database file`
                // with one): a level that repeats the last one is left out.
                let words = inner.to_string();
                if !words.contains(&said) || said.is_empty() {
                    write!(f, ": {words}")?;
                }
                said = words;
                cause = inner.source();
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sqlite(err) | Error::Busy(err) => Some(err),
            Error::ReadOnlyWal { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
            Error::DuplicateName { source, .. } => Some(source),
            Error::MissingTable { .. } => None,
            Error::MissingColumn { .. } => None,
            Error::InvalidName { .. } => None,
            Error::UnknownString { .. } => None,
            // Transparent: its words are the refusal's, and it wraps no
            // error of its own.
            Error::Install(_) => None,
            Error::Ownership { .. } | Error::Process { .. } | Error::NoHome => None,
        }
    }
}

/// The one of `all` whose word (`as_str`) is `text`: every `FromStr` of a
/// word enum, so each inverts its `as_str` the same way.
pub(crate) fn parse_word<T: Copy>(
    all: &[T],
    word: impl Fn(T) -> &'static str,
    column: &'static str,
    text: &str,
) -> Result<T> {
    all.iter()
        .copied()
        .find(|&v| word(v) == text)
        .ok_or_else(|| Error::UnknownString {
            column,
            text: text.to_owned(),
        })
}

/// Attaches a path to an `io::Result`, where the error is made.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A failed system call from `nix` is an I/O error about `path`, like any
/// other: the one place an `Errno` becomes an [`Error`].
impl<T> IoContext<T> for nix::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(io::Error::from).at(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::InstallRefusal;

    /// Every level's `Display`, walked through `source()` as `anyhow` does.
    fn levels(err: &Error) -> Vec<String> {
        let mut levels = vec![err.to_string()];
        let mut cause = std::error::Error::source(err);
        while let Some(inner) = cause {
            levels.push(inner.to_string());
            cause = inner.source();
        }
        levels
    }

    fn unique() -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
            Some("UNIQUE constraint failed: sandbox.name".into()),
        )
    }

    fn busy() -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None)
    }

    /// One case per variant: each level says only its own words, every
    /// cause appears once, and `{:#}` is the chain joined by `": "`.
    #[test]
    fn every_variant_chains_each_cause_once() {
        let io = || io::Error::from_raw_os_error(2);
        let cases: Vec<(Error, Vec<&str>)> = vec![
            (
                Error::Sqlite(unique()),
                vec![
                    "database error",
                    "UNIQUE constraint failed: sandbox.name",
                    "Error code 2067: constraint failed",
                ],
            ),
            (
                Error::Busy(busy()),
                vec![
                    "database busy past the busy timeout",
                    // rusqlite's error without a message says its
                    // source's words: `{:#}` prints them once.
                    "Error code 5: database is locked",
                    "Error code 5: database is locked",
                ],
            ),
            (
                Error::MissingTable { table: "run" },
                vec!["catalog has no `run` table; `migrate` creates it"],
            ),
            (
                Error::MissingColumn {
                    table: "run",
                    column: "boot_id",
                },
                vec!["catalog has no `run.boot_id` column; `migrate` adds it"],
            ),
            (
                Error::Io {
                    path: "/home/msb/sandboxes".into(),
                    source: io(),
                },
                vec![
                    "/home/msb/sandboxes",
                    "No such file or directory (os error 2)",
                ],
            ),
            (
                Error::InvalidName {
                    name: "../x".into(),
                },
                vec!["sandbox name \"../x\" is not a single normal path component"],
            ),
            (
                Error::UnknownString {
                    column: "sandbox.status",
                    text: "Gone".into(),
                },
                vec!["\"Gone\" is not a known `sandbox.status` value"],
            ),
            (
                Error::DuplicateName {
                    name: "job-1".into(),
                    source: unique(),
                },
                vec![
                    "a sandbox named \"job-1\" is already in the catalog",
                    "UNIQUE constraint failed: sandbox.name",
                    "Error code 2067: constraint failed",
                ],
            ),
            (
                Error::Install(InstallRefusal::NotHolder),
                vec!["the install-exclusive lease is no longer held by this process"],
            ),
            (
                Error::ReadOnlyWal {
                    path: "/home/msb/db/msb.db".into(),
                    source: rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                        Some("unable to open database file".into()),
                    ),
                },
                vec![
                    "/home/msb/db/msb.db: cannot be read read-only: its -wal or -shm file is \
                     missing, and only a user who may write its directory can make them (any \
                     msb command run by the home's owner does)",
                    "unable to open database file",
                    "Error code 14: unable to open database file",
                ],
            ),
            (
                Error::Ownership {
                    path: "/home/msb".into(),
                    detail: "owned by uid 1000, its run directory by uid 0".into(),
                },
                vec!["/home/msb: owned by uid 1000, its run directory by uid 0"],
            ),
            (
                Error::NoHome,
                vec!["no microsandbox home: $MSB_HOME and $HOME are both unset or empty"],
            ),
            (
                Error::Process {
                    pid: 42,
                    detail: "stat unreadable".into(),
                },
                vec!["process 42: stat unreadable"],
            ),
        ];
        for (err, expected) in &cases {
            assert_eq!(&levels(err), expected, "{err:?}");
            // A level that repeats the one before it is left out.
            let once: Vec<&str> = expected
                .iter()
                .enumerate()
                .filter(|&(i, words)| i == 0 || !words.contains(expected[i - 1]))
                .map(|(_, words)| *words)
                .collect();
            assert_eq!(format!("{err:#}"), once.join(": "), "{err:?}");
            assert_eq!(err.to_string(), expected[0], "{err:?}");
        }
    }

    /// `word.parse()` gives back every value `as_str` names, and an
    /// unknown word is `UnknownString` naming the enum's column.
    fn round_trips<T>(all: &[T], word: impl Fn(&T) -> &str, column: &str)
    where
        T: std::str::FromStr<Err = Error> + PartialEq + std::fmt::Debug,
    {
        for value in all {
            assert_eq!(word(value).parse::<T>().as_ref().ok(), Some(value));
        }
        match "no-such-word".parse::<T>() {
            Err(Error::UnknownString { column: c, text }) => {
                assert_eq!((c, text.as_str()), (column, "no-such-word"));
            }
            other => panic!("{column}: {other:?}"),
        }
    }

    #[test]
    fn every_as_str_has_its_from_str() {
        use crate::lease::gate::SkipReason;
        use crate::orphans::{Kept, OrphanKind};
        use crate::process::DeadReason;
        use crate::status::StaleList;
        use crate::{CleanupOutcome, SandboxStatus, SweepEnd, TerminationReason};

        let skips = [
            SkipReason::Held,
            SkipReason::Recent,
            SkipReason::Busy,
            SkipReason::Installing,
        ];
        round_trips(&skips, |v| v.as_str(), "skip_reason");
        round_trips(&CleanupOutcome::ALL, |v| v.as_str(), "cleanup_outcome");
        round_trips(&SweepEnd::ALL, |v| v.as_str(), "sweep_end");
        round_trips(&DeadReason::ALL, |v| v.as_str(), "dead_reason");
        round_trips(&OrphanKind::ALL, |v| v.as_str(), "orphan_kind");
        round_trips(&StaleList::ALL, |v| v.as_str(), "stale_list");
        round_trips(SandboxStatus::ALL, |v| v.as_str(), "sandbox.status");
        round_trips(
            TerminationReason::ALL,
            |v| v.as_str(),
            "run.termination_reason",
        );
        round_trips(&Kept::every(), |v| v.as_str(), "kept");
    }
}
