//! Beside today's microsandbox: lifecycle locks held by other processes,
//! runtime sockets, and finding microsandbox's home.

pub mod common;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use sandbox_sweep::lease::LEASE_DURATION;
use sandbox_sweep::rundir::*;
use sandbox_sweep::*;

struct Beside {
    f: Fixture,
    run: PathBuf,
}

impl Beside {
    fn new() -> Result<Beside> {
        let f = Fixture::new()?;
        let run = f.dir.path().join("run");
        std::fs::create_dir(&run).expect("mkdir run");
        Ok(Beside { f, run })
    }

    fn sweep(&self) -> Report {
        self.sweep_at(now())
    }

    /// A sweep whose clock reads `at`.
    fn sweep_at(&self, at: time::PrimitiveDateTime) -> Report {
        let sweeper = Sweeper::new(&self.f.sandboxes)
            .run_dir(&self.run)
            .force(true);
        swept(sweeper.run_with(&self.f.catalog, &|| at))
    }

    /// `sandbox-sweep status --db DB --run-dir RUN` and `extra`, which must
    /// exit 0; its whole stdout (the JSON object with `--json`).
    fn status(&self, extra: &[&str]) -> String {
        let (db, run) = (self.f.db_path(), self.run.clone());
        let mut args = vec!["status", "--db", db.to_str().expect("utf8")];
        args.extend(["--run-dir", run.to_str().expect("utf8")]);
        args.extend_from_slice(extra);
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    }

    /// Real bound Unix sockets at every path microsandbox may leave for
    /// sandbox `name`; the paths.
    fn sockets(&self, name: &str) -> Vec<PathBuf> {
        let paths = socket_paths(&self.run, &self.f.sandboxes, name);
        for path in &paths {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            // Bound, then dropped: the socket file stays, as a dead runtime's does.
            drop(UnixListener::bind(path).expect("bind"));
            assert!(exists(path));
        }
        paths
    }
}

#[test]
fn a_lock_held_by_another_process_stops_both_phases_until_it_is_released() -> Result<()> {
    let b = Beside::new()?;
    let dead = b.f.sandbox("held-running", "Running", false)?;
    b.f.run(dead, Some(DEAD_PID), "Running")?;
    let eph = b.f.sandbox("held-eph", "Stopped", true)?;
    let eph_dir = b.f.mkdir("held-eph");
    let free = b.f.sandbox("free", "Running", false)?;
    b.f.run(free, Some(DEAD_PID), "Running")?;
    let runtime = Holder::new(&b.run, "held-running");
    let cleaner = Holder::new(&b.run, "held-eph");
    let report = b.sweep();
    // The recorded pid is dead, but the lock says a live owner: hands off.
    assert_eq!((report.reconciled, report.removed), (1, 0));
    assert_eq!((report.lifecycle_owned, report.errors), (2, 0));
    assert_eq!(report.outcome(CleanupOutcome::LifecycleOwned), 1);
    assert_eq!(b.f.status(dead)?.as_deref(), Some("Running"));
    assert_eq!(b.f.status(eph)?.as_deref(), Some("Stopped"));
    assert!(exists(&eph_dir.join("rootfs/data")));
    assert_eq!(b.f.status(free)?.as_deref(), Some("Crashed"));
    // `status` beside the run dir tells a held lock from a dead runtime,
    // reading /proc/locks: it takes no lock, so the holders keep theirs.
    let line = b.status(&["--json"]);
    assert_eq!(json_field(&line, "dead_active_count"), "0", "{line}");
    assert_eq!(json_field(&line, "lifecycle_owned_count"), "1", "{line}");
    assert!(line.contains("\"name\":\"held-running\""), "{line}");
    assert!(try_lock_lifecycle(&b.run, "held-running")?.is_none());
    // `clean_ephemeral` beside the run dir respects it too.
    let catalog = &b.f.catalog;
    let sweeper = Sweeper::new(&b.f.sandboxes).run_dir(&b.run);
    assert_eq!(
        sweeper.clean_ephemeral(catalog, SandboxId::new(eph))?,
        CleanupOutcome::LifecycleOwned
    );
    // A holder killed with SIGKILL frees its lock; the next sweep acts.
    runtime.kill();
    cleaner.kill();
    let report = b.sweep();
    assert_eq!((report.reconciled, report.removed), (1, 1));
    assert_eq!(report.lifecycle_owned, 0);
    assert_eq!(b.f.status(dead)?.as_deref(), Some("Crashed"));
    assert_eq!(b.f.status(eph)?, None);
    assert!(!exists(&eph_dir));
    // Lock files are never deleted.
    assert!(lifecycle_lock_path(&b.run, "held-running").is_file());
    assert!(lifecycle_lock_path(&b.run, "held-eph").is_file());
    Ok(())
}

#[test]
fn dead_runtimes_sockets_go_and_live_ones_stay() -> Result<()> {
    let b = Beside::new()?;
    let dead = b.f.sandbox("dead", "Running", false)?;
    b.f.run(dead, Some(DEAD_PID), "Running")?;
    b.f.mkdir("dead");
    let dead_sockets = b.sockets("dead");
    let eph = b.f.sandbox("eph", "Crashed", true)?;
    b.f.mkdir("eph");
    let eph_sockets = b.sockets("eph");
    let live = b.f.sandbox("live", "Running", false)?;
    b.f.run(live, Some(own_pid()), "Running")?;
    b.f.mkdir("live");
    let live_sockets = b.sockets("live");
    let report = b.sweep();
    assert_eq!(
        (report.reconciled, report.removed, report.errors),
        (1, 1, 0)
    );
    assert_eq!(b.f.status(dead)?.as_deref(), Some("Crashed"));
    assert_eq!(b.f.status(eph)?, None);
    for path in dead_sockets.iter().chain(&eph_sockets) {
        assert!(!exists(path), "{} remains", path.display());
    }
    // The canonical <H12> directory goes once empty.
    assert!(!exists(&b.run.join("sandboxes").join(&h16("dead")[..24])));
    for path in &live_sockets {
        assert!(exists(path), "a live runtime lost {}", path.display());
    }
    assert_eq!(b.f.status(live)?.as_deref(), Some("Running"));
    Ok(())
}

/// A row kept because its runtime's files cannot be moved says why, with
/// the path and the error, without `-v`; nothing else is said.
#[test]
fn the_cli_says_why_a_row_was_kept_without_being_asked() -> Result<()> {
    let b = Beside::new()?;
    let dead = b.f.sandbox("dead", "Running", false)?;
    b.f.run(dead, Some(DEAD_PID), "Running")?;
    let place = b.f.sandboxes.join("dead");
    std::fs::write(&place, b"not a directory").expect("write");
    let (db, run) = (b.f.db_path(), b.run.clone());
    let sandboxes = b.f.sandboxes.display().to_string();
    let base = [
        "sweep",
        "--db",
        db.to_str().expect("utf8"),
        "--sandboxes-dir",
        &sandboxes,
        "--run-dir",
        run.to_str().expect("utf8"),
        "--force",
    ];
    let out = cli(&base);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "warning: sandbox \"dead\" (id {dead}): runtime files not removed, row kept: {}: \
             not a directory (a symlink or a file); never followed\n",
            place.display()
        )
    );
    assert!(stdout(&out).contains("errors 1"), "{}", stdout(&out));
    assert_eq!(b.f.status(dead)?.as_deref(), Some("Running"));
    // With -v, every record, this one included.
    let out = cli(&[&base[..], &["-v"]].concat());
    let text = stderr(&out);
    assert!(
        text.contains("[WARN sandbox_sweep::kept] sandbox \"dead\""),
        "{text}"
    );
    assert!(text.contains("[DEBUG "), "{text}");
    Ok(())
}

/// A runtime whose queue is full answers `EAGAIN`: busy is alive, for us
/// as for msb 0.7.11 (it retries until its 50 ms probe budget is spent,
/// then keeps the start).
#[test]
fn an_abandoned_start_whose_listener_is_busy_stays_starting() -> Result<()> {
    let b = Beside::new()?;
    let start = b.f.sandbox("busy", "Starting", false)?;
    b.f.mkdir("busy");
    let agent = b
        .run
        .join("sandboxes")
        .join(&h16("busy")[..24])
        .join("agent.sock");
    std::fs::create_dir_all(agent.parent().expect("parent")).expect("mkdir");
    let held = busy_listener(&agent);
    let report = b.sweep();
    assert_eq!((report.reconciled, report.errors), (0, 0));
    assert_eq!(b.f.status(start)?.as_deref(), Some("Starting"));
    assert!(exists(&agent));
    drop(held);
    let report = b.sweep();
    assert_eq!((report.reconciled, report.errors), (1, 0));
    assert_eq!(b.f.status(start)?.as_deref(), Some("Crashed"));
    assert!(!exists(&agent));
    Ok(())
}

#[test]
fn a_symlink_planted_at_a_socket_entry_is_unlinked_never_followed() -> Result<()> {
    let b = Beside::new()?;
    let dead = b.f.sandbox("dead", "Running", false)?;
    b.f.run(dead, Some(DEAD_PID), "Running")?;
    let outside = b.f.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("agent.sock"), b"keep").expect("write");
    std::fs::write(outside.join("control.sock"), b"keep").expect("write");
    let canonical = b.run.join("sandboxes");
    std::fs::create_dir(&canonical).expect("mkdir");
    let h12 = canonical.join(&h16("dead")[..24]);
    std::os::unix::fs::symlink(&outside, &h12).expect("symlink");
    let report = b.sweep();
    assert_eq!((report.reconciled, report.errors), (1, 0));
    assert!(!exists(&h12), "the planted symlink is removed");
    assert_eq!(
        std::fs::read(outside.join("agent.sock")).expect("kept"),
        b"keep"
    );
    assert_eq!(
        std::fs::read(outside.join("control.sock")).expect("kept"),
        b"keep"
    );
    Ok(())
}

/// Msb fails (`not an owned directory`) where `<run>/sandboxes` or
/// `<run>/agent` is a symlink or a file, and keeps the row; so do we, and
/// nothing is done through the symlink. Once the shape is put right, the
/// next sweep reaps the row and its sockets.
#[test]
fn a_socket_folder_that_is_a_symlink_or_a_file_keeps_the_row_until_it_is_put_right() -> Result<()> {
    for (folder, as_symlink) in [
        ("agent", true),
        ("agent", false),
        ("sandboxes", true),
        ("sandboxes", false),
    ] {
        let b = Beside::new()?;
        let dead = b.f.sandbox("dead", "Running", false)?;
        b.f.run(dead, Some(DEAD_PID), "Running")?;
        b.f.mkdir("dead");
        let sockets = b.sockets("dead");
        let place = b.run.join(folder);
        let outside = b.f.dir.path().join("outside");
        std::fs::rename(&place, &outside).expect("move the folder away");
        if as_symlink {
            std::os::unix::fs::symlink(&outside, &place).expect("symlink");
        } else {
            std::fs::write(&place, b"not a folder").expect("write");
        }
        let report = b.sweep();
        let case = format!("<run>/{folder}, symlink {as_symlink}");
        assert_eq!((report.reconciled, report.errors), (0, 1), "{case}");
        assert_eq!(b.f.status(dead)?.as_deref(), Some("Running"), "{case}");
        let listing: Vec<String> = std::fs::read_dir(&outside)
            .expect("read the folder moved away")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!listing.is_empty(), "{case}: emptied through the symlink");
        // The other places were still tried, as msb tries them.
        let fallback = b.f.sandboxes.join("dead/runtime/agent.sock");
        assert!(sockets.contains(&fallback) && !exists(&fallback), "{case}");
        std::fs::remove_file(&place).expect("remove the odd entry");
        std::fs::rename(&outside, &place).expect("put the folder back");
        let report = b.sweep();
        assert_eq!((report.reconciled, report.errors), (1, 0), "{case}");
        assert_eq!(b.f.status(dead)?.as_deref(), Some("Crashed"), "{case}");
        for path in &sockets {
            assert!(!exists(path), "{case}: {} remains", path.display());
        }
    }
    Ok(())
}

#[test]
fn a_lock_path_that_is_a_symlink_is_an_error_and_nothing_is_touched() -> Result<()> {
    let b = Beside::new()?;
    let dead = b.f.sandbox("dead", "Running", false)?;
    b.f.run(dead, Some(DEAD_PID), "Running")?;
    let eph = b.f.sandbox("eph", "Stopped", true)?;
    let dir = b.f.mkdir("eph");
    let target = b.f.dir.path().join("target");
    std::fs::write(&target, b"not a lock").expect("write");
    std::fs::create_dir(b.run.join("locks")).expect("mkdir");
    for name in ["dead", "eph"] {
        std::os::unix::fs::symlink(&target, lifecycle_lock_path(&b.run, name)).expect("symlink");
    }
    let report = b.sweep();
    assert_eq!(
        (report.reconciled, report.removed, report.errors),
        (0, 0, 2)
    );
    assert_eq!(report.outcome(CleanupOutcome::LockFailed), 1);
    assert_eq!(b.f.status(dead)?.as_deref(), Some("Running"));
    assert_eq!(b.f.status(eph)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir.join("rootfs/data")));
    assert_eq!(std::fs::read(&target).expect("target"), b"not a lock");
    Ok(())
}

#[test]
fn a_batch_never_holds_more_locks_than_the_open_file_limit_allows() -> Result<()> {
    let b = Beside::new()?;
    for i in 0..600 {
        let id = b.f.sandbox(&format!("s{i}"), "Running", false)?;
        b.f.run(id, Some(DEAD_PID), "Running")?;
    }
    // 600 rows, one batch of 512 by default, under a soft limit of 256 open
    // files: the sweep commits whenever it holds 64 locks.
    let limit = shell_open_file_limit();
    let out = Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_sandbox-sweep"))
        .args(["sweep", "--db"])
        .arg(b.f.db_path())
        .arg("--sandboxes-dir")
        .arg(&b.f.sandboxes)
        .arg("--run-dir")
        .arg(&b.run)
        .args([
            "--force",
            "--json",
            "--max-active",
            "1000",
            "--budget-ms",
            "10000",
        ])
        .output()
        .expect("run the sweep");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} (limit was {limit:?})",
        stderr(&out)
    );
    let line = json_line(&out);
    assert_eq!(json_field(&line, "reconciled"), "600", "{line}");
    assert_eq!(json_field(&line, "errors"), "0", "{line}");
    Ok(())
}

fn shell_open_file_limit() -> Option<String> {
    let out = Command::new("sh").args(["-c", "ulimit -n"]).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn the_cli_finds_microsandbox_home_from_msb_home_or_home() -> TestResult {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("msb");
    for sub in ["db", "sandboxes", "run"] {
        std::fs::create_dir_all(home.join(sub))?;
    }
    let conn = sandbox_sweep::open(home.join("db/msb.db"))?;
    sandbox_sweep::migrate(&conn)?;
    let (dead, eph) = {
        let dead = add_sandbox(&conn, "dead", "Running", false);
        add_run(&conn, dead, Some(DEAD_PID));
        let eph = add_sandbox(&conn, "eph", "Stopped", true);
        std::fs::create_dir(home.join("sandboxes/eph"))?;
        (dead, eph)
    };
    let run = |args: &[&str], envs: &[(&str, &Path)]| {
        let mut cmd = bin();
        cmd.args(args).env_remove("MSB_HOME").stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("run")
    };
    // No arguments: $MSB_HOME, used verbatim.
    let out = run(&["status", "--json"], &[("MSB_HOME", &home)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(json_line(&out).contains("\"dead_active_count\":1"));
    // Without $MSB_HOME: ~/.microsandbox.
    let fake_home = dir.path().join("user");
    std::fs::create_dir(&fake_home)?;
    std::os::unix::fs::symlink(&home, fake_home.join(".microsandbox"))?;
    let out = run(&["sweep", "--json"], &[("HOME", &fake_home)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_field(&json_line(&out), "reconciled"), "1");
    assert_eq!(status_of(&conn, dead).as_deref(), Some("Crashed"));
    assert_eq!(status_of(&conn, eph), None);
    // The lock protocol ran in <home>/run.
    assert!(lifecycle_lock_path(&home.join("run"), "dead").is_file());
    // --home wins over the environment; errors name the resolved path.
    let elsewhere = dir.path().join("nowhere");
    let out = run(
        &["status", "--home", elsewhere.to_str().ok_or("utf8")?],
        &[("MSB_HOME", &home)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: no such microsandbox home (--home)\n",
            elsewhere.display()
        )
    );
    Ok(())
}

/// The sandbox's `(status, active_config, network_slot)`.
fn runtime_fields(f: &Fixture, id: i64) -> Result<(String, Option<String>, Option<i64>)> {
    Ok(f.conn().query_row(
        "SELECT status, active_config, network_slot FROM sandbox WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}

#[test]
fn starting_rows_are_reconciled_as_microsandbox_0_7_11_does() -> Result<()> {
    let b = Beside::new()?;
    // As microsandbox's migration m20260818 adds it.
    b.f.conn().execute_batch(
        "ALTER TABLE sandbox ADD COLUMN network_slot INTEGER
             CHECK (network_slot IS NULL OR (typeof(network_slot) = 'integer' AND network_slot BETWEEN 1 AND 65535));
         CREATE UNIQUE INDEX idx_sandbox_network_slot_unique ON sandbox (network_slot) WHERE network_slot IS NOT NULL;",
    )?;
    let mut slot = 0;
    let mut sandbox = |name: &str, status: &str| -> Result<i64> {
        let id = b.f.sandbox(name, status, false)?;
        slot += 1;
        b.f.conn().execute(
            "UPDATE sandbox SET network_slot = ?2 WHERE id = ?1",
            [id, slot],
        )?;
        b.f.mkdir(name);
        std::fs::create_dir_all(b.f.sandboxes.join(name).join(".bootstrap-rootfs/bin"))
            .expect("mkdir");
        Ok(id)
    };
    let dead_start = sandbox("dead-start", "Starting")?;
    let dead_run = b.f.run(dead_start, Some(DEAD_PID), "Running")?;
    let abandoned = sandbox("abandoned", "Starting")?;
    let listening = sandbox("listening", "Starting")?;
    let launching = sandbox("launching", "Starting")?;
    let created = sandbox("created-held", "Running")?;
    b.f.run(created, Some(DEAD_PID), "Running")?;
    let crashed = sandbox("crashed", "Running")?;
    b.f.run(crashed, Some(DEAD_PID), "Running")?;
    let draining = sandbox("draining", "Draining")?;
    let dead_sockets = b.sockets("dead-start");
    let abandoned_sockets = b.sockets("abandoned");
    // A display socket beside the canonical pair goes with them.
    let h12 = &h16("dead-start")[..24];
    let display = b.run.join("sandboxes").join(h12).join("display.sock");
    std::fs::write(&display, b"").expect("display.sock");
    // A runtime older than the locks answers on its endpoint.
    let live_endpoint = b.run.join("sandboxes").join(&h16("listening")[..24]);
    std::fs::create_dir_all(&live_endpoint).expect("mkdir");
    let _listener = UnixListener::bind(live_endpoint.join("agent.sock")).expect("bind");
    let _launcher = Holder::at(&lock_at(&b.run, "creation-locks", "launching", ".lock"));
    let _creator = Holder::at(&lock_at(&b.run, "creation-locks", "created-held", ".lock"));

    // Without a run directory there is no evidence about a start with no
    // run: it stays. A dead run is evidence enough (and a dry run takes no
    // lock, so the held creation lock is not seen).
    let catalog = &b.f.catalog;
    let report = Sweeper::new(&b.f.sandboxes).dry_run(catalog, &now)?;
    assert_eq!((report.reconciled, report.abandoned), (4, 0), "{report}");
    // Beside it, a dry run probes the endpoints (the listening start is
    // live) and reads which locks are held, taking none: the launching
    // start and the created row are owned, as the sweep will find them.
    let beside = Sweeper::new(&b.f.sandboxes).run_dir(&b.run);
    let report = beside.dry_run(catalog, &now)?;
    assert_eq!(
        (report.reconciled, report.abandoned, report.lifecycle_owned),
        (4, 1, 2),
        "{report}"
    );

    // `status` sorts them the way the sweep will act, taking no lock.
    let sandboxes = b.f.sandboxes.to_str().expect("utf8");
    let line = b.status(&["--sandboxes-dir", sandboxes, "--json"]);
    assert_eq!(json_field(&line, "dead_active_count"), "3", "{line}");
    assert_eq!(json_field(&line, "lifecycle_owned_count"), "2", "{line}");
    assert_eq!(json_field(&line, "abandoned_starts_count"), "1", "{line}");
    let entry = format!(
        "{{\"list\":\"abandoned_starts\",\"id\":{abandoned},\"name\":\"abandoned\",\"status\":\"Starting\",\"reason\":\"no_running_run\"}}"
    );
    assert!(line.contains(&entry), "{line}");
    let text = b.status(&[]);
    let heading = "abandoned starts (Starting, no run, no lock held, no endpoint answering): 1";
    assert!(text.contains(heading), "{text}");
    assert!(
        text.contains(&format!("#{abandoned:<6} \"abandoned\"")),
        "{text}"
    );

    let report = b.sweep();
    assert_eq!(
        (
            report.reconciled,
            report.crashed,
            report.stopped,
            report.abandoned
        ),
        (4, 3, 1, 1),
        "{report}"
    );
    assert_eq!((report.lifecycle_owned, report.errors), (2, 0), "{report}");
    let terminal = |status: &str| (status.to_owned(), None, None);
    assert_eq!(runtime_fields(&b.f, dead_start)?, terminal("Crashed"));
    assert_eq!(
        b.f.run_row(dead_run)?.map(|r| (r.0, r.1)),
        Some(("Terminated".into(), Some("InternalError".into())))
    );
    assert_eq!(runtime_fields(&b.f, abandoned)?, terminal("Crashed"));
    assert_eq!(runtime_fields(&b.f, crashed)?, terminal("Crashed"));
    assert_eq!(runtime_fields(&b.f, draining)?, terminal("Stopped"));
    let kept = |status: &str, slot| {
        (
            status.to_owned(),
            Some("{\"cpus\":1}".to_owned()),
            Some(slot),
        )
    };
    assert_eq!(runtime_fields(&b.f, listening)?, kept("Starting", 3));
    assert_eq!(runtime_fields(&b.f, launching)?, kept("Starting", 4));
    assert_eq!(runtime_fields(&b.f, created)?, kept("Running", 5));
    for path in dead_sockets
        .iter()
        .chain(&abandoned_sockets)
        .chain([&display])
    {
        assert!(!exists(path), "{} stayed", path.display());
    }
    assert!(!exists(&b.run.join("sandboxes").join(h12)));
    for name in ["dead-start", "abandoned", "crashed", "draining"] {
        assert!(
            !exists(&b.f.sandboxes.join(name).join(".bootstrap-rootfs")),
            "{name}"
        );
        assert!(
            exists(&b.f.sandboxes.join(name).join("rootfs/data")),
            "{name}"
        );
    }
    for name in ["listening", "launching", "created-held"] {
        assert!(
            exists(&b.f.sandboxes.join(name).join(".bootstrap-rootfs/bin")),
            "{name}"
        );
    }
    assert!(exists(&live_endpoint.join("agent.sock")));
    // Lock files of both kinds stay; a held creation lock stops the claim
    // before the lifecycle lock is even opened.
    for name in ["dead-start", "abandoned", "launching"] {
        assert!(
            lock_at(&b.run, "creation-locks", name, ".lock").is_file(),
            "{name}"
        );
    }
    assert!(lifecycle_lock_path(&b.run, "abandoned").is_file());
    assert!(!exists(&lifecycle_lock_path(&b.run, "launching")));
    Ok(())
}

#[test]
fn a_snapshot_capture_keeps_its_sandbox_until_it_is_published() -> Result<()> {
    let b = Beside::new()?;
    let eph = b.f.sandbox("captured", "Stopped", true)?;
    let dir = b.f.mkdir("captured");
    let lineage = lock_at(&b.run, "locks", "captured", ".snapshot-lineage.lock");
    let capture = Holder::at(&lineage);
    let report = b.sweep();
    assert_eq!((report.removed, report.errors), (0, 0), "{report}");
    assert_eq!(report.outcome(CleanupOutcome::SnapshotInProgress), 1);
    assert!(exists(&dir.join("rootfs/data")));
    let catalog = &b.f.catalog;
    let sweeper = Sweeper::new(&b.f.sandboxes).run_dir(&b.run);
    assert_eq!(
        sweeper.clean_ephemeral(catalog, SandboxId::new(eph))?,
        CleanupOutcome::SnapshotInProgress
    );
    capture.kill();
    let report = b.sweep();
    assert_eq!(report.removed, 1, "{report}");
    assert_eq!(b.f.status(eph)?, None);
    assert!(!exists(&dir));
    assert!(lineage.is_file(), "a lock file is never deleted");
    Ok(())
}

#[test]
fn a_huge_bootstrap_root_never_holds_the_write_lock_and_one_sweep_reaps_its_row() -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let b = Beside::new()?;
    let dead = b.f.sandbox("big", "Running", false)?;
    b.f.run(dead, Some(DEAD_PID), "Running")?;
    let other = b.f.sandbox("other", "Stopped", false)?;
    // 75,000 files in 300 folders: a real root file system's order.
    // On a tmpfs where it may (root): 75,000 files on this machine's disk
    // take half a minute to make. The sweep's system calls are the same.
    let _fast =
        is_root().then(|| Mount::new(&["-t", "tmpfs", "tmpfs"], &b.f.sandboxes, "mount a tmpfs"));
    let root = b.f.sandboxes.join("big/.bootstrap-rootfs");
    for d in 0..300 {
        let dir = root.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..250 {
            std::fs::write(dir.join(format!("f{f}")), b"").expect("write");
        }
    }
    std::fs::write(b.f.sandboxes.join("big/config.json"), b"{}").expect("write");
    // A runtime beside the sweep, writing all along: its longest wait for
    // the write lock.
    let done = AtomicBool::new(false);
    let db = b.f.db_path();
    let longest = std::thread::scope(|s| {
        let writer = s.spawn(|| -> rusqlite::Result<Duration> {
            let conn = rusqlite::Connection::open(&db)?;
            conn.busy_timeout(Duration::from_secs(10))?;
            let mut longest = Duration::ZERO;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                let asked = Instant::now();
                conn.execute_batch("BEGIN IMMEDIATE")?;
                longest = longest.max(asked.elapsed());
                conn.execute(
                    "UPDATE sandbox SET updated_at = ?1 WHERE id = ?2",
                    rusqlite::params![format!("{:?}", asked), other],
                )?;
                conn.execute_batch("COMMIT")?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(longest)
        });
        let report = b.sweep();
        done.store(true, Ordering::Relaxed);
        let longest = writer
            .join()
            .expect("the writer")
            .expect("the writer's statements");
        (report, longest)
    });
    let (report, longest) = longest;
    // One sweep reaps the row; its bootstrap root waits in the trash.
    assert_eq!((report.reconciled, report.errors), (1, 0), "{report:#}");
    assert_eq!(b.f.status(dead)?.as_deref(), Some("Crashed"));
    assert!(!exists(&root), "moved out of the sandbox in one rename");
    assert!(exists(&b.f.sandboxes.join("big/config.json")));
    assert!(
        longest < Duration::from_millis(50),
        "a writer waited {longest:?} for the write lock"
    );
    // Later sweeps delete the rest within their budgets.
    let trash = b.f.sandboxes.join(TRASH_DIR);
    // Each a lease's life apart: a release that found the writer holding
    // the write lock past the budget (a loaded machine) leaves the lease
    // to expire, and the fixture's clock would never get there.
    let mut later = 0;
    for _ in 0..100 {
        if !exists(&trash) {
            break;
        }
        later += 1;
        b.sweep_at(now() + LEASE_DURATION * later);
    }
    assert!(!exists(&trash), "the trash was never emptied");
    println!(
        "  75,000 files: one sweep reaped the row; the writer's longest wait {longest:?}; \
         {later} later sweeps emptied the trash"
    );
    assert_eq!(b.f.status(dead)?.as_deref(), Some("Crashed"));
    Ok(())
}
