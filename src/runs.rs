//! Reading a sandbox's `Running` runs and judging their processes.

use rusqlite::Row;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::liveness::{Liveness, Prober, RecordedProcess, pid_value};

/// Queries with and without the identity columns; both read
/// `id, pid[, pid_start_time, boot_id]` and stay on `idx_run_sandbox_status`.
const LATEST: [&str; 2] = [
    "SELECT id, pid FROM run WHERE sandbox_id = ?1 AND status = 'Running'
     ORDER BY started_at DESC, id DESC LIMIT 1",
    "SELECT id, pid, pid_start_time, boot_id FROM run WHERE sandbox_id = ?1 AND status = 'Running'
     ORDER BY started_at DESC, id DESC LIMIT 1",
];
const ALL: [&str; 2] = [
    "SELECT id, pid FROM run WHERE sandbox_id = ?1 AND status = 'Running'",
    "SELECT id, pid, pid_start_time, boot_id FROM run WHERE sandbox_id = ?1 AND status = 'Running'",
];

/// Every query above, for the query-plan test.
#[cfg(test)]
pub(crate) const QUERIES: [&str; 4] = [LATEST[0], LATEST[1], ALL[0], ALL[1]];

/// Judges the process a run row records (columns as in the queries above).
fn judge(row: &Row<'_>, identity: bool, prober: &Prober) -> rusqlite::Result<Liveness> {
    use rusqlite::types::ValueRef;
    let mut recorded = RecordedProcess {
        pid: pid_value(row.get_ref(1)?),
        ..RecordedProcess::default()
    };
    if identity {
        recorded.start_time = match row.get_ref(2)? {
            ValueRef::Integer(t) => Some(t),
            _ => None,
        };
        recorded.boot_id = match row.get_ref(3)? {
            ValueRef::Text(text) => std::str::from_utf8(text).ok(),
            _ => None,
        };
    }
    Ok(prober.check(&recorded))
}

/// The newest `Running` run of a sandbox (by `started_at`, then id) and its
/// process's verdict; `None` when the sandbox has no `Running` run.
pub(crate) fn latest_running(
    catalog: &Catalog<'_>,
    prober: &Prober,
    sandbox_id: i64,
) -> Result<Option<(i64, Liveness)>> {
    let identity = catalog.schema.identity;
    let mut stmt = catalog.conn.prepare_cached(LATEST[usize::from(identity)])?;
    let mut rows = stmt.query([sandbox_id])?;
    match rows.next()? {
        Some(row) => Ok(Some((row.get(0)?, judge(row, identity, prober)?))),
        None => Ok(None),
    }
}

/// Whether any `Running` run of the sandbox has a live process.
pub(crate) fn any_live_running(
    catalog: &Catalog<'_>,
    prober: &Prober,
    sandbox_id: i64,
) -> Result<bool> {
    let identity = catalog.schema.identity;
    let mut stmt = catalog.conn.prepare_cached(ALL[usize::from(identity)])?;
    let mut rows = stmt.query([sandbox_id])?;
    while let Some(row) = rows.next()? {
        if judge(row, identity, prober)?.is_alive() {
            return Ok(true);
        }
    }
    Ok(false)
}
