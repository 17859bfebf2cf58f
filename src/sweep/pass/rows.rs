//! One row of a pass: hand it to the reconcile or cleanup step and count
//! what came of it. What happens to the row is the step's to decide.

use time::PrimitiveDateTime;

use super::Pass;
use crate::error::Result;
use crate::sandboxes::trash::Moved;
use crate::sweep::cleanup::clean_row;
use crate::sweep::reconcile::{Reconciled, reconcile_row};

impl Pass<'_, '_, '_> {
    pub(super) fn clean(&mut self, id: i64, moved: &mut Vec<Moved>) -> Result<()> {
        let dry_run = self.lease.is_none();
        let (outcome, dir, invalid) = clean_row(
            self.catalog,
            &mut self.stmts,
            &self.prober,
            &self.trash,
            self.locks.as_mut(),
            id,
            dry_run,
        )?;
        moved.extend(dir);
        self.report.count_outcome(outcome);
        if let Some(column) = invalid {
            self.report.count_invalid(id, column);
        }
        Ok(())
    }

    pub(super) fn reconcile(&mut self, id: i64, now: PrimitiveDateTime) -> Result<()> {
        let write = self.lease.is_some();
        let deadline = self.started.checked_add(self.settings.limits.budget);
        let beside = self.locks.as_mut().map(|locks| (locks, &self.trash));
        let done = reconcile_row(
            self.catalog,
            &mut self.stmts,
            &self.prober,
            beside,
            id,
            now,
            write,
            deadline,
        )?;
        match done {
            Reconciled::Left => {}
            Reconciled::Crashed(reason) => self.report.count_reconciled(false, Some(reason)),
            Reconciled::Stopped(reason) => self.report.count_reconciled(true, reason),
            Reconciled::Abandoned => {
                self.report.count_reconciled(false, None);
                self.report.abandoned += 1;
            }
            Reconciled::Owned => self.report.lifecycle_owned += 1,
            Reconciled::Failed => self.report.errors += 1,
            Reconciled::Invalid(column) => self.report.count_invalid(id, column),
        }
        Ok(())
    }
}
