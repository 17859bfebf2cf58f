//! A read-only summary of a catalog: what `sandbox-sweep status` shows.
//!
//! Reads only: never a write. Beside a run directory it reads which locks
//! are held from `/proc/locks` (taking none) and asks a start's socket
//! paths whether anything answers (a connect, which writes nothing).

use std::path::Path;

use rusqlite::OptionalExtension;
use rusqlite::types::ValueRef;

use crate::catalog::Catalog;
use crate::catalog::sql::{
    ACTIVE_SANDBOXES, COUNT_BY_STATUS, COUNT_EPHEMERAL_TERMINAL, LEASE_RECORD, RECONCILE_CANDIDATES,
};
use crate::catalog::statements::Statements;
use crate::error::Result;
use crate::lease::install::INSTALL_LEASE_NAME;
use crate::lease::spec::LeaseSpec;
use crate::process::liveness::{DeadReason, Liveness, Prober};
use crate::process::runs::{latest_running, newest_running_pid};
use crate::rundir::locks::HeldLocks;
use crate::rundir::sockets::may_be_live;
use crate::sandboxes::lifecycle::SandboxStatus;
use crate::sandboxes::names::stored_name;

/// An active sandbox whose runtime is dead: the next sweep reconciles it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleSandbox {
    /// `sandbox.id`.
    pub id: i64,
    /// `sandbox.name` (lossily decoded when not UTF-8).
    pub name: String,
    /// `Starting`, `Running` or `Draining`.
    pub status: SandboxStatus,
    /// Why its latest `Running` run is dead; `None` for a `Draining`
    /// sandbox with no `Running` run at all, or an abandoned start.
    pub reason: Option<DeadReason>,
}

/// The sweep's lease row verbatim, as stored (for display; [`LeaseRow`]
/// is the parsed form).
///
/// [`LeaseRow`]: crate::lease::LeaseRow
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseRecord {
    /// `holder_pid` (NULL once released, or not an integer).
    pub holder_pid: Option<i64>,
    /// `lease_expires_at`, verbatim.
    pub lease_expires_at: Option<String>,
    /// `last_completed_at`, verbatim.
    pub last_completed_at: Option<String>,
}

/// An active sandbox, as an installer deciding on a schema rollback sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActiveSandbox {
    /// `sandbox.name` (lossily decoded when not UTF-8).
    pub name: String,
    /// `Created`, `Starting`, `Running`, `Draining` or `Paused`.
    pub status: SandboxStatus,
    /// The pid of its newest `Running` run, as stored; `None` without one.
    pub pid: Option<i64>,
}

/// Every `Created`, `Starting`, `Running`, `Draining` or `Paused` sandbox
/// with the pid of its newest `Running` run, ordered by name: what blocks a
/// schema rollback. Reads only; probes no process.
///
/// # Errors
///
/// Any SQLite error.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, SandboxStatus, SystemClock, insert_sandbox};
/// use sandbox_sweep::status::active_sandboxes;
///
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// let catalog = Catalog::from_connection(conn)?;
/// for (name, status) in [("b", SandboxStatus::Paused), ("a", SandboxStatus::Created), ("c", SandboxStatus::Stopped)] {
///     insert_sandbox(&catalog, name, status, false, SystemClock::now())?;
/// }
/// let names: Vec<_> = active_sandboxes(&catalog)?.into_iter().map(|s| s.name).collect();
/// assert_eq!(names, ["a", "b"]);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
pub fn active_sandboxes(catalog: &Catalog) -> Result<Vec<ActiveSandbox>> {
    let conn = &catalog.conn;
    let mut stmt = conn.prepare(ACTIVE_SANDBOXES)?;
    let mut rows = stmt.query([])?;
    let mut stmts = Statements::new(conn);
    let mut active = Vec::new();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let Some(status) = known_status(row.get_ref(2)?) else {
            continue;
        };
        active.push(ActiveSandbox {
            name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            status,
            pid: newest_running_pid(catalog, &mut stmts, id)?,
        });
    }
    Ok(active)
}

/// What [`Catalog::summary`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Summary {
    /// Sandbox counts per status, in the order of the stored strings.
    pub by_status: Vec<(SandboxStatus, u64)>,
    /// Sandboxes whose status is none of the catalog's (another program's
    /// string, or a value that is not text), counted apart.
    pub other_status: u64,
    /// Ephemeral sandboxes in `Stopped` or `Crashed` (cleanup candidates).
    pub ephemeral_terminal: u64,
    /// Active sandboxes whose runtime is dead now, by id: what the next
    /// sweep reconciles.
    pub dead_active: Vec<StaleSandbox>,
    /// Active sandboxes whose recorded runtime looks dead (or a start with
    /// no run) but whose creation or lifecycle lock is held (only with a
    /// run directory, see [`Catalog::summary_beside`]): a live owner, left
    /// alone by sweeps.
    pub lifecycle_owned: Vec<StaleSandbox>,
    /// Abandoned starts, by id: `Starting` with no `Running` run, no lock
    /// held and nothing answering on the runtime's socket paths. The next
    /// sweep beside the run directory marks them `Crashed`. Only judged
    /// beside a run directory: without one there is no evidence, and
    /// sweeps leave such rows alone.
    pub abandoned_starts: Vec<StaleSandbox>,
    /// The maintenance lease row, if any sweep ever took it.
    pub lease: Option<LeaseRecord>,
    /// The install-exclusive lease row, if any installer ever took it.
    pub install: Option<LeaseRecord>,
    /// Every active sandbox, as [`active_sandboxes`] lists them.
    pub active: Vec<ActiveSandbox>,
    /// This crate's indexes the catalog lacks (see
    /// [`Catalog::missing_indexes`]): `sandbox-sweep init` adds them.
    pub missing_indexes: Vec<&'static str>,
}

/// A status column's value as a known status; `None` for anything else
/// (the queries here select known text only, so that is never expected).
fn known_status(value: ValueRef<'_>) -> Option<SandboxStatus> {
    match value {
        ValueRef::Text(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    }
}

/// The active sandboxes a summary sorts apart.
#[derive(Debug, Default)]
struct Stale {
    dead: Vec<StaleSandbox>,
    owned: Vec<StaleSandbox>,
    abandoned: Vec<StaleSandbox>,
}

/// SQLite counts are never negative.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Catalog {
    /// Summarises the catalog, probing every active sandbox's runtime. Reads only.
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// conn.execute("INSERT INTO sandbox (name, config, status) VALUES ('a', '{}', 'Draining')", [])?;
    /// let summary = sandbox_sweep::Catalog::from_connection(conn)?.summary()?;
    /// assert_eq!(summary.by_status, [(sandbox_sweep::SandboxStatus::Draining, 1)]);
    /// assert_eq!(summary.dead_active.len(), 1);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn summary(&self) -> Result<Summary> {
        self.summarise(None, None)
    }

    /// [`Catalog::summary`] beside a microsandbox run directory: an active
    /// sandbox whose recorded runtime looks dead but whose creation or
    /// lifecycle lock is held goes to [`Summary::lifecycle_owned`], not to
    /// `dead_active`, and abandoned starts are told apart
    /// ([`Summary::abandoned_starts`]: their socket paths in `run_dir`, and
    /// in `sandboxes_dir` when given, are asked whether anything answers;
    /// a connect writes nothing).
    /// Which locks are held is read from `/proc/locks`: no lock is taken
    /// (a runtime's own non-blocking `flock` must never fail because of a
    /// report) and no file is created. Where `/proc/locks` cannot be read,
    /// this is [`Catalog::summary`].
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::rundir::try_lock_lifecycle;
    /// use sandbox_sweep::*;
    ///
    /// let run = std::env::temp_dir().join("sandbox-sweep-doc-status-207");
    /// # let _ = std::fs::remove_dir_all(&run);
    /// std::fs::create_dir_all(&run)?;
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// migrate(&conn)?;
    /// conn.execute("INSERT INTO sandbox (name, config, status) VALUES ('a', '{}', 'Draining')", [])?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let lock = try_lock_lifecycle(&run, "a")?.expect("free");
    /// let summary = catalog.summary_beside(&run, None)?;
    /// if cfg!(target_os = "linux") {
    ///     assert_eq!((summary.dead_active.len(), summary.lifecycle_owned.len()), (0, 1));
    /// }
    /// drop(lock);
    /// assert_eq!(catalog.summary_beside(&run, None)?.dead_active.len(), 1);
    /// # std::fs::remove_dir_all(&run)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn summary_beside(&self, run_dir: &Path, sandboxes_dir: Option<&Path>) -> Result<Summary> {
        self.summarise(Some(run_dir), sandboxes_dir)
    }

    fn summarise(&self, run_dir: Option<&Path>, sandboxes_dir: Option<&Path>) -> Result<Summary> {
        let conn = &self.conn;
        let (mut by_status, mut other_status) = (Vec::new(), 0);
        let mut stmt = conn.prepare_cached(COUNT_BY_STATUS)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let n = count(row.get(1)?);
            match known_status(row.get_ref(0)?) {
                Some(status) => by_status.push((status, n)),
                None => other_status += n,
            }
        }
        let ephemeral_terminal = count(conn.query_row(COUNT_EPHEMERAL_TERMINAL, [], |r| r.get(0))?);
        let Stale {
            dead: dead_active,
            owned: lifecycle_owned,
            abandoned: abandoned_starts,
        } = self.stale(run_dir, sandboxes_dir)?;
        let lease = self.lease_record(LeaseSpec::SWEEP.name)?;
        let install = self.lease_record(INSTALL_LEASE_NAME)?;
        Ok(Summary {
            by_status,
            other_status,
            ephemeral_terminal,
            dead_active,
            lifecycle_owned,
            abandoned_starts,
            lease,
            install,
            active: active_sandboxes(self)?,
            missing_indexes: self.missing_indexes()?,
        })
    }

    /// Active sandboxes whose runtime is dead now, by id: those a sweep
    /// would reconcile, those whose locks in `run_dir` are held (a sweep
    /// leaves them alone), and abandoned starts.
    fn stale(&self, run_dir: Option<&Path>, sandboxes_dir: Option<&Path>) -> Result<Stale> {
        let held = run_dir.and_then(HeldLocks::read);
        let prober = Prober::new();
        let mut stmts = Statements::new(&self.conn);
        let mut stale = Stale::default();
        let mut stmt = self.conn.prepare(RECONCILE_CANDIDATES)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let Some(status) = known_status(row.get_ref(2)?) else {
                continue;
            };
            // A name no sweep would act on (not text, not a name) is no
            // candidate here either: its locks and sockets are not looked at.
            let Ok(name) = stored_name(row.get_ref(1)?) else {
                continue;
            };
            let (reason, start) = match latest_running(self, &mut stmts, &prober, id)? {
                // A sweep leaves such a row as it is; so does this report.
                Some(run) if run.invalid.is_some() => continue,
                Some(run) => match run.liveness {
                    Liveness::Dead(reason) => (Some(reason), false),
                    Liveness::Alive => continue,
                },
                None if status == SandboxStatus::Draining => (None, false),
                None if status == SandboxStatus::Starting && run_dir.is_some() => (None, true),
                None => continue,
            };
            let owned = held.as_ref().is_some_and(|held| held.is_held(&name));
            let list = match (owned, start, run_dir) {
                (true, _, _) => &mut stale.owned,
                (false, false, _) => &mut stale.dead,
                // A connect writes nothing, so probing an endpoint keeps
                // this a read-only report. An answer, or none in time, is
                // live; a failed probe is no evidence either way.
                (false, true, Some(run)) => match may_be_live(run, sandboxes_dir, &name) {
                    Ok(false) => &mut stale.abandoned,
                    Ok(true) | Err(_) => continue,
                },
                (false, true, None) => continue,
            };
            list.push(StaleSandbox {
                id,
                name,
                status,
                reason,
            });
        }
        Ok(stale)
    }

    /// The row of lease `name`, verbatim.
    fn lease_record(&self, name: &str) -> Result<Option<LeaseRecord>> {
        let record = self
            .conn
            .query_row(LEASE_RECORD, [name], |r| {
                Ok(LeaseRecord {
                    holder_pid: r.get::<_, i64>(0).ok(),
                    lease_expires_at: r.get(1)?,
                    last_completed_at: r.get(2)?,
                })
            })
            .optional()?;
        Ok(record)
    }
}
