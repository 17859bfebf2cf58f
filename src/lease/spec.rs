//! What a named lease is: its row's name, how long a claim lasts, and the
//! least time between two completed runs of the work it guards.
//!
//! A leaf: the gate, the held claim and the install lease all build on it,
//! and it imports none of them. Data and the horizon rule, no SQL.

use std::time::Duration;

use time::PrimitiveDateTime;

use crate::clock::plus;

/// The `maintenance_lease.name` of the sandbox lifecycle sweep:
/// `"sandbox_lifecycle_maintenance"`.
pub const LEASE_NAME: &str = "sandbox_lifecycle_maintenance";
/// How long a sweep's lease lasts unless renewed: 10 s. Each sweep
/// transaction renews it.
pub const LEASE_DURATION: Duration = Duration::from_secs(10);
/// The least time between two complete sweeps: 30 s (see [`MinInterval`]).
pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Whether a lease's minimum interval since the last completed run holds
/// the work back ([`LeaseSpec::min_interval`]): what
/// [`Catalog::try_acquire`](crate::Catalog::try_acquire) and
/// [`Catalog::gate`](crate::Catalog::gate) are told
/// ([`Sweeper::force`](crate::Sweeper::force)`(true)` tells them `Ignore`,
/// the default `Respect`). A live, unexpired lease holds the work back
/// either way.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::SystemClock;
/// use sandbox_sweep::lease::MinInterval;
///
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
/// assert_eq!(catalog.gate(SystemClock::now(), MinInterval::Respect)?, None);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinInterval {
    /// A run completed less than the interval ago means
    /// [`SkipReason::Recent`](crate::SkipReason::Recent): the default, and
    /// what every runtime start wants.
    Respect,
    /// Run even so (the CLI's `--force`, a test, a tool that must sweep now).
    Ignore,
}

/// What one named lease is: its row, how long a claim lasts, and the least
/// time between two completed runs of the work it guards.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sandbox_sweep::lease::LeaseSpec;
///
/// let sweep = LeaseSpec::SWEEP;
/// assert_eq!(sweep.name, "sandbox_lifecycle_maintenance");
/// assert_eq!((sweep.duration, sweep.min_interval), (Duration::from_secs(10), Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSpec {
    /// The `maintenance_lease.name` of its row.
    pub name: &'static str,
    /// How long a claim lasts unless renewed; also how far ahead of the
    /// clock a stored time may be before it counts as skewed.
    pub duration: Duration,
    /// The least time between two completed runs ([`MinInterval::Ignore`]
    /// skips it).
    pub min_interval: Duration,
}

impl LeaseSpec {
    /// The sandbox lifecycle sweep's lease: [`LEASE_NAME`], [`LEASE_DURATION`]
    /// (10 s) and [`MIN_SWEEP_INTERVAL`] (30 s).
    pub const SWEEP: LeaseSpec = LeaseSpec {
        name: LEASE_NAME,
        duration: LEASE_DURATION,
        min_interval: MIN_SWEEP_INTERVAL,
    };

    /// The horizon rule every lease shares: a stored time counts only when
    /// it is no further ahead of `now` than one lease duration, so a clock
    /// that jumped forward and back cannot hold a lease (or suppress a
    /// sweep) for years.
    pub(crate) fn believable(&self, t: PrimitiveDateTime, now: PrimitiveDateTime) -> bool {
        t <= plus(now, self.duration)
    }

    /// Whether a claim expiring at `until` holds the lease at `now`: in the
    /// future, and believable.
    pub(crate) fn held_until(
        &self,
        until: Option<PrimitiveDateTime>,
        now: PrimitiveDateTime,
    ) -> bool {
        until.is_some_and(|t| t > now && self.believable(t, now))
    }
}
