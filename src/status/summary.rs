//! [`Summary`]: what `sandbox-sweep status` shows, and the walk that
//! fills it ([`Catalog::summary`], [`Catalog::summary_with`]).
//!
//! Owns putting the parts together (counts, the stale and active lists as
//! their walks hand them over, the lease rows, the trash); must not judge a
//! row (`stale.rs` asks the sweep's rule) or write.

use rusqlite::OptionalExtension;

use crate::catalog::Catalog;
use crate::catalog::sql::{COUNT_EPHEMERAL_TERMINAL, LEASE_RECORD};
use crate::error::{Error, Result};
use crate::lease::install::INSTALL_LEASE_NAME;
use crate::lease::spec::LeaseSpec;
use crate::orphans::{Orphans, trash_only};
use crate::sandboxes::lifecycle::SandboxStatus;
use crate::status::active::{ActiveSandbox, each_active};
use crate::status::count;
use crate::status::lists::{Entry, List, StaleList, SummaryOptions};
use crate::status::runs::CopiedRuns;
use crate::status::sql_count;
use crate::status::stale::StaleSandbox;

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
    /// Every active sandbox, as [`active_sandboxes`](super::active_sandboxes) lists them.
    pub active: List<ActiveSandbox>,
    /// This crate's indexes the catalog lacks (see
    /// [`Catalog::missing_indexes`]): [`migrate`](crate::migrate) adds them.
    pub missing_indexes: Vec<&'static str>,
    /// What the trash holds (only given
    /// [`SummaryOptions::sandboxes_dir`]): deletions a sweep did not
    /// finish, each measured. An entry that stays across sweeps is a tree
    /// the trash cannot delete (a mount point inside, an immutable file):
    /// every sweep tries again and counts it in
    /// [`Report::trash_failed`](crate::Report::trash_failed).
    pub trash: Option<Orphans>,
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
    use crate::status::active_sandboxes;

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
