//! The `sandbox-sweep` binary as a user runs it: exit codes, messages, JSON.

pub mod common;

use common::*;
use std::time::Duration;

fn assert_one_error_line(out: &std::process::Output) {
    let err = stderr(out);
    assert!(err.starts_with("error: "), "stderr: {err:?}");
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
}

#[test]
fn init_creates_and_migrates_idempotently() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("new.db");
    let db_str = db.to_str().ok_or("utf8")?;
    for _ in 0..2 {
        let out = cli(&["init", "--db", db_str]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let conn = rusqlite::Connection::open(&db)?;
    let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
    assert!(catalog.has_identity_columns());
    Ok(())
}

#[test]
fn sweep_json_reports_what_it_did_then_skips_as_recent() -> TestResult {
    let (env, conn, dead, eph) = dead_and_finished();
    add_sandbox(&conn, "..", "Crashed", true);

    let args = env.sweep_args(&["--json"]);
    let out = cli(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = &json_line(&out);
    assert_eq!(json_field(line, "outcome"), "\"swept\"");
    assert_eq!(json_field(line, "skip_reason"), "null");
    assert_eq!(json_field(line, "reconciled"), "1");
    assert_eq!(json_field(line, "removed"), "1");
    assert_eq!(json_field(line, "errors"), "1");
    assert_eq!(json_field(line, "timed_out"), "false");
    assert_eq!(json_field(line, "lease_lost"), "false");
    assert!(
        json_field(line, "elapsed_us").parse::<u64>().is_ok(),
        "{line}"
    );
    assert_eq!(status_of(&conn, dead).as_deref(), Some("Crashed"));
    assert_eq!(status_of(&conn, eph), None);
    assert!(!exists(&env.sandboxes.join("eph")));

    let out = cli(&args);
    assert_eq!(out.status.code(), Some(0));
    let line = &json_line(&out);
    assert_eq!(json_field(line, "outcome"), "\"skipped\"");
    assert_eq!(json_field(line, "skip_reason"), "\"recent\"");

    let mut forced = args.to_vec();
    forced.push("--force");
    let out = cli(&forced);
    let line = &json_line(&out);
    assert_eq!(json_field(line, "outcome"), "\"swept\"");
    Ok(())
}

#[test]
fn held_lease_is_a_skip_with_exit_zero() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    conn.execute(
        "INSERT INTO maintenance_lease VALUES (?1, 1, strftime('%Y-%m-%d %H:%M:%S', 'now', '+8 seconds'), NULL)",
        [sandbox_sweep::lease::LEASE_NAME],
    )?;
    let out = cli(&env.sweep_args(&["--force", "--json"]));
    assert_eq!(out.status.code(), Some(0));
    let line = &json_line(&out);
    assert_eq!(json_field(line, "skip_reason"), "\"held\"");
    let out = cli(&env.sweep_args(&[]));
    assert!(
        stdout(&out).starts_with("skipped (held)"),
        "{}",
        stdout(&out)
    );
    Ok(())
}

#[test]
fn dry_run_writes_nothing() -> TestResult {
    let (env, conn, dead, eph) = dead_and_finished();
    let out = cli(&env.sweep_args(&["--dry-run", "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = &json_line(&out);
    assert_eq!(json_field(line, "dry_run"), "true");
    assert_eq!(
        (json_field(line, "reconciled"), json_field(line, "removed")),
        ("1", "1")
    );
    assert_eq!(status_of(&conn, dead).as_deref(), Some("Running"));
    assert_eq!(status_of(&conn, eph).as_deref(), Some("Stopped"));
    assert!(exists(&env.sandboxes.join("eph")));
    let leases: i64 = conn.query_row("SELECT count(*) FROM maintenance_lease", [], |r| r.get(0))?;
    assert_eq!(leases, 0);
    Ok(())
}

#[test]
fn missing_catalog_is_an_error_and_is_not_created() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("absent.db");
    let out = cli(&[
        "sweep",
        "--db",
        db.to_str().ok_or("utf8")?,
        "--sandboxes-dir",
        "/nonexistent",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_error_line(&out);
    assert!(stderr(&out).contains("sandbox-sweep init"));
    assert!(!db.exists());
    let out = cli(&["status", "--db", db.to_str().ok_or("utf8")?]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!db.exists());
    Ok(())
}

#[test]
fn files_that_are_not_catalogs_are_left_byte_for_byte() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sandboxes = dir.path().to_str().ok_or("utf8")?;
    // Plain text, an empty file, and a SQLite database of some other program.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"hello, not a database\n")?;
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"")?;
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)?
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")?;
    for (path, names_init) in [(&text, false), (&empty, true), (&other, true)] {
        let before = std::fs::read(path)?;
        for command in [
            &[
                "sweep",
                "--db",
                path.to_str().ok_or("utf8")?,
                "--sandboxes-dir",
                sandboxes,
            ][..],
            &["status", "--db", path.to_str().ok_or("utf8")?],
        ] {
            let out = cli(command);
            assert_eq!(out.status.code(), Some(1), "{path:?}: {}", stderr(&out));
            assert_one_error_line(&out);
            if names_init {
                assert!(
                    stderr(&out).contains("sandbox-sweep init"),
                    "{}",
                    stderr(&out)
                );
            }
            assert!(std::fs::read(path)? == before, "{path:?} was modified");
        }
    }
    Ok(())
}

#[test]
fn missing_sandboxes_dir_is_an_error() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let eph = add_sandbox(&conn, "eph", "Stopped", true);
    let typo = env.dir.path().join("sandboxs");
    let out = cli(&[
        "sweep",
        "--db",
        env.db_str(),
        "--sandboxes-dir",
        typo.to_str().ok_or("utf8")?,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_error_line(&out);
    assert!(stderr(&out).contains("sandboxs"), "{}", stderr(&out));
    let line = &json_line(&out);
    assert_eq!(json_field(line, "outcome"), "\"swept\"");
    assert!(json_field(line, "error").contains("sandboxs"), "{line}");
    assert_eq!(status_of(&conn, eph).as_deref(), Some("Stopped"));
    Ok(())
}

#[test]
fn usage_errors_exit_two_with_one_line() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["sweep", "--db", "x.db", "--sandboxes-dir", "d", "--bogus"],
        &[
            "sweep",
            "--db",
            "x.db",
            "--sandboxes-dir",
            "d",
            "--max-active",
            "many",
        ],
        &[
            "sweep",
            "--db",
            "x.db",
            "--sandboxes-dir",
            "d",
            "--budget-ms",
            "-5",
        ],
        &["sweep", "--db", "x.db"],
        &["init", "--db"],
        &["help", "frobnicate"],
        &["help", "sweep", "status"],
    ] {
        let out = cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_one_error_line(&out);
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!std::path::Path::new("x.db").exists());
    }
}

#[test]
fn usage_errors_with_json_also_print_one_json_object() {
    let out = cli(&["status", "--json", "--db", "x.db", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert_one_error_line(&out);
    assert_eq!(
        stdout(&out),
        "{\"error\":\"usage\",\"message\":\"unknown argument `--bogus` for `status`\"}\n"
    );
}

#[test]
fn each_command_has_its_own_help() {
    for (args, has, lacks) in [
        (&["sweep", "--help"][..], "--max-active N", "--keep DIR"),
        (&["help", "sweep"], "--dry-run", "--all "),
        (&["status", "-h"], "--all ", "--dry-run"),
        (&["demo", "--help"], "--keep DIR", "--db PATH"),
        (&["init", "--db", "x.db", "--help"], "--db PATH", "--json"),
        (&["help"], "Commands:", "\0"),
    ] {
        let out = cli(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.starts_with("Usage:") || args == ["help"],
            "{args:?}: {text}"
        );
        assert!(text.contains(has), "{args:?} should show {has}: {text}");
        assert!(
            !text.contains(lacks),
            "{args:?} should not show {lacks}: {text}"
        );
    }
    assert_eq!(stdout(&cli(&["help"])), stdout(&cli(&["--help"])));
    assert!(!std::path::Path::new("x.db").exists());
}

#[test]
fn status_shows_counts_dead_runtimes_and_the_lease() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let live = add_sandbox(&conn, "live", "Running", false);
    add_run(&conn, live, Some(i64::from(std::process::id())));
    let dead = add_sandbox(&conn, "dead", "Running", false);
    add_run(&conn, dead, Some(DEAD_PID));
    add_sandbox(&conn, "eph", "Crashed", true);
    add_sandbox(&conn, "keep", "Stopped", false);
    // Another program's status string, and one stored as a BLOB.
    add_sandbox(&conn, "odd", "Exploded", false);
    let blob = add_sandbox(&conn, "blob", "Stopped", false);
    conn.execute(
        "UPDATE sandbox SET status = CAST('Running' AS BLOB) WHERE id = ?1",
        [blob],
    )?;
    let out = cli(&["status", "--db", env.db_str(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = stdout(&out);
    let me = std::process::id();
    assert_eq!(
        line,
        format!(
            "{{\"stale\":[{{\"list\":\"dead_active\",\"id\":{dead},\"name\":\"dead\",\"status\":\"Running\",\"reason\":\"no_such_process\"}}],\
             \"active\":[{{\"name\":\"live\",\"status\":\"Running\",\"pid\":{me}}},{{\"name\":\"dead\",\"status\":\"Running\",\"pid\":{DEAD_PID}}}],\
             \"by_status\":{{\"Crashed\":1,\"Running\":2,\"Stopped\":1}},\"other_status\":2,\"missing_indexes\":[],\"ephemeral_terminal\":1,\
             \"dead_active_count\":1,\"lifecycle_owned_count\":0,\"abandoned_starts_count\":0,\"active_count\":2,\
             \"lease\":null,\"install\":null,\"trash\":null,\"error\":null}}\n"
        )
    );
    let out = cli(&["status", "--db", env.db_str()]);
    let text = stdout(&out);
    assert!(
        text.contains("active sandboxes with a dead runtime now: 1"),
        "{text}"
    );
    assert!(text.contains("no_such_process"), "{text}");
    assert!(text.contains("\n  (other)           2\n"), "{text}");
    assert!(text.contains("lease: never taken"), "{text}");
    Ok(())
}

#[test]
fn verbose_sends_library_logs_to_stderr() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let dead = add_sandbox(&conn, "dead", "Running", false);
    add_run(&conn, dead, Some(DEAD_PID));
    let out = cli(&[
        "sweep",
        "-v",
        "--db",
        env.db_str(),
        "--sandboxes-dir",
        env.sandboxes_str(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("Running -> Crashed"), "{err}");
    let quiet = cli(&[
        "sweep",
        "--force",
        "--db",
        env.db_str(),
        "--sandboxes-dir",
        env.sandboxes_str(),
    ]);
    assert_eq!(stderr(&quiet), "");
    Ok(())
}

#[test]
fn demo_runs_with_no_arguments_and_keeps_on_request() -> TestResult {
    let out = cli(&["demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("reconciled 7 (crashed 6, stopped 1), removed 2, errors 2"),
        "{text}"
    );
    // The BLOB-named row and the invalid name: left alone, named by column.
    assert!(
        text.contains("rows left alone, a column not stored as declared: name 2"),
        "{text}"
    );
    assert!(
        text.contains("abandoned starts crashed (Starting, no run, no owner, no endpoint): 1"),
        "{text}"
    );
    assert!(text.contains("snapshot_in_progress 1"), "{text}");
    assert!(
        text.contains("pid_reused") && text.contains("rebooted"),
        "{text}"
    );
    assert!(text.contains("still there"), "{text}");

    let dir = tempfile::tempdir()?;
    let keep = dir.path().join("demo");
    let out = cli(&["demo", "--keep", keep.to_str().ok_or("utf8")?]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let conn = rusqlite::Connection::open(keep.join("catalog.db"))?;
    let crashed: i64 = conn.query_row(
        "SELECT count(*) FROM sandbox WHERE status = 'Crashed'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(crashed, 6);
    let status = |name: &str| -> rusqlite::Result<String> {
        conn.query_row("SELECT status FROM sandbox WHERE name = ?1", [name], |r| {
            r.get(0)
        })
    };
    assert_eq!(status("launch-died")?, "Crashed");
    assert_eq!(status("launching")?, "Starting");
    assert_eq!(status("job-4")?, "Stopped");
    assert!(keep.join("sandboxes/job-4/rootfs/data").is_file());
    assert!(keep.join("sandboxes/web").is_dir());
    assert!(!keep.join("sandboxes/job-1").exists());
    // A second demo refuses to overwrite the kept catalog.
    let out = cli(&["demo", "--keep", keep.to_str().ok_or("utf8")?]);
    assert_eq!(out.status.code(), Some(1));
    Ok(())
}

#[test]
fn broken_pipe_exits_zero() -> TestResult {
    use std::process::Stdio;
    let mut child = bin()
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let status = child.wait()?;
    assert_eq!(status.code(), Some(0));
    Ok(())
}

#[test]
fn status_lists_twenty_dead_runtimes_unless_asked_for_all() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    for i in 0..25 {
        let id = add_sandbox(&conn, &format!("dead-{i:02}"), "Running", false);
        add_run(&conn, id, Some(DEAD_PID));
    }
    let listed = |text: &str| {
        text.lines()
            .filter(|l| l.contains("no_such_process"))
            .count()
    };
    let out = cli(&["status", "--db", env.db_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(listed(&text), 20, "{text}");
    assert!(
        text.contains("  … and 5 more\n") && text.ends_with("hint: `--all` lists every entry\n"),
        "{text}"
    );
    let out = cli(&["status", "--db", env.db_str(), "--all"]);
    let text = stdout(&out);
    assert_eq!(listed(&text), 25, "{text}");
    assert!(!text.contains("more (`--all`"), "{text}");
    // JSON holds the full list, and its count.
    let out = cli(&["status", "--db", env.db_str(), "--json"]);
    let line = json_line(&out);
    assert_eq!(json_field(&line, "dead_active_count"), "25");
    assert_eq!(line.matches("\"reason\":\"no_such_process\"").count(), 25);
    Ok(())
}

/// Adds `n` `Running` sandboxes whose one run's pid is dead, after the
/// ids already there.
fn add_dead_runtimes(conn: &rusqlite::Connection, n: u32) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < {n})
         INSERT INTO sandbox (name, config, status, ephemeral)
             SELECT 'dead-' || (x + (SELECT count(*) FROM sandbox)), '{{}}', 'Running', 0 FROM k;
         INSERT INTO run (sandbox_id, pid, status, started_at)
             SELECT id, {DEAD_PID}, 'Running', '2026-06-01 00:00:00' FROM sandbox
             WHERE id NOT IN (SELECT sandbox_id FROM run);
         COMMIT;"
    ))
}

#[test]
fn status_memory_stays_flat_with_a_hundred_thousand_dead_runtimes() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let out = env.dir.path().join("out");
    if !std::path::Path::new(measure::GNU_TIME).exists() {
        cannot_run("status memory", "no GNU time (Debian package `time`)");
        return Ok(());
    }
    // Peak memory of `status` and `status --json`, and what they printed.
    let measure = |json: bool| -> Result<(u64, String), Box<dyn std::error::Error>> {
        let mut args = vec!["status", "--db", env.db_str()];
        if json {
            args.push("--json");
        }
        let program = std::path::Path::new(env!("CARGO_BIN_EXE_sandbox-sweep"));
        let (code, kib) = measure::peak_rss_kib(program, &args, &out, Duration::from_secs(120));
        assert_eq!(code, Some(0));
        Ok((kib, std::fs::read_to_string(&out)?))
    };
    add_dead_runtimes(&conn, 100_000)?;
    let (text_100k, text) = measure(false)?;
    let listed = text
        .lines()
        .filter(|l| l.contains("no_such_process"))
        .count();
    assert_eq!(listed, 20, "{text}");
    assert!(
        text.contains("active sandboxes with a dead runtime now: 100000\n"),
        "{text}"
    );
    assert!(text.contains("  … and 99980 more\n"), "{text}");
    let (json_100k, line) = measure(true)?;
    assert_eq!(line.matches("{\"list\":\"dead_active\",").count(), 100_000);
    assert_eq!(line.matches("\"pid\":").count(), 100_000);
    assert_eq!(json_field(&line, "dead_active_count"), "100000");
    assert_eq!(json_field(&line, "active_count"), "100000");
    assert!(line.ends_with(",\"error\":null}\n") && line.matches('\n').count() == 1);

    // Twice the dead runtimes: no more memory (SQLite's page cache is at
    // its fixed limit well before 100k, and nothing is sorted). Holding
    // the lists, as `status` did before, took 23 MiB for text and 54 MiB
    // for JSON at 100k, and more with every row.
    add_dead_runtimes(&conn, 100_000)?;
    let (text_200k, text) = measure(false)?;
    assert!(text.contains("  … and 199980 more\n"), "{text}");
    let (json_200k, line) = measure(true)?;
    assert_eq!(json_field(&line, "dead_active_count"), "200000");
    assert_eq!(line.matches("{\"list\":\"dead_active\",").count(), 200_000);
    for (what, at_100k, at_200k) in [
        ("text", text_100k, text_200k),
        ("json", json_100k, json_200k),
    ] {
        assert!(
            at_200k <= at_100k + 1024 && at_200k < 16 * 1024,
            "{what}: peak {at_100k} KiB at 100k, {at_200k} KiB at 200k"
        );
    }
    Ok(())
}

#[test]
fn status_json_closes_its_line_when_the_walk_fails_midway() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            let id = add_sandbox(&conn, &format!("dead-{i}"), "Running", false);
            add_run(&conn, id, Some(DEAD_PID));
            id
        })
        .collect();
    // Reading the third sandbox's run fails (an integer overflow in a
    // view standing in for the table), after two entries went out.
    conn.execute_batch(&format!(
        "ALTER TABLE run RENAME TO run_t;
         CREATE VIEW run AS SELECT id, sandbox_id, status, started_at, pid_start_time, boot_id,
             terminated_at, termination_reason,
             CASE WHEN sandbox_id = {} THEN abs(-9223372036854775808) ELSE pid END AS pid
         FROM run_t;",
        ids[2]
    ))?;
    let out = cli(&["status", "--db", env.db_str(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let entry = |id: i64, i: usize| {
        format!(
            "{{\"list\":\"dead_active\",\"id\":{id},\"name\":\"dead-{i}\",\"status\":\"Running\",\"reason\":\"no_such_process\"}}"
        )
    };
    assert_eq!(
        stdout(&out),
        format!(
            "{{\"stale\":[{},{}],\"active\":[],\"error\":\"database error: integer overflow: Error code 1: SQL logic error\"}}\n",
            entry(ids[0], 0),
            entry(ids[1], 1)
        )
    );
    assert_eq!(
        stderr(&out),
        "error: database error: integer overflow: Error code 1: SQL logic error\n"
    );
    Ok(())
}

/// Runs the CLI with stdout or stderr on `/dev/full` (every write `ENOSPC`).
fn cli_to_full_disk(args: &[&str], stdout_full: bool) -> std::io::Result<std::process::Output> {
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full");
    let mut cmd = bin();
    cmd.args(args).stdin(std::process::Stdio::null());
    if stdout_full {
        cmd.stdout(full()?);
    } else {
        cmd.stderr(full()?);
    }
    cmd.output()
}

#[test]
fn output_that_cannot_be_written_exits_one_without_a_panic() -> TestResult {
    if !std::path::Path::new("/dev/full").exists() {
        cannot_run("output failures", "no /dev/full here");
        return Ok(());
    }
    let env = Env::new();
    // stdout on a full disk: exit 1, and the reason on stderr.
    let out = cli_to_full_disk(&["status", "--db", env.db_str()], true)?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_one_error_line(&out);
    assert!(
        stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );
    // stderr on a full disk while reporting an error: still exit 1.
    let missing = env.dir.path().join("missing.db");
    let out = cli_to_full_disk(&["status", "--db", missing.to_str().ok_or("utf8")?], false)?;
    assert_eq!(out.status.code(), Some(1));
    // Logs to a full stderr change nothing either.
    let out = cli_to_full_disk(&env.sweep_args(&["-v", "--force"]), false)?;
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("swept"), "{}", stdout(&out));
    // A usage error whose one line cannot be written: exit 2.
    let out = cli_to_full_disk(&["frob"], false)?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

/// The default 250 ms budget holds on the release binary: 100,000 dead
/// runtimes take far longer to reconcile, so the sweep stops on time and
/// says so. A generous bound (the machine may be busy with other tests);
/// `cargo bench` keeps the exact figure (`budget/100000`).
#[test]
fn the_default_budget_stops_a_long_sweep_in_time() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO sandbox (name, config, status, ephemeral) SELECT 'stale-' || i, '{{}}', 'Running', 0 FROM n;
         INSERT INTO run (sandbox_id, pid, status, started_at)
         SELECT id, {DEAD_PID}, 'Running', '2026-06-01 00:00:00' FROM sandbox;
         COMMIT;"
    ))?;
    drop(conn);
    let started = std::time::Instant::now();
    let out = cli(&env.sweep_args(&["--max-active", "1000000", "--json"]));
    let wall = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = json_line(&out);
    assert_eq!(json_field(&line, "timed_out"), "true", "{line}");
    let reconciled: u64 = json_field(&line, "reconciled").parse()?;
    assert!(reconciled > 0 && reconciled < 100_000, "{line}");
    let elapsed_us: u64 = json_field(&line, "elapsed_us").parse()?;
    assert!(
        (250_000..=750_000).contains(&elapsed_us),
        "the sweep took {elapsed_us} µs against a 250 ms budget: {line}"
    );
    assert!(
        wall < std::time::Duration::from_secs(3),
        "the process took {wall:?}"
    );
    Ok(())
}

/// A run directory that cannot be opened is one error, said once: no row
/// is touched (each would need its locks), the exit status is 1, and the
/// window is not recorded as swept, so the next start tries again.
#[test]
fn a_missing_run_directory_is_one_error_and_sweeps_nothing() -> TestResult {
    let (env, conn, dead, eph) = dead_and_finished();
    let missing = env.dir.path().join("no-such-run");
    let run_dir = missing.to_str().ok_or("utf8")?;
    let out = cli(&env.sweep_args(&["--run-dir", run_dir, "--json"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let line = json_line(&out);
    assert_eq!(json_field(&line, "outcome"), "\"swept\"", "{line}");
    assert_eq!(json_field(&line, "errors"), "1", "{line}");
    assert_eq!(json_field(&line, "reconciled"), "0", "{line}");
    assert!(json_field(&line, "error").contains("no-such-run"), "{line}");
    assert!(stderr(&out).contains("nothing swept"), "{}", stderr(&out));
    assert_eq!(status_of(&conn, dead).as_deref(), Some("Running"));
    assert_eq!(status_of(&conn, eph).as_deref(), Some("Stopped"));
    assert!(env.sandboxes.join("eph").is_dir());
    assert!(!missing.exists(), "the run directory is never created");
    // Not recorded as swept: a sweep without --force runs at once.
    let out = cli(&env.sweep_args(&["--json"]));
    let line = json_line(&out);
    assert_eq!(json_field(&line, "outcome"), "\"swept\"", "{line}");
    assert_eq!(json_field(&line, "reconciled"), "1", "{line}");
    Ok(())
}

#[test]
fn a_catalog_without_this_crates_indexes_is_named_until_init() -> TestResult {
    let env = Env::new();
    env.conn()
        .execute_batch("DROP INDEX idx_run_sandbox_status; DROP INDEX idx_sandbox_status;")?;
    let sandboxes = env.sandboxes.display().to_string();
    let sweep = |json: bool| {
        let mut args = vec![
            "sweep",
            "--db",
            env.db_str(),
            "--sandboxes-dir",
            &sandboxes,
            "--force",
        ];
        if json {
            args.push("--json");
        }
        cli(&args)
    };
    let line = json_line(&sweep(true));
    assert!(
        line.contains("\"missing_indexes\":[\"idx_run_sandbox_status\",\"idx_sandbox_status\"]"),
        "{line}"
    );
    let text = stdout(&sweep(false));
    assert!(
        text.contains("\n  indexes missing: idx_run_sandbox_status, idx_sandbox_status (each run lookup scans the whole table, so a sweep does few rows in its budget)\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\nhint: `sandbox-sweep init` adds the missing indexes\n"),
        "{text}"
    );
    let status = stdout(&cli(&["status", "--db", env.db_str()]));
    assert!(
        status.contains("\nindexes missing: idx_run_sandbox_status, idx_sandbox_status (each run lookup scans the whole table, so a sweep does few rows in its budget)\n"),
        "{status}"
    );
    assert!(
        status.ends_with("\nhint: `sandbox-sweep init` adds the missing indexes\n"),
        "{status}"
    );
    // A sweep never changes the schema: still missing.
    assert!(json_line(&sweep(true)).contains("\"missing_indexes\":[\"idx_run_sandbox_status\""));
    let out = cli(&["init", "--db", env.db_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(json_line(&sweep(true)).contains("\"missing_indexes\":[],"));
    let status = json_line(&cli(&["status", "--db", env.db_str(), "--json"]));
    assert!(status.contains("\"missing_indexes\":[],"), "{status}");
    Ok(())
}
