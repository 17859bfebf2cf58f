//! Every place the crate calls into the operating system.
//!
//! `dir` holds the directory calls (all relative to open descriptors, none
//! following a symlink), `listing` reads directory entries (the crate's only
//! `unsafe` code, so that closing one can never panic), `procfs` reads
//! `/proc` (the one platform-specific corner, behind its own `imp`), `path`
//! what stands at a path before anything is opened, `flock` lock files,
//! `socket` one non-blocking connect, `usage` allocated sizes, `user` the
//! identity the process acts with, and [`probe_pid`] is the kill probe;
//! [`NOT_FOUND`] and [`NOT_A_DIRECTORY`] name the errnos callers decide on. Only
//! mechanism here: no catalog, no verdicts, no policy on what to delete.

pub(crate) mod dir;
pub(crate) mod flock;
mod listing;
pub(crate) mod path;
pub(crate) mod procfs;
pub(crate) mod socket;
pub(crate) mod usage;
pub(crate) mod user;

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::error::{IoContext, Result};

/// A failed call's errno, as `sys/` returns it; callers outside `sys/`
/// name the cases below, never a raw constant.
pub(crate) use nix::errno::Errno;

/// What a call that found nothing at its name returns (`ENOENT`).
pub(crate) const NOT_FOUND: Errno = Errno::ENOENT;

/// What opening a directory returns when the path is something else
/// (`ENOTDIR`).
pub(crate) const NOT_A_DIRECTORY: Errno = Errno::ENOTDIR;

/// `name` (from the catalog, a listing or a constant) as the C string a
/// `*at` call takes; a name holding a NUL is an error about the path `at`
/// gives, built only then.
pub(crate) fn c_name(name: impl AsRef<OsStr>, at: impl FnOnce() -> PathBuf) -> Result<CString> {
    CString::new(name.as_ref().as_bytes())
        .map_err(io::Error::other)
        .at(&at())
}

/// What `kill(pid, 0)` said about a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PidProbe {
    /// A process has this pid (success, or `EPERM`: it exists but is not ours).
    Exists,
    /// `ESRCH`: no process has this pid.
    NoSuchProcess,
    /// Anything else, or a pid that must not be passed to `kill`.
    Unknown,
}

/// Probes `pid` with signal 0. A pid ≤ 0 is never passed to `kill`: 0 and
/// negative values address process groups, and -1 every process.
pub(crate) fn probe_pid(pid: i32) -> PidProbe {
    if pid <= 0 {
        return PidProbe::Unknown;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => PidProbe::Exists,
        Err(Errno::ESRCH) => PidProbe::NoSuchProcess,
        Err(_) => PidProbe::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_addressing_pids_are_never_probed() {
        for pid in [0, -1, i32::MIN] {
            assert_eq!(probe_pid(pid), PidProbe::Unknown, "{pid}");
        }
        let me = i32::try_from(std::process::id()).expect("pid fits");
        assert_eq!(probe_pid(me), PidProbe::Exists);
        let dead = i32::try_from(crate::fixture::DEAD_PID).expect("fits");
        assert_eq!(probe_pid(dead), PidProbe::NoSuchProcess);
    }
}
