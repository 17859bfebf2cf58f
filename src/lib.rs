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
//! - A runtime living a sandbox's life: [`Catalog::insert_sandbox`],
//!   [`Catalog::insert_running_run`] (which records its process identity,
//!   so a reused pid or a reboot is recognised later),
//!   [`Catalog::finish_run`], and [`Sweeper::clean_ephemeral`] for its own
//!   finished ephemeral sandbox; reading back needs no SQL
//!   ([`Catalog::sandbox_status`], [`Catalog::newest_running_run`]). Ids
//!   are typed ([`SandboxId`], [`RunId`]): one cannot stand for the other.
//!
//! One style for all of these: a call is a method of what already holds
//! what it needs. Reads and writes of rows are methods of the [`Catalog`]
//! (the one thing a host keeps for its life, owning the connection), so
//! no call takes the catalog as an argument beside another one; what also
//! touches the sandboxes directory is a method of the [`Sweeper`], which
//! already knows that directory and the run directory whose locks it
//! honours, so no call names a directory twice. A host that keeps a
//! [`home::MsbHome`] gets both from it ([`home::MsbHome::open_catalog`],
//! [`home::MsbHome::sweeper`]).
//!
//! # Transactions
//!
//! A call that writes one statement may run inside the caller's
//! transaction; a call that opens its own `BEGIN IMMEDIATE` must not (it
//! fails: SQLite refuses a nested `BEGIN`).
//!
//! | may run inside the caller's transaction | opens its own (call outside one) |
//! |---|---|
//! | [`Catalog::insert_sandbox`], [`Catalog::insert_running_run`], [`Catalog::record_identity`], every read | [`Catalog::finish_run`], [`Sweeper::clean_ephemeral`], [`Sweeper::run`] and the other sweeps, the leases, [`migrate`] |
//!
//! Inserting many rows in one transaction ([`Catalog::transaction`]) saves
//! a commit per row: 10,000 sandboxes took 22-40 ms in one, 0.5-0.7 s
//! with a commit each (a file catalog in WAL mode).
//!
//! ```
//! use sandbox_sweep::{Catalog, Lifetime, SandboxStatus, SystemClock};
//!
//! let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
//! sandbox_sweep::migrate(&conn)?;
//! let catalog = Catalog::from_connection(conn)?;
//! let now = SystemClock::now();
//! let tx = catalog.transaction()?;
//! for i in 0..10_000 {
//!     catalog.insert_sandbox(&format!("job-{i}"), SandboxStatus::Stopped, Lifetime::Ephemeral, now)?;
//! }
//! tx.commit()?;
//! let n: i64 = catalog.connection().query_row("SELECT count(*) FROM sandbox", [], |r| r.get(0))?;
//! assert_eq!(n, 10_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
//! | [`Catalog::insert_sandbox`], [`Catalog::insert_running_run`], [`Catalog::finish_run`], [`Lifetime`], [`RunEnd`] | a runtime's writes around the sweep, methods of the catalog as its reads are; [`Catalog::transaction`] for many in one |
//! | [`SandboxId`], [`RunId`] | the catalog's row ids, typed so one cannot stand for the other (`get`, `new`, `Display`, and rusqlite's `ToSql`/`FromSql` for a host's own SQL) |
//! | [`SandboxStatus`], [`TerminationReason`] | the catalog's status and termination-reason strings (`Display`, `FromStr`) |
//! | [`Sweeper::clean_ephemeral`], [`CleanupOutcome`] | remove one finished ephemeral sandbox, beside the sweeper's run directory when it has one |
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
//! runtimes restarting sandboxes and with [`Sweeper::clean_ephemeral`].
//!
//! # Example
//!
//! ```
//! use sandbox_sweep::{Catalog, Lifetime, SandboxStatus, SweepOutcome, Sweeper, SystemClock};
//!
//! let dir = std::env::temp_dir().join("sandbox-sweep-doc-lib-91");
//! # let _ = std::fs::remove_dir_all(&dir);
//! std::fs::create_dir_all(&dir)?;
//! let conn = sandbox_sweep::open(dir.join("catalog.db"))?;
//! sandbox_sweep::migrate(&conn)?;
//! let catalog = Catalog::from_connection(conn)?;
//! catalog.insert_sandbox("job", SandboxStatus::Stopped, Lifetime::Ephemeral, SystemClock::now())?;
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

pub use catalog::ids::{RunId, SandboxId};
pub use catalog::{Catalog, OpenOptions, migrate, open};
pub use clock::{Clock, SystemClock};
pub use error::{Error, LOG_KEPT, Result};
pub use lease::gate::SkipReason;
pub use sandboxes::lifecycle::{Lifetime, RunEnd, SandboxStatus, TerminationReason};
pub use sweep::cleanup::CleanupOutcome;
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
