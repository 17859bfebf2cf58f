//! One sweep in progress: the two phases, keyset pages, fenced batches, the
//! saved cursor, and the trash purge between the phases.
//!
//! Owns when things happen (budget checks, transactions, commits, restoring
//! moved directories when a commit fails) and what gets counted. What
//! happens to one row is decided by `reconcile` and `cleanup`; how a
//! directory is moved or deleted by `trash`. No per-row rule here.

use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};

use crate::catalog::Catalog;
use crate::catalog::sql::{ACTIVE_PAGE, EPHEMERAL_PAGE, LOAD_CURSOR, SAVE_CURSOR};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lease::guard::Lease;
use crate::rundir::row_locks::RowLocks;
use crate::sandboxes::trash::{Moved, Trash};
use crate::sweep::context::RowContext;
use crate::sweep::report::Report;
use crate::sweep::settings::Settings;

mod purge;
mod rows;

/// The two phases, each a ring of candidate ids walked with keyset paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Active,
    Ephemeral,
}

impl Phase {
    /// Candidate ids in `(after, upto]`, ascending (see [`ACTIVE_PAGE`]).
    pub(crate) fn page_sql(self) -> &'static str {
        match self {
            Phase::Active => ACTIVE_PAGE,
            Phase::Ephemeral => EPHEMERAL_PAGE,
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
pub(crate) enum End {
    /// Every candidate in the ring was examined.
    Complete,
    /// The row limit stopped it with candidates left.
    Capped,
    /// The budget ran out.
    TimedOut,
    /// The lease was lost.
    LeaseLost,
    /// An installer took the catalog.
    Installing,
}

/// One sweep in progress.
pub(crate) struct Pass<'s, 'c, 'l> {
    settings: &'s Settings,
    clock: &'s dyn Clock,
    /// `None` for a dry run.
    lease: Option<&'s mut Lease<'l>>,
    /// What each row's step is handed: the catalog, its statements, the
    /// prober, the trash and the run directory's locks.
    row: RowContext<'s, 'c>,
    started: Instant,
    /// The host's busy timeout, given back when the pass ends.
    host_wait: Duration,
    pub(crate) report: Report,
    pub(crate) ids: Vec<i64>,
    /// A dry run's rows that its reconcile would have ended.
    ended: Vec<i64>,
}

impl<'s, 'c, 'l> Pass<'s, 'c, 'l> {
    /// A pass whose budget runs from `started` (the call's start: waiting
    /// for the lease counts).
    pub(crate) fn new(
        settings: &'s Settings,
        catalog: &'c Catalog,
        clock: &'s dyn Clock,
        lease: Option<&'s mut Lease<'l>>,
        started: Instant,
    ) -> Self {
        Pass {
            settings,
            clock,
            report: Report {
                dry_run: lease.is_none(),
                ..Report::default()
            },
            lease,
            row: RowContext::new(
                catalog,
                Trash::new(&settings.sandboxes_dir),
                settings.run_dir.as_deref().map(RowLocks::new),
            ),
            started,
            host_wait: Duration::ZERO,
            ids: Vec::with_capacity(settings.batch_size),
            ended: Vec::new(),
        }
    }

    fn out_of_time(&self) -> bool {
        self.started.elapsed() >= self.settings.limits.budget
    }

    pub(crate) fn run(mut self) -> Result<Report> {
        self.host_wait = self.row.catalog.busy_timeout()?;
        let ran = self.run_within();
        // The host's own statements wait as long as it said.
        let given_back = self.row.catalog.wait_until(self.host_wait, None);
        let report = ran?;
        given_back?;
        Ok(report)
    }

    fn run_within(&mut self) -> Result<Report> {
        // Another program may have migrated the file since the host built
        // its catalog; the per-row statements are chosen by its shape.
        self.row.catalog.refresh()?;
        // Beside a run directory every row needs its locks: one that cannot
        // be opened (a typo, a home not made yet) would turn each candidate
        // into the same error. Said once; nothing is done, and the window
        // is not recorded as swept.
        if let Some(Err(err)) = self.row.locks.as_ref().map(RowLocks::check) {
            log::warn!("nothing swept: {err:#}");
            self.report.errors += 1;
            self.report.run_dir_error = Some(format!("{err:#}"));
            self.report.elapsed = self.started.elapsed();
            return Ok(std::mem::take(&mut self.report));
        }
        self.report.missing_indexes = self.row.catalog.missing_indexes()?;
        if !self.report.missing_indexes.is_empty() {
            log::warn!(
                "{}; `migrate` adds them",
                crate::catalog::MissingIndexes(&self.report.missing_indexes)
            );
        }
        // A statement that outlives the budget (a full scan on a catalog
        // without this crate's indexes) is interrupted at its deadline: its
        // transaction rolls back, and the sweep ends as timed out.
        let catalog = self.row.catalog;
        let guard = (self.started.checked_add(self.settings.limits.budget))
            .map(|at| catalog.interrupt_at(at));
        let phases = self.phases();
        drop(guard);
        if phases.is_err() {
            // Whatever failed, the transaction it was in rolled back.
            self.confirm_renewal(false);
        }
        let (end, active_done, dir_ok) = match phases {
            Ok(done) => done,
            Err(err) if err.is_interrupt() => {
                log::info!(
                    "a statement outlived the sweep's budget: stopped, its batch rolled back"
                );
                (End::TimedOut, false, true)
            }
            Err(err) => return Err(err),
        };
        self.report.timed_out = end == End::TimedOut;
        self.report.lease_lost = end == End::LeaseLost;
        self.report.installing = end == End::Installing;
        // With the directory missing, a sweep before the interval would do
        // no more, so the window is recorded as done.
        self.report.settled = active_done && end == End::Complete;
        self.report.complete = self.report.settled && dir_ok;
        self.report.elapsed = self.started.elapsed();
        Ok(std::mem::take(&mut self.report))
    }

    /// Both phases and the trash purge between them: how the pass ended,
    /// whether the active phase went through every candidate, and whether
    /// the sandboxes directory could be opened.
    fn phases(&mut self) -> Result<(End, bool, bool)> {
        let limits = self.settings.limits;
        let mut end = self.phase(Phase::Active, limits.max_active)?;
        let active_done = end == End::Complete;
        let mut dir_ok = true;
        if matches!(end, End::Complete | End::Capped) {
            // Reconcile needs no directory; the ephemeral phase does. A
            // missing one (an unmounted volume, a typo) skips that phase
            // only, and says so, instead of failing what was done.
            if let Err(err) = self.row.trash.sandboxes().check() {
                log::warn!("ephemeral sandboxes not cleaned: {err:#}");
                self.report.errors += 1;
                self.report.sandboxes_dir_error = Some(format!("{err:#}"));
                dir_ok = false;
            } else {
                end = self.purge_trash()?;
                if end == End::Complete {
                    end = self.phase(Phase::Ephemeral, limits.max_ephemeral)?;
                }
                if end == End::Complete && self.lease.is_none() {
                    self.clean_ended()?;
                }
                if self.lease.is_some() && self.report.trash_deferred == 0 {
                    self.row.trash.remove_if_empty();
                }
            }
        }
        Ok((end, active_done, dir_ok))
    }

    /// Opens a write transaction, waiting for the write lock at most what is
    /// left of the budget, and checks the fence and the installer;
    /// `Err(end)` when the lease is lost, an installer holds the catalog,
    /// or the catalog stayed locked to the deadline (`TimedOut`; the next
    /// sweep goes on), the transaction then rolled back, nothing written.
    fn begin(&mut self) -> Result<std::result::Result<rusqlite::Transaction<'c>, End>> {
        let deadline = self.started.checked_add(self.settings.limits.budget);
        self.row.catalog.wait_until(self.host_wait, deadline)?;
        let tx = match self.row.catalog.immediate() {
            Ok(tx) => tx,
            Err(err) if err.is_busy() => {
                log::info!("the catalog stayed locked to the sweep's deadline: stopping");
                return Ok(Err(End::TimedOut));
            }
            Err(err) => return Err(err),
        };
        let now = self.clock.now();
        if crate::lease::install::installing(self.row.catalog, now)? {
            log::warn!("an installer holds the catalog: stopping the sweep");
            return Ok(Err(End::Installing));
        }
        if let Some(lease) = self.lease.as_deref_mut()
            && !lease.renew(&tx, now)?
        {
            return Ok(Err(End::LeaseLost));
        }
        Ok(Ok(tx))
    }

    fn load_cursor(&self, phase: Phase) -> Result<i64> {
        if !self.row.catalog.schema().cursor {
            return Ok(0);
        }
        let after = self
            .row
            .catalog
            .conn
            .prepare_cached(LOAD_CURSOR)?
            .query_row([phase.key()], |row| row.get::<_, i64>(0))
            .optional()?;
        Ok(after.unwrap_or(0).max(0))
    }

    fn save_cursor(&mut self, phase: Phase, after: i64) -> Result<()> {
        if self.row.catalog.schema().cursor {
            self.row
                .stmts
                .get(SAVE_CURSOR)?
                .execute(params![phase.key(), after])?;
        }
        Ok(())
    }

    /// Fills `self.ids` with up to `n` candidate ids in `(after, upto]`.
    pub(crate) fn page(&mut self, phase: Phase, after: i64, upto: i64, n: usize) -> Result<()> {
        self.ids.clear();
        let stmt = self.row.stmts.get(phase.page_sql())?;
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
            let n = room.clamp(1, self.settings.batch_size);
            self.page(phase, after, upto, n)?;
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
    pub(crate) fn batch(
        &mut self,
        phase: Phase,
        ids: &[i64],
        after: &mut i64,
        examined: &mut usize,
    ) -> Result<End> {
        let tx = if self.lease.is_some() {
            match self.begin()? {
                Ok(tx) => Some(tx),
                Err(end) => return Ok(end),
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
            // Commit before holding more lifecycle locks than the open-file
            // limit allows; the phase pages on from here.
            if self.row.locks.as_ref().is_some_and(RowLocks::full) {
                break;
            }
            let acted = match phase {
                Phase::Active => self.reconcile(id, now),
                Phase::Ephemeral => self.clean(id, &mut moved),
            };
            if let Err(err) = acted {
                let failed = self.row.trash.settle(Err(err), moved).map(|_| end);
                self.release_locks();
                self.delete_garbage();
                return failed;
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
        self.confirm_renewal(committed.is_ok());
        let result = self.row.trash.settle(committed, moved);
        self.release_locks();
        if let Ok(moved) = &result {
            self.delete_within_budget(moved.iter().map(Moved::entry));
        }
        self.delete_garbage();
        result.map(|_| end)
    }

    /// Tells the lease whether the transaction of its last renewal
    /// committed; every pass that ends in an error rolled its last one back.
    fn confirm_renewal(&mut self, committed: bool) {
        if let Some(lease) = self.lease.as_deref_mut() {
            if committed {
                lease.committed();
            } else {
                lease.rolled_back();
            }
        }
    }

    /// Gives up the lifecycle locks once their rows' transaction has ended.
    fn release_locks(&mut self) {
        if let Some(locks) = self.row.locks.as_mut() {
            locks.release_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{DEAD_PID, Fixture, exists, now, own_pid};
    use crate::lease::{Acquire, MinInterval};
    use crate::sweep::cleanup::CleanupOutcome;

    #[test]
    fn a_row_left_alone_gives_its_locks_back_before_the_batch_commits() -> Result<()> {
        use crate::rundir::locks::name_hash;
        use crate::rundir::try_lock_lifecycle;
        let f = Fixture::new()?;
        let run = f.dir.path().join("run");
        // A start with no run whose endpoint answers: locked, probed, left.
        let booting = f.sandbox("booting", "Starting", false)?;
        let socket_dir = run.join("sandboxes").join(name_hash("booting", 12));
        std::fs::create_dir_all(&socket_dir).expect("mkdir");
        let _listening =
            std::os::unix::net::UnixListener::bind(socket_dir.join("agent.sock")).expect("bind");
        // A dead runtime: locked and crashed, its locks held to the commit.
        let dead = f.sandbox("dead", "Running", false)?;
        f.run(dead, Some(DEAD_PID), "Running")?;
        let catalog = &f.catalog;
        let Acquire::Acquired(mut lease) = catalog.try_acquire(&now, MinInterval::Ignore)? else {
            panic!("lease should be free");
        };
        let mut settings = Settings::new(f.sandboxes.clone());
        settings.run_dir = Some(run.clone());
        let mut pass = Pass::new(&settings, catalog, &now, Some(&mut lease), Instant::now());
        let Ok(tx) = pass.begin()? else {
            panic!("the fence holds");
        };
        pass.reconcile(booting, now.now())?;
        pass.reconcile(dead, now.now())?;
        // Mid-batch: the left row's lock is free, the changed row's held.
        assert!(try_lock_lifecycle(&run, "booting")?.is_some());
        assert!(try_lock_lifecycle(&run, "dead")?.is_none());
        tx.commit()?;
        pass.release_locks();
        assert!(try_lock_lifecycle(&run, "dead")?.is_some());
        assert_eq!(f.status(booting)?.as_deref(), Some("Starting"));
        assert_eq!(f.status(dead)?.as_deref(), Some("Crashed"));
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
        let catalog = &f.catalog;
        let Acquire::Acquired(mut lease) = catalog.try_acquire(&now, MinInterval::Ignore)? else {
            panic!("lease should be free");
        };
        let settings = Settings::new(f.sandboxes.clone());
        let mut pass = Pass::new(&settings, catalog, &now, Some(&mut lease), Instant::now());
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
}
