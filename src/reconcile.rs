//! Reconciling one active sandbox whose runtime died: the counterpart of
//! the cleanup step.
//!
//! Owns the reconcile rules (ARCHITECTURE.md, "Invariants"): `Running`
//! with a dead newest run becomes `Crashed`, `Draining` becomes `Stopped`,
//! and the run is terminated with the matching reason, all inside the
//! caller's write transaction. No filesystem here, and no batching: the
//! pass decides when to call it and commits.

use rusqlite::params;
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::lifecycle::{SandboxStatus, TerminationReason};
use crate::liveness::{DeadReason, Liveness, Prober};
use crate::runs::latest_running;
use crate::sql::{MARK_SANDBOX, MARK_SANDBOX_KEEPING_CONFIG, SANDBOX_IN_STATUS, TERMINATE_RUN};
use crate::stamp::format_stamp;
use crate::statements::Statements;

/// What reconciling one sandbox did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconciled {
    /// Nothing: the runtime lives, the sandbox is still starting, or it
    /// left the candidate states since the page was read.
    Left,
    /// Marked `Crashed` (or would be, in a dry run): its newest run is dead.
    Crashed(DeadReason),
    /// A draining sandbox marked `Stopped`; `None` when it had no running run.
    Stopped(Option<DeadReason>),
}

/// Reconciles sandbox `id` at `now`, re-checked under the caller's write
/// lock: the newest `Running` run is judged first, and the sandbox's state
/// is checked by the guarded update itself (no separate read). With
/// `write` false (a dry run) it only checks.
pub(crate) fn reconcile_row(
    catalog: &Catalog<'_>,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    id: i64,
    now: PrimitiveDateTime,
    write: bool,
) -> Result<Reconciled> {
    let (run_id, reason) = match latest_running(catalog, stmts, prober, id)? {
        Some(run) => match run.liveness {
            Liveness::Dead(reason) => (Some(run.id), Some(reason)),
            Liveness::Alive => return Ok(Reconciled::Left),
        },
        None => (None, None),
    };
    let now = format_stamp(now);
    let mut mark = Mark {
        catalog,
        stmts: &mut *stmts,
        now: &now,
        write,
    };
    // A `Running` sandbox with no `Running` run is still starting: only a
    // dead run makes it crashed. A `Draining` one stops either way. Gone,
    // or restarted into another state since the page was read: neither
    // matches, and nothing is written.
    let done = match (run_id, reason) {
        (Some(_), Some(reason))
            if mark.apply(id, SandboxStatus::Running, SandboxStatus::Crashed)? =>
        {
            Reconciled::Crashed(reason)
        }
        _ if mark.apply(id, SandboxStatus::Draining, SandboxStatus::Stopped)? => {
            Reconciled::Stopped(reason)
        }
        _ => return Ok(Reconciled::Left),
    };
    if write {
        let (from, to, termination) = match done {
            Reconciled::Stopped(_) => ("Draining", "Stopped", TerminationReason::ShutdownRequested),
            _ => ("Running", "Crashed", TerminationReason::InternalError),
        };
        if let Some(run_id) = run_id {
            stmts
                .get(TERMINATE_RUN)?
                .execute(params![run_id, termination.as_str(), now])?;
        }
        log::info!(
            "sandbox {id}: {from} -> {to} (runtime dead: {})",
            reason.map_or("no running run", DeadReason::as_str)
        );
    }
    Ok(done)
}

/// The guarded status change, or its dry-run check.
struct Mark<'a, 's, 'c> {
    catalog: &'a Catalog<'c>,
    stmts: &'a mut Statements<'s>,
    now: &'a str,
    write: bool,
}

impl Mark<'_, '_, '_> {
    /// Moves sandbox `id` from `from` to `to`; whether it was in `from`.
    fn apply(&mut self, id: i64, from: SandboxStatus, to: SandboxStatus) -> Result<bool> {
        if !self.write {
            let found = self
                .stmts
                .get(SANDBOX_IN_STATUS)?
                .exists(params![id, from.as_str()])?;
            return Ok(found);
        }
        let sql = if self.catalog.schema.active_config {
            MARK_SANDBOX
        } else {
            MARK_SANDBOX_KEEPING_CONFIG
        };
        let changed =
            self.stmts
                .get(sql)?
                .execute(params![id, to.as_str(), self.now, from.as_str()])?;
        Ok(changed == 1)
    }
}
