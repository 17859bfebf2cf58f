//! A `SIGKILL` at every system call, not a sample (#23 item 10): strace
//! lists the calls one uninterrupted run makes (per name, how many), then
//! `-e inject=NAME:signal=SIGKILL:when=K` ends a fresh copy of the same small
//! home at each of them in turn, every name and every K. The kill comes on
//! the call's entry, before it runs (a fatal signal pending at a syscall
//! stop skips the call); just after a call is just before the next one,
//! which is enumerated too. Three writers are enumerated: `sweep`,
//! `orphans --remove`, and `Sweeper::clean_ephemeral`, which is library-only, so this
//! binary re-executes itself as the child that calls it and strace attaches
//! to that child's one working thread.
//!
//! After each kill: the catalog passes `integrity_check`; no row is gone
//! while its directory (or its runtime's socket directory) stays in place
//! outside the trash; no row the kill left `Crashed` or `Stopped` by a
//! reconcile keeps its socket directory or its `.bootstrap-rootfs`; the live
//! sandbox and the persistent one are untouched. Then one clean sweep (no
//! strace) must reach the exact expected end state with no trash left.
//!
//! This file owns that enumeration and its checks. It must not soften what
//! it tests: no fault but the kill, nothing healed between the kill and the
//! checks, no sample in place of a call. A missing strace or a refused ptrace
//! skips it loudly outside CI and fails it under CI.

pub mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rusqlite::{Connection, OptionalExtension};
use sandbox_sweep::lease::{LEASE_DURATION, LEASE_NAME};
use sandbox_sweep::{Catalog, Clock, Limits, SandboxId, SweepOutcome, Sweeper, SystemClock};

/// The re-executed child's test, and the variable naming the home it cleans.
const CHILD: &str = "child_cleans_finished_ephemeral_sandboxes";
const CHILD_HOME: &str = "KILL_AT_EVERY_CALL_HOME";
const CHILD_IDS: &str = "KILL_AT_EVERY_CALL_IDS";
/// How the child tells the parent which thread to trace.
const TID_MARK: &str = "kill-at-every-call tid=";
/// Where, in the home, the child waits for the parent's go: a datagram,
/// so the wait is a `recvfrom`, a call the work never makes. Whether the
/// trace sees that wait depends on when strace attached; a `read` would
/// shift the count of the work's own reads by one, now and then.
const GO_SOCKET: &str = "go.sock";

/// No single run (traced, killed or converging) may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Held to spawn a process (read) and to sweep in this process (write).
/// Between fork and exec a child holds a copy of every descriptor, the
/// sweep's lock files included (`O_CLOEXEC` closes them only at the exec):
/// a sweep here that let go of a lifecycle lock and takes it again in its
/// next phase may meet its own lock held by that child, and keeps hands
/// off, as it must (seen without this: 1 to 10 convergences in 1,000
/// left an ephemeral row `Crashed`, the clean sweep reporting
/// `lifecycle_owned` 1). `spawn` returns after the exec.
static SPAWNS: RwLock<()> = RwLock::new(());

fn spawn(cmd: &mut Command) -> Result<Child, String> {
    let _no_sweep_meanwhile = SPAWNS.read().unwrap_or_else(|p| p.into_inner());
    cmd.spawn()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))
}

/// What a runtime left for a sandbox's run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunOf {
    Nothing,
    /// A `Running` run whose pid is no process (`DEAD_PID`).
    Dead,
    /// A `Running` run of this test process.
    Live,
}

/// What a runtime left at `<run>/sandboxes/<H12>/`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sockets {
    Nothing,
    /// `agent.sock`, bound and closed: a dead runtime's real socket file.
    Bound,
    /// `agent.sock` and `control.sock` as plain files.
    Files,
}

/// One sandbox of the home and what a complete sweep makes of it.
struct Spec {
    name: &'static str,
    status: &'static str,
    ephemeral: bool,
    run: RunOf,
    sockets: Sockets,
    /// A `.bootstrap-rootfs` with a few files inside its directory.
    bootstrap: bool,
    /// The status a reconcile gives it, when its runtime is dead.
    reconciled: Option<&'static str>,
    /// Its status once swept, `None` when the row goes (a sweep may leave
    /// it in its first status, `reconciled` or this, and nothing else).
    end: Option<&'static str>,
    /// Its run's `(status, termination_reason)` once swept.
    end_run: Option<(&'static str, Option<&'static str>)>,
}

/// A few rows only: every one of them multiplies the calls to enumerate.
const HOME: [Spec; 8] = [
    Spec {
        name: "dead-running",
        status: "Running",
        ephemeral: false,
        run: RunOf::Dead,
        sockets: Sockets::Bound,
        bootstrap: true,
        reconciled: Some("Crashed"),
        end: Some("Crashed"),
        end_run: Some(("Terminated", Some("InternalError"))),
    },
    Spec {
        name: "dead-draining",
        status: "Draining",
        ephemeral: false,
        run: RunOf::Dead,
        sockets: Sockets::Files,
        bootstrap: true,
        reconciled: Some("Stopped"),
        end: Some("Stopped"),
        end_run: Some(("Terminated", Some("ShutdownRequested"))),
    },
    // Crashed by the reconcile, then removed by the cleanup of the same sweep.
    Spec {
        name: "dead-ephemeral",
        status: "Running",
        ephemeral: true,
        run: RunOf::Dead,
        sockets: Sockets::Bound,
        bootstrap: true,
        reconciled: Some("Crashed"),
        end: None,
        end_run: None,
    },
    Spec {
        name: "abandoned",
        status: "Starting",
        ephemeral: false,
        run: RunOf::Nothing,
        sockets: Sockets::Files,
        bootstrap: true,
        reconciled: Some("Crashed"),
        end: Some("Crashed"),
        end_run: None,
    },
    Spec {
        name: "finished-stopped",
        status: "Stopped",
        ephemeral: true,
        run: RunOf::Dead,
        sockets: Sockets::Nothing,
        bootstrap: false,
        reconciled: None,
        end: None,
        end_run: None,
    },
    Spec {
        name: "finished-crashed",
        status: "Crashed",
        ephemeral: true,
        run: RunOf::Nothing,
        sockets: Sockets::Bound,
        bootstrap: false,
        reconciled: None,
        end: None,
        end_run: None,
    },
    Spec {
        name: "live",
        status: "Running",
        ephemeral: false,
        run: RunOf::Live,
        sockets: Sockets::Bound,
        bootstrap: true,
        reconciled: None,
        end: Some("Running"),
        end_run: Some(("Running", None)),
    },
    Spec {
        name: "persistent",
        status: "Stopped",
        ephemeral: false,
        run: RunOf::Nothing,
        sockets: Sockets::Nothing,
        bootstrap: true,
        reconciled: None,
        end: Some("Stopped"),
        end_run: None,
    },
];

/// A directory and a socket directory no row names, two hours old.
const ORPHAN: &str = "ghost";
const BOOTSTRAP_FILES: [&str; 2] = ["bin/sh", "etc/os-release"];

/// Whether the sandbox must never change, whatever is killed.
fn untouchable(spec: &Spec) -> bool {
    spec.run == RunOf::Live || (!spec.ephemeral && spec.status == "Stopped")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Sweep,
    Orphans,
    Clean,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Sweep => "sweep",
            Scenario::Orphans => "orphans --remove",
            Scenario::Clean => "Sweeper::clean_ephemeral",
        }
    }

    /// The statuses this writer may leave `spec`'s row in besides its
    /// first (`None`: the row deleted).
    fn may_leave(self, spec: &Spec) -> Vec<Option<&'static str>> {
        match self {
            Scenario::Sweep => {
                let mut statuses = vec![spec.end];
                statuses.extend(spec.reconciled.map(Some));
                statuses
            }
            Scenario::Clean if cleanable(spec) => vec![None],
            Scenario::Clean | Scenario::Orphans => vec![],
        }
    }
}

/// What `clean_ephemeral` is for: a finished ephemeral sandbox.
fn cleanable(spec: &Spec) -> bool {
    spec.ephemeral && matches!(spec.status, "Stopped" | "Crashed")
}

/// The catalog every home starts from, and its sandbox ids in `HOME`'s order.
struct Template {
    env: Env,
    ids: Vec<i64>,
}

impl Template {
    fn new() -> Result<Template, String> {
        let env = Env::new();
        let conn = env.conn();
        let ids = HOME
            .iter()
            .map(|spec| {
                let id = add_sandbox(&conn, spec.name, spec.status, spec.ephemeral);
                match spec.run {
                    RunOf::Nothing => {}
                    RunOf::Dead => {
                        add_run(&conn, id, Some(DEAD_PID));
                    }
                    RunOf::Live => {
                        add_run(&conn, id, Some(own_pid()));
                    }
                }
                id
            })
            .collect();
        // One file to copy: everything checkpointed into the database.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(|e| format!("checkpoint the template: {e}"))?;
        drop(conn);
        Ok(Template { env, ids })
    }
}

/// A fresh home: a copy of the template catalog and a new tree.
struct Home {
    dir: tempfile::TempDir,
    db: PathBuf,
    sandboxes: PathBuf,
    run: PathBuf,
}

impl Home {
    fn new(template: &Template) -> Result<Home, String> {
        // A kill is a process crash, not a power loss: the page cache
        // survives either way, so a tmpfs changes nothing but what each
        // fsync costs, and there are thousands of runs.
        let shm = Path::new("/dev/shm");
        let dir = tempfile::tempdir_in(shm)
            .or_else(|_| tempfile::tempdir())
            .map_err(|e| format!("tempdir: {e}"))?;
        let db = dir.path().join("catalog.db");
        let home = Home {
            sandboxes: dir.path().join("sandboxes"),
            run: dir.path().join("run"),
            db,
            dir,
        };
        for suffix in ["", "-wal"] {
            let from = PathBuf::from(format!("{}{suffix}", template.env.db.display()));
            if exists(&from) {
                let to = PathBuf::from(format!("{}{suffix}", home.db.display()));
                std::fs::copy(&from, &to).map_err(|e| format!("copy {}: {e}", from.display()))?;
            }
        }
        home.make_tree()
            .map_err(|e| format!("make the home's tree: {e}"))?;
        Ok(home)
    }

    fn make_tree(&self) -> std::io::Result<()> {
        std::fs::create_dir(&self.sandboxes)?;
        std::fs::create_dir(&self.run)?;
        for spec in &HOME {
            let dir = self.sandboxes.join(spec.name);
            std::fs::create_dir_all(dir.join("rootfs/etc"))?;
            std::fs::write(dir.join("rootfs/etc/data"), spec.name)?;
            std::fs::write(dir.join("config.json"), b"{}")?;
            if spec.bootstrap {
                for file in BOOTSTRAP_FILES {
                    let path = dir.join(".bootstrap-rootfs").join(file);
                    std::fs::create_dir_all(path.parent().unwrap_or(&dir))?;
                    std::fs::write(path, spec.name)?;
                }
            }
            let sockets = self.socket_dir(spec.name);
            match spec.sockets {
                Sockets::Nothing => {}
                Sockets::Bound => {
                    std::fs::create_dir_all(&sockets)?;
                    drop(UnixListener::bind(sockets.join("agent.sock"))?);
                }
                Sockets::Files => {
                    std::fs::create_dir_all(&sockets)?;
                    std::fs::write(sockets.join("agent.sock"), b"")?;
                    std::fs::write(sockets.join("control.sock"), b"")?;
                }
            }
        }
        let ghost = self.sandboxes.join(ORPHAN);
        std::fs::create_dir_all(ghost.join("rootfs/etc"))?;
        std::fs::write(ghost.join("rootfs/etc/data"), ORPHAN)?;
        std::fs::write(ghost.join("config.json"), b"{}")?;
        let ghost_sockets = self.socket_dir(ORPHAN);
        std::fs::create_dir_all(&ghost_sockets)?;
        std::fs::write(ghost_sockets.join("agent.sock"), b"")?;
        Ok(())
    }

    /// `<run>/sandboxes/<H12>`, where a runtime of `name` keeps its sockets.
    fn socket_dir(&self, name: &str) -> PathBuf {
        self.run.join("sandboxes").join(&h16(name)[..24])
    }

    fn trash(&self) -> PathBuf {
        self.sandboxes.join(TRASH_DIR)
    }

    /// The CLI's arguments for `scenario` (not `Clean`, which has no command).
    fn cli_args(&self, scenario: Scenario) -> Vec<String> {
        let paths = [
            "--db".to_owned(),
            self.db.display().to_string(),
            "--sandboxes-dir".to_owned(),
            self.sandboxes.display().to_string(),
            "--run-dir".to_owned(),
            self.run.display().to_string(),
        ];
        let (command, extra): (&str, &[&str]) = match scenario {
            Scenario::Orphans => (
                "orphans",
                // An age reads `st_ctime` too, which only time sets back:
                // no grace period, so the orphans are old enough at once.
                &["--remove", "--older-than", "0s", "--budget-ms", "600000"],
            ),
            Scenario::Sweep | Scenario::Clean => (
                "sweep",
                &[
                    "--force",
                    "--max-active",
                    "1000",
                    "--max-ephemeral",
                    "1000",
                    "--budget-ms",
                    "600000",
                ],
            ),
        };
        let mut args = vec![command.to_owned()];
        args.extend(paths);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.push("--json".to_owned());
        args
    }
}

/// Everything a kill can leave different: rows, the lease, every path
/// under the sandboxes and run directories (lock files aside: taking a
/// lock makes one, and they are never deleted).
fn footprint(home: &Home) -> Result<Vec<String>, String> {
    let conn = Connection::open(&home.db).map_err(|e| format!("open the catalog: {e}"))?;
    let mut lines = Vec::new();
    let mut rows = |sql: &str| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(sql)?;
        let found = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for line in found {
            lines.push(line?);
        }
        Ok(())
    };
    rows("SELECT 'sandbox ' || id || ' ' || name || ' ' || status FROM sandbox ORDER BY id")
        .and_then(|()| {
            rows(
                "SELECT 'run ' || id || ' ' || sandbox_id || ' ' || status || ' ' || \
                 coalesce(termination_reason, '-') FROM run ORDER BY id",
            )
        })
        .and_then(|()| {
            rows(&format!(
                "SELECT 'lease ' || iif(holder_pid IS NULL, 'free', 'held') \
                 FROM maintenance_lease WHERE name = '{LEASE_NAME}'"
            ))
        })
        .map_err(|e| format!("read the catalog: {e}"))?;
    for root in [&home.sandboxes, &home.run] {
        walk(root, home.dir.path(), &mut lines)?;
    }
    Ok(lines)
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("list {}: {e}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("list {}: {e}", dir.display()))?;
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(base).unwrap_or(&path);
        if rel == Path::new("run/locks") || rel == Path::new("run/creation-locks") {
            continue;
        }
        out.push(format!("path {}", rel.display()));
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            walk(&path, base, out)?;
        }
    }
    Ok(())
}

/// `(status, termination_reason)` of each run of sandbox `id`.
fn runs_of(conn: &Connection, id: i64) -> rusqlite::Result<Vec<(String, Option<String>)>> {
    let mut stmt =
        conn.prepare("SELECT status, termination_reason FROM run WHERE sandbox_id = ?1")?;
    let runs = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    runs.collect()
}

/// A sandbox directory's own files, as the home made them, all there.
fn files_intact(dir: &Path, name: &str) -> bool {
    std::fs::read(dir.join("rootfs/etc/data")).ok().as_deref() == Some(name.as_bytes())
        && exists(&dir.join("config.json"))
}

fn bootstrap_intact(dir: &Path, name: &str) -> bool {
    BOOTSTRAP_FILES.iter().all(|file| {
        std::fs::read(dir.join(".bootstrap-rootfs").join(file))
            .ok()
            .as_deref()
            == Some(name.as_bytes())
    })
}

/// What must hold right after a kill of `scenario`'s writer at any instant.
fn after_kill(home: &Home, ids: &[i64], scenario: Scenario) -> Vec<String> {
    let mut bad = Vec::new();
    let conn = match Connection::open(&home.db) {
        Ok(conn) => conn,
        Err(e) => return vec![format!("the catalog cannot be opened: {e}")],
    };
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap_or_else(|e| e.to_string());
    if check != "ok" {
        bad.push(format!("integrity_check: {check}"));
    }
    for (spec, &id) in HOME.iter().zip(ids) {
        let name = spec.name;
        let status: Option<String> = match conn
            .query_row("SELECT status FROM sandbox WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
        {
            Ok(status) => status,
            Err(e) => {
                bad.push(format!("{name}: its row cannot be read: {e}"));
                continue;
            }
        };
        let status = status.as_deref();
        let changed = status != Some(spec.status);
        if changed && !scenario.may_leave(spec).contains(&status) {
            bad.push(format!("{name} is {status:?}"));
        }
        let dir = home.sandboxes.join(name);
        let sockets = home.socket_dir(name);
        if status.is_none() {
            if exists(&dir) {
                bad.push(format!("{name}: row gone, directory still in place"));
            }
            if exists(&sockets) {
                bad.push(format!("{name}: row gone, socket directory still in place"));
            }
        } else if !exists(&dir) && !exists(&home.trash().join(format!("{id}-{name}"))) {
            bad.push(format!("{name}: row kept, directory lost"));
        }
        if changed && matches!(status, Some("Crashed" | "Stopped")) {
            if exists(&sockets) {
                bad.push(format!("{name} is {status:?}, its socket directory stays"));
            }
            if exists(&dir.join(".bootstrap-rootfs")) {
                bad.push(format!("{name} is {status:?}, its .bootstrap-rootfs stays"));
            }
        }
        if spec.run == RunOf::Dead && status.is_some() {
            // A reconcile changes the sandbox and its run in one transaction.
            match runs_of(&conn, id) {
                Ok(runs) => {
                    let terminated = runs.iter().any(|(s, _)| s == "Terminated");
                    if terminated != changed {
                        bad.push(format!("{name} is {status:?}, its runs {runs:?}: torn"));
                    }
                }
                Err(e) => bad.push(format!("{name}: its runs cannot be read: {e}")),
            }
        }
        let kept_in_place = !changed && exists(&dir);
        if kept_in_place && !files_intact(&dir, name) {
            bad.push(format!("{name}: row unchanged, directory lost files"));
        }
        if untouchable(spec) || scenario == Scenario::Orphans {
            // In place and whole: not even moved into the trash and back.
            if !files_intact(&dir, name) {
                bad.push(format!("{name}: its directory was touched"));
            }
            if spec.bootstrap && !bootstrap_intact(&dir, name) {
                bad.push(format!("{name}: its .bootstrap-rootfs was touched"));
            }
            if spec.sockets != Sockets::Nothing && !exists(&sockets.join("agent.sock")) {
                bad.push(format!("{name}: its socket was removed"));
            }
        }
        if spec.run == RunOf::Live {
            match runs_of(&conn, id) {
                Ok(runs) if runs == [("Running".to_owned(), None)] => {}
                other => bad.push(format!("live: its runs became {other:?}")),
            }
        }
    }
    let ghost = home.sandboxes.join(ORPHAN);
    match scenario {
        // Removal goes through the trash: in place means whole.
        Scenario::Orphans => {
            if exists(&ghost) && !files_intact(&ghost, ORPHAN) {
                bad.push("the orphan lost files in place".to_owned());
            }
        }
        Scenario::Sweep | Scenario::Clean => {
            if !files_intact(&ghost, ORPHAN) || !exists(&home.socket_dir(ORPHAN)) {
                bad.push("the orphan was touched by a writer that only knows rows".to_owned());
            }
        }
    }
    bad
}

/// The exact state once a writer ran to the end and one clean sweep after it.
fn converged(home: &Home, ids: &[i64], scenario: Scenario) -> Vec<String> {
    let mut bad = Vec::new();
    let conn = match Connection::open(&home.db) {
        Ok(conn) => conn,
        Err(e) => return vec![format!("the catalog cannot be opened: {e}")],
    };
    let expected_rows: Vec<(String, String)> = HOME
        .iter()
        .filter_map(|s| s.end.map(|end| (s.name.to_owned(), end.to_owned())))
        .collect();
    let rows = names_and_statuses(&conn);
    if rows != expected_rows {
        bad.push(format!("rows {rows:?}, expected {expected_rows:?}"));
    }
    for (spec, &id) in HOME.iter().zip(ids) {
        let expected: Vec<(String, Option<String>)> = spec
            .end_run
            .iter()
            .map(|(s, r)| ((*s).to_owned(), r.map(str::to_owned)))
            .collect();
        match runs_of(&conn, id) {
            Ok(runs) if runs == expected => {}
            other => bad.push(format!(
                "{}: runs {other:?}, expected {expected:?}",
                spec.name
            )),
        }
    }
    let orphan_runs: rusqlite::Result<i64> = conn.query_row(
        "SELECT count(*) FROM run WHERE sandbox_id NOT IN (SELECT id FROM sandbox)",
        [],
        |r| r.get(0),
    );
    if !matches!(orphan_runs, Ok(0)) {
        bad.push(format!("runs left without a sandbox: {orphan_runs:?}"));
    }
    let orphan_stays = scenario != Scenario::Orphans;
    let mut dirs: BTreeSet<String> = HOME
        .iter()
        .filter(|s| s.end.is_some())
        .map(|s| s.name.to_owned())
        .collect();
    let mut socket_dirs: BTreeSet<String> = HOME
        .iter()
        .filter(|s| s.sockets != Sockets::Nothing && untouchable(s))
        .map(|s| h16(s.name)[..24].to_owned())
        .collect();
    if orphan_stays {
        dirs.insert(ORPHAN.to_owned());
        socket_dirs.insert(h16(ORPHAN)[..24].to_owned());
    }
    let listing = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let found = listing(&home.sandboxes);
    if found != dirs {
        bad.push(format!("sandboxes dir holds {found:?}, expected {dirs:?}"));
    }
    let mut found = listing(&home.run.join("sandboxes"));
    let ghost_sockets = home.socket_dir(ORPHAN);
    if !orphan_stays && emptied_by_the_kill(&ghost_sockets, &listing(&ghost_sockets)) {
        // Sockets go by unlink in place, not through the trash: a kill
        // between the last unlink and the rmdir leaves the directory empty
        // and, by that unlink, young again. `--older-than` keeps it a grace
        // period more, as documented; nothing named is at stake.
        found.remove(&h16(ORPHAN)[..24]);
    }
    if found != socket_dirs {
        bad.push(format!(
            "run/sandboxes holds {found:?}, expected {socket_dirs:?}"
        ));
    }
    for spec in HOME.iter().filter(|s| s.end.is_some()) {
        let dir = home.sandboxes.join(spec.name);
        if !files_intact(&dir, spec.name) {
            bad.push(format!("{}: lost files", spec.name));
        }
        let keeps_bootstrap = spec.bootstrap && untouchable(spec);
        if keeps_bootstrap != bootstrap_intact(&dir, spec.name)
            || !keeps_bootstrap && exists(&dir.join(".bootstrap-rootfs"))
        {
            bad.push(format!(
                "{}: .bootstrap-rootfs present is {}, expected {keeps_bootstrap}",
                spec.name,
                exists(&dir.join(".bootstrap-rootfs"))
            ));
        }
    }
    if orphan_stays && !files_intact(&home.sandboxes.join(ORPHAN), ORPHAN) {
        bad.push("the orphan lost files".to_owned());
    }
    if exists(&home.trash()) {
        bad.push(format!(
            "the trash is left behind, holding {:?}",
            listing(&home.trash())
        ));
    }
    bad
}

/// Whether `dir` is an orphan socket directory a kill left empty, with an
/// age the removal itself reset (younger than the home's two hours).
fn emptied_by_the_kill(dir: &Path, entries: &BTreeSet<String>) -> bool {
    let young = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < Duration::from_secs(3600)));
    young && entries.is_empty()
}

/// One sweep as it runs once a killed sweeper's lease has expired (the
/// clock moved past it rather than waiting 10 s), beside the run dir.
fn clean_sweep(home: &Home) -> Result<String, String> {
    let conn = sandbox_sweep::open(&home.db).map_err(|e| format!("open: {e}"))?;
    let catalog = Catalog::from_connection(conn).map_err(|e| format!("catalog: {e}"))?;
    let later = || SystemClock.now() + LEASE_DURATION + Duration::from_secs(1);
    let _no_spawn_meanwhile = SPAWNS.write().unwrap_or_else(|p| p.into_inner());
    match Sweeper::new(&home.sandboxes)
        .run_dir(&home.run)
        .limits(Limits::unlimited())
        .force(true)
        .run_with(&catalog, &later)
    {
        SweepOutcome::Swept(report) if report.errors == 0 && report.complete => {
            Ok(format!("{report}"))
        }
        other => Err(format!("the clean sweep: {other:?}")),
    }
}

/// Brings the home to its end state: for `orphans`, the command once more
/// (what a kill left in place), then the sweep (what it left in the trash).
fn converge(home: &Home, scenario: Scenario) -> Result<String, String> {
    if scenario == Scenario::Orphans {
        let args = home.cli_args(scenario);
        let out = wait_within(
            spawn(
                bin()
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0),
            )?,
            RUN_LIMIT,
        )?;
        if out.status.code() != Some(0) {
            return Err(format!(
                "the clean orphans --remove: {} {}",
                out.status,
                stderr(&out)
            ));
        }
    }
    clean_sweep(home)
}

/// Waits for `child` (the leader of its own process group), killing the
/// whole group once `limit` has passed.
fn wait_within(mut child: Child, limit: Duration) -> Result<std::process::Output, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Ok(None) => {
                let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!("still running after {limit:?}: killed"));
            }
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

/// strace's arguments that kill at invocation `k` of `name`, or trace every
/// call into `log` when `kill` is `None`.
fn strace_args(kill: Option<(&str, usize)>, log: &Path) -> Vec<String> {
    let mut args = vec!["-o".to_owned()];
    match kill {
        None => args.push(log.display().to_string()),
        Some((name, k)) => args.extend([
            "/dev/null".to_owned(),
            "-e".to_owned(),
            format!("trace={name}"),
            "-e".to_owned(),
            format!("inject={name}:signal=SIGKILL:when={k}"),
        ]),
    }
    args
}

/// How one run under strace ended.
struct Ended {
    status: ExitStatus,
    stderr: String,
}

/// Runs `scenario`'s writer on `home` under strace (`kill`: see [`strace_args`]).
fn traced(
    home: &Home,
    scenario: Scenario,
    ids: &[i64],
    kill: Option<(&str, usize)>,
) -> Result<Ended, String> {
    let log = home.dir.path().join("strace.log");
    let args = strace_args(kill, &log);
    match scenario {
        Scenario::Sweep | Scenario::Orphans => {
            let mut cmd = Command::new("strace");
            cmd.args(["-f", "-qq"]).args(&args);
            let child = spawn(
                cmd.arg(env!("CARGO_BIN_EXE_sandbox-sweep"))
                    .args(home.cli_args(scenario))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .process_group(0),
            )?;
            let out = wait_within(child, RUN_LIMIT)?;
            Ok(Ended {
                status: out.status,
                stderr: stderr(&out),
            })
        }
        Scenario::Clean => traced_child(home, ids, &args),
    }
}

/// Re-executes this binary as the child that cleans the home's finished
/// ephemeral sandboxes, and attaches strace to its working thread only:
/// libtest's main thread makes the same calls before it (the loader's, its
/// own), and strace counts `when=K` per thread, so tracing both would let
/// the main thread's K-th call stand in for the worker's.
fn traced_child(home: &Home, ids: &[i64], strace: &[String]) -> Result<Ended, String> {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = spawn(
        Command::new(exe)
            .args([CHILD, "--exact", "--include-ignored", "--nocapture"])
            .env(CHILD_HOME, home.dir.path())
            .env(CHILD_IDS, ids.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0),
    )?;
    let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let result = attach_and_go(&mut child, strace, &home.dir.path().join(GO_SOCKET));
    if result.is_err() {
        let _ = killpg(group, Signal::SIGKILL);
    }
    let tracer = match result {
        Ok(tracer) => tracer,
        Err(e) => {
            let _ = child.wait();
            return Err(e);
        }
    };
    let out = wait_within(child, RUN_LIMIT);
    // strace ends when its one tracee does.
    let traced = wait_within(tracer, RUN_LIMIT)?;
    let out = out?;
    if !traced.status.success() {
        return Err(format!("strace -p: {}", traced.status));
    }
    Ok(Ended {
        status: out.status,
        stderr: stderr(&out),
    })
}

/// Reads the child's thread id, attaches strace to it, waits until it is
/// attached, then tells the child to go (at `go`); strace, tracing.
fn attach_and_go(child: &mut Child, strace: &[String], go: &Path) -> Result<Child, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    // Reads to the end, so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find(TID_MARK) {
                let _ = tx.send(line[at + TID_MARK.len()..].trim().to_owned());
            }
        }
    });
    let tid = rx
        .recv_timeout(RUN_LIMIT)
        .map_err(|e| format!("the child never said its thread: {e}"))?;
    let mut tracer = spawn(
        Command::new("strace")
            .args(strace)
            .args(["-p", &tid])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0),
    )?;
    // strace says `Process N attached` once it has seized the thread and
    // interrupted it: from then on the thread stops at every call. A
    // TracerPid alone is not enough: it shows as soon as the seize, and a
    // call made before the interrupt is missed (seen: a run whose every
    // flock went uncounted).
    let said = tracer.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(said).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut heard = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(&format!("Process {tid} attached")) => break,
            Ok(line) => heard.push(line),
            Err(_) => {
                let _ = tracer.kill();
                let _ = tracer.wait();
                return Err(format!("strace did not attach to thread {tid}: {heard:?}"));
            }
        }
    }
    // Refused only when a kill at that `recvfrom` already ended the child.
    let _ = UnixDatagram::unbound().and_then(|socket| socket.send_to(b"g", go));
    Ok(tracer)
}

/// Per system-call name, how many times one traced run entered it (a call
/// strace splits around another tracee's is counted once, at its start).
fn count_calls(trace: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut counts = BTreeMap::new();
    let mut tracees = BTreeSet::new();
    for line in trace.lines() {
        let rest = line.trim_start_matches(|c: char| c.is_ascii_digit());
        if rest.len() != line.len() {
            tracees.insert(&line[..line.len() - rest.len()]);
        }
        let rest = rest.trim_start();
        let Some(open) = rest.find('(') else { continue };
        let name = &rest[..open];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            *counts.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    // `when=K` counts per tracee: with two, the first to reach its K-th
    // call would hide the other's.
    if tracees.len() > 1 {
        return Err(format!(
            "{} tracees in one run ({tracees:?}): per-tracee counts would hide calls",
            tracees.len()
        ));
    }
    Ok(counts)
}

/// The result of one kill, checked.
struct Kill {
    at: String,
    landed: bool,
    mid_work: bool,
    lease_held: bool,
    violations: Vec<String>,
}

/// Kills `scenario`'s writer on a fresh home at invocation `k` of `name`,
/// checks what it left, converges and checks the end.
fn kill_at(
    template: &Template,
    scenario: Scenario,
    name: &str,
    k: usize,
    start: &[String],
    end: &[String],
) -> Kill {
    let here = format!("{} {name}:{k}", scenario.label());
    let mut kill = Kill {
        at: format!("{name}:{k}"),
        landed: false,
        mid_work: false,
        lease_held: false,
        violations: Vec::new(),
    };
    let home = match Home::new(template) {
        Ok(home) => home,
        Err(e) => {
            kill.violations.push(format!("{here}: {e}"));
            return kill;
        }
    };
    match traced(&home, scenario, &template.ids, Some((name, k))) {
        Ok(ended) if ended.status.signal() == Some(Signal::SIGKILL as i32) => kill.landed = true,
        Ok(ended) if ended.status.code() == Some(0) => {}
        Ok(ended) => kill
            .violations
            .push(format!("{here}: ended {} {}", ended.status, ended.stderr)),
        Err(e) => kill.violations.push(format!("{here}: {e}")),
    }
    match footprint(&home) {
        Ok(found) => {
            kill.mid_work = kill.landed && found != start && found != end;
            kill.lease_held = found.iter().any(|l| l == "lease held");
        }
        Err(e) => kill.violations.push(format!("{here}: {e}")),
    }
    let ids = &template.ids;
    let after: Vec<String> = after_kill(&home, ids, scenario)
        .into_iter()
        .map(|v| format!("{here}, after the kill: {v}"))
        .collect();
    kill.violations.extend(after);
    let report = converge(&home, scenario).unwrap_or_else(|e| {
        kill.violations.push(format!("{here}, converging: {e}"));
        String::new()
    });

    let end: Vec<String> = converged(&home, ids, scenario)
        .into_iter()
        .map(|v| format!("{here}, converged: {v} (the clean sweep: {report})"))
        .collect();
    kill.violations.extend(end);
    kill
}

/// Runs `f` on every job, on as many threads as there are cores (bounded
/// by the job list: each thread takes the next until none is left); the
/// results in the jobs' order.
fn on_every_core<J: Sync, R: Send>(jobs: &[J], f: impl Fn(&J) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let result = f(job);
                    results
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push((i, result));
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, result)| result).collect()
}

/// What one scenario's enumeration found.
struct Tally {
    calls: usize,
    /// Kills past the traced count, and how many of them landed.
    beyond: (usize, usize),
    /// `name:K` of the kills whose run ended first (a count that differs
    /// from the traced run's by a call or two).
    ran_out: Vec<String>,
    names: usize,
    landed: usize,
    mid_work: usize,
    lease_held: usize,
    violations: Vec<String>,
}

/// Traces one run of `scenario`, then kills a fresh run at each call.
/// `Err` when strace cannot run here.
fn enumerate(template: &Template, scenario: Scenario) -> Result<Tally, String> {
    let home = Home::new(template)?;
    let start = footprint(&home)?;
    let ended = traced(&home, scenario, &template.ids, None)?;
    if !ended.status.success() {
        return Err(format!(
            "strace of an uninterrupted {}: {} {}",
            scenario.label(),
            ended.status,
            ended.stderr
        ));
    }
    let end = footprint(&home)?;
    let log = home.dir.path().join("strace.log");
    let trace = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let counts = count_calls(&trace)?;
    // The uninterrupted run is held to the same checks as the killed ones.
    let mut violations: Vec<String> = after_kill(&home, &template.ids, scenario);
    converge(&home, scenario)?;
    violations.extend(converged(&home, &template.ids, scenario));
    let jobs: Vec<(&str, usize)> = counts
        .iter()
        .flat_map(|(name, &n)| (1..=n).map(move |k| (name.as_str(), k)))
        .collect();
    let kill = |&(name, k): &(&str, usize)| kill_at(template, scenario, name, k, &start, &end);
    let kills = on_every_core(&jobs, kill);
    // Some counts are the machine's, not the writer's: `/proc/locks` is
    // read in as many calls as its length needs, and it lists every lock
    // held on the machine. So K goes on past the traced count, one round
    // at a time, for each name whose last kill still landed.
    let mut next: Vec<(&str, usize)> = counts.iter().map(|(n, &c)| (n.as_str(), c + 1)).collect();
    let mut extra = Vec::new();
    let mut beyond = (0, 0);
    for _round in 0..16 {
        if next.is_empty() {
            break;
        }
        let round = on_every_core(&next, kill);
        beyond.0 += round.len();
        let mut still = Vec::new();
        for (&(name, k), kill) in next.iter().zip(round) {
            if kill.landed {
                beyond.1 += 1;
                still.push((name, k + 1));
            }
            extra.push(kill);
        }
        next = still;
    }
    let mut tally = Tally {
        beyond,
        calls: jobs.len(),
        ran_out: Vec::new(),
        names: counts.len(),
        landed: 0,
        mid_work: 0,
        lease_held: 0,
        violations: violations
            .into_iter()
            .map(|v| format!("{} uninterrupted: {v}", scenario.label()))
            .collect(),
    };
    for kill in &kills {
        tally.landed += usize::from(kill.landed);
        if !kill.landed {
            tally.ran_out.push(kill.at.clone());
        }
    }
    // Past the count, a run that ends first is the expected end of a round.
    for kill in kills.into_iter().chain(extra) {
        tally.mid_work += usize::from(kill.mid_work);
        tally.lease_held += usize::from(kill.landed && kill.lease_held);
        tally.violations.extend(kill.violations);
    }
    Ok(tally)
}

/// Whether strace can trace here; `cannot_run` says why not.
fn strace_works() -> bool {
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            cannot_run(
                "kill at every system call",
                &format!(
                    "strace cannot trace here (ptrace refused?): {}",
                    stderr(&out)
                ),
            );
            false
        }
        Err(e) => {
            cannot_run(
                "kill at every system call",
                &format!("`strace` cannot run ({e}); .ci/run apt-gets it"),
            );
            false
        }
    }
}

#[test]
fn a_sigkill_at_every_system_call_loses_nothing_and_the_next_sweep_converges() {
    if !strace_works() {
        return;
    }
    let started = Instant::now();
    let template = Template::new().expect("the template catalog");
    let mut violations = Vec::new();
    let mut total = 0;
    for scenario in [Scenario::Sweep, Scenario::Orphans, Scenario::Clean] {
        let at = Instant::now();
        let tally = match enumerate(&template, scenario) {
            Ok(tally) => tally,
            // The child attaches with `strace -p`, which a ptrace policy
            // may refuse where tracing a child is allowed.
            Err(e) if e.contains("did not attach") => {
                cannot_run(scenario.label(), &e);
                continue;
            }
            Err(e) => panic!("{}: {e}", scenario.label()),
        };
        // What did not land is named: `execve:1` is strace starting the
        // writer, before it is a tracee strace tampers with.
        println!(
            "{}: {} kills ({} system-call names, every invocation), {} landed (not: {:?}); past the traced counts {} more, {} landed; {} mid-work{}, {} violations, {:.1} s",
            scenario.label(),
            tally.calls,
            tally.names,
            tally.landed,
            tally.ran_out,
            tally.beyond.0,
            tally.beyond.1,
            tally.mid_work,
            if scenario == Scenario::Sweep {
                format!(" ({} with the lease held)", tally.lease_held)
            } else {
                String::new()
            },
            tally.violations.len(),
            at.elapsed().as_secs_f64()
        );
        total += tally.calls + tally.beyond.0;
        // A kill that only ever lands before the first write or after the
        // last tests nothing.
        assert!(
            tally.mid_work > 0,
            "{}: no kill landed mid-work",
            scenario.label()
        );
        if scenario == Scenario::Sweep {
            assert!(
                tally.lease_held > 0,
                "sweep: no kill landed between the lease's acquire and release"
            );
        }
        violations.extend(tally.violations);
    }
    println!(
        "kill at every system call: {total} kills, {} violations, {:.1} s",
        violations.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The child `traced_child` re-executes: tells its thread, waits for the
/// parent's strace to attach, then cleans each finished ephemeral sandbox
/// as a runtime's exit path does. Does nothing when run on its own.
#[test]
#[ignore = "a child process of the test above; does nothing on its own"]
fn child_cleans_finished_ephemeral_sandboxes() -> TestResult {
    let Some(home) = std::env::var_os(CHILD_HOME).map(PathBuf::from) else {
        return Ok(());
    };
    let ids: Vec<i64> = std::env::var(CHILD_IDS)?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // Opened before the trace starts, as a runtime's catalog is long before
    // its exit path cleans up.
    let catalog = Catalog::open(home.join("catalog.db"))?;
    let (sandboxes, run) = (home.join("sandboxes"), home.join("run"));
    let ids: Vec<i64> = HOME
        .iter()
        .zip(ids)
        .filter(|(spec, _)| cleanable(spec))
        .map(|(_, id)| id)
        .collect();
    let go = UnixDatagram::bind(home.join(GO_SOCKET))?;
    // A parent that gave up is no reason to wait forever.
    go.set_read_timeout(Some(RUN_LIMIT))?;
    // "<pid>/task/<tid>": the thread strace must attach to, this one.
    let thread = std::fs::read_link("/proc/thread-self")?;
    let tid = thread.file_name().ok_or("no thread id")?.to_string_lossy();
    println!("{TID_MARK}{tid}");
    std::io::stdout().flush()?;
    // strace's attach interrupts the wait (a timed one is not restarted).
    let deadline = Instant::now() + RUN_LIMIT;
    while let Err(e) = go.recv(&mut [0u8; 1]) {
        if e.kind() != std::io::ErrorKind::Interrupted || Instant::now() > deadline {
            return Err(e.into());
        }
    }
    let sweeper = Sweeper::new(&sandboxes).run_dir(&run);
    for id in ids {
        let outcome = sweeper.clean_ephemeral(&catalog, SandboxId::new(id))?;
        println!("sandbox {id}: {outcome:?}");
    }
    Ok(())
}
