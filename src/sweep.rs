//! The bounded sweep: reconcile stale active sandboxes, then clean finished
//! ephemeral ones, in fenced batches, within row limits and a time budget.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::cleanup::{CleanupOutcome, Moved, Sandboxes, clean_row, delete_trash};
use crate::error::{Error, Result};
use crate::lease::{Acquire, Lease, SkipReason};
use crate::liveness::{DeadReason, Liveness, Prober};
use crate::runs::latest_running;
use crate::stamp::format_stamp;

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
/// let outcome = Sweeper::new(dir.path().join("sandboxes"))
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
    /// [`Limits`], `force` off and batches of 64 rows per transaction.
    pub fn new(sandboxes_dir: impl Into<PathBuf>) -> Sweeper {
        Sweeper {
            sandboxes_dir: sandboxes_dir.into(),
            limits: Limits::default(),
            force: false,
            batch_size: 64,
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

    /// Rows per write transaction (default 64; at least 1). Larger batches
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
        let mut lease = match catalog.try_acquire(clock.now(), self.force) {
            Ok(Acquire::Acquired(lease)) => lease,
            Ok(Acquire::Skipped(reason)) => return Outcome::Skipped(reason),
            Err(err) if err.is_busy() => return Outcome::Skipped(SkipReason::Busy),
            Err(err) => return Outcome::Failed(err),
        };
        match self.sweep(&mut lease, clock) {
            Ok(report) => {
                let released = if report.complete {
                    lease.complete(clock.now())
                } else {
                    // Candidates were left behind: let the next start go on.
                    lease.release()
                };
                if let Err(err) = released {
                    log::warn!("could not release the maintenance lease (it will expire): {err}");
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
    /// Database errors end the sweep (what was committed stays committed).
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
    /// status, merged: no scan of the whole candidate set per page.
    pub(crate) fn page_sql(self) -> &'static str {
        match self {
            Phase::Active => {
                "SELECT id FROM sandbox WHERE status = 'Running' AND id > ?1 AND id <= ?2
                 UNION ALL
                 SELECT id FROM sandbox WHERE status = 'Draining' AND id > ?1 AND id <= ?2
                 ORDER BY 1 LIMIT ?3"
            }
            Phase::Ephemeral => {
                "SELECT id FROM sandbox WHERE ephemeral = 1 AND status = 'Stopped' AND id > ?1 AND id <= ?2
                 UNION ALL
                 SELECT id FROM sandbox WHERE ephemeral = 1 AND status = 'Crashed' AND id > ?1 AND id <= ?2
                 ORDER BY 1 LIMIT ?3"
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
        if self.lease.is_none() {
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
        delete_trash(doomed);
        Ok(End::Complete)
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
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let mut stmt = self.catalog.conn.prepare_cached(phase.page_sql())?;
        let mut rows = stmt.query(params![after, upto, n])?;
        while let Some(row) = rows.next()? {
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
    fn batch(&mut self, phase: Phase, ids: &[i64], after: &mut i64, examined: &mut usize) -> Result<End> {
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
                moved.into_iter().for_each(Moved::restore);
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
                moved.into_iter().for_each(Moved::discard);
                Ok(end)
            }
            Err(err) => {
                moved.into_iter().for_each(Moved::restore);
                Err(err)
            }
        }
    }

    fn clean(&mut self, id: i64, moved: &mut Vec<Moved>) -> Result<()> {
        let dry_run = self.lease.is_none();
        let (outcome, dir) = clean_row(self.catalog, &self.prober, &self.sandboxes, id, dry_run)?;
        moved.extend(dir);
        self.report.count_outcome(outcome);
        Ok(())
    }

    /// Phase 1 for one sandbox, re-checked under the write lock.
    fn reconcile(&mut self, id: i64, now: PrimitiveDateTime) -> Result<()> {
        let conn = self.catalog.conn;
        let status: Option<String> = conn
            .prepare_cached("SELECT status FROM sandbox WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?;
        let draining = match status.as_deref() {
            Some("Running") => false,
            Some("Draining") => true,
            // Gone, or restarted into another state since the page was read.
            _ => return Ok(()),
        };
        let run = latest_running(self.catalog, &self.prober, id)?;
        let (run_id, reason) = match run {
            // Running with no Running run is still starting: leave it.
            None if !draining => return Ok(()),
            None => (None, None),
            Some((_, Liveness::Alive)) => return Ok(()),
            Some((run_id, Liveness::Dead(reason))) => (Some(run_id), Some(reason)),
        };
        let (new_status, termination) = if draining {
            ("Stopped", "ShutdownRequested")
        } else {
            ("Crashed", "InternalError")
        };
        if self.lease.is_some() {
            let now = format_stamp(now);
            if let Some(run_id) = run_id {
                conn.prepare_cached(
                    "UPDATE run SET status = 'Terminated', termination_reason = ?2, terminated_at = ?3
                     WHERE id = ?1 AND status = 'Running'",
                )?
                .execute(params![run_id, termination, now])?;
            }
            let sql = if self.catalog.schema.active_config {
                "UPDATE sandbox SET status = ?2, updated_at = ?3, active_config = NULL WHERE id = ?1 AND status = ?4"
            } else {
                "UPDATE sandbox SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status = ?4"
            };
            conn.prepare_cached(sql)?
                .execute(params![id, new_status, now, status.as_deref()])?;
            log::info!(
                "sandbox {id}: {} -> {new_status} (runtime dead: {})",
                status.as_deref().unwrap_or_default(),
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
}
