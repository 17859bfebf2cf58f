//! How a sweep's results read for a person: `Display` for [`Report`] and
//! [`SweepOutcome`], which logs and the CLI both use (a summary's is
//! `status/text.rs`).
//!
//! Wording only: no SQL, no filesystem, no decisions (how a sweep ended is
//! [`Report::end`]'s to say, and only worded here).

use std::fmt;

use crate::catalog::MissingIndexes;
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

/// `reconciled` and `removed`, or what a dry run would have done.
fn verbs(dry_run: bool) -> (&'static str, &'static str) {
    if dry_run {
        ("would reconcile", "would remove")
    } else {
        ("reconciled", "removed")
    }
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
        let (reconciled, removed) = verbs(self.dry_run);
        write!(
            f,
            "{reconciled} {} (crashed {}, stopped {}), {removed} {}, errors {}",
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
        let (reconciled, removed) = verbs(self.dry_run);
        write!(
            f,
            "{verb} in {:.3} ms: {reconciled} {} (crashed {}, stopped {}), {removed} {}, errors {}",
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
            write!(f, "\n  {}", MissingIndexes(&self.missing_indexes))?;
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
            SweepEnd::RunDir => "nothing is swept until the run directory can be opened",
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

/// `{}`: one labelled line (what a log line wants). `{:#}`: the headline,
/// then one indented line per thing worth saying (dead runtimes, cleanup
/// outcomes, rows left alone, what is left for the next sweep).
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
        SkipReason::Recent => "a sweep completed less than 30 s ago",
        SkipReason::Busy => "the catalog stayed locked (past the budget or the busy timeout)",
        SkipReason::Installing => "an installer holds the catalog (install_exclusive)",
    }
}

/// `{}`: the word (`held`); `{:#}`: the word and why no sweep ran.
///
/// ```
/// use sandbox_sweep::SkipReason;
///
/// assert_eq!(SkipReason::Recent.to_string(), "recent");
/// assert_eq!(format!("{:#}", SkipReason::Recent), "recent: a sweep completed less than 30 s ago");
/// ```
impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if f.alternate() {
            write!(f, ": {}", explain(*self))?;
        }
        Ok(())
    }
}

/// `skipped (held): …`, `sweep failed: …` (the error's whole chain), or
/// the report (`{}` its line, `{:#}` its lines). Every form but a
/// report's `{:#}` is one line.
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
                write!(f, "skipped ({}): {}", reason.as_str(), explain(*reason))
            }
            SweepOutcome::Failed(err) => write!(f, "sweep failed: {err:#}"),
            SweepOutcome::Swept(report) => fmt::Display::fmt(report, f),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Summary;

    /// A dry run says what it would have done, never that it did.
    #[test]
    fn a_dry_run_says_would() {
        let mut report = Report {
            dry_run: true,
            complete: true,
            ..Report::default()
        };
        report.count_outcome(CleanupOutcome::Removed);
        assert_eq!(
            report.to_string(),
            "dry run: would reconcile 0 (crashed 0, stopped 0), would remove 1, errors 0; complete; 0 ms"
        );
        assert_eq!(
            format!("{report:#}"),
            "dry run (nothing written) in 0.000 ms: would reconcile 0 (crashed 0, stopped 0), \
             would remove 1, errors 0\n  dead runtimes: none\n  ephemeral candidates: removed 1\n  \
             nothing left behind"
        );
    }

    /// `status` and `sweep` explain missing indexes in the same sentence,
    /// and neither names a command to type.
    #[test]
    fn missing_indexes_read_the_same_in_both() {
        let sentence = "indexes missing: idx_sandbox_status (each run lookup scans the whole \
                        table, so a sweep does few rows in its budget)";
        let report = Report {
            complete: true,
            missing_indexes: vec!["idx_sandbox_status"],
            ..Report::default()
        };
        let summary = Summary {
            missing_indexes: vec!["idx_sandbox_status"],
            ..Summary::default()
        };
        let (report, summary) = (format!("{report:#}"), format!("{summary:#}"));
        assert!(report.contains(&format!("\n  {sentence}\n")), "{report}");
        assert!(summary.contains(&format!("\n{sentence}\n")), "{summary}");
        for text in [report, summary] {
            assert!(!text.contains("sandbox-sweep"), "{text}");
        }
    }

    /// A skip's `{:#}` says why; the library never says which flag to pass.
    #[test]
    fn skips_explain_without_flags() {
        assert_eq!(SkipReason::Recent.to_string(), "recent");
        assert_eq!(
            format!("{:#}", SkipReason::Recent),
            "recent: a sweep completed less than 30 s ago"
        );
        assert_eq!(
            SweepOutcome::Skipped(SkipReason::Recent).to_string(),
            "skipped (recent): a sweep completed less than 30 s ago"
        );
    }
}
