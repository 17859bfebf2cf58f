//! A held lease: the guard that fences every write of its holder, renews
//! the claim, and releases it (recording completion or not).
//!
//! Owns what a holder does with its claim once `lease` granted it; never
//! a claim of its own, and no sweeping.

use rusqlite::params;
use time::PrimitiveDateTime;

use crate::catalog::Catalog;
use crate::catalog::sql::{RELEASE_LEASE, RENEW_LEASE};
use crate::catalog::stamp::{Stamp, format_stamp};
use crate::clock::plus;
use crate::error::Result;
use crate::lease::spec::LeaseSpec;

/// A held lease: a guard like rusqlite's `Transaction`.
///
/// Dropping it releases the lease without recording completion (failures
/// are logged, never panicked on); [`Lease::complete`] records a finished
/// sweep; [`Lease::release`] releases and reports errors. A holder that dies
/// never runs `Drop`: its lease simply expires after its duration
/// ([`LEASE_DURATION`](crate::lease::LEASE_DURATION), 10 s, for the sweep).
#[derive(Debug)]
#[must_use = "dropping a lease releases it at once: sweep with it first"]
pub struct Lease<'a> {
    catalog: &'a Catalog,
    spec: LeaseSpec,
    pid: i64,
    acquired: Stamp,
    expires: Stamp,
    /// The expiry before the last renewal, until that renewal's
    /// transaction commits: a transaction that rolls back leaves it in the
    /// row, and the release must compare against what is there.
    uncommitted: Option<Stamp>,
    finished: bool,
    lost: bool,
}

impl<'a> Lease<'a> {
    /// The guard of a claim just written: holder `pid`, claimed at
    /// `acquired`, expiring at `expires` (both as written).
    pub(crate) fn new(
        catalog: &'a Catalog,
        spec: LeaseSpec,
        pid: i64,
        acquired: Stamp,
        expires: Stamp,
    ) -> Lease<'a> {
        Lease {
            catalog,
            spec,
            pid,
            acquired,
            expires,
            uncommitted: None,
            finished: false,
            lost: false,
        }
    }

    /// The catalog this lease guards.
    pub fn catalog(&self) -> &'a Catalog {
        self.catalog
    }

    /// Which lease this is.
    pub fn spec(&self) -> &LeaseSpec {
        &self.spec
    }

    /// The expiry text this holder last wrote (what fencing compares).
    pub fn expires_at(&self) -> &str {
        &self.expires
    }

    /// Whether a fence check found that another process took the lease.
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// The transaction of the last renewal committed: its expiry is the
    /// row's now.
    pub(crate) fn committed(&mut self) {
        self.uncommitted = None;
    }

    /// The transaction of the last renewal rolled back (an error, or a
    /// statement interrupted at the budget): the row still holds the
    /// expiry before it, which the release compares against.
    pub(crate) fn rolled_back(&mut self) {
        if let Some(before) = self.uncommitted.take() {
            self.expires = before;
        }
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
        let renewed = format_stamp(plus(now, self.spec.duration));
        let changed = tx.prepare_cached(RENEW_LEASE)?.execute(params![
            self.spec.name,
            self.pid,
            self.expires,
            renewed
        ])?;
        if changed == 1 {
            let before = std::mem::replace(&mut self.expires, renewed);
            self.uncommitted.get_or_insert(before);
            Ok(true)
        } else {
            log::warn!(
                "maintenance lease lost: another process holds it now; stopping ({})",
                self.spec.name
            );
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
        log::debug!(
            "maintenance lease released by pid {} ({})",
            self.pid,
            self.spec.name
        );
        // Released means "expired": the acquisition time is in the past for
        // the holder's clock, and nothing else is needed to free the row.
        let (expires, completed) = match completed_at {
            Some(t) => (format_stamp(t), Some(format_stamp(t))),
            None => (self.acquired, None),
        };
        let changed = self
            .catalog
            .conn
            .prepare_cached(RELEASE_LEASE)?
            .execute(params![
                self.spec.name,
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
    /// use sandbox_sweep::lease::{Acquire, MinInterval};
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
    /// let now = sandbox_sweep::SystemClock::now();
    /// let Acquire::Acquired(lease) = catalog.try_acquire(&|| now, MinInterval::Respect)? else { panic!("free") };
    /// lease.release()?;
    /// assert!(matches!(catalog.try_acquire(&|| now, MinInterval::Respect)?, Acquire::Acquired(_)));
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn release(mut self) -> Result<()> {
        self.finish(None).map(drop)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.finished
            && let Err(err) = self.finish(None)
        {
            log::warn!("could not release the maintenance lease (it will expire): {err:#}");
        }
    }
}
