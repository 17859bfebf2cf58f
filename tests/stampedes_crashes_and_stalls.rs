//! Reliability under the conditions hosts really have: stampedes of starting
//! runtimes, sweepers killed at any instant, runtimes restarting sandboxes
//! while a sweep runs, and sweepers that stall past their lease.
//!
//! A custom harness (`harness = false`): the same binary is re-executed as
//! the worker processes these tests need (`SWEEP_TEST_ROLE`), and runs the
//! tests otherwise. Every loop and wait is bounded in count and time.
//! `SWEEP_CRASH_ITERATIONS` (default 50) sets the crash-injection count.

pub mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rusqlite::{Connection, OptionalExtension, params};
use sandbox_sweep::lease::{Acquire, MinInterval};
use sandbox_sweep::process::ProcessIdentity;
use sandbox_sweep::{Catalog, Limits, OpenOptions, SweepOutcome, Sweeper, SystemClock};

type Test = fn() -> TestResult;

fn main() {
    if let Ok(role) = std::env::var("SWEEP_TEST_ROLE") {
        let code = match worker(&role) {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("worker {role} failed: {err}");
                1
            }
        };
        std::process::exit(code);
    }
    let tests: [(&str, Test); 4] = [
        (
            "stampede_of_starting_runtimes_sweeps_one_at_a_time",
            stampede,
        ),
        ("sigkill_at_any_instant_loses_nothing", crash_injection),
        ("restarts_racing_sweeps_are_never_harmed", racing_restarter),
        (
            "fencing_stalled_sweeper_loses_its_lease_and_writes_nothing",
            fencing,
        ),
    ];
    // `cargo test -- --list` lists, as libtest does, and runs nothing.
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in &tests {
            println!("{name}: test");
        }
        println!("\n{} tests, 0 benchmarks", tests.len());
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        match test() {
            Ok(()) => {
                passed += 1;
                println!(
                    "test {name} ... ok ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
            }
            Err(err) => {
                failed += 1;
                println!("test {name} ... FAILED: {err}");
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

fn worker(role: &str) -> TestResult {
    let db = PathBuf::from(std::env::var("SWEEP_TEST_DB")?);
    let sandboxes = PathBuf::from(std::env::var("SWEEP_TEST_SANDBOXES")?);
    match role {
        "stampede" => stampede_worker(&db, &sandboxes),
        "sweep_loop" => sweep_loop_worker(&db, &sandboxes),
        other => Err(format!("unknown role {other}").into()),
    }
}

/// Re-executes this test binary as a worker.
fn spawn_worker(
    role: &str,
    db: &Path,
    sandboxes: &Path,
    extra: &[(&str, &str)],
) -> std::io::Result<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env("SWEEP_TEST_ROLE", role)
        .env("SWEEP_TEST_DB", db)
        .env("SWEEP_TEST_SANDBOXES", sandboxes)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn()
}

/// Waits for a child, killing it past `deadline`.
fn wait_bounded(
    mut child: Child,
    deadline: Instant,
) -> Result<std::process::Output, Box<dyn std::error::Error>> {
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if Instant::now() >= deadline {
            child.kill()?;
            let out = child.wait_with_output()?;
            return Err(format!(
                "child {} did not finish in time: {}",
                out.status,
                stderr(&out)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A tiny deterministic PRNG (xorshift), seeded and printed for replay.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("SWEEP_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        println!("  (seed {seed}: set SWEEP_TEST_SEED to replay)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Names of a catalog's groups, so checks can say what must hold for each.
struct Population {
    /// `(id, ephemeral)`: an ephemeral one is crashed, then removed.
    stale: Vec<(i64, bool)>,
    draining: Vec<i64>,
    ephemeral: Vec<(i64, String)>,
    persistent: Vec<(i64, String)>,
    live: Vec<(i64, String)>,
    live_ephemeral: Vec<(i64, String)>,
    bad_names: Vec<i64>,
}

struct Counts {
    stale: usize,
    draining: usize,
    ephemeral: usize,
    persistent: usize,
    live: usize,
    live_ephemeral: usize,
    bad_names: usize,
}

/// Fills a migrated catalog; directories are made by [`make_dirs`].
fn populate(db: &Path, n: &Counts) -> Result<Population, Box<dyn std::error::Error>> {
    let me = ProcessIdentity::current()?;
    let catalog = Catalog::open(db)?;
    let conn = catalog.connection();
    let now = sandbox_sweep::Clock::now(&SystemClock);
    let tx = conn.unchecked_transaction()?;
    let mut p = Population {
        stale: vec![],
        draining: vec![],
        ephemeral: vec![],
        persistent: vec![],
        live: vec![],
        live_ephemeral: vec![],
        bad_names: vec![],
    };
    {
        let mut sandbox = tx.prepare(
            "INSERT INTO sandbox (name, config, status, ephemeral) VALUES (?1, '{}', ?2, ?3)",
        )?;
        let mut run = tx.prepare(
            "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, 'Running', '2026-06-01 00:00:00')",
        )?;
        let mut add = |name: String, status: &str, ephemeral: bool| -> rusqlite::Result<i64> {
            sandbox.execute(params![name, status, ephemeral])?;
            Ok(tx.last_insert_rowid())
        };
        // Interleave the groups so every page mixes them.
        let most = [
            n.stale,
            n.draining,
            n.ephemeral,
            n.persistent,
            n.live,
            n.live_ephemeral,
            n.bad_names,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        for i in 0..most {
            if i < n.persistent {
                let name = format!("keep-{i}");
                p.persistent
                    .push((add(name.clone(), "Stopped", false)?, name));
            }
            if i < n.stale {
                let ephemeral = i % 3 == 0;
                let id = add(format!("stale-{i}"), "Running", ephemeral)?;
                run.execute(params![id, DEAD_PID])?;
                p.stale.push((id, ephemeral));
            }
            if i < n.draining {
                let id = add(format!("drain-{i}"), "Draining", false)?;
                run.execute(params![id, DEAD_PID])?;
                p.draining.push(id);
            }
            if i < n.ephemeral {
                let name = format!("eph-{i}");
                p.ephemeral.push((
                    add(
                        name.clone(),
                        if i % 2 == 0 { "Stopped" } else { "Crashed" },
                        true,
                    )?,
                    name,
                ));
            }
            if i < n.live {
                let name = format!("live-{i}");
                let id = add(name.clone(), "Running", false)?;
                catalog.insert_running_run(sandbox_sweep::SandboxId::new(id), &me, now)?;
                p.live.push((id, name));
            }
            if i < n.live_ephemeral {
                let name = format!("live-eph-{i}");
                let id = add(name.clone(), "Stopped", true)?;
                catalog.insert_running_run(sandbox_sweep::SandboxId::new(id), &me, now)?;
                p.live_ephemeral.push((id, name));
            }
            if i < n.bad_names {
                p.bad_names
                    .push(add(format!("../bad-{i}"), "Stopped", true)?);
            }
        }
    }
    tx.commit()?;
    Ok(p)
}

fn make_dirs(sandboxes: &Path, p: &Population) -> std::io::Result<()> {
    for (_, name) in p
        .ephemeral
        .iter()
        .chain(&p.persistent)
        .chain(&p.live)
        .chain(&p.live_ephemeral)
    {
        let dir = sandboxes.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("config.json"), b"{}")?;
    }
    Ok(())
}

fn status(conn: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT status FROM sandbox WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()
}

fn trash(sandboxes: &Path) -> PathBuf {
    sandboxes.join(".sandbox-sweep-trash")
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(msg().into()) }
}

/// What must hold at any instant, even right after a SIGKILL.
fn check_invariants(conn: &Connection, sandboxes: &Path, p: &Population) -> TestResult {
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    ensure(integrity == "ok", || {
        format!("integrity_check: {integrity}")
    })?;
    for (id, name) in p.persistent.iter().chain(&p.live_ephemeral) {
        ensure(status(conn, *id)?.as_deref() == Some("Stopped"), || {
            format!("{name} changed")
        })?;
        ensure(sandboxes.join(name).join("config.json").exists(), || {
            format!("{name} lost its directory")
        })?;
    }
    for (id, name) in &p.live {
        ensure(status(conn, *id)?.as_deref() == Some("Running"), || {
            format!("live {name} marked dead")
        })?;
        ensure(sandboxes.join(name).is_dir(), || {
            format!("live {name} lost its directory")
        })?;
    }
    for (id, name) in &p.ephemeral {
        let present = status(conn, *id)?.is_some();
        let dir = exists(&sandboxes.join(name));
        let in_trash = exists(&trash(sandboxes).join(format!("{id}-{name}")));
        ensure(present || !dir, || {
            format!("{name}: row deleted but directory left in place")
        })?;
        ensure(!present || dir || in_trash, || {
            format!("{name}: row kept but directory lost")
        })?;
    }
    // Each reconcile is atomic: sandbox and run change together.
    let torn: i64 = conn.query_row(
        "SELECT count(*) FROM sandbox s JOIN run r ON r.sandbox_id = s.id
         WHERE s.name LIKE 'stale-%' AND ((s.status = 'Crashed') != (r.status = 'Terminated'))",
        [],
        |r| r.get(0),
    )?;
    ensure(torn == 0, || {
        format!("{torn} stale sandboxes half reconciled")
    })?;
    for id in &p.bad_names {
        ensure(status(conn, *id)?.as_deref() == Some("Stopped"), || {
            format!("bad name row {id} changed")
        })?;
    }
    Ok(())
}

/// The state after everything has been swept.
fn check_converged(conn: &Connection, sandboxes: &Path, p: &Population) -> TestResult {
    check_invariants(conn, sandboxes, p)?;
    for (id, ephemeral) in &p.stale {
        let expected = if *ephemeral { None } else { Some("Crashed") };
        ensure(status(conn, *id)?.as_deref() == expected, || {
            format!("stale {id} is not {expected:?}")
        })?;
    }
    for id in &p.draining {
        ensure(status(conn, *id)?.as_deref() == Some("Stopped"), || {
            format!("draining {id} not stopped")
        })?;
    }
    for (id, name) in &p.ephemeral {
        ensure(status(conn, *id)?.is_none(), || {
            format!("ephemeral {name} not removed")
        })?;
        ensure(!exists(&sandboxes.join(name)), || {
            format!("ephemeral {name} directory left")
        })?;
    }
    let left: i64 = conn.query_row(
        "SELECT count(*) FROM run WHERE sandbox_id NOT IN (SELECT id FROM sandbox)",
        [],
        |r| r.get(0),
    )?;
    ensure(left == 0, || format!("{left} orphan runs left"))?;
    Ok(())
}

/// A full sweep as it would run once a killed sweeper's lease has expired
/// (the clock is moved past it rather than waiting 10 s).
fn full_sweep(
    db: &Path,
    sandboxes: &Path,
) -> Result<sandbox_sweep::Report, Box<dyn std::error::Error>> {
    let conn = sandbox_sweep::open(db)?;
    let catalog = Catalog::from_connection(conn)?;
    let later = || {
        sandbox_sweep::Clock::now(&SystemClock)
            + sandbox_sweep::lease::LEASE_DURATION
            + Duration::from_secs(1)
    };
    match Sweeper::new(sandboxes)
        .limits(Limits::unlimited())
        .force(true)
        .run_with(&catalog, &later)
    {
        SweepOutcome::Swept(report) => Ok(report),
        other => Err(format!("expected a full sweep, got {other:?}").into()),
    }
}

// ---------------------------------------------------------------- stampede

/// Appends `start <pid>` / `end <pid>` to a shared file, one `write` per line
/// (O_APPEND makes each atomic), when the library takes or gives back the lease.
struct LeaseLog(std::fs::File);

impl log::Log for LeaseLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let text = record.args().to_string();
        let line = if text.starts_with("maintenance lease acquired by pid") {
            format!("start {}\n", std::process::id())
        } else if text.starts_with("maintenance lease released by pid") {
            format!("end {}\n", std::process::id())
        } else {
            return;
        };
        let _ = (&self.0).write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

fn stampede_worker(db: &Path, sandboxes: &Path) -> TestResult {
    let log_path = std::env::var("SWEEP_TEST_LOG")?;
    let file = std::fs::OpenOptions::new().append(true).open(log_path)?;
    log::set_logger(Box::leak(Box::new(LeaseLog(file)))).map_err(|e| e.to_string())?;
    log::set_max_level(log::LevelFilter::Debug);
    let catalog = Catalog::from_connection(OpenOptions::new().open(db)?)?;
    let sweeper = Sweeper::new(sandboxes);
    let (mut swept, mut skipped, mut slowest) = (0, 0, Duration::ZERO);
    for _ in 0..5 {
        let started = Instant::now();
        match sweeper.run(&catalog) {
            SweepOutcome::Swept(_) => swept += 1,
            SweepOutcome::Skipped(_) => skipped += 1,
            SweepOutcome::Failed(err) => {
                return Err(format!("startup entry point failed: {err}").into());
            }
        }
        slowest = slowest.max(started.elapsed());
        // Runtimes start over a second or so, not all in one instant.
        std::thread::sleep(Duration::from_millis(
            100 + u64::from(std::process::id() % 100),
        ));
    }
    println!(
        "swept={swept} skipped={skipped} slowest_us={}",
        slowest.as_micros()
    );
    Ok(())
}

fn stampede() -> TestResult {
    const PROCESSES: usize = 100;
    let env = Env::new();
    let conn = env.conn();
    let counts = Counts {
        stale: 2000,
        draining: 500,
        ephemeral: 1500,
        persistent: 200,
        live: 50,
        live_ephemeral: 20,
        bad_names: 20,
    };
    let p = populate(&env.db, &counts)?;
    make_dirs(&env.sandboxes, &p)?;
    let log_path = env.dir.path().join("lease.log");
    std::fs::write(&log_path, b"")?;
    let log_str = log_path.to_str().ok_or("utf8")?;
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            spawn_worker(
                "stampede",
                &env.db,
                &env.sandboxes,
                &[("SWEEP_TEST_LOG", log_str)],
            )
        })
        .collect::<Result<_, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut swept, mut slowest_us) = (0u64, 0u64);
    for child in children {
        let out = wait_bounded(child, deadline)?;
        ensure(out.status.success(), || {
            format!("worker failed: {}", stderr(&out))
        })?;
        let text = stdout(&out);
        let field = |key: &str| -> u64 {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        swept += field("swept=");
        slowest_us = slowest_us.max(field("slowest_us="));
    }
    // At most one sweep in progress at any moment.
    let log = std::fs::read_to_string(&log_path)?;
    let mut holder: Option<&str> = None;
    let mut sweeps = 0;
    for line in log.lines() {
        match (line.split_once(' '), holder) {
            (Some(("start", pid)), None) => holder = Some(pid),
            (Some(("end", pid)), Some(h)) if h == pid => {
                holder = None;
                sweeps += 1;
            }
            _ => return Err(format!("overlapping sweeps at {line:?} (holder {holder:?})").into()),
        }
    }
    ensure(holder.is_none(), || "a sweep never ended".into())?;
    ensure(sweeps == swept, || {
        format!("{sweeps} logged sweeps, {swept} reported")
    })?;
    // Busy timeout (5 s) + budget (250 ms), with room for 100 processes on 2 cores.
    ensure(slowest_us < 8_000_000, || {
        format!("a call took {slowest_us} µs")
    })?;
    let completed = Catalog::from_connection(env.conn())?
        .lease_row()?
        .and_then(|r| r.last_completed_at);
    check_converged(&conn, &env.sandboxes, &p)
        .map_err(|e| format!("{e} (after {sweeps} sweeps; last completion {completed:?})"))?;
    println!(
        "  {PROCESSES} processes x 5 calls: {sweeps} sweeps, none overlapping; slowest call {} ms",
        slowest_us / 1000
    );
    Ok(())
}

// ---------------------------------------------------------- crash injection

fn crash_injection() -> TestResult {
    let iterations: u32 = std::env::var("SWEEP_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut rng = Rng::new();
    let template_env = Env::new();
    let conn = template_env.conn();
    let counts = Counts {
        stale: 20_000,
        draining: 1000,
        ephemeral: 400,
        persistent: 50,
        live: 20,
        live_ephemeral: 10,
        bad_names: 10,
    };
    let p = populate(&template_env.db, &counts)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    let (mut killed_mid_sweep, mut restored_or_purged) = (0, 0);
    for i in 0..iterations {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("catalog.db");
        std::fs::copy(&template_env.db, &db)?;
        let sandboxes = dir.path().join("sandboxes");
        std::fs::create_dir(&sandboxes)?;
        make_dirs(&sandboxes, &p)?;
        let child = bin()
            .args([
                "sweep",
                "--db",
                db.to_str().ok_or("utf8")?,
                "--sandboxes-dir",
                sandboxes.to_str().ok_or("utf8")?,
            ])
            .args([
                "--force",
                "--max-active",
                "1000000",
                "--max-ephemeral",
                "1000000",
                "--budget-ms",
                "600000",
                "--json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = Pid::from_raw(i32::try_from(child.id())?);
        std::thread::sleep(Duration::from_millis(rng.below(350)));
        let _ = kill(pid, Signal::SIGKILL);
        let out = wait_bounded(child, Instant::now() + Duration::from_secs(30))?;
        let conn = Connection::open(&db)?;
        // Mid-sweep: the kill landed (no exit status) after some rows
        // changed and before the last one did.
        let stale_left: i64 = conn.query_row(
            "SELECT count(*) FROM sandbox WHERE status IN ('Running', 'Draining') OR (ephemeral = 1 AND status IN ('Stopped', 'Crashed'))",
            [],
            |r| r.get(0),
        )?;
        let candidates = i64::try_from(
            counts.stale
                + counts.draining
                + counts.ephemeral
                + counts.live
                + counts.live_ephemeral
                + counts.bad_names,
        )?;
        let left_of_the_dead =
            stale_left - i64::try_from(counts.live + counts.live_ephemeral + counts.bad_names)?;
        if out.status.code().is_none() && stale_left < candidates && left_of_the_dead > 0 {
            killed_mid_sweep += 1;
        }
        check_invariants(&conn, &sandboxes, &p)
            .map_err(|e| format!("iteration {i}, after the kill: {e}"))?;
        if exists(&trash(&sandboxes)) && std::fs::read_dir(trash(&sandboxes))?.next().is_some() {
            restored_or_purged += 1;
        }
        full_sweep(&db, &sandboxes)?;
        check_converged(&conn, &sandboxes, &p)
            .map_err(|e| format!("iteration {i}, after the next sweep: {e}"))?;
        let in_trash = std::fs::read_dir(trash(&sandboxes)).map_or(0, |d| d.count());
        ensure(!exists(&trash(&sandboxes)), || {
            format!("iteration {i}: the trash is left behind with {in_trash} entries")
        })?;
    }
    println!(
        "  {iterations} runs, {killed_mid_sweep} killed mid-sweep, {restored_or_purged} left trash that the next sweep sorted; 0 violations"
    );
    // A kill that always came before the first write or after the last
    // would test nothing.
    ensure(killed_mid_sweep > 0, || {
        format!("none of {iterations} kills landed mid-sweep")
    })?;
    Ok(())
}

// --------------------------------------------------------- racing restarter

fn sweep_loop_worker(db: &Path, sandboxes: &Path) -> TestResult {
    let stop = PathBuf::from(std::env::var("SWEEP_TEST_STOP")?);
    let catalog = Catalog::from_connection(OpenOptions::new().open(db)?)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sweeps = 0;
    let mut rng = Rng::new();
    while !stop.exists() && Instant::now() < deadline && sweeps < 100_000 {
        // Real sweeps are at most one per lease window; a loop that never
        // pauses would keep the write lock from the restarter (SQLite's busy
        // wait is not fair) and test nothing but that.
        std::thread::sleep(Duration::from_micros(rng.below(1000)));
        match Sweeper::new(sandboxes)
            .force(true)
            .batch_size(8)
            .max_ephemeral(40)
            .run(&catalog)
        {
            SweepOutcome::Failed(err) => return Err(format!("sweep failed: {err}").into()),
            SweepOutcome::Swept(_) => sweeps += 1,
            SweepOutcome::Skipped(_) => {}
        }
    }
    println!("sweeps={sweeps}");
    Ok(())
}

// The restart branch may give up before inserting, which the entry API does not fit.
#[allow(clippy::map_entry)]
fn racing_restarter() -> TestResult {
    let env = Env::new();
    let conn = OpenOptions::new().open(&env.db)?;
    let catalog = Catalog::from_connection(conn)?;
    let conn = catalog.connection();
    let me = ProcessIdentity::current()?;
    let mut rng = Rng::new();
    // Candidates the sweeper wants: finished ephemeral sandboxes (removed)
    // and persistent crashed ones (kept), plus stale ones to reconcile.
    let mut pool: Vec<(i64, String)> = Vec::new();
    let mut created = 0;
    let mut create =
        |conn: &Connection, pool: &mut Vec<(i64, String)>, ephemeral: bool| -> TestResult {
            let name = format!("sb-{created}");
            created += 1;
            let status = if ephemeral { "Stopped" } else { "Crashed" };
            pool.push((add_sandbox(conn, &name, status, ephemeral), name.clone()));
            std::fs::create_dir(env.sandboxes.join(&name))?;
            Ok(())
        };
    for i in 0..300 {
        create(conn, &mut pool, i % 4 != 0)?;
    }
    for i in 0..200 {
        let id = add_sandbox(conn, &format!("stale-{i}"), "Running", false);
        add_run(conn, id, Some(DEAD_PID));
    }
    let stop = env.dir.path().join("stop");
    let child = spawn_worker(
        "sweep_loop",
        &env.db,
        &env.sandboxes,
        &[("SWEEP_TEST_STOP", stop.to_str().ok_or("utf8")?)],
    )?;

    // id -> (name, the file written after the restart)
    let mut running: std::collections::HashMap<i64, (String, PathBuf)> =
        std::collections::HashMap::new();
    let (mut restarts, mut stops, mut steps, mut gone) = (0, 0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline && steps < 20_000 {
        steps += 1;
        if rng.below(4) == 0 || pool.is_empty() {
            create(conn, &mut pool, rng.below(4) != 0)?;
        }
        let pick = rng.below(pool.len() as u64) as usize;
        let (id, name) = pool[pick].clone();
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        if running.contains_key(&id) {
            // The runtime stops it again: finished, so fair game for the sweep.
            tx.execute(
                "UPDATE run SET status = 'Terminated' WHERE sandbox_id = ?1 AND status = 'Running'",
                [id],
            )?;
            tx.execute("UPDATE sandbox SET status = 'Stopped' WHERE id = ?1", [id])?;
            tx.commit()?;
            running.remove(&id);
            stops += 1;
        } else {
            // Restart it the way a runtime does: under the write lock, check
            // it is still there and finished, record the run, mark it Running.
            match status(&tx, id)?.as_deref() {
                Some("Stopped" | "Crashed") => {}
                // Removed by a sweep: pick among the others from now on,
                // or a fast sweeper leaves the restarter nothing to race.
                None => {
                    pool.swap_remove(pick);
                    gone += 1;
                    continue;
                }
                _ => continue,
            }
            let now = sandbox_sweep::Clock::now(&SystemClock);
            catalog.insert_running_run(sandbox_sweep::SandboxId::new(id), &me, now)?;
            tx.execute("UPDATE sandbox SET status = 'Running' WHERE id = ?1", [id])?;
            tx.commit()?;
            // Then it works in its directory, which must still be there.
            let file = env.sandboxes.join(&name).join(format!("restart-{steps}"));
            std::fs::write(&file, b"restarted")
                .map_err(|e| format!("restarted {name} lost its directory: {e}"))?;
            running.insert(id, (name, file));
            restarts += 1;
        }
        // Check every live restart still holds, while sweeps go on.
        if steps % 50 == 0 {
            for (id, (name, file)) in &running {
                ensure(status(conn, *id)?.as_deref() == Some("Running"), || {
                    format!("restarted {name} was changed")
                })?;
                ensure(file.exists(), || {
                    format!("restarted {name} lost {}", file.display())
                })?;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
    }
    std::fs::write(&stop, b"")?;
    let out = wait_bounded(child, Instant::now() + Duration::from_secs(90))?;
    ensure(out.status.success(), || {
        format!("sweeper failed: {}", stderr(&out))
    })?;
    for (id, (name, file)) in &running {
        ensure(status(conn, *id)?.as_deref() == Some("Running"), || {
            format!("restarted {name} was changed")
        })?;
        ensure(file.exists(), || {
            format!("restarted {name} lost {}", file.display())
        })?;
        let live_runs: i64 = conn.query_row(
            "SELECT count(*) FROM run WHERE sandbox_id = ?1 AND status = 'Running'",
            [id],
            |r| r.get(0),
        )?;
        ensure(live_runs == 1, || {
            format!("restarted {name} has {live_runs} running runs")
        })?;
    }
    let sweeps: u64 = stdout(&out)
        .lines()
        .find_map(|line| line.strip_prefix("sweeps="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    ensure(sweeps >= 10 && restarts >= 100, || {
        format!(
            "too little racing: {sweeps} sweeps, {restarts} restarts, {stops} stops, {gone} gone, {steps} steps"
        )
    })?;
    println!(
        "  {restarts} restarts and {stops} stops racing {sweeps} sweeps ({gone} sandboxes removed under the restarter) over {steps} steps; 0 violations"
    );
    Ok(())
}

// ------------------------------------------------------------------ fencing

fn fencing() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    // Big directories: most of the sweep is spent deleting trash, outside
    // the write lock, where a stall is most likely to land.
    let mut ids = Vec::new();
    for i in 0..1200 {
        let name = format!("eph-{i}");
        ids.push(add_sandbox(&conn, &name, "Stopped", true));
        let dir = env.sandboxes.join(&name);
        std::fs::create_dir(&dir)?;
        for f in 0..40 {
            std::fs::write(dir.join(format!("f{f}")), b"x")?;
        }
    }
    let mut child = bin()
        .args(env.sweep_args(&["--json"]))
        .args(["--max-ephemeral", "1000000", "--budget-ms", "600000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = Pid::from_raw(i32::try_from(child.id())?);
    // Stop it once it holds the lease but not the write lock.
    let probe = OpenOptions::new()
        .busy_timeout(Duration::ZERO)
        .open(&env.db)?;
    let probe_catalog = Catalog::from_connection(probe)?;
    let probe = probe_catalog.connection();
    let mut stopped = false;
    for _ in 0..400 {
        std::thread::sleep(Duration::from_millis(3));
        let held = probe_catalog
            .lease_row()?
            .is_some_and(|r| r.holder_pid == Some(i64::from(pid.as_raw())));
        if !held {
            continue;
        }
        kill(pid, Signal::SIGSTOP)?;
        if probe.execute_batch("BEGIN IMMEDIATE; ROLLBACK").is_ok() {
            stopped = true;
            break;
        }
        kill(pid, Signal::SIGCONT)?;
    }
    if !stopped {
        let _ = child.kill();
        return Err("could not stop the sweeper outside a transaction".into());
    }
    // Wait out its lease (bounded), then take over and sweep.
    let expires = probe_catalog
        .lease_row()?
        .and_then(|r| r.expires_at)
        .ok_or("no lease expiry")?;
    let takeover_deadline = Instant::now() + Duration::from_secs(15);
    let catalog = Catalog::from_connection(conn)?;
    let conn = catalog.connection();
    let mut lease = loop {
        let now = sandbox_sweep::Clock::now(&SystemClock);
        if now > expires
            && let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, MinInterval::Ignore)?
        {
            break lease;
        }
        if Instant::now() > takeover_deadline {
            let _ = kill(pid, Signal::SIGCONT);
            let _ = child.kill();
            return Err("could not take over the expired lease".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = Sweeper::new(&env.sandboxes)
        .limits(Limits::unlimited())
        .sweep(&mut lease, &SystemClock)?;
    ensure(!report.lease_lost, || {
        "the new holder lost its lease".into()
    })?;
    // New work arrives that only the stalled sweeper could reach next.
    let mut fresh = Vec::new();
    for i in 0..5 {
        let name = format!("late-{i}");
        fresh.push(add_sandbox(conn, &name, "Stopped", true));
        std::fs::create_dir(env.sandboxes.join(&name))?;
    }
    kill(pid, Signal::SIGCONT)?;
    let out = wait_bounded(child, Instant::now() + Duration::from_secs(60))?;
    ensure(out.status.success(), || {
        format!("stalled sweeper: {}", stderr(&out))
    })?;
    let line = &json_line(&out);
    ensure(json_field(line, "lease_lost") == "true", || {
        format!("stalled sweeper did not report lease_lost: {line}")
    })?;
    for (i, id) in fresh.iter().enumerate() {
        ensure(status(conn, *id)?.as_deref() == Some("Stopped"), || {
            format!("late-{i} was touched")
        })?;
        ensure(env.sandboxes.join(format!("late-{i}")).is_dir(), || {
            format!("late-{i} lost its directory")
        })?;
    }
    let row = catalog.lease_row()?.ok_or("no lease row")?;
    ensure(
        row.holder_pid == Some(i64::from(std::process::id())),
        || "the takeover lease was overwritten".into(),
    )?;
    lease.release()?;
    println!("  stalled sweeper resumed after takeover: lease_lost reported, nothing written");
    Ok(())
}
