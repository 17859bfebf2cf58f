//! `orphans`: what no catalog row accounts for, found by a read-only scan.
//! Exact entries, sizes counted without following a symlink, held locks
//! seen, nothing written; and the same on a home the real msb made.

mod common;

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
    assert!(text.contains("total: 1 orphans, "), "{text}");
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

/// Sets the modification time of `path` (not following a symlink) to
/// `secs` seconds ago, as `touch -h` does.
fn age_by(path: &Path, secs: u64) {
    let at = std::time::SystemTime::now() - Duration::from_secs(secs);
    let epoch = at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let status = std::process::Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{epoch}"))
        .arg(path)
        .status()
        .expect("run touch");
    assert!(status.success(), "touch {}", path.display());
}

#[test]
fn remove_takes_only_what_is_safe_and_names_why_it_kept_the_rest() -> TestResult {
    let (f, run) = fixture()?;
    f.sandbox("kept", "Stopped", false)?;
    age_by(&f.mkdir("kept"), 7200);
    let gone = f.mkdir("gone");
    age_by(&gone, 7200);
    let fresh = f.mkdir("fresh");
    let owned = f.mkdir("owned");
    age_by(&owned, 7200);
    let _holder = Holder::new(&run, "owned");
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("precious"), b"keep")?;
    let planted = f.sandboxes.join("planted");
    std::os::unix::fs::symlink(&outside, &planted)?;
    age_by(&planted, 7200);
    let socket_dir = run.join("sandboxes").join(&h16("ghost")[..24]);
    std::fs::create_dir_all(&socket_dir)?;
    std::fs::write(socket_dir.join("agent.sock"), b"")?;
    age_by(&socket_dir, 7200);
    let legacy = run
        .join("agent")
        .join(format!("{}.control.sock", h16("ghost")));
    std::fs::write(&legacy, b"")?;
    age_by(&legacy, 7200);
    let lock = lock_at(&run, "locks", "ghost", ".lock");
    std::fs::write(&lock, b"")?;
    age_by(&lock, 7200);

    let done = OrphanScan::new(&f.sandboxes)
        .run_dir(&run)
        .remove(&f.catalog, Duration::from_secs(3600))?;
    let removed: BTreeMap<PathBuf, OrphanKind> = done
        .removed
        .iter()
        .map(|o| (o.path.clone(), o.kind))
        .collect();
    let expected_removed: BTreeMap<PathBuf, OrphanKind> = [
        (gone.clone(), OrphanKind::SandboxDir),
        (planted.clone(), OrphanKind::SandboxDir),
        (socket_dir.clone(), OrphanKind::SocketDir),
        (legacy.clone(), OrphanKind::LegacySocket),
    ]
    .into_iter()
    .collect();
    assert_eq!(removed, expected_removed);
    let kept: BTreeMap<PathBuf, &str> = done
        .kept
        .iter()
        .map(|(o, why)| (o.path.clone(), why.as_str()))
        .collect();
    let lineage = lock_at(&run, "locks", "gone", ".snapshot-lineage.lock");
    assert_eq!(kept.get(&fresh).copied(), Some("young"));
    assert_eq!(kept.get(&owned).copied(), Some("lock_held"));
    assert_eq!(kept.get(&lock).copied(), Some("lock_file"));
    assert_eq!(done.deferred, 0);
    assert!(done.removed_bytes() > 0);
    // On disk: the removed are gone, the symlink's target untouched, the
    // rest as it was; lock files are never deleted (taking the orphan's
    // locks made its lock files, as microsandbox's own cleanup does).
    for path in [&gone, &planted, &socket_dir, &legacy] {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{}",
            path.display()
        );
    }
    assert_eq!(std::fs::read(outside.join("precious"))?, b"keep");
    for path in [&fresh, &owned, &f.sandboxes.join("kept")] {
        assert!(exists(&path.join("rootfs/data")), "{}", path.display());
    }
    assert!(exists(&lock) && exists(&lineage));
    assert!(!exists(&f.sandboxes.join(TRASH_DIR)));
    Ok(())
}

#[test]
fn the_cli_removes_on_request_only_and_rejects_a_bad_duration() -> TestResult {
    let (f, run) = fixture()?;
    let gone = f.mkdir("gone");
    age_by(&gone, 7200);
    let db = f.db_path().display().to_string();
    let sandboxes = f.sandboxes.display().to_string();
    let run_s = run.display().to_string();
    let base = [
        "orphans",
        "--db",
        &db,
        "--sandboxes-dir",
        &sandboxes,
        "--run-dir",
        &run_s,
    ];
    let out = cli(&[&base[..], &["--older-than", "1h"]].concat());
    assert_eq!(out.status.code(), Some(2), "--older-than alone");
    let out = cli(&[&base[..], &["--remove", "--older-than", "soon"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(exists(&gone.join("rootfs/data")));
    // Not old enough for a 3-hour grace period.
    let out = cli(&[&base[..], &["--remove", "--older-than", "3h", "--json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = json_line(&out);
    assert_eq!(json_field(&line, "removed_count"), "0", "{line}");
    assert!(line.contains("\"why\":\"young\""), "{line}");
    assert!(exists(&gone.join("rootfs/data")));
    let out = cli(&[&base[..], &["--remove"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("  removed  sandbox_dir"), "{text}");
    assert!(text.contains("reclaimed: 1 orphans, "), "{text}");
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
    let db_s = f.db_path().display().to_string();
    let sandboxes_s = f.sandboxes.display().to_string();
    let run_s = run.display().to_string();
    let (mut runs, mut saw_owner) = (0, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !creator.is_finished() && runs < 500 && std::time::Instant::now() < deadline {
        let out = cli(&[
            "orphans",
            "--db",
            &db_s,
            "--sandboxes-dir",
            &sandboxes_s,
            "--run-dir",
            &run_s,
            "--remove",
            "--older-than",
            "0s",
            "--json",
        ]);
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
    let f = Fixture::new()?;
    let named: Vec<PathBuf> = (0..40)
        .map(|i| -> Result<PathBuf> {
            let name = format!("named-{i}");
            f.sandbox(&name, "Stopped", false)?;
            let dir = f.mkdir(&name);
            age_by(&dir, 7200);
            Ok(dir)
        })
        .collect::<Result<_>>()?;
    for i in 0..300 {
        let dir = f.mkdir(&format!("orphan-{i}"));
        for j in 0..8 {
            std::fs::write(dir.join(format!("f{j}")), vec![0u8; 4096])?;
        }
        age_by(&dir, 7200);
    }
    let db = f.db_path().display().to_string();
    let sandboxes = f.sandboxes.display().to_string();
    let remove = [
        "orphans",
        "--db",
        &db,
        "--sandboxes-dir",
        &sandboxes,
        "--remove",
        "--older-than",
        "1h",
    ];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() as u64);
    println!("  (seed {seed})");
    let mut rng = seed;
    let mut killed_mid_removal = 0;
    for _ in 0..12 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((rng >> 33) % 40_000);
        let before = std::fs::read_dir(&f.sandboxes)?.count();
        let mut child = bin()
            .args(remove)
            .stdout(std::process::Stdio::null())
            .spawn()?;
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait()?;
        let after = std::fs::read_dir(&f.sandboxes)?.count();
        if !status.success() && after < before {
            killed_mid_removal += 1;
        }
        for dir in &named {
            assert!(exists(&dir.join("rootfs/data")), "{} lost", dir.display());
        }
    }
    // A run to the end, then a sweep's purge of what a kill left in the trash.
    let out = cli(&remove);
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
        "no kill landed mid-removal (seed {seed})"
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
