//! Rows of the wrong storage class are left exactly as they are: counted
//! by column, never acted on. SQLite stores any value in any column, and
//! a shared catalog holds rows other programs wrote.

pub mod common;

use common::*;
use sandbox_sweep::{CleanupOutcome, InvalidRows, Result, SandboxId, Sweeper};

/// `typeof(column)` of sandbox `id`, to prove the row is untouched.
fn stored(f: &Fixture, id: i64, column: &str) -> Result<String> {
    let sql = format!(
        "SELECT typeof({column}) || ':' || CAST({column} AS TEXT) FROM sandbox WHERE id = ?1"
    );
    Ok(f.conn().query_row(&sql, [id], |r| r.get(0))?)
}

fn invalid(name: u64, status: u64, ephemeral: u64, pid: u64) -> InvalidRows {
    let mut rows = InvalidRows::default();
    (rows.name, rows.status, rows.ephemeral, rows.pid) = (name, status, ephemeral, pid);
    rows
}

/// Stores `assignment` (`column = value`, as SQL) into row `id` of
/// `table`, as another program would.
fn write_as(f: &Fixture, table: &str, id: i64, assignment: &str) -> Result<()> {
    let sql = format!("UPDATE {table} SET {assignment} WHERE id = ?1");
    f.conn().execute(&sql, [id])?;
    Ok(())
}

/// A sweep removes nothing, counts `invalid_row` rows left alone, and
/// leaves `rows` sandboxes.
fn sweep_removes_nothing(f: &Fixture, invalid_row: InvalidRows, rows: i64) -> Result<()> {
    let report = f.sweep();
    assert_eq!((report.removed, report.invalid_row), (0, invalid_row));
    assert_eq!(f.count("SELECT count(*) FROM sandbox")?, rows);
    Ok(())
}

#[test]
fn a_blob_name_keeps_its_row_and_its_directory() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("job", "Stopped", true)?;
    write_as(&f, "sandbox", id, "name = CAST('job' AS BLOB)")?;
    let dir = f.mkdir("job");
    let report = f.sweep();
    assert_eq!(report.removed, 0, "{report}");
    assert_eq!(report.invalid_row, invalid(1, 0, 0, 0), "{report}");
    assert_eq!(report.outcome(CleanupOutcome::InvalidName), 1);
    assert_eq!(stored(&f, id, "name")?, "blob:job");
    assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir.join("rootfs/data")));
    // A runtime's own cleanup reads the name the same way.
    assert_eq!(
        Sweeper::new(&f.sandboxes).clean_ephemeral(&f.catalog, SandboxId::new(id))?,
        CleanupOutcome::InvalidName
    );
    assert_eq!(stored(&f, id, "name")?, "blob:job");
    assert!(exists(&dir.join("rootfs/data")));
    Ok(())
}

#[test]
fn a_name_that_is_not_utf8_is_left_alone() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("job", "Crashed", true)?;
    write_as(&f, "sandbox", id, "name = CAST(x'6a6fff' AS TEXT)")?;
    sweep_removes_nothing(&f, invalid(1, 0, 0, 0), 1)
}

#[test]
fn a_pid_that_is_not_an_integer_proves_nothing() -> Result<()> {
    let f = Fixture::new()?;
    // Running, its newest run's pid stored as text: not crashed.
    let running = f.sandbox("web", "Running", false)?;
    let run = f.run(running, None, "Running")?;
    write_as(&f, "run", run, "pid = 'abc'")?;
    // Finished ephemeral with such a run: not removed.
    let eph = f.sandbox("job", "Stopped", true)?;
    let eph_run = f.run(eph, None, "Running")?;
    write_as(&f, "run", eph_run, "pid = 1.5")?;
    let dir = f.mkdir("job");
    let report = f.sweep();
    assert_eq!((report.reconciled, report.removed), (0, 0), "{report}");
    assert_eq!(report.invalid_row, invalid(0, 0, 0, 2), "{report}");
    assert_eq!(report.outcome(CleanupOutcome::InvalidRow), 1);
    assert_eq!(report.errors, 0, "another program's rows are not errors");
    assert_eq!(f.status(running)?.as_deref(), Some("Running"));
    assert_eq!(f.run_row(run)?.map(|r| r.0).as_deref(), Some("Running"));
    assert_eq!(f.status(eph)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir.join("rootfs/data")));
    // The public read says so too: no pid, and nothing proves it dead.
    let newest = f
        .catalog
        .newest_running_run(SandboxId::new(running))?
        .expect("a running run");
    assert_eq!(newest.pid, None);
    assert!(newest.liveness.is_alive());
    Ok(())
}

#[test]
fn a_start_time_that_is_not_a_timestamp_orders_nothing() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("web", "Running", false)?;
    f.run_at(id, Some(DEAD_PID), "Running", "2026-06-01 00:00:00")?;
    let odd = f.run_at(id, Some(DEAD_PID), "Running", "2026-06-02 00:00:00")?;
    write_as(&f, "run", odd, "started_at = 'yesterday'")?;
    let report = f.sweep();
    assert_eq!(report.reconciled, 0, "{report}");
    assert_eq!(report.invalid_row.started_at, 1, "{report}");
    assert_eq!(f.status(id)?.as_deref(), Some("Running"));
    assert_eq!(
        f.count("SELECT count(*) FROM run WHERE status = 'Running'")?,
        2
    );
    Ok(())
}

#[test]
fn status_and_ephemeral_of_the_wrong_class_keep_a_runtimes_cleanup_off() -> Result<()> {
    let f = Fixture::new()?;
    let blob_status = f.sandbox("a", "Stopped", true)?;
    write_as(
        &f,
        "sandbox",
        blob_status,
        "status = CAST('Stopped' AS BLOB)",
    )?;
    let text_flag = f.sandbox("b", "Stopped", true)?;
    write_as(&f, "sandbox", text_flag, "ephemeral = 'yes'")?;
    let two = f.sandbox("c", "Crashed", true)?;
    write_as(&f, "sandbox", two, "ephemeral = 2")?;
    for (id, name) in [(blob_status, "a"), (text_flag, "b"), (two, "c")] {
        let dir = f.mkdir(name);
        assert_eq!(
            Sweeper::new(&f.sandboxes).clean_ephemeral(&f.catalog, SandboxId::new(id))?,
            CleanupOutcome::InvalidRow,
            "{name}"
        );
        assert!(exists(&dir.join("rootfs/data")), "{name}");
    }
    assert_eq!(stored(&f, blob_status, "status")?, "blob:Stopped");
    assert_eq!(stored(&f, text_flag, "ephemeral")?, "text:yes");
    assert_eq!(stored(&f, two, "ephemeral")?, "integer:2");
    // The sweep's page never selects them: nothing to count, nothing done.
    sweep_removes_nothing(&f, invalid(0, 0, 0, 0), 3)
}

#[test]
fn the_report_and_the_cli_name_the_column() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("job", "Stopped", true)?;
    write_as(&f, "sandbox", id, "name = CAST('job' AS BLOB)")?;
    f.mkdir("job");
    let db = f.db_path();
    let sandboxes = f.sandboxes.to_str().expect("utf-8 path");
    let out = cli(&[
        "sweep",
        "--db",
        db.to_str().expect("utf-8 path"),
        "--sandboxes-dir",
        sandboxes,
        "--force",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(
        line.contains(
            "\"invalid_row\":{\"name\":1,\"status\":0,\"ephemeral\":0,\"pid\":0,\"started_at\":0}"
        ),
        "{line}"
    );
    assert!(line.contains("\"removed\":0,"), "{line}");
    let out = cli(&[
        "sweep",
        "--db",
        db.to_str().expect("utf-8 path"),
        "--sandboxes-dir",
        sandboxes,
        "--force",
    ]);
    assert!(
        stdout(&out).contains("rows left alone, a column not stored as declared: name 1"),
        "{}",
        stdout(&out)
    );
    assert!(exists(&f.sandboxes.join("job/rootfs/data")));
    Ok(())
}
