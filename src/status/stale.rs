//! The stale lists of a summary: active sandboxes the next sweep would
//! reconcile (dead runtimes, abandoned starts) and those a held lock keeps
//! from it.
//!
//! Owns only which list a verdict goes to: the verdict is the sweep's own
//! (`sweep::reconcile::would_reconcile`, the dry-run path). Must not judge
//! a row itself, take a lock, make a lock file or write.

use std::path::Path;

use crate::catalog::Catalog;
use crate::catalog::ids::SandboxId;
use crate::catalog::sql::RECONCILE_CANDIDATES;
use crate::error::Error;
use crate::process::liveness::{DeadReason, Prober};
use crate::rundir::row_locks::RowLocks;
use crate::sandboxes::lifecycle::SandboxStatus;
use crate::status::lists::{StaleList, SummaryOptions};
use crate::status::runs::{CopiedRuns, run_lookups};
use crate::status::{known_status, shown_name};
use crate::sweep::reconcile::{Reconciled, would_reconcile};

/// An active sandbox on one of a [`Summary`]'s stale lists: one the next
/// sweep reconciles (its runtime is dead, or an abandoned start), or one it
/// leaves only because a creation or lifecycle lock is held.
///
/// [`Summary`]: crate::status::Summary
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleSandbox {
    /// `sandbox.id`.
    pub id: SandboxId,
    /// `sandbox.name` (lossily decoded when not UTF-8).
    pub name: String,
    /// `Starting`, `Running` or `Draining`.
    pub status: SandboxStatus,
    /// Why its latest `Running` run is dead; `None` for a `Draining`
    /// sandbox with no `Running` run at all, or a start with none.
    pub reason: Option<DeadReason>,
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
                id: SandboxId::new(id),
                name: shown_name(row.get_ref(1).map_err(Error::from)?),
                status,
                reason,
            };
            each(list, sandbox)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use crate::fixture::{DEAD_PID, Fixture};
    use crate::sweep::sweeper::Sweeper;

    #[test]
    fn a_dead_row_whatever_its_name_is_listed_exactly_when_the_sweep_reconciles_it() -> Result<()> {
        let f = Fixture::new()?;
        let odd = f.sandbox("odd", "Running", false)?;
        f.conn()
            .execute("UPDATE sandbox SET name = x'ff2e' WHERE id = ?1", [odd])?;
        f.run(odd, Some(DEAD_PID), "Running")?;
        // Beside a run directory the sweep reads the name, finds it no
        // name, and leaves the row: so status does not list it.
        let run = f.dir.path().join("run");
        std::fs::create_dir(&run).expect("mkdir run");
        let beside = f
            .catalog
            .summary_with(&SummaryOptions::new().run_dir(&run), |_| Ok::<_, Error>(()))?;
        assert_eq!(
            (beside.dead_active.total, beside.lifecycle_owned.total),
            (0, 0)
        );
        // Without one the sweep never reads the name and reconciles the
        // row: status lists it, its name decoded lossily.
        let summary = f.catalog.summary()?;
        let listed: Vec<_> = (summary.dead_active.first.iter())
            .map(|s| (s.id.get(), s.name.as_str(), s.reason.is_some()))
            .collect();
        assert_eq!(listed, [(odd, "\u{fffd}.", true)]);
        // The active list shows it too, rather than failing on the name.
        assert_eq!(summary.active.first.len(), 1);
        assert_eq!(summary.active.first[0].name, "\u{fffd}.");
        let report = crate::fixture::swept(Sweeper::new(&f.sandboxes).force(true).run(&f.catalog));
        assert_eq!(report.reconciled, 1);
        assert_eq!(f.status(odd)?.as_deref(), Some("Crashed"));
        Ok(())
    }
}
