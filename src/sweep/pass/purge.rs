//! The trash's part of a pass: sorting what a killed sweep left there,
//! and deleting within the budget what a batch moved there (after it
//! committed, or whichever way it ended for a bootstrap root).
//!
//! Decides nothing about rows beyond "does this id still have a valid
//! name"; how a directory is moved or deleted is the trash's.

use std::ffi::{OsStr, OsString};

use rusqlite::OptionalExtension;

use super::{End, Pass};
use crate::catalog::sql::SANDBOX_NAME;
use crate::error::Result;
use crate::sandboxes::names::stored_name;

impl Pass<'_, '_, '_> {
    pub(super) fn purge_trash(&mut self) -> Result<End> {
        if self.lease.is_none() {
            return Ok(End::Complete);
        }
        if !self.row.trash.exists() {
            // The common case: no leftovers, so no write transaction either.
            return Ok(End::Complete);
        }
        if self.out_of_time() {
            return Ok(End::TimedOut);
        }
        let tx = match self.begin()? {
            Ok(tx) => tx,
            Err(end) => return Ok(end),
        };
        let doomed = self.recover_trash()?;
        let committed = tx.commit();
        self.confirm_renewal(committed.is_ok());
        committed?;
        self.delete_within_budget(doomed.iter().map(OsString::as_os_str));
        Ok(End::Complete)
    }

    /// Sorts what a crash left in the trash (inside the purge's
    /// transaction): directories whose rows survived go back; the rest is
    /// returned for deletion after the commit.
    fn recover_trash(&mut self) -> Result<Vec<OsString>> {
        let mut name_of = self.row.catalog.conn.prepare_cached(SANDBOX_NAME)?;
        self.row.trash.recover(|id| {
            let name = name_of
                .query_row([id], |row| Ok(stored_name(row.get_ref(0)?).ok()))
                .optional()?;
            Ok(name.flatten())
        })
    }

    /// Deletes, while the budget lasts, the bootstrap roots this batch
    /// moved into the trash: garbage whichever way its transaction ended.
    pub(super) fn delete_garbage(&mut self) {
        let garbage = self.row.trash.take_garbage();
        self.delete_within_budget(garbage.iter().map(OsString::as_os_str));
    }

    /// Deletes trash entries while the budget lasts, checking the clock
    /// between files: a sandbox directory can be arbitrarily large, so what
    /// does not fit waits in the trash for the next sweep's purge (its row is
    /// already gone, so nothing else is owed).
    pub(super) fn delete_within_budget<'p>(&mut self, entries: impl Iterator<Item = &'p OsStr>) {
        let deadline = self.started.checked_add(self.settings.limits.budget);
        for entry in entries {
            if self.out_of_time() {
                self.report.trash_deferred += 1;
                continue;
            }
            match self.row.trash.delete(entry, deadline) {
                Ok(true) => {}
                Ok(false) => self.report.trash_deferred += 1,
                // Never a silent leak: counted, said, and tried again.
                Err(err) => {
                    log::warn!(target: crate::error::LOG_KEPT, "{err:#}: left in the trash; every sweep tries again");
                    self.report.trash_failed += 1;
                    self.report.errors += 1;
                    self.report
                        .trash_error
                        .get_or_insert_with(|| format!("{err:#}"));
                }
            }
        }
    }
}
