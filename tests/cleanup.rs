//! `Sweeper::clean_ephemeral`: a runtime removing its own finished ephemeral sandbox.
//!
//! Through the public API only, on the shared fixture (`tests/common/fixture.rs`).

pub mod common;

use common::*;
use sandbox_sweep::*;

fn clean(f: &Fixture, id: i64) -> Result<CleanupOutcome> {
    Sweeper::new(&f.sandboxes).clean_ephemeral(&f.catalog, SandboxId::new(id))
}

#[test]
fn cleanup_removes_terminal_ephemeral_row_and_dir() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("eph", "Stopped", true)?;
    f.run(id, Some(DEAD_PID), "Running")?;
    let dir = f.mkdir("eph");
    assert_eq!(clean(&f, id)?, CleanupOutcome::Removed);
    assert_eq!(f.status(id)?, None);
    assert_eq!(f.count("SELECT count(*) FROM run")?, 0);
    assert!(!exists(&dir));
    // Emptied, the trash folder goes too: only sandboxes stay listed.
    assert!(!exists(&f.sandboxes.join(TRASH_DIR)));
    Ok(())
}

#[test]
fn cleanup_skips_persistent() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("keep", "Stopped", false)?;
    let dir = f.mkdir("keep");
    assert_eq!(clean(&f, id)?, CleanupOutcome::SkippedPersistent);
    assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir.join("rootfs/data")));
    Ok(())
}

#[test]
fn cleanup_skips_non_terminal() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("run", "Running", true)?;
    let dir = f.mkdir("run");
    assert_eq!(clean(&f, id)?, CleanupOutcome::SkippedActive);
    assert_eq!(f.status(id)?.as_deref(), Some("Running"));
    assert!(exists(&dir));
    Ok(())
}

#[test]
fn cleanup_skips_when_run_pid_is_live() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("live", "Stopped", true)?;
    f.run(id, Some(own_pid()), "Running")?;
    let dir = f.mkdir("live");
    assert_eq!(clean(&f, id)?, CleanupOutcome::SkippedLivePid);
    assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir));
    Ok(())
}

#[test]
fn cleanup_second_call_is_no_op() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("eph", "Stopped", true)?;
    assert_eq!(clean(&f, id)?, CleanupOutcome::Removed);
    assert_eq!(clean(&f, id)?, CleanupOutcome::AlreadyGone);
    Ok(())
}

#[test]
fn cleanup_rejects_invalid_names_without_touching_disk() -> Result<()> {
    let f = Fixture::new()?;
    let canary = f.dir.path().join("canary");
    std::fs::create_dir(&canary).expect("mkdir");
    let id = f.sandbox("../canary", "Stopped", true)?;
    assert_eq!(clean(&f, id)?, CleanupOutcome::InvalidName);
    assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    assert!(exists(&canary));
    assert!(!exists(&f.sandboxes.join(TRASH_DIR)));
    Ok(())
}

#[test]
fn cleanup_deletes_runs_even_without_foreign_keys() -> Result<()> {
    let f = Fixture::new()?;
    f.conn().execute_batch("PRAGMA foreign_keys = OFF")?;
    let id = f.sandbox("eph", "Crashed", true)?;
    f.run(id, Some(DEAD_PID), "Terminated")?;
    f.run(id, None, "Running")?;
    let other = f.sandbox("other", "Crashed", false)?;
    let kept_run = f.run(other, None, "Terminated")?;
    assert_eq!(clean(&f, id)?, CleanupOutcome::Removed);
    assert_eq!(f.count("SELECT count(*) FROM run")?, 1);
    assert!(f.run_row(kept_run)?.is_some());
    Ok(())
}

#[test]
fn blocked_trash_keeps_the_row_for_retry() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("eph", "Stopped", true)?;
    let dir = f.mkdir("eph");
    // The trash path is taken by a file: the directory cannot be moved.
    std::fs::write(f.sandboxes.join(TRASH_DIR), b"not a dir").expect("write");
    assert_eq!(clean(&f, id)?, CleanupOutcome::DirRemoveFailed);
    assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir.join("rootfs/data")));
    Ok(())
}

#[test]
fn symlinked_trash_is_never_used() -> Result<()> {
    let f = Fixture::new()?;
    let outside = f.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, f.sandboxes.join(TRASH_DIR)).expect("symlink");
    let id = f.sandbox("eph", "Stopped", true)?;
    let dir = f.mkdir("eph");
    assert_eq!(clean(&f, id)?, CleanupOutcome::DirRemoveFailed);
    assert!(exists(&dir.join("rootfs/data")));
    assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 0);
    Ok(())
}

#[test]
fn missing_directory_still_removes_the_row() -> Result<()> {
    let f = Fixture::new()?;
    let id = f.sandbox("never-created", "Crashed", true)?;
    assert_eq!(clean(&f, id)?, CleanupOutcome::Removed);
    assert_eq!(f.status(id)?, None);
    Ok(())
}
