//! How a [`Summary`] reads for a person: its `Display`, what `sandbox-sweep
//! status` prints under its `catalog <path>` line.
//!
//! Wording only: no SQL, no filesystem, no decisions.

use std::fmt;

use crate::catalog::MissingIndexes;
use crate::orphans::text::Bytes;
use crate::process::liveness::DeadReason;
use crate::status::lists::List;
use crate::status::stale::StaleSandbox;
use crate::status::summary::Summary;

/// Up to `shown` of a list's kept stale sandboxes, one a line, then how
/// many more it had.
fn stale_list(f: &mut fmt::Formatter<'_>, stale: &List<StaleSandbox>, shown: usize) -> fmt::Result {
    let listed = &stale.first[..stale.first.len().min(shown)];
    let hidden = stale.total.saturating_sub(listed.len() as u64);
    for dead in listed {
        let reason = dead.reason.map_or("no running run", DeadReason::as_str);
        let name = format!("{:?}", dead.name);
        write!(
            f,
            "\n  #{:<6} {name:<24} {:<9} {reason}",
            dead.id, dead.status
        )?;
    }
    if hidden > 0 {
        write!(f, "\n  … and {hidden} more")?;
    }
    Ok(())
}

/// `{}`: one line of counts, for a log line or a prompt. `{:#}`: what
/// `status` prints under its `catalog <path>` line, every list in full, or
/// with a precision at most that many entries of each (`{:#.20}` is what
/// `status` shows without `--all`).
///
/// ```
/// let summary = sandbox_sweep::status::Summary::default();
/// assert_eq!(
///     summary.to_string(),
///     "0 sandboxes; cleanup candidates 0; dead runtimes 0; install never taken; lease never taken"
/// );
/// assert_eq!(
///     format!("{summary:#.0}"),
///     "  no sandboxes\n\
///      finished ephemeral sandboxes (cleanup candidates): 0\n\
///      active sandboxes with a dead runtime now: 0\n\
///      install: never taken\n\
///      lease: never taken"
/// );
/// ```
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            self.lines(f)
        } else {
            self.line(f)
        }
    }
}

impl Summary {
    fn line(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = self.by_status.iter().map(|(s, n)| (s.as_str(), *n));
        let other = (self.other_status > 0).then_some(("(other)", self.other_status));
        let total: u64 = counts.clone().chain(other).map(|(_, n)| n).sum();
        write!(f, "{total} sandbox{}", if total == 1 { "" } else { "es" })?;
        let mut first = true;
        for (status, n) in counts.chain(other) {
            write!(f, "{}{status} {n}", if first { " (" } else { ", " })?;
            first = false;
        }
        if !first {
            f.write_str(")")?;
        }
        write!(
            f,
            "; cleanup candidates {}; dead runtimes {}",
            self.ephemeral_terminal, self.dead_active.total
        )?;
        if self.abandoned_starts.total > 0 {
            write!(f, "; abandoned starts {}", self.abandoned_starts.total)?;
        }
        if self.lifecycle_owned.total > 0 {
            write!(f, "; lifecycle owned {}", self.lifecycle_owned.total)?;
        }
        if !self.missing_indexes.is_empty() {
            write!(f, "; indexes missing {}", self.missing_indexes.len())?;
        }
        if let Some(trash) = self.trash.as_ref().filter(|t| !t.entries.is_empty()) {
            write!(
                f,
                "; trash leftovers {}, {}",
                trash.entries.len(),
                Bytes(trash.total_bytes())
            )?;
        }
        match &self.install {
            Some(install) => match install.holder_pid {
                Some(pid) => write!(f, "; install held by pid {pid}")?,
                None => f.write_str("; no install in progress")?,
            },
            None => f.write_str("; install never taken")?,
        }
        match self.lease.as_ref().map(|l| l.holder_pid) {
            None => f.write_str("; lease never taken"),
            Some(Some(pid)) => write!(f, "; lease holder pid {pid}"),
            Some(None) => f.write_str("; lease holder none"),
        }
    }

    fn lines(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = f.precision().unwrap_or(usize::MAX);
        if self.by_status.is_empty() && self.other_status == 0 {
            f.write_str("  no sandboxes")?;
        }
        let other = (self.other_status > 0).then_some(("(other)", self.other_status));
        let counts = self.by_status.iter().map(|(s, n)| (s.as_str(), *n));
        for (i, (status, n)) in counts.chain(other).enumerate() {
            let sep = if i == 0 { "" } else { "\n" };
            write!(f, "{sep}  {status:<12} {n:>6}")?;
        }
        write!(
            f,
            "\nfinished ephemeral sandboxes (cleanup candidates): {}",
            self.ephemeral_terminal
        )?;
        let lists: [(&str, &List<StaleSandbox>, bool); 3] = [
            (
                "active sandboxes with a dead runtime now",
                &self.dead_active,
                true,
            ),
            (
                "abandoned starts (Starting, no run, no lock held, no endpoint answering)",
                &self.abandoned_starts,
                false,
            ),
            (
                "left alone, runtime dead or not started but a creation or lifecycle lock held (lifecycle_owned)",
                &self.lifecycle_owned,
                false,
            ),
        ];
        for (title, list, always) in lists {
            if always || list.total > 0 {
                write!(f, "\n{title}: {}", list.total)?;
                stale_list(f, list, shown)?;
            }
        }
        if !self.missing_indexes.is_empty() {
            write!(f, "\n{}", MissingIndexes(&self.missing_indexes))?;
        }
        if let Some(trash) = self.trash.as_ref().filter(|t| !t.entries.is_empty()) {
            write!(
                f,
                "\ntrash leftovers (deletions not finished; every sweep tries again): {}, {}",
                trash.entries.len(),
                Bytes(trash.total_bytes())
            )?;
            for entry in &trash.entries {
                write!(
                    f,
                    "\n  {:>10}  {}",
                    Bytes(entry.bytes).to_string(),
                    entry.path.display()
                )?;
            }
            if let Some(at) = &trash.stopped_at {
                write!(
                    f,
                    "\n  (measured until {}: the rest is larger)",
                    at.display()
                )?;
            }
        }
        match &self.install {
            Some(install) if install.holder_pid.is_some() => write!(
                f,
                "\ninstall: held by pid {} until {}",
                install.holder_pid.unwrap_or(0),
                install.lease_expires_at.as_deref().unwrap_or("-"),
            )?,
            Some(_) => f.write_str("\ninstall: none in progress")?,
            None => f.write_str("\ninstall: never taken")?,
        }
        match &self.lease {
            None => f.write_str("\nlease: never taken"),
            Some(lease) => {
                f.write_str("\nlease: holder ")?;
                match lease.holder_pid {
                    Some(pid) => write!(f, "pid {pid}")?,
                    None => f.write_str("none")?,
                }
                write!(
                    f,
                    ", expires {}, last completed {}",
                    lease.lease_expires_at.as_deref().unwrap_or("-"),
                    lease.last_completed_at.as_deref().unwrap_or("never"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sandboxes::lifecycle::SandboxStatus;
    use crate::status::summary::Summary;

    /// `{}` of a summary is one line; `{:#}` is the full text.
    #[test]
    fn a_summary_is_one_line_unless_asked() {
        let mut summary = Summary {
            by_status: vec![(SandboxStatus::Running, 3), (SandboxStatus::Stopped, 4)],
            ephemeral_terminal: 2,
            missing_indexes: vec!["idx_sandbox_status"],
            ..Summary::default()
        };
        summary.dead_active.total = 1;
        assert_eq!(
            summary.to_string(),
            "7 sandboxes (Running 3, Stopped 4); cleanup candidates 2; dead runtimes 1; \
             indexes missing 1; install never taken; lease never taken"
        );
        let one = Summary {
            by_status: vec![(SandboxStatus::Stopped, 1)],
            ..Summary::default()
        };
        assert!(
            one.to_string().starts_with("1 sandbox (Stopped 1); "),
            "{one}"
        );
        assert_eq!(
            format!("{summary:#}"),
            "  Running           3\n  Stopped           4\n\
             finished ephemeral sandboxes (cleanup candidates): 2\n\
             active sandboxes with a dead runtime now: 1\n  … and 1 more\n\
             indexes missing: idx_sandbox_status (each run lookup scans the whole table, so a \
             sweep does few rows in its budget)\n\
             install: never taken\n\
             lease: never taken"
        );
    }
}
