//! Faults from outside: read-only catalogs, missing tables, blocked trash.

pub mod common;

use common::*;
use rusqlite::OpenFlags;
use sandbox_sweep::{Catalog, CleanupOutcome, Error, SweepOutcome, Sweeper};

#[test]
fn read_only_catalog_is_a_clear_error_and_changes_nothing() -> TestResult {
    let (env, conn, dead, eph) = dead_and_finished();
    drop(conn);
    let ro = rusqlite::Connection::open_with_flags(&env.db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let outcome = Sweeper::new(&env.sandboxes).run(&Catalog::from_connection(ro)?);
    let SweepOutcome::Failed(err) = outcome else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(format!("{err:#}").contains("readonly"), "{err:#}");
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
    let err = Catalog::from_connection(conn).expect_err("no lease table");
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
        "catalog has no `maintenance_lease` table; `migrate` creates it"
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
    let report = env.sweep();
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
    let report = env.sweep();
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
    let report = env.sweep();
    assert_eq!((report.removed, report.errors), (0, 1));
    assert_eq!(report.outcome(CleanupOutcome::DirRemoveFailed), 1);
    assert_eq!(status_of(&conn, id).as_deref(), Some("Stopped"));
    assert_eq!(std::fs::read(dir.join("inside"))?, b"data");
    Ok(())
}

#[test]
fn a_tree_that_cannot_be_deleted_is_counted_said_and_retried() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let id = add_sandbox(&conn, "eph", "Stopped", true);
    let mnt = env.sandboxes.join("eph/mnt");
    std::fs::create_dir_all(&mnt)?;
    let Some(mount) = Mount::new(&["-t", "tmpfs", "tmpfs"], &mnt, "mount a tmpfs") else {
        return Ok(());
    };
    std::fs::write(mnt.join("inside"), b"data")?;
    // Where the mount goes with the tree: unmounted there on any exit.
    let in_trash = env.sandboxes.join(format!("{TRASH_DIR}/{id}-eph/mnt"));
    let _moved = Mount(in_trash.clone());
    let sweep = || cli(&env.sweep_args(&["--force", "--json"]));
    // The row goes (the tree is in the trash, as msb's rule allows), the
    // mount point in it cannot: counted, named, exit 1.
    let out = sweep();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let line = json_line(&out);
    assert_eq!(json_field(&line, "removed"), "1", "{line}");
    assert_eq!(json_field(&line, "errors"), "1", "{line}");
    assert_eq!(json_field(&line, "trash_failed"), "1", "{line}");
    let entry = env.sandboxes.join(format!("{TRASH_DIR}/{id}-eph"));
    assert_eq!(
        json_field(&line, "error"),
        format!(
            "\"{}: Device or resource busy (os error 16)\"",
            entry.display()
        ),
        "{line}"
    );
    // Said without -v: where, and why; then the error line.
    assert_eq!(
        stderr(&out),
        format!(
            "warning: {}: Device or resource busy (os error 16): left in the trash; every sweep tries again\n\
             error: trash not deleted: {}: Device or resource busy (os error 16)\n",
            entry.display(),
            entry.display()
        )
    );
    assert_eq!(status_of(&conn, id), None);
    // `status` and `orphans` list it, with its size.
    let out = cli(&[
        "status",
        "--db",
        env.db_str(),
        "--sandboxes-dir",
        env.sandboxes_str(),
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("\ntrash leftovers (deletions not finished; every sweep tries again): 1, "),
        "{text}"
    );
    assert!(text.contains(&format!("  {}\n", entry.display())), "{text}");
    let out = cli(&[
        "orphans",
        "--db",
        env.db_str(),
        "--sandboxes-dir",
        env.sandboxes_str(),
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("  trash  ") && text.contains(&entry.display().to_string()),
        "{text}"
    );
    // What could go went; the mount point stays, in the trash.
    assert!(in_trash.is_dir() && !exists(&in_trash.join("inside")));
    // Every sweep tries again, and says so again, never "nothing left".
    let out = sweep();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_field(&json_line(&out), "trash_failed"), "1");
    let out = cli(&env.sweep_args(&["--force"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .ends_with("\n  every candidate done; what the trash could not delete stays there\n"),
        "{}",
        stdout(&out)
    );
    // Once it can go, it goes.
    let umounted = std::process::Command::new("umount")
        .arg(&in_trash)
        .status()?;
    assert!(umounted.success());
    drop(mount);
    let out = sweep();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_field(&json_line(&out), "trash_failed"), "0");
    assert!(!exists(&env.sandboxes.join(TRASH_DIR)));
    Ok(())
}

/// A user who may not delete what another user left inside a finished
/// sandbox (a directory of root's): the row goes, the tree waits in the
/// trash, counted and said, until root makes it deletable.
#[test]
fn a_tree_its_user_may_not_delete_is_counted_said_and_retried() -> TestResult {
    if !root_for("a sweep as another user") {
        return Ok(());
    }
    let env = Env::new();
    let conn = env.conn();
    let id = add_sandbox(&conn, "eph", "Stopped", true);
    drop(conn);
    let theirs = env.sandboxes.join("eph/theirs");
    std::fs::create_dir_all(&theirs)?;
    std::fs::write(theirs.join("file"), b"root's")?;
    let chown = |path: &std::path::Path, to: &str| {
        let done = std::process::Command::new("chown")
            .args(["-R", to])
            .arg(path)
            .status()
            .expect("chown");
        assert!(done.success(), "chown {}", path.display());
    };
    chown(env.dir.path(), "42:65534");
    chown(&theirs, "0:0");
    std::fs::set_permissions(&theirs, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let sweep = || {
        std::process::Command::new("setpriv")
            .args(["--reuid=42", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_sandbox-sweep"))
            .args(env.sweep_args(&["--force", "--json"]))
            .output()
            .expect("setpriv")
    };
    let out = sweep();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let line = json_line(&out);
    assert_eq!(json_field(&line, "removed"), "1", "{line}");
    assert_eq!(json_field(&line, "trash_failed"), "1", "{line}");
    let entry = env.sandboxes.join(format!("{TRASH_DIR}/{id}-eph"));
    let file = entry.join("theirs/file");
    assert_eq!(
        json_field(&line, "error"),
        format!("\"{}: Permission denied (os error 13)\"", entry.display()),
        "{line}"
    );
    assert!(stderr(&out).starts_with("warning: "), "{}", stderr(&out));
    assert_eq!(status_of(&env.conn(), id), None);
    assert_eq!(std::fs::read(&file)?, b"root's");
    let out = sweep();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_field(&json_line(&out), "trash_failed"), "1");
    chown(&entry.join("theirs"), "42:65534");
    let out = sweep();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_field(&json_line(&out), "trash_failed"), "0");
    assert!(!exists(&env.sandboxes.join(TRASH_DIR)));
    Ok(())
}

#[test]
fn catalog_on_a_read_only_filesystem_is_a_clear_error() -> TestResult {
    let (env, conn, dead, _) = dead_and_finished();
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

/// Changes the owner of everything under `root` (symlinks themselves).
fn chown_tree(root: &std::path::Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(root, Some(uid), Some(uid))?;
    if std::fs::symlink_metadata(root)?.is_dir() {
        for entry in std::fs::read_dir(root)? {
            chown_tree(&entry?.path(), uid)?;
        }
    }
    Ok(())
}

#[test]
fn read_only_directories_inside_a_sandbox_are_deleted_by_their_owner() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let conn = env.conn();
    // An image tree unpacked read-only, as images often are.
    let image = add_sandbox(&conn, "image", "Stopped", true);
    add_run(&conn, image, Some(DEAD_PID));
    let bin_dir = env.sandboxes.join("image/rootfs/usr/bin");
    std::fs::create_dir_all(&bin_dir)?;
    std::fs::write(bin_dir.join("tool"), b"#!/bin/sh\n")?;
    std::fs::write(env.sandboxes.join("image/rootfs/etc-release"), b"x")?;
    // A sandbox directory that is itself read-only cannot be renamed by a
    // non-root owner (rename rewrites its `..`): counted, row and files kept.
    let sealed = add_sandbox(&conn, "sealed", "Stopped", true);
    std::fs::create_dir(env.sandboxes.join("sealed"))?;
    std::fs::write(env.sandboxes.join("sealed/data"), b"keep")?;
    for dir in [
        bin_dir.clone(),
        env.sandboxes.join("image/rootfs/usr"),
        env.sandboxes.join("image/rootfs"),
        env.sandboxes.join("sealed"),
    ] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))?;
    }
    drop(conn);

    // Root ignores permissions, so run the sweep as an ordinary user then,
    // from a copy of the binary that user can reach.
    let mut sweep = if is_root() {
        const NOBODY: u32 = 65534;
        let copy = env.dir.path().join("sandbox-sweep");
        std::fs::copy(env!("CARGO_BIN_EXE_sandbox-sweep"), &copy)?;
        chown_tree(env.dir.path(), NOBODY)?;
        let mut cmd = std::process::Command::new(copy);
        cmd.uid(NOBODY).gid(NOBODY);
        cmd
    } else {
        bin()
    };
    let out = sweep
        .args(env.sweep_args(&["--json"]))
        .stdin(std::process::Stdio::null())
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = json_line(&out);
    assert_eq!(
        (json_field(&json, "removed"), json_field(&json, "errors")),
        ("1", "1"),
        "{json}"
    );

    let conn = env.conn();
    assert_eq!(status_of(&conn, image), None);
    let runs: i64 = conn.query_row(
        "SELECT count(*) FROM run WHERE sandbox_id = ?1",
        [image],
        |r| r.get(0),
    )?;
    assert_eq!(runs, 0);
    assert!(!exists(&env.sandboxes.join("image")));
    let trash = env.sandboxes.join(".sandbox-sweep-trash");
    assert!(!exists(&trash), "trash left behind");
    assert_eq!(status_of(&conn, sealed).as_deref(), Some("Stopped"));
    assert_eq!(std::fs::read(env.sandboxes.join("sealed/data"))?, b"keep");
    Ok(())
}

/// A root-owned child that lives until dropped: a "runtime" the sweeper's
/// user cannot see in a `hidepid=2` `/proc`.
struct Sleeper(std::process::Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn hidden_processes_are_alive_to_an_unprivileged_sweeper() -> TestResult {
    if !root_for("hidepid: a hidepid=2 /proc and another user") {
        return Ok(());
    }
    const NOBODY: &str = "65534";
    let env = Env::new();
    let conn = env.conn();
    let runtime = Sleeper(std::process::Command::new("sleep").arg("60").spawn()?);
    let live = add_sandbox(&conn, "live", "Running", false);
    add_run(&conn, live, Some(i64::from(runtime.0.id())));
    let dead = add_sandbox(&conn, "dead", "Running", false);
    add_run(&conn, dead, Some(DEAD_PID));
    drop(conn);
    let copy = env.dir.path().join("sandbox-sweep");
    std::fs::copy(env!("CARGO_BIN_EXE_sandbox-sweep"), &copy)?;
    chown_tree(env.dir.path(), 65534)?;
    // A private mount namespace whose /proc hides other users' processes,
    // and in it the sweep as an ordinary user. The namespace, and its
    // mount, end with the command.
    let script = format!(
        "mount -t proc -o hidepid=2 proc /proc && \
         exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {} {}",
        copy.display(),
        env.sweep_args(&["--force", "--json"]).join(" ")
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = json_line(&out);
    assert_eq!(json_field(&json, "reconciled"), "1", "{json}");
    let conn = env.conn();
    assert_eq!(status_of(&conn, live).as_deref(), Some("Running"));
    assert_eq!(status_of(&conn, dead).as_deref(), Some("Crashed"));
    // The sweeper really could not see the runtime: its /proc entry was
    // hidden, which is what once counted as death.
    let probe = format!(
        "mount -t proc -o hidepid=2 proc /proc && \
         exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups test -e /proc/{}",
        runtime.0.id()
    );
    let hidden = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &probe])
        .status()?;
    assert_eq!(
        hidden.code(),
        Some(1),
        "the runtime was visible: not a hidepid test"
    );
    Ok(())
}
