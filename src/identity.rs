//! A runtime's process identity, and storing it with its run row.

use rusqlite::params;
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::procfs::{self, StatRead};
use crate::stamp::format_stamp;

/// Who a process is: its pid plus what tells it from a later process that
/// gets the same pid (start time) or from one before a reboot (boot id).
///
/// # Examples
///
/// ```
/// let me = sandbox_sweep::ProcessIdentity::current()?;
/// assert_eq!(me.pid, std::process::id() as i32);
/// if cfg!(target_os = "linux") {
///     assert!(me.start_time.is_some() && me.boot_id.is_some());
/// }
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// The process id.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot when the process
    /// started. `None` where `/proc` is absent.
    pub start_time: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id`, trimmed. `None` where absent.
    pub boot_id: Option<String>,
}

impl ProcessIdentity {
    /// The identity of the calling process.
    ///
    /// # Errors
    ///
    /// See [`ProcessIdentity::of`].
    pub fn current() -> Result<ProcessIdentity> {
        let pid = i32::try_from(std::process::id()).map_err(|_| Error::Process {
            pid: -1,
            detail: "own pid does not fit in an i32".into(),
        })?;
        ProcessIdentity::of(pid)
    }

    /// The identity of process `pid`, read now.
    ///
    /// # Errors
    ///
    /// [`Error::Process`] when `pid` is not positive or, on Linux, when the
    /// process does not exist or its `/proc` record cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(sandbox_sweep::ProcessIdentity::of(0).is_err());
    /// ```
    pub fn of(pid: i32) -> Result<ProcessIdentity> {
        if pid <= 0 {
            return Err(Error::Process {
                pid,
                detail: "not a process id".into(),
            });
        }
        let start_time = match procfs::read_stat(pid) {
            StatRead::Found(stat) => Some(stat.start_time),
            StatRead::Gone => {
                return Err(Error::Process {
                    pid,
                    detail: "no such process".into(),
                });
            }
            StatRead::Unknown if cfg!(target_os = "linux") => {
                return Err(Error::Process {
                    pid,
                    detail: "cannot read /proc/<pid>/stat".into(),
                });
            }
            StatRead::Unknown => None,
        };
        Ok(ProcessIdentity {
            pid,
            start_time,
            boot_id: procfs::boot_id(),
        })
    }

    fn start_time_column(&self) -> Option<i64> {
        // Ticks since boot fit an i64 for billions of years; saturate anyway.
        self.start_time
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
    }
}

/// Inserts a `Running` run for `sandbox_id` owned by `identity`, the way a
/// runtime records its own start; returns the new run's id.
///
/// Stores `pid_start_time` and `boot_id` when the catalog has those columns
/// (see [`migrate`](crate::migrate)); on an older catalog only the pid.
///
/// # Errors
///
/// Any SQLite error, e.g. a `sandbox_id` that violates the foreign key.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, ProcessIdentity, insert_running_run};
///
/// let conn = rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// conn.execute("INSERT INTO sandbox (name, config, status) VALUES ('web', '{}', 'Running')", [])?;
/// let catalog = Catalog::new(&conn)?;
/// let now = time::OffsetDateTime::now_utc();
/// let now = time::PrimitiveDateTime::new(now.date(), now.time());
/// let run = insert_running_run(&catalog, 1, &ProcessIdentity::current()?, now)?;
/// assert_eq!(run, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn insert_running_run(
    catalog: &Catalog<'_>,
    sandbox_id: i64,
    identity: &ProcessIdentity,
    started_at: PrimitiveDateTime,
) -> Result<i64> {
    let started_at = format_stamp(started_at);
    let conn = catalog.conn;
    if catalog.schema.identity {
        conn.prepare_cached(
            "INSERT INTO run (sandbox_id, pid, status, started_at, pid_start_time, boot_id)
             VALUES (?1, ?2, 'Running', ?3, ?4, ?5)",
        )?
        .execute(params![
            sandbox_id,
            identity.pid,
            started_at,
            identity.start_time_column(),
            identity.boot_id
        ])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, 'Running', ?3)",
        )?
        .execute(params![sandbox_id, identity.pid, started_at])?;
    }
    Ok(conn.last_insert_rowid())
}

/// Stores `identity` (pid, start time, boot id) on an existing run row;
/// returns whether the row exists.
///
/// # Errors
///
/// [`Error::MissingColumn`] when the catalog lacks the identity columns (run
/// [`migrate`](crate::migrate) first); any SQLite error.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, ProcessIdentity, record_identity};
///
/// let conn = rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// conn.execute("INSERT INTO sandbox (name, config, status) VALUES ('web', '{}', 'Running')", [])?;
/// conn.execute("INSERT INTO run (sandbox_id, pid, status) VALUES (1, NULL, 'Running')", [])?;
/// let catalog = Catalog::new(&conn)?;
/// assert!(record_identity(&catalog, 1, &ProcessIdentity::current()?)?);
/// assert!(!record_identity(&catalog, 99, &ProcessIdentity::current()?)?);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
pub fn record_identity(
    catalog: &Catalog<'_>,
    run_id: i64,
    identity: &ProcessIdentity,
) -> Result<bool> {
    if !catalog.schema.identity {
        return Err(Error::MissingColumn {
            table: "run",
            column: "pid_start_time",
        });
    }
    let changed = catalog
        .conn
        .prepare_cached("UPDATE run SET pid = ?2, pid_start_time = ?3, boot_id = ?4 WHERE id = ?1")?
        .execute(params![
            run_id,
            identity.pid,
            identity.start_time_column(),
            identity.boot_id
        ])?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Fixture, now, own_pid};
    use crate::{DeadReason, Limits, Outcome, Sweeper};

    fn sweep(f: &Fixture) -> Result<crate::Report> {
        let catalog = Catalog::new(&f.conn)?;
        match Sweeper::new(&f.sandboxes)
            .limits(Limits::unlimited())
            .force(true)
            .run_with(&catalog, &now)
        {
            Outcome::Swept(report) => Ok(report),
            other => panic!("expected a sweep, got {other:?}"),
        }
    }

    #[test]
    fn inserted_run_carries_identity_and_stays_alive() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("web", "Running", false)?;
        let catalog = Catalog::new(&f.conn)?;
        let me = ProcessIdentity::current()?;
        let run = insert_running_run(&catalog, id, &me, now())?;
        let (pid, start, boot): (i64, Option<i64>, Option<String>) = f.conn.query_row(
            "SELECT pid, pid_start_time, boot_id FROM run WHERE id = ?1",
            [run],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        assert_eq!(pid, own_pid());
        assert_eq!(start, me.start_time.map(|t| t as i64));
        assert_eq!(boot, me.boot_id);
        assert_eq!(sweep(&f)?.reconciled, 0);
        assert_eq!(f.status(id)?.as_deref(), Some("Running"));
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reused_pid_and_pre_reboot_runs_are_reconciled() -> Result<()> {
        let f = Fixture::new()?;
        let catalog = Catalog::new(&f.conn)?;
        let me = ProcessIdentity::current()?;
        let reused = f.sandbox("reused", "Running", false)?;
        let run = insert_running_run(&catalog, reused, &me, now())?;
        let wrong_start = ProcessIdentity {
            start_time: me.start_time.map(|t| t + 1),
            ..me.clone()
        };
        assert!(record_identity(&catalog, run, &wrong_start)?);
        let rebooted = f.sandbox("rebooted", "Draining", false)?;
        let other_boot = ProcessIdentity {
            boot_id: Some("11111111-2222-3333-4444-555555555555".into()),
            ..me.clone()
        };
        insert_running_run(&catalog, rebooted, &other_boot, now())?;
        let report = sweep(&f)?;
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
        let catalog = Catalog::new(&f.conn)?;
        let me = ProcessIdentity::current()?;
        let eph = f.sandbox("eph", "Stopped", true)?;
        let dir = f.mkdir("eph");
        let wrong_start = ProcessIdentity {
            start_time: me.start_time.map(|t| t + 7),
            ..me.clone()
        };
        insert_running_run(&catalog, eph, &wrong_start, now())?;
        let kept = f.sandbox("kept", "Stopped", true)?;
        insert_running_run(&catalog, kept, &me, now())?;
        assert_eq!(
            crate::clean_ephemeral(&catalog, &f.sandboxes, eph)?,
            crate::CleanupOutcome::Removed
        );
        assert_eq!(
            crate::clean_ephemeral(&catalog, &f.sandboxes, kept)?,
            crate::CleanupOutcome::SkippedLivePid
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
        assert_eq!(sweep(&f)?.reconciled, 0);
        assert_eq!(f.status(id)?.as_deref(), Some("Running"));
        Ok(())
    }

    #[test]
    fn recording_needs_the_identity_columns() -> Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = rusqlite::Connection::open(dir.path().join("c.db"))?;
        conn.execute_batch(include_str!("../tests/data/schema.sql"))?;
        let catalog = Catalog::new(&conn)?;
        conn.execute(
            "INSERT INTO sandbox (name, config, status) VALUES ('w', '{}', 'Running')",
            [],
        )?;
        let me = ProcessIdentity::current()?;
        let run = insert_running_run(&catalog, 1, &me, now())?;
        assert!(matches!(
            record_identity(&catalog, run, &me),
            Err(Error::MissingColumn { table: "run", .. })
        ));
        let pid: i64 = conn.query_row("SELECT pid FROM run WHERE id = ?1", [run], |r| r.get(0))?;
        assert_eq!(pid, own_pid());
        Ok(())
    }
}
