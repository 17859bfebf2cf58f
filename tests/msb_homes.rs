//! Every command on microsandbox homes as users have them, made by the
//! real msb (0.6.18, 0.7.0 and 0.7.11 for the first two) and never
//! `init`ed: one where msb only loaded an image
//! (no `run/`, no `sandboxes/`), one where it created a sandbox, read by a
//! user who may only read it, and one that another user owns, swept as
//! root, after which that user's msb still gets past its locks.

pub mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::msb::{self, Home, Msb};
use common::*;
use rusqlite::{Connection, params};

/// The user a home belongs to in these tests: Debian's `_apt`, whose uid
/// (42) is not its primary gid (65534, `nogroup`), so a swapped uid and
/// gid would show.
const USER: u32 = 42;

/// [`USER`]'s primary group.
const GROUP: u32 = 65534;

/// `true` when the user database has [`USER`] as the tests expect;
/// otherwise [`cannot_run`] says so.
fn user_as_expected() -> bool {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    if passwd
        .lines()
        .any(|l| l.starts_with(&format!("_apt:x:{USER}:{GROUP}:")))
    {
        return true;
    }
    cannot_run(
        "a home of another user",
        "no _apt user (uid 42, gid 65534) here",
    );
    false
}

/// How long one `msb create` may take here.
const CREATE_LIMIT: Duration = Duration::from_secs(180);

/// msb writes 9 fraction digits.
const STAMP: &str = "2026-12-03 10:00:00.123456789";

/// A pid no process has.
const DEAD: i64 = 2_147_483_647;

/// What a command must leave as it was: every path's type, size, mode,
/// owner and modification time, and the bytes of the catalog's files.
fn snapshot(home: &Path) -> BTreeMap<PathBuf, String> {
    let mut seen = BTreeMap::new();
    let mut todo = vec![home.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let kind = match meta.file_type() {
            t if t.is_dir() => "dir",
            t if t.is_symlink() => "link",
            t if t.is_file() => "file",
            _ => "other",
        };
        let mut line = format!(
            "{kind} {} {:o} {}:{} {}.{}",
            meta.len(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                todo.push(entry.expect("entry").path());
            }
        } else if meta.is_file() && path.parent().is_some_and(|p| p.ends_with("db")) {
            let bytes = std::fs::read(&path).expect("read");
            line.push_str(&format!(" {:x?}", sha_of(&bytes)));
        }
        seen.insert(path, line);
    }
    seen
}

/// Asserts that `after` is `before`, naming each path that differs. The
/// one change allowed: where the catalog's last connection had closed
/// cleanly (no `-wal`, no `-shm`), SQLite makes both, the `-wal` empty,
/// as any reader of a WAL file does, owned as the catalog is.
fn assert_unchanged(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) {
    let mut differ = Vec::new();
    for (path, line) in after {
        if before.get(path) == Some(line) {
            continue;
        }
        let name = path.to_string_lossy();
        let made_by_a_reader = before.get(path).is_none()
            && (name.ends_with("/db/msb.db-shm")
                || (name.ends_with("/db/msb.db-wal") && line.starts_with("file 0 ")));
        let db_dir = path.ends_with("db") && before.get(path).is_some();
        if made_by_a_reader {
            let db = path.with_file_name("msb.db");
            let owner = |l: &str| l.split(' ').nth(3).map(str::to_owned);
            assert_eq!(
                owner(line),
                before.get(&db).and_then(|l| owner(l)),
                "{}",
                path.display()
            );
            continue;
        }
        if db_dir
            && (after
                .keys()
                .any(|p| p.ends_with("msb.db-shm") && !before.contains_key(p)))
        {
            continue;
        }
        differ.push(format!(
            "{}: {:?} -> {line}",
            path.display(),
            before.get(path)
        ));
    }
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        differ.push(format!("{}: removed", path.display()));
    }
    assert!(differ.is_empty(), "changed:\n{}", differ.join("\n"));
}

fn sha_of(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

/// `sandbox-sweep ARGS` with `MSB_HOME=home`, as root or, with `user`, as
/// that user (its uid and gid, no other groups).
fn run_in(home: &Path, user: Option<u32>, args: &[&str]) -> Output {
    let mut cmd = match user {
        None => bin(),
        Some(uid) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={GROUP}"))
                .arg("--clear-groups")
                .arg(env!("CARGO_BIN_EXE_sandbox-sweep"));
            cmd
        }
    };
    cmd.args(args)
        .env("MSB_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run sandbox-sweep")
}

/// stdout with the home's path and the elapsed time written as
/// placeholders, and without the lease line (msb's own timestamps).
fn text(out: &Output, home: &Path) -> String {
    let home = home.to_str().expect("utf8");
    stdout(out)
        .lines()
        .filter(|l| !l.starts_with("lease: "))
        .map(|l| {
            let l = l.replace(home, "HOME");
            match (l.find(" in "), l.find(" ms:")) {
                (Some(a), Some(b)) if a < b => format!("{} in MS{}", &l[..a], &l[b + 3..]),
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `--json` line with `elapsed_us` zeroed and everything from `"lease"`
/// on cut (msb's own timestamps).
fn json(out: &Output) -> String {
    let line = json_line(out);
    let line = match line.find("\"elapsed_us\":") {
        Some(at) => {
            let end = line[at..].find(',').map_or(line.len(), |e| at + e);
            format!("{}\"elapsed_us\":0{}", &line[..at], &line[end..])
        }
        None => line,
    };
    match line.find(",\"lease\":") {
        Some(at) => {
            assert!(line.ends_with(",\"error\":null}"), "{line}");
            line[..at].to_owned()
        }
        None => line,
    }
}

fn ok(out: &Output) -> &Output {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {} stderr {}",
        stdout(out),
        stderr(out)
    );
    out
}

/// A home made by `msb load` alone: `db/` and `cache/`, no `run/`, no
/// `sandboxes/`.
fn loaded_home(msb: &Msb) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let oci = msb
        .template
        .parent()
        .expect("cache")
        .join("busybox.oci.tar");
    let oci = oci.to_str().expect("utf8");
    let out = msb::run(
        msb,
        &home,
        &["load", "-i", oci, "-t", "local/busybox:latest"],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "msb load: {}", stderr(&out));
    assert!(home.join("db/msb.db").is_file());
    assert!(!home.join("run").exists() && !home.join("sandboxes").exists());
    (dir, home)
}

/// Runs `test` on a home of each release users run.
fn on_every_release(test: fn(&Msb) -> TestResult) -> TestResult {
    let Some(releases) = msb::releases() else {
        return Ok(());
    };
    for msb in releases {
        test(msb).map_err(|e| format!("msb {}: {e}", msb.release))?;
    }
    Ok(())
}

#[test]
fn every_command_on_a_home_where_msb_has_created_no_sandbox() -> TestResult {
    on_every_release(no_sandbox_yet)
}

fn no_sandbox_yet(msb: &Msb) -> TestResult {
    let (_dir, home) = loaded_home(msb);
    let before = snapshot(&home);
    let nothing = "nothing to do: msb has created no sandbox in HOME yet (no run/, no sandboxes/)";
    let out = run_in(&home, None, &["status"]);
    assert_eq!(
        text(ok(&out), &home),
        "catalog HOME/db/msb.db\n  no sandboxes\n\
         finished ephemeral sandboxes (cleanup candidates): 0\n\
         active sandboxes with a dead runtime now: 0\n\
         indexes missing: idx_run_sandbox_status, idx_sandbox_status, idx_volume_attach_sandbox_id \
         (each run lookup scans the whole table, so a sweep does few rows in its budget)\n\
         install: none in progress\n\
         hint: `sandbox-sweep init` adds the missing indexes"
    );
    let out = run_in(&home, None, &["status", "--json"]);
    assert_eq!(
        json(ok(&out)),
        format!(
            "{{\"stale\":[],\"active\":[],\"by_status\":{{}},\"other_status\":0,\"missing_indexes\":{MISSING_LIST},\
             \"ephemeral_terminal\":0,\"dead_active_count\":0,\"lifecycle_owned_count\":0,\
             \"abandoned_starts_count\":0,\"active_count\":0"
        )
    );
    for args in [
        &["orphans"][..],
        &["sweep", "--dry-run"],
        &["sweep"],
        &["sweep", "--force"],
    ] {
        let out = run_in(&home, None, args);
        assert_eq!(text(ok(&out), &home), nothing, "{args:?}");
        assert_eq!(stderr(&out), "", "{args:?}");
    }
    let out = run_in(&home, None, &["orphans", "--json"]);
    assert_eq!(
        json(ok(&out)),
        "{\"orphans\":[],\"count\":0,\"total_bytes\":0,\"examined\":0,\"errors\":0,\"complete\":true,\"stopped_at\":null,\"lock_files\":{\"count\":0,\"bytes\":0,\"oldest_s\":null}}"
    );
    for (args, dry) in [
        (&["sweep", "--json"][..], false),
        (&["sweep", "--dry-run", "--json"], true),
    ] {
        let out = run_in(&home, None, args);
        assert_eq!(
            json(ok(&out)),
            sweep_json("nothing_to_do", dry, false, "[]")
        );
    }
    // Nothing in the home changed, the catalog's bytes included.
    assert_unchanged(&before, &snapshot(&home));
    // A directory named by a flag that is not there stays an error.
    let run = home.join("run");
    let out = run_in(
        &home,
        None,
        &["sweep", "--run-dir", run.to_str().expect("utf8")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "nothing swept: {}: No such file or directory",
            run.display()
        )),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn no_home_at_all_says_what_was_looked_for_and_how_to_point_at_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join(".microsandbox");
    for args in [
        &["status"][..],
        &["sweep"],
        &["orphans"],
        &["sweep", "--dry-run"],
    ] {
        let out = bin()
            .args(args)
            .env_remove("MSB_HOME")
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
        assert_eq!(
            stderr(&out),
            format!(
                "error: no microsandbox home: $MSB_HOME is not set and {} does not exist; \
                 point at one with --home DIR, $MSB_HOME or --db PATH\n",
                missing.display()
            ),
            "{args:?}"
        );
    }
    // A script that asked for JSON gets a line it can parse.
    let out = bin()
        .args(["sweep", "--json"])
        .env_remove("MSB_HOME")
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "{{\"error\":\"failed\",\"message\":\"no microsandbox home: $MSB_HOME is not set and {} \
             does not exist; point at one with --home DIR, $MSB_HOME or --db PATH\"}}\n",
            missing.display()
        )
    );
    assert!(!missing.exists(), "nothing was created");
    let out = cli(&["status", "--home", missing.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: no such microsandbox home (--home)\n",
            missing.display()
        )
    );
    // A home with no catalog yet: msb makes its own.
    std::fs::create_dir(&missing).expect("mkdir");
    let out = cli(&["sweep", "--home", missing.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: no catalog yet ({}/db/msb.db is missing; msb makes it on its first \
             command, such as `msb ls`, and refuses one that another program made first)\n",
            missing.display(),
            missing.display()
        )
    );
    // `init` does not make msb's catalog for it: msb would refuse that one.
    let init = cli(&["init", "--home", missing.to_str().expect("utf8")]);
    assert_eq!(init.status.code(), Some(1));
    assert_eq!(stderr(&init), stderr(&out));
    assert_eq!(std::fs::read_dir(&missing).expect("read").count(), 0);
}

/// Adds one sandbox of each status to the catalog msb made in `home`, with
/// `seed`'s config renamed, and a directory for each: Created, an abandoned
/// start, a Running and a Draining one whose runtime is dead, Paused, and
/// two finished ephemeral ones.
fn add_every_status(home: &Path) -> TestResult {
    let conn = Connection::open(home.join("db/msb.db"))?;
    let seed: String =
        conn.query_row("SELECT config FROM sandbox WHERE name = 'seed'", [], |r| {
            r.get(0)
        })?;
    for (name, status, ephemeral, run) in [
        ("created", "Created", false, false),
        ("starting", "Starting", false, false),
        ("running", "Running", false, true),
        ("draining", "Draining", false, true),
        ("paused", "Paused", false, false),
        ("eph-stopped", "Stopped", true, false),
        ("eph-crashed", "Crashed", true, false),
    ] {
        conn.execute(
            "INSERT INTO sandbox (name, config, status, created_at, updated_at, ephemeral) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            params![name, msb::config_for(&seed, name, ephemeral), status, STAMP, ephemeral],
        )?;
        let id = conn.last_insert_rowid();
        if run {
            conn.execute(
                "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, 'Running', ?3)",
                params![id, DEAD, STAMP],
            )?;
        }
        std::fs::create_dir_all(home.join("sandboxes").join(name).join("runtime"))?;
    }
    as_msb_leaves_it(home, conn)
}

/// Closes `conn` leaving the catalog as msb leaves it: with its `-wal`
/// and `-shm` (the last connection here would checkpoint and remove
/// them, which msb's do not).
fn as_msb_leaves_it(home: &Path, conn: Connection) -> TestResult {
    let db = home.join("db");
    let aside = tempfile::tempdir()?;
    for file in ["msb.db", "msb.db-wal", "msb.db-shm"] {
        std::fs::copy(db.join(file), aside.path().join(file))?;
    }
    drop(conn);
    for file in ["msb.db", "msb.db-wal", "msb.db-shm"] {
        std::fs::copy(aside.path().join(file), db.join(file))?;
    }
    Ok(())
}

fn statuses(home: &Path) -> Vec<(String, String)> {
    names_and_statuses(&Connection::open(home.join("db/msb.db")).expect("open"))
}

/// This crate's indexes, all missing on a catalog nobody `init`ed.
const MISSING_LIST: &str =
    "[\"idx_run_sandbox_status\",\"idx_sandbox_status\",\"idx_volume_attach_sandbox_id\"]";

/// The JSON line of a sweep (`elapsed_us` zeroed): of
/// [`add_every_status`]'s rows when `every_status`, else of none.
fn sweep_json(outcome: &str, dry_run: bool, every_status: bool, missing: &str) -> String {
    let [reconciled, removed, crashed, stopped, abandoned, dead] = if every_status {
        [3, 2, 2, 1, 1, 2]
    } else {
        [0; 6]
    };
    format!(
        "{{\"outcome\":\"{outcome}\",\"skip_reason\":null,\"reconciled\":{reconciled},\"removed\":{removed},\"errors\":0,\
         \"timed_out\":false,\"lease_lost\":false,\"installing\":false,\"elapsed_us\":0,\"complete\":true,\
         \"dry_run\":{dry_run},\"crashed\":{crashed},\"stopped\":{stopped},\"abandoned\":{abandoned},\"lifecycle_owned\":0,\
         \"dead\":{{\"no_pid\":0,\"invalid_pid\":0,\"no_such_process\":{dead},\"zombie\":0,\"pid_reused\":0,\"rebooted\":0}},\
         \"cleanup\":{{\"removed\":{removed},\"dir_remove_failed\":0,\"already_gone\":0,\"already_claimed\":0,\
         \"skipped_persistent\":0,\"skipped_active\":0,\"skipped_live_pid\":0,\"invalid_name\":0,\
         \"lifecycle_owned\":0,\"lock_failed\":0,\"socket_remove_failed\":0,\"snapshot_in_progress\":0,\
         \"invalid_row\":0}},\"invalid_row\":{{\"name\":0,\"status\":0,\"ephemeral\":0,\"pid\":0,\"started_at\":0}},\
         \"trash_failed\":0,\"missing_indexes\":{missing},\"error\":null}}"
    )
}

/// [`sweep_json`] of [`add_every_status`]'s rows on a catalog nobody
/// `init`ed.
fn every_status_swept(dry_run: bool) -> String {
    sweep_json("swept", dry_run, true, MISSING_LIST)
}

#[test]
fn every_command_on_a_home_msb_created_a_sandbox_in_and_nobody_inited() -> TestResult {
    on_every_release(a_row_of_each_status)
}

fn a_row_of_each_status(msb: &Msb) -> TestResult {
    let home = Home::new(msb);
    let home = &home.path;
    add_every_status(home)?;
    let before = snapshot(home);
    let out = run_in(home, None, &["status"]);
    assert_eq!(
        text(ok(&out), home),
        "catalog HOME/db/msb.db\n\
         \x20 Crashed           1\n  Created           1\n  Draining          1\n  Paused            1\n\
         \x20 Running           1\n  Starting          1\n  Stopped           2\n\
         finished ephemeral sandboxes (cleanup candidates): 2\n\
         active sandboxes with a dead runtime now: 2\n\
         \x20 #5      \"draining\"               Draining no_such_process\n\
         \x20 #4      \"running\"                Running no_such_process\n\
         abandoned starts (Starting, no run, no lock held, no endpoint answering): 1\n\
         \x20 #3      \"starting\"               Starting no running run\n\
         indexes missing: idx_run_sandbox_status, idx_sandbox_status, idx_volume_attach_sandbox_id \
         (each run lookup scans the whole table, so a sweep does few rows in its budget)\n\
         install: none in progress\n\
         hint: `sandbox-sweep init` adds the missing indexes"
    );
    let out = run_in(home, None, &["status", "--json"]);
    assert_eq!(
        json(ok(&out)),
        format!(
            "{{\"stale\":[{{\"list\":\"dead_active\",\"id\":5,\"name\":\"draining\",\"status\":\"Draining\",\"reason\":\"no_such_process\"}},\
             {{\"list\":\"dead_active\",\"id\":4,\"name\":\"running\",\"status\":\"Running\",\"reason\":\"no_such_process\"}},\
             {{\"list\":\"abandoned_starts\",\"id\":3,\"name\":\"starting\",\"status\":\"Starting\",\"reason\":\"no_running_run\"}}],\
             \"active\":[{{\"name\":\"created\",\"status\":\"Created\",\"pid\":null}},{{\"name\":\"draining\",\"status\":\"Draining\",\"pid\":{DEAD}}},\
             {{\"name\":\"paused\",\"status\":\"Paused\",\"pid\":null}},{{\"name\":\"running\",\"status\":\"Running\",\"pid\":{DEAD}}},\
             {{\"name\":\"starting\",\"status\":\"Starting\",\"pid\":null}}],\
             \"by_status\":{{\"Crashed\":1,\"Created\":1,\"Draining\":1,\"Paused\":1,\"Running\":1,\"Starting\":1,\"Stopped\":2}},\
             \"other_status\":0,\"missing_indexes\":{MISSING_LIST},\"ephemeral_terminal\":2,\"dead_active_count\":2,\"lifecycle_owned_count\":0,\
             \"abandoned_starts_count\":1,\"active_count\":5"
        )
    );
    let out = run_in(home, None, &["orphans"]);
    assert_eq!(
        text(ok(&out), home),
        "orphans beside catalog HOME/db/msb.db\ntotal: 0 orphans, 0 B (10 entries examined, 0 errors)"
    );
    let out = run_in(home, None, &["orphans", "--json"]);
    assert_eq!(
        json(ok(&out)),
        "{\"orphans\":[],\"count\":0,\"total_bytes\":0,\"examined\":10,\"errors\":0,\"complete\":true,\"stopped_at\":null,\"lock_files\":{\"count\":0,\"bytes\":0,\"oldest_s\":null}}"
    );
    let out = run_in(home, None, &["sweep", "--dry-run"]);
    assert_eq!(
        text(ok(&out), home),
        "dry run (nothing written) in MS: would reconcile 3 (crashed 2, stopped 1), would remove 2, errors 0\n\
         \x20 abandoned starts crashed (Starting, no run, no owner, no endpoint): 1\n\
         \x20 dead runtimes: no_such_process 2\n\
         \x20 ephemeral candidates: removed 2\n\
         \x20 indexes missing: idx_run_sandbox_status, idx_sandbox_status, idx_volume_attach_sandbox_id \
         (each run lookup scans the whole table, so a sweep does few rows in its budget)\n\
         \x20 nothing left behind\n\
         hint: `sandbox-sweep init` adds the missing indexes"
    );
    let dry = run_in(home, None, &["sweep", "--dry-run", "--json"]);
    assert_eq!(json(ok(&dry)), every_status_swept(true));
    // Reads only: nothing in the home changed, the catalog's bytes included.
    assert_unchanged(&before, &snapshot(home));

    // The sweep does what the dry run said.
    let out = run_in(home, None, &["sweep", "--json"]);
    assert_eq!(json(ok(&out)), every_status_swept(false));
    let rows: Vec<(String, String)> = [
        ("seed", "Stopped"),
        ("created", "Created"),
        ("starting", "Crashed"),
        ("running", "Crashed"),
        ("draining", "Stopped"),
        ("paused", "Paused"),
    ]
    .iter()
    .map(|(n, s)| (n.to_string(), s.to_string()))
    .collect();
    assert_eq!(statuses(home), rows);
    for name in ["eph-stopped", "eph-crashed"] {
        assert!(!exists(&home.join("sandboxes").join(name)), "{name}");
    }
    for name in [
        "seed", "created", "starting", "running", "draining", "paused",
    ] {
        assert!(home.join("sandboxes").join(name).is_dir(), "{name}");
    }
    // msb reads back what we wrote.
    let out = msb::run(msb, home, &["ls"], Duration::from_secs(60));
    assert!(out.status.success(), "msb ls: {}", stderr(&out));
    Ok(())
}

/// Makes `dir` (a test's temporary directory) enterable by every user.
fn open_to_all(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `chown -R uid:GROUP path`.
fn chown_tree(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{GROUP}"))
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success());
}

#[test]
fn reads_serve_a_user_who_may_only_read_the_home() -> TestResult {
    if !user_as_expected() || !root_for("reading a home as another user") {
        return Ok(());
    }
    let Some(msb) = msb::msb() else {
        return Ok(());
    };
    let home = Home::new(msb);
    open_to_all(home.dir.path());
    let home = &home.path;
    add_every_status(home)?;
    let status = Command::new("chmod")
        .arg("-R")
        .arg("a+rX,go-w")
        .arg(home)
        .status()?;
    assert!(status.success());
    let before = snapshot(home);
    let as_root = text(ok(&run_in(home, None, &["status"])), home);
    let out = run_in(home, Some(USER), &["status"]);
    assert_eq!(text(ok(&out), home), as_root);
    let out = run_in(home, Some(USER), &["orphans", "--json"]);
    assert_eq!(json_field(&json(ok(&out)), "count"), "0");
    let out = run_in(home, Some(USER), &["sweep", "--dry-run", "--json"]);
    assert_eq!(json(ok(&out)), every_status_swept(true));
    assert_unchanged(&before, &snapshot(home));
    // A sweep writes: that user may not.
    let out = run_in(home, Some(USER), &["sweep"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_unchanged(&before, &snapshot(home));

    // Without the WAL index, which only a writer of the directory can make:
    // a clear error, and nothing changed.
    std::fs::remove_file(home.join("db/msb.db-shm"))?;
    let before = snapshot(home);
    let out = run_in(home, Some(USER), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let db = home.join("db/msb.db");
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: cannot be read read-only: its -wal or -shm file is missing, and only a \
             user who may write its directory can make them (any msb command run by the home's \
             owner does): unable to open database file\n",
            db.display()
        )
    );
    assert_unchanged(&before, &snapshot(home));
    Ok(())
}

/// Every path under `home` that `uid` does not own, or whose group is not
/// [`GROUP`]: `find HOME ! -user UID -o ! -group GID`.
fn not_owned_by(home: &Path, uid: u32) -> Vec<String> {
    snapshot(home)
        .into_iter()
        .filter(|(_, line)| !line.contains(&format!(" {uid}:{GROUP} ")))
        .map(|(path, line)| format!("{} {line}", path.display()))
        .collect()
}

#[test]
fn a_root_sweep_leaves_a_users_home_to_its_user_and_their_msb() -> TestResult {
    if !user_as_expected() || !root_for("sweeping another user's home as root") {
        return Ok(());
    }
    let Some(msb) = msb::msb() else {
        return Ok(());
    };
    let _one = msb::one_at_a_time();
    let dir = Home::new(msb);
    open_to_all(dir.dir.path());
    let home = &dir.path;
    add_every_status(home)?;
    // msb's own sandbox, `seed`, died Running: the sweep reaps it.
    let conn = Connection::open(home.join("db/msb.db"))?;
    conn.execute(
        "UPDATE sandbox SET status = 'Running' WHERE name = 'seed'",
        [],
    )?;
    conn.execute(
        "INSERT INTO run (sandbox_id, pid, status, started_at) SELECT id, ?1, 'Running', ?2 FROM sandbox WHERE name = 'seed'",
        params![DEAD, STAMP],
    )?;
    drop(conn);
    // A finished ephemeral sandbox holding a read-only tree, and an old
    // directory no row names.
    std::fs::create_dir_all(home.join("sandboxes/eph-stopped/ro/inner"))?;
    std::fs::create_dir_all(home.join("sandboxes/stray/x"))?;
    chown_tree(home, USER);
    let ro = home.join("sandboxes/eph-stopped/ro");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555))?;
    let touched = Command::new("touch")
        .args(["-h", "-d", "2026-01-01"])
        .arg(home.join("sandboxes/stray"))
        .status()?;
    assert!(touched.success());
    let modes_before: Vec<(PathBuf, u32)> =
        [home.join("sandboxes"), home.join("run"), home.clone()]
            .into_iter()
            .map(|p| {
                let mode = std::fs::metadata(&p).expect("stat").mode();
                (p, mode)
            })
            .collect();

    // Metrics where root asked, in a directory only root may write.
    let metrics_dir = tempfile::tempdir()?;
    let prom = metrics_dir.path().join("sandbox_sweep.prom");
    let prom_arg = prom.to_str().expect("utf8");
    let out = run_in(
        home,
        None,
        &["-v", "sweep", "--force", "--json", "--metrics", prom_arg],
    );
    let line = json(ok(&out));
    let metrics = std::fs::read_to_string(&prom)?;
    assert!(
        metrics.contains("\nsandbox_sweep_last_run_reconciled 4\n"),
        "{metrics}"
    );
    let meta = std::fs::metadata(&prom)?;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "the file is root's, as asked"
    );
    assert_eq!(json_field(&line, "reconciled"), "4", "{line}");
    assert_eq!(json_field(&line, "removed"), "2", "{line}");
    assert_eq!(json_field(&line, "errors"), "0", "{line}");
    assert!(
        stderr(&out).contains(&format!(
            "{}: acting as its owner, uid {USER} gid {GROUP}",
            home.display()
        )),
        "{}",
        stderr(&out)
    );
    let out = run_in(
        home,
        None,
        &["orphans", "--remove", "--older-than", "0s", "--json"],
    );
    let line = json_line(ok(&out));
    assert!(line.contains("sandboxes/stray\""), "{line}");
    assert!(!exists(&home.join("sandboxes/stray")), "{line}");
    ok(&run_in(home, None, &["status"]));
    ok(&run_in(home, None, &["sweep", "--dry-run"]));
    // Every path in the home is still the user's, and no directory that
    // this crate did not make changed its mode.
    assert_eq!(not_owned_by(home, USER), Vec::<String>::new());
    for (path, mode) in modes_before {
        assert_eq!(std::fs::metadata(&path)?.mode(), mode, "{}", path.display());
    }
    let beside: Vec<_> = std::fs::read_dir(dir.dir.path())?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(beside, ["home"], "nothing was made beside the home");
    let statuses = statuses(home);
    assert_eq!(statuses[0], ("seed".to_string(), "Crashed".to_string()));

    // The user's msb gets past its locks on that home: `start` on the
    // sandbox we reaped and `create` of a new one fail later, at boot
    // (no VM boots here), never on a lock file of ours.
    for args in [
        &["start", "seed"][..],
        &["create", "--name", "fresh", "local/busybox:latest"],
    ] {
        let out = as_user_msb(msb, home, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            !err.contains("Permission denied"),
            "msb {args:?} as {USER}: {err}"
        );
        assert!(
            !err.contains("os error 13"),
            "msb {args:?} as {USER}: {err}"
        );
    }
    // msb got as far as the row.
    let conn = Connection::open(home.join("db/msb.db"))?;
    let fresh: i64 = conn.query_row(
        "SELECT count(*) FROM sandbox WHERE name = 'fresh'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(fresh, 1);
    assert_eq!(not_owned_by(home, USER), Vec::<String>::new());
    Ok(())
}

#[test]
fn a_home_is_as_trusted_as_the_directories_on_the_way_to_it() -> TestResult {
    if !user_as_expected() || !root_for("judging a home's owner as root") {
        return Ok(());
    }
    let Some(msb) = msb::msb() else {
        return Ok(());
    };
    // A home of root's, in a directory the user owns (who could swap it
    // for one of their own at any instant): acted on as that user.
    let dir = tempfile::tempdir()?;
    open_to_all(dir.path());
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs)?;
    msb::copy_tree(&msb.template, &theirs.join("home"));
    chown_tree(&theirs, USER);
    chown_tree(&theirs.join("home"), 0);
    let home = theirs.join("home");
    let says = format!("acting as its owner, uid {USER} gid {GROUP}");
    let out = run_in(&home, None, &["-v", "status"]);
    assert!(stderr(&out).contains(&says), "{}", stderr(&out));
    // Named by --db alone, without a home, the same.
    let db = home.join("db/msb.db");
    let out = cli(&["-v", "status", "--db", db.to_str().expect("utf8")]);
    assert!(stderr(&out).contains(&says), "{}", stderr(&out));
    // Paths of two users at once: refused, nothing opened.
    let other = dir.path().join("other");
    std::fs::create_dir(&other)?;
    chown_tree(&other, 65534);
    let out = cli(&[
        "sweep",
        "--db",
        db.to_str().expect("utf8"),
        "--sandboxes-dir",
        other.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: belongs to uid 65534, and {} to uid {USER}: act as one user at a time\n",
            other.display(),
            theirs.display()
        )
    );
    Ok(())
}

/// `msb ARGS` as [`USER`] on `home`, bounded in time.
fn as_user_msb(msb: &Msb, home: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(CREATE_LIMIT.as_secs().to_string())
        .arg("setpriv")
        .arg(format!("--reuid={USER}"))
        .arg(format!("--regid={GROUP}"))
        .arg("--clear-groups")
        .arg(&msb.bin)
        .args(args)
        .env("MSB_HOME", home)
        .env("HOME", home.parent().expect("parent"))
        .stdin(Stdio::null());
    let out = cmd.output().expect("run msb");
    assert_ne!(
        out.status.code(),
        Some(124),
        "msb {args:?} ran past {CREATE_LIMIT:?}"
    );
    out
}

#[test]
fn symlinks_the_owner_plants_steer_a_root_sweep_nowhere() -> TestResult {
    if !user_as_expected() || !root_for("sweeping another user's home as root") {
        return Ok(());
    }
    let Some(msb) = msb::msb() else {
        return Ok(());
    };
    // Each place the owner may plant a link to a directory of root's,
    // which holds what a root sweep would act on there: directories named
    // as the finished ephemeral sandboxes, sockets' and locks' names.
    for place in [
        "run",
        "run/locks",
        "run/creation-locks",
        "sandboxes",
        &format!("sandboxes/{TRASH_DIR}"),
        "sandboxes/eph-stopped",
        "sandboxes/running/runtime",
    ] {
        let dir = Home::new(msb);
        open_to_all(dir.dir.path());
        let home = &dir.path;
        add_every_status(home)?;
        let target = dir.dir.path().join("roots");
        for inside in [
            "eph-stopped/x",
            "eph-crashed/x",
            "locks",
            "sandboxes",
            "agent",
        ] {
            std::fs::create_dir_all(target.join(inside))?;
        }
        std::fs::write(target.join("agent.sock"), b"root's")?;
        chown_tree(home, USER);
        let link = home.join(place);
        if link.exists() {
            std::fs::remove_dir_all(&link)?;
        }
        std::os::unix::fs::symlink(&target, &link)?;
        Command::new("chown")
            .arg("-h")
            .arg(format!("{USER}:{GROUP}"))
            .arg(&link)
            .status()?;
        let before = snapshot(&target);
        let swept = run_in(home, None, &["sweep", "--force", "--json"]);
        assert!(
            matches!(swept.status.code(), Some(0 | 1)),
            "{place}: {}",
            stderr(&swept)
        );
        let out = run_in(home, None, &["orphans", "--remove", "--older-than", "0s"]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{place}: {}",
            stderr(&out)
        );
        assert_eq!(
            snapshot(&target),
            before,
            "{place}: root's directory changed"
        );
        if place == "sandboxes/eph-stopped" {
            // A finished ephemeral sandbox's directory that is a link: the
            // link goes with its row, itself, never what it names.
            assert!(
                !exists(&link),
                "{place}: the link itself is removed: {} {}",
                stdout(&swept),
                stderr(&swept)
            );
        } else {
            assert!(link.is_symlink(), "{place}: the link itself stays");
        }
        assert_eq!(not_owned_by(home, USER), Vec::<String>::new(), "{place}");
    }
    Ok(())
}

/// The library's home, on a home msb made: found from `$MSB_HOME` as msb
/// finds it, then a read-only report, a sweep and a scan, one call each,
/// with what the CLI's own tests assert of the same home.
#[test]
fn the_library_home_reports_sweeps_and_scans_a_home_msb_made() -> TestResult {
    on_every_release(library_home)
}

fn library_home(msb: &Msb) -> TestResult {
    use sandbox_sweep::home::{HomeSource, MsbHome};
    let home = Home::new(msb);
    add_every_status(&home.path)?;
    let found = MsbHome::from_vars(|name| match name {
        "MSB_HOME" => Some(home.path.clone().into_os_string()),
        _ => None,
    })?;
    assert_eq!(
        (found.path(), found.source()),
        (home.path.as_path(), HomeSource::MsbHomeVar)
    );
    let before = snapshot(&home.path);
    let summary = found
        .open_catalog_read_only()?
        .summary_with(&found.summary_options(), |_| {
            Ok::<_, sandbox_sweep::Error>(())
        })?;
    assert_eq!(
        (
            summary.ephemeral_terminal,
            summary.dead_active.total,
            summary.abandoned_starts.total
        ),
        (2, 2, 1)
    );
    assert_eq!(summary.trash.as_ref().map(|t| t.entries.len()), Some(0));
    assert_eq!(
        found
            .orphan_scan()
            .scan(&found.open_catalog_read_only()?)?
            .entries
            .len(),
        0
    );
    assert_unchanged(&before, &snapshot(&home.path));
    let catalog = found.open_catalog()?;
    let report = swept(found.sweeper().force(true).run(&catalog));
    assert_eq!(
        (report.reconciled, report.removed, report.errors),
        (3, 2, 0),
        "{report:#}"
    );
    assert_eq!(report.end(), sandbox_sweep::SweepEnd::Complete);
    Ok(())
}
