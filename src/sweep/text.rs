//! How a sweep's results read for a person: `Display` for [`Report`] and
//! [`SweepOutcome`], which logs and the CLI both use (a summary's is
//! `status/text.rs`).
//!
//! Wording only: no SQL, no filesystem, no decisions (how a sweep ended is
//! [`Report::end`]'s to say, and only worded here).

use std::fmt;

use crate::lease::gate::SkipReason;
use crate::process::liveness::DeadReason;
use crate::sweep::cleanup::CleanupOutcome;
use crate::sweep::report::{Report, SweepEnd};
use crate::sweep::sweeper::SweepOutcome;

/// `label a 1, b 2` for the non-zero counters of `all`, each after `sep`
/// on the first; nothing when all are zero, or `none` when `none` is set.
fn nonzero<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    (sep, label, none): (&str, &str, bool),
    counted: impl IntoIterator<Item = (T, u64)>,
) -> fmt::Result {
    let mut first = true;
    for (item, n) in counted {
        if n > 0 {
            let (sep, head) = if first { (sep, label) } else { (", ", "") };
            write!(f, "{sep}{head}{item} {n}")?;
            first = false;
        }
    }
    if first && none {
        write!(f, "{sep}{label}none")?;
    }
    Ok(())
}

impl Report {
    /// Every reason a runtime was found dead, with its count.
    fn deaths(&self) -> impl Iterator<Item = (DeadReason, u64)> {
        DeadReason::ALL.into_iter().map(|r| (r, self.dead(r)))
    }

    /// The outcomes cleanup counts apart from `removed`.
    fn kept(&self) -> impl Iterator<Item = CleanupOutcome> {
        CleanupOutcome::ALL
            .into_iter()
            .filter(|&o| o != CleanupOutcome::Removed)
    }

    fn line(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            f.write_str("dry run: ")?;
        }
        write!(
            f,
            "reconciled {} (crashed {}, stopped {}), removed {}, errors {}",
            self.reconciled, self.crashed, self.stopped, self.removed, self.errors
        )?;
        if self.abandoned > 0 {
            write!(f, ", abandoned starts {}", self.abandoned)?;
        }
        if self.lifecycle_owned > 0 {
            write!(f, ", lifecycle owned {}", self.lifecycle_owned)?;
        }
        if self.trash_deferred > 0 {
            write!(f, ", trash deferred {}", self.trash_deferred)?;
        }
        if self.trash_failed > 0 {
            write!(f, ", trash not deleted {}", self.trash_failed)?;
        }
        let invalid = self.invalid_row.by_column();
        nonzero(f, ("; ", "invalid rows left alone: ", false), invalid)?;
        nonzero(f, ("; ", "dead: ", false), self.deaths())?;
        let kept = self.kept().map(|o| (o, self.outcome(o)));
        nonzero(f, ("; ", "kept: ", false), kept)?;
        if let Some(err) = &self.sandboxes_dir_error {
            write!(f, "; ephemeral phase skipped: {err}")?;
        }
        if let Some(err) = &self.run_dir_error {
            write!(f, "; nothing swept: {err}")?;
        }
        let end = match self.end() {
            SweepEnd::RunDir | SweepEnd::SandboxesDir => "",
            SweepEnd::LeaseLost => "; stopped early: lease lost",
            SweepEnd::Installing => "; stopped early: an installer holds the catalog",
            SweepEnd::TimedOut => "; stopped early: time budget",
            SweepEnd::RowLimit => "; stopped early: row limit",
            SweepEnd::Complete => "; complete",
        };
        write!(f, "{end}; {} ms", self.elapsed.as_millis())
    }

    fn lines(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "dry run (nothing written)"
        } else {
            "swept"
        };
        write!(
            f,
            "{verb} in {:.3} ms: reconciled {} (crashed {}, stopped {}), removed {}, errors {}",
            self.elapsed.as_secs_f64() * 1000.0,
            self.reconciled,
            self.crashed,
            self.stopped,
            self.removed,
            self.errors
        )?;
        if self.abandoned > 0 {
            write!(
                f,
                "\n  abandoned starts crashed (Starting, no run, no owner, no endpoint): {}",
                self.abandoned
            )?;
        }
        if self.lifecycle_owned > 0 {
            write!(
                f,
                "\n  left alone, creation or lifecycle lock held by a live owner: {}",
                self.lifecycle_owned
            )?;
        }
        nonzero(f, ("\n  ", "dead runtimes: ", true), self.deaths())?;
        let outcomes = CleanupOutcome::ALL.map(|o| (o, self.outcome(o)));
        nonzero(f, ("\n  ", "ephemeral candidates: ", true), outcomes)?;
        let invalid = self.invalid_row.by_column();
        let label = "rows left alone, a column not stored as declared: ";
        nonzero(f, ("\n  ", label, false), invalid)?;
        if !self.missing_indexes.is_empty() {
            write!(
                f,
                "\n  the catalog lacks {} (each run lookup scans the whole table): `sandbox-sweep init` adds them",
                self.missing_indexes.join(", ")
            )?;
        }
        if let Some(err) = &self.trash_error {
            write!(
                f,
                "\n  trash not deleted ({}; every sweep tries again): {err}",
                self.trash_failed
            )?;
        }
        if let Some(err) = &self.sandboxes_dir_error {
            write!(f, "\n  ephemeral sandboxes not cleaned: {err}")?;
        }
        if let Some(err) = &self.run_dir_error {
            write!(f, "\n  nothing swept: {err}")?;
        }
        let left = match self.end() {
            SweepEnd::RunDir => "fix the run directory (--run-dir, or <home>/run)",
            SweepEnd::LeaseLost => "stopped: the lease was taken by another process",
            SweepEnd::Installing => "stopped: an installer took the catalog; nothing written after",
            SweepEnd::TimedOut => "time budget ran out; the next sweep continues",
            SweepEnd::SandboxesDir => "reconcile done; fix the sandboxes directory for cleanup",
            SweepEnd::RowLimit => "row limit reached; the next sweep continues",
            // Every candidate was done; only the trash may still hold
            // what the next sweep deletes.
            SweepEnd::Complete if self.trash_failed > 0 => {
                "every candidate done; what the trash could not delete stays there"
            }
            SweepEnd::Complete if self.trash_deferred > 0 => {
                "every candidate done; the next sweep deletes the rest of the trash"
            }
            SweepEnd::Complete => "nothing left behind",
        };
        write!(f, "\n  {left}")
    }
}

/// One labelled line (`{}`), or what `sandbox-sweep sweep` prints (`{:#}`).
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            self.lines(f)
        } else {
            self.line(f)
        }
    }
}

/// Why a sweep was skipped, for a person.
fn explain(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::Held => "another process holds the maintenance lease",
        SkipReason::Recent => "a sweep completed less than 30 s ago (use --force)",
        SkipReason::Busy => "the catalog stayed locked (past the budget or the busy timeout)",
        SkipReason::Installing => "an installer holds the catalog (install_exclusive)",
    }
}

/// `skipped (held): …`, `sweep failed: …`, or the report (`{:#}` passes
/// through to it).
///
/// ```
/// use sandbox_sweep::{SkipReason, SweepOutcome};
///
/// let skipped = SweepOutcome::Skipped(SkipReason::Held);
/// assert_eq!(skipped.to_string(), "skipped (held): another process holds the maintenance lease");
/// ```
impl fmt::Display for SweepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepOutcome::Skipped(reason) => {
                write!(f, "skipped ({reason}): {}", explain(*reason))
            }
            SweepOutcome::Failed(err) => write!(f, "sweep failed: {err}"),
            SweepOutcome::Swept(report) => fmt::Display::fmt(report, f),
        }
    }
}
