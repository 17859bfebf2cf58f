//! The maintenance lease: at most one sweeper per window, fenced.
//!
//! One row of `maintenance_lease` (name [`LEASE_NAME`]) holds the holder's
//! pid, when its lease expires and when the last complete sweep finished.
//! Every runtime start pays one indexed read ([`Catalog::gate`]); only when
//! the lease is free and no sweep is recent does it take the write lock,
//! re-check, and claim the row ([`Catalog::try_acquire`]).

use std::fmt;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::stamp::{Stamp, format_stamp, parse_stamp_bytes};
use crate::sweep::Clock;

/// The `maintenance_lease.name` of the sandbox lifecycle sweep.
pub const LEASE_NAME: &str = "sandbox_lifecycle_maintenance";
/// How long a lease lasts unless renewed (each sweep transaction renews it).
pub const LEASE_DURATION: Duration = Duration::from_secs(10);
/// The least time between two complete sweeps (skipped with `force`).
pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Why no sweep ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Another process holds a live, unexpired lease.
    Held,
    /// A sweep completed less than [`MIN_SWEEP_INTERVAL`] ago.
    Recent,
    /// The catalog stayed locked past the busy timeout.
    Busy,
}

impl SkipReason {
    /// The lowercase name the CLI prints: `held`, `recent` or `busy`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sandbox_sweep::SkipReason::Busy.as_str(), "busy");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Held => "held",
            SkipReason::Recent => "recent",
            SkipReason::Busy => "busy",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lease row as read, before any judgement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRow {
    /// `holder_pid`: the process that last took the lease (NULL once released).
    pub holder_pid: Option<i64>,
    /// `lease_expires_at`, parsed; `None` when unparseable.
    pub expires_at: Option<PrimitiveDateTime>,
    /// `last_completed_at`, parsed; `None` when NULL or unparseable.
    pub last_completed_at: Option<PrimitiveDateTime>,
}

/// Adds a std duration to a time, saturating instead of overflowing.
pub(crate) fn plus(t: PrimitiveDateTime, d: Duration) -> PrimitiveDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .unwrap_or(t)
}

fn minus(t: PrimitiveDateTime, d: Duration) -> PrimitiveDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d))
        .unwrap_or(t)
}

impl LeaseRow {
    /// Why a sweep may not start now, or `None` when it may.
    ///
    /// A time further ahead than one lease duration, or unparseable, is
    /// stale: a clock that jumped forward and back cannot block maintenance.
    /// `force` skips only the minimum-interval check, never a live lease.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{LeaseRow, SkipReason, parse_stamp};
    ///
    /// let now = parse_stamp("2026-06-04 00:00:00").expect("valid");
    /// let held = LeaseRow { expires_at: parse_stamp("2026-06-04 00:00:05"), ..Default::default() };
    /// assert_eq!(held.judge(now, false), Some(SkipReason::Held));
    /// let skewed = LeaseRow { expires_at: parse_stamp("9999-01-01 00:00:00"), ..Default::default() };
    /// assert_eq!(skewed.judge(now, false), None);
    /// ```
    pub fn judge(&self, now: PrimitiveDateTime, force: bool) -> Option<SkipReason> {
        let horizon = plus(now, LEASE_DURATION);
        let believable = |t: PrimitiveDateTime| t <= horizon;
        if self.expires_at.is_some_and(|t| t > now && believable(t)) {
            return Some(SkipReason::Held);
        }
        let cutoff = minus(now, MIN_SWEEP_INTERVAL);
        if !force
            && self
                .last_completed_at
                .is_some_and(|t| t > cutoff && believable(t))
        {
            return Some(SkipReason::Recent);
        }
        None
    }
}

fn stamp_value(value: rusqlite::types::ValueRef<'_>) -> Option<PrimitiveDateTime> {
    match value {
        rusqlite::types::ValueRef::Text(text) => parse_stamp_bytes(text),
        _ => None,
    }
}

/// The outcome of [`Catalog::try_acquire`].
#[derive(Debug)]
pub enum Acquire<'a> {
    /// The lease is ours until the guard is completed, released or dropped.
    Acquired(Lease<'a>),
    /// No lease: someone holds it, a sweep is recent, or the catalog is busy.
    Skipped(SkipReason),
}

impl<'c> Catalog<'c> {
    /// Reads the lease row: one primary-key lookup on a cached statement.
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::new(&conn)?;
    /// assert_eq!(catalog.lease_row()?, None);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn lease_row(&self) -> Result<Option<LeaseRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT holder_pid, lease_expires_at, last_completed_at
             FROM maintenance_lease WHERE name = ?1",
        )?;
        let row = stmt
            .query_row([LEASE_NAME], |row| {
                Ok(LeaseRow {
                    holder_pid: match row.get_ref(0)? {
                        rusqlite::types::ValueRef::Integer(pid) => Some(pid),
                        _ => None,
                    },
                    expires_at: stamp_value(row.get_ref(1)?),
                    last_completed_at: stamp_value(row.get_ref(2)?),
                })
            })
            .optional()?;
        Ok(row)
    }

    /// The cheap read gate every runtime start pays: why a sweep may not
    /// start at `now`, or `None` when it may. Reads one row, writes nothing.
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::new(&conn)?;
    /// let now = sandbox_sweep::parse_stamp("2026-06-04 00:00:00").expect("valid");
    /// assert_eq!(catalog.gate(now, false)?, None);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn gate(&self, now: PrimitiveDateTime, force: bool) -> Result<Option<SkipReason>> {
        Ok(self.lease_row()?.and_then(|row| row.judge(now, force)))
    }

    /// Takes the lease if the gate allows it, re-checking under the write
    /// lock (`BEGIN IMMEDIATE`), so two racing processes cannot both win.
    ///
    /// The clock is read again once the lock is held: a time read before
    /// waiting for the lock would make the current holder's expiry look
    /// further ahead than one lease duration, i.e. skewed, i.e. stale.
    ///
    /// `force` skips only the minimum-interval check; a live, unexpired
    /// lease is never taken over. A catalog locked past the busy timeout is
    /// a [`SkipReason::Busy`] skip, not an error.
    ///
    /// # Errors
    ///
    /// Any SQLite error other than busy.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Acquire, SkipReason};
    ///
    /// let conn = rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::new(&conn)?;
    /// let now = sandbox_sweep::parse_stamp("2026-06-04 00:00:00").expect("valid");
    /// let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, false)? else { panic!("free") };
    /// assert!(matches!(catalog.try_acquire(&|| now, true)?, Acquire::Skipped(SkipReason::Held)));
    /// lease.complete(now)?;
    /// assert!(matches!(catalog.try_acquire(&|| now, false)?, Acquire::Skipped(SkipReason::Recent)));
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn try_acquire(&self, clock: &dyn Clock, force: bool) -> Result<Acquire<'_>> {
        if let Some(reason) = self.gate(clock.now(), force)? {
            return Ok(Acquire::Skipped(reason));
        }
        match self.claim(clock, force) {
            Err(err) if err.is_busy() => Ok(Acquire::Skipped(SkipReason::Busy)),
            other => other,
        }
    }

    fn claim(&self, clock: &dyn Clock, force: bool) -> Result<Acquire<'_>> {
        let tx = self.immediate()?;
        let now = clock.now();
        if let Some(reason) = self.lease_row()?.and_then(|row| row.judge(now, force)) {
            return Ok(Acquire::Skipped(reason));
        }
        let pid = i64::from(std::process::id());
        let acquired = format_stamp(now);
        let expires = format_stamp(plus(now, LEASE_DURATION));
        tx.prepare_cached(
            "INSERT INTO maintenance_lease (name, holder_pid, lease_expires_at, last_completed_at)
             VALUES (?1, ?2, ?3, NULL)
             ON CONFLICT(name) DO UPDATE SET
                 holder_pid = excluded.holder_pid,
                 lease_expires_at = excluded.lease_expires_at",
        )?
        .execute(params![LEASE_NAME, pid, expires])?;
        tx.commit().map_err(Error::from_sqlite)?;
        log::debug!("maintenance lease acquired by pid {pid} until {expires}");
        Ok(Acquire::Acquired(Lease {
            catalog: self,
            pid,
            acquired,
            expires,
            finished: false,
            lost: false,
        }))
    }
}

/// A held maintenance lease: a guard like rusqlite's `Transaction`.
///
/// Dropping it releases the lease without recording completion (failures
/// are logged, never panicked on); [`Lease::complete`] records a finished
/// sweep; [`Lease::release`] releases and reports errors. A holder that dies
/// never runs `Drop`: its lease simply expires after [`LEASE_DURATION`].
#[derive(Debug)]
pub struct Lease<'a> {
    catalog: &'a Catalog<'a>,
    pid: i64,
    acquired: Stamp,
    expires: Stamp,
    finished: bool,
    lost: bool,
}

impl<'a> Lease<'a> {
    /// The catalog this lease guards.
    pub fn catalog(&self) -> &'a Catalog<'a> {
        self.catalog
    }

    /// The expiry text this holder last wrote (what fencing compares).
    pub fn expires_at(&self) -> &str {
        &self.expires
    }

    /// Whether a fence check found that another process took the lease.
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Fencing: inside a write transaction, checks that the row still names
    /// this holder with the exact expiry it wrote, and renews it. `false`
    /// (and the lease marked lost) when someone else holds it now.
    pub(crate) fn renew(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        now: PrimitiveDateTime,
    ) -> Result<bool> {
        if self.lost {
            return Ok(false);
        }
        let renewed = format_stamp(plus(now, LEASE_DURATION));
        let changed = tx
            .prepare_cached(
                "UPDATE maintenance_lease SET lease_expires_at = ?4
                 WHERE name = ?1 AND holder_pid = ?2 AND lease_expires_at = ?3",
            )?
            .execute(params![LEASE_NAME, self.pid, self.expires, renewed])?;
        if changed == 1 {
            self.expires = renewed;
            Ok(true)
        } else {
            log::warn!("maintenance lease lost: another process holds it now; stopping");
            self.lost = true;
            Ok(false)
        }
    }

    /// Ends the lease; `completed_at` also records a finished sweep.
    /// Returns whether the lease was still ours.
    pub(crate) fn finish(&mut self, completed_at: Option<PrimitiveDateTime>) -> Result<bool> {
        self.finished = true;
        if self.lost {
            return Ok(false);
        }
        log::debug!("maintenance lease released by pid {}", self.pid);
        // Released means "expired": the acquisition time is in the past for
        // the holder's clock, and nothing else is needed to free the row.
        let (expires, completed) = match completed_at {
            Some(t) => (format_stamp(t), Some(format_stamp(t))),
            None => (self.acquired, None),
        };
        let changed = self
            .catalog
            .conn
            .prepare_cached(
                "UPDATE maintenance_lease
                 SET holder_pid = NULL, lease_expires_at = ?4,
                     last_completed_at = coalesce(?5, last_completed_at)
                 WHERE name = ?1 AND holder_pid = ?2 AND lease_expires_at = ?3",
            )?
            .execute(params![
                LEASE_NAME,
                self.pid,
                self.expires,
                expires,
                completed
            ])?;
        if changed == 0 {
            self.lost = true;
            log::warn!("maintenance lease was taken over before release");
        }
        Ok(!self.lost)
    }

    /// Records a finished sweep at `now` and releases the lease. Does nothing
    /// if the lease was lost.
    ///
    /// # Errors
    ///
    /// Any SQLite error (busy included); the lease then expires by itself.
    pub fn complete(mut self, now: PrimitiveDateTime) -> Result<()> {
        self.finish(Some(now)).map(drop)
    }

    /// Releases the lease without recording completion, so the next start
    /// may sweep at once. Does nothing if the lease was lost.
    ///
    /// # Errors
    ///
    /// Any SQLite error (busy included); the lease then expires by itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::Acquire;
    ///
    /// let conn = rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::new(&conn)?;
    /// let now = sandbox_sweep::parse_stamp("2026-06-04 00:00:00").expect("valid");
    /// let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, false)? else { panic!("free") };
    /// lease.release()?;
    /// assert!(matches!(catalog.try_acquire(&|| now, false)?, Acquire::Acquired(_)));
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn release(mut self) -> Result<()> {
        self.finish(None).map(drop)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.finished {
            if let Err(err) = self.finish(None) {
                log::warn!("could not release the maintenance lease (it will expire): {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::parse_stamp;

    fn at(text: &str) -> PrimitiveDateTime {
        parse_stamp(text).expect("valid test stamp")
    }

    fn test_catalog() -> Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_in_memory()?;
        crate::migrate(&conn)?;
        Ok(conn)
    }

    fn set_row(
        conn: &rusqlite::Connection,
        holder: Option<i64>,
        expires: &str,
        completed: Option<&str>,
    ) -> Result<()> {
        conn.execute(
            "INSERT OR REPLACE INTO maintenance_lease VALUES (?1, ?2, ?3, ?4)",
            params![LEASE_NAME, holder, expires, completed],
        )?;
        Ok(())
    }

    #[test]
    fn lease_is_read_gated_while_held() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::new(&conn)?;
        let now = at("2026-06-04 00:00:00");
        let first = catalog.try_acquire(&|| now, false)?;
        assert!(matches!(first, Acquire::Acquired(_)));
        assert!(matches!(
            catalog.try_acquire(&|| now, false)?,
            Acquire::Skipped(SkipReason::Held)
        ));
        assert!(matches!(
            catalog.try_acquire(&|| now, true)?,
            Acquire::Skipped(SkipReason::Held)
        ));
        drop(first);
        Ok(())
    }

    #[test]
    fn lease_is_read_gated_after_recent_completion() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::new(&conn)?;
        let now = at("2026-06-04 00:00:00");
        let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, false)? else {
            panic!("lease should be free");
        };
        lease.complete(now)?;
        let row = catalog.lease_row()?.expect("row exists");
        assert_eq!(row.holder_pid, None);
        assert_eq!(row.last_completed_at, Some(now));
        assert!(matches!(
            catalog.try_acquire(&|| at("2026-06-04 00:00:29"), false)?,
            Acquire::Skipped(SkipReason::Recent)
        ));
        // `force` skips only the interval.
        assert!(matches!(
            catalog.try_acquire(&|| at("2026-06-04 00:00:29"), true)?,
            Acquire::Acquired(_)
        ));
        Ok(())
    }

    #[test]
    fn lease_is_reacquirable_once_stale() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::new(&conn)?;
        let now = at("2026-06-04 00:00:00");
        let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, false)? else {
            panic!("lease should be free");
        };
        std::mem::forget(lease); // the holder died: no Drop runs
        assert!(matches!(
            catalog.try_acquire(&|| at("2026-06-04 00:00:09"), false)?,
            Acquire::Skipped(SkipReason::Held)
        ));
        assert!(matches!(
            catalog.try_acquire(&|| at("2026-06-04 00:00:10.001"), false)?,
            Acquire::Acquired(_)
        ));
        Ok(())
    }

    #[test]
    fn far_future_and_garbage_times_do_not_block() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::new(&conn)?;
        let now = at("2026-06-04 00:00:00");
        set_row(
            &conn,
            Some(1),
            "9999-12-31 23:59:59",
            Some("9999-12-31 23:59:59"),
        )?;
        assert_eq!(catalog.gate(now, false)?, None);
        set_row(&conn, Some(1), "not a time", Some("tomorrow"))?;
        assert_eq!(catalog.gate(now, false)?, None);
        assert!(matches!(
            catalog.try_acquire(&|| now, false)?,
            Acquire::Acquired(_)
        ));
        // Just inside one lease duration ahead is believed.
        set_row(&conn, Some(1), "2026-06-04 00:00:10", None)?;
        assert_eq!(catalog.gate(now, false)?, Some(SkipReason::Held));
        Ok(())
    }

    #[test]
    fn release_frees_without_recording_completion() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::new(&conn)?;
        let now = at("2026-06-04 00:00:00");
        let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, false)? else {
            panic!("lease should be free");
        };
        lease.release()?;
        let row = catalog.lease_row()?.expect("row exists");
        assert_eq!(
            row,
            LeaseRow {
                holder_pid: None,
                expires_at: Some(now),
                last_completed_at: None
            }
        );
        Ok(())
    }

    #[test]
    fn renewal_fails_once_another_holder_took_over() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::new(&conn)?;
        let now = at("2026-06-04 00:00:00");
        let Acquire::Acquired(mut lease) = catalog.try_acquire(&|| now, false)? else {
            panic!("lease should be free");
        };
        let tx = catalog.immediate()?;
        assert!(lease.renew(&tx, at("2026-06-04 00:00:01"))?);
        assert_eq!(lease.expires_at(), "2026-06-04 00:00:11");
        tx.commit()?;
        // Another process takes over after our (pretend) stall.
        set_row(&conn, Some(999_999), "2026-06-04 00:00:30", None)?;
        let tx = catalog.immediate()?;
        assert!(!lease.renew(&tx, at("2026-06-04 00:00:21"))?);
        tx.commit()?;
        assert!(lease.is_lost());
        lease.release()?;
        let row = catalog.lease_row()?.expect("row exists");
        assert_eq!(
            row.holder_pid,
            Some(999_999),
            "the new holder's row is untouched"
        );
        Ok(())
    }
}
