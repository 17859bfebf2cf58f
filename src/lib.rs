//! Keeps a host's sandbox catalog honest.
//!
//! Sandbox runtimes record sandboxes and their runs in one SQLite file.
//! Runtimes die without cleaning up — killed, out of memory, host crash,
//! reboot — and leave sandboxes marked `Running` whose process is gone, and
//! finished ephemeral sandboxes whose directories nobody deletes. This crate
//! repairs that, cheaply enough to run on every runtime start:
//!
//! 1. **Reconcile**: a `Starting` or `Running` sandbox whose latest `Running`
//!    run belongs to a dead process becomes `Crashed` (run `Terminated`,
//!    `InternalError`); a `Draining` one becomes `Stopped`
//!    (`ShutdownRequested`). Beside microsandbox's run directory
//!    ([`Sweeper::run_dir`]), an abandoned start (`Starting` with no run,
//!    its creation and lifecycle locks free, no endpoint answering) becomes
//!    `Crashed`, as microsandbox 0.7.11 does.
//! 2. **Clean**: an ephemeral `Stopped`/`Crashed` sandbox with no live run has
//!    its directory `<sandboxes_dir>/<name>` and its rows removed. Persistent
//!    sandboxes are never touched.
//!
//! # Which entry point
//!
//! - A runtime starting up: [`Sweeper::run`] on a [`Catalog`] it keeps, or
//!   [`run_startup_maintenance`] from a bare connection (it checks the
//!   catalog's shape on every call, about 1.2 µs). Both return a
//!   [`SweepOutcome`] and never panic.
//! - A runtime living a sandbox's life: [`insert_sandbox`],
//!   [`insert_running_run`] (which records its process identity, so a reused
//!   pid or a reboot is recognised later), [`finish_run`], and
//!   [`clean_ephemeral`] for its own finished ephemeral sandbox.
//! - Tools and tests that drive the steps: [`Catalog::try_acquire`],
//!   [`Sweeper::sweep`], [`Sweeper::dry_run`], [`Catalog::summary`], with a
//!   [`Clock`] of their own.
//!
//! The crate links SQLite through [`rusqlite`] 0.43, re-exported here: a
//! host that uses rusqlite itself must use this version (two versions cannot
//! both link `sqlite3`), or name it as `sandbox_sweep::rusqlite`. Times are
//! [`time::PrimitiveDateTime`] in UTC, also re-exported; [`SystemClock::now`]
//! reads the real clock without either crate in scope.
//!
//! # The public API
//!
//! | item | what it is for |
//! |---|---|
//! | [`open`], [`OpenOptions`], [`migrate`] | open a catalog with the right PRAGMAs; add this crate's indexes and columns |
//! | [`Catalog`] | a connection whose catalog shape was checked: what every call takes |
//! | [`Sweeper`], [`Limits`], [`SweepOutcome`], [`run_startup_maintenance`] | configure and run the startup sweep |
//! | [`Report`] | what a sweep did (`Display` for logs) |
//! | [`insert_sandbox`], [`insert_running_run`], [`finish_run`], [`RunEnd`], [`Catalog::sandbox_status`] | a runtime's writes around the sweep, and reading a status back, no SQL needed |
//! | [`SandboxStatus`], [`TerminationReason`] | the catalog's status and termination-reason strings (`Display`, `FromStr`) |
//! | [`clean_ephemeral`], [`Cleanup`], [`CleanupOutcome`], [`validate_name`], [`RESERVED_PREFIX`] | remove one finished ephemeral sandbox, and the name rules |
//! | [`lifecycle_lock_path`], [`try_lock_lifecycle`], [`LifecycleLock`] | microsandbox's per-sandbox lifecycle lock, for a runtime sharing the protocol |
//! | [`ProcessIdentity`], [`record_identity`] | who a process is (pid, start time, boot id), stored with its run |
//! | [`Prober`], [`RecordedProcess`], [`Liveness`], [`DeadReason`], [`Catalog::newest_running_run`], [`RunningRun`] | is a recorded runtime alive, and if not, why |
//! | [`Catalog::summary`], [`Summary`], [`StaleSandbox`], [`LeaseRecord`] | what `sandbox-sweep status` shows |
//! | [`active_sandboxes`], [`ActiveSandbox`] | what blocks a schema rollback: every active sandbox and its runtime's pid |
//! | [`Catalog::try_acquire`], [`Catalog::gate`], [`Acquire`], [`Lease`], [`LeaseRow`], [`LeaseSpec`], [`SkipReason`] | the lease, for tools that drive a sweep themselves |
//! | [`LEASE_NAME`], [`LEASE_DURATION`] (10 s), [`MIN_SWEEP_INTERVAL`] (30 s) | the sweep lease's row and timings |
//! | [`InstallLease`], [`InstallRefusal`], [`INSTALL_LEASE_NAME`], [`INSTALL_LEASE_DURATION`] (30 min) | the install-exclusive lease an installer takes; a sweep skips (`installing`) while it is held |
//! | [`Clock`], [`SystemClock`] | where "now" comes from, so tests can move it |
//! | [`Error`], [`Result`] | the one error type |
//! | [`rusqlite`], [`time`] | the versions this crate's API speaks |
//!
//! # The catalog
//!
//! Tables `sandbox` (`id`, `name` unique, `status`, `ephemeral`, …), `run`
//! (`sandbox_id`, `pid`, `status` `Running` or `Terminated`,
//! `termination_reason`, `started_at`, …) and `maintenance_lease` (`name`,
//! `holder_pid`, `lease_expires_at`, `last_completed_at`), as microsandbox
//! creates them; timestamps are UTC text `YYYY-MM-DD HH:MM:SS[.f]`.
//! [`migrate`] adds indexes, the nullable `run.pid_start_time` and
//! `run.boot_id`, and two small tables of its own. `ARCHITECTURE.md` in the
//! repository maps the modules and the invariants the tests hold.
//!
//! # What the lease protects against, and what it does not
//!
//! Many runtimes start at once; the lease (a row of `maintenance_lease`)
//! lets at most one sweep per window, and the gate costs the others one
//! indexed read. Every write transaction of a sweep re-checks that the lease
//! still names its holder with the exact expiry it wrote (fencing), so a
//! sweeper that stalled past its expiry stops without writing. A holder that
//! dies never releases its lease: `Drop` does not run on `SIGKILL`; the lease
//! simply expires after [`LEASE_DURATION`] (10 s). The lease is not what keeps a
//! live sandbox safe: each row is re-checked and acted on in one
//! `BEGIN IMMEDIATE` transaction, which also serialises the sweep with
//! runtimes restarting sandboxes and with [`clean_ephemeral`].
//!
//! # Example
//!
//! ```
//! use sandbox_sweep::{Catalog, SandboxStatus, SweepOutcome, Sweeper, SystemClock};
//!
//! let dir = tempfile::tempdir()?;
//! let conn = sandbox_sweep::open(dir.path().join("catalog.db"))?;
//! sandbox_sweep::migrate(&conn)?;
//! let catalog = Catalog::new(&conn)?;
//! sandbox_sweep::insert_sandbox(&catalog, "job", SandboxStatus::Stopped, true, SystemClock::now())?;
//! std::fs::create_dir(dir.path().join("job"))?;
//!
//! match Sweeper::new(dir.path()).run(&catalog) {
//!     SweepOutcome::Swept(report) => assert_eq!(report.removed, 1),
//!     other => panic!("expected a sweep, got {other:?}"),
//! }
//! assert!(!dir.path().join("job").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// Lock files, `/proc`, `flock`, Unix sockets and directory descriptors are
// the evidence this crate judges by; elsewhere it would judge on guesses.
#[cfg(not(unix))]
compile_error!("sandbox-sweep runs on Unix only (Linux, where /proc exists, in full)");

// The shared test fixture names this crate as the integration tests do.
#[cfg(test)]
extern crate self as sandbox_sweep;

mod catalog;
mod clock;
mod error;
mod lease;
mod process;
mod rundir;
mod sandboxes;
mod sweep;
mod sys;

#[cfg(test)]
#[path = "../tests/common/fixture.rs"]
mod fixture;

pub use catalog::{Catalog, OpenOptions, migrate, open};
pub use clock::{Clock, SystemClock};
pub use error::{Error, Result};
pub use lease::gate::{Acquire, LeaseRow, SkipReason};
pub use lease::guard::Lease;
pub use lease::install::{
    INSTALL_LEASE_DURATION, INSTALL_LEASE_NAME, InstallLease, InstallRefusal,
};
pub use lease::spec::{LEASE_DURATION, LEASE_NAME, LeaseSpec, MIN_SWEEP_INTERVAL};
pub use process::identity::{ProcessIdentity, record_identity};
pub use process::liveness::{DeadReason, Liveness, Prober, RecordedProcess};
pub use process::runs::RunningRun;
pub use rundir::locks::{LifecycleLock, lifecycle_lock_path, try_lock_lifecycle};
pub use sandboxes::lifecycle::{
    RunEnd, SandboxStatus, TerminationReason, finish_run, insert_running_run, insert_sandbox,
};
pub use sandboxes::names::{RESERVED_PREFIX, validate_name};
pub use sweep::cleanup::{Cleanup, CleanupOutcome, clean_ephemeral};
pub use sweep::report::Report;
pub use sweep::settings::Limits;
pub use sweep::status::{ActiveSandbox, LeaseRecord, StaleSandbox, Summary, active_sandboxes};
pub use sweep::sweeper::{SweepOutcome, Sweeper, run_startup_maintenance};

pub use rusqlite;
pub use time;

/// Parsers for the fuzz target, the demo and the tests; not part of the
/// supported API, and free to change.
#[doc(hidden)]
pub mod __private {
    pub use crate::catalog::stamp::{Stamp, format_stamp, parse_stamp, parse_stamp_bytes};
    pub use crate::sys::procfs::{ProcStat, parse_proc_stat};
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
