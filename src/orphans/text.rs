//! How a scan's findings read for a person: `Display` for [`Orphans`].

use std::fmt;
use std::time::Duration;

use super::{OrphanKind, Orphans};

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

/// One orphan a line (kind, size, age, whether its lock is held, path),
/// lock files summed in one line (`{:#}` lists them too), then a total,
/// and where the scan stopped if it did.
impl fmt::Display for Orphans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let every = f.alternate();
        let locks = self.lock_files();
        for o in &self.entries {
            if o.kind == OrphanKind::LockFile && !every {
                continue;
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
        if locks.count > 0 && !every {
            writeln!(
                f,
                "  {:<13} {:>10} {:>7}  {} without a row, kept: msb never deletes one (deleting a held one could give a sandbox two owners)",
                OrphanKind::LockFile.as_str(),
                Bytes(locks.bytes).to_string(),
                age(locks.oldest),
                locks.count,
            )?;
        }
        write!(
            f,
            "total: {} orphans, {} ({} entries examined, {} errors)",
            self.entries.len(),
            Bytes(self.total_bytes()),
            self.examined,
            self.errors
        )?;
        match &self.stopped_at {
            Some(at) => write!(f, "\nincomplete: the budget ran out at {}", at.display()),
            None => Ok(()),
        }
    }
}
