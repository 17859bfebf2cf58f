//! What a sweep did: the [`Report`] and how it reads in a log.
//!
//! Counters only: no SQL, no filesystem, no decisions. The pass fills it in
//! through the `count_*` methods; everyone else reads it.

use std::time::Duration;

use crate::catalog::columns::Column;
use crate::process::liveness::DeadReason;
use crate::sweep::cleanup::CleanupOutcome;

/// What a sweep did.
///
/// `Display` writes one labelled line, for logs; `{:#}` writes the
/// several lines a person reads (the CLI's `sweep` prints them):
///
/// ```
/// let report = sandbox_sweep::Report::default();
/// assert_eq!(
///     report.to_string(),
///     "reconciled 0 (crashed 0, stopped 0), removed 0, errors 0; stopped early: row limit; 0 ms"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Active sandboxes repaired (`crashed + stopped`).
    pub reconciled: u64,
    /// `Starting` or `Running` sandboxes marked `Crashed` (abandoned starts
    /// included).
    pub crashed: u64,
    /// `Draining` sandboxes marked `Stopped`.
    pub stopped: u64,
    /// Ephemeral sandboxes whose directory and rows were removed.
    pub removed: u64,
    /// Per-row problems (bad name, directory that would not move); rows left as they were.
    pub errors: u64,
    /// Abandoned starts marked `Crashed` (counted in `crashed` too): rows
    /// `Starting` with no running run, whose creation and lifecycle locks
    /// were free and on whose socket paths nothing answered. Only judged
    /// beside a run directory.
    pub abandoned: u64,
    /// Rows left alone in either phase because a lock is held elsewhere (a
    /// creation or lifecycle lock; cleanup counts a held snapshot-lineage
    /// lock under its own outcome): a live owner, whatever the pid said.
    /// Not an error.
    pub lifecycle_owned: u64,
    /// The time budget ran out before both phases were done.
    pub timed_out: bool,
    /// Another process took the lease mid-sweep; nothing was written after.
    pub lease_lost: bool,
    /// An installer took the install-exclusive lease mid-sweep; nothing was
    /// written after.
    pub installing: bool,
    /// Both phases went through every candidate: nothing was left behind.
    pub complete: bool,
    /// Why the ephemeral phase did not run: the sandboxes directory could
    /// not be opened (the message names it). Counted in `errors`; reconcile
    /// ran, and the window is recorded as done, so runtime starts do not
    /// retry it before the interval.
    pub sandboxes_dir_error: Option<String>,
    /// This crate's indexes the catalog lacks (see
    /// [`Catalog::missing_indexes`](crate::Catalog::missing_indexes)):
    /// [`migrate`](crate::migrate) adds them. A sweep never changes the schema.
    pub missing_indexes: Vec<&'static str>,
    /// Why nothing was swept: the run directory given could not be opened
    /// (the message names it). Counted in `errors`; no row was examined,
    /// and the window is not recorded as swept.
    pub run_dir_error: Option<String>,
    /// Nothing was written: the counts say what a sweep would have done.
    pub dry_run: bool,
    /// Removed sandboxes' directories left in the trash because the budget
    /// ran out while deleting them; the next sweep deletes them.
    pub trash_deferred: u64,
    /// Trash entries this sweep could not delete (a mount point inside, an
    /// immutable file, a directory this user may not write). Counted in
    /// `errors` too: each stays in the trash (its row is gone, as msb's
    /// rule allows only there), and every later sweep tries again.
    pub trash_failed: u64,
    /// The first of those failures: the path and the error.
    pub trash_error: Option<String>,
    /// Rows left exactly as they were because a column a rule reads had
    /// the wrong storage class, by column. Not errors: another program's
    /// rows, reported (and logged once per column per sweep).
    pub invalid_row: InvalidRows,
    /// How long the sweep took.
    pub elapsed: Duration,
    /// Both phases ran to the end or could not run at all: the lease
    /// records completion.
    pub(crate) settled: bool,
    pub(crate) dead: [u64; DeadReason::ALL.len()],
    pub(crate) outcomes: [u64; CleanupOutcome::ALL.len()],
}

/// Rows left alone for a column of the wrong storage class, by column.
///
/// SQLite stores any value in any column. A rule acts on a row only when
/// every column it reads holds what the catalog declares; any other row is
/// counted here and left exactly as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidRows {
    /// `sandbox.name` not TEXT, not UTF-8, or not valid as a name (see
    /// [`validate_name`](crate::sandboxes::validate_name)).
    pub name: u64,
    /// `sandbox.status` not TEXT.
    pub status: u64,
    /// `sandbox.ephemeral` not INTEGER 0 or 1.
    pub ephemeral: u64,
    /// `run.pid` neither INTEGER nor NULL.
    pub pid: u64,
    /// `run.started_at` of a running run neither NULL nor TEXT in the
    /// catalog's format: which run is newest cannot be told.
    pub started_at: u64,
}

impl InvalidRows {
    /// Every counter with its column's name, in a fixed order.
    pub fn by_column(&self) -> [(&'static str, u64); 5] {
        [
            ("name", self.name),
            ("status", self.status),
            ("ephemeral", self.ephemeral),
            ("pid", self.pid),
            ("started_at", self.started_at),
        ]
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.by_column().iter().map(|(_, n)| n).sum()
    }

    fn slot(&mut self, column: Column) -> &mut u64 {
        match column {
            Column::Name => &mut self.name,
            Column::Status => &mut self.status,
            Column::Ephemeral => &mut self.ephemeral,
            Column::Pid => &mut self.pid,
            Column::StartedAt => &mut self.started_at,
        }
    }
}

impl Report {
    /// Counts sandbox `id` as left alone for `column`, logging the first
    /// of each column in this sweep (a catalog may hold thousands).
    pub(crate) fn count_invalid(&mut self, id: i64, column: Column) {
        let n = self.invalid_row.slot(column);
        *n += 1;
        if *n == 1 {
            log::warn!(
                "sandbox {id}: its {column} is not stored as the catalog declares; \
                 left as it is (rows like it are counted in invalid_row.{column})"
            );
        }
    }

    /// How many reconciliations found the runtime dead for `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// let report = sandbox_sweep::Report::default();
    /// assert_eq!(report.dead(sandbox_sweep::process::DeadReason::Zombie), 0);
    /// ```
    pub fn dead(&self, reason: DeadReason) -> u64 {
        self.dead[reason.index()]
    }

    /// How many ephemeral candidates ended with `outcome`.
    ///
    /// # Examples
    ///
    /// ```
    /// let report = sandbox_sweep::Report::default();
    /// assert_eq!(report.outcome(sandbox_sweep::CleanupOutcome::Removed), 0);
    /// ```
    pub fn outcome(&self, outcome: CleanupOutcome) -> u64 {
        self.outcomes[outcome.index()]
    }

    /// How the sweep ended, the first that applies, in the order of
    /// [`SweepEnd`]'s variants. Every printer of a report words these, so
    /// none works the order out again.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Report, SweepEnd};
    /// assert_eq!(Report::default().end(), SweepEnd::RowLimit);
    /// assert_eq!(SweepEnd::RowLimit.as_str(), "row_limit");
    /// ```
    pub fn end(&self) -> SweepEnd {
        if self.run_dir_error.is_some() {
            SweepEnd::RunDir
        } else if self.lease_lost {
            SweepEnd::LeaseLost
        } else if self.installing {
            SweepEnd::Installing
        } else if self.timed_out {
            SweepEnd::TimedOut
        } else if self.sandboxes_dir_error.is_some() {
            SweepEnd::SandboxesDir
        } else if !self.complete {
            SweepEnd::RowLimit
        } else {
            SweepEnd::Complete
        }
    }

    pub(crate) fn count_outcome(&mut self, outcome: CleanupOutcome) {
        self.outcomes[outcome.index()] += 1;
        if outcome == CleanupOutcome::Removed {
            self.removed += 1;
        }
        if outcome == CleanupOutcome::LifecycleOwned {
            self.lifecycle_owned += 1;
        }
        if outcome.is_error() {
            self.errors += 1;
        }
    }

    /// Counts one reconciled sandbox: `stopped` for a draining one, else
    /// crashed; `reason` is why its run is dead (`None`: no running run).
    pub(crate) fn count_reconciled(&mut self, stopped: bool, reason: Option<DeadReason>) {
        self.reconciled += 1;
        if stopped {
            self.stopped += 1;
        } else {
            self.crashed += 1;
        }
        if let Some(reason) = reason {
            self.dead[reason.index()] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_labels_every_nonzero_counter() {
        let mut report = Report {
            complete: true,
            elapsed: Duration::from_millis(12),
            ..Report::default()
        };
        report.count_reconciled(false, Some(DeadReason::Zombie));
        report.count_reconciled(true, None);
        report.count_outcome(CleanupOutcome::Removed);
        report.count_outcome(CleanupOutcome::InvalidName);
        report.count_outcome(CleanupOutcome::SkippedLivePid);
        assert_eq!(
            report.to_string(),
            "reconciled 2 (crashed 1, stopped 1), removed 1, errors 1; dead: zombie 1; \
             kept: skipped_live_pid 1, invalid_name 1; complete; 12 ms"
        );
    }
}

/// How a sweep that ran ended ([`Report::end`]), the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SweepEnd {
    /// Nothing swept: the run directory could not be opened
    /// ([`Report::run_dir_error`]).
    RunDir,
    /// Another process took the lease mid-sweep; this one stopped.
    LeaseLost,
    /// An installer holds the catalog; the sweep stopped.
    Installing,
    /// The time budget ran out.
    TimedOut,
    /// Cleanup was skipped: the sandboxes directory could not be opened
    /// ([`Report::sandboxes_dir_error`]).
    SandboxesDir,
    /// A row limit stopped a phase before its last candidate.
    RowLimit,
    /// Both phases went through every candidate.
    Complete,
}

impl SweepEnd {
    /// Every end, in the order [`Report::end`] checks them.
    pub const ALL: [SweepEnd; 7] = [
        SweepEnd::RunDir,
        SweepEnd::LeaseLost,
        SweepEnd::Installing,
        SweepEnd::TimedOut,
        SweepEnd::SandboxesDir,
        SweepEnd::RowLimit,
        SweepEnd::Complete,
    ];

    /// One stable lowercase word, as the CLI's JSON and metrics show it.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepEnd::RunDir => "run_dir",
            SweepEnd::LeaseLost => "lease_lost",
            SweepEnd::Installing => "installing",
            SweepEnd::TimedOut => "timed_out",
            SweepEnd::SandboxesDir => "sandboxes_dir",
            SweepEnd::RowLimit => "row_limit",
            SweepEnd::Complete => "complete",
        }
    }
}

impl std::fmt::Display for SweepEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inverse of [`SweepEnd::as_str`].
///
/// ```
/// use sandbox_sweep::SweepEnd;
/// assert_eq!("timed_out".parse::<SweepEnd>()?, SweepEnd::TimedOut);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
impl std::str::FromStr for SweepEnd {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> std::result::Result<SweepEnd, Self::Err> {
        crate::error::parse_word(&SweepEnd::ALL, SweepEnd::as_str, "sweep_end", text)
    }
}
