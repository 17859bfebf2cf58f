//! Reconciling one active sandbox whose runtime died: the counterpart of
//! the cleanup step.
//!
//! Owns the reconcile rules (ARCHITECTURE.md, "Invariants"): `Running`
//! with a dead newest run becomes `Crashed`, `Draining` becomes `Stopped`,
//! and the run is terminated with the matching reason, all inside the
//! caller's write transaction. No filesystem here, and no batching: the
//! pass decides when to call it and commits.

use rusqlite::params;
use rusqlite::types::ValueRef;
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::lifecycle::{SandboxStatus, TerminationReason};
use crate::liveness::{DeadReason, Liveness, Prober};
use crate::row_locks::{Claim, RowLocks};
use crate::runs::latest_running;
use crate::sql::{
    CLEANUP_CANDIDATE, MARK_SANDBOX, MARK_SANDBOX_KEEPING_CONFIG, SANDBOX_IN_STATUS, TERMINATE_RUN,
};
use crate::stamp::format_stamp;
use crate::statements::Statements;
use crate::trash::Trash;

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
    /// Its lifecycle lock is held elsewhere: a live owner, hands off.
    LifecycleOwned,
    /// Its lock could not be taken (a symlink, not a file) or its sockets
    /// not removed: nothing written, retried next sweep.
    Failed,
}

/// Beside a run directory, before a dead runtime's row changes: take its
/// lifecycle lock and remove its sockets. `Some` outcome when the row must
/// be left; `None` to go on.
fn guard(
    stmts: &mut Statements<'_>,
    locks: &mut RowLocks<'_>,
    trash: &Trash<'_>,
    id: i64,
    has_run: bool,
) -> Result<Option<Reconciled>> {
    let mut rows = stmts.get(CLEANUP_CANDIDATE)?.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(Some(Reconciled::Left));
    };
    let acts = match row.get_ref(1)? {
        ValueRef::Text(b"Running") => has_run,
        ValueRef::Text(b"Draining") => true,
        _ => false,
    };
    let name = match row.get_ref(0)? {
        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
        _ => return Ok(Some(Reconciled::Failed)),
    };
    drop(rows);
    if !acts {
        return Ok(Some(Reconciled::Left));
    }
    match locks.claim(&name) {
        Ok(Claim::Taken) => {}
        Ok(Claim::Owned) => {
            log::info!("sandbox {name:?} (id {id}): its lifecycle lock is held; left alone");
            return Ok(Some(Reconciled::LifecycleOwned));
        }
        Err(err) => {
            log::warn!("sandbox {name:?} (id {id}): {err}; left alone");
            return Ok(Some(Reconciled::Failed));
        }
    }
    if let Err(err) = locks.remove_sockets(trash, &name) {
        log::warn!("sandbox {name:?} (id {id}): runtime sockets not removed, row kept: {err}");
        return Ok(Some(Reconciled::Failed));
    }
    Ok(None)
}

/// Reconciles sandbox `id` at `now`, re-checked under the caller's write
/// lock: the newest `Running` run is judged first, and the sandbox's state
/// is checked by the guarded update itself (no separate read). Beside a run
/// directory the row's lifecycle lock is taken and its sockets removed
/// first. With `write` false (a dry run) it only checks, and takes no lock.
#[allow(clippy::too_many_arguments)]
pub(crate) fn reconcile_row(
    catalog: &Catalog<'_>,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    beside: Option<(&mut RowLocks<'_>, &Trash<'_>)>,
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
    if let (Some((locks, trash)), true) = (beside, write) {
        if let Some(left) = guard(stmts, locks, trash, id, run_id.is_some())? {
            return Ok(left);
        }
    }
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
