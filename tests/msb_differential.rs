//! Against the real microsandbox, each release users run (0.6.18, 0.7.0,
//! 0.7.11): one catalog that msb made, holding every kind of row, copied;
//! msb's own startup maintenance sweeps one copy and `sandbox-sweep sweep`
//! the other, and they must end the same but for the differences listed
//! per release. Then a real runtime booting beside our sweep, and msb
//! reading back what we wrote. `tests/msb/setup.sh` fetches each release
//! (see `common::msb`).

pub mod common;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::msb::{self, Home, Msb};
use common::*;
use rusqlite::{Connection, OptionalExtension, params};
use sandbox_sweep::process::ProcessIdentity;

/// How long one `msb create` may take here (its VM fails at boot after
/// about 20 s).
const CREATE_LIMIT: Duration = Duration::from_secs(180);

/// msb writes 9 fraction digits.
const STAMP: &str = "2026-12-03 10:00:00.123456789";

/// The process a row's `Running` run records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// No run at all.
    None,
    /// A pid no process has.
    Dead,
    /// A `Running` run with a NULL pid.
    NullPid,
    /// The test's live child.
    Live,
    /// The live child's pid, with a start time it does not have: the pid
    /// was reused by an unrelated process.
    Reused,
    /// The live child's pid, recorded in an earlier boot.
    Rebooted,
}

/// What a case's sandbox has on disk or in its run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    Nothing,
    /// Socket files left by a dead runtime at all six paths.
    Sockets,
    /// Those and a `display.sock` in the canonical directory.
    Display,
    /// A runtime older than the locks, listening on its canonical socket.
    Listening,
    /// Listening on its legacy (`<run>/agent/<H16>.sock`) or fallback
    /// (`<sandbox>/runtime/agent.sock`) path: [`sockets_in`]'s index.
    ListeningAt(usize),
    /// A lock held by another process (a lock folder and a file suffix).
    Held(&'static str, &'static str),
    /// Socket files at all six paths, and a file no runtime makes in the
    /// canonical directory.
    Unknown,
    /// No sandbox directory at all.
    NoDir,
    /// The sandbox directory is a symlink to a directory elsewhere, which
    /// holds a bootstrap root and fallback sockets.
    DirSymlink,
    /// A regular file where the sandbox directory should be.
    DirFile,
}

const LIFECYCLE: Extra = Extra::Held("locks", ".lock");
const CREATION: Extra = Extra::Held("creation-locks", ".lock");
const LINEAGE: Extra = Extra::Held("locks", ".snapshot-lineage.lock");

/// One kind of row, and how both sweeps leave it.
struct Case {
    name: &'static str,
    status: &'static str,
    ephemeral: bool,
    run: Run,
    extra: Extra,
    /// The sandbox's status afterwards, or `None` when its rows are removed.
    expect: Option<&'static str>,
    /// The run's `(status, termination_reason)` afterwards.
    expect_run: Option<(&'static str, Option<&'static str>)>,
    /// Where msb 0.7.11 ends otherwise, on purpose, and why.
    msb_differs: Option<(Option<&'static str>, &'static str)>,
}

const RUNNING: Option<(&str, Option<&str>)> = Some(("Running", None));
const CRASHED_RUN: Option<(&str, Option<&str>)> = Some(("Terminated", Some("InternalError")));
const STOPPED_RUN: Option<(&str, Option<&str>)> = Some(("Terminated", Some("ShutdownRequested")));

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Phase 1: Running.
    Case { name: "running-dead", status: "Running", ephemeral: false, run: Run::Dead, extra: Extra::Sockets, expect: Some("Crashed"), expect_run: CRASHED_RUN, msb_differs: None },
    // On purpose: msb 0.7.11 (and 0.7.13's source) unlinks agent.sock and
    // control.sock, then cannot remove the <H12> directory that still holds
    // display.sock, counts an error and leaves the row Running, every sweep.
    Case { name: "running-dead-display", status: "Running", ephemeral: false, run: Run::Dead, extra: Extra::Display, expect: Some("Crashed"), expect_run: CRASHED_RUN,
        msb_differs: Some((Some("Running"), "display.sock in the canonical directory: msb fails to remove the directory and keeps the row Running; we remove display.sock with the pair")) },
    Case { name: "running-null-pid", status: "Running", ephemeral: false, run: Run::NullPid, extra: Extra::Nothing, expect: Some("Crashed"), expect_run: CRASHED_RUN, msb_differs: None },
    Case { name: "running-live", status: "Running", ephemeral: false, run: Run::Live, extra: Extra::Nothing, expect: Some("Running"), expect_run: RUNNING, msb_differs: None },
    Case { name: "running-no-run", status: "Running", ephemeral: false, run: Run::None, extra: Extra::Nothing, expect: Some("Running"), expect_run: None, msb_differs: None },
    Case { name: "running-dead-lifecycle-held", status: "Running", ephemeral: false, run: Run::Dead, extra: LIFECYCLE, expect: Some("Running"), expect_run: RUNNING, msb_differs: None },
    Case { name: "running-dead-creation-held", status: "Running", ephemeral: false, run: Run::Dead, extra: CREATION, expect: Some("Running"), expect_run: RUNNING, msb_differs: None },
    // Phase 1: Draining.
    Case { name: "draining-dead", status: "Draining", ephemeral: false, run: Run::Dead, extra: Extra::Sockets, expect: Some("Stopped"), expect_run: STOPPED_RUN, msb_differs: None },
    Case { name: "draining-no-run", status: "Draining", ephemeral: false, run: Run::None, extra: Extra::Nothing, expect: Some("Stopped"), expect_run: None, msb_differs: None },
    Case { name: "draining-live", status: "Draining", ephemeral: false, run: Run::Live, extra: Extra::Nothing, expect: Some("Draining"), expect_run: RUNNING, msb_differs: None },
    // Phase 1: Starting (new in 0.7.11's rules).
    Case { name: "starting-dead", status: "Starting", ephemeral: false, run: Run::Dead, extra: Extra::Sockets, expect: Some("Crashed"), expect_run: CRASHED_RUN, msb_differs: None },
    Case { name: "starting-live", status: "Starting", ephemeral: false, run: Run::Live, extra: Extra::Nothing, expect: Some("Starting"), expect_run: RUNNING, msb_differs: None },
    Case { name: "starting-abandoned", status: "Starting", ephemeral: false, run: Run::None, extra: Extra::Sockets, expect: Some("Crashed"), expect_run: None, msb_differs: None },
    Case { name: "starting-listening", status: "Starting", ephemeral: false, run: Run::None, extra: Extra::Listening, expect: Some("Starting"), expect_run: None, msb_differs: None },
    Case { name: "starting-creation-held", status: "Starting", ephemeral: false, run: Run::None, extra: CREATION, expect: Some("Starting"), expect_run: None, msb_differs: None },
    Case { name: "starting-lifecycle-held", status: "Starting", ephemeral: false, run: Run::None, extra: LIFECYCLE, expect: Some("Starting"), expect_run: None, msb_differs: None },
    Case { name: "starting-legacy-listening", status: "Starting", ephemeral: false, run: Run::None, extra: Extra::ListeningAt(2), expect: Some("Starting"), expect_run: None, msb_differs: None },
    Case { name: "starting-fallback-listening", status: "Starting", ephemeral: false, run: Run::None, extra: Extra::ListeningAt(4), expect: Some("Starting"), expect_run: None, msb_differs: None },
    // A dead run whose sandbox someone still owns.
    Case { name: "starting-dead-creation-held", status: "Starting", ephemeral: false, run: Run::Dead, extra: CREATION, expect: Some("Starting"), expect_run: RUNNING, msb_differs: None },
    Case { name: "starting-dead-lifecycle-held", status: "Starting", ephemeral: false, run: Run::Dead, extra: LIFECYCLE, expect: Some("Starting"), expect_run: RUNNING, msb_differs: None },
    Case { name: "draining-dead-lifecycle-held", status: "Draining", ephemeral: false, run: Run::Dead, extra: LIFECYCLE, expect: Some("Draining"), expect_run: RUNNING, msb_differs: None },
    Case { name: "draining-dead-creation-held", status: "Draining", ephemeral: false, run: Run::Dead, extra: CREATION, expect: Some("Draining"), expect_run: RUNNING, msb_differs: None },
    // Not active: never reconciled.
    Case { name: "paused-dead", status: "Paused", ephemeral: false, run: Run::Dead, extra: Extra::Nothing, expect: Some("Paused"), expect_run: RUNNING, msb_differs: None },
    Case { name: "created", status: "Created", ephemeral: false, run: Run::None, extra: Extra::Nothing, expect: Some("Created"), expect_run: None, msb_differs: None },
    Case { name: "stopped-persistent", status: "Stopped", ephemeral: false, run: Run::None, extra: Extra::Nothing, expect: Some("Stopped"), expect_run: None, msb_differs: None },
    // Phase 2: finished ephemeral sandboxes.
    Case { name: "eph-stopped", status: "Stopped", ephemeral: true, run: Run::None, extra: Extra::Nothing, expect: None, expect_run: None, msb_differs: None },
    Case { name: "eph-crashed-dead", status: "Crashed", ephemeral: true, run: Run::Dead, extra: Extra::Sockets, expect: None, expect_run: None, msb_differs: None },
    Case { name: "eph-stopped-live", status: "Stopped", ephemeral: true, run: Run::Live, extra: Extra::Nothing, expect: Some("Stopped"), expect_run: RUNNING, msb_differs: None },
    Case { name: "eph-lifecycle-held", status: "Stopped", ephemeral: true, run: Run::None, extra: LIFECYCLE, expect: Some("Stopped"), expect_run: None, msb_differs: None },
    // Crashed by phase 1, then removed by phase 2 of the same sweep.
    Case { name: "eph-running-dead", status: "Running", ephemeral: true, run: Run::Dead, extra: Extra::Nothing, expect: None, expect_run: None, msb_differs: None },
    // 0.7.13's rule (a snapshot capture holding the lineage lock keeps its
    // sandbox), which we follow; 0.7.11's binary keeps it too, measured here.
    // So does removing `.bootstrap-rootfs` on reconcile (checked per row).
    Case { name: "eph-lineage-held", status: "Stopped", ephemeral: true, run: Run::None, extra: LINEAGE, expect: Some("Stopped"), expect_run: None, msb_differs: None },
    // On purpose: msb knows only pids.
    Case { name: "running-reused-pid", status: "Running", ephemeral: false, run: Run::Reused, extra: Extra::Nothing, expect: Some("Crashed"), expect_run: CRASHED_RUN,
        msb_differs: Some((Some("Running"), "the pid now belongs to an unrelated process (its start time differs); msb sees a live pid")) },
    Case { name: "running-rebooted", status: "Running", ephemeral: false, run: Run::Rebooted, extra: Extra::Nothing, expect: Some("Crashed"), expect_run: CRASHED_RUN,
        msb_differs: Some((Some("Running"), "the run was recorded in an earlier boot (its boot id differs); msb sees a live pid")) },
    // Directory shapes: msb fails where a path is not what it made, and
    // keeps the row for a retry; so do we.
    Case { name: "running-dead-unknown", status: "Running", ephemeral: false, run: Run::Dead, extra: Extra::Unknown, expect: Some("Running"), expect_run: RUNNING, msb_differs: None },
    Case { name: "running-dead-no-dir", status: "Running", ephemeral: false, run: Run::Dead, extra: Extra::NoDir, expect: Some("Crashed"), expect_run: CRASHED_RUN, msb_differs: None },
    Case { name: "running-dead-dir-file", status: "Running", ephemeral: false, run: Run::Dead, extra: Extra::DirFile, expect: Some("Running"), expect_run: RUNNING, msb_differs: None },
    // On purpose: msb resolves `<sandboxes>/<name>/...` by path.
    Case { name: "running-dead-dir-symlink", status: "Running", ephemeral: false, run: Run::Dead, extra: Extra::DirSymlink, expect: Some("Crashed"), expect_run: CRASHED_RUN,
        msb_differs: Some((Some("Crashed"), "the sandbox directory is a symlink: both crash the row; msb follows it and deletes the bootstrap root and fallback sockets in its target, we never follow one and leave them")) },
    // Not compared here, and why: a runtime hidden by `hidepid=2` is alive
    // for both (kill says EPERM, which both read as alive); that needs a
    // second user and a private /proc, and tests/unwritable_catalogs_and_trees.rs runs it.
];

/// The live process the `Live`, `Reused` and `Rebooted` runs record,
/// killed when dropped.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Socket paths of sandbox `name` in msb home `home`.
fn sockets_in(home: &Path, name: &str) -> Vec<PathBuf> {
    socket_paths(&home.join("run"), &home.join("sandboxes"), name)
}

/// Lock `(dir, suffix)` of sandbox `name` in msb home `home`.
fn lock_file(home: &Path, dir: &str, suffix: &str, name: &str) -> PathBuf {
    lock_at(&home.join("run"), dir, name, suffix)
}

/// Fills msb's catalog in `home` with every case.
fn build(home: &Path, live: u32) -> Result<(), Box<dyn std::error::Error>> {
    let conn = Connection::open(home.join("db/msb.db"))?;
    let seed: String =
        conn.query_row("SELECT config FROM sandbox WHERE name = 'seed'", [], |r| {
            r.get(0)
        })?;
    let me = ProcessIdentity::of(i64::from(live))?;
    let mut slot = 100;
    for case in CASES {
        let config = msb::config_for(&seed, case.name, case.ephemeral);
        let active = matches!(case.status, "Starting" | "Running" | "Draining" | "Paused");
        slot += 1;
        conn.execute(
            "INSERT INTO sandbox (name, config, status, created_at, updated_at, ephemeral, active_config, network_slot)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)",
            params![
                case.name,
                config,
                case.status,
                STAMP,
                case.ephemeral,
                active.then_some(&config),
                active.then_some(slot)
            ],
        )?;
        let id = conn.last_insert_rowid();
        let dir = home.join("sandboxes").join(case.name);
        std::fs::create_dir_all(dir.join("runtime"))?;
        std::fs::create_dir_all(dir.join(".bootstrap-rootfs/bin"))?;
        std::fs::write(dir.join("runtime/root-disk.json"), b"{}")?;
        shape(home, case)?;
        let pid = match case.run {
            Run::None => continue,
            Run::Dead => Some(i64::from(i32::MAX)),
            Run::NullPid => None,
            Run::Live | Run::Reused | Run::Rebooted => Some(i64::from(live)),
        };
        conn.execute(
            "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, 'Running', ?3)",
            params![id, pid, STAMP],
        )?;
        let start = me.start_time.map(|t| i64::try_from(t).expect("ticks"));
        let (start, boot) = match case.run {
            Run::Reused => (start.map(|t| t + 1), me.boot_id.clone()),
            Run::Rebooted => (start, Some("00000000-0000-4000-8000-000000000000".into())),
            _ => (start, me.boot_id.clone()),
        };
        if case.run != Run::Dead {
            conn.execute(
                "UPDATE run SET pid_start_time = ?2, boot_id = ?3 WHERE sandbox_id = ?1",
                params![id, start, boot],
            )?;
        }
        if matches!(case.extra, Extra::Sockets | Extra::Display | Extra::Unknown) {
            for path in sockets_in(home, case.name) {
                std::fs::create_dir_all(path.parent().expect("parent"))?;
                drop(UnixListener::bind(&path)?);
            }
        }
        if case.extra == Extra::Display {
            let canonical = &sockets_in(home, case.name)[0];
            drop(UnixListener::bind(
                canonical.with_file_name("display.sock"),
            )?);
        }
        if case.extra == Extra::Unknown {
            let canonical = &sockets_in(home, case.name)[0];
            std::fs::write(canonical.with_file_name("notes"), b"mine")?;
        }
    }
    // Free the lease and forget the last sweep, so msb's runtime sweeps.
    conn.execute_batch(
        "UPDATE maintenance_lease SET holder_pid = NULL,
             lease_expires_at = '2020-01-01 00:00:00', last_completed_at = NULL
         WHERE name = 'sandbox_lifecycle_maintenance'",
    )?;
    Ok(())
}

/// Gives `case`'s sandbox directory the shape its `Extra` says (built as
/// a plain directory first).
fn shape(home: &Path, case: &Case) -> std::io::Result<()> {
    let dir = home.join("sandboxes").join(case.name);
    match case.extra {
        Extra::NoDir => std::fs::remove_dir_all(&dir),
        Extra::DirFile => {
            std::fs::remove_dir_all(&dir)?;
            std::fs::write(&dir, b"not a directory")
        }
        Extra::DirSymlink => {
            let elsewhere = home.join("elsewhere").join(case.name);
            std::fs::create_dir_all(home.join("elsewhere"))?;
            std::fs::rename(&dir, &elsewhere)?;
            std::fs::create_dir_all(elsewhere.join("runtime"))?;
            drop(UnixListener::bind(elsewhere.join("runtime/agent.sock"))?);
            // Relative, so that each copy of the home points into its own.
            std::os::unix::fs::symlink(Path::new("../elsewhere").join(case.name), &dir)
        }
        _ => Ok(()),
    }
}

/// What a sweep is judged by, per sandbox name: status, whether
/// `active_config` is set, `network_slot`, the runs' `(status, reason)`,
/// and what is on disk for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    status: Option<String>,
    active_config: bool,
    network_slot: Option<i64>,
    runs: Vec<(String, Option<String>)>,
    dir: bool,
    bootstrap: bool,
    sockets: Vec<bool>,
    socket_dir: bool,
    locks: Vec<bool>,
}

fn observe(home: &Path, name: &str) -> Result<Row, Box<dyn std::error::Error>> {
    let conn = Connection::open(home.join("db/msb.db"))?;
    let row = conn
        .query_row(
            "SELECT id, status, active_config IS NOT NULL, network_slot FROM sandbox WHERE name = ?1",
            [name],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, Option<i64>>(3)?)),
        )
        .optional()?;
    let runs = match row {
        Some((id, ..)) => conn
            .prepare(
                "SELECT status, termination_reason FROM run WHERE sandbox_id = ?1 ORDER BY id",
            )?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?,
        None => Vec::new(),
    };
    let dir = home.join("sandboxes").join(name);
    let sockets = sockets_in(home, name);
    Ok(Row {
        status: row.as_ref().map(|r| r.1.clone()),
        active_config: row.as_ref().is_some_and(|r| r.2),
        network_slot: row.as_ref().and_then(|r| r.3),
        runs,
        dir: exists(&dir),
        bootstrap: exists(&dir.join(".bootstrap-rootfs")),
        socket_dir: exists(sockets[0].parent().expect("parent")),
        sockets: sockets.iter().map(|p| exists(p)).collect(),
        locks: [
            ("locks", ".lock"),
            ("creation-locks", ".lock"),
            ("locks", ".snapshot-lineage.lock"),
        ]
        .iter()
        .map(|(d, s)| exists(&lock_file(home, d, s, name)))
        .collect(),
    })
}

/// Holds what each case's `Extra` says in `home`: lock holders and
/// listeners, released when dropped.
fn hold(home: &Path) -> (Vec<Holder>, Vec<OwnedFd>) {
    let mut holders = Vec::new();
    let mut listeners = Vec::new();
    for case in CASES {
        let listen_at = |at: usize| {
            let path = &sockets_in(home, case.name)[at];
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            OwnedFd::from(UnixListener::bind(path).expect("bind"))
        };
        match case.extra {
            Extra::Held(dir, suffix) => {
                holders.push(Holder::at(&lock_file(home, dir, suffix, case.name)));
            }
            Extra::Listening => listeners.push(listen_at(0)),
            Extra::ListeningAt(at) => listeners.push(listen_at(at)),
            Extra::Nothing
            | Extra::Sockets
            | Extra::Display
            | Extra::Unknown
            | Extra::NoDir
            | Extra::DirSymlink
            | Extra::DirFile => {}
        }
    }
    (holders, listeners)
}

fn sweep_with_us(home: &Path) -> String {
    let out = cli(&[
        "sweep",
        "--home",
        home.to_str().expect("utf8"),
        "--force",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    json_line(&out)
}

fn lease_completed(home: &Path) -> Option<String> {
    Connection::open(home.join("db/msb.db"))
        .and_then(|c| {
            c.query_row(
                "SELECT last_completed_at FROM maintenance_lease WHERE name = 'sandbox_lifecycle_maintenance'",
                [],
                |r| r.get(0),
            )
        })
        .ok()
        .flatten()
}

/// Where msb `release` ends a case otherwise than we do, on purpose, and
/// why: the case's own difference, and those of older releases.
///
/// Measured: each older release acts where we find an owner and hold
/// back, never the other way round.
fn msb_differs(case: &Case, release: &str) -> Option<(Option<&'static str>, &'static str)> {
    let older = match (release, case.name) {
        ("0.6.18", "starting-abandoned") => (
            Some("Starting"),
            "0.6.18 has no rule for abandoned starts (0.7.x added it) and leaves a Starting row \
             with no run alone; we crash it only with its creation and lifecycle locks taken and \
             no endpoint answering, and 0.6.18's launchers hold the creation lock the same way",
        ),
        ("0.6.18", "running-dead-creation-held") => (
            Some("Crashed"),
            "0.6.18's reconcile takes only the lifecycle lock and crashes a dead runtime whose \
             creation lock a launcher holds; a held creation lock is an owner, so we leave it",
        ),
        ("0.6.18", "eph-lineage-held") => (
            None,
            "0.6.18 has no snapshot-lineage lock and removes an ephemeral sandbox while a \
             snapshot capture holds it; we keep it until the capture lets go (0.7.x does too)",
        ),
        (
            "0.7.0",
            "starting-listening" | "starting-legacy-listening" | "starting-fallback-listening",
        ) => (
            Some("Crashed"),
            "0.7.0 crashes an abandoned start without asking its endpoints; one answers here \
             (a runtime older than the locks), so we leave it, as 0.7.11 does",
        ),
        ("0.6.18", "starting-dead-creation-held") => (
            Some("Crashed"),
            "0.6.18's reconcile takes only the lifecycle lock and crashes a dead runtime whose \
             creation lock a launcher holds; a held creation lock is an owner, so we leave it",
        ),
        ("0.6.18", "draining-dead-creation-held") => (
            Some("Stopped"),
            "0.6.18's reconcile takes only the lifecycle lock and stops a dead runtime whose \
             creation lock a launcher holds; a held creation lock is an owner, so we leave it",
        ),
        _ => return case.msb_differs,
    };
    Some(older)
}

/// Whether msb `release` leaves a reaped sandbox's `.bootstrap-rootfs`
/// behind (measured: 0.6.18 and 0.7.0 do; 0.7.11 removes it, as 0.7.13's
/// source does, and so do we).
fn keeps_bootstrap(release: &str) -> bool {
    matches!(release, "0.6.18" | "0.7.0")
}

/// Why [`keeps_bootstrap`]'s releases end otherwise on a reaped row.
const BOOTSTRAP_KEPT: &str = "msb before 0.7.11 leaves .bootstrap-rootfs when it reaps a dead runtime; \
     we remove it, as 0.7.11 does";

/// Runs `test` on msb `release`; under CI a release that cannot be set up
/// fails it.
fn on_release(release: &'static str, test: fn(&Msb) -> TestResult) -> TestResult {
    let Some(msb) = msb::release(release) else {
        return Ok(());
    };
    let _one = msb::one_at_a_time();
    test(msb)
}

#[test]
fn msb_0_6_18_and_sandbox_sweep_end_every_kind_of_row_alike() -> TestResult {
    on_release("0.6.18", end_every_kind_of_row_alike)
}

#[test]
fn msb_0_7_0_and_sandbox_sweep_end_every_kind_of_row_alike() -> TestResult {
    on_release("0.7.0", end_every_kind_of_row_alike)
}

#[test]
fn msb_0_7_11_and_sandbox_sweep_end_every_kind_of_row_alike() -> TestResult {
    on_release("0.7.11", end_every_kind_of_row_alike)
}

fn end_every_kind_of_row_alike(msb: &Msb) -> TestResult {
    let home = Home::new(msb);
    // Our identity columns and indexes, added the way a user would: msb
    // works on such a catalog (the round trip below proves it).
    let out = cli(&["init", "--home", home.path.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sleeper = Sleeper(
        Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()?,
    );
    build(&home.path, sleeper.0.id())?;
    let theirs = home.copy("msb");
    let ours = home.copy("ours");
    let held = (hold(&theirs), hold(&ours));

    // msb sweeps its copy: `msb create` starts a runtime that runs msb's
    // startup maintenance (lease, both phases) before its boot fails.
    let out = msb::run(
        msb,
        &theirs,
        &["create", "--name", "trigger", "local/busybox:latest"],
        CREATE_LIMIT,
    );
    assert!(
        lease_completed(&theirs).is_some(),
        "msb's runtime never completed a sweep: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = sweep_with_us(&ours);
    assert_eq!(json_field(&json, "outcome"), "\"swept\"", "{json}");
    // The directory shapes msb fails on, and so do we: kept, and counted.
    assert_eq!(json_field(&json, "errors"), "2", "{json}");
    assert_eq!(json_field(&json, "abandoned"), "1", "{json}");
    drop(held);

    let mut report = BTreeMap::new();
    let mut disagree = Vec::new();
    for case in CASES {
        let (t, o) = (observe(&theirs, case.name)?, observe(&ours, case.name)?);
        // Our outcome, exactly.
        assert_eq!(o.status.as_deref(), case.expect, "{}: {o:?}", case.name);
        let removed = case.expect.is_none();
        let made_dir = case.extra != Extra::NoDir;
        assert_eq!(o.dir, !removed && made_dir, "{}: directory", case.name);
        if let Some(run) = case.expect_run {
            let want = (run.0.to_owned(), run.1.map(str::to_owned));
            assert_eq!(o.runs, vec![want], "{}: runs", case.name);
        } else {
            assert!(o.runs.is_empty(), "{}: runs {:?}", case.name, o.runs);
        }
        let changed = case.expect != Some(case.status);
        let active = matches!(case.status, "Starting" | "Running" | "Draining" | "Paused");
        if !removed {
            // Reconciling clears the runtime fields; leaving a row keeps them.
            assert_eq!(
                o.active_config,
                active && !changed,
                "{}: active_config",
                case.name
            );
            assert_eq!(
                o.network_slot.is_some(),
                active && !changed,
                "{}: slot",
                case.name
            );
            let made_bootstrap = !matches!(case.extra, Extra::NoDir | Extra::DirFile);
            // Behind a symlink, nothing is ours: it stays, whatever happens.
            let followed = case.extra == Extra::DirSymlink;
            assert_eq!(
                o.bootstrap,
                (!changed || followed) && made_bootstrap,
                "{}: .bootstrap-rootfs",
                case.name
            );
        }
        if matches!(case.extra, Extra::Sockets | Extra::Display) && changed {
            assert_eq!(o.sockets, vec![false; 6], "{}: sockets", case.name);
            assert!(!o.socket_dir, "{}: <H12> directory", case.name);
        }
        // msb's, against ours.
        match msb_differs(case, msb.release) {
            None => {
                let (mut t, mut o) = (t, o);
                // msb opens both locks of every active row it looks at; we
                // open them only for rows we act on. Lock files are empty
                // and never deleted, so only their existence differs.
                t.locks.clear();
                o.locks.clear();
                if keeps_bootstrap(msb.release) && changed && !removed && case.extra != Extra::NoDir
                {
                    // Asserted both ways: that release leaves it, we remove it.
                    if !t.bootstrap || o.bootstrap {
                        disagree.push(format!(
                            "{}: .bootstrap-rootfs: msb {}, ours {}",
                            case.name, t.bootstrap, o.bootstrap
                        ));
                    }
                    t.bootstrap = o.bootstrap;
                    report.insert(case.name, BOOTSTRAP_KEPT);
                }
                if t != o {
                    disagree.push(format!("{}: msb {t:?}\n  ours {o:?}", case.name));
                }
            }
            Some((status, why)) => {
                if t.status.as_deref() != status {
                    disagree.push(format!(
                        "{}: msb ended {:?}, not {status:?} ({why})",
                        case.name, t.status
                    ));
                }
                report.insert(case.name, why);
            }
        }
    }
    // Every disagreement at once: a new release may differ in several.
    assert!(
        disagree.is_empty(),
        "msb {} and sandbox-sweep disagree:\n{}",
        msb.release,
        disagree.join("\n")
    );
    eprintln!("msb {}: differences on purpose: {report:#?}", msb.release);

    // The round trip: msb reads back every row we wrote. msb's `ls` runs
    // its maintenance and fails where that fails: on a file where a
    // sandbox directory should be ("Not a directory") and on a dead
    // runtime's socket directory holding another file ("Directory not
    // empty"; on its own copy, the `display.sock` it leaves does that).
    // Those two shapes go first.
    std::fs::remove_file(ours.join("sandboxes/running-dead-dir-file"))?;
    let canonical = &sockets_in(&ours, "running-dead-unknown")[0];
    std::fs::remove_file(canonical.with_file_name("notes"))?;
    let out = msb::run(msb, &ours, &["ls"], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "msb ls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    for case in CASES.iter().filter(|c| c.expect.is_some()) {
        assert!(
            listing.contains(case.name),
            "msb ls lacks {}: {listing}",
            case.name
        );
        let out = msb::run(msb, &ours, &["inspect", case.name], Duration::from_secs(60));
        assert!(
            out.status.success(),
            "msb inspect {}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(sleeper);
    Ok(())
}

#[test]
fn a_booting_msb_0_6_18_runtime_is_never_touched_by_our_sweep() -> TestResult {
    on_release("0.6.18", a_booting_runtime_is_never_touched)
}

#[test]
fn a_booting_msb_0_7_0_runtime_is_never_touched_by_our_sweep() -> TestResult {
    on_release("0.7.0", a_booting_runtime_is_never_touched)
}

#[test]
fn a_booting_msb_0_7_11_runtime_is_never_touched_by_our_sweep() -> TestResult {
    on_release("0.7.11", a_booting_runtime_is_never_touched)
}

/// Sends `SIGCONT` to a process group stopped for a test, on every exit.
struct Continue(nix::unistd::Pid);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// `sandbox-sweep orphans --remove --older-than 0s --json` on `home`: its
/// JSON line (exit 0 asserted).
fn remove_orphans_now(home: &Path) -> String {
    let out = cli(&[
        "orphans",
        "--home",
        home.to_str().expect("utf8"),
        "--remove",
        "--older-than",
        "0s",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    json_line(&out)
}

fn a_booting_runtime_is_never_touched(msb: &Msb) -> TestResult {
    let home = Home::new(msb);
    // Under strace, which holds msb for a second just after it makes the
    // sandbox's directory (`delay_exit` on that `mkdir` alone, `-P`): the
    // window between the directory and the row, opened wide enough to
    // test on a loaded machine.
    let booting_dir = home.path.join("sandboxes/booting");
    if Command::new("strace").arg("-V").output().is_err() {
        cannot_run("the booting-runtime test", "strace is not installed");
        return Ok(());
    }
    let mut create = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-P"])
        .arg(&booting_dir)
        .args([
            "-e",
            "trace=mkdir,mkdirat",
            "-e",
            "inject=mkdir,mkdirat:delay_exit=1000000",
        ])
        .arg(&msb.bin)
        .args(["create", "--name", "booting", "local/busybox:latest"])
        .env("MSB_HOME", &home.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: stopping it stops every process msb starts.
        .process_group(0)
        .spawn()?;
    let db = home.path.join("db/msb.db");
    let creation = lock_file(&home.path, "creation-locks", ".lock", "booting");
    let lifecycle = lock_file(&home.path, "locks", ".lock", "booting");
    let (mut swept, mut starting_held) = (0, 0);
    // Whether an orphan removal ran, and ended, inside the window between
    // msb's directory and its row.
    let mut window_held = false;
    // In which order msb makes the row and the directory, as seen.
    let dir = home.path.join("sandboxes/booting");
    let mut first_seen: Option<(&str, bool)> = None;
    {
        // Polled every millisecond until one of them appears.
        let conn = Connection::open(&db)?;
        let named = || -> rusqlite::Result<bool> {
            conn.query_row(
                "SELECT count(*) FROM sandbox WHERE name = 'booting'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        };
        let until = Instant::now() + CREATE_LIMIT;
        while first_seen.is_none() && Instant::now() < until && create.try_wait()?.is_none() {
            let (row, made) = (named()?, dir.exists());
            let seen = match (row, made) {
                (true, true) => Some("both"),
                (true, false) => Some("row"),
                (false, true) => Some("directory"),
                (false, false) => None,
            };
            first_seen = seen.map(|seen| (seen, msb::flock_held(&creation)));
            if seen == Some("directory") {
                // The directory-before-row window, held open: msb stopped
                // (and continued on any exit) while an orphan removal with
                // no grace period runs against it.
                let group = nix::unistd::Pid::from_raw(i32::try_from(create.id())?);
                let _continue = Continue(group);
                nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGSTOP)?;
                let row_before = named()?;
                let removal = remove_orphans_now(&home.path);
                assert_eq!(json_field(&removal, "removed_count"), "0", "{removal}");
                window_held = !row_before && !named()? && dir.is_dir();
                if window_held {
                    // Kept, as a launcher's: its creation lock is held.
                    let kept = removal.split("\"kept\":[").nth(1).unwrap_or_default();
                    let booting = kept.split("sandboxes/booting\"").nth(1).unwrap_or_default();
                    assert!(
                        booting
                            .split('}')
                            .next()
                            .unwrap_or_default()
                            .ends_with("\"why\":\"lock_held\""),
                        "{removal}"
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut kept_booting = 0;
    let deadline = Instant::now() + CREATE_LIMIT;
    loop {
        let done = create.try_wait()?.is_some();
        let before = Connection::open(&db)?
            .query_row(
                "SELECT status FROM sandbox WHERE name = 'booting'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok();
        let held = msb::flock_held(&creation) || msb::flock_held(&lifecycle);
        // An orphan removal with no grace period removes nothing: the
        // home holds msb's sandboxes and their runtime files only.
        let removal = remove_orphans_now(&home.path);
        assert_eq!(json_field(&removal, "removed_count"), "0", "{removal}");
        if removal.contains("sandboxes/booting\",\"bytes\"") {
            kept_booting += 1;
        }
        let json = sweep_with_us(&home.path);
        match json_field(&json, "outcome") {
            "\"swept\"" => {
                swept += 1;
                // The only active row is msb's own: we never touch it.
                assert_eq!(json_field(&json, "reconciled"), "0", "{json}");
                assert_eq!(json_field(&json, "errors"), "0", "{json}");
            }
            // msb's runtime holds the lease while it sweeps.
            "\"skipped\"" => assert_eq!(json_field(&json, "skip_reason"), "\"held\"", "{json}"),
            other => panic!("sweep {other}: {json}"),
        }
        if before.as_deref() == Some("Starting") && held {
            starting_held += 1;
        }
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "msb create ran past {CREATE_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        swept > 0 && starting_held > 0,
        "swept {swept}, saw it starting {starting_held}"
    );
    // msb 0.7.11 makes the directory first, then the row, holding the
    // creation lock throughout: between the two, only that lock (which an
    // orphan removal takes first) and the grace period keep the directory
    // from looking like an orphan. Seen here, and it was never removed.
    println!(
        "  msb create made first: {first_seen:?} (with the creation lock held?); \
         orphan removals that listed and kept it: {kept_booting}; one ran in the window \
         between its directory and its row: {window_held}"
    );
    match first_seen {
        Some(("directory", held)) => {
            assert!(held, "a directory with no row and no lock");
            // strace holds msb a second after the directory, then the
            // test stops it: the removal runs inside the window.
            assert!(
                window_held,
                "msb's row came before the removal ended: the window was not tested"
            );
        }
        Some(("row" | "both", _)) => {}
        other => panic!("msb's sandbox was never seen: {other:?}"),
    }
    assert!(dir.is_dir(), "msb's directory for `booting` is gone");
    // msb ended it its own way: its boot failed.
    let conn = Connection::open(&db)?;
    let (status, run): (String, String) = conn.query_row(
        "SELECT s.status, r.status || '/' || ifnull(r.termination_reason, '') FROM sandbox s JOIN run r ON r.sandbox_id = s.id WHERE s.name = 'booting'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert_eq!(
        (status.as_str(), run.as_str()),
        ("Stopped", "Terminated/Failed")
    );
    let _ = msb::wait(&mut create, Duration::from_secs(1));
    Ok(())
}
