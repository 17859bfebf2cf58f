//! What `sandbox-sweep status` reads: a [`Summary`] of the catalog
//! ([`Catalog::summary`], or [`Catalog::summary_with`] to keep only the
//! first entries of each list and stream the rest), and the active
//! sandboxes that block a schema rollback ([`active_sandboxes`]).
//!
//! Owns the report and nothing it judges: which active sandbox the next
//! sweep would reconcile, and why, is the sweep's own per-row rule
//! (`sweep::reconcile`), asked here as a dry run asks it. Reads only: never
//! a write to the catalog's file (without the run index the running runs
//! are copied once into the connection's temporary database), never a lock
//! taken or a lock file made (held locks are read from `/proc/locks`),
//! never a sort or a list held whole: entries go to a callback as found.
//! One file per concept: `summary.rs` (the [`Summary`] and its walk),
//! `stale.rs` (the stale lists, through the sweep's rule), `active.rs`
//! ([`ActiveSandbox`]), `count.rs` (sandboxes per status), `lists.rs`
//! (shapes of the lists and options), `runs.rs` (run lookups only a report
//! makes), `text.rs` ([`Summary`]'s `Display`).
//!
//! [`Catalog::summary`]: crate::Catalog::summary
//! [`Catalog::summary_with`]: crate::Catalog::summary_with

use rusqlite::types::ValueRef;

use crate::sandboxes::lifecycle::SandboxStatus;

mod active;
mod count;
mod lists;
mod runs;
mod stale;
mod summary;
mod text;

pub use active::{ActiveSandbox, active_sandboxes};
pub use lists::{Entry, List, StaleList, SummaryOptions};
pub use stale::StaleSandbox;
pub use summary::{LeaseRecord, Summary};

/// A status column's value as a known status; `None` for anything else
/// (the queries here select known text only, so that is never expected).
fn known_status(value: ValueRef<'_>) -> Option<SandboxStatus> {
    match value {
        ValueRef::Text(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    }
}

/// SQLite counts are never negative.
fn sql_count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// How a status report shows a stored name: as text, lossily when it is
/// not UTF-8 (a report never fails on a name, and without a run directory
/// a sweep reconciles a row whatever its name holds, so it is listed).
fn shown_name(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Null => String::new(),
    }
}
