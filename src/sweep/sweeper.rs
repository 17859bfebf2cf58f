//! Configuring and starting sweeps: [`Sweeper`] and the [`SweepOutcome`]
//! of the startup entry point.
//!
//! Owns the public entry points and what they promise (never a panic, a
//! skip instead of a busy error, completion recorded only when nothing was
//! left behind), and a runtime's cleanup of one sandbox
//! ([`Sweeper::clean_ephemeral`]), since the sweeper knows the directories.
//! The work itself is the pass's and `cleanup`'s; no SQL and no filesystem
//! here.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::catalog::ids::SandboxId;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::lease::gate::{Acquire, SkipReason};
use crate::lease::guard::Lease;
use crate::lease::spec::MinInterval;
use crate::rundir::locks::LifecycleLock;
use crate::rundir::row_locks::RowLocks;
use crate::sweep::cleanup::{CleanupOutcome, clean_one};
use crate::sweep::pass::Pass;
use crate::sweep::report::Report;
use crate::sweep::settings::{Limits, Settings};

/// How much past its budget a sweep may wait to release its lease: a lease
/// not released blocks the next sweeps until it expires (10 s).
const RELEASE_GRACE: Duration = Duration::from_millis(10);

/// What the startup entry point did. It never panics and never returns `Err`.
///
/// Deliberately exhaustive: a sweep ran, was skipped or failed, and a
/// caller's `match` on those three stays complete. What grows is inside:
/// [`SkipReason`] and [`Report`] are `#[non_exhaustive]`.
#[derive(Debug)]
#[must_use = "a failed sweep is only reported here"]
// One outcome per sweep, returned once and matched at once: boxing the
// report would cost an allocation per runtime start for nothing.
#[allow(clippy::large_enum_variant)]
pub enum SweepOutcome {
    /// No sweep: the lease was held, a sweep was recent, or the catalog busy.
    Skipped(SkipReason),
    /// A sweep ran (possibly partly: see [`Report::complete`]).
    Swept(Report),
    /// The sweep could not run, or stopped: a database error other than
    /// busy (a missing table, a read-only or corrupt file, a full disk).
    /// What was committed stays committed; the lease was released. A
    /// missing sandboxes directory is not a failure: see
    /// [`Report::sandboxes_dir_error`].
    Failed(Error),
}

/// Configures and runs sweeps of one sandboxes directory.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sandbox_sweep::{SweepOutcome, Sweeper};
///
/// let dir = std::env::temp_dir().join("sandbox-sweep-doc-sweeper-51");
/// # let _ = std::fs::remove_dir_all(&dir);
/// std::fs::create_dir_all(&dir)?;
/// let conn = sandbox_sweep::open(dir.join("catalog.db"))?;
/// sandbox_sweep::migrate(&conn)?;
/// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
/// let outcome = Sweeper::new(&dir)
///     .max_active(100)
///     .budget(Duration::from_millis(50))
///     .run(&catalog);
/// assert!(matches!(outcome, SweepOutcome::Swept(ref r) if r.complete && r.reconciled == 0));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sweeper {
    settings: Settings,
    interval: MinInterval,
}

impl Sweeper {
    /// A sweeper for `<sandboxes_dir>/<name>` directories, with default
    /// [`Limits`], `force` off and batches of 512 rows per transaction.
    pub fn new(sandboxes_dir: impl Into<PathBuf>) -> Sweeper {
        Sweeper {
            settings: Settings::new(sandboxes_dir.into()),
            interval: MinInterval::Respect,
        }
    }

    /// Sweep beside this microsandbox run directory (default: none). Before
    /// a row is acted on, its locks are taken in microsandbox's order and
    /// held until its transaction ends: for a reconcile the creation lock
    /// (`<run>/creation-locks/<H16>.lock`) then the lifecycle lock
    /// (`<run>/locks/<H16>.lock`); for a cleanup the snapshot-lineage lock
    /// (`<run>/locks/<H16>.snapshot-lineage.lock`) then the lifecycle lock.
    /// A lock held elsewhere means hands off, whatever the recorded pid
    /// says ([`Report::lifecycle_owned`], or
    /// [`CleanupOutcome::SnapshotInProgress`]). A dead runtime's socket
    /// files (and, on reconcile, its `.bootstrap-rootfs`) are removed
    /// before its row changes. Only beside a run directory is a `Starting`
    /// row with no run judged: abandoned ([`Report::abandoned`]) when its
    /// locks are free and no socket path answers within 50 ms. A dry run
    /// takes no lock and removes nothing; it does probe the sockets.
    ///
    /// [`CleanupOutcome::SnapshotInProgress`]: crate::CleanupOutcome::SnapshotInProgress
    pub fn run_dir(mut self, run_dir: impl Into<PathBuf>) -> Sweeper {
        self.settings.run_dir = Some(run_dir.into());
        self
    }

    /// Replaces all limits at once (default [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Sweeper {
        self.settings.limits = limits;
        self
    }

    /// Most active candidates examined per sweep (default 250).
    pub fn max_active(mut self, n: usize) -> Sweeper {
        self.settings.limits.max_active = n;
        self
    }

    /// Most terminal ephemeral candidates examined per sweep (default 250).
    pub fn max_ephemeral(mut self, n: usize) -> Sweeper {
        self.settings.limits.max_ephemeral = n;
        self
    }

    /// The sweep's wall-clock budget (default 250 ms).
    pub fn budget(mut self, budget: Duration) -> Sweeper {
        self.settings.limits.budget = budget;
        self
    }

    /// Skip the minimum-interval gate (default `false`). A live lease is
    /// never taken over.
    pub fn force(mut self, force: bool) -> Sweeper {
        self.interval = if force {
            MinInterval::Ignore
        } else {
            MinInterval::Respect
        };
        self
    }

    /// Rows per write transaction (default 512; at least 1). Larger batches
    /// amortise commits; smaller ones hold the write lock for less time.
    pub fn batch_size(mut self, n: usize) -> Sweeper {
        self.settings.batch_size = n.max(1);
        self
    }

    /// The startup entry point: gate, acquire, sweep, release, on the real
    /// clock. Records completion only when nothing was left behind.
    ///
    /// Takes the [`Catalog`] the host keeps: a sweep skipped by the gate
    /// costs one indexed read of the lease row, nothing else.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, SweepOutcome, Sweeper};
    ///
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-sweeper-149");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let conn = sandbox_sweep::open(dir.join("catalog.db"))?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?; // kept for the process's life
    /// let sweeper = Sweeper::new(&dir);
    /// match sweeper.run(&catalog) {
    ///     SweepOutcome::Swept(report) => println!("{report}"),
    ///     SweepOutcome::Skipped(reason) => println!("skipped: {reason}"),
    ///     SweepOutcome::Failed(err) => eprintln!("maintenance failed: {err:#}"),
    /// }
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&self, catalog: &Catalog) -> SweepOutcome {
        self.run_with(catalog, &SystemClock)
    }

    /// [`Sweeper::run`] on an already checked catalog and a given clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, SkipReason, SweepOutcome, Sweeper, SystemClock};
    ///
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-sweeper-172");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let sweeper = Sweeper::new(&dir);
    /// let then = SystemClock::now();
    /// let noon = move || then;
    /// assert!(matches!(sweeper.run_with(&catalog, &noon), SweepOutcome::Swept(_)));
    /// assert!(matches!(sweeper.run_with(&catalog, &noon), SweepOutcome::Skipped(SkipReason::Recent)));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_with(&self, catalog: &Catalog, clock: &dyn Clock) -> SweepOutcome {
        // The budget covers the whole call: waiting for the lease too.
        let started = Instant::now();
        // Most starts end here, on one read that waits for no lock: the
        // busy timeout is not touched for them.
        match catalog.gate(clock.now(), self.interval) {
            Ok(Some(reason)) => return SweepOutcome::Skipped(reason),
            Ok(None) => {}
            Err(err) if err.is_busy() => return SweepOutcome::Skipped(SkipReason::Busy),
            Err(err) => return SweepOutcome::Failed(err),
        }
        let deadline = started.checked_add(self.settings.limits.budget);
        let host = match catalog.busy_timeout() {
            Ok(host) => host,
            Err(err) => return SweepOutcome::Failed(err),
        };
        let outcome = self.run_by(catalog, clock, started, host, deadline);
        // The host's own statements wait as long as it said.
        if let Err(err) = catalog.wait_until(host, None) {
            log::warn!("could not give the connection its busy timeout back: {err:#}");
        }
        outcome
    }

    fn run_by(
        &self,
        catalog: &Catalog,
        clock: &dyn Clock,
        started: Instant,
        host: Duration,
        deadline: Option<Instant>,
    ) -> SweepOutcome {
        if let Err(err) = catalog.wait_until(host, deadline) {
            return SweepOutcome::Failed(err);
        }
        let mut lease = match catalog.try_acquire(clock, self.interval) {
            Ok(Acquire::Acquired(lease)) => lease,
            Ok(Acquire::Skipped(reason)) => return SweepOutcome::Skipped(reason),
            Err(err) if err.is_busy() => return SweepOutcome::Skipped(SkipReason::Busy),
            Err(err) => return SweepOutcome::Failed(err),
        };
        let catalog = lease.catalog();
        match Pass::new(&self.settings, catalog, clock, Some(&mut lease), started).run() {
            Ok(mut report) => {
                // Candidates left behind: release without completion, so
                // the next start goes on with the backlog at once. Its wait
                // is what is left of the budget and a little more: a lease
                // not released expires in 10 s anyway.
                let release_by =
                    deadline.and_then(|at| at.max(Instant::now()).checked_add(RELEASE_GRACE));
                let completed_at = report.settled.then(|| clock.now());
                let released = catalog
                    .wait_until(host, release_by)
                    .and_then(|()| lease.finish(completed_at));
                report.elapsed = started.elapsed();
                match released {
                    Ok(still_ours) => report.lease_lost |= !still_ours,
                    Err(err) => log::warn!(
                        "could not release the maintenance lease (it will expire): {err:#}"
                    ),
                }
                log::debug!("sandbox lifecycle sweep: {report}");
                SweepOutcome::Swept(report)
            }
            Err(err) => {
                log::warn!("sandbox lifecycle sweep failed: {err:#}");
                drop(lease);
                SweepOutcome::Failed(err)
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
    /// A sandboxes directory that cannot be opened is not an error here: the
    /// ephemeral phase is skipped and [`Report::sandboxes_dir_error`] says why.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, Sweeper, SystemClock};
    /// use sandbox_sweep::lease::{Acquire, MinInterval};
    ///
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-sweeper-228");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let Acquire::Acquired(mut lease) = catalog.try_acquire(&SystemClock, MinInterval::Respect)? else {
    ///     panic!("the lease is free");
    /// };
    /// let report = Sweeper::new(&dir).sweep(&mut lease, &SystemClock)?;
    /// assert!(report.complete);
    /// lease.complete(SystemClock::now())?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sweep(&self, lease: &mut Lease<'_>, clock: &dyn Clock) -> Result<Report> {
        let catalog = lease.catalog();
        Pass::new(&self.settings, catalog, clock, Some(lease), Instant::now()).run()
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
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-sweeper-258");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// conn.execute("INSERT INTO sandbox (name, config, status, ephemeral) VALUES ('a', '{}', 'Crashed', 1)", [])?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let report = Sweeper::new(&dir).dry_run(&catalog, &SystemClock)?;
    /// assert_eq!((report.removed, report.dry_run), (1, true));
    /// let rows: i64 = catalog.connection().query_row("SELECT count(*) FROM sandbox", [], |r| r.get(0))?;
    /// assert_eq!(rows, 1);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dry_run(&self, catalog: &Catalog, clock: &dyn Clock) -> Result<Report> {
        Pass::new(&self.settings, catalog, clock, None, Instant::now()).run()
    }
}

/// Cleaning one finished ephemeral sandbox, for a runtime's own exit path,
/// is the [`Sweeper`]'s: it already knows the sandboxes directory and, when
/// set, the run directory whose locks and sockets the sweep honours.
impl Sweeper {
    /// Cleans one finished ephemeral sandbox: checks it under the write
    /// lock, moves its directory `<sandboxes_dir>/<name>` out of the way,
    /// deletes its rows, commits, then deletes the directory.
    ///
    /// Beside a run directory ([`Sweeper::run_dir`]) the sandbox's
    /// snapshot-lineage lock and lifecycle lock are taken first, in that
    /// order (a held lineage lock means
    /// [`CleanupOutcome::SnapshotInProgress`], a held lifecycle lock
    /// [`CleanupOutcome::LifecycleOwned`]: hands off either way), and its
    /// dead runtime's sockets are removed before its directory and rows. A
    /// runtime that holds the lifecycle lock itself calls
    /// [`Sweeper::clean_ephemeral_holding`].
    ///
    /// Needs no lease: the write lock alone serialises it with sweeps and
    /// restarts. Per-row problems are outcomes, not errors. The sweeper's
    /// limits, budget and `force` do not apply.
    ///
    /// Preconditions, or the sandbox is kept: it is ephemeral, its status is
    /// `Stopped` or `Crashed`, and none of its `Running` runs has a live
    /// process (end the run with [`Catalog::finish_run`] first). Opens its
    /// own transaction: the connection must not be inside one (this takes
    /// the write lock with `BEGIN IMMEDIATE` and commits before it deletes
    /// the directory).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the sandboxes directory is not an existing
    /// directory; SQLite errors, busy past the timeout included (nothing is
    /// then changed).
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, CleanupOutcome, Lifetime, SandboxStatus, Sweeper, SystemClock};
    ///
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-cleanup-272");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let now = SystemClock::now();
    /// let id = catalog.insert_sandbox("job-7", SandboxStatus::Stopped, Lifetime::Ephemeral, now)?;
    /// std::fs::create_dir(dir.join("job-7"))?;
    /// let sweeper = Sweeper::new(&dir);
    /// assert_eq!(sweeper.clean_ephemeral(&catalog, id)?, CleanupOutcome::Removed);
    /// assert!(!dir.join("job-7").exists());
    /// assert_eq!(sweeper.clean_ephemeral(&catalog, id)?, CleanupOutcome::AlreadyGone);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clean_ephemeral(&self, catalog: &Catalog, sandbox: SandboxId) -> Result<CleanupOutcome> {
        let locks = self.settings.run_dir.as_deref().map(RowLocks::new);
        clean_one(catalog, &self.settings.sandboxes_dir, sandbox.get(), locks)
    }

    /// [`Sweeper::clean_ephemeral`] for a runtime that already holds the
    /// sandbox's lifecycle lock (`lock`): that sandbox's lock is not taken
    /// again. A lock for another sandbox gives that sandbox no pass.
    ///
    /// # Errors
    ///
    /// As [`Sweeper::clean_ephemeral`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, CleanupOutcome, Lifetime, SandboxStatus, Sweeper, SystemClock};
    ///
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-cleanup-304");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let (sandboxes, run) = (dir.join("sandboxes"), dir.join("run"));
    /// std::fs::create_dir_all(sandboxes.join("job"))?;
    /// std::fs::create_dir(&run)?;
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let now = SystemClock::now();
    /// let id = catalog.insert_sandbox("job", SandboxStatus::Stopped, Lifetime::Ephemeral, now)?;
    /// let sweeper = Sweeper::new(&sandboxes).run_dir(&run);
    /// // A runtime that holds the sandbox's lock itself says so.
    /// let lock = sandbox_sweep::rundir::try_lock_lifecycle(&run, "job")?.expect("free");
    /// assert_eq!(sweeper.clean_ephemeral(&catalog, id)?, CleanupOutcome::LifecycleOwned);
    /// assert_eq!(sweeper.clean_ephemeral_holding(&catalog, id, &lock)?, CleanupOutcome::Removed);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clean_ephemeral_holding(
        &self,
        catalog: &Catalog,
        sandbox: SandboxId,
        lock: &LifecycleLock,
    ) -> Result<CleanupOutcome> {
        let locks = self
            .settings
            .run_dir
            .as_deref()
            .map(|run| RowLocks::holding(run, lock.name()));
        clean_one(catalog, &self.settings.sandboxes_dir, sandbox.get(), locks)
    }
}
