//! Processes a run records: who a process is ([`ProcessIdentity`], stored
//! with its run by [`Catalog::record_identity`]), whether it is alive and why not
//! ([`Prober`], [`Liveness`]), and a sandbox's newest running run judged
//! that way ([`RunningRun`], from [`Catalog::newest_running_run`]).
//!
//! # Pids
//!
//! A pid is an `i64` everywhere in this API, because that is what the
//! catalog stores: a recorded value may be NULL, zero, negative or above
//! any kernel's `pid_max`, and is reported as it is. Only values in
//! `1..=i32::MAX` are ever passed to `kill` (with signal 0); any other
//! recorded pid is never signalled and proves nothing. Pids are not row
//! ids: a run's id is a [`RunId`](crate::RunId), a sandbox's a
//! [`SandboxId`](crate::SandboxId).
//!
//! [`Catalog::newest_running_run`]: crate::Catalog::newest_running_run
//! [`Catalog::record_identity`]: crate::Catalog::record_identity

pub(crate) mod identity;
pub(crate) mod liveness;
pub(crate) mod runs;

pub use identity::ProcessIdentity;
pub use liveness::{DeadReason, Liveness, Prober, RecordedProcess};
pub use runs::RunningRun;
