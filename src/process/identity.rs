//! A runtime's process identity, and storing it with its run row.
//!
//! Owns [`ProcessIdentity`] (pid, start time, boot id) and writing it to a
//! run. Reading `/proc` is `sys::procfs`'s; judging a recorded identity
//! against the running system is `liveness`'s.

use rusqlite::params;

use crate::catalog::Catalog;
use crate::catalog::ids::RunId;
use crate::catalog::sql::RECORD_IDENTITY;
use crate::error::{Error, Result};
use crate::sys::procfs::{self, StatRead};

/// Who a process is: its pid plus what tells it from a later process that
/// gets the same pid (start time) or from one before a reboot (boot id).
///
/// # Examples
///
/// ```
/// let me = sandbox_sweep::process::ProcessIdentity::current()?;
/// assert_eq!(me.pid, i64::from(std::process::id()));
/// if cfg!(target_os = "linux") {
///     assert!(me.start_time.is_some() && me.boot_id.is_some());
/// }
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// The process id (see [the module's note on pids](crate::process#pids)).
    pub pid: i64,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot when the process
    /// started. `None` where `/proc` is absent.
    pub start_time: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id`, trimmed. `None` where absent.
    pub boot_id: Option<String>,
}

impl ProcessIdentity {
    /// The identity of the calling process.
    ///
    /// # Errors
    ///
    /// See [`ProcessIdentity::of`].
    pub fn current() -> Result<ProcessIdentity> {
        ProcessIdentity::of(i64::from(std::process::id()))
    }

    /// The identity of process `pid`, read now.
    ///
    /// # Errors
    ///
    /// [`Error::Process`] when `pid` is not in `1..=i32::MAX` (no process
    /// has it) or, on Linux, when the process does not exist or its `/proc`
    /// record cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(sandbox_sweep::process::ProcessIdentity::of(0).is_err());
    /// ```
    pub fn of(pid: i64) -> Result<ProcessIdentity> {
        let raw = match i32::try_from(pid) {
            Ok(raw) if raw > 0 => raw,
            _ => {
                return Err(Error::Process {
                    pid,
                    detail: "not a process id".into(),
                });
            }
        };
        let start_time = match procfs::read_stat(raw) {
            StatRead::Found(stat) => Some(stat.start_time),
            StatRead::Gone => {
                return Err(Error::Process {
                    pid,
                    detail: "no such process".into(),
                });
            }
            StatRead::Unknown if cfg!(target_os = "linux") => {
                return Err(Error::Process {
                    pid,
                    detail: "cannot read /proc/<pid>/stat".into(),
                });
            }
            StatRead::Unknown => None,
        };
        Ok(ProcessIdentity {
            pid,
            start_time,
            boot_id: procfs::boot_id(),
        })
    }

    pub(crate) fn start_time_column(&self) -> Option<i64> {
        // Ticks since boot fit an i64 for billions of years; saturate anyway.
        self.start_time
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
    }
}

impl Catalog {
    /// Stores `identity` (pid, start time, boot id) on an existing run row
    /// (one a runtime inserted with its own SQL); returns whether the row
    /// exists. One statement: it may run inside the caller's transaction.
    ///
    /// # Errors
    ///
    /// [`Error::MissingColumn`] when the catalog lacks the identity columns (run
    /// [`migrate`](crate::migrate) first); any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, RunId};
    /// use sandbox_sweep::process::ProcessIdentity;
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// conn.execute("INSERT INTO sandbox (name, config, status) VALUES ('web', '{}', 'Running')", [])?;
    /// conn.execute("INSERT INTO run (sandbox_id, pid, status) VALUES (1, NULL, 'Running')", [])?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// assert!(catalog.record_identity(RunId::new(1), &ProcessIdentity::current()?)?);
    /// assert!(!catalog.record_identity(RunId::new(99), &ProcessIdentity::current()?)?);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn record_identity(&self, run: RunId, identity: &ProcessIdentity) -> Result<bool> {
        if !self.refresh()?.identity {
            return Err(Error::MissingColumn {
                table: "run",
                column: "pid_start_time",
            });
        }
        let changed = self.conn.prepare_cached(RECORD_IDENTITY)?.execute(params![
            run,
            identity.pid,
            identity.start_time_column(),
            identity.boot_id
        ])?;
        Ok(changed == 1)
    }
}
