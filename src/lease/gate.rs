//! Named leases in `maintenance_lease`: claim, fence, renew, release.
//!
//! One row per lease, named by a [`LeaseSpec`], holds the holder's pid, when
//! its claim expires and when the last complete run of the guarded work
//! finished. Every runtime start pays one indexed read ([`Catalog::gate`]);
//! only when the lease is free and nothing ran recently does it take the
//! write lock, re-check, and claim the row ([`Catalog::try_acquire`]). The
//! mechanism is the same for every named lease: only the spec differs. No
//! sweeping here, and no filesystem.

use rusqlite::{OptionalExtension, params};
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::catalog::sql::{CLAIM_LEASE, READ_LEASE};
use crate::catalog::stamp::{format_stamp, parse_stamp_bytes};
use crate::clock::{Clock, minus, plus};
use crate::error::{Error, Result};
use crate::lease::guard::Lease;
use crate::lease::spec::{LeaseSpec, MinInterval};

/// Why no sweep ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// Another process holds a live, unexpired lease.
    Held,
    /// A sweep completed less than [`MIN_SWEEP_INTERVAL`](crate::lease::MIN_SWEEP_INTERVAL) (30 s) ago.
    Recent,
    /// The catalog stayed locked past the busy timeout, or (in
    /// [`Sweeper::run`](crate::Sweeper::run)) past the sweep's budget.
    Busy,
    /// An installer (an upgrade, a schema rollback) holds the
    /// install-exclusive lease: nothing may write the catalog.
    Installing,
}

impl SkipReason {
    /// The lowercase name the CLI prints: `held`, `recent`, `busy` or
    /// `installing`.
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
            SkipReason::Installing => "installing",
        }
    }
}

/// The inverse of [`SkipReason::as_str`].
///
/// ```
/// use sandbox_sweep::SkipReason;
/// assert_eq!("busy".parse::<SkipReason>()?, SkipReason::Busy);
/// assert!("later".parse::<SkipReason>().is_err());
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
impl std::str::FromStr for SkipReason {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> Result<SkipReason, Self::Err> {
        let all = [
            SkipReason::Held,
            SkipReason::Recent,
            SkipReason::Busy,
            SkipReason::Installing,
        ];
        crate::error::parse_word(&all, SkipReason::as_str, "skip_reason", text)
    }
}

/// A lease row as read, before any judgement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRow {
    /// `holder_pid`: the process that last took the lease (NULL once
    /// released, or a value that is not an integer).
    pub holder_pid: Option<i64>,
    /// `lease_expires_at`, parsed; `None` when unparseable.
    pub expires_at: Option<PrimitiveDateTime>,
    /// `last_completed_at`, parsed; `None` when NULL or unparseable.
    pub last_completed_at: Option<PrimitiveDateTime>,
}

impl LeaseRow {
    /// Why the sweep may not start at `now` under this row, or `None` when
    /// it may. See [`LeaseRow::skip_reason_for`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{SkipReason, time::{Date, Month}};
    /// use sandbox_sweep::lease::{LeaseRow, MinInterval};
    ///
    /// let now = Date::from_calendar_date(2026, Month::June, 4)?.midnight();
    /// let held = LeaseRow { expires_at: Some(now + std::time::Duration::from_secs(5)), ..Default::default() };
    /// assert_eq!(held.skip_reason(now, MinInterval::Respect), Some(SkipReason::Held));
    /// let skewed = LeaseRow { expires_at: Some(now + std::time::Duration::from_secs(3600)), ..Default::default() };
    /// assert_eq!(skewed.skip_reason(now, MinInterval::Respect), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn skip_reason(&self, now: PrimitiveDateTime, interval: MinInterval) -> Option<SkipReason> {
        self.skip_reason_for(&LeaseSpec::SWEEP, now, interval)
    }

    /// Why the work `spec` guards may not start at `now`, or `None`.
    ///
    /// A time further ahead than one lease duration, or unparseable, is
    /// stale: a clock that jumped forward and back cannot block the work.
    /// [`MinInterval::Ignore`] skips only the minimum-interval check, never
    /// a live claim.
    pub fn skip_reason_for(
        &self,
        spec: &LeaseSpec,
        now: PrimitiveDateTime,
        interval: MinInterval,
    ) -> Option<SkipReason> {
        if spec.held_until(self.expires_at, now) {
            return Some(SkipReason::Held);
        }
        let cutoff = minus(now, spec.min_interval);
        if interval == MinInterval::Respect
            && self
                .last_completed_at
                .is_some_and(|t| t > cutoff && spec.believable(t, now))
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

/// A lease row from a statement reading `?, holder_pid, lease_expires_at,
/// last_completed_at` ([`READ_LEASE`]).
fn lease_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LeaseRow> {
    Ok(LeaseRow {
        holder_pid: match row.get_ref(1)? {
            rusqlite::types::ValueRef::Integer(pid) => Some(pid),
            _ => None,
        },
        expires_at: stamp_value(row.get_ref(2)?),
        last_completed_at: stamp_value(row.get_ref(3)?),
    })
}

/// The outcome of [`Catalog::try_acquire`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Acquire<'a> {
    /// The lease is ours until the guard is completed, released or dropped.
    Acquired(Lease<'a>),
    /// No lease: someone holds it, a sweep is recent, or the catalog is busy.
    Skipped(SkipReason),
}

impl Catalog {
    /// Reads the sweep's lease row: one primary-key lookup on a cached statement.
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
    /// assert_eq!(catalog.lease_row()?, None);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn lease_row(&self) -> Result<Option<LeaseRow>> {
        self.lease_row_of(&LeaseSpec::SWEEP)
    }

    /// Reads the row of the lease `spec` names.
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, SystemClock};
    /// use sandbox_sweep::lease::{LeaseSpec, MinInterval};
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let lease = catalog.try_acquire(&SystemClock, MinInterval::Respect)?;
    /// let row = catalog.lease_row_of(&LeaseSpec::SWEEP)?.expect("claimed");
    /// assert_eq!(row.holder_pid, Some(i64::from(std::process::id())));
    /// drop(lease);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn lease_row_of(&self, spec: &LeaseSpec) -> Result<Option<LeaseRow>> {
        let mut stmt = self.conn.prepare_cached(READ_LEASE)?;
        let row = stmt.query_row([spec.name], lease_row).optional()?;
        Ok(row)
    }

    /// The cheap read gate every runtime start pays: why a sweep may not
    /// start at `now`, or `None` when it may. Reads the sweep's lease row
    /// and, only when that would let a sweep start, the install-exclusive
    /// row; writes nothing.
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::lease::MinInterval;
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
    /// assert_eq!(catalog.gate(sandbox_sweep::SystemClock::now(), MinInterval::Respect)?, None);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn gate(
        &self,
        now: PrimitiveDateTime,
        interval: MinInterval,
    ) -> Result<Option<SkipReason>> {
        let spec = &LeaseSpec::SWEEP;
        let skip = self
            .lease_row_of(spec)?
            .and_then(|row| row.skip_reason_for(spec, now, interval));
        // The install row only matters when a sweep would start: a held or
        // recent lease writes nothing either, and a second lookup on every
        // start nearly doubled what each runtime pays (4.6 -> 8.2 us).
        if skip.is_none() && crate::lease::install::installing(self, now)? {
            return Ok(Some(SkipReason::Installing));
        }
        Ok(skip)
    }

    /// Takes the sweep's lease if the gate allows it, re-checking under the
    /// write lock (`BEGIN IMMEDIATE`), so two racing processes cannot both win.
    ///
    /// The clock is read again once the lock is held: a time read before
    /// waiting for the lock would make the current holder's expiry look
    /// further ahead than one lease duration, i.e. skewed, i.e. stale.
    ///
    /// [`MinInterval::Ignore`] skips only the minimum-interval check; a live, unexpired
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
    /// use sandbox_sweep::{SkipReason, SystemClock};
    /// use sandbox_sweep::lease::{Acquire, MinInterval};
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
    /// let now = SystemClock::now();
    /// let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, MinInterval::Respect)? else { panic!("free") };
    /// assert!(matches!(catalog.try_acquire(&|| now, MinInterval::Ignore)?, Acquire::Skipped(SkipReason::Held)));
    /// lease.complete(now)?;
    /// assert!(matches!(catalog.try_acquire(&|| now, MinInterval::Respect)?, Acquire::Skipped(SkipReason::Recent)));
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn try_acquire(&self, clock: &dyn Clock, interval: MinInterval) -> Result<Acquire<'_>> {
        let spec = &LeaseSpec::SWEEP;
        if let Some(reason) = self.gate(clock.now(), interval)? {
            return Ok(Acquire::Skipped(reason));
        }
        match self.claim(spec, clock, interval) {
            Err(err) if err.is_busy() => Ok(Acquire::Skipped(SkipReason::Busy)),
            other => other,
        }
    }

    fn claim(
        &self,
        spec: &LeaseSpec,
        clock: &dyn Clock,
        interval: MinInterval,
    ) -> Result<Acquire<'_>> {
        let tx = self.immediate()?;
        let now = clock.now();
        if crate::lease::install::installing(self, now)? {
            return Ok(Acquire::Skipped(SkipReason::Installing));
        }
        let row = self.lease_row_of(spec)?;
        if let Some(reason) = row.and_then(|row| row.skip_reason_for(spec, now, interval)) {
            return Ok(Acquire::Skipped(reason));
        }
        let pid = i64::from(std::process::id());
        let acquired = format_stamp(now);
        let expires = format_stamp(plus(now, spec.duration));
        tx.prepare_cached(CLAIM_LEASE)?
            .execute(params![spec.name, pid, expires])?;
        tx.commit().map_err(Error::from_sqlite)?;
        log::debug!(
            "maintenance lease acquired by pid {pid} until {expires} ({})",
            spec.name
        );
        Ok(Acquire::Acquired(Lease::new(
            self, *spec, pid, acquired, expires,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::stamp::parse_stamp;
    use crate::lease::spec::LEASE_NAME;

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
        let catalog = Catalog::from_connection(conn)?;
        let now = at("2026-06-04 00:00:00");
        let first = catalog.try_acquire(&|| now, MinInterval::Respect)?;
        assert!(matches!(first, Acquire::Acquired(_)));
        assert!(matches!(
            catalog.try_acquire(&|| now, MinInterval::Respect)?,
            Acquire::Skipped(SkipReason::Held)
        ));
        assert!(matches!(
            catalog.try_acquire(&|| now, MinInterval::Ignore)?,
            Acquire::Skipped(SkipReason::Held)
        ));
        drop(first);
        Ok(())
    }

    #[test]
    fn lease_is_read_gated_after_recent_completion() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::from_connection(conn)?;
        let now = at("2026-06-04 00:00:00");
        let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, MinInterval::Respect)? else {
            panic!("lease should be free");
        };
        lease.complete(now)?;
        let row = catalog.lease_row()?.expect("row exists");
        assert_eq!(row.holder_pid, None);
        assert_eq!(row.last_completed_at, Some(now));
        assert!(matches!(
            catalog.try_acquire(&|| at("2026-06-04 00:00:29"), MinInterval::Respect)?,
            Acquire::Skipped(SkipReason::Recent)
        ));
        // Ignoring the interval skips only the interval.
        assert!(matches!(
            catalog.try_acquire(&|| at("2026-06-04 00:00:29"), MinInterval::Ignore)?,
            Acquire::Acquired(_)
        ));
        Ok(())
    }

    #[test]
    fn lease_is_reacquirable_once_stale() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::from_connection(conn)?;
        let now = at("2026-06-04 00:00:00");
        let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, MinInterval::Respect)? else {
            panic!("lease should be free");
        };
        std::mem::forget(lease); // the holder died: no Drop runs
        assert!(matches!(
            catalog.try_acquire(&|| at("2026-06-04 00:00:09"), MinInterval::Respect)?,
            Acquire::Skipped(SkipReason::Held)
        ));
        assert!(matches!(
            catalog.try_acquire(&|| at("2026-06-04 00:00:10.001"), MinInterval::Respect)?,
            Acquire::Acquired(_)
        ));
        Ok(())
    }

    #[test]
    fn far_future_and_garbage_times_do_not_block() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::from_connection(conn)?;
        let conn = catalog.connection();
        let now = at("2026-06-04 00:00:00");
        set_row(
            conn,
            Some(1),
            "9999-12-31 23:59:59",
            Some("9999-12-31 23:59:59"),
        )?;
        assert_eq!(catalog.gate(now, MinInterval::Respect)?, None);
        set_row(conn, Some(1), "not a time", Some("tomorrow"))?;
        assert_eq!(catalog.gate(now, MinInterval::Respect)?, None);
        assert!(matches!(
            catalog.try_acquire(&|| now, MinInterval::Respect)?,
            Acquire::Acquired(_)
        ));
        // Just inside one lease duration ahead is believed.
        set_row(conn, Some(1), "2026-06-04 00:00:10", None)?;
        assert_eq!(
            catalog.gate(now, MinInterval::Respect)?,
            Some(SkipReason::Held)
        );
        Ok(())
    }

    #[test]
    fn release_frees_without_recording_completion() -> Result<()> {
        let conn = test_catalog()?;
        let catalog = Catalog::from_connection(conn)?;
        let now = at("2026-06-04 00:00:00");
        let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, MinInterval::Respect)? else {
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
        let catalog = Catalog::from_connection(conn)?;
        let conn = catalog.connection();
        let now = at("2026-06-04 00:00:00");
        let Acquire::Acquired(mut lease) = catalog.try_acquire(&|| now, MinInterval::Respect)?
        else {
            panic!("lease should be free");
        };
        let tx = catalog.immediate()?;
        assert!(lease.renew(&tx, at("2026-06-04 00:00:01"))?);
        assert_eq!(lease.expires_at(), "2026-06-04 00:00:11");
        tx.commit()?;
        // Another process takes over after our (pretend) stall.
        set_row(conn, Some(999_999), "2026-06-04 00:00:30", None)?;
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
