//! One row of a pass: hand it to the reconcile or cleanup step, count what
//! came of it, and give back at once the locks of a row left alone. What
//! happens to the row is the step's to decide.

use time::PrimitiveDateTime;

use super::Pass;
use crate::error::Result;
use crate::rundir::row_locks::RowLocks;
use crate::sandboxes::trash::Moved;
use crate::sweep::cleanup::{CleanupOutcome, Mode, clean_row};
use crate::sweep::reconcile::{Reconciled, reconcile_row};

impl Pass<'_, '_, '_> {
    pub(super) fn clean(&mut self, id: i64, moved: &mut Vec<Moved>) -> Result<()> {
        let mode = match self.lease {
            Some(_) => Mode::Write,
            None => Mode::DryRun { ended: false },
        };
        self.clean_as(id, moved, mode)
    }

    /// A dry run's cleanup of the rows its reconcile would have ended, as
    /// the sweep cleans them in the same pass once they are `Stopped` or
    /// `Crashed`: so the dry run counts what the sweep will do.
    pub(super) fn clean_ended(&mut self) -> Result<()> {
        for id in std::mem::take(&mut self.ended) {
            self.clean_as(id, &mut Vec::new(), Mode::DryRun { ended: true })?;
        }
        Ok(())
    }

    fn clean_as(&mut self, id: i64, moved: &mut Vec<Moved>, mode: Mode) -> Result<()> {
        let mark = self.row.locks.as_ref().map(RowLocks::mark);
        let (outcome, dir, invalid) = clean_row(&mut self.row, id, mode)?;
        moved.extend(dir);
        if outcome != CleanupOutcome::Removed {
            self.release_since(mark);
        }
        // The sweep's cleanup selects ephemeral rows only: one that is not
        // (or not stored as an integer) it never looks at, nor counts.
        let selected = outcome != CleanupOutcome::SkippedPersistent
            && invalid != Some(crate::catalog::columns::Column::Ephemeral);
        if mode == (Mode::DryRun { ended: true }) && !selected {
            return Ok(());
        }
        self.report.count_outcome(outcome);
        if let Some(column) = invalid {
            self.report.count_invalid(id, column);
        }
        Ok(())
    }

    pub(super) fn reconcile(&mut self, id: i64, now: PrimitiveDateTime) -> Result<()> {
        let write = self.lease.is_some();
        let mark = self.row.locks.as_ref().map(RowLocks::mark);
        let done = reconcile_row(&mut self.row, id, now, write)?;
        if !matches!(
            done,
            Reconciled::Crashed(_) | Reconciled::Stopped(_) | Reconciled::Abandoned
        ) {
            self.release_since(mark);
        } else if !write {
            self.ended.push(id);
        }
        match done {
            Reconciled::Left => {}
            Reconciled::Crashed(reason) => self.report.count_reconciled(false, Some(reason)),
            Reconciled::Stopped(reason) => self.report.count_reconciled(true, reason),
            Reconciled::Abandoned => {
                self.report.count_reconciled(false, None);
                self.report.abandoned += 1;
            }
            Reconciled::Owned(_) => self.report.lifecycle_owned += 1,
            Reconciled::Failed => self.report.errors += 1,
            Reconciled::Invalid(column) => self.report.count_invalid(id, column),
        }
        Ok(())
    }

    /// Gives back the locks the row since `mark` took: it was left alone.
    fn release_since(&mut self, mark: Option<usize>) {
        if let (Some(locks), Some(mark)) = (self.row.locks.as_mut(), mark) {
            locks.release_since(mark);
        }
    }
}
