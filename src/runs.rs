//! Reading a sandbox's `Running` runs and judging their processes.

use rusqlite::Row;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::liveness::{Liveness, Prober, RecordedProcess, pid_value};
use crate::statements::Statements;

/// `Running` runs of a sandbox, with and without the identity columns; both
/// read `id, pid, started_at[, pid_start_time, boot_id]` and stay on
/// `idx_run_sandbox_status`. No `ORDER BY` (and no join): SQLite marks such a
/// plan as depending on the bound id, and a statement so marked is
/// re-prepared whenever its bindings are cleared, which rusqlite's statement
/// cache does on every reuse (measured: it doubled the cost of a reconcile;
/// a join of sandbox and run tripled it). The newest run is picked in Rust.
const RUNNING: [&str; 2] = [
    "SELECT id, pid, started_at FROM run WHERE sandbox_id = ?1 AND status = 'Running'",
    "SELECT id, pid, started_at, pid_start_time, boot_id FROM run WHERE sandbox_id = ?1 AND status = 'Running'",
];

/// Every query above, for the query-plan test.
#[cfg(test)]
pub(crate) const QUERIES: [&str; 2] = RUNNING;

/// Sort key of `started_at` in SQLite's own order (NULL, numbers, text,
/// blobs; text bytewise), so "newest" means what `ORDER BY started_at DESC,
/// id DESC` would mean.
fn started_key(value: rusqlite::types::ValueRef<'_>) -> (u8, Vec<u8>) {
    use rusqlite::types::ValueRef;
    let number = |n: i64| (n ^ i64::MIN).to_be_bytes().to_vec();
    match value {
        ValueRef::Null => (0, Vec::new()),
        ValueRef::Integer(n) => (1, number(n)),
        // Saturating cast: only the order among odd values is approximate.
        ValueRef::Real(r) => (1, number(r as i64)),
        ValueRef::Text(t) => (2, t.to_vec()),
        ValueRef::Blob(b) => (3, b.to_vec()),
    }
}

/// Judges the process a run row records (columns as in the queries above).
fn judge(row: &Row<'_>, identity: bool, prober: &Prober) -> rusqlite::Result<Liveness> {
    use rusqlite::types::ValueRef;
    let mut recorded = RecordedProcess {
        pid: pid_value(row.get_ref(1)?),
        ..RecordedProcess::default()
    };
    if identity {
        recorded.start_time = match row.get_ref(3)? {
            ValueRef::Integer(t) => Some(t),
            _ => None,
        };
        recorded.boot_id = match row.get_ref(4)? {
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
    stmts: &mut Statements<'_>,
    prober: &Prober,
    sandbox_id: i64,
) -> Result<Option<(i64, Liveness)>> {
    let identity = catalog.schema.identity;
    let stmt = stmts.get(RUNNING[usize::from(identity)])?;
    let mut rows = stmt.query([sandbox_id])?;
    // Usually exactly one row: judge as we go and keep the newest verdict.
    let mut newest: Option<((u8, Vec<u8>), i64, Liveness)> = None;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let key = started_key(row.get_ref(2)?);
        let newer = newest
            .as_ref()
            .is_none_or(|(k, best_id, _)| (&key, id) > (k, *best_id));
        if newer {
            newest = Some((key, id, judge(row, identity, prober)?));
        }
    }
    Ok(newest.map(|(_, id, verdict)| (id, verdict)))
}

/// Whether any `Running` run of the sandbox has a live process.
pub(crate) fn any_live_running(
    catalog: &Catalog<'_>,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    sandbox_id: i64,
) -> Result<bool> {
    let identity = catalog.schema.identity;
    let stmt = stmts.get(RUNNING[usize::from(identity)])?;
    let mut rows = stmt.query([sandbox_id])?;
    while let Some(row) = rows.next()? {
        if judge(row, identity, prober)?.is_alive() {
            return Ok(true);
        }
    }
    Ok(false)
}
