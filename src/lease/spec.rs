//! What a named lease is: its row's name, how long a claim lasts, and the
//! least time between two completed runs of the work it guards.
//!
//! A leaf: the gate, the held claim and the install lease all build on it,
//! and it imports none of them. Data only, no SQL.

use std::time::Duration;

/// The `maintenance_lease.name` of the sandbox lifecycle sweep:
/// `"sandbox_lifecycle_maintenance"`.
pub const LEASE_NAME: &str = "sandbox_lifecycle_maintenance";
/// How long a sweep's lease lasts unless renewed: 10 s. Each sweep
/// transaction renews it.
pub const LEASE_DURATION: Duration = Duration::from_secs(10);
/// The least time between two complete sweeps: 30 s (skipped with `force`).
pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// What one named lease is: its row, how long a claim lasts, and the least
/// time between two completed runs of the work it guards.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sandbox_sweep::LeaseSpec;
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
    /// The least time between two completed runs (`force` skips it).
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
}
