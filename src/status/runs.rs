//! Run lookups only a report makes: the running runs copied once into the
//! connection's temporary database for a catalog without the run index
//! ([`CopiedRuns`]), statements that read that copy ([`run_lookups`]), and
//! a newest running run's pid as stored ([`newest_running_pid`]).
//!
//! Never a write to the catalog's file, and never used by a sweep: its
//! verdicts must read the rows it writes. "The newest running run" itself
//! is `process::runs`'s.

use rusqlite::{Connection, Row};

use crate::catalog::Catalog;
use crate::catalog::columns;
use crate::catalog::sql::{COPIED_RUNNING_RUNS, COPY_RUNNING_RUNS, DROP_RUNNING_RUNS};
use crate::catalog::statements::Statements;
use crate::error::Result;
use crate::process::runs::{RUNNING, newest};

/// The running runs copied into an indexed temporary table, for a report
/// on a catalog without `idx_run_sandbox_status`: there each lookup would
/// scan the whole `run` table (1,000 lookups on 2,000,000 runs took over a
/// minute), where one copy reads it once. The copy is in the temporary
/// database, never the catalog's file, and is dropped with this.
pub(crate) struct CopiedRuns<'c> {
    conn: &'c Connection,
}

impl<'c> CopiedRuns<'c> {
    /// Copies the running runs when the catalog lacks the run index (among
    /// `missing`, as [`Catalog::missing_indexes`] says); `None` when
    /// lookups can use it.
    pub(crate) fn when_unindexed(
        catalog: &'c Catalog,
        missing: &[&str],
    ) -> Result<Option<CopiedRuns<'c>>> {
        if !missing.contains(&"idx_run_sandbox_status") {
            return Ok(None);
        }
        let conn = &catalog.conn;
        // One left by a report that was killed mid-way is stale.
        conn.execute_batch(DROP_RUNNING_RUNS)?;
        let copy = CopiedRuns { conn };
        conn.execute_batch(COPY_RUNNING_RUNS)?;
        Ok(Some(copy))
    }
}

impl Drop for CopiedRuns<'_> {
    fn drop(&mut self) {
        // Gone with the connection anyway; failing here loses nothing.
        let _ = self.conn.execute_batch(DROP_RUNNING_RUNS);
    }
}

/// Statements for running-run lookups: from `copy` when there is one.
/// Only the lookup the catalog's shape reads is substituted: on a catalog
/// without the identity columns (one that msb made and nobody migrated)
/// the copy has none either, and the other lookup would not prepare.
pub(crate) fn run_lookups<'c>(
    catalog: &'c Catalog,
    copy: Option<&CopiedRuns<'c>>,
) -> Result<Statements<'c>> {
    let mut stmts = Statements::new(&catalog.conn);
    if copy.is_some() {
        let at = usize::from(catalog.schema().identity);
        stmts.substitute(RUNNING[at], COPIED_RUNNING_RUNS[at])?;
    }
    Ok(stmts)
}

/// The pid of a sandbox's newest `Running` run, as stored, probing nothing.
pub(crate) fn newest_running_pid(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    sandbox_id: i64,
) -> Result<Option<i64>> {
    let (found, _) = newest(catalog, stmts, sandbox_id, |row, _| pid_value_of(row))?;
    Ok(found.and_then(|(_, pid)| pid))
}

fn pid_value_of(row: &Row<'_>) -> rusqlite::Result<Option<i64>> {
    Ok(columns::pid(row.get_ref(1)?).unwrap_or(None))
}
