//! Real fault injectors against the built binary: libfiu (`fiu-run -x`)
//! failing libc calls at random, strace (`-e inject=`) failing the system
//! calls a sweep makes, and a catalog on a tmpfs filled to the last byte.
//!
//! After every faulty run: the exit status is 0 or 1 (never a panic's 101,
//! never a signal), the database passes `integrity_check`, live and
//! persistent sandboxes are untouched, and no row is gone while its
//! directory stays outside the trash. Once the faults stop, one clean sweep
//! converges to the exact expected catalog and leaves no trash.
//!
//! The injectors are test-only system tools; `.ci/run` installs them. Where
//! one is missing outside CI, its test says so loudly and passes.

pub mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use rusqlite::Connection;

/// Calls libfiu fails at random. Not `poll` (Rust's runtime aborts before
/// `main` when it fails) and not `close` (no real close fails with the
/// `EBADF` libfiu may pick).
const FIU_POINTS: [&str; 12] = [
    "posix/io/oc/open",
    "posix/io/rw/read",
    "posix/io/rw/write",
    "posix/io/rw/pread",
    "posix/io/rw/pwrite",
    "posix/io/rw/ftruncate",
    "posix/io/dir/rename",
    "posix/io/dir/unlink",
    "posix/io/dir/fdopendir",
    "posix/io/dir/readdir",
    "posix/io/sync/fsync",
    "posix/io/sync/fdatasync",
];

/// System calls strace fails, each with an error real systems return.
const STRACE_FAULTS: [(&str, &str); 10] = [
    ("openat", "EMFILE"),
    ("renameat", "EIO"),
    ("unlinkat", "EBUSY"),
    ("mkdirat", "ENOSPC"),
    ("newfstatat", "EACCES"),
    ("getdents64", "EIO"),
    ("pwrite64", "ENOSPC"),
    ("fsync", "EIO"),
    ("fcntl", "EIO"),
    ("kill", "EPERM"),
];

/// Whether `tool` runs here; outside CI (which installs it) a missing tool
/// skips the test, loudly.
fn have(tool: &str, what: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        cannot_run(
            what,
            &format!("`{tool}` is not installed (.ci/run apt-gets it)"),
        );
    }
    found
}

/// A catalog with something for every rule, and what each row must become.
struct Scene {
    env: Env,
    /// `Running`, runtime dead: `Crashed` once swept.
    stale: Vec<i64>,
    /// `Draining`, runtime dead: `Stopped` once swept.
    draining: Vec<i64>,
    /// Finished ephemeral sandboxes with directories: removed once swept.
    finished: Vec<(i64, String)>,
    /// `Running` with a live runtime (this test process): untouched.
    live: Vec<i64>,
    /// Finished ephemeral, but a run still lives: kept, with its files.
    live_ephemeral: Vec<(i64, String)>,
    /// Persistent and stopped, with directories: never touched.
    persistent: Vec<(i64, String)>,
}

fn sandbox_dir(sandboxes: &Path, name: &str) {
    let dir = sandboxes.join(name).join("rootfs/etc");
    std::fs::create_dir_all(&dir).expect("mkdir sandbox");
    std::fs::write(dir.join("data"), name.as_bytes()).expect("write sandbox file");
}

impl Scene {
    fn new() -> Scene {
        Scene::in_env(Env::new())
    }

    fn in_env(env: Env) -> Scene {
        let conn = env.conn();
        let me = Some(own_pid());
        let mut scene = Scene {
            stale: Vec::new(),
            draining: Vec::new(),
            finished: Vec::new(),
            live: Vec::new(),
            live_ephemeral: Vec::new(),
            persistent: Vec::new(),
            env,
        };
        let sandboxes = scene.env.sandboxes.clone();
        for i in 0..24 {
            let id = add_sandbox(&conn, &format!("stale-{i}"), "Running", false);
            add_run(&conn, id, Some(DEAD_PID));
            scene.stale.push(id);
        }
        for i in 0..8 {
            let id = add_sandbox(&conn, &format!("draining-{i}"), "Draining", false);
            add_run(&conn, id, Some(DEAD_PID));
            scene.draining.push(id);
        }
        for i in 0..24 {
            let name = format!("finished-{i}");
            let id = add_sandbox(
                &conn,
                &name,
                if i % 2 == 0 { "Stopped" } else { "Crashed" },
                true,
            );
            add_run(&conn, id, Some(DEAD_PID));
            sandbox_dir(&sandboxes, &name);
            scene.finished.push((id, name));
        }
        for i in 0..4 {
            let id = add_sandbox(&conn, &format!("live-{i}"), "Running", false);
            add_run(&conn, id, me);
            scene.live.push(id);
            let name = format!("live-eph-{i}");
            let id = add_sandbox(&conn, &name, "Stopped", true);
            add_run(&conn, id, me);
            sandbox_dir(&sandboxes, &name);
            scene.live_ephemeral.push((id, name));
            let name = format!("kept-{i}");
            let id = add_sandbox(&conn, &name, "Stopped", false);
            sandbox_dir(&sandboxes, &name);
            scene.persistent.push((id, name));
        }
        scene
    }

    fn trash(&self) -> PathBuf {
        self.env.sandboxes.join(TRASH_DIR)
    }

    /// The sweep command line, with limits lifted so one run can finish.
    fn sweep_args(&self) -> Vec<&str> {
        self.env.sweep_args(&[
            "--force",
            "--json",
            "--max-active",
            "100000",
            "--max-ephemeral",
            "100000",
            "--budget-ms",
            "5000",
        ])
    }

    /// What must hold after any run, faulty or not: the violations found.
    fn violations(&self, out: &Output) -> Vec<String> {
        let mut bad = Vec::new();
        match out.status.code() {
            Some(0 | 1) => {}
            code => bad.push(format!("exit {code:?}: {}", stderr(out))),
        }
        // What was left in place, one `warning:` line each (path and
        // error), then at most one `error:` line, last.
        let err = stderr(out);
        let lines: Vec<&str> = err.lines().collect();
        let (last, warnings) = lines
            .split_last()
            .map_or((None, &[][..]), |(l, w)| (Some(*l), w));
        let well_formed = warnings.iter().all(|l| l.starts_with("warning: "))
            && last.is_none_or(|l| l.starts_with("warning: ") || l.starts_with("error: "));
        if !well_formed {
            bad.push(format!(
                "stderr is not warnings then one error line: {err:?}"
            ));
        }
        let conn = match Connection::open(&self.env.db) {
            Ok(conn) => conn,
            Err(e) => return vec![format!("catalog cannot be opened: {e}")],
        };
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap_or_else(|e| e.to_string());
        if check != "ok" {
            bad.push(format!("integrity_check: {check}"));
        }
        let status = |id: i64| status_of(&conn, id);
        for &id in &self.live {
            if status(id).as_deref() != Some("Running") {
                bad.push(format!("live sandbox {id} is {:?}", status(id)));
            }
        }
        for (id, name) in self.live_ephemeral.iter().chain(&self.persistent) {
            if status(*id).as_deref() != Some("Stopped") {
                bad.push(format!("kept sandbox {name} is {:?}", status(*id)));
            }
            let file = self.env.sandboxes.join(name).join("rootfs/etc/data");
            if std::fs::read(&file).ok().as_deref() != Some(name.as_bytes()) {
                bad.push(format!("kept sandbox {name} lost its files"));
            }
        }
        for &id in &self.stale {
            if !matches!(status(id).as_deref(), Some("Running" | "Crashed")) {
                bad.push(format!("stale sandbox {id} is {:?}", status(id)));
            }
        }
        for &id in &self.draining {
            if !matches!(status(id).as_deref(), Some("Draining" | "Stopped")) {
                bad.push(format!("draining sandbox {id} is {:?}", status(id)));
            }
        }
        for (id, name) in &self.finished {
            if status(*id).is_none() && exists(&self.env.sandboxes.join(name)) {
                bad.push(format!(
                    "{name}: row deleted, directory still outside the trash"
                ));
            }
        }
        bad
    }

    /// What must hold once a clean sweep ran after the faults.
    fn converged(&self) -> Vec<String> {
        let conn = self.env.conn();
        let mut bad = Vec::new();
        for &id in &self.stale {
            if status_of(&conn, id).as_deref() != Some("Crashed") {
                bad.push(format!("stale {id} not Crashed"));
            }
        }
        for &id in &self.draining {
            if status_of(&conn, id).as_deref() != Some("Stopped") {
                bad.push(format!("draining {id} not Stopped"));
            }
        }
        for (id, name) in &self.finished {
            if status_of(&conn, *id).is_some() || exists(&self.env.sandboxes.join(name)) {
                bad.push(format!("{name} not removed"));
            }
        }
        let runs: i64 = conn
            .query_row(
                "SELECT count(*) FROM run WHERE sandbox_id NOT IN (SELECT id FROM sandbox)",
                [],
                |r| r.get(0),
            )
            .unwrap_or(-1);
        if runs != 0 {
            bad.push(format!("{runs} orphan runs"));
        }
        if exists(&self.trash()) {
            let entries: Vec<_> = std::fs::read_dir(self.trash())
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
                .unwrap_or_default();
            bad.push(format!("the trash is left behind, holding {entries:?}"));
        }
        bad
    }
}

/// Runs one faulty sweep and checks it; the violations found.
fn faulty_run(scene: &Scene, mut cmd: Command) -> (Output, Vec<String>) {
    let out = cmd.stdin(Stdio::null()).output().expect("run the injector");
    let bad = scene.violations(&out);
    (out, bad)
}

/// Sweeps with no fault, then checks convergence; the violations found.
///
/// A faulty run whose lease release failed left the lease held: it expires
/// after 10 s (a dead or failed holder is handled by expiry, by design), so
/// the clean sweep is retried while it is skipped as `held`, for at most
/// 15 s.
fn converge(scene: &Scene) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut out = cli(&scene.sweep_args());
    while json_line(&out).contains("\"skip_reason\":\"held\"")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(500));
        out = cli(&scene.sweep_args());
    }
    let mut bad = scene.violations(&out);
    if !json_line(&out).contains("\"outcome\":\"swept\"") {
        bad.push(format!("the clean sweep did not run: {}", json_line(&out)));
    }
    if out.status.code() != Some(0) {
        bad.push(format!("the clean sweep failed: {}", stderr(&out)));
    }
    bad.extend(scene.converged());
    bad
}

#[test]
fn random_libc_failures_never_break_the_catalog() {
    if !have("fiu-run", "libfiu injection") {
        return;
    }
    let (mut runs, mut failed_runs, mut violations) = (0, 0, Vec::new());
    for probability in ["0.01", "0.05", "0.2"] {
        let scene = Scene::new();
        for _ in 0..8 {
            let mut cmd = Command::new("fiu-run");
            cmd.args(["-x", "-f", ""]);
            for point in FIU_POINTS {
                cmd.args([
                    "-c",
                    &format!("enable_random name={point},probability={probability}"),
                ]);
            }
            cmd.arg(env!("CARGO_BIN_EXE_sandbox-sweep"))
                .args(scene.sweep_args());
            let (out, bad) = faulty_run(&scene, cmd);
            runs += 1;
            // A run that saw a failure says so: exit 1, or errors counted.
            let json = json_line(&out);
            let saw = out.status.code() != Some(0)
                || !json.contains("\"errors\":0")
                || !json.contains("\"complete\":true");
            failed_runs += usize::from(saw);
            violations.extend(bad.into_iter().map(|v| format!("p={probability}: {v}")));
        }
        violations.extend(
            converge(&scene)
                .into_iter()
                .map(|v| format!("p={probability}, converging: {v}")),
        );
    }
    println!("libfiu: {runs} faulty runs, {failed_runs} saw a failure");
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(failed_runs > 0, "no injected failure was ever seen");
}

/// How many `syscall` calls the binary makes before it does any work (the
/// dynamic loader's, the runtime's): `--version` makes only those. Failing
/// them tests the loader, not the sweep.
fn startup_calls(syscall: &str, dir: &Path) -> usize {
    let log = dir.join(format!("startup-{syscall}"));
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args([
            "-e",
            &format!("trace={syscall}"),
            env!("CARGO_BIN_EXE_sandbox-sweep"),
            "--version",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("run strace");
    assert!(status.success(), "strace --version failed");
    std::fs::read_to_string(&log)
        .expect("strace log")
        .lines()
        .filter(|l| l.contains(&format!("{syscall}(")))
        .count()
}

#[test]
fn failed_system_calls_never_break_the_catalog() {
    if !have("strace", "strace injection") {
        return;
    }
    let (mut runs, mut injected_runs, mut violations) = (0, 0, Vec::new());
    for (syscall, errno) in STRACE_FAULTS {
        let scene = Scene::new();
        let skip = startup_calls(syscall, scene.env.dir.path());
        for (first, step) in [(1, 4), (3, 9), (2, 2)] {
            let when = format!("{}+{step}", skip + first);
            let log = scene
                .env
                .dir
                .path()
                .join(format!("strace-{syscall}-{when}"));
            let mut cmd = Command::new("strace");
            cmd.args(["-f", "-qq", "-o"])
                .arg(&log)
                .args([
                    "-e",
                    &format!("trace={syscall}"),
                    "-e",
                    &format!("inject={syscall}:error={errno}:when={when}"),
                    env!("CARGO_BIN_EXE_sandbox-sweep"),
                ])
                .args(scene.sweep_args());
            let (_, bad) = faulty_run(&scene, cmd);
            runs += 1;
            let trace = std::fs::read_to_string(&log).unwrap_or_default();
            if trace.contains("(INJECTED)") {
                injected_runs += 1;
            }
            violations.extend(
                bad.into_iter()
                    .map(|v| format!("{syscall}={errno} when={when}: {v}")),
            );
        }
        violations.extend(
            converge(&scene)
                .into_iter()
                .map(|v| format!("{syscall}={errno}, converging: {v}")),
        );
    }
    println!("strace: {runs} faulty runs, {injected_runs} with at least one injected failure");
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(
        injected_runs >= runs / 2,
        "{injected_runs} of {runs} runs injected anything"
    );
}

/// A tmpfs mounted on a directory of the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` to its last byte; the filler file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    while file.write_all(&[0]).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_disk_loses_nothing_and_the_next_sweep_converges() {
    if !root_for("full disk: a tmpfs filled to the last byte") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "running as root but could not mount a tmpfs");
    let _tmpfs = Tmpfs(mount.clone());
    let env = Env::in_dir(&mount);
    let scene = Scene::in_env(env);
    let mut violations = Vec::new();
    let mut exits = Vec::new();
    for _ in 0..3 {
        let filler = fill(&mount);
        let out = cli(&scene.sweep_args());
        exits.push(out.status.code());
        // Reading a WAL catalog needs room for its index files too, so the
        // checks run once the space is back; nothing else touches it meanwhile.
        std::fs::remove_file(filler).expect("free the space");
        violations.extend(scene.violations(&out));
    }
    violations.extend(converge(&scene));
    println!("full disk: exits {exits:?}");
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(
        exits.contains(&Some(1)),
        "no sweep ever met the full disk: {exits:?}"
    );
}
