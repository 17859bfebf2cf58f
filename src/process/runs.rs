//! Reading a sandbox's `Running` runs and getting their processes' verdicts.
//!
//! Owns "the newest running run" and "any live running run", the two
//! questions both sweep phases, `status` and the demo ask. Reads only. The
//! lookups only a report makes (a copy of the running runs, a pid as
//! stored) are `status`'s, in `status/runs.rs`.

use rusqlite::Row;

use crate::catalog::Catalog;
use crate::catalog::columns::{self, Column};
use crate::catalog::ids::{RunId, SandboxId};
use crate::catalog::sql::{RUNNING_RUNS, RUNNING_RUNS_WITH_IDENTITY};
use crate::catalog::statements::Statements;
use crate::error::Result;
use crate::process::liveness::{Liveness, Prober, RecordedProcess};

/// `Running` runs of a sandbox, without and with the identity columns. No
/// `ORDER BY` (and no join): SQLite marks such a plan as depending on the
/// bound id, and a statement so marked is re-prepared whenever its bindings
/// are cleared, which rusqlite's statement cache does on every reuse
/// (measured: it doubled the cost of a reconcile; a join of sandbox and run
/// tripled it). The newest run is picked in Rust.
pub(crate) const RUNNING: [&str; 2] = [RUNNING_RUNS, RUNNING_RUNS_WITH_IDENTITY];

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

/// The verdict on the process a run row records (columns as in [`RUNNING`]).
/// A pid stored as neither INTEGER nor NULL proves nothing: alive.
fn verdict(row: &Row<'_>, identity: bool, prober: &Prober) -> rusqlite::Result<Liveness> {
    use rusqlite::types::ValueRef;
    let Ok(pid) = columns::pid(row.get_ref(1)?) else {
        return Ok(Liveness::Alive);
    };
    let mut recorded = RecordedProcess {
        pid,
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

/// A sandbox's newest `Running` run, and the verdict on its process.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::process::{Liveness, ProcessIdentity};
/// use sandbox_sweep::*;
///
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// migrate(&conn)?;
/// let catalog = Catalog::from_connection(conn)?;
/// let now = SystemClock::now();
/// let web = catalog.insert_sandbox("web", SandboxStatus::Running, Lifetime::Persistent, now)?;
/// assert_eq!(catalog.newest_running_run(web)?, None);
/// let run = catalog.insert_running_run(web, &ProcessIdentity::current()?, now)?;
/// let newest = catalog.newest_running_run(web)?.expect("a running run");
/// assert_eq!((newest.id, newest.liveness), (run, Liveness::Alive));
/// assert_eq!(newest.pid, Some(i64::from(std::process::id())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunningRun {
    /// `run.id`.
    pub id: RunId,
    /// `run.pid` as stored; `None` also when it is stored as neither
    /// INTEGER nor NULL (another program's row), and then `liveness` is
    /// `Alive`: nothing proves that process dead.
    pub pid: Option<i64>,
    /// Whether its process lives, judged now.
    pub liveness: Liveness,
    /// A column the rule reads has the wrong storage class (its `pid`, or
    /// any running run's `started_at`, which orders them): the row is
    /// left alone.
    pub(crate) invalid: Option<Column>,
}

/// The newest running run's id and what `make` read of it, and the column
/// of the wrong class among those runs, if any.
pub(crate) type Found<T> = (Option<(i64, T)>, Option<Column>);

/// The newest `Running` run of a sandbox (by `started_at`, then id), as
/// `make` reads it; `None` when the sandbox has no `Running` run. `make`
/// runs only on rows newer than every one before.
pub(crate) fn newest<T>(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    sandbox_id: i64,
    mut make: impl FnMut(&Row<'_>, bool) -> rusqlite::Result<T>,
) -> Result<Found<T>> {
    let identity = catalog.schema().identity;
    let stmt = stmts.get(RUNNING[usize::from(identity)])?;
    let mut rows = stmt.query([sandbox_id])?;
    // Usually exactly one row: judge as we go and keep the newest.
    let mut newest: Option<((u8, Vec<u8>), i64, T)> = None;
    let mut invalid = None;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let started = row.get_ref(2)?;
        if let Err(column) = columns::started_at(started) {
            invalid = Some(column);
        }
        let key = started_key(started);
        let newer = newest
            .as_ref()
            .is_none_or(|(k, best, _)| (&key, id) > (k, *best));
        if newer {
            newest = Some((key, id, make(row, identity)?));
        }
    }
    Ok((newest.map(|(_, id, found)| (id, found)), invalid))
}

/// The newest `Running` run of a sandbox and its process's verdict.
pub(crate) fn latest_running(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    sandbox_id: i64,
) -> Result<Option<RunningRun>> {
    let (found, started_invalid) = newest(catalog, stmts, sandbox_id, |row, identity| {
        Ok((
            columns::pid(row.get_ref(1)?),
            verdict(row, identity, prober)?,
        ))
    })?;
    Ok(found.map(|(id, (pid, liveness))| RunningRun {
        id: RunId::new(id),
        pid: pid.unwrap_or(None),
        liveness,
        invalid: pid.err().or(started_invalid),
    }))
}

impl Catalog {
    /// The newest `Running` run of sandbox `sandbox` (by `started_at`,
    /// then id), with a verdict on its process taken now; `None` when the
    /// sandbox has no `Running` run. Reads only.
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    pub fn newest_running_run(&self, sandbox: SandboxId) -> Result<Option<RunningRun>> {
        latest_running(
            self,
            &mut Statements::new(&self.conn),
            &Prober::new(),
            sandbox.get(),
        )
    }
}

/// Whether any `Running` run of the sandbox has a live process; `Err`
/// when one records its pid with the wrong storage class (nothing can be
/// proved about it, so the sandbox is left alone).
pub(crate) fn any_live_running(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    sandbox_id: i64,
) -> Result<std::result::Result<bool, Column>> {
    let identity = catalog.schema().identity;
    let stmt = stmts.get(RUNNING[usize::from(identity)])?;
    let mut rows = stmt.query([sandbox_id])?;
    while let Some(row) = rows.next()? {
        if let Err(column) = columns::pid(row.get_ref(1)?) {
            return Ok(Err(column));
        }
        if verdict(row, identity, prober)?.is_alive() {
            return Ok(Ok(true));
        }
    }
    Ok(Ok(false))
}
