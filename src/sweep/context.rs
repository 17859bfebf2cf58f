//! What the reconcile and cleanup steps need for one row, in one struct:
//! the catalog and its per-row statements, the prober, the trash (and
//! through it the sandboxes directory), and, beside a run directory, the
//! locks the current transaction holds. A pass builds one and hands it
//! whole to each step (as walkdir hands its options to the iterator); a
//! single-row cleanup builds its own.
//!
//! Holds state only: no rule, and no call of its own into SQLite or the
//! filesystem.

use crate::catalog::Catalog;
use crate::catalog::statements::Statements;
use crate::process::liveness::Prober;
use crate::rundir::row_locks::RowLocks;
use crate::sandboxes::trash::Trash;

/// The per-row context: built once, lent to each step in turn.
pub(crate) struct RowContext<'s, 'c> {
    pub(crate) catalog: &'c Catalog,
    /// The per-row statements, prepared once for the whole pass.
    pub(crate) stmts: Statements<'c>,
    pub(crate) prober: Prober,
    pub(crate) trash: Trash<'s>,
    /// Beside a run directory: the locks the current transaction holds.
    pub(crate) locks: Option<RowLocks<'s>>,
}

impl<'s, 'c> RowContext<'s, 'c> {
    /// A context over `catalog` for the sandboxes in `trash`, beside the
    /// run directory whose locks `locks` takes, if any.
    pub(crate) fn new(
        catalog: &'c Catalog,
        trash: Trash<'s>,
        locks: Option<RowLocks<'s>>,
    ) -> RowContext<'s, 'c> {
        RowContext {
            catalog,
            stmts: Statements::new(&catalog.conn),
            prober: Prober::new(),
            trash,
            locks,
        }
    }
}
