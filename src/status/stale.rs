//! The stale lists of a summary: active sandboxes the next sweep would
//! reconcile (dead runtimes, abandoned starts) and those a held lock keeps
//! from it.
//!
//! Owns only which list a verdict goes to: the verdict is the sweep's own
//! (`sweep::reconcile::would_reconcile`, the dry-run path). Must not judge
//! a row itself, take a lock, make a lock file or write.

use std::path::Path;

use crate::catalog::Catalog;
use crate::catalog::sql::RECONCILE_CANDIDATES;
use crate::error::Error;
use crate::process::liveness::{DeadReason, Prober};
use crate::rundir::row_locks::RowLocks;
use crate::sandboxes::lifecycle::SandboxStatus;
use crate::status::known_status;
use crate::status::lists::{StaleList, SummaryOptions};
use crate::status::runs::{CopiedRuns, run_lookups};
use crate::sweep::reconcile::{Reconciled, would_reconcile};

/// An active sandbox whose runtime is dead: the next sweep reconciles it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleSandbox {
    /// `sandbox.id`.
    pub id: i64,
    /// `sandbox.name` (lossily decoded when not UTF-8).
    pub name: String,
    /// `Starting`, `Running` or `Draining`.
    pub status: SandboxStatus,
    /// Why its latest `Running` run is dead; `None` for a `Draining`
    /// sandbox with no `Running` run at all, or an abandoned start.
    pub reason: Option<DeadReason>,
}

/// How a status report shows a stored name: as text, lossily when it is
/// not UTF-8 (without a run directory a sweep reconciles a row whatever
/// its name holds, so this report lists it too).
fn shown_name(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Null => String::new(),
    }
}

impl Catalog {
    /// Hands `each` every active sandbox the next sweep would reconcile,
    /// or would leave only because a lock is held, by status then id, with
    /// its list. Each row is judged by the sweep's own rule, as its dry run
    /// judges it ([`would_reconcile`]): nothing written, no lock taken.
    pub(super) fn stale<'c, E: From<Error>>(
        &'c self,
        options: &SummaryOptions,
        copy: Option<&CopiedRuns<'c>>,
        mut each: impl FnMut(StaleList, StaleSandbox) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut locks = options.run_dir.as_deref().map(RowLocks::new);
        let sandboxes: Option<&Path> = options.sandboxes_dir.as_deref();
        let prober = Prober::new();
        let mut stmts = run_lookups(self, copy)?;
        let mut stmt = self
            .conn
            .prepare(RECONCILE_CANDIDATES)
            .map_err(Error::from)?;
        let mut rows = stmt.query([]).map_err(Error::from)?;
        while let Some(row) = rows.next().map_err(Error::from)? {
            let id: i64 = row.get(0).map_err(Error::from)?;
            let Some(status) = known_status(row.get_ref(2).map_err(Error::from)?) else {
                continue;
            };
            let beside = locks.as_mut().map(|locks| (locks, sandboxes));
            let (list, reason) =
                match would_reconcile(self, &mut stmts, &prober, beside, id, status)? {
                    Reconciled::Crashed(reason) => (StaleList::DeadActive, Some(reason)),
                    Reconciled::Stopped(reason) => (StaleList::DeadActive, reason),
                    Reconciled::Abandoned => (StaleList::AbandonedStarts, None),
                    Reconciled::Owned(reason) => (StaleList::LifecycleOwned, reason),
                    Reconciled::Left | Reconciled::Failed | Reconciled::Invalid(_) => continue,
                };
            let sandbox = StaleSandbox {
                id,
                name: shown_name(row.get_ref(1).map_err(Error::from)?),
                status,
                reason,
            };
            each(list, sandbox)?;
        }
        Ok(())
    }
}
