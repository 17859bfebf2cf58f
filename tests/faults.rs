//! Faults from outside: read-only catalogs, missing tables, blocked trash.

mod common;

use common::*;
use rusqlite::OpenFlags;
use sandbox_sweep::{Catalog, CleanupOutcome, Error, Limits, Outcome, Sweeper};

#[test]
fn read_only_catalog_is_a_clear_error_and_changes_nothing() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let (dead, eph) = add_dead_and_finished(&env, &conn);
    drop(conn);
    let ro = rusqlite::Connection::open_with_flags(&env.db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let outcome = Sweeper::new(&env.sandboxes).run(&ro);
    let Outcome::Failed(err) = outcome else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(err.to_string().contains("readonly"), "{err}");
    let conn = env.conn();
    assert_eq!(status_of(&conn, dead).as_deref(), Some("Running"));
    assert_eq!(status_of(&conn, eph).as_deref(), Some("Stopped"));
    assert!(env.sandboxes.join("eph").is_dir());
    Ok(())
}

#[test]
fn missing_table_error_names_init() -> TestResult {
    let dir = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(dir.path().join("x.db"))?;
    conn.execute_batch(
        "CREATE TABLE sandbox (id INTEGER PRIMARY KEY); CREATE TABLE run (id INTEGER PRIMARY KEY);",
    )?;
    let err = Catalog::new(&conn).expect_err("no lease table");
    assert!(
        matches!(
            err,
            Error::MissingTable {
                table: "maintenance_lease"
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "catalog has no `maintenance_lease` table; run `sandbox-sweep init` on it first"
    );
    let outcome = Sweeper::new(dir.path()).run(&conn);
    assert!(
        matches!(outcome, Outcome::Failed(Error::MissingTable { .. })),
        "{outcome:?}"
    );
    Ok(())
}

#[test]
fn symlinked_trash_is_never_purged_through() -> TestResult {
    let env = Env::new();
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside)?;
    std::fs::create_dir(outside.join("17"))?;
    std::fs::write(outside.join("17/precious"), b"keep")?;
    std::os::unix::fs::symlink(&outside, env.sandboxes.join(".sandbox-sweep-trash"))?;
    let conn = env.conn();
    let eph = add_sandbox(&conn, "eph", "Stopped", true);
    std::fs::create_dir(env.sandboxes.join("eph"))?;
    let Outcome::Swept(report) = Sweeper::new(&env.sandboxes).run(&conn) else {
        panic!("expected a sweep");
    };
    assert_eq!((report.removed, report.errors), (0, 1));
    assert_eq!(std::fs::read(outside.join("17/precious"))?, b"keep");
    assert_eq!(status_of(&conn, eph).as_deref(), Some("Stopped"));
    assert!(env.sandboxes.join("eph").is_dir());
    Ok(())
}

#[test]
fn blocked_trash_keeps_every_row_and_counts_errors() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let mut ids = Vec::new();
    for i in 0..5 {
        let name = format!("eph-{i}");
        ids.push(add_sandbox(&conn, &name, "Crashed", true));
        std::fs::create_dir(env.sandboxes.join(&name))?;
    }
    // Something that is not ours sits where the trash goes.
    std::fs::write(
        env.sandboxes.join(".sandbox-sweep-trash"),
        b"not a directory",
    )?;
    let outcome = Sweeper::new(&env.sandboxes)
        .limits(Limits::unlimited())
        .run(&conn);
    let Outcome::Swept(report) = outcome else {
        panic!("expected a sweep, got {outcome:?}");
    };
    assert_eq!((report.removed, report.errors), (0, 5));
    assert_eq!(report.outcome(CleanupOutcome::DirRemoveFailed), 5);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(status_of(&conn, *id).as_deref(), Some("Crashed"));
        assert!(env.sandboxes.join(format!("eph-{i}")).is_dir());
    }
    assert_eq!(
        std::fs::read(env.sandboxes.join(".sandbox-sweep-trash"))?,
        b"not a directory"
    );
    Ok(())
}

/// Unmounts on drop, so a failing assertion cannot leave a mount behind.
struct Mount(std::path::PathBuf);

impl Mount {
    /// Runs `mount ARGS TARGET`; `None` when this process may not mount
    /// (not root). As root, which CI is, the mount must work.
    fn new(args: &[&str], target: &std::path::Path, what: &str) -> Option<Mount> {
        let mounted = std::process::Command::new("mount")
            .args(args)
            .arg(target)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(!is_root(), "running as root but could not {what}");
            eprintln!("note: not root, could not {what}; case not exercised");
            return None;
        }
        Some(Mount(target.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn sandbox_dir_that_is_a_mount_point_keeps_its_row() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let id = add_sandbox(&conn, "mounted", "Stopped", true);
    let dir = env.sandboxes.join("mounted");
    std::fs::create_dir(&dir)?;
    let Some(_mount) = Mount::new(&["-t", "tmpfs", "tmpfs"], &dir, "mount a tmpfs") else {
        return Ok(());
    };
    std::fs::write(dir.join("inside"), b"data")?;
    let Outcome::Swept(report) = Sweeper::new(&env.sandboxes).run(&conn) else {
        panic!("expected a sweep");
    };
    assert_eq!((report.removed, report.errors), (0, 1));
    assert_eq!(report.outcome(CleanupOutcome::DirRemoveFailed), 1);
    assert_eq!(status_of(&conn, id).as_deref(), Some("Stopped"));
    assert_eq!(std::fs::read(dir.join("inside"))?, b"data");
    Ok(())
}

#[test]
fn catalog_on_a_read_only_filesystem_is_a_clear_error() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let (dead, _) = add_dead_and_finished(&env, &conn);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    let db_dir = env.dir.path().to_path_buf();
    let db_dir_arg = db_dir.to_str().ok_or("utf8")?;
    let Some(_mount) = Mount::new(&["--bind", db_dir_arg], &db_dir, "bind-mount") else {
        return Ok(());
    };
    let remounted = std::process::Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&db_dir)
        .status()?;
    assert!(remounted.success());
    let before = std::fs::read(&env.db)?;
    let out = cli(&env.sweep_args(&[]));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    assert!(
        err.contains("readonly") || err.contains("read-only") || err.contains("unable to open"),
        "{err}"
    );
    assert!(std::fs::read(&env.db)? == before, "catalog changed");
    drop(_mount);
    assert_eq!(status_of(&env.conn(), dead).as_deref(), Some("Running"));
    Ok(())
}
