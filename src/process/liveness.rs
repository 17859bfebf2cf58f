//! Is a run's runtime process still alive? Verdicts from the kill probe
//! plus identity checks.
//!
//! Owns the rules of evidence: which facts make a process dead, and that
//! anything uncertain is alive. The system calls themselves are `sys`'s;
//! no catalog here.

use std::fmt;

use crate::sys::procfs::{self, StatRead};
use crate::sys::{PidProbe, probe_pid};

/// Why a run's process counts as dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DeadReason {
    /// The run records no pid.
    NoPid,
    /// The recorded pid is ≤ 0, too large, or not an integer (never passed to `kill`).
    InvalidPid,
    /// `kill(pid, 0)` says no such process (`ESRCH`).
    NoSuchProcess,
    /// The process has exited and waits to be reaped (`/proc` state `Z`).
    Zombie,
    /// A process has the pid, but it started at another time: the pid was reused.
    PidReused,
    /// The run was recorded under another boot id: it predates a reboot.
    Rebooted,
}

impl DeadReason {
    /// Every reason, in a stable order (the order of report counters).
    pub const ALL: [DeadReason; 6] = [
        DeadReason::NoPid,
        DeadReason::InvalidPid,
        DeadReason::NoSuchProcess,
        DeadReason::Zombie,
        DeadReason::PidReused,
        DeadReason::Rebooted,
    ];

    /// A short lowercase name, as the CLI and JSON show it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sandbox_sweep::process::DeadReason::PidReused.as_str(), "pid_reused");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::NoPid => "no_pid",
            DeadReason::InvalidPid => "invalid_pid",
            DeadReason::NoSuchProcess => "no_such_process",
            DeadReason::Zombie => "zombie",
            DeadReason::PidReused => "pid_reused",
            DeadReason::Rebooted => "rebooted",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl DeadReason {
    /// What the reason means, for a person.
    fn meaning(self) -> &'static str {
        match self {
            DeadReason::NoPid => "the run records no pid",
            DeadReason::InvalidPid => "the recorded pid is not one a process can have",
            DeadReason::NoSuchProcess => "no process has the pid",
            DeadReason::Zombie => "the process exited and waits to be reaped",
            DeadReason::PidReused => "a process has the pid, but it started at another time",
            DeadReason::Rebooted => "the run predates a reboot",
        }
    }
}

/// `{}`: the word (`zombie`); `{:#}`: the word and what it means.
///
/// ```
/// use sandbox_sweep::process::DeadReason;
/// assert_eq!(DeadReason::Rebooted.to_string(), "rebooted");
/// assert_eq!(format!("{:#}", DeadReason::Rebooted), "rebooted: the run predates a reboot");
/// ```
impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if f.alternate() {
            write!(f, ": {}", self.meaning())?;
        }
        Ok(())
    }
}

/// The inverse of [`DeadReason::as_str`].
///
/// ```
/// use sandbox_sweep::process::DeadReason;
/// assert_eq!("zombie".parse::<DeadReason>()?, DeadReason::Zombie);
/// assert!("asleep".parse::<DeadReason>().is_err());
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
impl std::str::FromStr for DeadReason {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> crate::error::Result<DeadReason> {
        crate::error::parse_word(&DeadReason::ALL, DeadReason::as_str, "dead_reason", text)
    }
}

/// The verdict on a run's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Liveness {
    /// The process lives (or might: anything uncertain counts as alive, so a
    /// live sandbox is never marked dead).
    Alive,
    /// The process is gone, for this reason.
    Dead(DeadReason),
}

impl Liveness {
    /// Whether the verdict is [`Liveness::Alive`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::process::{DeadReason, Liveness};
    ///
    /// assert!(Liveness::Alive.is_alive());
    /// assert!(!Liveness::Dead(DeadReason::Zombie).is_alive());
    /// ```
    pub fn is_alive(self) -> bool {
        self == Liveness::Alive
    }
}

/// `alive`, or `dead (zombie)`; `{:#}` says what the verdict means.
///
/// ```
/// use sandbox_sweep::process::{DeadReason, Liveness};
///
/// assert_eq!(Liveness::Alive.to_string(), "alive");
/// assert_eq!(Liveness::Dead(DeadReason::PidReused).to_string(), "dead (pid_reused)");
/// assert_eq!(
///     format!("{:#}", Liveness::Dead(DeadReason::PidReused)),
///     "dead (pid_reused): a process has the pid, but it started at another time"
/// );
/// assert_eq!(
///     format!("{:#}", Liveness::Alive),
///     "alive: the process lives, or nothing proves it dead"
/// );
/// ```
impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Liveness::Alive => f.write_str("alive")?,
            Liveness::Dead(reason) => write!(f, "dead ({})", reason.as_str())?,
        }
        if f.alternate() {
            let meaning = match self {
                Liveness::Alive => "the process lives, or nothing proves it dead",
                Liveness::Dead(reason) => reason.meaning(),
            };
            write!(f, ": {meaning}")?;
        }
        Ok(())
    }
}

/// What a run row records about its process.
///
/// `pid` is the raw column value, SQLite's `i64`, since a catalog may hold
/// anything there: `None` for NULL; a non-integer value should be passed as
/// `Some(-1)` (it is invalid either way). See [the module's
/// note on pids](crate::process#pids).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordedProcess<'a> {
    /// The `run.pid` column.
    pub pid: Option<i64>,
    /// The `run.pid_start_time` column, when present and not NULL.
    pub start_time: Option<i64>,
    /// The `run.boot_id` column, when present and not NULL.
    pub boot_id: Option<&'a str>,
}

/// Judges recorded processes against the running system.
///
/// Reads this boot's id once when built, so one prober serves a whole sweep.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::process::{DeadReason, Liveness, Prober, RecordedProcess};
///
/// let prober = Prober::new();
/// let me = RecordedProcess { pid: Some(i64::from(std::process::id())), ..Default::default() };
/// assert_eq!(prober.check(&me), Liveness::Alive);
/// let nobody = RecordedProcess { pid: Some(0), ..Default::default() };
/// assert_eq!(prober.check(&nobody), Liveness::Dead(DeadReason::InvalidPid));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Prober {
    boot_id: Option<String>,
}

impl Prober {
    /// A prober for this boot (reads `/proc/sys/kernel/random/boot_id` on Linux).
    pub fn new() -> Prober {
        Prober {
            boot_id: procfs::boot_id(),
        }
    }

    /// This boot's id, when the system exposes one.
    pub fn boot_id(&self) -> Option<&str> {
        self.boot_id.as_deref()
    }

    /// The verdict on `recorded`.
    ///
    /// Order: a recorded boot id that differs from this boot's is dead
    /// without probing; then the pid must be in `1..=i32::MAX`; then
    /// `kill(pid, 0)` (`EPERM` counts as alive); then, on Linux, `/proc`
    /// tells zombies and, when a start time was recorded, reused pids.
    ///
    /// Dead needs positive evidence: `ESRCH`, a zombie state that was read,
    /// or a start time or boot id that was read and differs. A `/proc` entry
    /// that cannot be seen while `kill` says the process exists (a `/proc`
    /// mounted `hidepid=2`, another user's process) proves nothing: `kill`
    /// is asked once more, to catch an exit in between, and otherwise the
    /// process counts as alive.
    pub fn check(&self, recorded: &RecordedProcess<'_>) -> Liveness {
        if let (Some(then), Some(now)) = (recorded.boot_id, self.boot_id.as_deref())
            && then.trim() != now
        {
            return Liveness::Dead(DeadReason::Rebooted);
        }
        let pid = match recorded.pid {
            None => return Liveness::Dead(DeadReason::NoPid),
            Some(pid) => match i32::try_from(pid) {
                Ok(pid) if pid > 0 => pid,
                // kill(0) and kill(-n) address process groups: never probe them.
                _ => return Liveness::Dead(DeadReason::InvalidPid),
            },
        };
        match probe_pid(pid) {
            PidProbe::Exists => {}
            PidProbe::NoSuchProcess => return Liveness::Dead(DeadReason::NoSuchProcess),
            // Anything else leaves us unsure; unsure is alive.
            PidProbe::Unknown => return Liveness::Alive,
        }
        match procfs::read_stat(pid) {
            StatRead::Found(stat) if stat.is_zombie() => Liveness::Dead(DeadReason::Zombie),
            StatRead::Found(stat) => match recorded.start_time {
                Some(then) if u64::try_from(then).ok() != Some(stat.start_time) => {
                    Liveness::Dead(DeadReason::PidReused)
                }
                _ => Liveness::Alive,
            },
            StatRead::Gone => match probe_pid(pid) {
                PidProbe::NoSuchProcess => Liveness::Dead(DeadReason::NoSuchProcess),
                PidProbe::Exists | PidProbe::Unknown => Liveness::Alive,
            },
            StatRead::Unknown => Liveness::Alive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ProcessIdentity;

    fn own_pid() -> i64 {
        i64::from(std::process::id())
    }

    #[test]
    fn own_process_with_true_identity_is_alive() -> crate::error::Result<()> {
        let me = ProcessIdentity::current()?;
        let prober = Prober::new();
        let recorded = RecordedProcess {
            pid: Some(me.pid),
            start_time: me.start_time.and_then(|t| i64::try_from(t).ok()),
            boot_id: me.boot_id.as_deref(),
        };
        assert_eq!(prober.check(&recorded), Liveness::Alive);
        Ok(())
    }

    #[test]
    fn null_zero_negative_and_huge_pids_are_dead_without_kill() {
        let prober = Prober::new();
        let verdict = |pid| {
            prober.check(&RecordedProcess {
                pid,
                ..Default::default()
            })
        };
        assert_eq!(verdict(None), Liveness::Dead(DeadReason::NoPid));
        for pid in [0, -1, -4242, i64::from(i32::MAX) + 1, i64::MAX, i64::MIN] {
            assert_eq!(
                verdict(Some(pid)),
                Liveness::Dead(DeadReason::InvalidPid),
                "{pid}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn wrong_start_time_is_a_reused_pid() {
        let prober = Prober::new();
        let recorded = RecordedProcess {
            pid: Some(own_pid()),
            start_time: Some(1),
            boot_id: None,
        };
        assert_eq!(
            prober.check(&recorded),
            Liveness::Dead(DeadReason::PidReused)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn other_boot_id_is_rebooted() {
        let prober = Prober::new();
        let recorded = RecordedProcess {
            pid: Some(own_pid()),
            start_time: None,
            boot_id: Some("00000000-0000-0000-0000-000000000000"),
        };
        assert_eq!(
            prober.check(&recorded),
            Liveness::Dead(DeadReason::Rebooted)
        );
    }

    #[test]
    fn reaped_child_is_no_such_process() -> std::io::Result<()> {
        let mut child = std::process::Command::new("true").spawn()?;
        let pid = i64::from(child.id());
        child.wait()?;
        let verdict = Prober::new().check(&RecordedProcess {
            pid: Some(pid),
            ..Default::default()
        });
        assert_eq!(verdict, Liveness::Dead(DeadReason::NoSuchProcess));
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn unreaped_child_is_a_zombie() -> std::io::Result<()> {
        let mut child = std::process::Command::new("true").spawn()?;
        let pid = i32::try_from(child.id()).expect("pid fits");
        // Wait (bounded) until the child has exited but is not yet reaped.
        let mut zombie = false;
        for _ in 0..500 {
            if let StatRead::Found(stat) = procfs::read_stat(pid)
                && stat.is_zombie()
            {
                zombie = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(zombie, "child never became a zombie");
        let verdict = Prober::new().check(&RecordedProcess {
            pid: Some(i64::from(pid)),
            ..Default::default()
        });
        child.wait()?;
        assert_eq!(verdict, Liveness::Dead(DeadReason::Zombie));
        Ok(())
    }
}
