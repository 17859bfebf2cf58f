//! Named leases in `maintenance_lease`: what a lease is (`spec`), the
//! gate and the claim a sweep takes (`gate`), the claim it holds while it
//! works (`guard`), and the install-exclusive lease an installer holds
//! (`install`). `spec` is the leaf the other three build on.

pub(crate) mod gate;
pub(crate) mod guard;
pub(crate) mod install;
pub(crate) mod spec;
