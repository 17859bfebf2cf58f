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

impl fmt::Display for InstallRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallRefusal::Held { until, .. } => {
                write!(f, "an install operation is in progress until {until}")
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(err) => write!(f, "database error: {err}"),
            Error::Busy(err) => write!(f, "database busy past the busy timeout: {err}"),
            Error::MissingTable { table } => {
                write!(f, "catalog has no `{table}` table; `migrate` creates it")
            }
            Error::MissingColumn { table, column } => write!(
                f,
                "catalog has no `{table}.{column}` column; `migrate` adds it"
            ),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
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
            Error::Install(refusal) => write!(f, "{refusal}"),
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
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Display already shows the inner error, so skip one level to avoid
        // printing the same message twice in a chain.
        match self {
            Error::Sqlite(err) | Error::Busy(err) => std::error::Error::source(err),
            Error::ReadOnlyWal { source, .. } => Some(source),
            Error::Io { source, .. } => source.source(),
            Error::MissingTable { .. } => None,
            Error::MissingColumn { .. } => None,
            Error::InvalidName { .. } => None,
            Error::DuplicateName { source, .. } => Some(source),
            Error::UnknownString { .. } => None,
            Error::Install(_) => None,
            Error::Ownership { .. } | Error::Process { .. } | Error::NoHome => None,
        }
    }
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
