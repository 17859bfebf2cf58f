//! Lifecycle lock files: opening one exactly as microsandbox does, and
//! `flock` on it without blocking.
//!
//! Mechanism only: which file names a sandbox, and what a held lock means,
//! is `locks`'s. A lock is released by closing its descriptor (the kernel
//! does the same when the holder dies), so nothing here unlocks, and
//! nothing here can panic on a failed call.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FlockArg, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat};

/// What trying a lock file found.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The lock is ours until the descriptor is closed.
    Acquired(OwnedFd),
    /// Another open file holds it.
    Held,
    /// The path is a symlink or not a regular file: nothing was locked.
    NotAFile,
}

/// Opens `name` in `dir` read-write, creating it if missing and never
/// truncating it (as microsandbox does), without following a symlink, then
/// takes `flock(LOCK_EX | LOCK_NB)` on it.
pub(crate) fn try_lock_at(dir: BorrowedFd<'_>, name: &CStr) -> nix::Result<Attempt> {
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(0o644);
    // Lock files outlive their holders, so the file is usually there: a
    // plain open first, since `O_CREAT` takes the directory's lock even
    // when the file exists.
    let opened = match openat(dir, name, flags, mode) {
        Err(Errno::ENOENT) => openat(dir, name, flags | OFlag::O_CREAT, mode),
        other => other,
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::ELOOP | Errno::EISDIR | Errno::ENXIO) => return Ok(Attempt::NotAFile),
        Err(errno) => return Err(errno),
    };
    let regular = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
    if regular != SFlag::S_IFREG {
        return Ok(Attempt::NotAFile);
    }
    // `Flock`, nix's replacement, panics in `Drop` when unlocking fails;
    // closing the descriptor releases the lock with no call that can fail.
    #[allow(deprecated)]
    match nix::fcntl::flock(fd.as_raw_fd(), FlockArg::LockExclusiveNonblock) {
        Ok(()) => Ok(Attempt::Acquired(fd)),
        Err(Errno::EWOULDBLOCK) => Ok(Attempt::Held),
        Err(errno) => Err(errno),
    }
}

/// How many descriptors this process may still open, from its soft
/// `RLIMIT_NOFILE`; `None` when it cannot be read or is unlimited.
pub(crate) fn open_file_limit() -> Option<u64> {
    let (soft, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    (soft != nix::sys::resource::RLIM_INFINITY).then_some(soft)
}
