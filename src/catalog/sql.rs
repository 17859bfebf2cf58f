//! Every statement the library runs on the catalog's tables, each named
//! once: a sweep's per-page and per-row statements, the leases' reads and
//! compare-and-sets, and a runtime's own writes. (Opening and migrating,
//! which read SQLite's own tables, keep theirs in `catalog/mod.rs`.)
//!
//! The code that runs a statement and the tests that check its plan and its
//! re-prepare counters both use these constants, so rewording a query cannot
//! drop it from those checks. Text only here: nothing runs a statement.
//!
//! Two rules every statement here keeps (and `tests` below enforce):
//! - no full scan and no temporary B-tree: each is an index lookup or a
//!   merged range scan;
//! - no plan that depends on a bound value (a bound `LIMIT`, an `ORDER BY`
//!   on a run lookup, a join): SQLite re-prepares such a statement whenever
//!   its bindings are cleared, which rusqlite's statement cache does on
//!   every reuse. That had doubled the cost of a reconcile.

/// Active candidate ids in `(?1, ?2]`, ascending: one index range scan per
/// status, merged as they stream (no sorter), so reading stops after a page
/// without touching the rest. No `LIMIT ?`: the caller stops reading.
pub(crate) const ACTIVE_PAGE: &str =
    "SELECT id FROM sandbox WHERE status = 'Starting' AND id > ?1 AND id <= ?2
                 UNION ALL
                 SELECT id FROM sandbox WHERE status = 'Running' AND id > ?1 AND id <= ?2
                 UNION ALL
                 SELECT id FROM sandbox WHERE status = 'Draining' AND id > ?1 AND id <= ?2
                 ORDER BY 1";

/// Terminal ephemeral candidate ids in `(?1, ?2]`, ascending, as [`ACTIVE_PAGE`].
pub(crate) const EPHEMERAL_PAGE: &str = "SELECT id FROM sandbox WHERE ephemeral = 1 AND status = 'Stopped' AND id > ?1 AND id <= ?2
                 UNION ALL
                 SELECT id FROM sandbox WHERE ephemeral = 1 AND status = 'Crashed' AND id > ?1 AND id <= ?2
                 ORDER BY 1";

/// `Running` runs of sandbox `?1` on a catalog without the identity
/// columns: `id, pid, started_at`. No `ORDER BY`: the newest is picked in Rust.
pub(crate) const RUNNING_RUNS: &str =
    "SELECT id, pid, started_at FROM run WHERE sandbox_id = ?1 AND status = 'Running'";

/// [`RUNNING_RUNS`] with `pid_start_time, boot_id` as well.
pub(crate) const RUNNING_RUNS_WITH_IDENTITY: &str = "SELECT id, pid, started_at, pid_start_time, boot_id FROM run WHERE sandbox_id = ?1 AND status = 'Running'";

/// Moves sandbox `?1` from status `?4` to `?2` at `?3`, clearing its
/// runtime fields `active_config` and `network_slot`, as microsandbox does.
pub(crate) const MARK_SANDBOX: &str = "UPDATE sandbox SET status = ?2, updated_at = ?3, active_config = NULL, network_slot = NULL WHERE id = ?1 AND status = ?4";

/// [`MARK_SANDBOX`] on a catalog without `network_slot` (before
/// microsandbox's migration m20260818).
pub(crate) const MARK_SANDBOX_KEEPING_SLOT: &str = "UPDATE sandbox SET status = ?2, updated_at = ?3, active_config = NULL WHERE id = ?1 AND status = ?4";

/// [`MARK_SANDBOX`] on a catalog with `network_slot` but no `active_config`.
pub(crate) const MARK_SANDBOX_CLEARING_SLOT: &str = "UPDATE sandbox SET status = ?2, updated_at = ?3, network_slot = NULL WHERE id = ?1 AND status = ?4";

/// [`MARK_SANDBOX`] on a catalog with neither runtime field.
pub(crate) const MARK_SANDBOX_KEEPING_CONFIG: &str =
    "UPDATE sandbox SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status = ?4";

/// The [`MARK_SANDBOX`] variant for a catalog with or without each of the
/// runtime fields: only columns that exist are written.
pub(crate) fn mark_sandbox(active_config: bool, network_slot: bool) -> &'static str {
    match (active_config, network_slot) {
        (true, true) => MARK_SANDBOX,
        (true, false) => MARK_SANDBOX_KEEPING_SLOT,
        (false, true) => MARK_SANDBOX_CLEARING_SLOT,
        (false, false) => MARK_SANDBOX_KEEPING_CONFIG,
    }
}

/// Whether sandbox `?1` is in status `?2` (what a dry run checks instead of marking).
pub(crate) const SANDBOX_IN_STATUS: &str = "SELECT 1 FROM sandbox WHERE id = ?1 AND status = ?2";

/// Terminates run `?1` with reason `?2` at `?3`, if it is still `Running`.
pub(crate) const TERMINATE_RUN: &str =
    "UPDATE run SET status = 'Terminated', termination_reason = ?2, terminated_at = ?3
                         WHERE id = ?1 AND status = 'Running'";

/// What the cleanup decision reads of sandbox `?1`.
pub(crate) const CLEANUP_CANDIDATE: &str =
    "SELECT name, status, ephemeral FROM sandbox WHERE id = ?1";

/// Deletes every run of sandbox `?1` (explicitly: foreign keys may be off).
pub(crate) const DELETE_RUNS: &str = "DELETE FROM run WHERE sandbox_id = ?1";

/// Deletes sandbox `?1` if it is still a terminal ephemeral one.
pub(crate) const DELETE_SANDBOX: &str =
    "DELETE FROM sandbox WHERE id = ?1 AND ephemeral = 1 AND status IN ('Stopped', 'Crashed')";

/// The name of sandbox `?1`, for a trash entry named by its id.
pub(crate) const SANDBOX_NAME: &str = "SELECT name FROM sandbox WHERE id = ?1";

/// Where phase `?1` stopped last time.
pub(crate) const LOAD_CURSOR: &str = "SELECT after_id FROM sandbox_sweep_cursor WHERE phase = ?1";

/// Records where phase `?1` stopped (`?2`).
pub(crate) const SAVE_CURSOR: &str =
    "INSERT INTO sandbox_sweep_cursor (phase, after_id) VALUES (?1, ?2)
                     ON CONFLICT(phase) DO UPDATE SET after_id = excluded.after_id";

/// The lease row named `?1`.
pub(crate) const READ_LEASE: &str = "SELECT name, holder_pid, lease_expires_at, last_completed_at
             FROM maintenance_lease WHERE name = ?1";

/// Fencing: renews lease `?1` to `?4` only if holder `?2` still holds it
/// with the exact expiry text `?3` it wrote.
pub(crate) const RENEW_LEASE: &str = "UPDATE maintenance_lease SET lease_expires_at = ?4
                 WHERE name = ?1 AND holder_pid = ?2 AND lease_expires_at = ?3";

/// Claims lease `?1` for pid `?2` until `?3` (the caller re-checked it
/// under the write lock), creating its row on first use.
pub(crate) const CLAIM_LEASE: &str =
    "INSERT INTO maintenance_lease (name, holder_pid, lease_expires_at, last_completed_at)
     VALUES (?1, ?2, ?3, NULL)
     ON CONFLICT(name) DO UPDATE SET
         holder_pid = excluded.holder_pid,
         lease_expires_at = excluded.lease_expires_at";

/// Releases lease `?1` (expiry `?4`, completion `?5` when given) if holder
/// `?2` still holds it until exactly `?3`.
pub(crate) const RELEASE_LEASE: &str = "UPDATE maintenance_lease
     SET holder_pid = NULL, lease_expires_at = ?4,
         last_completed_at = coalesce(?5, last_completed_at)
     WHERE name = ?1 AND holder_pid = ?2 AND lease_expires_at = ?3";

/// Makes install lease `?1` exist, expired at `?2`, if it does not.
pub(crate) const INSTALL_SEED: &str =
    "INSERT INTO maintenance_lease (name, holder_pid, lease_expires_at, last_completed_at)
     VALUES (?1, NULL, ?2, NULL) ON CONFLICT(name) DO NOTHING";
/// Install lease `?1`: holder and expiry.
pub(crate) const INSTALL_READ: &str =
    "SELECT holder_pid, lease_expires_at FROM maintenance_lease WHERE name = ?1";
/// Claims install lease `?1` for pid `?2` until `?3` (the caller checked it is expired).
pub(crate) const INSTALL_CLAIM: &str =
    "UPDATE maintenance_lease SET holder_pid = ?2, lease_expires_at = ?3, last_completed_at = NULL
     WHERE name = ?1";
/// Renews install lease `?1` to `?4` if holder `?2` still holds it until exactly `?3`.
pub(crate) const INSTALL_RENEW: &str =
    "UPDATE maintenance_lease SET lease_expires_at = ?4, last_completed_at = NULL
     WHERE name = ?1 AND holder_pid = ?2 AND lease_expires_at = ?3";
/// Clears install lease `?1` at `?4` if holder `?2` still holds it until exactly `?3`.
pub(crate) const INSTALL_CLEAR: &str =
    "UPDATE maintenance_lease SET holder_pid = NULL, lease_expires_at = ?4, last_completed_at = ?4
     WHERE name = ?1 AND holder_pid = ?2 AND lease_expires_at = ?3";

/// A runtime inserts sandbox `?1` in status `?2`, ephemeral `?3`, at `?4`.
pub(crate) const INSERT_SANDBOX: &str =
    "INSERT INTO sandbox (name, config, status, ephemeral, created_at, updated_at)
     VALUES (?1, '{}', ?2, ?3, ?4, ?4)";
/// A runtime records its `Running` run of sandbox `?1`: pid `?2`, started `?3`.
pub(crate) const INSERT_RUN: &str =
    "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, 'Running', ?3)";
/// [`INSERT_RUN`] with the process's start time `?4` and boot id `?5`.
pub(crate) const INSERT_RUN_WITH_IDENTITY: &str =
    "INSERT INTO run (sandbox_id, pid, status, started_at, pid_start_time, boot_id)
     VALUES (?1, ?2, 'Running', ?3, ?4, ?5)";
/// Ends run `?1` with reason `?2`, exit code `?3` or signal `?4`, at `?5`,
/// if it is still `Running`.
pub(crate) const END_RUN: &str = "UPDATE run SET status = 'Terminated', termination_reason = ?2,
         exit_code = ?3, exit_signal = ?4, terminated_at = ?5
     WHERE id = ?1 AND status = 'Running'";
/// Ends the sandbox of run `?1` as `?2` at `?3`, clearing whichever of
/// its runtime fields (`active_config`, `network_slot`) the catalog has, as
/// microsandbox does when a run ends.
pub(crate) fn end_sandbox(active_config: bool, network_slot: bool) -> &'static str {
    match (active_config, network_slot) {
        (true, true) => {
            "UPDATE sandbox SET status = ?2, updated_at = ?3, active_config = NULL, network_slot = NULL
             WHERE id = (SELECT sandbox_id FROM run WHERE id = ?1)"
        }
        (true, false) => {
            "UPDATE sandbox SET status = ?2, updated_at = ?3, active_config = NULL
             WHERE id = (SELECT sandbox_id FROM run WHERE id = ?1)"
        }
        (false, true) => {
            "UPDATE sandbox SET status = ?2, updated_at = ?3, network_slot = NULL
             WHERE id = (SELECT sandbox_id FROM run WHERE id = ?1)"
        }
        (false, false) => {
            "UPDATE sandbox SET status = ?2, updated_at = ?3
             WHERE id = (SELECT sandbox_id FROM run WHERE id = ?1)"
        }
    }
}

/// The status of sandbox `?1`, for a host that reads it.
pub(crate) const SANDBOX_STATUS: &str = "SELECT status FROM sandbox WHERE id = ?1";

/// Stores run `?1`'s process identity: pid `?2`, start time `?3`, boot id `?4`.
pub(crate) const RECORD_IDENTITY: &str =
    "UPDATE run SET pid = ?2, pid_start_time = ?3, boot_id = ?4 WHERE id = ?1";

/// Sandboxes per stored status, in the status index's order (a scan of
/// that index, no sort): what `status` falls back to when counting range
/// by range would read more.
pub(crate) const COUNT_BY_STATUS: &str = "SELECT status, count(*) FROM sandbox GROUP BY status";

/// Every sandbox, counted: SQLite sums the cells of each page of the
/// smallest index, with no step per row.
pub(crate) const COUNT_ALL: &str = "SELECT count(*) FROM sandbox";

/// The sandboxes whose status is NULL (never, where the column is
/// `NOT NULL`: then SQLite reads nothing), up to `?1` of them.
pub(crate) const COUNT_STATUS_NULL: &str =
    "SELECT count(*) FROM (SELECT 1 FROM sandbox WHERE status IS NULL LIMIT ?1)";

/// The sandboxes whose status is below `?1` in the index's order (numbers,
/// then text before `?1`), up to `?2` of them.
pub(crate) const COUNT_STATUS_BELOW: &str =
    "SELECT count(*) FROM (SELECT 1 FROM sandbox WHERE status < ?1 LIMIT ?2)";

/// The sandboxes whose status is `?1`, up to `?2` of them.
pub(crate) const COUNT_STATUS_IS: &str =
    "SELECT count(*) FROM (SELECT 1 FROM sandbox WHERE status = ?1 LIMIT ?2)";

/// The sandboxes whose status is strictly between `?1` and `?2`, up to
/// `?3` of them.
pub(crate) const COUNT_STATUS_BETWEEN: &str =
    "SELECT count(*) FROM (SELECT 1 FROM sandbox WHERE status > ?1 AND status < ?2 LIMIT ?3)";

/// The sandboxes whose status is above `?1` (later text, then blobs), up
/// to `?2` of them.
pub(crate) const COUNT_STATUS_ABOVE: &str =
    "SELECT count(*) FROM (SELECT 1 FROM sandbox WHERE status > ?1 LIMIT ?2)";

/// Every sandbox's status, for counting in one pass of the table where
/// the status index is missing (`GROUP BY` would sort the whole table).
pub(crate) const ALL_STATUSES: &str = "SELECT status FROM sandbox";

/// A report's copy of the running runs, for a catalog without the run
/// index: in the temporary database, never the catalog's file.
pub(crate) const COPY_RUNNING_RUNS: &str =
    "CREATE TEMP TABLE sandbox_sweep_running AS SELECT * FROM main.run WHERE status = 'Running';
     CREATE INDEX temp.sandbox_sweep_running_sandbox ON sandbox_sweep_running (sandbox_id);";

/// Drops [`COPY_RUNNING_RUNS`]'s table.
pub(crate) const DROP_RUNNING_RUNS: &str = "DROP TABLE IF EXISTS temp.sandbox_sweep_running";

/// [`RUNNING_RUNS`] and [`RUNNING_RUNS_WITH_IDENTITY`] on that copy.
pub(crate) const COPIED_RUNNING_RUNS: [&str; 2] = [
    "SELECT id, pid, started_at FROM temp.sandbox_sweep_running WHERE sandbox_id = ?1 AND status = 'Running'",
    "SELECT id, pid, started_at, pid_start_time, boot_id FROM temp.sandbox_sweep_running WHERE sandbox_id = ?1 AND status = 'Running'",
];

/// Finished ephemeral sandboxes: cleanup's candidates, counted.
pub(crate) const COUNT_EPHEMERAL_TERMINAL: &str =
    "SELECT count(*) FROM sandbox WHERE ephemeral = 1 AND status IN ('Stopped', 'Crashed')";

/// Lease `?1`'s row verbatim, for display.
pub(crate) const LEASE_RECORD: &str =
    "SELECT holder_pid, CAST(lease_expires_at AS TEXT), CAST(last_completed_at AS TEXT)
     FROM maintenance_lease WHERE name = ?1";

/// Every sandbox that counts as active, in the status index's order (by
/// status, then id): no sort, however many there are.
pub(crate) const ACTIVE_SANDBOXES: &str = "SELECT id, CAST(name AS TEXT), status FROM sandbox
     WHERE status IN ('Created', 'Starting', 'Running', 'Draining', 'Paused')
     ORDER BY status, id";

/// The sandboxes a sweep's first phase may act on, in the status index's
/// order (by status, then id): no sort.
pub(crate) const RECONCILE_CANDIDATES: &str = "SELECT id, name, status FROM sandbox
     WHERE status IN ('Starting', 'Running', 'Draining') ORDER BY status, id";

/// Whether a row names `?1`: one probe of the name's unique index.
pub(crate) const SANDBOX_NAMED: &str = "SELECT 1 FROM sandbox WHERE name = ?1";

/// Every sandbox's name, for matching the hashes in a run directory.
pub(crate) const ALL_NAMES: &str = "SELECT name FROM sandbox";

/// Every statement above that a sweep of both phases runs per page or per
/// row, for the re-prepare and plan tests.
#[cfg(test)]
pub(crate) const PER_ROW: [&str; 14] = [
    ACTIVE_PAGE,
    EPHEMERAL_PAGE,
    RUNNING_RUNS,
    RUNNING_RUNS_WITH_IDENTITY,
    MARK_SANDBOX,
    MARK_SANDBOX_KEEPING_SLOT,
    MARK_SANDBOX_CLEARING_SLOT,
    MARK_SANDBOX_KEEPING_CONFIG,
    TERMINATE_RUN,
    CLEANUP_CANDIDATE,
    DELETE_RUNS,
    DELETE_SANDBOX,
    SAVE_CURSOR,
    RENEW_LEASE,
];

/// Every statement above that reads or searches a table, for the plan test.
#[cfg(test)]
pub(crate) const LOOKUPS: [&str; 34] = [
    SANDBOX_NAMED,
    ACTIVE_SANDBOXES,
    RECONCILE_CANDIDATES,
    COUNT_BY_STATUS,
    COUNT_ALL,
    COUNT_STATUS_NULL,
    COUNT_STATUS_BELOW,
    COUNT_STATUS_IS,
    COUNT_STATUS_BETWEEN,
    COUNT_STATUS_ABOVE,
    COUNT_EPHEMERAL_TERMINAL,
    LEASE_RECORD,
    SANDBOX_STATUS,
    RELEASE_LEASE,
    INSTALL_READ,
    INSTALL_CLAIM,
    INSTALL_RENEW,
    INSTALL_CLEAR,
    END_RUN,
    MARK_SANDBOX_CLEARING_SLOT,
    RECORD_IDENTITY,
    ACTIVE_PAGE,
    EPHEMERAL_PAGE,
    RUNNING_RUNS,
    RUNNING_RUNS_WITH_IDENTITY,
    MARK_SANDBOX,
    SANDBOX_IN_STATUS,
    TERMINATE_RUN,
    CLEANUP_CANDIDATE,
    DELETE_RUNS,
    DELETE_SANDBOX,
    SANDBOX_NAME,
    LOAD_CURSOR,
    READ_LEASE,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use crate::fixture::{DEAD_PID, Fixture, now};
    use crate::sweep::report::Report;
    use crate::sweep::settings::Limits;
    use crate::sweep::sweeper::{SweepOutcome, Sweeper};

    fn sweep_all(f: &Fixture) -> Result<Report> {
        let catalog = &f.catalog;
        let sweeper = Sweeper::new(&f.sandboxes).limits(Limits::unlimited());
        match sweeper.force(true).run_with(catalog, &now) {
            SweepOutcome::Swept(report) => Ok(report),
            SweepOutcome::Failed(err) => Err(err),
            SweepOutcome::Skipped(reason) => panic!("unexpected skip: {reason}"),
        }
    }

    /// Removes one ephemeral sandbox from a reference-schema catalog holding
    /// `attachments` volume attachment rows; the virtual-machine steps its
    /// row delete took (foreign key actions included).
    fn steps_to_delete_a_sandbox(attachments: usize, migrated: bool) -> Result<i32> {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = crate::open(dir.path().join("catalog.db"))?;
        conn.execute_batch(include_str!("../../tests/data/schema.sql"))?;
        if migrated {
            crate::migrate(&conn)?;
        }
        conn.execute_batch(
            "BEGIN;
             INSERT INTO volume (name, kind) VALUES ('data', 'dir');
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
             INSERT INTO volume_attach (volume_id, sandbox_id, pid, mode, created_at)
             SELECT 1, NULL, 1, 'rw', '2026-01-01 00:00:00' FROM n;
             COMMIT;",
        )?;
        conn.execute(
            "DELETE FROM volume_attach WHERE id > ?1",
            [i64::try_from(attachments).unwrap_or(i64::MAX)],
        )?;
        let f = Fixture::with(dir, conn)?;
        f.sandbox("eph", "Stopped", true)?;
        f.mkdir("eph");
        assert_eq!(sweep_all(&f)?.removed, 1);
        let stmt = f.conn().prepare_cached(DELETE_SANDBOX)?;
        Ok(stmt.get_status(rusqlite::StatementStatus::VmStep))
    }

    #[test]
    fn removing_a_sandbox_does_not_scan_volume_attachments() -> Result<()> {
        // `ON DELETE SET NULL` on volume_attach.sandbox_id: without the
        // migration's index, each removal walks every attachment row.
        let unindexed = steps_to_delete_a_sandbox(5_000, false)?;
        assert!(unindexed > 5_000, "{unindexed} steps: the scan is gone?");
        let few = steps_to_delete_a_sandbox(10, true)?;
        let many = steps_to_delete_a_sandbox(5_000, true)?;
        assert!(few > 0);
        assert_eq!(few, many);
        Ok(())
    }

    #[test]
    fn per_row_statements_are_never_reprepared() -> Result<()> {
        use rusqlite::StatementStatus;
        let f = Fixture::new()?;
        for i in 0..20 {
            let stale = f.sandbox(&format!("stale-{i}"), "Running", false)?;
            f.run(stale, Some(DEAD_PID), "Running")?;
            f.sandbox(&format!("eph-{i}"), "Stopped", true)?;
            f.mkdir(&format!("eph-{i}"));
        }
        let report = sweep_all(&f)?;
        assert_eq!((report.reconciled, report.removed), (20, 20));
        // A plan SQLite marks as depending on a bound value (a sort or a
        // join here) is re-prepared each time the statement cache clears
        // the bindings, that is on every reuse: a silent 2-3x slowdown.
        // The other variant of each schema-dependent pair did not run.
        let schema = f.catalog.schema();
        let unused_runs = if schema.identity {
            RUNNING_RUNS
        } else {
            RUNNING_RUNS_WITH_IDENTITY
        };
        let mark = mark_sandbox(schema.active_config, schema.network_slot);
        let not_run = |sql: &&str| {
            *sql == unused_runs || (sql.starts_with("UPDATE sandbox SET status") && *sql != mark)
        };
        for sql in PER_ROW.into_iter().filter(|sql| !not_run(sql)) {
            let stmt = f.conn().prepare_cached(sql)?;
            // Ran during the sweep, so this is the cached statement.
            assert!(stmt.get_status(StatementStatus::VmStep) > 0, "{sql}");
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
        Ok(())
    }

    #[test]
    fn candidate_queries_use_indexes() -> Result<()> {
        let f = Fixture::new()?;
        // As microsandbox's migration m20260818 adds it.
        f.conn()
            .execute_batch("ALTER TABLE sandbox ADD COLUMN network_slot INTEGER")?;
        for sql in LOOKUPS {
            let mut stmt = f.conn().prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let n = stmt.parameter_count();
            let params: Vec<i64> = vec![1; n];
            let details: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })?
                .collect::<rusqlite::Result<_>>()?;
            for detail in &details {
                // A LIMITed subquery's rows are read back from its
                // co-routine: that is no table scan.
                let full_scan = detail.starts_with("SCAN")
                    && !detail.contains("USING")
                    && !detail.starts_with("SCAN (subquery");
                assert!(!full_scan, "{sql}\n uses a full scan: {details:?}");
                assert!(
                    !detail.contains("TEMP B-TREE"),
                    "{sql}\n sorts: {details:?}"
                );
            }
            assert!(
                details.iter().any(|d| d.contains("USING")),
                "{sql}: {details:?}"
            );
        }
        Ok(())
    }
}
