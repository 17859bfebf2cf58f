//! Keeps a host's sandbox catalog honest.
//!
//! Sandbox runtimes record sandboxes and their runs in one SQLite file.
//! Runtimes die without cleaning up — killed, out of memory, host crash,
//! reboot — and leave sandboxes marked `Running` whose process is gone, and
//! finished ephemeral sandboxes whose directories nobody deletes. This crate
//! repairs that, cheaply enough to run on every runtime start:
//!
//! 1. **Reconcile**: a `Running` sandbox whose latest `Running` run belongs to
//!    a dead process becomes `Crashed` (run `Terminated`, `InternalError`); a
//!    `Draining` one becomes `Stopped` (`ShutdownRequested`).
//! 2. **Clean**: an ephemeral `Stopped`/`Crashed` sandbox with no live run has
//!    its directory `<sandboxes_dir>/<name>` and its rows removed. Persistent
//!    sandboxes are never touched.
//!
//! # Which entry point
//!
//! - A runtime starting up: [`run_startup_maintenance`] (or a configured
//!   [`Sweeper::run`]). It returns an [`Outcome`] and never panics.
//! - A runtime cleaning up after its own ephemeral sandbox: [`clean_ephemeral`].
//! - A runtime recording its run: [`insert_running_run`] or
//!   [`record_identity`], so a reused pid or a reboot is recognised later.
//! - Tools and tests that drive the steps: [`Catalog::try_acquire`],
//!   [`Sweeper::sweep`], [`Sweeper::dry_run`], with a [`Clock`] of their own.
//!
//! # What the lease protects against, and what it does not
//!
//! Many runtimes start at once; the lease (a row of `maintenance_lease`)
//! lets at most one sweep per window, and the gate costs the others one
//! indexed read. Every write transaction of a sweep re-checks that the lease
//! still names its holder with the exact expiry it wrote (fencing), so a
//! sweeper that stalled past its expiry stops without writing. A holder that
//! dies never releases its lease: `Drop` does not run on `SIGKILL`; the lease
//! simply expires after [`LEASE_DURATION`]. The lease is not what keeps a
//! live sandbox safe: each row is re-checked and acted on in one
//! `BEGIN IMMEDIATE` transaction, which also serialises the sweep with
//! runtimes restarting sandboxes and with [`clean_ephemeral`].
//!
//! # Example
//!
//! ```
//! use sandbox_sweep::{Outcome, Sweeper};
//!
//! let dir = tempfile::tempdir()?;
//! let conn = sandbox_sweep::open(dir.path().join("catalog.db"))?;
//! sandbox_sweep::migrate(&conn)?;
//! conn.execute(
//!     "INSERT INTO sandbox (name, config, status, ephemeral) VALUES ('job', '{}', 'Stopped', 1)",
//!     [],
//! )?;
//! std::fs::create_dir(dir.path().join("job"))?;
//!
//! match Sweeper::new(dir.path()).run(&conn) {
//!     Outcome::Swept(report) => assert_eq!(report.removed, 1),
//!     other => panic!("expected a sweep, got {other:?}"),
//! }
//! assert!(!dir.path().join("job").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod catalog;
mod cleanup;
mod error;
mod identity;
mod lease;
mod liveness;
mod procfs;
mod runs;
mod stamp;
mod statements;
mod status;
mod sweep;

#[cfg(test)]
mod fixture;

pub use catalog::{
    Catalog, DEFAULT_BUSY_TIMEOUT, OpenOptions, STATEMENT_CACHE_CAPACITY, migrate, open,
};
pub use cleanup::{CleanupOutcome, RESERVED_PREFIX, clean_ephemeral, validate_name};
pub use error::{Error, Result};
pub use identity::{ProcessIdentity, insert_running_run, record_identity};
pub use lease::{
    Acquire, LEASE_DURATION, LEASE_NAME, Lease, LeaseRow, MIN_SWEEP_INTERVAL, SkipReason,
};
pub use liveness::{DeadReason, Liveness, Prober, RecordedProcess};
pub use procfs::{ProcStat, parse_proc_stat};
pub use stamp::{Stamp, format_stamp, parse_stamp};
pub use status::{DeadActive, LeaseText, Summary};
pub use sweep::{Clock, Limits, Outcome, Report, Sweeper, SystemClock, run_startup_maintenance};
pub use time::PrimitiveDateTime;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
