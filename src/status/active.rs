//! The active sandboxes, as an installer deciding on a schema rollback
//! sees them: every `Created`, `Starting`, `Running`, `Draining` or
//! `Paused` sandbox with its newest running run's pid as stored.
//!
//! Reads only, probes no process, holds no list while walking.

use crate::catalog::Catalog;
use crate::catalog::sql::ACTIVE_SANDBOXES;
use crate::catalog::statements::Statements;
use crate::error::{Error, Result};
use crate::sandboxes::lifecycle::SandboxStatus;
use crate::status::runs::{CopiedRuns, newest_running_pid, run_lookups};
use crate::status::{known_status, shown_name};

/// An active sandbox, as an installer deciding on a schema rollback sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActiveSandbox {
    /// `sandbox.name` (lossily decoded when not UTF-8).
    pub name: String,
    /// `Created`, `Starting`, `Running`, `Draining` or `Paused`.
    pub status: SandboxStatus,
    /// The pid of its newest `Running` run, as stored; `None` without one.
    pub pid: Option<i64>,
}

/// Every `Created`, `Starting`, `Running`, `Draining` or `Paused` sandbox
/// with the pid of its newest `Running` run, by status then id: what blocks a
/// schema rollback. Reads only; probes no process.
///
/// # Errors
///
/// Any SQLite error.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, Lifetime, SandboxStatus, SystemClock};
/// use sandbox_sweep::status::active_sandboxes;
///
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// let catalog = Catalog::from_connection(conn)?;
/// for (name, status) in [("b", SandboxStatus::Paused), ("a", SandboxStatus::Created), ("c", SandboxStatus::Stopped)] {
///     catalog.insert_sandbox(name, status, Lifetime::Persistent, SystemClock::now())?;
/// }
/// let names: Vec<_> = active_sandboxes(&catalog)?.into_iter().map(|s| s.name).collect();
/// assert_eq!(names, ["a", "b"]);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
pub fn active_sandboxes(catalog: &Catalog) -> Result<Vec<ActiveSandbox>> {
    let mut active = Vec::new();
    let copy = CopiedRuns::when_unindexed(catalog, &catalog.missing_indexes()?)?;
    each_active(catalog, copy.as_ref(), |sandbox| {
        active.push(sandbox);
        Ok::<_, Error>(())
    })?;
    Ok(active)
}

/// Hands every active sandbox to `each`, by status then id, holding none.
pub(super) fn each_active<'c, E: From<Error>>(
    catalog: &'c Catalog,
    copy: Option<&CopiedRuns<'c>>,
    mut each: impl FnMut(ActiveSandbox) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut stmt = catalog
        .conn
        .prepare(ACTIVE_SANDBOXES)
        .map_err(Error::from)?;
    let mut rows = stmt.query([]).map_err(Error::from)?;
    let mut stmts = run_lookups(catalog, copy)?;
    while let Some(row) = rows.next().map_err(Error::from)? {
        if let Some(sandbox) = active_row(catalog, &mut stmts, row)? {
            each(sandbox)?;
        }
    }
    Ok(())
}

fn active_row(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    row: &rusqlite::Row<'_>,
) -> Result<Option<ActiveSandbox>> {
    let Some(status) = known_status(row.get_ref(2)?) else {
        return Ok(None);
    };
    Ok(Some(ActiveSandbox {
        name: shown_name(row.get_ref(1)?),
        status,
        pid: newest_running_pid(catalog, stmts, row.get(0)?)?,
    }))
}
