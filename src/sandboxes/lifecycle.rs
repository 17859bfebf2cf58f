//! A sandbox's life as a synchronous runtime records it: insert the sandbox,
//! insert its running run, finish the run, and the catalog's status and
//! termination-reason strings as types.
//!
//! Owns the writes a runtime makes around the sweep, so a host needs no SQL
//! of its own; each is one statement or one `BEGIN IMMEDIATE` transaction.
//! No filesystem here (removal is `cleanup`'s) and no liveness judgement.

use std::fmt;

use rusqlite::params;
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::catalog::ids::{RunId, SandboxId};
use crate::catalog::sql::{
    END_RUN, INSERT_RUN, INSERT_RUN_WITH_IDENTITY, INSERT_SANDBOX, SANDBOX_STATUS, end_sandbox,
};
use crate::catalog::stamp::format_stamp;
use crate::error::{Error, Result};
use crate::process::identity::ProcessIdentity;
use crate::sandboxes::names::validate_name;

/// Defines a catalog string enum: variants, their text, `as_str`, `ALL`, `Display`.
macro_rules! catalog_strings {
    ($(#[$doc:meta])* $name:ident ($column:literal) { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text the catalog stores: the variant's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;

            /// The variant whose catalog text is exactly `text`.
            fn from_str(text: &str) -> Result<$name> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| Error::UnknownString {
                        column: $column,
                        text: text.to_owned(),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

catalog_strings! {
    /// `sandbox.status`: where a sandbox is in its life.
    ///
    /// The sweep reconciles `Starting`, `Running` and `Draining` sandboxes
    /// whose runtime died (and abandoned starts), and cleans ephemeral
    /// `Stopped` and `Crashed` ones; it leaves every other status (and any
    /// string it does not know) alone.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::SandboxStatus;
    ///
    /// assert_eq!(SandboxStatus::Crashed.as_str(), "Crashed");
    /// assert_eq!(SandboxStatus::ALL.len(), 7);
    /// assert_eq!("Starting".parse::<SandboxStatus>()?, SandboxStatus::Starting);
    /// assert!("starting".parse::<SandboxStatus>().is_err());
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    SandboxStatus ("sandbox.status") {
        /// Recorded, never started.
        Created,
        /// Its runtime is starting it.
        Starting,
        /// Its runtime runs it.
        Running,
        /// Asked to stop; its runtime is shutting it down.
        Draining,
        /// Suspended by its runtime.
        Paused,
        /// Ended in an orderly way.
        Stopped,
        /// Ended because something failed, or its runtime died.
        Crashed,
    }
}

catalog_strings! {
    /// `run.termination_reason`: why a run ended, as microsandbox records it.
    ///
    /// The sweep writes `InternalError` for a `Starting` or `Running`
    /// sandbox whose runtime died and `ShutdownRequested` for a `Draining`
    /// one.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sandbox_sweep::TerminationReason::IdleTimeout.to_string(), "IdleTimeout");
    /// ```
    TerminationReason ("run.termination_reason") {
        /// The sandbox exited cleanly (exit code 0).
        Completed,
        /// The sandbox exited with a non-zero code or was killed by a signal.
        Failed,
        /// The sandbox ran past its maximum duration.
        MaxDurationExceeded,
        /// The sandbox's agent reported no activity for its idle timeout.
        IdleTimeout,
        /// The sandbox's agent stopped reporting heartbeats.
        AgentUnresponsive,
        /// A user or client asked for the shutdown.
        ShutdownRequested,
        /// An explicit drain request (`SIGUSR1`).
        DrainRequested,
        /// `SIGTERM` or `SIGINT` from outside.
        Signal,
        /// An internal error, or a runtime that died without recording why.
        InternalError,
    }
}

/// How a run ended, for [`Catalog::finish_run`]: its reason, its exit code or
/// signal, and the status its sandbox takes (`Stopped` or `Crashed`).
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{RunEnd, SandboxStatus, TerminationReason};
///
/// let end = RunEnd::stopped(TerminationReason::Completed).exit_code(0);
/// assert_eq!(end.sandbox_status(), SandboxStatus::Stopped);
/// let end = RunEnd::crashed(TerminationReason::Failed).exit_signal(9);
/// assert_eq!(end.sandbox_status(), SandboxStatus::Crashed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEnd {
    reason: TerminationReason,
    exit_code: Option<i32>,
    exit_signal: Option<i32>,
    sandbox: SandboxStatus,
}

impl RunEnd {
    /// The run ended for `reason` and its sandbox becomes `Stopped`.
    pub fn stopped(reason: TerminationReason) -> RunEnd {
        RunEnd {
            reason,
            exit_code: None,
            exit_signal: None,
            sandbox: SandboxStatus::Stopped,
        }
    }

    /// The run ended for `reason` and its sandbox becomes `Crashed`.
    pub fn crashed(reason: TerminationReason) -> RunEnd {
        RunEnd {
            sandbox: SandboxStatus::Crashed,
            ..RunEnd::stopped(reason)
        }
    }

    /// The process exited with `code` (`run.exit_code`).
    pub fn exit_code(mut self, code: i32) -> RunEnd {
        self.exit_code = Some(code);
        self
    }

    /// The process was killed by signal `signal` (`run.exit_signal`).
    pub fn exit_signal(mut self, signal: i32) -> RunEnd {
        self.exit_signal = Some(signal);
        self
    }

    /// The status the sandbox takes: `Stopped` or `Crashed`.
    pub fn sandbox_status(&self) -> SandboxStatus {
        self.sandbox
    }

    /// Why the run ended.
    pub fn reason(&self) -> TerminationReason {
        self.reason
    }
}

/// Whether a sandbox is removed once it has finished
/// (`sandbox.ephemeral`), as [`Catalog::insert_sandbox`] records it.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::Lifetime;
///
/// assert!(Lifetime::Ephemeral.is_ephemeral());
/// assert!(!Lifetime::Persistent.is_ephemeral());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifetime {
    /// Removed, directory and rows, once `Stopped` or `Crashed` with no
    /// live run (`ephemeral = 1`).
    Ephemeral,
    /// Kept until someone removes it; the sweep never does
    /// (`ephemeral = 0`).
    Persistent,
}

impl Lifetime {
    /// Whether this is [`Lifetime::Ephemeral`]: the catalog's column.
    pub fn is_ephemeral(self) -> bool {
        self == Lifetime::Ephemeral
    }
}

/// A runtime's writes are methods of the [`Catalog`] it keeps, as its reads
/// are. [`insert_sandbox`](Catalog::insert_sandbox) and
/// [`insert_running_run`](Catalog::insert_running_run) are single
/// statements and may run inside the caller's transaction (see
/// [`Catalog::transaction`]); [`finish_run`](Catalog::finish_run) opens its
/// own `BEGIN IMMEDIATE` and must not.
impl Catalog {
    /// Inserts a sandbox named `name` with `status` and `lifetime`, created
    /// at `at`; returns its id. Its `config` is `'{}'`: the sweep never
    /// reads it.
    ///
    /// One statement, no transaction of its own: it may run inside the
    /// caller's ([`Catalog::transaction`]), which is how many rows are
    /// inserted fast.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name that cannot name a directory (see
    /// [`validate_name`]); [`Error::DuplicateName`] for a name already taken
    /// (the column is `UNIQUE`); any other SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, Lifetime, SandboxStatus, SystemClock};
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let now = SystemClock::now();
    /// let id = catalog.insert_sandbox("job-1", SandboxStatus::Created, Lifetime::Ephemeral, now)?;
    /// assert_eq!(id.get(), 1);
    /// assert!(catalog.insert_sandbox("../x", SandboxStatus::Created, Lifetime::Ephemeral, now).is_err());
    /// let again = catalog.insert_sandbox("job-1", SandboxStatus::Created, Lifetime::Ephemeral, now);
    /// assert!(matches!(again, Err(sandbox_sweep::Error::DuplicateName { name, .. }) if name == "job-1"));
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn insert_sandbox(
        &self,
        name: &str,
        status: SandboxStatus,
        lifetime: Lifetime,
        at: PrimitiveDateTime,
    ) -> Result<SandboxId> {
        validate_name(name)?;
        let inserted = self.conn.prepare_cached(INSERT_SANDBOX)?.execute(params![
            name,
            status.as_str(),
            lifetime.is_ephemeral(),
            &*format_stamp(at)
        ]);
        match inserted {
            Ok(_) => Ok(SandboxId::new(self.conn.last_insert_rowid())),
            Err(err)
                if err.sqlite_error().map(|e| e.extended_code)
                    == Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE) =>
            {
                Err(Error::DuplicateName {
                    name: name.to_owned(),
                    source: err,
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Inserts a `Running` run of sandbox `sandbox` owned by `identity`,
    /// the way a runtime records its own start; returns the new run's id.
    ///
    /// Stores `pid_start_time` and `boot_id` when the catalog has those
    /// columns (see [`migrate`](crate::migrate)); on an older catalog only
    /// the pid. One statement, no transaction of its own: it may run
    /// inside the caller's ([`Catalog::transaction`]).
    ///
    /// # Errors
    ///
    /// Any SQLite error, e.g. a `sandbox` that violates the foreign key.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, Lifetime, SandboxStatus, SystemClock};
    /// use sandbox_sweep::process::ProcessIdentity;
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let now = SystemClock::now();
    /// let web = catalog.insert_sandbox("web", SandboxStatus::Running, Lifetime::Persistent, now)?;
    /// let run = catalog.insert_running_run(web, &ProcessIdentity::current()?, now)?;
    /// assert_eq!(run.get(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_running_run(
        &self,
        sandbox: SandboxId,
        identity: &ProcessIdentity,
        started_at: PrimitiveDateTime,
    ) -> Result<RunId> {
        let started_at = format_stamp(started_at);
        let conn = &self.conn;
        if self.refresh()?.identity {
            conn.prepare_cached(INSERT_RUN_WITH_IDENTITY)?
                .execute(params![
                    sandbox,
                    identity.pid,
                    started_at,
                    identity.start_time_column(),
                    identity.boot_id
                ])?;
        } else {
            conn.prepare_cached(INSERT_RUN)?
                .execute(params![sandbox, identity.pid, started_at])?;
        }
        Ok(RunId::new(conn.last_insert_rowid()))
    }

    /// Ends run `run` as `end` says at `at`, and moves its sandbox to
    /// `Stopped` or `Crashed` (clearing `active_config`), in one `BEGIN
    /// IMMEDIATE` transaction. Returns `false`, changing nothing, when the
    /// run does not exist or is no longer `Running` (a sweep may have
    /// reconciled it first).
    ///
    /// Opens its own transaction: the connection must not be inside one
    /// (SQLite refuses a nested `BEGIN`, and this call fails).
    ///
    /// # Errors
    ///
    /// Any SQLite error, busy past the timeout included (nothing is then
    /// changed).
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::process::ProcessIdentity;
    /// use sandbox_sweep::*;
    ///
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-lifecycle-324");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let now = SystemClock::now();
    /// let job = catalog.insert_sandbox("job", SandboxStatus::Running, Lifetime::Ephemeral, now)?;
    /// let run = catalog.insert_running_run(job, &ProcessIdentity::current()?, now)?;
    /// let done = RunEnd::stopped(TerminationReason::Completed).exit_code(0);
    /// assert!(catalog.finish_run(run, done, now)?);
    /// assert!(!catalog.finish_run(run, RunEnd::crashed(TerminationReason::Failed), now)?);
    /// let sweeper = Sweeper::new(&dir);
    /// assert_eq!(sweeper.clean_ephemeral(&catalog, job)?, CleanupOutcome::Removed);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish_run(&self, run: RunId, end: RunEnd, at: PrimitiveDateTime) -> Result<bool> {
        let at = format_stamp(at);
        let tx = self.immediate()?;
        let ended = tx.prepare_cached(END_RUN)?.execute(params![
            run,
            end.reason.as_str(),
            end.exit_code,
            end.exit_signal,
            &*at
        ])?;
        if ended == 1 {
            let schema = self.refresh()?;
            let sql = end_sandbox(schema.active_config, schema.network_slot);
            tx.prepare_cached(sql)?
                .execute(params![run, end.sandbox.as_str(), &*at])?;
        }
        tx.commit().map_err(Error::from_sqlite)?;
        Ok(ended == 1)
    }

    /// Sandbox `sandbox`'s status, with no SQL of the caller's: `None`
    /// when there is no such sandbox.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownString`] when the stored status is not one of
    /// microsandbox's (another program's row, or not text at all); any
    /// SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, Lifetime, SandboxId, SandboxStatus, SystemClock};
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let now = SystemClock::now();
    /// let id = catalog.insert_sandbox("web", SandboxStatus::Starting, Lifetime::Persistent, now)?;
    /// assert_eq!(catalog.sandbox_status(id)?, Some(SandboxStatus::Starting));
    /// assert_eq!(catalog.sandbox_status(SandboxId::new(id.get() + 1))?, None);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn sandbox_status(&self, sandbox: SandboxId) -> Result<Option<SandboxStatus>> {
        let mut stmt = self.conn.prepare_cached(SANDBOX_STATUS)?;
        let mut rows = stmt.query([sandbox])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let text = match row.get_ref(0)? {
            rusqlite::types::ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
            other => format!("({:?})", other.data_type()),
        };
        text.parse().map(Some)
    }
}
