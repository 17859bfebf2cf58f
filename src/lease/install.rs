//! The install-exclusive lease: while an installer (an upgrade, a schema
//! rollback) holds it, nothing may write the catalog.
//!
//! Row `install_exclusive` of `maintenance_lease`, with microsandbox's
//! semantics: acquire seeds the row, then claims it only where expired;
//! renew and clear compare and set on the holder pid plus the exact expiry
//! text; a sweep checks it at the gate and inside every write transaction.
//! No sweeping here and no filesystem.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::catalog::sql::{
    INSTALL_CLAIM, INSTALL_CLEAR, INSTALL_READ, INSTALL_RENEW, INSTALL_SEED,
};
use crate::catalog::stamp::{Stamp, format_stamp, parse_stamp_bytes};
use crate::clock::{Clock, plus};
use crate::error::{Error, InstallRefusal, Result};
use crate::lease::spec::LeaseSpec;

/// The `maintenance_lease.name` of the install-exclusive lease.
pub const INSTALL_LEASE_NAME: &str = "install_exclusive";
/// How long an install claim lasts unless renewed: 30 minutes.
pub const INSTALL_LEASE_DURATION: Duration = Duration::from_secs(30 * 60);

impl LeaseSpec {
    /// The install-exclusive lease: [`INSTALL_LEASE_NAME`],
    /// [`INSTALL_LEASE_DURATION`] (30 min), no minimum interval.
    pub const INSTALL: LeaseSpec = LeaseSpec {
        name: INSTALL_LEASE_NAME,
        duration: INSTALL_LEASE_DURATION,
        min_interval: Duration::ZERO,
    };
}

/// A held install-exclusive lease: who holds it and the exact expiry text
/// it wrote. Unlike the sweep's [`Lease`](crate::lease::Lease) it is plain data,
/// not a guard: an installer clears it explicitly when it is done (an
/// installer that dies leaves it to expire after 30 minutes), and may keep
/// it across processes.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, SystemClock};
/// use sandbox_sweep::lease::InstallLease;
///
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// let catalog = Catalog::from_connection(conn)?;
/// let conn = catalog.connection();
/// let mut lease = InstallLease::acquire(&catalog, &SystemClock)?;
/// assert!(InstallLease::refuse_if_held(&conn, SystemClock::now()).is_err());
/// lease.renew(&catalog, &SystemClock)?;
/// lease.clear(&catalog, &SystemClock)?;
/// lease.clear_idempotent(&catalog, &SystemClock)?; // already clear: fine
/// InstallLease::refuse_if_held(&conn, SystemClock::now())?;
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an unused install lease stays held until it expires (30 minutes): renew or clear it"]
pub struct InstallLease {
    holder_pid: i64,
    expires: Stamp,
}

/// The install row's holder and expiry, as stored.
fn read(catalog: &Catalog) -> Result<Option<(Option<i64>, Option<String>)>> {
    read_on(&catalog.conn)
}

fn read_on(conn: &Connection) -> Result<Option<(Option<i64>, Option<String>)>> {
    let row = conn
        .prepare_cached(INSTALL_READ)?
        .query_row([INSTALL_LEASE_NAME], |row| {
            let holder = row.get::<_, Option<i64>>(0).ok().flatten();
            let until = match row.get_ref(1)? {
                rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                _ => None,
            };
            Ok((holder, until))
        })
        .optional()?;
    Ok(row)
}

/// Whether an expiry text means the lease is held at `now`: in the future,
/// but not further than one lease duration (a clock that jumped forward and
/// back cannot lock the catalog for years).
fn held_at(until: Option<&str>, now: PrimitiveDateTime) -> bool {
    LeaseSpec::INSTALL.held_until(until.and_then(|t| parse_stamp_bytes(t.as_bytes())), now)
}

/// Whether an installer holds the catalog at `now`; a catalog without the
/// table (or the row) has none. What the sweep checks at its gate and
/// inside every write transaction.
pub(crate) fn installing(catalog: &Catalog, now: PrimitiveDateTime) -> Result<bool> {
    Ok(read(catalog)?.is_some_and(|(_, until)| held_at(until.as_deref(), now)))
}

impl InstallLease {
    /// Takes the install-exclusive lease for 30 minutes if it is free or
    /// expired: seeds the row if it is missing, then claims it, clearing
    /// `last_completed_at`, all under the write lock.
    ///
    /// # Errors
    ///
    /// [`Error::Install`] with [`InstallRefusal::Held`] when another
    /// installer holds it; any SQLite error.
    pub fn acquire(catalog: &Catalog, clock: &dyn Clock) -> Result<InstallLease> {
        let tx = catalog.immediate()?;
        let now = clock.now();
        tx.prepare_cached(INSTALL_SEED)?
            .execute(params![INSTALL_LEASE_NAME, &*format_stamp(now)])?;
        if let Some((holder_pid, Some(until))) = read(catalog)?
            && held_at(Some(&until), now)
        {
            return Err(Error::Install(InstallRefusal::Held { holder_pid, until }));
        }
        let holder_pid = i64::from(std::process::id());
        let expires = format_stamp(plus(now, INSTALL_LEASE_DURATION));
        tx.prepare_cached(INSTALL_CLAIM)?.execute(params![
            INSTALL_LEASE_NAME,
            holder_pid,
            &*expires
        ])?;
        tx.commit().map_err(Error::from_sqlite)?;
        log::info!("install-exclusive lease acquired by pid {holder_pid} until {expires}");
        Ok(InstallLease {
            holder_pid,
            expires,
        })
    }

    /// The holder's pid.
    pub fn holder_pid(&self) -> i64 {
        self.holder_pid
    }

    /// The expiry text this holder last wrote (what renew and clear compare).
    pub fn expires_at(&self) -> &str {
        &self.expires
    }

    /// Extends the lease by 30 minutes from now, if this holder still holds
    /// the row with the exact expiry it wrote.
    ///
    /// # Errors
    ///
    /// [`Error::Install`] with [`InstallRefusal::NotHolder`] when it does
    /// not; any SQLite error.
    pub fn renew(&mut self, catalog: &Catalog, clock: &dyn Clock) -> Result<()> {
        let renewed = format_stamp(plus(clock.now(), INSTALL_LEASE_DURATION));
        self.compare_and_set(catalog, INSTALL_RENEW, renewed)?;
        self.expires = renewed;
        Ok(())
    }

    /// Releases the lease: holder NULL, expiry and completion now.
    ///
    /// # Errors
    ///
    /// [`Error::Install`] with [`InstallRefusal::NotHolder`] when this
    /// holder no longer holds the row; any SQLite error.
    pub fn clear(&self, catalog: &Catalog, clock: &dyn Clock) -> Result<()> {
        self.compare_and_set(catalog, INSTALL_CLEAR, format_stamp(clock.now()))
    }

    /// [`InstallLease::clear`], where a row already released or expired is
    /// success too, so an installer restarted after a crash can repeat its
    /// cleanup.
    ///
    /// # Errors
    ///
    /// [`Error::Install`] when another installer holds the row now; any
    /// SQLite error.
    pub fn clear_idempotent(&self, catalog: &Catalog, clock: &dyn Clock) -> Result<()> {
        match self.clear(catalog, clock) {
            Err(Error::Install(_)) => match read(catalog)? {
                Some((Some(_), until)) if held_at(until.as_deref(), clock.now()) => {
                    Err(Error::Install(InstallRefusal::NotHolder))
                }
                _ => Ok(()),
            },
            other => other,
        }
    }

    /// Refuses, with the time it ends, while an installer holds the
    /// catalog: what a runtime asks before it starts or migrates. It takes
    /// a bare connection, since it runs before the catalog is migrated; a
    /// catalog without the `maintenance_lease` table is not an error
    /// (migrations create it later).
    ///
    /// # Errors
    ///
    /// [`Error::Install`] with [`InstallRefusal::Held`]; any other SQLite
    /// error.
    pub fn refuse_if_held(conn: &Connection, now: PrimitiveDateTime) -> Result<()> {
        let row = match read_on(conn) {
            Err(Error::Sqlite(err)) if err.to_string().contains("no such table") => None,
            other => other?,
        };
        match row {
            Some((holder_pid, Some(until))) if held_at(Some(&until), now) => {
                Err(Error::Install(InstallRefusal::Held { holder_pid, until }))
            }
            _ => Ok(()),
        }
    }

    fn compare_and_set(&self, catalog: &Catalog, sql: &str, new: Stamp) -> Result<()> {
        let changed = catalog.conn.prepare_cached(sql)?.execute(params![
            INSTALL_LEASE_NAME,
            self.holder_pid,
            &*self.expires,
            &*new
        ])?;
        if changed == 1 {
            Ok(())
        } else {
            Err(Error::Install(InstallRefusal::NotHolder))
        }
    }
}
