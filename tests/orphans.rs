//! `orphans`: what no catalog row accounts for, found by a read-only scan.
//! Exact entries, sizes counted without following a symlink, held locks
//! seen, nothing written; and the same on a home the real msb made.

pub mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use sandbox_sweep::Result;
use sandbox_sweep::orphans::{OrphanKind, OrphanScan, Orphans};

/// A fixture with a run directory beside its sandboxes directory.
fn fixture() -> Result<(Fixture, PathBuf)> {
    let f = Fixture::new()?;
    let run = f.dir.path().join("run");
    for sub in ["locks", "creation-locks", "agent", "sandboxes"] {
        std::fs::create_dir_all(run.join(sub)).expect("mkdir");
    }
    Ok((f, run))
}

/// `sandbox-sweep orphans` on `f`'s catalog and sandboxes beside `run`,
/// then `extra`; never waits on stdin.
fn orphans(f: &Fixture, run: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = bin();
    cmd.arg("orphans")
        .arg("--db")
        .arg(f.db_path())
        .arg("--sandboxes-dir")
        .arg(&f.sandboxes)
        .arg("--run-dir")
        .arg(run)
        .args(extra)
        .stdin(std::process::Stdio::null());
    cmd
}

fn found(orphans: &Orphans) -> BTreeMap<PathBuf, (OrphanKind, bool)> {
    orphans
        .entries
        .iter()
        .map(|o| (o.path.clone(), (o.kind, o.lock_held)))
        .collect()
}

/// Every file and directory below `root`, with contents, to prove a scan
/// wrote nothing.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            // The catalog is compared by its rows: a reader touches `-shm`.
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("catalog.db")
            {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let content = if meta.is_dir() {
                stack.push(path.clone());
                b"<dir>".to_vec()
            } else if meta.file_type().is_symlink() {
                std::fs::read_link(&path)
                    .expect("readlink")
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                std::fs::read(&path).unwrap_or_default()
            };
            out.insert(path, content);
        }
    }
    out
}

#[test]
fn lists_exactly_what_no_row_accounts_for_and_writes_nothing() -> TestResult {
    let (f, run) = fixture()?;
    // Accounted for: a row's directory, a BLOB-named row's directory, and
    // a row's sockets and locks.
    f.sandbox("kept", "Stopped", false)?;
    f.mkdir("kept");
    let blob = f.sandbox("blobby", "Stopped", true)?;
    f.conn().execute(
        "UPDATE sandbox SET name = CAST('blobby' AS BLOB) WHERE id = ?1",
        [blob],
    )?;
    f.mkdir("blobby");
    std::fs::create_dir_all(run.join("sandboxes").join(&h16("kept")[..24]))?;
    std::fs::write(lock_at(&run, "locks", "kept", ".lock"), b"")?;
    // Not accounted for.
    let gone = f.mkdir("gone");
    std::fs::write(gone.join("big"), vec![7u8; 64 * 1024])?;
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("huge"), vec![1u8; 1024 * 1024])?;
    std::os::unix::fs::symlink(&outside, f.sandboxes.join("planted"))?;
    std::fs::write(f.sandboxes.join("stray-file"), b"not sandbox state")?;
    std::fs::create_dir_all(f.sandboxes.join(TRASH_DIR).join("17/rootfs"))?;
    let socket_dir = run.join("sandboxes").join(&h16("ghost")[..24]);
    std::fs::create_dir_all(&socket_dir)?;
    let legacy = run.join("agent").join(format!("{}.sock", h16("ghost")));
    std::fs::write(&legacy, b"")?;
    let lineage = lock_at(&run, "locks", "ghost", ".snapshot-lineage.lock");
    std::fs::write(&lineage, b"")?;
    // A launcher holds the creation lock of a sandbox that has no row yet.
    let launching = f.mkdir("launching");
    let creation = lock_at(&run, "creation-locks", "launching", ".lock");
    let _holder = Holder::at(&creation);
    // Names of no protocol's shape are not judged.
    std::fs::write(run.join("agent").join("README"), b"")?;

    let rows = |f: &Fixture| -> Result<String> {
        Ok(f.conn().query_row(
            "SELECT group_concat(id || typeof(name) || CAST(name AS TEXT) || status, ';') FROM sandbox",
            [],
            |r| r.get(0),
        )?)
    };
    let rows_before = rows(&f)?;
    let before = tree(f.dir.path());
    let orphans = OrphanScan::new(&f.sandboxes)
        .run_dir(&run)
        .scan(&f.catalog)?;
    assert!(tree(f.dir.path()) == before, "a scan writes nothing");
    assert_eq!(rows(&f)?, rows_before);

    let expected: BTreeMap<PathBuf, (OrphanKind, bool)> = [
        (gone.clone(), (OrphanKind::SandboxDir, false)),
        (f.sandboxes.join("planted"), (OrphanKind::SandboxDir, false)),
        (launching, (OrphanKind::SandboxDir, true)),
        (
            f.sandboxes.join(TRASH_DIR).join("17"),
            (OrphanKind::Trash, false),
        ),
        (socket_dir, (OrphanKind::SocketDir, false)),
        (legacy, (OrphanKind::LegacySocket, false)),
        (lineage, (OrphanKind::LockFile, false)),
        (creation, (OrphanKind::LockFile, true)),
    ]
    .into_iter()
    .collect();
    assert_eq!(found(&orphans), expected);
    assert!(orphans.complete && orphans.stopped_at.is_none());
    assert_eq!(orphans.errors, 0);
    let size = |path: &Path| {
        orphans
            .entries
            .iter()
            .find(|o| o.path == path)
            .map(|o| o.bytes)
            .expect("listed")
    };
    // Allocated bytes: the 64 KiB file and the tree around it; the symlink
    // is its own few bytes, never the megabyte it points at.
    assert!(size(&gone) >= 64 * 1024, "{}", size(&gone));
    assert!(size(&f.sandboxes.join("planted")) < 64 * 1024);
    assert_eq!(
        orphans.total_bytes(),
        orphans.entries.iter().map(|o| o.bytes).sum::<u64>()
    );
    assert!(orphans.entries.iter().all(|o| o.age.is_some()));
    Ok(())
}

#[test]
fn a_scan_out_of_budget_says_where_it_stopped() -> TestResult {
    let (f, run) = fixture()?;
    for i in 0..50 {
        f.mkdir(&format!("left-{i}"));
    }
    let orphans = OrphanScan::new(&f.sandboxes)
        .run_dir(&run)
        .budget(Duration::ZERO)
        .scan(&f.catalog)?;
    assert!(!orphans.complete);
    let at = orphans.stopped_at.as_ref().expect("where it stopped");
    assert!(at.starts_with(&f.sandboxes), "{}", at.display());
    assert!(orphans.entries.len() < 50);
    let text = orphans.to_string();
    assert!(
        text.contains("incomplete: the budget ran out at "),
        "{text}"
    );
    Ok(())
}

#[test]
fn the_cli_lists_them_in_text_and_json() -> TestResult {
    let (f, run) = fixture()?;
    f.sandbox("kept", "Stopped", false)?;
    f.mkdir("kept");
    f.mkdir("gone");
    let db = f.db_path();
    let args = |json: bool| {
        let mut args = vec![
            "orphans".to_owned(),
            "--db".into(),
            db.display().to_string(),
            "--sandboxes-dir".into(),
            f.sandboxes.display().to_string(),
            "--run-dir".into(),
            run.display().to_string(),
        ];
        if json {
            args.push("--json".into());
        }
        args
    };
    let text_args = args(false);
    let out = cli(&text_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("sandbox_dir"), "{text}");
    assert!(
        text.contains(&f.sandboxes.join("gone").display().to_string()),
        "{text}"
    );
    assert!(!text.contains("kept"), "{text}");
    assert!(text.contains("total: 1 orphan, "), "{text}");
    let json_args = args(true);
    let out = cli(&json_args.iter().map(String::as_str).collect::<Vec<_>>());
    let line = json_line(&out);
    assert_eq!(json_field(&line, "count"), "1");
    assert_eq!(json_field(&line, "complete"), "true");
    assert!(line.contains("\"kind\":\"sandbox_dir\""), "{line}");
    assert!(line.contains("\"lock_held\":false"), "{line}");
    Ok(())
}

#[test]
fn lock_files_without_a_row_are_summed_in_one_line_unless_all_are_asked_for() -> TestResult {
    let (f, run) = fixture()?;
    let locks: Vec<PathBuf> = (0..500)
        .map(|i| lock_at(&run, "locks", &format!("gone-{i}"), ".lock"))
        .collect();
    for lock in &locks {
        std::fs::write(lock, b"")?;
    }
    let base = [
        "orphans".to_owned(),
        "--db".into(),
        f.db_path().display().to_string(),
        "--sandboxes-dir".into(),
        f.sandboxes.display().to_string(),
        "--run-dir".into(),
        run.display().to_string(),
    ];
    let run_cli = |extra: &[&str]| {
        let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        out
    };
    let text = stdout(&run_cli(&[]));
    let lines: Vec<&str> = text.lines().collect();
    // Kind, size, the oldest one's age, then the count and why they stay.
    assert!(
        lines[1].starts_with("  lock_file            0 B "),
        "{text}"
    );
    assert!(
        lines[1].ends_with("s  500 without a row, kept: msb never deletes one (deleting a held one could give a sandbox two owners)"),
        "{text}"
    );
    assert!(lines[2].starts_with("total: 500 orphans, 0 B ("), "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    let every = stdout(&run_cli(&["--all"]));
    for lock in &locks {
        assert!(
            every.contains(&lock.display().to_string()),
            "{}",
            lock.display()
        );
    }
    assert_eq!(every.lines().count(), 502, "{every}");
    let line = json_line(&run_cli(&["--json"]));
    assert!(line.starts_with("{\"orphans\":[],\"count\":500,"), "{line}");
    assert!(
        line.contains(",\"lock_files\":{\"count\":500,\"bytes\":0,\"oldest_s\":"),
        "{line}"
    );
    assert_eq!(json_field(&line, "count"), "500");
    let line = json_line(&run_cli(&["--json", "--all"]));
    assert_eq!(line.matches("\"kind\":\"lock_file\"").count(), 500);
    let text = stdout(&run_cli(&["--remove"]));
    assert!(
        text.contains("\n  kept     500 lock files without a row: msb never deletes one"),
        "{text}"
    );
    assert!(!text.contains("kept     lock_file"), "{text}");
    for lock in &locks {
        assert!(exists(lock), "{}", lock.display());
    }
    Ok(())
}

#[test]
fn a_home_msb_made_has_no_orphans_until_one_is_left() -> TestResult {
    let Some(msb) = msb::msb() else {
        return Ok(());
    };
    let home = msb::Home::new(msb);
    let home_str = home.path.display().to_string();
    let scan = |home: &str| {
        let out = cli(&["orphans", "--home", home, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        json_line(&out)
    };
    // msb's own `seed` sandbox, its locks and its run directory: all
    // accounted for.
    let line = scan(&home_str);
    assert_eq!(json_field(&line, "count"), "0", "{line}");
    assert_eq!(json_field(&line, "complete"), "true", "{line}");
    // Its row goes (as after a hand-edited catalog); the directory stays.
    let conn = rusqlite::Connection::open(home.path.join("db/msb.db"))?;
    conn.execute("DELETE FROM run", [])?;
    conn.execute("DELETE FROM sandbox WHERE name = 'seed'", [])?;
    drop(conn);
    let line = scan(&home_str);
    assert!(
        line.contains(&format!(
            "\"kind\":\"sandbox_dir\",\"path\":\"{}\"",
            home.path.join("sandboxes/seed").display()
        )),
        "{line}"
    );
    Ok(())
}

/// The grace period the removal tests give: what they made before
/// [`older_than_grace`] is older, what they make after is young. An age
/// reads the newer of `st_mtime` and `st_ctime`, and nothing but time sets
/// `st_ctime` back, so the tests wait for it.
const GRACE: Duration = Duration::from_secs(2);

/// Waits until everything made so far is older than [`GRACE`].
fn older_than_grace() {
    std::thread::sleep(GRACE + Duration::from_millis(100));
}

/// A Unix socket at `path` with a listener, alive while the value is.
fn listener(path: &Path) -> std::os::unix::net::UnixListener {
    std::os::unix::net::UnixListener::bind(path).expect("bind")
}

/// A Unix socket file at `path` whose listener is gone.
fn dead_socket(path: &Path) {
    drop(listener(path));
}

#[test]
fn remove_takes_only_what_is_proven_safe_and_names_why_it_kept_the_rest() -> TestResult {
    let (f, run) = fixture()?;
    f.sandbox("kept", "Stopped", false)?;
    f.mkdir("kept");
    let gone = f.mkdir("gone");
    let owned = f.mkdir("owned");
    let _holder = Holder::new(&run, "owned");
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("precious"), b"keep")?;
    let planted = f.sandboxes.join("planted");
    std::os::unix::fs::symlink(&outside, &planted)?;
    let socket_dir = |name: &str| run.join("sandboxes").join(&h16(name)[..24]);
    // A runtime that died: every socket refuses.
    let ghost = socket_dir("ghost");
    std::fs::create_dir_all(&ghost)?;
    dead_socket(&ghost.join("agent.sock"));
    std::fs::write(ghost.join("control.sock"), b"")?;
    let legacy = run
        .join("agent")
        .join(format!("{}.control.sock", h16("ghost")));
    dead_socket(&legacy);
    let lock = lock_at(&run, "locks", "ghost", ".lock");
    std::fs::write(&lock, b"")?;
    // A runtime whose row is gone but which still listens, on each path.
    let live = socket_dir("live");
    std::fs::create_dir_all(&live)?;
    dead_socket(&live.join("control.sock"));
    let _live = listener(&live.join("agent.sock"));
    let live_legacy = run.join("agent").join(format!("{}.sock", h16("live")));
    let _live_legacy = listener(&live_legacy);
    // Not a runtime's: a file a runtime never makes.
    let odd = socket_dir("odd");
    std::fs::create_dir_all(&odd)?;
    std::fs::write(odd.join("notes.txt"), b"mine")?;
    older_than_grace();
    let fresh = f.mkdir("fresh");
    // A copy that kept its old modification time is still new.
    let copied = f.mkdir("copied");
    let old = std::fs::File::open(&copied)?;
    old.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))?;
    drop(old);

    let done = OrphanScan::new(&f.sandboxes)
        .run_dir(&run)
        .remove(&f.catalog, GRACE)?;
    let removed: BTreeMap<PathBuf, OrphanKind> = done
        .removed
        .iter()
        .map(|o| (o.path.clone(), o.kind))
        .collect();
    let expected_removed: BTreeMap<PathBuf, OrphanKind> = [
        (gone.clone(), OrphanKind::SandboxDir),
        (planted.clone(), OrphanKind::SandboxDir),
        (ghost.clone(), OrphanKind::SocketDir),
        (legacy.clone(), OrphanKind::LegacySocket),
    ]
    .into_iter()
    .collect();
    assert_eq!(removed, expected_removed, "kept: {:?}", done.kept);
    let kept: BTreeMap<PathBuf, &str> = done
        .kept
        .iter()
        .map(|(o, why)| (o.path.clone(), why.as_str()))
        .collect();
    let expected_kept: BTreeMap<PathBuf, &str> = [
        (fresh.clone(), "young"),
        (copied.clone(), "young"),
        (owned.clone(), "lock_held"),
        (lock.clone(), "lock_file"),
        (lock_at(&run, "locks", "owned", ".lock"), "lock_file"),
        (live.clone(), "listening"),
        (live_legacy.clone(), "listening"),
        (odd.clone(), "unknown_entries"),
    ]
    .into_iter()
    .collect();
    assert_eq!(kept, expected_kept);
    assert_eq!(done.deferred, 0);
    assert!(done.removed_bytes() > 0);
    // On disk: the removed are gone, the symlink's target untouched, the
    // rest as it was; lock files are never deleted.
    for path in [&gone, &planted, &ghost, &legacy] {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{}",
            path.display()
        );
    }
    assert_eq!(std::fs::read(outside.join("precious"))?, b"keep");
    for path in [&fresh, &copied, &owned, &f.sandboxes.join("kept")] {
        assert!(exists(&path.join("rootfs/data")), "{}", path.display());
    }
    assert!(exists(&live.join("agent.sock")) && exists(&live.join("control.sock")));
    assert!(exists(&live_legacy) && exists(&odd.join("notes.txt")) && exists(&lock));
    // The one lock file a removal makes is a removed directory's creation
    // lock, as msb's create would; a missing lifecycle or snapshot-lineage
    // lock is free and stays missing, and a socket's removal makes none.
    assert!(exists(&lock_at(&run, "creation-locks", "gone", ".lock")));
    for (dir, name, suffix) in [
        ("locks", "gone", ".lock"),
        ("locks", "gone", ".snapshot-lineage.lock"),
        ("creation-locks", "ghost", ".lock"),
        ("locks", "ghost", ".snapshot-lineage.lock"),
        ("locks", "live", ".lock"),
        ("creation-locks", "live", ".lock"),
    ] {
        let path = lock_at(&run, dir, name, suffix);
        assert!(!exists(&path), "made {}", path.display());
    }
    assert!(!exists(&f.sandboxes.join(TRASH_DIR)));
    Ok(())
}

#[test]
fn without_a_run_directory_no_sandbox_directory_is_removed() -> TestResult {
    let f = Fixture::new()?;
    let stray = f.mkdir("stray");
    let done = OrphanScan::new(&f.sandboxes).remove(&f.catalog, Duration::ZERO)?;
    let kept: Vec<(PathBuf, &str)> = done
        .kept
        .iter()
        .map(|(o, why)| (o.path.clone(), why.as_str()))
        .collect();
    assert_eq!(kept, [(stray.clone(), "no_run_dir")]);
    assert!(done.removed.is_empty());
    assert!(exists(&stray.join("rootfs/data")));
    Ok(())
}

#[test]
fn a_listening_socket_directory_stays_whatever_its_age() -> TestResult {
    let (f, run) = fixture()?;
    let dir = run.join("sandboxes").join(&h16("gone-row")[..24]);
    std::fs::create_dir_all(&dir)?;
    let _live = listener(&dir.join("agent.sock"));
    let out = orphans(&f, &run, &["--remove", "--older-than", "0s"]).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "  kept     socket_dir    {} (listening: something accepted a connection on one of its sockets: a live runtime)",
            dir.display()
        )),
        "{text}"
    );
    assert!(exists(&dir.join("agent.sock")));
    Ok(())
}

#[test]
fn the_cli_removes_on_request_only_and_rejects_a_bad_duration() -> TestResult {
    let (f, run) = fixture()?;
    let gone = f.mkdir("gone");
    older_than_grace();
    let cli = |extra: &[&str]| orphans(&f, &run, extra).output().expect("run the binary");
    let out = cli(&["--older-than", "1h"]);
    assert_eq!(out.status.code(), Some(2), "--older-than alone");
    let out = cli(&["--remove", "--older-than", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(exists(&gone.join("rootfs/data")));
    // Not old enough for a 3-hour grace period.
    let out = cli(&["--remove", "--older-than", "3h", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = json_line(&out);
    assert_eq!(json_field(&line, "removed_count"), "0", "{line}");
    assert!(line.contains("\"why\":\"young\""), "{line}");
    assert!(exists(&gone.join("rootfs/data")));
    let out = cli(&["--remove", "--older-than", "2s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("  removed  sandbox_dir"), "{text}");
    assert!(text.contains("reclaimed: 1 orphan, "), "{text}");
    assert!(!exists(&gone));
    Ok(())
}

#[test]
fn a_racing_creator_never_loses_a_directory() -> TestResult {
    let (f, run) = fixture()?;
    let db = f.db_path();
    let (sandboxes, run_dir) = (f.sandboxes.clone(), run.clone());
    const MADE: usize = 120;
    // A launcher, as microsandbox's: under the sandbox's creation lock,
    // the directory then the row, or the row then the directory.
    let creator = std::thread::spawn(move || -> rusqlite::Result<()> {
        let conn = rusqlite::Connection::open(&db)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        for i in 0..MADE {
            let name = format!("c-{i}");
            let lock = std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(lock_at(&run_dir, "creation-locks", &name, ".lock"))
                .expect("lock file");
            lock.lock().expect("flock");
            let insert = || {
                conn.execute(
                    "INSERT INTO sandbox (name, config, status, ephemeral) VALUES (?1, '{}', 'Starting', 0)",
                    [&name],
                )
            };
            let mkdir = || std::fs::create_dir(sandboxes.join(&name)).expect("mkdir");
            if i % 2 == 0 {
                mkdir();
                std::thread::sleep(Duration::from_millis(3));
                insert()?;
            } else {
                insert()?;
                std::thread::sleep(Duration::from_millis(3));
                mkdir();
            }
            drop(lock);
        }
        Ok(())
    });
    let (mut runs, mut saw_owner) = (0, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !creator.is_finished() && runs < 500 && std::time::Instant::now() < deadline {
        let out = orphans(&f, &run, &["--remove", "--older-than", "0s", "--json"]).output()?;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let line = json_line(&out);
        assert_eq!(json_field(&line, "removed_count"), "0", "{line}");
        saw_owner |= line.contains("\"why\":\"lock_held\"") || line.contains("\"why\":\"named\"");
        runs += 1;
    }
    creator.join().expect("creator thread")?;
    for i in 0..MADE {
        assert!(f.sandboxes.join(format!("c-{i}")).is_dir(), "c-{i}");
    }
    assert_eq!(f.count("SELECT count(*) FROM sandbox")?, MADE as i64);
    assert!(runs > 0);
    assert!(
        saw_owner,
        "no removal ran while a sandbox was being made ({runs} runs)"
    );
    Ok(())
}

#[test]
fn sigkill_at_any_instant_during_a_removal_loses_nothing_named_and_converges() -> TestResult {
    let (f, run) = fixture()?;
    let named: Vec<PathBuf> = (0..40)
        .map(|i| -> Result<PathBuf> {
            let name = format!("named-{i}");
            f.sandbox(&name, "Stopped", false)?;
            Ok(f.mkdir(&name))
        })
        .collect::<Result<_>>()?;
    for i in 0..300 {
        let dir = f.mkdir(&format!("orphan-{i}"));
        for j in 0..8 {
            std::fs::write(dir.join(format!("f{j}")), vec![0u8; 4096])?;
        }
    }
    older_than_grace();
    let db = f.db_path().display().to_string();
    let sandboxes = f.sandboxes.display().to_string();
    let remove = || orphans(&f, &run, &["--remove", "--older-than", "2s"]);
    // The kill comes later each time it came before the first removal, so
    // it finds the removal whatever the machine's load makes start-up cost
    // (a fixed range missed it on a busy CI machine).
    let mut delay = Duration::from_millis(2);
    let (mut killed_mid_removal, mut kills) = (0, 0);
    while killed_mid_removal < 4 && kills < 40 {
        let before = std::fs::read_dir(&f.sandboxes)?.count();
        let mut child = remove().stdout(std::process::Stdio::null()).spawn()?;
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait()?;
        kills += 1;
        let after = std::fs::read_dir(&f.sandboxes)?.count();
        for dir in &named {
            assert!(exists(&dir.join("rootfs/data")), "{} lost", dir.display());
        }
        if status.success() {
            break;
        }
        if after < before {
            killed_mid_removal += 1;
        } else {
            delay = delay * 3 / 2;
        }
    }
    println!("  {kills} kills, {killed_mid_removal} mid-removal (last delay {delay:?})");
    // A run to the end, then a sweep's purge of what a kill left in the trash.
    let out = remove().output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(&[
        "sweep",
        "--db",
        &db,
        "--sandboxes-dir",
        &sandboxes,
        "--force",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(&[
        "orphans",
        "--db",
        &db,
        "--sandboxes-dir",
        &sandboxes,
        "--json",
    ]);
    let line = json_line(&out);
    assert_eq!(json_field(&line, "count"), "0", "{line}");
    for dir in &named {
        assert!(exists(&dir.join("rootfs/data")), "{} lost", dir.display());
    }
    assert_eq!(std::fs::read_dir(&f.sandboxes)?.count(), named.len());
    assert!(
        killed_mid_removal > 0,
        "no kill landed mid-removal ({kills} kills, last delay {delay:?})"
    );
    Ok(())
}

#[test]
fn a_scan_of_100_000_directories_ends_within_its_budget() -> TestResult {
    let f = Fixture::new()?;
    // Half named by rows, half orphans.
    let tx = f.conn().unchecked_transaction()?;
    for i in 0..100_000 {
        let name = format!("d-{i}");
        std::fs::create_dir(f.sandboxes.join(&name))?;
        if i % 2 == 0 {
            tx.execute(
                "INSERT INTO sandbox (name, config, status, ephemeral) VALUES (?1, '{}', 'Stopped', 0)",
                [&name],
            )?;
        }
    }
    tx.commit()?;
    let budget = Duration::from_secs(10);
    let started = std::time::Instant::now();
    let found = OrphanScan::new(&f.sandboxes)
        .budget(budget)
        .scan(&f.catalog)?;
    let took = started.elapsed();
    assert!(found.complete, "stopped at {:?}", found.stopped_at);
    assert_eq!((found.examined, found.entries.len()), (100_000, 50_000));
    // A generous bound on the release binary; the bench keeps the figure.
    assert!(took < budget, "{took:?}");
    println!("  100,000 directories scanned in {took:?}");
    Ok(())
}
