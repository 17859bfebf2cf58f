//! Process identity: recorded with a run, a reused pid or a reboot is recognised.
//!
//! Through the public API only, on the shared fixture (`tests/common/fixture.rs`).

pub mod common;

use common::*;
use sandbox_sweep::process::*;
use sandbox_sweep::*;

#[test]
fn inserted_run_carries_identity_and_stays_alive() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("web", "Running", false)?;
    let catalog = &f.catalog;
    let me = ProcessIdentity::current()?;
    let run = catalog.insert_running_run(SandboxId::new(id), &me, now())?;
    let (pid, start, boot): (i64, Option<i64>, Option<String>) = f.conn().query_row(
        "SELECT pid, pid_start_time, boot_id FROM run WHERE id = ?1",
        [run],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    assert_eq!(pid, own_pid());
    assert_eq!(start, me.start_time.map(|t| t as i64));
    assert_eq!(boot, me.boot_id);
    assert_eq!(f.sweep().reconciled, 0);
    assert_eq!(f.status(id)?.as_deref(), Some("Running"));
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn reused_pid_and_pre_reboot_runs_are_reconciled() -> Result<()> {
    let f = Fixture::new()?;
    let catalog = &f.catalog;
    let me = ProcessIdentity::current()?;
    let reused = f.sandbox("reused", "Running", false)?;
    let run = catalog.insert_running_run(SandboxId::new(reused), &me, now())?;
    let wrong_start = ProcessIdentity {
        start_time: me.start_time.map(|t| t + 1),
        ..me.clone()
    };
    assert!(catalog.record_identity(run, &wrong_start)?);
    let rebooted = f.sandbox("rebooted", "Draining", false)?;
    let other_boot = ProcessIdentity {
        boot_id: Some("11111111-2222-3333-4444-555555555555".into()),
        ..me.clone()
    };
    catalog.insert_running_run(SandboxId::new(rebooted), &other_boot, now())?;
    let report = f.sweep();
    assert_eq!(report.dead(DeadReason::PidReused), 1);
    assert_eq!(report.dead(DeadReason::Rebooted), 1);
    assert_eq!(f.status(reused)?.as_deref(), Some("Crashed"));
    assert_eq!(f.status(rebooted)?.as_deref(), Some("Stopped"));
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn cleanup_treats_a_reused_pid_as_dead() -> Result<()> {
    let f = Fixture::new()?;
    let catalog = &f.catalog;
    let me = ProcessIdentity::current()?;
    let eph = f.sandbox("eph", "Stopped", true)?;
    let dir = f.mkdir("eph");
    let wrong_start = ProcessIdentity {
        start_time: me.start_time.map(|t| t + 7),
        ..me.clone()
    };
    catalog.insert_running_run(SandboxId::new(eph), &wrong_start, now())?;
    let kept = f.sandbox("kept", "Stopped", true)?;
    catalog.insert_running_run(SandboxId::new(kept), &me, now())?;
    let sweeper = Sweeper::new(&f.sandboxes);
    assert_eq!(
        sweeper.clean_ephemeral(catalog, SandboxId::new(eph))?,
        sandbox_sweep::CleanupOutcome::Removed
    );
    assert_eq!(
        sweeper.clean_ephemeral(catalog, SandboxId::new(kept))?,
        sandbox_sweep::CleanupOutcome::SkippedLivePid
    );
    assert!(!dir.exists());
    assert_eq!(f.status(kept)?.as_deref(), Some("Stopped"));
    Ok(())
}

#[test]
fn null_identity_columns_fall_back_to_the_probe() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("web", "Running", false)?;
    f.run(id, Some(own_pid()), "Running")?;
    assert_eq!(f.sweep().reconciled, 0);
    assert_eq!(f.status(id)?.as_deref(), Some("Running"));
    Ok(())
}

#[test]
fn recording_needs_the_identity_columns() -> Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join("c.db"))?;
    conn.execute_batch(include_str!("data/schema.sql"))?;
    let catalog = Catalog::from_connection(conn)?;
    let conn = catalog.connection();
    conn.execute(
        "INSERT INTO sandbox (name, config, status) VALUES ('w', '{}', 'Running')",
        [],
    )?;
    let me = ProcessIdentity::current()?;
    let run = catalog.insert_running_run(SandboxId::new(1), &me, now())?;
    assert!(matches!(
        catalog.record_identity(run, &me),
        Err(Error::MissingColumn { table: "run", .. })
    ));
    let pid: i64 = conn.query_row("SELECT pid FROM run WHERE id = ?1", [run], |r| r.get(0))?;
    assert_eq!(pid, own_pid());
    Ok(())
}
