//! One sweep: the entry points (`sweeper`), a pass through both phases
//! (`pass`), the reconcile and cleanup steps for one row (`reconcile`,
//! `cleanup`), what it did (`report`), and the read-only summary `status`
//! shows (`status`).

pub(crate) mod cleanup;
pub(crate) mod context;
pub(crate) mod pass;
pub(crate) mod reconcile;
pub(crate) mod report;
pub(crate) mod settings;
pub(crate) mod status;
pub(crate) mod sweeper;
mod text;
