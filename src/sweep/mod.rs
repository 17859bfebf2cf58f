//! One sweep: the entry points (`sweeper`), a pass through both phases
//! (`pass`), the reconcile and cleanup steps for one row (`reconcile`,
//! `cleanup`), and what it did (`report`). The read-only summary `status`
//! shows is `crate::status`, which asks `reconcile`'s rule.

pub(crate) mod cleanup;
pub(crate) mod context;
pub(crate) mod pass;
pub(crate) mod reconcile;
pub(crate) mod report;
pub(crate) mod settings;
pub(crate) mod sweeper;
mod text;
