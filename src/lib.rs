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
//! - A runtime starting up: [`Sweeper::run`] on the [`Catalog`] it keeps
//!   (it owns its connection, so a host struct holds it). It returns a
//!   [`SweepOutcome`] and never panics; a sweep skipped by the gate costs
//!   one indexed read.
//! - A runtime living a sandbox's life: [`insert_sandbox`],
//!   [`insert_running_run`] (which records its process identity, so a reused
//!   pid or a reboot is recognised later), [`finish_run`], and
//!   [`clean_ephemeral`] for its own finished ephemeral sandbox; reading
//!   back needs no SQL ([`Catalog::sandbox_status`],
//!   [`Catalog::newest_running_run`]).
//! - Tools and tests that drive the steps: [`Catalog::try_acquire`],
//!   [`Sweeper::sweep`], [`Sweeper::dry_run`], [`Catalog::summary`], with a
//!   [`Clock`] of their own. A tool that only reads (a report, a dry run)
//!   opens the catalog with [`Catalog::open_read_only`].
//!
//! Nothing in this crate changes the process's identity: run as root over a
//! home that another user owns, files it creates are root's. A tool run as
//! root calls [`home::ActingAsOwner::of`] first, as the CLI does.
//!
//! The crate links SQLite through [`rusqlite`] 0.43, re-exported here: a
//! host that uses rusqlite itself must use this version (two versions cannot
//! both link `sqlite3`), or name it as `sandbox_sweep::rusqlite`. Times are
//! [`time::PrimitiveDateTime`] in UTC, also re-exported; [`SystemClock::now`]
//! reads the real clock without either crate in scope.
//!
//! # The public API
//!
//! At the root, what a runtime host needs:
//!
//! | item | what it is for |
//! |---|---|
//! | [`Catalog`], [`open`], [`OpenOptions`], [`migrate`] | the catalog a host keeps; opening a file with the right PRAGMAs; this crate's indexes and columns |
//! | [`Sweeper`], [`Limits`], [`SweepOutcome`], [`SkipReason`], [`Report`], [`SweepEnd`], [`InvalidRows`] | configure and run the startup sweep, and what it did (`Display` for logs; `as_str` and `FromStr` for the words) |
//! | [`LOG_KEPT`] | the `log` target of what was left in place because a call failed |
//! | [`insert_sandbox`], [`insert_running_run`], [`finish_run`], [`RunEnd`] | a runtime's writes around the sweep |
//! | [`SandboxStatus`], [`TerminationReason`] | the catalog's status and termination-reason strings (`Display`, `FromStr`) |
//! | [`clean_ephemeral`], [`Cleanup`], [`CleanupOutcome`] | remove one finished ephemeral sandbox (with options: [`Cleanup`]) |
//! | [`Clock`], [`SystemClock`] | where "now" comes from, so tests can move it |
//! | [`Error`], [`Result`] | the one error type |
//! | [`rusqlite`], [`time`] | the versions this crate's API speaks |
//!
//! In areas, what tools and runtimes sharing a protocol need:
//!
//! | module | what it holds |
//! |---|---|
//! | [`home`] | a microsandbox home: where it is (`$MSB_HOME`, `~/.microsandbox`) and its parts, with a catalog, a sweeper and a scan one call each ([`home::MsbHome`]); a tool run as root acting as the owner of a home another user owns ([`home::ActingAsOwner`]) |
//! | [`lease`] | the sweep lease for tools that drive a sweep themselves, and the install-exclusive lease |
//! | [`orphans`] | what no row accounts for (directories, sockets, lock files, trash leftovers): a read-only scan, and a removal of what is safe to remove |
//! | [`process`] | who a process is, whether a recorded one is alive, and why not; why pids are `i64` |
//! | [`rundir`] | microsandbox's per-sandbox lifecycle lock, for a runtime sharing the protocol |
//! | [`sandboxes`] | the name rules a sandbox's name must meet to reach the filesystem |
//! | [`status`] | what `sandbox-sweep status` shows, and what blocks a schema rollback |
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
//! simply expires after [`LEASE_DURATION`](lease::LEASE_DURATION) (10 s). The lease is not what keeps a
//! live sandbox safe: each row is re-checked and acted on in one
//! `BEGIN IMMEDIATE` transaction, which also serialises the sweep with
//! runtimes restarting sandboxes and with [`clean_ephemeral`].
//!
//! # Example
//!
//! ```
//! use sandbox_sweep::{Catalog, SandboxStatus, SweepOutcome, Sweeper, SystemClock};
//!
//! let dir = std::env::temp_dir().join("sandbox-sweep-doc-lib-91");
//! # let _ = std::fs::remove_dir_all(&dir);
//! std::fs::create_dir_all(&dir)?;
//! let conn = sandbox_sweep::open(dir.join("catalog.db"))?;
//! sandbox_sweep::migrate(&conn)?;
//! let catalog = Catalog::from_connection(conn)?;
//! sandbox_sweep::insert_sandbox(&catalog, "job", SandboxStatus::Stopped, true, SystemClock::now())?;
//! std::fs::create_dir(dir.join("job"))?;
//!
//! match Sweeper::new(&dir).run(&catalog) {
//!     SweepOutcome::Swept(report) => assert_eq!(report.removed, 1),
//!     other => panic!("expected a sweep, got {other:?}"),
//! }
//! assert!(!dir.join("job").exists());
//! # std::fs::remove_dir_all(&dir)?;
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
pub mod home;
pub mod lease;
pub mod orphans;
pub mod process;
pub mod rundir;
pub mod sandboxes;
pub mod status;
mod sweep;
mod sys;

#[cfg(test)]
#[path = "../tests/common/fixture.rs"]
pub mod fixture;

pub use catalog::{Catalog, OpenOptions, migrate, open};
pub use clock::{Clock, SystemClock};
pub use error::{Error, LOG_KEPT, Result};
pub use lease::gate::SkipReason;
pub use sandboxes::lifecycle::{
    RunEnd, SandboxStatus, TerminationReason, finish_run, insert_running_run, insert_sandbox,
};
pub use sweep::cleanup::{Cleanup, CleanupOutcome, clean_ephemeral};
pub use sweep::report::{InvalidRows, Report, SweepEnd};
pub use sweep::settings::Limits;
pub use sweep::sweeper::{SweepOutcome, Sweeper};

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
