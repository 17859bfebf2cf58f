//! How a [`Summary`] reads for a person: its `Display`, what `sandbox-sweep
//! status` prints under its `catalog <path>` line.
//!
//! Wording only: no SQL, no filesystem, no decisions.

use std::fmt;

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
        write!(f, "\n  … and {hidden} more (`--all` lists them)")?;
    }
    Ok(())
}

/// What `sandbox-sweep status` prints under its `catalog <path>` line:
/// every list in full, or with a precision at most that many entries of
/// each (`{:.20}` is what `status` shows without `--all`).
///
/// ```
/// let summary = sandbox_sweep::status::Summary::default();
/// assert_eq!(
///     format!("{summary:.0}"),
///     "  no sandboxes\n\
///      finished ephemeral sandboxes (cleanup candidates): 0\n\
///      active sandboxes with a dead runtime now: 0\n\
///      install: never taken\n\
///      lease: never taken"
/// );
/// ```
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            write!(
                f,
                "\nindexes missing: {} (sweeps do few rows in their budget): `sandbox-sweep init` adds them",
                self.missing_indexes.join(", ")
            )?;
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
