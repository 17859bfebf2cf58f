//! A read-only summary of a catalog: what `sandbox-sweep status` shows.
//!
//! Reads only: never a write to the catalog's file (without the run index,
//! the running runs are copied once into the connection's temporary
//! database: [`CopiedRuns`]). Beside a run directory it reads which locks
//! are held from `/proc/locks` (taking none) and asks a start's socket
//! paths whether anything answers (a connect, which writes nothing). Must
//! not sort or hold a list: the lists go to a callback as they are found.

use rusqlite::OptionalExtension;
use rusqlite::types::ValueRef;

use crate::catalog::Catalog;
use crate::catalog::ids::SandboxId;
use crate::catalog::sql::{
    ACTIVE_SANDBOXES, COUNT_EPHEMERAL_TERMINAL, LEASE_RECORD, RECONCILE_CANDIDATES,
};
use crate::catalog::statements::Statements;
use crate::error::{Error, Result};
use crate::lease::install::INSTALL_LEASE_NAME;
use crate::lease::spec::LeaseSpec;
use crate::orphans::{Orphans, trash_only};
use crate::process::liveness::{DeadReason, Liveness, Prober};
use crate::process::runs::{CopiedRuns, latest_running, newest_running_pid, run_lookups};
use crate::rundir::locks::HeldLocks;
use crate::rundir::sockets::may_be_live;
use crate::sandboxes::lifecycle::SandboxStatus;
use crate::sandboxes::names::stored_name;

mod count;
mod lists;

pub use lists::{Entry, List, StaleList, SummaryOptions};

/// An active sandbox whose runtime is dead: the next sweep reconciles it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleSandbox {
    /// `sandbox.id`.
    pub id: SandboxId,
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
/// with the pid of its newest `Running` run, by status then id: what blocks a
/// schema rollback. Reads only; probes no process.
///
/// # Errors
///
/// Any SQLite error.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, Lifetime, SandboxStatus, SystemClock};
/// use sandbox_sweep::status::active_sandboxes;
///
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// let catalog = Catalog::from_connection(conn)?;
/// for (name, status) in [("b", SandboxStatus::Paused), ("a", SandboxStatus::Created), ("c", SandboxStatus::Stopped)] {
///     catalog.insert_sandbox(name, status, Lifetime::Persistent, SystemClock::now())?;
/// }
/// let names: Vec<_> = active_sandboxes(&catalog)?.into_iter().map(|s| s.name).collect();
/// assert_eq!(names, ["a", "b"]);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
pub fn active_sandboxes(catalog: &Catalog) -> Result<Vec<ActiveSandbox>> {
    let mut active = Vec::new();
    let copy = CopiedRuns::when_unindexed(catalog, &catalog.missing_indexes()?)?;
    each_active(catalog, copy.as_ref(), |sandbox| {
        active.push(sandbox);
        Ok::<_, Error>(())
    })?;
    Ok(active)
}

/// Hands every active sandbox to `each`, by status then id, holding none.
fn each_active<'c, E: From<Error>>(
    catalog: &'c Catalog,
    copy: Option<&CopiedRuns<'c>>,
    mut each: impl FnMut(ActiveSandbox) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut stmt = catalog
        .conn
        .prepare(ACTIVE_SANDBOXES)
        .map_err(Error::from)?;
    let mut rows = stmt.query([]).map_err(Error::from)?;
    let mut stmts = run_lookups(catalog, copy)?;
    while let Some(row) = rows.next().map_err(Error::from)? {
        if let Some(sandbox) = active_row(catalog, &mut stmts, row)? {
            each(sandbox)?;
        }
    }
    Ok(())
}

fn active_row(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    row: &rusqlite::Row<'_>,
) -> Result<Option<ActiveSandbox>> {
    let Some(status) = known_status(row.get_ref(2)?) else {
        return Ok(None);
    };
    Ok(Some(ActiveSandbox {
        name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
        status,
        pid: newest_running_pid(catalog, stmts, row.get(0)?)?,
    }))
}

/// How long a summary may spend measuring the trash: a tree left there
/// can be any size, and what was measured by then is shown.
const TRASH_LOOK_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// Active sandboxes whose runtime is dead now, by status then id: what the next
    /// sweep reconciles.
    pub dead_active: List<StaleSandbox>,
    /// Active sandboxes whose recorded runtime looks dead (or a start with
    /// no run) but whose creation or lifecycle lock is held (only beside a
    /// run directory, see [`SummaryOptions::run_dir`]): a live owner, left
    /// alone by sweeps.
    pub lifecycle_owned: List<StaleSandbox>,
    /// Abandoned starts, by id: `Starting` with no `Running` run, no lock
    /// held and nothing answering on the runtime's socket paths. The next
    /// sweep beside the run directory marks them `Crashed`. Only judged
    /// beside a run directory: without one there is no evidence, and
    /// sweeps leave such rows alone.
    pub abandoned_starts: List<StaleSandbox>,
    /// The maintenance lease row, if any sweep ever took it.
    pub lease: Option<LeaseRecord>,
    /// The install-exclusive lease row, if any installer ever took it.
    pub install: Option<LeaseRecord>,
    /// Every active sandbox, as [`active_sandboxes`] lists them.
    pub active: List<ActiveSandbox>,
    /// This crate's indexes the catalog lacks (see
    /// [`Catalog::missing_indexes`]): `sandbox-sweep init` adds them.
    pub missing_indexes: Vec<&'static str>,
    /// What the trash holds (only given
    /// [`SummaryOptions::sandboxes_dir`]): deletions a sweep did not
    /// finish, each measured. An entry that stays across sweeps is a tree
    /// the trash cannot delete (a mount point inside, an immutable file):
    /// every sweep tries again and counts it in
    /// [`Report::trash_failed`](crate::Report::trash_failed).
    pub trash: Option<Orphans>,
}

/// A status column's value as a known status; `None` for anything else
/// (the queries here select known text only, so that is never expected).
fn known_status(value: ValueRef<'_>) -> Option<SandboxStatus> {
    match value {
        ValueRef::Text(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    }
}

/// SQLite counts are never negative.
fn sql_count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Catalog {
    /// Summarises the catalog, probing every active sandbox's runtime, and
    /// keeps every list whole. Reads only.
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
    /// assert_eq!(summary.dead_active.total, 1);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn summary(&self) -> Result<Summary> {
        self.summary_with(&SummaryOptions::new(), |_| Ok::<_, Error>(()))
    }

    /// [`Catalog::summary`] as `options` say, handing each list's entries
    /// to `each` as they are found, kept or not: a caller that writes them
    /// out needs no memory for them ([`SummaryOptions::keep`] of 0). Stale
    /// sandboxes come first, then active ones, each by status then id (the
    /// status index's order: nothing is sorted). Reads only.
    ///
    /// On a catalog without this crate's indexes
    /// ([`Catalog::missing_indexes`]) it stays cheap: the statuses are
    /// counted in one pass of the table, and the running runs are copied
    /// once into an indexed table of the connection's temporary database
    /// (never the catalog's file; dropped before this returns) instead of
    /// scanning `run` once per sandbox.
    ///
    /// # Errors
    ///
    /// Any SQLite error, or the first error `each` returns (which ends the
    /// walk).
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::rundir::try_lock_lifecycle;
    /// use sandbox_sweep::status::{Entry, SummaryOptions};
    /// use sandbox_sweep::*;
    ///
    /// let run = std::env::temp_dir().join("sandbox-sweep-doc-status-207");
    /// # let _ = std::fs::remove_dir_all(&run);
    /// std::fs::create_dir_all(&run)?;
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// migrate(&conn)?;
    /// conn.execute("INSERT INTO sandbox (name, config, status) VALUES ('a', '{}', 'Draining')", [])?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let beside = SummaryOptions::new().run_dir(&run).keep(0);
    /// let lock = try_lock_lifecycle(&run, "a")?.expect("free");
    /// let mut seen = Vec::new();
    /// let summary = catalog.summary_with(&beside, |entry| {
    ///     if let Entry::Stale(list, sandbox) = entry {
    ///         seen.push((list.as_str(), sandbox.name.clone()));
    ///     }
    ///     Ok::<_, Error>(())
    /// })?;
    /// if cfg!(target_os = "linux") {
    ///     assert_eq!(seen, [("lifecycle_owned", "a".to_owned())]);
    ///     assert_eq!((summary.dead_active.total, summary.lifecycle_owned.total), (0, 1));
    /// }
    /// assert!(summary.lifecycle_owned.first.is_empty());
    /// drop(lock);
    /// assert_eq!(catalog.summary_with(&beside, |_| Ok::<_, Error>(()))?.dead_active.total, 1);
    /// # std::fs::remove_dir_all(&run)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn summary_with<E: From<Error>>(
        &self,
        options: &SummaryOptions,
        mut each: impl FnMut(Entry<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<Summary, E> {
        let mut summary = self.counts(self.missing_indexes()?)?;
        let keep = options.keep;
        let copy = CopiedRuns::when_unindexed(self, &summary.missing_indexes)?;
        self.stale(options, copy.as_ref(), |list, sandbox| {
            each(Entry::Stale(list, &sandbox))?;
            let to = match list {
                StaleList::DeadActive => &mut summary.dead_active,
                StaleList::LifecycleOwned => &mut summary.lifecycle_owned,
                StaleList::AbandonedStarts => &mut summary.abandoned_starts,
            };
            to.push(sandbox, keep);
            Ok::<_, E>(())
        })?;
        each_active(self, copy.as_ref(), |sandbox| {
            each(Entry::Active(&sandbox))?;
            summary.active.push(sandbox, keep);
            Ok::<_, E>(())
        })?;
        if let Some(sandboxes) = &options.sandboxes_dir {
            summary.trash = Some(trash_only(sandboxes, TRASH_LOOK_BUDGET));
        }
        Ok(summary)
    }

    /// Everything a summary holds but its lists.
    fn counts(&self, missing_indexes: Vec<&'static str>) -> Result<Summary> {
        let conn = &self.conn;
        let counts = self.count_by_status(count::FIRST_CAP, &missing_indexes)?;
        Ok(Summary {
            by_status: counts.by_status,
            other_status: counts.other,
            ephemeral_terminal: sql_count(
                conn.query_row(COUNT_EPHEMERAL_TERMINAL, [], |r| r.get(0))?,
            ),
            lease: self.lease_record(LeaseSpec::SWEEP.name)?,
            install: self.lease_record(INSTALL_LEASE_NAME)?,
            missing_indexes,
            ..Summary::default()
        })
    }

    /// Hands `each` every active sandbox whose runtime is dead now, by
    /// status then id,
    /// with its list: those a sweep would reconcile, those whose locks in
    /// the run directory are held (a sweep leaves them alone), and
    /// abandoned starts.
    fn stale<'c, E: From<Error>>(
        &'c self,
        options: &SummaryOptions,
        copy: Option<&CopiedRuns<'c>>,
        mut each: impl FnMut(StaleList, StaleSandbox) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let run_dir = options.run_dir.as_deref();
        let held = run_dir.and_then(HeldLocks::read);
        let prober = Prober::new();
        let mut stmts = run_lookups(self, copy)?;
        let mut stmt = self
            .conn
            .prepare(RECONCILE_CANDIDATES)
            .map_err(Error::from)?;
        let mut rows = stmt.query([]).map_err(Error::from)?;
        while let Some(row) = rows.next().map_err(Error::from)? {
            let Some(sandbox) = self.stale_row(&mut stmts, &prober, row, run_dir.is_some())? else {
                continue;
            };
            let owned = held
                .as_ref()
                .is_some_and(|held| held.is_held(&sandbox.name));
            let list = match (owned, sandbox.reason, run_dir) {
                (true, _, _) => StaleList::LifecycleOwned,
                (false, Some(_), _) => StaleList::DeadActive,
                (false, None, _) if sandbox.status == SandboxStatus::Draining => {
                    StaleList::DeadActive
                }
                // A connect writes nothing, so probing an endpoint keeps
                // this a read-only report. An answer, or none in time, is
                // live; a failed probe is no evidence either way.
                (false, None, Some(run)) => {
                    match may_be_live(run, options.sandboxes_dir.as_deref(), &sandbox.name) {
                        Ok(false) => StaleList::AbandonedStarts,
                        Ok(true) | Err(_) => continue,
                    }
                }
                (false, None, None) => continue,
            };
            each(list, sandbox)?;
        }
        Ok(())
    }

    /// A reconcile candidate as a stale sandbox, when its runtime is dead
    /// (or it is a `Draining` sandbox with no running run, or, beside a run
    /// directory, a start with none).
    fn stale_row(
        &self,
        stmts: &mut Statements<'_>,
        prober: &Prober,
        row: &rusqlite::Row<'_>,
        beside: bool,
    ) -> Result<Option<StaleSandbox>> {
        let id: i64 = row.get(0)?;
        let Some(status) = known_status(row.get_ref(2)?) else {
            return Ok(None);
        };
        // A name no sweep would act on (not text, not a name) is no
        // candidate here either: its locks and sockets are not looked at.
        let Ok(name) = stored_name(row.get_ref(1)?) else {
            return Ok(None);
        };
        let reason = match latest_running(self, stmts, prober, id)? {
            // A sweep leaves such a row as it is; so does this report.
            Some(run) if run.invalid.is_some() => return Ok(None),
            Some(run) => match run.liveness {
                Liveness::Dead(reason) => Some(reason),
                Liveness::Alive => return Ok(None),
            },
            None if status == SandboxStatus::Draining => None,
            None if status == SandboxStatus::Starting && beside => None,
            None => return Ok(None),
        };
        Ok(Some(StaleSandbox {
            id: SandboxId::new(id),
            name,
            status,
            reason,
        }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{DEAD_PID, Fixture};

    /// Whether the report's copy of the running runs exists now.
    fn copied(catalog: &Catalog) -> Result<bool> {
        let sql = "SELECT count(*) FROM temp.sqlite_master WHERE name = 'sandbox_sweep_running'";
        Ok(catalog.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? == 1)
    }

    #[test]
    fn without_the_indexes_the_summary_reads_a_copy_of_the_running_runs_and_drops_it() -> Result<()>
    {
        let f = Fixture::new()?;
        let me = i64::from(std::process::id());
        let dead = f.sandbox("dead", "Running", false)?;
        f.run(dead, Some(me), "Terminated")?;
        f.run(dead, Some(DEAD_PID), "Running")?;
        let live = f.sandbox("live", "Running", false)?;
        f.run(live, Some(me), "Running")?;
        let draining = f.sandbox("draining", "Draining", false)?;
        f.sandbox("paused", "Paused", false)?;
        f.sandbox("done", "Stopped", false)?;
        let indexed = f.catalog.summary()?;
        assert_eq!(
            indexed
                .dead_active
                .first
                .iter()
                .map(|s| s.id.get())
                .collect::<Vec<_>>(),
            [draining, dead]
        );
        assert_eq!(indexed.active.total, 4);

        f.conn()
            .execute_batch("DROP INDEX idx_run_sandbox_status; DROP INDEX idx_sandbox_status;")?;
        let mut during = Vec::new();
        let unindexed = f.catalog.summary_with(&SummaryOptions::new(), |_| {
            during.push(copied(&f.catalog)?);
            // Gone from the table once the walk began: the lookups read
            // the copy, which still has it.
            f.conn().execute(
                "DELETE FROM main.run WHERE sandbox_id = ?1 AND status = 'Running'",
                [dead],
            )?;
            Ok::<_, Error>(())
        })?;
        assert_eq!(during, [true; 6]);
        assert!(!copied(&f.catalog)?);
        assert_eq!(
            unindexed.missing_indexes,
            ["idx_run_sandbox_status", "idx_sandbox_status"]
        );
        assert_eq!(
            Summary {
                missing_indexes: Vec::new(),
                ..unindexed
            },
            indexed
        );
        // The installer's list makes a copy of its own (without the run
        // the walk deleted), and leaves nothing.
        let pids: Vec<_> = active_sandboxes(&f.catalog)?
            .into_iter()
            .map(|a| a.pid)
            .collect();
        // By status: draining, paused, then dead and live (Running).
        assert_eq!(pids, [None, None, None, Some(me)]);
        assert!(!copied(&f.catalog)?);
        Ok(())
    }
}
