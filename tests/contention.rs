//! Several connections and processes on one catalog file.

pub mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use sandbox_sweep::__private::parse_stamp;
use sandbox_sweep::lease::{Acquire, MinInterval};
use sandbox_sweep::{Catalog, OpenOptions, SkipReason, SweepOutcome, Sweeper};

fn noon() -> sandbox_sweep::time::PrimitiveDateTime {
    parse_stamp("2026-06-04 12:00:00").expect("valid")
}

#[test]
fn two_connections_racing_acquire_exactly_one_wins() -> TestResult {
    let env = Env::new();
    for round in 0..40 {
        env.conn().execute("DELETE FROM maintenance_lease", [])?;
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let db = env.db.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || -> Result<bool, sandbox_sweep::Error> {
                    let opened = OpenOptions::new().open(&db);
                    // Both reach the barrier whatever happened, so neither can hang.
                    barrier.wait();
                    let conn = opened?;
                    conn.busy_timeout(Duration::ZERO)?;
                    let catalog = Catalog::from_connection(conn)?;
                    match catalog.try_acquire(&noon, MinInterval::Respect)? {
                        Acquire::Acquired(lease) => {
                            std::mem::forget(lease); // keep it held: the other must not win later
                            Ok(true)
                        }
                        Acquire::Skipped(SkipReason::Held | SkipReason::Busy) => Ok(false),
                        other => panic!("round {round}: unexpected {other:?}"),
                    }
                })
            })
            .collect();
        let mut winners = 0;
        for handle in handles {
            if handle.join().map_err(|_| "thread panicked")?? {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    Ok(())
}

#[test]
fn write_lock_held_past_busy_timeout_is_a_busy_skip() -> TestResult {
    let env = Env::new();
    let blocker = env.conn();
    blocker.execute_batch("BEGIN IMMEDIATE")?;
    let conn = OpenOptions::new()
        .busy_timeout(Duration::ZERO)
        .open(&env.db)?;
    let catalog = Catalog::from_connection(conn)?;
    let outcome = Sweeper::new(&env.sandboxes).run_with(&catalog, &noon);
    assert!(
        matches!(outcome, SweepOutcome::Skipped(SkipReason::Busy)),
        "{outcome:?}"
    );
    blocker.execute_batch("COMMIT")?;
    let outcome = Sweeper::new(&env.sandboxes).run_with(&catalog, &noon);
    assert!(matches!(outcome, SweepOutcome::Swept(_)), "{outcome:?}");
    Ok(())
}

#[test]
fn busy_single_cleanup_is_a_clean_error_that_changes_nothing() -> TestResult {
    let env = Env::new();
    let conn = OpenOptions::new()
        .busy_timeout(Duration::ZERO)
        .open(&env.db)?;
    let eph = add_sandbox(&conn, "eph", "Stopped", true);
    std::fs::create_dir(env.sandboxes.join("eph"))?;
    let blocker = env.conn();
    blocker.execute_batch("BEGIN IMMEDIATE")?;
    let catalog = Catalog::from_connection(conn)?;
    let conn = catalog.connection();
    let err = sandbox_sweep::Sweeper::new(&env.sandboxes)
        .clean_ephemeral(&catalog, sandbox_sweep::SandboxId::new(eph))
        .expect_err("busy");
    assert!(err.is_busy(), "{err}");
    blocker.execute_batch("ROLLBACK")?;
    assert_eq!(status_of(conn, eph).as_deref(), Some("Stopped"));
    assert!(env.sandboxes.join("eph").is_dir());
    Ok(())
}

#[test]
fn concurrent_cli_sweeps_reconcile_each_row_once() -> TestResult {
    let env = Env::new();
    let conn = env.conn();
    const STALE: usize = 300;
    for i in 0..STALE {
        let id = add_sandbox(&conn, &format!("s{i}"), "Running", false);
        add_run(&conn, id, Some(DEAD_PID));
    }
    let children: Vec<_> = (0..8)
        .map(|_| {
            bin()
                .args(env.sweep_args(&["--json"]))
                .args(["--max-active", "100000", "--budget-ms", "10000"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut reconciled = 0;
    let mut swept = 0;
    for child in children {
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let line = &json_line(&out);
        match json_field(line, "outcome") {
            "\"swept\"" => swept += 1,
            "\"skipped\"" => assert!(
                matches!(
                    json_field(line, "skip_reason"),
                    "\"held\"" | "\"recent\"" | "\"busy\""
                ),
                "{line}"
            ),
            other => panic!("unexpected outcome {other}: {line}"),
        }
        reconciled += json_field(line, "reconciled").parse::<usize>()?;
    }
    assert!(swept >= 1);
    assert_eq!(reconciled, STALE);
    let crashed: i64 = conn.query_row(
        "SELECT count(*) FROM sandbox WHERE status = 'Crashed'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(crashed, STALE as i64);
    Ok(())
}

#[test]
fn a_catalog_locked_past_the_budget_is_a_skip_within_the_budget() -> TestResult {
    use std::time::Instant;
    let (env, conn, dead, eph) = dead_and_finished();
    let budget = Duration::from_millis(250);
    // Past the budget by at most a loaded machine's scheduling (seen: 27 ms
    // beside four parallel builds on two cores); what this rules out is a
    // wait for the writer (3 s) or for the host's timeout (5 s).
    let slack = Duration::from_millis(150);
    // What the issue measured: a writer holding the lock for 3 s, and a
    // host whose connection waits 5 s (the default).
    let blocker = env.conn();
    blocker.execute_batch("BEGIN IMMEDIATE")?;
    let catalog = Catalog::from_connection(OpenOptions::new().open(&env.db)?)?;
    let sweeper = Sweeper::new(&env.sandboxes).budget(budget);
    let asked = Instant::now();
    let outcome = sweeper.run(&catalog);
    let took = asked.elapsed();
    assert!(
        matches!(outcome, SweepOutcome::Skipped(SkipReason::Busy)),
        "{outcome:?}"
    );
    assert!(took < budget + slack, "{took:?}");
    // The host's own statements wait as long as it said, after.
    let host: i64 = catalog
        .connection()
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
    assert_eq!(host, 5000);

    // The CLI likewise (its own process start and catalog open on top).
    let asked = Instant::now();
    let out = cli(&env.sweep_args(&["--budget-ms", "250", "--json"]));
    let took = asked.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_field(&json_line(&out), "skip_reason"), "\"busy\"");
    // A process's start on a loaded machine is slow (seen: 393 ms); a
    // second is still far short of the 5 s a busy timeout would wait.
    assert!(took < budget + Duration::from_secs(1), "{took:?}");

    // Locked after the lease was taken: the batch waits what is left of
    // the budget, stops as timed out, and writes nothing.
    blocker.execute_batch("COMMIT")?;
    let Acquire::Acquired(mut lease) = catalog.try_acquire(&noon, MinInterval::Ignore)? else {
        panic!("the lease is free");
    };
    blocker.execute_batch("BEGIN IMMEDIATE")?;
    let asked = Instant::now();
    let report = sweeper.sweep(&mut lease, &noon)?;
    let took = asked.elapsed();
    assert!(report.timed_out && !report.complete, "{report}");
    assert_eq!((report.reconciled, report.removed), (0, 0), "{report}");
    assert!(took < budget + slack, "{took:?}");
    blocker.execute_batch("COMMIT")?;
    drop(lease);

    // The next sweep does the work; a lock held for part of its budget is
    // waited for, and counted in its time.
    drop(blocker);
    let held = Duration::from_millis(100);
    let (locked, db) = (Barrier::new(2), &env.db);
    let report = std::thread::scope(|s| {
        s.spawn(|| -> rusqlite::Result<()> {
            let blocker = rusqlite::Connection::open(db)?;
            let taken = blocker.execute_batch("BEGIN IMMEDIATE");
            locked.wait();
            std::thread::sleep(held);
            taken.and_then(|()| blocker.execute_batch("COMMIT"))
        });
        locked.wait();
        sweeper.run(&catalog)
    });
    let report = swept(report);
    assert_eq!((report.reconciled, report.removed), (1, 1), "{report}");
    assert!(report.elapsed >= held, "{report}");
    assert_eq!(status_of(&conn, dead).as_deref(), Some("Crashed"));
    assert_eq!(status_of(&conn, eph), None);
    Ok(())
}
