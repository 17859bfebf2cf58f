//! Named leases in `maintenance_lease`: the sweep lease, for tools that
//! drive a sweep themselves ([`Catalog::try_acquire`], [`Lease`]), and the
//! install-exclusive lease an installer holds ([`InstallLease`]); a sweep
//! skips (`installing`) while that one is held.
//!
//! Inside: what a lease is (`spec`, the leaf the others build on), the gate
//! and the claim a sweep takes (`gate`), the claim it holds while it works
//! (`guard`), and the install lease (`install`).
//!
//! [`Catalog::try_acquire`]: crate::Catalog::try_acquire

pub(crate) mod gate;
pub(crate) mod guard;
pub(crate) mod install;
pub(crate) mod spec;

pub use crate::error::InstallRefusal;
pub use gate::{Acquire, LeaseRow};
pub use guard::Lease;
pub use install::{INSTALL_LEASE_DURATION, INSTALL_LEASE_NAME, InstallLease};
pub use spec::{LEASE_DURATION, LEASE_NAME, LeaseSpec, MIN_SWEEP_INTERVAL, MinInterval};
