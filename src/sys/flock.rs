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
    /// No such file, and it was not to be made: a lock file that does not
    /// exist has no holder.
    Missing,
}

/// Opens `name` in `dir` read-write, creating it with `mode` if missing
/// and never truncating it (as microsandbox does), without following a
/// symlink, then takes `flock(LOCK_EX | LOCK_NB)` on it.
pub(crate) fn try_lock_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> nix::Result<Attempt> {
    try_lock(dir, name, Some(Mode::from_bits_truncate(mode)))
}

/// [`try_lock_at`] on a file that already exists: a missing one is
/// [`Attempt::Missing`] and nothing is created.
pub(crate) fn try_lock_existing_at(dir: BorrowedFd<'_>, name: &CStr) -> nix::Result<Attempt> {
    try_lock(dir, name, None)
}

fn try_lock(dir: BorrowedFd<'_>, name: &CStr, create: Option<Mode>) -> nix::Result<Attempt> {
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = create.unwrap_or(Mode::empty());
    // Lock files outlive their holders, so the file is usually there: a
    // plain open first, since `O_CREAT` takes the directory's lock even
    // when the file exists.
    let opened = match openat(dir, name, flags, mode) {
        Err(Errno::ENOENT) if create.is_some() => openat(dir, name, flags | OFlag::O_CREAT, mode),
        Err(Errno::ENOENT) => return Ok(Attempt::Missing),
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

/// A file as `/proc/locks` names it: device major, minor, inode.
pub(crate) type FileId = (u64, u64, u64);

/// The files someone holds an exclusive `flock` on, from `/proc/locks`;
/// `None` when it cannot be read. Reading it takes no lock, so a probe
/// never makes a runtime's own non-blocking `flock` fail, as taking and
/// dropping the lock would.
pub(crate) fn flocked_files() -> Option<Vec<FileId>> {
    let text = read_proc_locks()?;
    let mut files = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        // `N: FLOCK ADVISORY WRITE pid MAJ:MIN:INODE start end`; waiters
        // (`N: -> FLOCK ...`) hold nothing.
        if fields.nth(1) != Some("FLOCK") || fields.nth(1) != Some("WRITE") {
            continue;
        }
        let Some(id) = fields.nth(1) else { continue };
        let mut parts = id.split(':');
        let (Some(major), Some(minor), Some(ino), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        if let (Some(major), Some(minor), Ok(ino)) = (hex(major), hex(minor), ino.parse()) {
            files.push((major, minor, ino));
        }
    }
    Some(files)
}

/// Room for `/proc/locks` in one `read`: the kernel fills at most a page
/// per call anyway; more only saves calls on a busy host.
const PROC_LOCKS_CHUNK: usize = 64 * 1024;

/// The most `read` calls on `/proc/locks` before giving up (nothing then
/// counts as held): 64 MiB a page at a time, far beyond any host's lock
/// table, and a bound on the loop.
const PROC_LOCKS_MAX_READS: usize = 16 * 1024;

/// `/proc/locks` in as few `read` calls as the kernel allows. Each call is
/// one walk of the lock list under its lock; between calls the kernel
/// resumes by record number, so a lock released meanwhile by another
/// process shifts the rest and one held lock goes unlisted. The standard
/// library's `read_to_string` starts with 32-byte reads (seven calls for
/// 2 KiB): under other processes' lock churn a dry run missed a held lock.
fn read_proc_locks() -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/locks").ok()?;
    let mut text = Vec::new();
    let mut len = 0;
    for _ in 0..PROC_LOCKS_MAX_READS {
        text.resize(len + PROC_LOCKS_CHUNK, 0);
        match file.read(&mut text[len..]) {
            Ok(0) => {
                text.truncate(len);
                return String::from_utf8(text).ok();
            }
            Ok(n) => len += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    None
}

/// The identity of lock file `name` in `dir`, if it is a regular file
/// (a symlink is not followed, and is none).
pub(crate) fn file_id_at(dir: BorrowedFd<'_>, name: &CStr) -> nix::Result<Option<FileId>> {
    use nix::fcntl::AtFlags;
    use nix::sys::stat::{fstatat, major, minor};
    let stat = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(None),
        Err(errno) => return Err(errno),
    };
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    #[allow(clippy::useless_conversion)]
    let id = (
        major(stat.st_dev),
        minor(stat.st_dev),
        u64::from(stat.st_ino),
    );
    Ok((kind == SFlag::S_IFREG).then_some(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_held_lock_is_seen_in_proc_locks_without_taking_it() -> nix::Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = crate::sys::dir::open_dir(dir.path())?;
        let Attempt::Acquired(held) = try_lock_at(fd.as_fd(), c"a.lock", 0o644)? else {
            panic!("free");
        };
        let id = file_id_at(fd.as_fd(), c"a.lock")?.expect("a regular file");
        if let Some(files) = flocked_files() {
            assert!(files.contains(&id), "{id:?} not in {files:?}");
            drop(held);
            assert!(!flocked_files().unwrap_or_default().contains(&id));
        }
        assert_eq!(file_id_at(fd.as_fd(), c"missing")?, None);
        Ok(())
    }
}
