//! Reconciling one active sandbox whose runtime died: the counterpart of
//! the cleanup step.
//!
//! Owns the reconcile rules (ARCHITECTURE.md, "Invariants"), microsandbox
//! 0.7.11's: `Starting` or `Running` with a dead newest run becomes
//! `Crashed`, `Draining` becomes `Stopped`, and the run is terminated with
//! the matching reason; an abandoned start (`Starting`, no run, nothing
//! owning it) becomes `Crashed`; every change clears `active_config` and
//! `network_slot`. All inside the caller's write transaction. No file
//! system calls of its own, and no batching: the pass decides when to
//! call it and commits.
//!
//! The one place that says whether a row would be reconciled, and why: the
//! sweep, its dry run and `status` ([`would_reconcile`]) all judge through
//! [`reconcile_row`]'s body. Must not grow a second copy of the rule.

use std::path::Path;

use rusqlite::params;
use rusqlite::types::ValueRef;
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::catalog::columns::Column;
use crate::catalog::sql::{CLEANUP_CANDIDATE, SANDBOX_IN_STATUS, TERMINATE_RUN, mark_sandbox};
use crate::catalog::stamp::format_stamp;
use crate::catalog::statements::Statements;
use crate::error::Result;
use crate::process::liveness::{DeadReason, Liveness, Prober};
use crate::process::runs::{RunningRun, latest_running};
use crate::rundir::row_locks::{RECONCILE_LOCKS, Refusal, RowLocks};
use crate::sandboxes::lifecycle::{SandboxStatus, TerminationReason};
use crate::sandboxes::names::stored_name;
use crate::sandboxes::trash::Trash;
use crate::sweep::context::RowContext;

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
    /// An abandoned start marked `Crashed`: `Starting` with no running run,
    /// its creation and lifecycle locks free, and no endpoint answering.
    Abandoned,
    /// Its creation or lifecycle lock is held elsewhere: a live owner,
    /// hands off. With why its newest run looks dead (`None`: it has none).
    Owned(Option<DeadReason>),
    /// Its locks could not be taken (a symlink, not a file), its runtime
    /// files not removed, or its endpoints not probed: nothing written,
    /// retried next sweep.
    Failed,
    /// A column the rule reads has the wrong storage class (a name that is
    /// not text, a pid that is not an integer): left exactly as it is.
    Invalid(Column),
}

/// What the row read under the write lock allows.
enum Guarded {
    /// Go on to the guarded update; `abandoned` when it is a start with no
    /// run that nothing owns; `seen`, the status the row was read in.
    Proceed {
        abandoned: bool,
        seen: Option<SandboxStatus>,
    },
    /// Leave the row as it is.
    Stop(Reconciled),
}

/// What the step may do beside a run directory.
#[derive(Clone, Copy)]
enum Hands<'a, 'p> {
    /// The sweep: take the locks, remove the runtime files, move the
    /// bootstrap root into this trash.
    Write(&'a Trash<'p>),
    /// A dry run or `status`: read who holds the locks, probe the
    /// endpoints (the fallback ones in this sandboxes directory, when
    /// known), write nothing.
    Look(Option<&'a Path>),
}

/// Beside a run directory, before a dead runtime's row changes: take its
/// creation and lifecycle locks, tell whether a start with no run is
/// abandoned (no endpoint answers), and remove its runtime files. A dry run
/// or `status` ([`Hands::Look`]) takes no lock and removes nothing: it
/// reads who holds the locks and probes the endpoints, as the sweep would
/// find them.
fn guard(
    stmts: &mut Statements<'_>,
    locks: &mut RowLocks<'_>,
    hands: Hands<'_, '_>,
    id: i64,
    reason: Option<DeadReason>,
    has_run: bool,
) -> Result<Guarded> {
    let mut rows = stmts.get(CLEANUP_CANDIDATE)?.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(Guarded::Stop(Reconciled::Left));
    };
    // A `Running` sandbox with no run is still starting, as msb judges it;
    // a `Starting` one with no run is a candidate abandoned start.
    let (acts, start, seen) = match row.get_ref(1)? {
        ValueRef::Text(b"Running") => (has_run, false, Some(SandboxStatus::Running)),
        ValueRef::Text(b"Starting") => (true, !has_run, Some(SandboxStatus::Starting)),
        ValueRef::Text(b"Draining") => (true, false, Some(SandboxStatus::Draining)),
        _ => (false, false, None),
    };
    let name = match stored_name(row.get_ref(0)?) {
        Ok(name) => name,
        Err(column) => return Ok(Guarded::Stop(Reconciled::Invalid(column))),
    };
    drop(rows);
    if !acts {
        return Ok(Guarded::Stop(Reconciled::Left));
    }
    let refusal = match hands {
        Hands::Write(_) => locks.claim(&RECONCILE_LOCKS, id, &name),
        Hands::Look(_) => locks.held_elsewhere(&RECONCILE_LOCKS, id, &name),
    };
    if let Some(refusal) = refusal {
        return Ok(Guarded::Stop(refused(refusal, reason)));
    }
    if start {
        let sandboxes = match hands {
            Hands::Write(trash) => Some(trash.sandboxes().path()),
            Hands::Look(sandboxes) => sandboxes,
        };
        match locks.may_be_live(sandboxes, &name) {
            Ok(false) => {}
            Ok(true) => {
                log::info!(
                    "sandbox {name:?} (id {id}): starting with no run, but an endpoint answers; left alone"
                );
                return Ok(Guarded::Stop(Reconciled::Left));
            }
            Err(err) => {
                log::warn!(target: crate::error::LOG_KEPT, "sandbox {name:?} (id {id}): {err:#}; left alone");
                return Ok(Guarded::Stop(Reconciled::Failed));
            }
        }
    }
    let Hands::Write(trash) = hands else {
        return Ok(Guarded::Proceed {
            abandoned: start,
            seen,
        });
    };
    let sandbox = match locks.remove_artifacts(trash.sandboxes(), id, &name) {
        Ok(sandbox) => sandbox,
        Err(refusal) => return Ok(Guarded::Stop(refused(refusal, reason))),
    };
    // One rename under the write lock, however large the tree; deleted
    // after the commit (0.7.11 and 0.7.13 delete it in place, before the
    // status change, outside any transaction).
    if let Err(err) =
        trash.move_bootstrap(id, &name, sandbox.as_ref().map(std::os::fd::AsFd::as_fd))
    {
        log::warn!(
            target: crate::error::LOG_KEPT,
            "sandbox {name:?} (id {id}): bootstrap root not moved to the trash, row kept: {err:#}"
        );
        return Ok(Guarded::Stop(Reconciled::Failed));
    }
    Ok(Guarded::Proceed {
        abandoned: start,
        seen,
    })
}

fn refused(refusal: Refusal, reason: Option<DeadReason>) -> Reconciled {
    match refusal {
        Refusal::Owned(_) => Reconciled::Owned(reason),
        Refusal::LockFailed | Refusal::ArtifactsFailed => Reconciled::Failed,
    }
}

/// Reconciles sandbox `id` at `now`, re-checked under the caller's write
/// lock: the newest `Running` run is judged first, and the sandbox's state
/// is checked by the guarded update itself (no separate read). Beside a run
/// directory the row's creation and lifecycle locks are taken and its
/// runtime files removed first, and a `Starting` row with no run is judged
/// an abandoned start or left; with no run directory there is no evidence
/// about such a row, so it is never touched. With `write` false (a dry run)
/// it only checks, and takes no lock.
pub(crate) fn reconcile_row(
    row: &mut RowContext<'_, '_>,
    id: i64,
    now: PrimitiveDateTime,
    write: bool,
) -> Result<Reconciled> {
    let RowContext {
        catalog,
        stmts,
        prober,
        trash,
        locks,
    } = row;
    let hands = if write {
        Hands::Write(trash)
    } else {
        Hands::Look(Some(trash.sandboxes().path()))
    };
    let beside = locks.as_mut().map(|locks| (locks, hands));
    let now = write.then_some(now);
    judge(catalog, stmts, prober, beside, id, now, None)
}

/// What the next sweep would do to reconcile candidate `id`, judged now by
/// [`reconcile_row`]'s own rule as its dry run judges it: nothing written,
/// no lock taken, no lock file made. `status` is the row's status as the
/// caller just read it (no second read). Beside a run directory, `locks`
/// reads who holds the locks from `/proc/locks` and `sandboxes`, when
/// known, adds the sandboxes directory's fallback endpoints to the probe of
/// a start with no run.
pub(crate) fn would_reconcile(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    beside: Option<(&mut RowLocks<'_>, Option<&Path>)>,
    id: i64,
    status: SandboxStatus,
) -> Result<Reconciled> {
    let beside = beside.map(|(locks, sandboxes)| (locks, Hands::Look(sandboxes)));
    judge(catalog, stmts, prober, beside, id, None, Some(status))
}

/// [`reconcile_row`]: writing at `now` when `Some`, else a dry run that
/// trusts `seen`, the row's status when the caller read it.
fn judge(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    beside: Option<(&mut RowLocks<'_>, Hands<'_, '_>)>,
    id: i64,
    now: Option<PrimitiveDateTime>,
    mut seen: Option<SandboxStatus>,
) -> Result<Reconciled> {
    let (run_id, reason) = match latest_running(catalog, stmts, prober, id)? {
        Some(RunningRun {
            invalid: Some(column),
            ..
        }) => return Ok(Reconciled::Invalid(column)),
        Some(run) => match run.liveness {
            Liveness::Dead(reason) => (Some(run.id), Some(reason)),
            Liveness::Alive => return Ok(Reconciled::Left),
        },
        None => (None, None),
    };
    let mut abandoned = false;
    if let Some((locks, hands)) = beside {
        match guard(stmts, locks, hands, id, reason, run_id.is_some())? {
            Guarded::Proceed {
                abandoned: a,
                seen: read,
            } => (abandoned, seen) = (a, seen.or(read)),
            Guarded::Stop(left) => return Ok(left),
        }
    }
    let now = now.map(format_stamp);
    let mut mark = Mark {
        catalog,
        stmts: &mut *stmts,
        now: now.as_deref(),
        seen,
    };
    use SandboxStatus::{Crashed, Draining, Running, Starting, Stopped};
    // Only a dead run makes a `Running` or `Starting` sandbox crashed, or
    // proof of an abandoned start; a `Draining` one stops either way. Gone,
    // or restarted into another state since the page was read: nothing
    // matches, and nothing is written.
    let (from, done) = match (run_id, reason) {
        (Some(_), Some(reason)) if mark.apply(id, Running, Crashed)? => {
            (Running, Reconciled::Crashed(reason))
        }
        (Some(_), Some(reason)) if mark.apply(id, Starting, Crashed)? => {
            (Starting, Reconciled::Crashed(reason))
        }
        (None, _) if abandoned && mark.apply(id, Starting, Crashed)? => {
            (Starting, Reconciled::Abandoned)
        }
        _ if mark.apply(id, Draining, Stopped)? => (Draining, Reconciled::Stopped(reason)),
        _ => return Ok(Reconciled::Left),
    };
    if let Some(now) = now {
        let (to, termination) = match done {
            Reconciled::Stopped(_) => (Stopped, TerminationReason::ShutdownRequested),
            _ => (Crashed, TerminationReason::InternalError),
        };
        if let Some(run_id) = run_id {
            stmts
                .get(TERMINATE_RUN)?
                .execute(params![run_id, termination.as_str(), now])?;
        }
        let why = match (done, reason) {
            (Reconciled::Abandoned, _) => "abandoned start: no run, no owner, no endpoint",
            (_, Some(reason)) => reason.as_str(),
            (_, None) => "no running run",
        };
        log::info!(
            "sandbox {id}: {} -> {} (runtime dead: {why})",
            from.as_str(),
            to.as_str()
        );
    }
    Ok(done)
}

/// The guarded status change (at `now`), or its dry-run check.
struct Mark<'a, 's> {
    catalog: &'a Catalog,
    stmts: &'a mut Statements<'s>,
    /// `None` for a dry run.
    now: Option<&'a str>,
    /// A dry run's status of the row, when already read.
    seen: Option<SandboxStatus>,
}

impl Mark<'_, '_> {
    /// Moves sandbox `id` from `from` to `to`; whether it was in `from`.
    fn apply(&mut self, id: i64, from: SandboxStatus, to: SandboxStatus) -> Result<bool> {
        let Some(now) = self.now else {
            if let Some(seen) = self.seen {
                return Ok(seen == from);
            }
            let found = self
                .stmts
                .get(SANDBOX_IN_STATUS)?
                .exists(params![id, from.as_str()])?;
            return Ok(found);
        };
        let schema = self.catalog.schema();
        let sql = mark_sandbox(schema.active_config, schema.network_slot);
        let changed = self
            .stmts
            .get(sql)?
            .execute(params![id, to.as_str(), now, from.as_str()])?;
        Ok(changed == 1)
    }
}
