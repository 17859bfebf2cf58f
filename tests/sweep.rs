//! The sweep as a user drives it: reconcile and cleanup rules, limits, budget, lease, trash.
//!
//! Through the public API only, on the shared fixture (`tests/common/fixture.rs`).

mod common;

use std::time::Duration;

use common::*;
use sandbox_sweep::lease::*;
use sandbox_sweep::process::*;
use sandbox_sweep::*;

fn sweep_all(f: &Fixture) -> Result<Report> {
    sweep_with(f, Sweeper::new(&f.sandboxes).limits(Limits::unlimited()))
}

fn sweep_with(f: &Fixture, sweeper: Sweeper) -> Result<Report> {
    let catalog = &f.catalog;
    match sweeper.force(true).run_with(catalog, &now) {
        SweepOutcome::Swept(report) => Ok(report),
        SweepOutcome::Failed(err) => Err(err),
        SweepOutcome::Skipped(reason) => panic!("unexpected skip: {reason}"),
    }
}

#[test]
fn sweep_reconciles_dead_active_and_cleans_terminal_ephemeral() -> Result<()> {
    let f = Fixture::new()?;
    let dead = f.sandbox("dead", "Running", false)?;
    f.run(dead, Some(DEAD_PID), "Running")?;
    let eph = f.sandbox("eph", "Stopped", true)?;
    let eph_dir = f.mkdir("eph");
    let report = sweep_with(&f, Sweeper::new(&f.sandboxes))?;
    assert_eq!(
        (report.reconciled, report.removed, report.errors),
        (1, 1, 0)
    );
    assert!(report.complete && !report.timed_out && !report.lease_lost);
    assert_eq!(f.status(dead)?.as_deref(), Some("Crashed"));
    assert_eq!(f.status(eph)?, None);
    assert!(!exists(&eph_dir));
    Ok(())
}

#[test]
fn running_with_dead_runtime_becomes_crashed() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("web", "Running", false)?;
    let run = f.run(id, Some(DEAD_PID), "Running")?;
    let report = sweep_all(&f)?;
    assert_eq!((report.crashed, report.stopped), (1, 0));
    assert_eq!(report.dead(DeadReason::NoSuchProcess), 1);
    assert_eq!(f.status(id)?.as_deref(), Some("Crashed"));
    assert_eq!(
        f.run_row(run)?,
        Some((
            "Terminated".into(),
            Some("InternalError".into()),
            Some(NOW.into())
        ))
    );
    let (updated, config): (String, Option<String>) = f.conn().query_row(
        "SELECT updated_at, active_config FROM sandbox WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    assert_eq!((updated.as_str(), config), (NOW, None));
    Ok(())
}

#[test]
fn draining_with_dead_runtime_becomes_stopped() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("web", "Draining", false)?;
    let run = f.run(id, None, "Running")?;
    let report = sweep_all(&f)?;
    assert_eq!((report.crashed, report.stopped), (0, 1));
    assert_eq!(report.dead(DeadReason::NoPid), 1);
    assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    assert_eq!(
        f.run_row(run)?,
        Some((
            "Terminated".into(),
            Some("ShutdownRequested".into()),
            Some(NOW.into())
        ))
    );
    Ok(())
}

#[test]
fn draining_without_running_run_becomes_stopped() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("web", "Draining", false)?;
    let old = f.run(id, Some(DEAD_PID), "Terminated")?;
    let report = sweep_all(&f)?;
    assert_eq!(report.stopped, 1);
    assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    assert_eq!(f.run_row(old)?, Some(("Terminated".into(), None, None)));
    Ok(())
}

#[test]
fn running_without_running_run_is_left_alone() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("starting", "Running", false)?;
    f.run(id, Some(DEAD_PID), "Terminated")?;
    let report = sweep_all(&f)?;
    assert_eq!(report.reconciled, 0);
    assert_eq!(f.status(id)?.as_deref(), Some("Running"));
    Ok(())
}

#[test]
fn live_runtime_is_left_alone() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("live", "Running", false)?;
    let run = f.run(id, Some(own_pid()), "Running")?;
    let drain = f.sandbox("draining", "Draining", true)?;
    f.run(drain, Some(own_pid()), "Running")?;
    let report = sweep_all(&f)?;
    assert_eq!(report.reconciled, 0);
    assert_eq!(f.status(id)?.as_deref(), Some("Running"));
    assert_eq!(f.status(drain)?.as_deref(), Some("Draining"));
    assert_eq!(f.run_row(run)?, Some(("Running".into(), None, None)));
    Ok(())
}

#[test]
fn only_the_latest_running_run_decides() -> Result<()> {
    let f = Fixture::new()?;
    let live = f.sandbox("restarted", "Running", false)?;
    f.run_at(live, Some(DEAD_PID), "Running", "2026-06-01 00:00:00")?;
    f.run_at(live, Some(own_pid()), "Running", "2026-06-02 00:00:00")?;
    let dead = f.sandbox("died-after-restart", "Running", false)?;
    let old = f.run_at(dead, Some(own_pid()), "Running", "2026-06-01 00:00:00")?;
    let new = f.run_at(dead, Some(DEAD_PID), "Running", "2026-06-02 00:00:00")?;
    sweep_all(&f)?;
    assert_eq!(f.status(live)?.as_deref(), Some("Running"));
    assert_eq!(f.status(dead)?.as_deref(), Some("Crashed"));
    assert_eq!(f.run_row(new)?.map(|r| r.0), Some("Terminated".into()));
    assert_eq!(f.run_row(old)?.map(|r| r.0), Some("Running".into()));
    Ok(())
}

#[test]
fn unknown_statuses_and_persistent_sandboxes_are_untouched() -> Result<()> {
    let f = Fixture::new()?;
    let odd = f.sandbox("odd", "Hibernating", true)?;
    f.run(odd, Some(DEAD_PID), "Running")?;
    let lower = f.sandbox("lower", "running", false)?;
    f.run(lower, Some(DEAD_PID), "Running")?;
    let keep = f.sandbox("keep", "Stopped", false)?;
    let keep_dir = f.mkdir("keep");
    let crashed_keep = f.sandbox("crashed-keep", "Crashed", false)?;
    let report = sweep_all(&f)?;
    assert_eq!(
        (report.reconciled, report.removed, report.errors),
        (0, 0, 0)
    );
    assert_eq!(f.status(odd)?.as_deref(), Some("Hibernating"));
    assert_eq!(f.status(lower)?.as_deref(), Some("running"));
    assert_eq!(f.status(keep)?.as_deref(), Some("Stopped"));
    assert_eq!(f.status(crashed_keep)?.as_deref(), Some("Crashed"));
    assert!(exists(&keep_dir.join("rootfs/data")));
    Ok(())
}

#[test]
fn ephemeral_with_live_run_is_kept() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("eph", "Stopped", true)?;
    f.run(id, Some(own_pid()), "Running")?;
    let dir = f.mkdir("eph");
    let report = sweep_all(&f)?;
    assert_eq!(report.outcome(CleanupOutcome::SkippedLivePid), 1);
    assert_eq!(report.removed, 0);
    assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir));
    Ok(())
}

#[test]
fn removal_deletes_run_rows_and_symlinked_content_is_not_followed() -> Result<()> {
    let f = Fixture::new()?;
    let outside = f.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("precious"), b"keep me").expect("write");
    // The sandbox "directory" is itself a symlink to the outside dir ...
    let link = f.sandboxes.join("linked");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let linked = f.sandbox("linked", "Crashed", true)?;
    f.run(linked, Some(DEAD_PID), "Terminated")?;
    // ... and another holds a symlink inside it.
    let inner = f.mkdir("inner");
    std::os::unix::fs::symlink(&outside, inner.join("escape")).expect("symlink");
    let inner_id = f.sandbox("inner", "Stopped", true)?;
    let report = sweep_all(&f)?;
    assert_eq!(report.removed, 2);
    assert!(!exists(&link) && !exists(&inner));
    assert_eq!(
        std::fs::read(outside.join("precious")).expect("target intact"),
        b"keep me"
    );
    assert_eq!((f.status(linked)?, f.status(inner_id)?), (None, None));
    assert_eq!(f.count("SELECT count(*) FROM run")?, 0);
    assert!(!exists(
        &f.sandboxes.join(TRASH_DIR).join(linked.to_string())
    ));
    Ok(())
}

#[test]
fn invalid_names_are_counted_and_nothing_outside_is_touched() -> Result<()> {
    let f = Fixture::new()?;
    // Canaries where each bad name would point if joined unchecked.
    let canary_root = f.dir.path().join("canary");
    std::fs::create_dir_all(canary_root.join("x")).expect("mkdir");
    std::fs::create_dir_all(f.sandboxes.join("a/b")).expect("mkdir");
    let abs = canary_root.join("abs");
    std::fs::create_dir_all(&abs).expect("mkdir");
    let names = [
        String::new(),
        ".".into(),
        "..".into(),
        "a/b".into(),
        abs.display().to_string(),
        "../canary/x".into(),
        "nul\0byte".into(),
        ".sandbox-sweep-trash".into(),
    ];
    let mut ids = Vec::new();
    for name in &names {
        ids.push(f.sandbox(name, "Stopped", true)?);
    }
    let report = sweep_all(&f)?;
    assert_eq!(report.errors, names.len() as u64);
    assert_eq!(
        report.outcome(CleanupOutcome::InvalidName),
        names.len() as u64
    );
    assert_eq!(report.removed, 0);
    for id in ids {
        assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    }
    assert!(exists(&canary_root.join("x")) && exists(&abs) && exists(&f.sandboxes.join("a/b")));
    assert!(exists(&f.sandboxes) && exists(&f.db_path()));
    Ok(())
}

#[test]
fn lost_lease_stops_the_sweep_without_writing() -> Result<()> {
    let f = Fixture::new()?;
    f.stale(4)?;
    let catalog = &f.catalog;
    let Acquire::Acquired(mut lease) = catalog.try_acquire(&now, MinInterval::Ignore)? else {
        panic!("lease should be free");
    };
    let sweeper = Sweeper::new(&f.sandboxes).max_active(1);
    let first = sweeper.sweep(&mut lease, &now)?;
    assert_eq!(first.reconciled, 1);
    // We stall; the lease expires and another process takes it.
    let other = rusqlite::Connection::open(f.db_path())?;
    other.execute(
        "UPDATE maintenance_lease SET holder_pid = 1, lease_expires_at = '2026-06-04 12:00:40'",
        [],
    )?;
    let second = sweeper.max_active(10).sweep(&mut lease, &now)?;
    assert!(second.lease_lost && !second.complete);
    assert_eq!((second.reconciled, second.removed), (0, 0));
    assert!(lease.is_lost());
    let running = f.count("SELECT count(*) FROM sandbox WHERE status = 'Running'")?;
    assert_eq!(running, 3);
    lease.release()?;
    let holder: i64 = f
        .conn()
        .query_row("SELECT holder_pid FROM maintenance_lease", [], |r| r.get(0))?;
    assert_eq!(holder, 1, "the new holder keeps its lease");
    Ok(())
}

#[test]
fn year_9999_lease_does_not_block_a_sweep() -> Result<()> {
    let f = Fixture::new()?;
    f.conn().execute(
        "INSERT INTO maintenance_lease VALUES (?1, 1, '9999-12-31 23:59:59', '9999-12-31 23:59:59')",
        [sandbox_sweep::lease::LEASE_NAME],
    )?;
    let catalog = &f.catalog;
    let outcome = Sweeper::new(&f.sandboxes).run_with(catalog, &now);
    assert!(
        matches!(outcome, SweepOutcome::Swept(ref r) if r.complete),
        "{outcome:?}"
    );
    let row = catalog.lease_row()?.expect("row");
    assert_eq!(row.last_completed_at, Some(now()));
    Ok(())
}

/// A pid no process can have is judged (dead, `InvalidPid`); a pid or a
/// start time of the wrong class orders or proves nothing: left alone.
#[test]
fn garbage_timestamps_and_odd_pids_are_handled() -> Result<()> {
    let f = Fixture::new()?;
    let a = f.sandbox("a", "Running", false)?;
    f.run_at(a, Some(-1), "Running", "not a time")?;
    let b = f.sandbox("b", "Running", false)?;
    f.conn().execute(
        "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, 'abc', 'Running', x'00ff')",
        [b],
    )?;
    let c = f.sandbox("c", "Running", false)?;
    f.run(c, Some(i64::MAX), "Running")?;
    f.conn().execute(
        "UPDATE sandbox SET updated_at = 'garbage', created_at = NULL",
        [],
    )?;
    // An orphan run (no such sandbox) is simply not a candidate.
    f.conn().execute_batch("PRAGMA foreign_keys = OFF")?;
    let orphan = f.run(999, Some(DEAD_PID), "Running")?;
    f.conn().execute_batch("PRAGMA foreign_keys = ON")?;
    let report = sweep_all(&f)?;
    assert_eq!(report.crashed, 1);
    assert_eq!(report.dead(DeadReason::InvalidPid), 1);
    assert_eq!(
        (report.invalid_row.started_at, report.invalid_row.pid),
        (1, 1)
    );
    assert_eq!(report.errors, 0);
    let statuses = [a, b, c].map(|id| f.status(id).ok().flatten());
    assert_eq!(
        statuses.each_ref().map(|s| s.as_deref()),
        [Some("Running"), Some("Running"), Some("Crashed")]
    );
    assert_eq!(f.run_row(orphan)?.map(|r| r.0), Some("Running".into()));
    Ok(())
}

#[test]
fn budget_exhaustion_reports_timed_out_and_does_not_record_completion() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("web", "Running", false)?;
    f.run(id, Some(DEAD_PID), "Running")?;
    let catalog = &f.catalog;
    let sweeper = Sweeper::new(&f.sandboxes).budget(Duration::ZERO);
    let SweepOutcome::Swept(report) = sweeper.run_with(catalog, &now) else {
        panic!("expected a sweep");
    };
    assert!(report.timed_out && !report.complete);
    assert_eq!(report.reconciled, 0);
    assert_eq!(f.status(id)?.as_deref(), Some("Running"));
    let row = catalog.lease_row()?.expect("row");
    assert_eq!((row.holder_pid, row.last_completed_at), (None, None));
    // The next start sweeps at once instead of waiting out the interval.
    let SweepOutcome::Swept(report) = Sweeper::new(&f.sandboxes).run_with(catalog, &now) else {
        panic!("expected a sweep");
    };
    assert_eq!(report.reconciled, 1);
    Ok(())
}

#[test]
fn row_limits_leave_the_rest_for_the_next_sweep() -> Result<()> {
    let f = Fixture::new()?;
    for i in 0..5 {
        let id = f.sandbox(&format!("r{i}"), "Running", false)?;
        f.run(id, Some(DEAD_PID), "Running")?;
        f.sandbox(&format!("e{i}"), "Stopped", true)?;
    }
    let catalog = &f.catalog;
    let sweeper = Sweeper::new(&f.sandboxes).max_active(2).max_ephemeral(3);
    let SweepOutcome::Swept(first) = sweeper.run_with(catalog, &now) else {
        panic!("expected a sweep");
    };
    assert_eq!(
        (first.reconciled, first.removed, first.complete),
        (2, 3, false)
    );
    assert_eq!(catalog.lease_row()?.and_then(|r| r.last_completed_at), None);
    let SweepOutcome::Swept(second) = sweeper.run_with(catalog, &now) else {
        panic!("expected a sweep");
    };
    assert_eq!(
        (second.reconciled, second.removed, second.complete),
        (2, 2, false)
    );
    let SweepOutcome::Swept(third) = sweeper.run_with(catalog, &now) else {
        panic!("expected a sweep");
    };
    assert_eq!(
        (third.reconciled, third.removed, third.complete),
        (1, 0, true)
    );
    assert_eq!(
        catalog.lease_row()?.and_then(|r| r.last_completed_at),
        Some(now())
    );
    assert_eq!(
        f.count("SELECT count(*) FROM sandbox WHERE status = 'Crashed'")?,
        5
    );
    Ok(())
}

#[test]
fn ineligible_rows_ahead_do_not_starve_later_candidates() -> Result<()> {
    let f = Fixture::new()?;
    for i in 0..300 {
        let id = f.sandbox(&format!("live{i}"), "Running", false)?;
        f.run(id, Some(own_pid()), "Running")?;
        f.sandbox(&format!("bad/{i}"), "Stopped", true)?;
    }
    let dead = f.sandbox("dead", "Running", false)?;
    f.run(dead, Some(DEAD_PID), "Running")?;
    let eph = f.sandbox("eph", "Crashed", true)?;
    let catalog = &f.catalog;
    let sweeper = Sweeper::new(&f.sandboxes).budget(Duration::from_secs(60));
    let SweepOutcome::Swept(first) = sweeper.run_with(catalog, &now) else {
        panic!("expected a sweep");
    };
    assert_eq!((first.reconciled, first.removed, first.errors), (0, 0, 250));
    let SweepOutcome::Swept(second) = sweeper.run_with(catalog, &now) else {
        panic!("expected a sweep");
    };
    assert_eq!((second.reconciled, second.removed), (1, 1));
    assert_eq!(f.status(dead)?.as_deref(), Some("Crashed"));
    assert_eq!(f.status(eph)?, None);
    Ok(())
}

#[test]
fn dry_run_reports_without_writing() -> Result<()> {
    let f = Fixture::new()?;
    let web = f.sandbox("web", "Running", false)?;
    f.run(web, Some(DEAD_PID), "Running")?;
    let draining = f.sandbox("draining", "Draining", false)?;
    let starting = f.sandbox("starting", "Running", false)?;
    let live = f.sandbox("live", "Running", false)?;
    f.run(live, Some(own_pid()), "Running")?;
    let eph = f.sandbox("eph", "Stopped", true)?;
    let dir = f.mkdir("eph");
    f.sandbox("..", "Stopped", true)?;
    let catalog = &f.catalog;
    let report = Sweeper::new(&f.sandboxes).dry_run(catalog, &now)?;
    assert!(report.dry_run && report.complete);
    assert_eq!(
        (report.reconciled, report.crashed, report.stopped),
        (2, 1, 1)
    );
    assert_eq!((report.removed, report.errors), (1, 1));
    for (id, status) in [
        (web, "Running"),
        (draining, "Draining"),
        (starting, "Running"),
        (live, "Running"),
    ] {
        assert_eq!(f.status(id)?.as_deref(), Some(status));
    }
    assert_eq!(f.status(eph)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir.join("rootfs/data")));
    assert_eq!(catalog.lease_row()?, None);
    assert!(!exists(&f.sandboxes.join(TRASH_DIR)));
    Ok(())
}

#[test]
fn reference_schema_without_migration_is_swept() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join("catalog.db"))?;
    conn.execute_batch(include_str!("data/schema.sql"))?;
    let f = Fixture::with(dir, conn)?;
    let web = f.sandbox("web", "Running", false)?;
    let run = f.run(web, Some(DEAD_PID), "Running")?;
    let eph = f.sandbox("eph", "Crashed", true)?;
    let eph_dir = f.mkdir("eph");
    let catalog = &f.catalog;
    assert!(!catalog.has_identity_columns());
    let report = sweep_all(&f)?;
    assert_eq!(
        (report.reconciled, report.removed, report.errors),
        (1, 1, 0)
    );
    assert_eq!(f.run_row(run)?.map(|r| r.0), Some("Terminated".into()));
    assert_eq!(f.status(eph)?, None);
    assert!(!exists(&eph_dir));
    Ok(())
}

#[test]
fn missing_sandboxes_dir_skips_cleanup_reports_it_and_records_completion() -> Result<()> {
    let f = Fixture::new()?;
    let web = f.sandbox("web", "Running", false)?;
    f.run(web, Some(DEAD_PID), "Running")?;
    let eph = f.sandbox("eph", "Stopped", true)?;
    let catalog = &f.catalog;
    let typo = f.dir.path().join("sandboxs");
    let outcome = Sweeper::new(&typo).force(true).run_with(catalog, &now);
    let SweepOutcome::Swept(report) = outcome else {
        panic!("expected a sweep, got {outcome:?}");
    };
    // Reconcile needs no directory: done. Cleanup is skipped and says why.
    assert_eq!(
        (report.reconciled, report.removed, report.errors),
        (1, 0, 1)
    );
    assert!(!report.complete);
    let why = report.sandboxes_dir_error.as_deref().unwrap_or_default();
    assert!(why.contains("sandboxs"), "{why}");
    assert_eq!(f.status(web)?.as_deref(), Some("Crashed"));
    assert_eq!(f.status(eph)?.as_deref(), Some("Stopped"));
    assert!(!exists(&typo));
    // The window is recorded, so the next runtime starts skip instead of
    // taking the lease to fail the same way.
    let row = catalog.lease_row()?.expect("row");
    assert_eq!((row.holder_pid, row.last_completed_at), (None, Some(now())));
    let next = Sweeper::new(&typo).run_with(catalog, &now);
    assert!(
        matches!(next, SweepOutcome::Skipped(SkipReason::Recent)),
        "{next:?}"
    );
    Ok(())
}

#[test]
fn catalog_without_active_config_is_swept() -> Result<()> {
    let f = Fixture::new()?;
    let web = f.sandbox("web", "Running", false)?;
    f.run(web, Some(DEAD_PID), "Running")?;
    f.conn()
        .execute_batch("ALTER TABLE sandbox DROP COLUMN active_config")?;
    let report = sweep_all(&f)?;
    assert_eq!(report.crashed, 1);
    assert_eq!(f.status(web)?.as_deref(), Some("Crashed"));
    Ok(())
}

#[test]
fn crash_leftovers_in_the_trash_are_restored_or_purged() -> Result<()> {
    let f = Fixture::new()?;
    let trash = f.sandboxes.join(TRASH_DIR);
    // A sweeper died after moving `kept` into the trash but before its
    // commit: the row survived (and the sandbox was restarted since).
    let kept = f.sandbox("kept", "Running", true)?;
    f.run(kept, Some(own_pid()), "Running")?;
    std::fs::create_dir_all(trash.join(kept.to_string()).join("rootfs")).expect("mkdir");
    // Another died after its commit: the row is gone, the trash remains.
    std::fs::create_dir_all(trash.join("424242/rootfs")).expect("mkdir");
    std::fs::write(trash.join("stray-file"), b"x").expect("write");
    let report = sweep_all(&f)?;
    assert_eq!(report.errors, 0);
    assert!(exists(&f.sandboxes.join("kept/rootfs")));
    assert!(!exists(&trash), "an emptied trash is removed");
    Ok(())
}

#[test]
fn trash_that_does_not_fit_the_budget_waits_for_the_next_sweep() -> Result<()> {
    let f = Fixture::new()?;
    let big = f.sandbox("big", "Stopped", true)?;
    let big_dir = f.mkdir("big");
    for i in 0..4000 {
        std::fs::write(big_dir.join(format!("f{i}")), b"x").expect("write");
    }
    let small = f.sandbox("small", "Stopped", true)?;
    f.mkdir("small");
    let catalog = &f.catalog;
    let sweeper = Sweeper::new(&f.sandboxes)
        .force(true)
        .budget(Duration::from_millis(15));
    let SweepOutcome::Swept(report) = sweeper.run_with(catalog, &now) else {
        panic!("expected a sweep");
    };
    let trash = f.sandboxes.join(TRASH_DIR);
    let in_trash = std::fs::read_dir(&trash).map_or(0, Iterator::count) as u64;
    // Whatever was removed from the catalog is gone from the sandboxes
    // dir; what the budget did not cover waits in the trash.
    assert_eq!(in_trash, report.trash_deferred);
    let rows_left = f.count("SELECT count(*) FROM sandbox")? as u64;
    assert_eq!(report.removed + rows_left, 2);
    for (id, name) in [(big, "big"), (small, "small")] {
        if f.status(id)?.is_none() {
            assert!(!exists(&f.sandboxes.join(name)));
        }
    }
    let report = sweep_all(&f)?;
    assert_eq!(report.trash_deferred, 0);
    assert!(!exists(&trash), "an emptied trash is removed");
    assert_eq!(f.count("SELECT count(*) FROM sandbox")?, 0);
    Ok(())
}

#[test]
fn names_longer_than_a_path_component_are_invalid_and_kept() -> Result<()> {
    let f = Fixture::new()?;
    let longest = "x".repeat(255);
    let too_long = "y".repeat(256);
    let ok = f.sandbox(&longest, "Stopped", true)?;
    f.mkdir(&longest);
    let bad = f.sandbox(&too_long, "Crashed", true)?;
    let report = sweep_all(&f)?;
    assert_eq!((report.removed, report.errors), (1, 1));
    assert_eq!(report.outcome(CleanupOutcome::InvalidName), 1);
    assert_eq!(f.status(ok)?, None);
    assert_eq!(f.status(bad)?.as_deref(), Some("Crashed"));
    // Counted again next time, never retried as a failed removal.
    let again = sweep_all(&f)?;
    assert_eq!(again.outcome(CleanupOutcome::InvalidName), 1);
    assert_eq!(again.outcome(CleanupOutcome::DirRemoveFailed), 0);
    Ok(())
}

/// A catalog microsandbox made and nobody ran `init` on has no index on
/// `run(sandbox_id)`: each candidate's run lookup scans every run. The
/// budget still holds: the statement is interrupted at the deadline and
/// its batch rolled back.
#[test]
fn a_statement_that_outlives_the_budget_is_interrupted_and_rolled_back() -> Result<()> {
    let f = Fixture::new()?;
    f.conn().execute_batch(
        "DROP INDEX idx_run_sandbox_status;
         PRAGMA foreign_keys = OFF;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000)
         INSERT INTO run (sandbox_id, pid, status) SELECT 1000000 + x, NULL, 'Terminated' FROM n;
         PRAGMA foreign_keys = ON;",
    )?;
    let ids = f.stale(3)?;
    let sweep = |budget: Duration| -> Result<(Report, Duration)> {
        let started = std::time::Instant::now();
        match Sweeper::new(&f.sandboxes)
            .force(true)
            .budget(budget)
            .run_with(&f.catalog, &now)
        {
            SweepOutcome::Swept(report) => Ok((report, started.elapsed())),
            other => panic!("expected a sweep, got {other}"),
        }
    };
    let budget = Duration::from_millis(10);
    let (report, took) = sweep(budget)?;
    assert!(report.timed_out && !report.complete, "{report}");
    assert_eq!((report.reconciled, report.errors), (0, 0), "{report}");
    for id in &ids {
        assert_eq!(f.status(*id)?.as_deref(), Some("Running"), "rolled back");
    }
    assert_eq!(
        f.count("SELECT count(*) FROM run WHERE status = 'Running'")?,
        3
    );
    // Released (the rolled-back renewal is not what the release compares
    // against), and not recorded as complete: the next start goes on.
    assert!(!report.lease_lost, "{report}");
    let lease = f.catalog.lease_row()?.expect("a lease row");
    assert_eq!((lease.holder_pid, lease.last_completed_at), (None, None));
    // A generous bound on the release binary; one lookup alone takes far
    // longer (below), and the bench keeps the exact figure.
    assert!(took < budget + Duration::from_millis(40), "{took:?}");
    // Given time, the same sweep does its work.
    let (report, slow) = sweep(Duration::from_secs(30))?;
    assert_eq!(report.crashed, 3, "{report}");
    assert!(slow > took, "{slow:?} vs {took:?}");
    println!("  interrupted after {took:?}; unbounded, the same sweep took {slow:?}");
    Ok(())
}
