//! How a scan's findings read for a person: `Display` for [`Orphans`],
//! [`Reclaimed`] and [`Kept`]. Wording only: the CLI adds its own hints.

use std::fmt;
use std::time::Duration;

use super::{Kept, OrphanKind, Orphans, Reclaimed};

/// `12.0 KiB`: bytes in the largest binary unit that keeps a whole part.
pub(crate) struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < units.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", units[unit])
        }
    }
}

/// `3h`, `2d`: an age in its largest whole unit.
fn age(age: Option<Duration>) -> String {
    let Some(age) = age else {
        return "future".into();
    };
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `3 orphans` / `1 orphan`.
pub(crate) fn orphans(n: usize) -> String {
    if n == 1 {
        "1 orphan".into()
    } else {
        format!("{n} orphans")
    }
}

impl Orphans {
    /// The total line: how many, how large, what was examined.
    fn total(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "total: {}, {} ({} entries examined, {} errors)",
            orphans(self.entries.len()),
            Bytes(self.total_bytes()),
            self.examined,
            self.errors
        )?;
        match &self.stopped_at {
            Some(at) => write!(f, "; incomplete: the budget ran out at {}", at.display()),
            None => Ok(()),
        }
    }
}

/// `{}`: the total on one line. `{:#}`: one orphan a line (kind, size,
/// age, whether its lock is held, path), then the total; with a
/// precision, at most that many lock files are listed and all of them are
/// summed in one line (`{:#.0}` is what `orphans` shows without `--all`:
/// a busy home has thousands).
///
/// ```
/// let none = sandbox_sweep::orphans::Orphans::default();
/// assert_eq!(none.to_string(), "total: 0 orphans, 0 B (0 entries examined, 0 errors)");
/// assert_eq!(format!("{none:#}"), "total: 0 orphans, 0 B (0 entries examined, 0 errors)");
/// ```
impl fmt::Display for Orphans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return self.total(f);
        }
        let shown = f.precision().unwrap_or(usize::MAX);
        let locks = self.lock_files();
        let mut listed_locks = 0;
        for o in &self.entries {
            if o.kind == OrphanKind::LockFile {
                if listed_locks >= shown {
                    continue;
                }
                listed_locks += 1;
            }
            let held = if o.lock_held { "  lock held" } else { "" };
            writeln!(
                f,
                "  {:<13} {:>10} {:>7}  {}{held}",
                o.kind.as_str(),
                Bytes(o.bytes).to_string(),
                age(o.age),
                o.path.display()
            )?;
        }
        if locks.count > listed_locks as u64 {
            writeln!(
                f,
                "  {:<13} {:>10} {:>7}  {} without a row, kept: msb never deletes one (deleting a held one could give a sandbox two owners)",
                OrphanKind::LockFile.as_str(),
                Bytes(locks.bytes).to_string(),
                age(locks.oldest),
                locks.count,
            )?;
        }
        self.total(f)
    }
}

/// `{}`: the word (`listening`); `{:#}`: the word and what it means.
///
/// ```
/// use sandbox_sweep::orphans::Kept;
/// assert_eq!(Kept::Trash.to_string(), "trash");
/// assert_eq!(
///     format!("{:#}", Kept::Trash),
///     "trash: what a sweep moved aside and did not finish deleting; the next sweep deletes it"
/// );
/// ```
impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if !f.alternate() {
            return Ok(());
        }
        let meaning = match self {
            Kept::Young => "younger than the grace period: it may be a sandbox being made",
            Kept::LockHeld => "a creation, lifecycle or snapshot-lineage lock for it is held",
            Kept::Named => "a row names it now",
            Kept::Listening => {
                "something accepted a connection on one of its sockets: a live runtime"
            }
            Kept::UnknownEntries => "it holds entries a runtime does not make",
            Kept::NoRunDir => {
                "no run directory was given, so whether a launcher is making it cannot be known"
            }
            Kept::InvalidName => "its name is not one a sandbox may have",
            Kept::LockFile => "msb never deletes a lock file",
            Kept::Trash => {
                "what a sweep moved aside and did not finish deleting; the next sweep deletes it"
            }
            Kept::OutOfTime => "the budget ran out before it was looked at",
            Kept::Failed(msg) => msg,
        };
        write!(f, ": {meaning}")
    }
}

impl Reclaimed {
    /// The closing line: what went, what stayed.
    fn total(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reclaimed: {}, {}; kept {}",
            orphans(self.removed.len()),
            Bytes(self.removed_bytes()),
            self.kept.len(),
        )?;
        if self.deferred > 0 {
            write!(
                f,
                "; {} left in the trash for the next sweep",
                self.deferred
            )?;
        }
        if self.trash_failed > 0 {
            write!(
                f,
                "; {} could not be deleted from the trash (every sweep tries again)",
                self.trash_failed
            )?;
        }
        match &self.scan.stopped_at {
            Some(at) => write!(f, "; incomplete: the budget ran out at {}", at.display()),
            None => Ok(()),
        }
    }
}

/// `{}`: the closing line alone. `{:#}`: one line per orphan removed and
/// per orphan kept (with why, in full), then the closing line; with a
/// precision, at most that many kept lock files are listed and all of
/// them are summed in one line (`{:#.0}`: what `orphans --remove` shows
/// without `--all`).
///
/// ```
/// let none = sandbox_sweep::orphans::Reclaimed::default();
/// assert_eq!(none.to_string(), "reclaimed: 0 orphans, 0 B; kept 0");
/// ```
impl fmt::Display for Reclaimed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return self.total(f);
        }
        let shown = f.precision().unwrap_or(usize::MAX);
        for o in &self.removed {
            writeln!(
                f,
                "  removed  {:<13} {:>10}  {}",
                o.kind.as_str(),
                Bytes(o.bytes).to_string(),
                o.path.display()
            )?;
        }
        let mut listed_locks = 0;
        for (o, why) in &self.kept {
            if o.kind == OrphanKind::LockFile {
                if listed_locks >= shown {
                    continue;
                }
                listed_locks += 1;
            }
            writeln!(
                f,
                "  kept     {:<13} {} ({why:#})",
                o.kind.as_str(),
                o.path.display(),
            )?;
        }
        let locks = self.scan.lock_files();
        if locks.count > listed_locks as u64 {
            writeln!(
                f,
                "  kept     {} lock files without a row: msb never deletes one (deleting a held one could give a sandbox two owners)",
                locks.count
            )?;
        }
        self.total(f)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::orphans::Orphan;

    fn orphan(kind: OrphanKind, path: &str, bytes: u64) -> Orphan {
        Orphan {
            kind,
            path: PathBuf::from(path),
            bytes,
            age: Some(Duration::from_secs(7200)),
            lock_held: false,
        }
    }

    /// One size format everywhere, `1 orphan` in the singular, and every
    /// kept orphan says why in words.
    #[test]
    fn reclaimed_reads_in_full() {
        let dir = orphan(OrphanKind::SandboxDir, "/h/sandboxes/old", 4096);
        let trash = orphan(
            OrphanKind::Trash,
            "/h/sandboxes/.sandbox-sweep-trash/9",
            8192,
        );
        let socket = orphan(OrphanKind::SocketDir, "/h/run/sandboxes/0123456789ab", 0);
        let lock = orphan(OrphanKind::LockFile, "/h/run/locks/x.lock", 0);
        let done = Reclaimed {
            scan: Orphans {
                entries: vec![dir.clone(), trash.clone(), socket.clone(), lock.clone()],
                examined: 4,
                complete: true,
                ..Orphans::default()
            },
            removed: vec![dir],
            kept: vec![
                (trash, Kept::Trash),
                (socket, Kept::Listening),
                (lock, Kept::LockFile),
            ],
            ..Reclaimed::default()
        };
        assert_eq!(done.to_string(), "reclaimed: 1 orphan, 4.0 KiB; kept 3");
        assert_eq!(
            format!("{done:#.0}"),
            "  removed  sandbox_dir      4.0 KiB  /h/sandboxes/old\n\
             \x20 kept     trash         /h/sandboxes/.sandbox-sweep-trash/9 (trash: what a sweep \
             moved aside and did not finish deleting; the next sweep deletes it)\n\
             \x20 kept     socket_dir    /h/run/sandboxes/0123456789ab (listening: something \
             accepted a connection on one of its sockets: a live runtime)\n\
             \x20 kept     1 lock files without a row: msb never deletes one (deleting a held one \
             could give a sandbox two owners)\n\
             reclaimed: 1 orphan, 4.0 KiB; kept 3"
        );
        assert_eq!(
            done.scan.to_string(),
            "total: 4 orphans, 12.0 KiB (4 entries examined, 0 errors)"
        );
        assert_eq!(
            format!("{:#}", done.scan),
            "  sandbox_dir      4.0 KiB      2h  /h/sandboxes/old\n\
             \x20 trash            8.0 KiB      2h  /h/sandboxes/.sandbox-sweep-trash/9\n\
             \x20 socket_dir           0 B      2h  /h/run/sandboxes/0123456789ab\n\
             \x20 lock_file            0 B      2h  /h/run/locks/x.lock\n\
             total: 4 orphans, 12.0 KiB (4 entries examined, 0 errors)"
        );
    }
}
