//! The bounded sweep: reconcile stale active sandboxes, then clean finished
//! ephemeral ones, in fenced batches, within row limits and a time budget.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::cleanup::{CleanupOutcome, Moved, Sandboxes, clean_row};
use crate::error::{Error, Result};
use crate::lease::{Acquire, Lease, SkipReason};
use crate::liveness::{DeadReason, Liveness, Prober};
use crate::runs::latest_running;
use crate::stamp::format_stamp;
use crate::statements::Statements;

/// A source of the current UTC time, so tests can move time.
///
/// Closures returning a [`PrimitiveDateTime`] are clocks too.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Clock, SystemClock, parse_stamp};
///
/// let fixed = || parse_stamp("2026-06-04 00:00:00").expect("valid");
/// assert_eq!(fixed.now().year(), 2026);
/// assert!(SystemClock.now().year() >= 2024);
/// ```
pub trait Clock {
    /// The current time, UTC.
    fn now(&self) -> PrimitiveDateTime;
}

/// The real clock: `time::OffsetDateTime::now_utc()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> PrimitiveDateTime {
        let now = time::OffsetDateTime::now_utc();
        PrimitiveDateTime::new(now.date(), now.time())
    }
}

impl<F: Fn() -> PrimitiveDateTime> Clock for F {
    fn now(&self) -> PrimitiveDateTime {
        self()
    }
}

/// How much one sweep may do. What is left waits for the next sweep.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sandbox_sweep::Limits;
///
/// let limits = Limits::default();
/// assert_eq!((limits.max_active, limits.max_ephemeral), (250, 250));
/// assert_eq!(limits.budget, Duration::from_millis(250));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most active (`Running`/`Draining`) candidates examined per sweep (default 250).
    pub max_active: usize,
    /// Most terminal ephemeral candidates examined per sweep (default 250).
    pub max_ephemeral: usize,
    /// Wall-clock budget, checked before each page and between rows (default 250 ms).
    pub budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_active: 250,
            max_ephemeral: 250,
            budget: Duration::from_millis(250),
        }
    }
}

impl Limits {
    /// No row limits and an effectively unlimited budget.
    pub fn unlimited() -> Limits {
        Limits {
            max_active: usize::MAX,
            max_ephemeral: usize::MAX,
            budget: Duration::from_secs(u64::from(u32::MAX)),
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Active sandboxes repaired (`crashed + stopped`).
    pub reconciled: u64,
    /// `Running` sandboxes marked `Crashed`.
    pub crashed: u64,
    /// `Draining` sandboxes marked `Stopped`.
    pub stopped: u64,
    /// Ephemeral sandboxes whose directory and rows were removed.
    pub removed: u64,
    /// Per-row problems (bad name, directory that would not move); rows left as they were.
    pub errors: u64,
    /// The time budget ran out before both phases were done.
    pub timed_out: bool,
    /// Another process took the lease mid-sweep; nothing was written after.
    pub lease_lost: bool,
    /// Both phases went through every candidate: nothing was left behind.
    pub complete: bool,
    /// Nothing was written: the counts say what a sweep would have done.
    pub dry_run: bool,
    /// Removed sandboxes' directories left in the trash because the budget
    /// ran out while deleting them; the next sweep deletes them.
    pub trash_deferred: u64,
    /// How long the sweep took.
    pub elapsed: Duration,
    dead: [u64; DeadReason::ALL.len()],
    outcomes: [u64; CleanupOutcome::ALL.len()],
}

impl Report {
    /// How many reconciliations found the runtime dead for `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// let report = sandbox_sweep::Report::default();
    /// assert_eq!(report.dead(sandbox_sweep::DeadReason::Zombie), 0);
    /// ```
    pub fn dead(&self, reason: DeadReason) -> u64 {
        self.dead[reason.index()]
    }

    /// How many ephemeral candidates ended with `outcome`.
    pub fn outcome(&self, outcome: CleanupOutcome) -> u64 {
        self.outcomes[outcome.index()]
    }

    fn count_outcome(&mut self, outcome: CleanupOutcome) {
        self.outcomes[outcome.index()] += 1;
        if outcome == CleanupOutcome::Removed {
            self.removed += 1;
        }
        if outcome.is_error() {
            self.errors += 1;
        }
    }
}

/// What the startup entry point did. It never panics and never returns `Err`.
#[derive(Debug)]
pub enum Outcome {
    /// No sweep: the lease was held, a sweep was recent, or the catalog busy.
    Skipped(SkipReason),
    /// A sweep ran (possibly partly: see [`Report::complete`]).
    Swept(Report),
    /// The sweep could not run or stopped on a database error; the lease was released.
    Failed(Error),
}

/// Configures and runs sweeps of one sandboxes directory.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sandbox_sweep::{Outcome, Sweeper};
///
/// let dir = tempfile::tempdir()?;
/// let conn = sandbox_sweep::open(dir.path().join("catalog.db"))?;
/// sandbox_sweep::migrate(&conn)?;
/// let outcome = Sweeper::new(dir.path())
///     .max_active(100)
///     .budget(Duration::from_millis(50))
///     .run(&conn);
/// assert!(matches!(outcome, Outcome::Swept(ref r) if r.complete && r.reconciled == 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sweeper {
    sandboxes_dir: PathBuf,
    limits: Limits,
    force: bool,
    batch_size: usize,
}

impl Sweeper {
    /// A sweeper for `<sandboxes_dir>/<name>` directories, with default
    /// [`Limits`], `force` off and batches of 512 rows per transaction.
    pub fn new(sandboxes_dir: impl Into<PathBuf>) -> Sweeper {
        Sweeper {
            sandboxes_dir: sandboxes_dir.into(),
            limits: Limits::default(),
            force: false,
            batch_size: 512,
        }
    }

    /// Replaces all limits at once (default [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Sweeper {
        self.limits = limits;
        self
    }

    /// Most active candidates examined per sweep (default 250).
    pub fn max_active(mut self, n: usize) -> Sweeper {
        self.limits.max_active = n;
        self
    }

    /// Most terminal ephemeral candidates examined per sweep (default 250).
    pub fn max_ephemeral(mut self, n: usize) -> Sweeper {
        self.limits.max_ephemeral = n;
        self
    }

    /// The sweep's wall-clock budget (default 250 ms).
    pub fn budget(mut self, budget: Duration) -> Sweeper {
        self.limits.budget = budget;
        self
    }

    /// Skip the minimum-interval gate (default `false`). A live lease is
    /// never taken over.
    pub fn force(mut self, force: bool) -> Sweeper {
        self.force = force;
        self
    }

    /// Rows per write transaction (default 512; at least 1). Larger batches
    /// amortise commits; smaller ones hold the write lock for less time.
    pub fn batch_size(mut self, n: usize) -> Sweeper {
        self.batch_size = n.max(1);
        self
    }

    /// The startup entry point: gate, acquire, sweep, release, on the real
    /// clock. Records completion only when nothing was left behind.
    pub fn run(&self, conn: &Connection) -> Outcome {
        match Catalog::new(conn) {
            Ok(catalog) => self.run_with(&catalog, &SystemClock),
            Err(err) if err.is_busy() => Outcome::Skipped(SkipReason::Busy),
            Err(err) => Outcome::Failed(err),
        }
    }

    /// [`Sweeper::run`] on an already checked catalog and a given clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, Outcome, SkipReason, Sweeper, parse_stamp};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let conn = rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::new(&conn)?;
    /// let sweeper = Sweeper::new(dir.path());
    /// let noon = || parse_stamp("2026-06-04 12:00:00").expect("valid");
    /// assert!(matches!(sweeper.run_with(&catalog, &noon), Outcome::Swept(_)));
    /// assert!(matches!(sweeper.run_with(&catalog, &noon), Outcome::Skipped(SkipReason::Recent)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_with(&self, catalog: &Catalog<'_>, clock: &dyn Clock) -> Outcome {
        let mut lease = match catalog.try_acquire(clock, self.force) {
            Ok(Acquire::Acquired(lease)) => lease,
            Ok(Acquire::Skipped(reason)) => return Outcome::Skipped(reason),
            Err(err) if err.is_busy() => return Outcome::Skipped(SkipReason::Busy),
            Err(err) => return Outcome::Failed(err),
        };
        match self.sweep(&mut lease, clock) {
            Ok(mut report) => {
                // Candidates left behind: release without completion, so
                // the next start goes on with the backlog at once.
                let completed_at = report.complete.then(|| clock.now());
                match lease.finish(completed_at) {
                    Ok(still_ours) => report.lease_lost |= !still_ours,
                    Err(err) => log::warn!(
                        "could not release the maintenance lease (it will expire): {err}"
                    ),
                }
                log::debug!("sandbox lifecycle sweep done: {report:?}");
                Outcome::Swept(report)
            }
            Err(err) => {
                log::warn!("sandbox lifecycle sweep failed: {err}");
                drop(lease);
                Outcome::Failed(err)
            }
        }
    }

    /// Sweeps under a lease the caller holds. Every write transaction first
    /// checks the lease is still ours and renews it; when it is not, the
    /// sweep stops with [`Report::lease_lost`] and writes nothing more.
    ///
    /// # Errors
    ///
    /// Database errors end the sweep (what was committed stays committed),
    /// and so does a sandboxes directory that does not exist (checked before
    /// any ephemeral sandbox is touched).
    pub fn sweep(&self, lease: &mut Lease<'_>, clock: &dyn Clock) -> Result<Report> {
        let catalog = lease.catalog();
        Pass::new(self, catalog, clock, Some(lease)).run()
    }

    /// Reads only: reports what a sweep would reconcile and remove now,
    /// taking no lease, writing nothing, touching no file.
    ///
    /// # Errors
    ///
    /// Database errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, Sweeper, SystemClock};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let conn = rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// conn.execute("INSERT INTO sandbox (name, config, status, ephemeral) VALUES ('a', '{}', 'Crashed', 1)", [])?;
    /// let report = Sweeper::new(dir.path()).dry_run(&Catalog::new(&conn)?, &SystemClock)?;
    /// assert_eq!((report.removed, report.dry_run), (1, true));
    /// let rows: i64 = conn.query_row("SELECT count(*) FROM sandbox", [], |r| r.get(0))?;
    /// assert_eq!(rows, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dry_run(&self, catalog: &Catalog<'_>, clock: &dyn Clock) -> Result<Report> {
        Pass::new(self, catalog, clock, None).run()
    }
}

/// The startup entry point with default settings: what a runtime calls when
/// it starts. See [`Sweeper::run`].
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Outcome, run_startup_maintenance};
///
/// let dir = tempfile::tempdir()?;
/// let conn = sandbox_sweep::open(dir.path().join("catalog.db"))?;
/// sandbox_sweep::migrate(&conn)?;
/// match run_startup_maintenance(&conn, dir.path()) {
///     Outcome::Swept(report) => assert_eq!(report.errors, 0),
///     Outcome::Skipped(reason) => println!("skipped: {reason}"),
///     Outcome::Failed(err) => eprintln!("maintenance failed: {err}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run_startup_maintenance(conn: &Connection, sandboxes_dir: &Path) -> Outcome {
    Sweeper::new(sandboxes_dir).run(conn)
}

/// The two phases, each a ring of candidate ids walked with keyset paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Active,
    Ephemeral,
}

impl Phase {
    /// Candidate ids in `(after, upto]`, ascending. One index range scan per
    /// status, merged as they stream (no sorter), so reading stops after a
    /// page without touching the rest of the candidates. No `LIMIT ?`: SQLite
    /// marks a plan with a bound limit as depending on the value, and such a
    /// statement is re-prepared whenever its bindings are cleared, which the
    /// statement cache does on every reuse. The caller stops reading instead.
    pub(crate) fn page_sql(self) -> &'static str {
        match self {
            Phase::Active => {
                "SELECT id FROM sandbox WHERE status = 'Running' AND id > ?1 AND id <= ?2
                 UNION ALL
                 SELECT id FROM sandbox WHERE status = 'Draining' AND id > ?1 AND id <= ?2
                 ORDER BY 1"
            }
            Phase::Ephemeral => {
                "SELECT id FROM sandbox WHERE ephemeral = 1 AND status = 'Stopped' AND id > ?1 AND id <= ?2
                 UNION ALL
                 SELECT id FROM sandbox WHERE ephemeral = 1 AND status = 'Crashed' AND id > ?1 AND id <= ?2
                 ORDER BY 1"
            }
        }
    }

    fn key(self) -> &'static str {
        match self {
            Phase::Active => "active",
            Phase::Ephemeral => "ephemeral",
        }
    }
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Every candidate in the ring was examined.
    Complete,
    /// The row limit stopped it with candidates left.
    Capped,
    /// The budget ran out.
    TimedOut,
    /// The lease was lost.
    LeaseLost,
}

/// One sweep in progress.
struct Pass<'s, 'c, 'l> {
    sweeper: &'s Sweeper,
    catalog: &'c Catalog<'c>,
    clock: &'s dyn Clock,
    /// `None` for a dry run.
    lease: Option<&'s mut Lease<'l>>,
    prober: Prober,
    sandboxes: Sandboxes<'s>,
    started: Instant,
    report: Report,
    ids: Vec<i64>,
    stmts: Statements<'c>,
}

impl<'s, 'c, 'l> Pass<'s, 'c, 'l> {
    fn new(
        sweeper: &'s Sweeper,
        catalog: &'c Catalog<'c>,
        clock: &'s dyn Clock,
        lease: Option<&'s mut Lease<'l>>,
    ) -> Self {
        Pass {
            sweeper,
            catalog,
            clock,
            report: Report {
                dry_run: lease.is_none(),
                ..Report::default()
            },
            lease,
            prober: Prober::new(),
            sandboxes: Sandboxes::new(&sweeper.sandboxes_dir),
            started: Instant::now(),
            ids: Vec::with_capacity(sweeper.batch_size),
            stmts: Statements::new(catalog.conn),
        }
    }

    fn out_of_time(&self) -> bool {
        self.started.elapsed() >= self.sweeper.limits.budget
    }

    fn run(mut self) -> Result<Report> {
        let limits = self.sweeper.limits;
        let mut end = self.phase(Phase::Active, limits.max_active)?;
        let active_done = end == End::Complete;
        if matches!(end, End::Complete | End::Capped) {
            end = self.purge_trash()?;
            if end == End::Complete {
                end = self.phase(Phase::Ephemeral, limits.max_ephemeral)?;
            }
        }
        self.report.timed_out = end == End::TimedOut;
        self.report.lease_lost = end == End::LeaseLost;
        self.report.complete = active_done && end == End::Complete;
        self.report.elapsed = self.started.elapsed();
        Ok(self.report)
    }

    /// Opens a write transaction and checks the fence; `None` when the
    /// lease is lost (the transaction is then rolled back).
    fn begin(&mut self) -> Result<Option<rusqlite::Transaction<'c>>> {
        let tx = self.catalog.immediate()?;
        let now = self.clock.now();
        if let Some(lease) = self.lease.as_deref_mut() {
            if !lease.renew(&tx, now)? {
                return Ok(None);
            }
        }
        Ok(Some(tx))
    }

    fn purge_trash(&mut self) -> Result<End> {
        self.sandboxes.check()?;
        if self.lease.is_none() {
            return Ok(End::Complete);
        }
        if !self.sandboxes.trash_exists() {
            // The common case: no leftovers, so no write transaction either.
            return Ok(End::Complete);
        }
        if self.out_of_time() {
            return Ok(End::TimedOut);
        }
        let Some(tx) = self.begin()? else {
            return Ok(End::LeaseLost);
        };
        let doomed = self.sandboxes.sort_trash(self.catalog)?;
        tx.commit()?;
        self.delete_within_budget(doomed.iter().map(OsString::as_os_str));
        Ok(End::Complete)
    }

    /// Deletes trash entries while the budget lasts, checking the clock
    /// between files: a sandbox directory can be arbitrarily large, so what
    /// does not fit waits in the trash for the next sweep's purge (its row is
    /// already gone, so nothing else is owed).
    fn delete_within_budget<'p>(&mut self, entries: impl Iterator<Item = &'p OsStr>) {
        let deadline = self.started.checked_add(self.sweeper.limits.budget);
        for entry in entries {
            if self.out_of_time() || !self.sandboxes.discard(entry, deadline) {
                self.report.trash_deferred += 1;
            }
        }
    }

    fn load_cursor(&self, phase: Phase) -> Result<i64> {
        if !self.catalog.schema.cursor {
            return Ok(0);
        }
        let after = self
            .catalog
            .conn
            .prepare_cached("SELECT after_id FROM sandbox_sweep_cursor WHERE phase = ?1")?
            .query_row([phase.key()], |row| row.get::<_, i64>(0))
            .optional()?;
        Ok(after.unwrap_or(0).max(0))
    }

    fn save_cursor(&self, phase: Phase, after: i64) -> Result<()> {
        if self.catalog.schema.cursor {
            self.catalog
                .conn
                .prepare_cached(
                    "INSERT INTO sandbox_sweep_cursor (phase, after_id) VALUES (?1, ?2)
                     ON CONFLICT(phase) DO UPDATE SET after_id = excluded.after_id",
                )?
                .execute(params![phase.key(), after])?;
        }
        Ok(())
    }

    /// Fills `self.ids` with up to `n` candidate ids in `(after, upto]`.
    fn page(&mut self, phase: Phase, after: i64, upto: i64, n: usize) -> Result<()> {
        self.ids.clear();
        let mut stmt = self.catalog.conn.prepare_cached(phase.page_sql())?;
        let mut rows = stmt.query(params![after, upto])?;
        while self.ids.len() < n {
            let Some(row) = rows.next()? else { break };
            self.ids.push(row.get(0)?);
        }
        Ok(())
    }

    /// Walks the ring of candidates from the saved cursor round to it again.
    fn phase(&mut self, phase: Phase, limit: usize) -> Result<End> {
        let start = self.load_cursor(phase)?;
        // First (start, MAX], then, wrapped, (0, start].
        let (mut after, mut upto, mut wrapped) = (start, i64::MAX, start == 0);
        let mut examined = 0usize;
        loop {
            if self.out_of_time() {
                return Ok(End::TimedOut);
            }
            let room = limit - examined;
            // With no room left, peek one row: is anything left in the ring?
            self.page(phase, after, upto, room.clamp(1, self.sweeper.batch_size))?;
            if self.ids.is_empty() {
                if wrapped {
                    return Ok(End::Complete);
                }
                (after, upto, wrapped) = (0, start, true);
                continue;
            }
            if room == 0 {
                return Ok(End::Capped);
            }
            let ids = std::mem::take(&mut self.ids);
            let result = self.batch(phase, &ids, &mut after, &mut examined);
            self.ids = ids;
            match result? {
                End::Complete => {}
                end => return Ok(end),
            }
        }
    }

    /// Acts on one page of candidates in one fenced write transaction.
    /// Returns `Complete` when the whole page was handled.
    fn batch(
        &mut self,
        phase: Phase,
        ids: &[i64],
        after: &mut i64,
        examined: &mut usize,
    ) -> Result<End> {
        let tx = if self.lease.is_some() {
            match self.begin()? {
                Some(tx) => Some(tx),
                None => return Ok(End::LeaseLost),
            }
        } else {
            None
        };
        let now = self.clock.now();
        let mut moved: Vec<Moved> = Vec::new();
        let mut end = End::Complete;
        for (i, &id) in ids.iter().enumerate() {
            if i > 0 && self.out_of_time() {
                end = End::TimedOut;
                break;
            }
            let acted = match phase {
                Phase::Active => self.reconcile(id, now),
                Phase::Ephemeral => self.clean(id, &mut moved),
            };
            if let Err(err) = acted {
                moved.into_iter().for_each(|m| self.sandboxes.restore(m));
                return Err(err);
            }
            *after = id;
            *examined += 1;
        }
        let Some(tx) = tx else {
            return Ok(end);
        };
        let committed = self
            .save_cursor(phase, *after)
            .and_then(|()| tx.commit().map_err(Error::from_sqlite));
        match committed {
            Ok(()) => {
                self.delete_within_budget(moved.iter().map(Moved::entry));
                Ok(end)
            }
            Err(err) => {
                moved.into_iter().for_each(|m| self.sandboxes.restore(m));
                Err(err)
            }
        }
    }

    fn clean(&mut self, id: i64, moved: &mut Vec<Moved>) -> Result<()> {
        let dry_run = self.lease.is_none();
        let (outcome, dir) = clean_row(
            self.catalog,
            &mut self.stmts,
            &self.prober,
            &self.sandboxes,
            id,
            dry_run,
        )?;
        moved.extend(dir);
        self.report.count_outcome(outcome);
        Ok(())
    }

    /// Phase 1 for one sandbox, re-checked under the write lock: the
    /// newest `Running` run is judged first, and the sandbox's state is
    /// checked by the guarded update itself (no separate read).
    fn reconcile(&mut self, id: i64, now: PrimitiveDateTime) -> Result<()> {
        let run = latest_running(self.catalog, &mut self.stmts, &self.prober, id)?;
        let (run_id, reason) = match run {
            Some((_, Liveness::Alive)) => return Ok(()),
            Some((run_id, Liveness::Dead(reason))) => (Some(run_id), Some(reason)),
            None => (None, None),
        };
        // A `Running` sandbox with no `Running` run is still starting: only a
        // dead run makes it crashed. A `Draining` one stops either way.
        // Gone, or restarted into another state since the page was read:
        // neither matches, and nothing is written.
        let now_text = format_stamp(now);
        let draining = if run_id.is_some() && self.mark(id, "Running", "Crashed", &now_text)? {
            false
        } else if self.mark(id, "Draining", "Stopped", &now_text)? {
            true
        } else {
            return Ok(());
        };
        if self.lease.is_some() {
            let (from, to, termination) = if draining {
                ("Draining", "Stopped", "ShutdownRequested")
            } else {
                ("Running", "Crashed", "InternalError")
            };
            if let Some(run_id) = run_id {
                self.stmts
                    .get(
                        "UPDATE run SET status = 'Terminated', termination_reason = ?2, terminated_at = ?3
                         WHERE id = ?1 AND status = 'Running'",
                    )?
                    .execute(params![run_id, termination, now_text])?;
            }
            log::info!(
                "sandbox {id}: {from} -> {to} (runtime dead: {})",
                reason.map_or("no running run", DeadReason::as_str)
            );
        }
        self.report.reconciled += 1;
        if draining {
            self.report.stopped += 1;
        } else {
            self.report.crashed += 1;
        }
        if let Some(reason) = reason {
            self.report.dead[reason.index()] += 1;
        }
        Ok(())
    }

    /// Moves sandbox `id` from state `from` to `to`; whether it was in
    /// `from`. A dry run only checks.
    fn mark(&mut self, id: i64, from: &str, to: &str, now: &str) -> Result<bool> {
        if self.lease.is_none() {
            let found = self
                .stmts
                .get("SELECT 1 FROM sandbox WHERE id = ?1 AND status = ?2")?
                .exists(params![id, from])?;
            return Ok(found);
        }
        let sql = if self.catalog.schema.active_config {
            "UPDATE sandbox SET status = ?2, updated_at = ?3, active_config = NULL WHERE id = ?1 AND status = ?4"
        } else {
            "UPDATE sandbox SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status = ?4"
        };
        let changed = self.stmts.get(sql)?.execute(params![id, to, now, from])?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Acquire;
    use crate::fixture::{DEAD_PID, Fixture, NOW, exists, now, own_pid};

    fn sweep_all(f: &Fixture) -> Result<Report> {
        sweep_with(f, Sweeper::new(&f.sandboxes).limits(Limits::unlimited()))
    }

    fn sweep_with(f: &Fixture, sweeper: Sweeper) -> Result<Report> {
        let catalog = Catalog::new(&f.conn)?;
        match sweeper.force(true).run_with(&catalog, &now) {
            Outcome::Swept(report) => Ok(report),
            Outcome::Failed(err) => Err(err),
            Outcome::Skipped(reason) => panic!("unexpected skip: {reason}"),
        }
    }

    #[test]
    fn sweep_reconciles_dead_active_and_cleans_terminal_ephemeral() -> Result<()> {
        let f = Fixture::new()?;
        let dead = f.sandbox("dead", "Running", false)?;
        f.run(dead, Some(DEAD_PID), "Running")?;
        let eph = f.sandbox("eph", "Stopped", true)?;
        let eph_dir = f.mkdir("eph");
        let report = sweep_with(&f, Sweeper::new(&f.sandboxes))?;
        assert_eq!(
            (report.reconciled, report.removed, report.errors),
            (1, 1, 0)
        );
        assert!(report.complete && !report.timed_out && !report.lease_lost);
        assert_eq!(f.status(dead)?.as_deref(), Some("Crashed"));
        assert_eq!(f.status(eph)?, None);
        assert!(!exists(&eph_dir));
        Ok(())
    }

    #[test]
    fn running_with_dead_runtime_becomes_crashed() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("web", "Running", false)?;
        let run = f.run(id, Some(DEAD_PID), "Running")?;
        let report = sweep_all(&f)?;
        assert_eq!((report.crashed, report.stopped), (1, 0));
        assert_eq!(report.dead(DeadReason::NoSuchProcess), 1);
        assert_eq!(f.status(id)?.as_deref(), Some("Crashed"));
        assert_eq!(
            f.run_row(run)?,
            Some((
                "Terminated".into(),
                Some("InternalError".into()),
                Some(NOW.into())
            ))
        );
        let (updated, config): (String, Option<String>) = f.conn.query_row(
            "SELECT updated_at, active_config FROM sandbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        assert_eq!((updated.as_str(), config), (NOW, None));
        Ok(())
    }

    #[test]
    fn draining_with_dead_runtime_becomes_stopped() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("web", "Draining", false)?;
        let run = f.run(id, None, "Running")?;
        let report = sweep_all(&f)?;
        assert_eq!((report.crashed, report.stopped), (0, 1));
        assert_eq!(report.dead(DeadReason::NoPid), 1);
        assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
        assert_eq!(
            f.run_row(run)?,
            Some((
                "Terminated".into(),
                Some("ShutdownRequested".into()),
                Some(NOW.into())
            ))
        );
        Ok(())
    }

    #[test]
    fn draining_without_running_run_becomes_stopped() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("web", "Draining", false)?;
        let old = f.run(id, Some(DEAD_PID), "Terminated")?;
        let report = sweep_all(&f)?;
        assert_eq!(report.stopped, 1);
        assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
        assert_eq!(f.run_row(old)?, Some(("Terminated".into(), None, None)));
        Ok(())
    }

    #[test]
    fn running_without_running_run_is_left_alone() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("starting", "Running", false)?;
        f.run(id, Some(DEAD_PID), "Terminated")?;
        let report = sweep_all(&f)?;
        assert_eq!(report.reconciled, 0);
        assert_eq!(f.status(id)?.as_deref(), Some("Running"));
        Ok(())
    }

    #[test]
    fn live_runtime_is_left_alone() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("live", "Running", false)?;
        let run = f.run(id, Some(own_pid()), "Running")?;
        let drain = f.sandbox("draining", "Draining", true)?;
        f.run(drain, Some(own_pid()), "Running")?;
        let report = sweep_all(&f)?;
        assert_eq!(report.reconciled, 0);
        assert_eq!(f.status(id)?.as_deref(), Some("Running"));
        assert_eq!(f.status(drain)?.as_deref(), Some("Draining"));
        assert_eq!(f.run_row(run)?, Some(("Running".into(), None, None)));
        Ok(())
    }

    #[test]
    fn only_the_latest_running_run_decides() -> Result<()> {
        let f = Fixture::new()?;
        let live = f.sandbox("restarted", "Running", false)?;
        f.run_at(live, Some(DEAD_PID), "Running", "2026-06-01 00:00:00")?;
        f.run_at(live, Some(own_pid()), "Running", "2026-06-02 00:00:00")?;
        let dead = f.sandbox("died-after-restart", "Running", false)?;
        let old = f.run_at(dead, Some(own_pid()), "Running", "2026-06-01 00:00:00")?;
        let new = f.run_at(dead, Some(DEAD_PID), "Running", "2026-06-02 00:00:00")?;
        sweep_all(&f)?;
        assert_eq!(f.status(live)?.as_deref(), Some("Running"));
        assert_eq!(f.status(dead)?.as_deref(), Some("Crashed"));
        assert_eq!(f.run_row(new)?.map(|r| r.0), Some("Terminated".into()));
        assert_eq!(f.run_row(old)?.map(|r| r.0), Some("Running".into()));
        Ok(())
    }

    #[test]
    fn unknown_statuses_and_persistent_sandboxes_are_untouched() -> Result<()> {
        let f = Fixture::new()?;
        let odd = f.sandbox("odd", "Hibernating", true)?;
        f.run(odd, Some(DEAD_PID), "Running")?;
        let lower = f.sandbox("lower", "running", false)?;
        f.run(lower, Some(DEAD_PID), "Running")?;
        let keep = f.sandbox("keep", "Stopped", false)?;
        let keep_dir = f.mkdir("keep");
        let crashed_keep = f.sandbox("crashed-keep", "Crashed", false)?;
        let report = sweep_all(&f)?;
        assert_eq!(
            (report.reconciled, report.removed, report.errors),
            (0, 0, 0)
        );
        assert_eq!(f.status(odd)?.as_deref(), Some("Hibernating"));
        assert_eq!(f.status(lower)?.as_deref(), Some("running"));
        assert_eq!(f.status(keep)?.as_deref(), Some("Stopped"));
        assert_eq!(f.status(crashed_keep)?.as_deref(), Some("Crashed"));
        assert!(exists(&keep_dir.join("rootfs/data")));
        Ok(())
    }

    #[test]
    fn ephemeral_with_live_run_is_kept() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("eph", "Stopped", true)?;
        f.run(id, Some(own_pid()), "Running")?;
        let dir = f.mkdir("eph");
        let report = sweep_all(&f)?;
        assert_eq!(report.outcome(CleanupOutcome::SkippedLivePid), 1);
        assert_eq!(report.removed, 0);
        assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
        assert!(exists(&dir));
        Ok(())
    }

    #[test]
    fn removal_deletes_run_rows_and_symlinked_content_is_not_followed() -> Result<()> {
        let f = Fixture::new()?;
        let outside = f.dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::write(outside.join("precious"), b"keep me").expect("write");
        // The sandbox "directory" is itself a symlink to the outside dir ...
        let link = f.sandboxes.join("linked");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        let linked = f.sandbox("linked", "Crashed", true)?;
        f.run(linked, Some(DEAD_PID), "Terminated")?;
        // ... and another holds a symlink inside it.
        let inner = f.mkdir("inner");
        std::os::unix::fs::symlink(&outside, inner.join("escape")).expect("symlink");
        let inner_id = f.sandbox("inner", "Stopped", true)?;
        let report = sweep_all(&f)?;
        assert_eq!(report.removed, 2);
        assert!(!exists(&link) && !exists(&inner));
        assert_eq!(
            std::fs::read(outside.join("precious")).expect("target intact"),
            b"keep me"
        );
        assert_eq!((f.status(linked)?, f.status(inner_id)?), (None, None));
        assert_eq!(f.count("SELECT count(*) FROM run")?, 0);
        assert!(!exists(
            &f.sandboxes
                .join(crate::cleanup::TRASH_DIR)
                .join(linked.to_string())
        ));
        Ok(())
    }

    #[test]
    fn invalid_names_are_counted_and_nothing_outside_is_touched() -> Result<()> {
        let f = Fixture::new()?;
        // Canaries where each bad name would point if joined unchecked.
        let canary_root = f.dir.path().join("canary");
        std::fs::create_dir_all(canary_root.join("x")).expect("mkdir");
        std::fs::create_dir_all(f.sandboxes.join("a/b")).expect("mkdir");
        let abs = canary_root.join("abs");
        std::fs::create_dir_all(&abs).expect("mkdir");
        let names = [
            String::new(),
            ".".into(),
            "..".into(),
            "a/b".into(),
            abs.display().to_string(),
            "../canary/x".into(),
            "nul\0byte".into(),
            ".sandbox-sweep-trash".into(),
        ];
        let mut ids = Vec::new();
        for name in &names {
            ids.push(f.sandbox(name, "Stopped", true)?);
        }
        let report = sweep_all(&f)?;
        assert_eq!(report.errors, names.len() as u64);
        assert_eq!(
            report.outcome(CleanupOutcome::InvalidName),
            names.len() as u64
        );
        assert_eq!(report.removed, 0);
        for id in ids {
            assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
        }
        assert!(exists(&canary_root.join("x")) && exists(&abs) && exists(&f.sandboxes.join("a/b")));
        assert!(exists(&f.sandboxes) && exists(&f.db_path()));
        Ok(())
    }

    #[test]
    fn restart_between_selection_and_action_survives() -> Result<()> {
        let f = Fixture::new()?;
        let eph = f.sandbox("eph", "Stopped", true)?;
        let eph_dir = f.mkdir("eph");
        let web = f.sandbox("web", "Running", false)?;
        let old_run = f.run(web, Some(DEAD_PID), "Running")?;
        let other = rusqlite::Connection::open(f.db_path())?;
        let catalog = Catalog::new(&f.conn)?;
        let Acquire::Acquired(mut lease) = catalog.try_acquire(&now, true)? else {
            panic!("lease should be free");
        };
        let sweeper = Sweeper::new(&f.sandboxes);
        let mut pass = Pass::new(&sweeper, &catalog, &now, Some(&mut lease));
        for (phase, id) in [(Phase::Ephemeral, eph), (Phase::Active, web)] {
            pass.page(phase, 0, i64::MAX, 64)?;
            assert_eq!(pass.ids, [id]);
        }
        // Another runtime restarts both between our read and our write.
        other.execute_batch(&format!(
            "UPDATE sandbox SET status = 'Running' WHERE id = {eph};
             INSERT INTO run (sandbox_id, pid, status, started_at) VALUES ({eph}, {pid}, 'Running', '2026-06-04 11:59:59');
             UPDATE run SET status = 'Terminated' WHERE id = {old_run};
             INSERT INTO run (sandbox_id, pid, status, started_at) VALUES ({web}, {pid}, 'Running', '2026-06-04 11:59:59');",
            pid = own_pid()
        ))?;
        std::fs::write(eph_dir.join("new-work"), b"restarted").expect("write");
        let (mut after, mut examined) = (0, 0);
        pass.batch(Phase::Ephemeral, &[eph], &mut after, &mut examined)?;
        pass.batch(Phase::Active, &[web], &mut after, &mut examined)?;
        assert_eq!(pass.report.outcome(CleanupOutcome::SkippedActive), 1);
        assert_eq!((pass.report.removed, pass.report.reconciled), (0, 0));
        assert_eq!(f.status(eph)?.as_deref(), Some("Running"));
        assert_eq!(f.status(web)?.as_deref(), Some("Running"));
        assert!(exists(&eph_dir.join("new-work")) && exists(&eph_dir.join("rootfs/data")));
        Ok(())
    }

    #[test]
    fn lost_lease_stops_the_sweep_without_writing() -> Result<()> {
        let f = Fixture::new()?;
        let mut ids = Vec::new();
        for i in 0..4 {
            let id = f.sandbox(&format!("s{i}"), "Running", false)?;
            f.run(id, Some(DEAD_PID), "Running")?;
            ids.push(id);
        }
        let catalog = Catalog::new(&f.conn)?;
        let Acquire::Acquired(mut lease) = catalog.try_acquire(&now, true)? else {
            panic!("lease should be free");
        };
        let sweeper = Sweeper::new(&f.sandboxes).max_active(1);
        let first = sweeper.sweep(&mut lease, &now)?;
        assert_eq!(first.reconciled, 1);
        // We stall; the lease expires and another process takes it.
        let other = rusqlite::Connection::open(f.db_path())?;
        other.execute(
            "UPDATE maintenance_lease SET holder_pid = 1, lease_expires_at = '2026-06-04 12:00:40'",
            [],
        )?;
        let second = sweeper.max_active(10).sweep(&mut lease, &now)?;
        assert!(second.lease_lost && !second.complete);
        assert_eq!((second.reconciled, second.removed), (0, 0));
        assert!(lease.is_lost());
        let running = f.count("SELECT count(*) FROM sandbox WHERE status = 'Running'")?;
        assert_eq!(running, 3);
        lease.release()?;
        let holder: i64 =
            f.conn
                .query_row("SELECT holder_pid FROM maintenance_lease", [], |r| r.get(0))?;
        assert_eq!(holder, 1, "the new holder keeps its lease");
        Ok(())
    }

    #[test]
    fn year_9999_lease_does_not_block_a_sweep() -> Result<()> {
        let f = Fixture::new()?;
        f.conn.execute(
            "INSERT INTO maintenance_lease VALUES (?1, 1, '9999-12-31 23:59:59', '9999-12-31 23:59:59')",
            [crate::LEASE_NAME],
        )?;
        let catalog = Catalog::new(&f.conn)?;
        let outcome = Sweeper::new(&f.sandboxes).run_with(&catalog, &now);
        assert!(
            matches!(outcome, Outcome::Swept(ref r) if r.complete),
            "{outcome:?}"
        );
        let row = catalog.lease_row()?.expect("row");
        assert_eq!(row.last_completed_at, Some(now()));
        Ok(())
    }

    #[test]
    fn garbage_timestamps_and_odd_pids_are_handled() -> Result<()> {
        let f = Fixture::new()?;
        let a = f.sandbox("a", "Running", false)?;
        f.run_at(a, Some(-1), "Running", "not a time")?;
        let b = f.sandbox("b", "Running", false)?;
        f.conn.execute(
            "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, 'abc', 'Running', x'00ff')",
            [b],
        )?;
        let c = f.sandbox("c", "Running", false)?;
        f.run(c, Some(i64::MAX), "Running")?;
        f.conn.execute(
            "UPDATE sandbox SET updated_at = 'garbage', created_at = NULL",
            [],
        )?;
        // An orphan run (no such sandbox) is simply not a candidate.
        f.conn.execute_batch("PRAGMA foreign_keys = OFF")?;
        let orphan = f.run(999, Some(DEAD_PID), "Running")?;
        f.conn.execute_batch("PRAGMA foreign_keys = ON")?;
        let report = sweep_all(&f)?;
        assert_eq!(report.crashed, 3);
        assert_eq!(report.dead(DeadReason::InvalidPid), 3);
        assert_eq!(report.errors, 0);
        assert_eq!(f.run_row(orphan)?.map(|r| r.0), Some("Running".into()));
        Ok(())
    }

    #[test]
    fn budget_exhaustion_reports_timed_out_and_does_not_record_completion() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("web", "Running", false)?;
        f.run(id, Some(DEAD_PID), "Running")?;
        let catalog = Catalog::new(&f.conn)?;
        let sweeper = Sweeper::new(&f.sandboxes).budget(Duration::ZERO);
        let Outcome::Swept(report) = sweeper.run_with(&catalog, &now) else {
            panic!("expected a sweep");
        };
        assert!(report.timed_out && !report.complete);
        assert_eq!(report.reconciled, 0);
        assert_eq!(f.status(id)?.as_deref(), Some("Running"));
        let row = catalog.lease_row()?.expect("row");
        assert_eq!((row.holder_pid, row.last_completed_at), (None, None));
        // The next start sweeps at once instead of waiting out the interval.
        let Outcome::Swept(report) = Sweeper::new(&f.sandboxes).run_with(&catalog, &now) else {
            panic!("expected a sweep");
        };
        assert_eq!(report.reconciled, 1);
        Ok(())
    }

    #[test]
    fn row_limits_leave_the_rest_for_the_next_sweep() -> Result<()> {
        let f = Fixture::new()?;
        for i in 0..5 {
            let id = f.sandbox(&format!("r{i}"), "Running", false)?;
            f.run(id, Some(DEAD_PID), "Running")?;
            f.sandbox(&format!("e{i}"), "Stopped", true)?;
        }
        let catalog = Catalog::new(&f.conn)?;
        let sweeper = Sweeper::new(&f.sandboxes).max_active(2).max_ephemeral(3);
        let Outcome::Swept(first) = sweeper.run_with(&catalog, &now) else {
            panic!("expected a sweep");
        };
        assert_eq!(
            (first.reconciled, first.removed, first.complete),
            (2, 3, false)
        );
        assert_eq!(catalog.lease_row()?.and_then(|r| r.last_completed_at), None);
        let Outcome::Swept(second) = sweeper.run_with(&catalog, &now) else {
            panic!("expected a sweep");
        };
        assert_eq!(
            (second.reconciled, second.removed, second.complete),
            (2, 2, false)
        );
        let Outcome::Swept(third) = sweeper.run_with(&catalog, &now) else {
            panic!("expected a sweep");
        };
        assert_eq!(
            (third.reconciled, third.removed, third.complete),
            (1, 0, true)
        );
        assert_eq!(
            catalog.lease_row()?.and_then(|r| r.last_completed_at),
            Some(now())
        );
        assert_eq!(
            f.count("SELECT count(*) FROM sandbox WHERE status = 'Crashed'")?,
            5
        );
        Ok(())
    }

    #[test]
    fn ineligible_rows_ahead_do_not_starve_later_candidates() -> Result<()> {
        let f = Fixture::new()?;
        for i in 0..300 {
            let id = f.sandbox(&format!("live{i}"), "Running", false)?;
            f.run(id, Some(own_pid()), "Running")?;
            f.sandbox(&format!("bad/{i}"), "Stopped", true)?;
        }
        let dead = f.sandbox("dead", "Running", false)?;
        f.run(dead, Some(DEAD_PID), "Running")?;
        let eph = f.sandbox("eph", "Crashed", true)?;
        let catalog = Catalog::new(&f.conn)?;
        let sweeper = Sweeper::new(&f.sandboxes).budget(Duration::from_secs(60));
        let Outcome::Swept(first) = sweeper.run_with(&catalog, &now) else {
            panic!("expected a sweep");
        };
        assert_eq!((first.reconciled, first.removed, first.errors), (0, 0, 250));
        let Outcome::Swept(second) = sweeper.run_with(&catalog, &now) else {
            panic!("expected a sweep");
        };
        assert_eq!((second.reconciled, second.removed), (1, 1));
        assert_eq!(f.status(dead)?.as_deref(), Some("Crashed"));
        assert_eq!(f.status(eph)?, None);
        Ok(())
    }

    #[test]
    fn dry_run_reports_without_writing() -> Result<()> {
        let f = Fixture::new()?;
        let web = f.sandbox("web", "Running", false)?;
        f.run(web, Some(DEAD_PID), "Running")?;
        let draining = f.sandbox("draining", "Draining", false)?;
        let starting = f.sandbox("starting", "Running", false)?;
        let live = f.sandbox("live", "Running", false)?;
        f.run(live, Some(own_pid()), "Running")?;
        let eph = f.sandbox("eph", "Stopped", true)?;
        let dir = f.mkdir("eph");
        f.sandbox("..", "Stopped", true)?;
        let catalog = Catalog::new(&f.conn)?;
        let report = Sweeper::new(&f.sandboxes).dry_run(&catalog, &now)?;
        assert!(report.dry_run && report.complete);
        assert_eq!(
            (report.reconciled, report.crashed, report.stopped),
            (2, 1, 1)
        );
        assert_eq!((report.removed, report.errors), (1, 1));
        for (id, status) in [
            (web, "Running"),
            (draining, "Draining"),
            (starting, "Running"),
            (live, "Running"),
        ] {
            assert_eq!(f.status(id)?.as_deref(), Some(status));
        }
        assert_eq!(f.status(eph)?.as_deref(), Some("Stopped"));
        assert!(exists(&dir.join("rootfs/data")));
        assert_eq!(catalog.lease_row()?, None);
        assert!(!exists(&f.sandboxes.join(crate::cleanup::TRASH_DIR)));
        Ok(())
    }

    #[test]
    fn reference_schema_without_migration_is_swept() -> Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = rusqlite::Connection::open(dir.path().join("catalog.db"))?;
        conn.execute_batch(include_str!("../tests/data/schema.sql"))?;
        let f = Fixture::with(dir, conn)?;
        let web = f.sandbox("web", "Running", false)?;
        let run = f.run(web, Some(DEAD_PID), "Running")?;
        let eph = f.sandbox("eph", "Crashed", true)?;
        let eph_dir = f.mkdir("eph");
        let catalog = Catalog::new(&f.conn)?;
        assert!(!catalog.has_identity_columns());
        let report = sweep_all(&f)?;
        assert_eq!(
            (report.reconciled, report.removed, report.errors),
            (1, 1, 0)
        );
        assert_eq!(f.run_row(run)?.map(|r| r.0), Some("Terminated".into()));
        assert_eq!(f.status(eph)?, None);
        assert!(!exists(&eph_dir));
        Ok(())
    }

    /// Removes one ephemeral sandbox from a reference-schema catalog holding
    /// `attachments` volume attachment rows; the virtual-machine steps its
    /// row delete took (foreign key actions included).
    fn steps_to_delete_a_sandbox(attachments: usize, migrated: bool) -> Result<i32> {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::open(dir.path().join("catalog.db"))?;
        conn.execute_batch(include_str!("../tests/data/schema.sql"))?;
        if migrated {
            crate::migrate(&conn)?;
        }
        conn.execute_batch(
            "BEGIN;
             INSERT INTO volume (name, kind) VALUES ('data', 'dir');
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
             INSERT INTO volume_attach (volume_id, sandbox_id, pid, mode, created_at)
             SELECT 1, NULL, 1, 'rw', '2026-01-01 00:00:00' FROM n;
             COMMIT;",
        )?;
        conn.execute(
            "DELETE FROM volume_attach WHERE id > ?1",
            [i64::try_from(attachments).unwrap_or(i64::MAX)],
        )?;
        let f = Fixture::with(dir, conn)?;
        f.sandbox("eph", "Stopped", true)?;
        f.mkdir("eph");
        assert_eq!(sweep_all(&f)?.removed, 1);
        let stmt = f.conn.prepare_cached(
            "DELETE FROM sandbox WHERE id = ?1 AND ephemeral = 1 AND status IN ('Stopped', 'Crashed')",
        )?;
        Ok(stmt.get_status(rusqlite::StatementStatus::VmStep))
    }

    #[test]
    fn removing_a_sandbox_does_not_scan_volume_attachments() -> Result<()> {
        // `ON DELETE SET NULL` on volume_attach.sandbox_id: without the
        // migration's index, each removal walks every attachment row.
        let unindexed = steps_to_delete_a_sandbox(5_000, false)?;
        assert!(unindexed > 5_000, "{unindexed} steps: the scan is gone?");
        let few = steps_to_delete_a_sandbox(10, true)?;
        let many = steps_to_delete_a_sandbox(5_000, true)?;
        assert!(few > 0);
        assert_eq!(few, many);
        Ok(())
    }

    #[test]
    fn missing_sandboxes_dir_fails_before_deleting_rows() -> Result<()> {
        let f = Fixture::new()?;
        let web = f.sandbox("web", "Running", false)?;
        f.run(web, Some(DEAD_PID), "Running")?;
        let eph = f.sandbox("eph", "Stopped", true)?;
        let catalog = Catalog::new(&f.conn)?;
        let typo = f.dir.path().join("sandboxs");
        let outcome = Sweeper::new(&typo).force(true).run_with(&catalog, &now);
        assert!(
            matches!(outcome, Outcome::Failed(Error::Io { ref path, .. }) if *path == typo),
            "{outcome:?}"
        );
        assert_eq!(f.status(eph)?.as_deref(), Some("Stopped"));
        // Phase 1 needs no directory and had already committed.
        assert_eq!(f.status(web)?.as_deref(), Some("Crashed"));
        let row = catalog.lease_row()?.expect("row");
        assert_eq!((row.holder_pid, row.last_completed_at), (None, None));
        Ok(())
    }

    #[test]
    fn catalog_without_active_config_is_swept() -> Result<()> {
        let f = Fixture::new()?;
        let web = f.sandbox("web", "Running", false)?;
        f.run(web, Some(DEAD_PID), "Running")?;
        f.conn
            .execute_batch("ALTER TABLE sandbox DROP COLUMN active_config")?;
        let report = sweep_all(&f)?;
        assert_eq!(report.crashed, 1);
        assert_eq!(f.status(web)?.as_deref(), Some("Crashed"));
        Ok(())
    }

    #[test]
    fn crash_leftovers_in_the_trash_are_restored_or_purged() -> Result<()> {
        let f = Fixture::new()?;
        let trash = f.sandboxes.join(crate::cleanup::TRASH_DIR);
        // A sweeper died after moving `kept` into the trash but before its
        // commit: the row survived (and the sandbox was restarted since).
        let kept = f.sandbox("kept", "Running", true)?;
        f.run(kept, Some(own_pid()), "Running")?;
        std::fs::create_dir_all(trash.join(kept.to_string()).join("rootfs")).expect("mkdir");
        // Another died after its commit: the row is gone, the trash remains.
        std::fs::create_dir_all(trash.join("424242/rootfs")).expect("mkdir");
        std::fs::write(trash.join("stray-file"), b"x").expect("write");
        let report = sweep_all(&f)?;
        assert_eq!(report.errors, 0);
        assert!(exists(&f.sandboxes.join("kept/rootfs")));
        assert_eq!(std::fs::read_dir(&trash).expect("trash").count(), 0);
        Ok(())
    }

    #[test]
    fn trash_that_does_not_fit_the_budget_waits_for_the_next_sweep() -> Result<()> {
        let f = Fixture::new()?;
        let big = f.sandbox("big", "Stopped", true)?;
        let big_dir = f.mkdir("big");
        for i in 0..4000 {
            std::fs::write(big_dir.join(format!("f{i}")), b"x").expect("write");
        }
        let small = f.sandbox("small", "Stopped", true)?;
        f.mkdir("small");
        let catalog = Catalog::new(&f.conn)?;
        let sweeper = Sweeper::new(&f.sandboxes)
            .force(true)
            .budget(Duration::from_millis(15));
        let Outcome::Swept(report) = sweeper.run_with(&catalog, &now) else {
            panic!("expected a sweep");
        };
        let trash = f.sandboxes.join(crate::cleanup::TRASH_DIR);
        let in_trash = std::fs::read_dir(&trash).expect("trash").count() as u64;
        // Whatever was removed from the catalog is gone from the sandboxes
        // dir; what the budget did not cover waits in the trash.
        assert_eq!(in_trash, report.trash_deferred);
        let rows_left = f.count("SELECT count(*) FROM sandbox")? as u64;
        assert_eq!(report.removed + rows_left, 2);
        for (id, name) in [(big, "big"), (small, "small")] {
            if f.status(id)?.is_none() {
                assert!(!exists(&f.sandboxes.join(name)));
            }
        }
        let report = sweep_all(&f)?;
        assert_eq!(report.trash_deferred, 0);
        assert_eq!(std::fs::read_dir(&trash).expect("trash").count(), 0);
        assert_eq!(f.count("SELECT count(*) FROM sandbox")?, 0);
        Ok(())
    }

    #[test]
    fn per_row_statements_are_never_reprepared() -> Result<()> {
        use rusqlite::StatementStatus;
        let f = Fixture::new()?;
        for i in 0..20 {
            let stale = f.sandbox(&format!("stale-{i}"), "Running", false)?;
            f.run(stale, Some(DEAD_PID), "Running")?;
            f.sandbox(&format!("eph-{i}"), "Stopped", true)?;
            f.mkdir(&format!("eph-{i}"));
        }
        let report = sweep_with(&f, Sweeper::new(&f.sandboxes).limits(Limits::unlimited()))?;
        assert_eq!((report.reconciled, report.removed), (20, 20));
        // A plan SQLite marks as depending on a bound value (a sort or a
        // join here) is re-prepared each time the statement cache clears
        // the bindings, that is on every reuse: a silent 2-3x slowdown.
        let schema = Catalog::new(&f.conn)?.schema;
        let hot = [
            Phase::Active.page_sql(),
            Phase::Ephemeral.page_sql(),
            crate::runs::QUERIES[usize::from(schema.identity)],
            if schema.active_config {
                "UPDATE sandbox SET status = ?2, updated_at = ?3, active_config = NULL WHERE id = ?1 AND status = ?4"
            } else {
                "UPDATE sandbox SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status = ?4"
            },
            "SELECT name, status, ephemeral FROM sandbox WHERE id = ?1",
            "DELETE FROM run WHERE sandbox_id = ?1",
        ];
        for sql in hot {
            let stmt = f.conn.prepare_cached(sql)?;
            // Ran during the sweep, so this is the cached statement.
            assert!(stmt.get_status(StatementStatus::VmStep) > 0, "{sql}");
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
        Ok(())
    }

    #[test]
    fn candidate_queries_use_indexes() -> Result<()> {
        let f = Fixture::new()?;
        let mut queries: Vec<&str> = vec![Phase::Active.page_sql(), Phase::Ephemeral.page_sql()];
        queries.extend(crate::runs::QUERIES);
        queries.extend([
            "SELECT 1 FROM sandbox WHERE id = ?1 AND status = ?2",
            "SELECT name, status, ephemeral FROM sandbox WHERE id = ?1",
            "SELECT holder_pid, lease_expires_at, last_completed_at FROM maintenance_lease WHERE name = ?1",
            "DELETE FROM run WHERE sandbox_id = ?1",
        ]);
        for sql in queries {
            let mut stmt = f.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let n = stmt.parameter_count();
            let params: Vec<i64> = vec![1; n];
            let details: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })?
                .collect::<rusqlite::Result<_>>()?;
            for detail in &details {
                let full_scan = detail.starts_with("SCAN") && !detail.contains("USING");
                assert!(!full_scan, "{sql}\n uses a full scan: {details:?}");
                assert!(
                    !detail.contains("TEMP B-TREE"),
                    "{sql}\n sorts: {details:?}"
                );
            }
            assert!(
                details.iter().any(|d| d.contains("USING")),
                "{sql}: {details:?}"
            );
        }
        Ok(())
    }
}
