//! Per-sandbox lifecycle locks, as microsandbox takes them: the strongest
//! evidence of life there is.
//!
//! A runtime holds `flock` on `<run>/locks/<H16>.lock` through every
//! lifecycle transition, and its sandbox process keeps holding it until it
//! exits; the kernel releases it on any death, `SIGKILL` included, in any
//! pid namespace. So a held lock means hands off, whatever a recorded pid
//! says. Owns the names (the hashes), the guard, and the sweep's view of a
//! run directory. Never deletes a lock file: that would let two processes
//! own one lifecycle. The system calls are `sys::flock`'s.

use std::cell::OnceCell;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};
use crate::sys::dir;
use crate::sys::flock::{
    Attempt, FileId, file_id_at, flocked_files, try_lock_at, try_lock_existing_at,
};

/// The folder of lock files inside a run directory.
const LOCKS_DIR: &str = "locks";

/// The first `bytes` bytes of SHA-256 of `name`'s UTF-8 bytes, lowercase hex:
/// microsandbox's `H12` (12 bytes) and `H16` (16 bytes).
pub(crate) fn name_hash(name: &str, bytes: usize) -> String {
    let hex = h16(name);
    String::from_utf8_lossy(&hex[..(2 * bytes).min(hex.len())]).into_owned()
}

/// `H16` of `name` as 32 lowercase hex digits, on the stack: the lock
/// protocol runs once per row.
pub(crate) fn h16(name: &str) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(name.as_bytes());
    let mut hex = [0u8; 32];
    for (pair, &byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    hex
}

/// Which of microsandbox's per-sandbox lock files, all on one protocol:
/// opened read-write, created if missing, never truncated or deleted, and
/// `flock(LOCK_EX | LOCK_NB)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    /// `<run>/locks/<H16>.lock`: held by a runtime through every lifecycle
    /// transition and by its sandbox process until it exits.
    Lifecycle,
    /// `<run>/creation-locks/<H16>.lock`: held by a launcher while it
    /// creates or starts a sandbox (its row goes `Starting` under it).
    Creation,
    /// `<run>/locks/<H16>.snapshot-lineage.lock`: held while a snapshot
    /// capture publishes a sandbox's storage, which may outlive its runtime.
    SnapshotLineage,
}

impl LockKind {
    /// The folder inside the run directory.
    fn dir(self) -> &'static str {
        match self {
            LockKind::Lifecycle | LockKind::SnapshotLineage => LOCKS_DIR,
            LockKind::Creation => CREATION_LOCKS_DIR,
        }
    }

    /// The mode msb 0.7.11 makes the file with (measured): a creation
    /// lock is its launcher's alone, a lifecycle lock readable by all.
    fn mode(self) -> u32 {
        match self {
            LockKind::Creation => 0o600,
            LockKind::Lifecycle | LockKind::SnapshotLineage => 0o644,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            LockKind::Lifecycle | LockKind::Creation => ".lock",
            LockKind::SnapshotLineage => ".snapshot-lineage.lock",
        }
    }

    /// What holding it means, for logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LockKind::Lifecycle => "lifecycle lock",
            LockKind::Creation => "creation lock",
            LockKind::SnapshotLineage => "snapshot-lineage lock",
        }
    }
}

/// The folder of creation (launcher) lock files inside a run directory.
const CREATION_LOCKS_DIR: &str = "creation-locks";

/// A lock file's name, `<H16><suffix>`, NUL-terminated on the stack: the
/// lock protocol runs once per row.
struct LockFileName {
    bytes: [u8; 56],
    len: usize,
}

impl LockFileName {
    fn new(kind: LockKind, name: &str) -> LockFileName {
        LockFileName::hashed(kind, &h16(name))
    }

    /// From the name's `H16`, already computed: SHA-256 is most of what a
    /// lock costs in user time, so a row hashes its name once.
    fn hashed(kind: LockKind, h16: &[u8; 32]) -> LockFileName {
        let suffix = kind.suffix().as_bytes();
        let mut bytes = [0u8; 56];
        bytes[..32].copy_from_slice(h16);
        bytes[32..32 + suffix.len()].copy_from_slice(suffix);
        LockFileName {
            bytes,
            len: 32 + suffix.len(),
        }
    }

    fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes[..self.len])
    }

    fn as_c_str(&self) -> Result<&CStr, std::ffi::FromBytesWithNulError> {
        CStr::from_bytes_with_nul(&self.bytes[..=self.len])
    }
}

/// Where lock `kind` of sandbox `name` lives inside `run_dir`.
pub(crate) fn lock_path(run_dir: &Path, kind: LockKind, name: &str) -> PathBuf {
    run_dir
        .join(kind.dir())
        .join(LockFileName::new(kind, name).as_str().as_ref())
}

/// Where the lifecycle lock of sandbox `name` lives: `<run_dir>/locks/<H16>.lock`,
/// `H16` being the first 16 bytes of SHA-256 of the name, in lowercase hex.
///
/// # Examples
///
/// ```
/// use std::path::Path;
///
/// let path = sandbox_sweep::rundir::lifecycle_lock_path(Path::new("/run/msb"), "worker");
/// assert_eq!(path, Path::new("/run/msb/locks/87eba76e7f3164534045ba922e7770fb.lock"));
/// ```
pub fn lifecycle_lock_path(run_dir: &Path, name: &str) -> PathBuf {
    lock_path(run_dir, LockKind::Lifecycle, name)
}

/// A held lifecycle lock. Dropping it closes the file, which releases the
/// lock; the file itself stays (lock files are never deleted).
#[derive(Debug)]
#[must_use = "the lock is released as soon as this guard is dropped"]
pub struct LifecycleLock {
    _fd: OwnedFd,
    name: String,
}

impl LifecycleLock {
    /// The sandbox whose lifecycle this lock guards.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = std::env::temp_dir().join("sandbox-sweep-doc-locks-164");
    /// # let _ = std::fs::remove_dir_all(&run);
    /// std::fs::create_dir_all(&run)?;
    /// let lock = sandbox_sweep::rundir::try_lock_lifecycle(&run, "web")?.expect("free");
    /// assert_eq!(lock.name(), "web");
    /// # std::fs::remove_dir_all(&run)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Takes the lifecycle lock of sandbox `name` without blocking, exactly as
/// microsandbox does, so a synchronous runtime can share the protocol:
/// `Some` guard when it was free, `None` when another process (or another
/// open file in this one) holds it. Creates `<run_dir>/locks` when missing.
///
/// # Errors
///
/// [`Error::Io`](crate::Error::Io) when the run directory cannot be opened,
/// the lock path is a symlink or not a regular file, or a call fails.
///
/// # Examples
///
/// ```
/// let run = std::env::temp_dir().join("sandbox-sweep-doc-locks-187");
/// # let _ = std::fs::remove_dir_all(&run);
/// std::fs::create_dir_all(&run)?;
/// let first = sandbox_sweep::rundir::try_lock_lifecycle(&run, "web")?;
/// assert!(first.is_some());
/// assert!(sandbox_sweep::rundir::try_lock_lifecycle(&run, "web")?.is_none());
/// drop(first);
/// assert!(sandbox_sweep::rundir::try_lock_lifecycle(&run, "web")?.is_some());
/// # std::fs::remove_dir_all(&run)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn try_lock_lifecycle(run_dir: &Path, name: &str) -> Result<Option<LifecycleLock>> {
    RunDir::new(run_dir).try_lock(name)
}

/// A run directory as one sweep uses it: `<run>/locks` and
/// `<run>/creation-locks` each opened once.
#[derive(Debug)]
pub(crate) struct RunDir<'p> {
    dir: &'p Path,
    run: OnceCell<OwnedFd>,
    locks: OnceCell<OwnedFd>,
    creation: OnceCell<OwnedFd>,
}

impl<'p> RunDir<'p> {
    pub(crate) fn new(dir: &'p Path) -> RunDir<'p> {
        RunDir {
            dir,
            run: OnceCell::new(),
            locks: OnceCell::new(),
            creation: OnceCell::new(),
        }
    }

    /// The run directory, opened on first use (following a symlink: the
    /// caller chose this path).
    pub(crate) fn fd(&self) -> Result<BorrowedFd<'_>> {
        if let Some(fd) = self.run.get() {
            return Ok(fd.as_fd());
        }
        let fd = dir::open_dir(self.dir).at(self.dir)?;
        Ok(self.run.get_or_init(|| fd).as_fd())
    }

    /// The run directory itself.
    pub(crate) fn path(&self) -> &Path {
        self.dir
    }

    /// The folder of `kind`'s lock files, created when missing (following
    /// a symlink at the run directory, which the caller chose, but not at
    /// the folder).
    fn lock_dir(&self, kind: LockKind) -> Result<BorrowedFd<'_>> {
        let cell = match kind {
            LockKind::Lifecycle | LockKind::SnapshotLineage => &self.locks,
            LockKind::Creation => &self.creation,
        };
        if let Some(fd) = cell.get() {
            return Ok(fd.as_fd());
        }
        let path = self.dir.join(kind.dir());
        let run = self.fd()?;
        let name = match kind {
            LockKind::Lifecycle | LockKind::SnapshotLineage => c"locks",
            LockKind::Creation => c"creation-locks",
        };
        dir::make_dir(run, name, 0o755).at(&path)?;
        let fd = dir::open_dir_nofollow(run, name).at(&path)?;
        Ok(cell.get_or_init(|| fd).as_fd())
    }

    /// Takes sandbox `name`'s lifecycle lock without blocking; `None` when
    /// it is held.
    pub(crate) fn try_lock(&self, name: &str) -> Result<Option<LifecycleLock>> {
        Ok(self
            .try_lock_fd(LockKind::Lifecycle, name)?
            .map(|fd| LifecycleLock {
                _fd: fd,
                name: name.to_owned(),
            }))
    }

    /// Takes lock `kind` of sandbox `name` without blocking, keeping only
    /// the descriptor; `None` when it is held.
    pub(crate) fn try_lock_fd(&self, kind: LockKind, name: &str) -> Result<Option<OwnedFd>> {
        self.try_lock_hashed(kind, name, &h16(name))
    }

    /// [`RunDir::try_lock_fd`] with the name's `H16` already computed.
    pub(crate) fn try_lock_hashed(
        &self,
        kind: LockKind,
        name: &str,
        h16: &[u8; 32],
    ) -> Result<Option<OwnedFd>> {
        let file = LockFileName::hashed(kind, h16);
        // Built only on the error paths: it hashes the name again.
        let path = || lock_path(self.dir, kind, name);
        let c_file = match file.as_c_str() {
            Ok(c_file) => c_file,
            Err(err) => return Err(io::Error::other(err)).at(&path()),
        };
        match try_lock_at(self.lock_dir(kind)?, c_file, kind.mode()) {
            Ok(Attempt::Acquired(fd)) => Ok(Some(fd)),
            Ok(Attempt::Held) => Ok(None),
            Ok(Attempt::Missing) => Err(io::Error::from(io::ErrorKind::NotFound)).at(&path()),
            Ok(Attempt::NotAFile) => Err(io::Error::other(
                "lock path is a symlink or not a regular file",
            ))
            .at(&path()),
            Err(errno) => Err(errno).at(&path()),
        }
    }
}

/// What taking a lock that is not to be made found.
#[derive(Debug)]
pub(crate) enum Present {
    /// Ours until the descriptor is closed.
    Taken(OwnedFd),
    /// No lock file (or no folder for it): no holder.
    Missing,
    /// Someone holds it: an owner.
    Held,
}

/// Takes lock `kind` of the sandbox whose `H16` is `h16`, in its folder
/// `folder` as the caller opened it (`None`: there is none), only where
/// the file exists: a lock file that does not exist has no holder, and one
/// made here would be a file no row accounts for, which msb never deletes.
pub(crate) fn try_lock_present(
    folder: Option<BorrowedFd<'_>>,
    kind: LockKind,
    h16: &[u8; 32],
) -> io::Result<Present> {
    let Some(folder) = folder else {
        return Ok(Present::Missing);
    };
    let file = LockFileName::hashed(kind, h16);
    let c_file = file.as_c_str().map_err(io::Error::other)?;
    match try_lock_existing_at(folder, c_file)? {
        Attempt::Acquired(fd) => Ok(Present::Taken(fd)),
        Attempt::Missing => Ok(Present::Missing),
        Attempt::Held => Ok(Present::Held),
        Attempt::NotAFile => Err(io::Error::other(
            "lock path is a symlink or not a regular file",
        )),
    }
}

/// Which sandboxes' locks someone holds now, read from `/proc/locks`
/// without taking a lock: a read-only report or a dry run must never make
/// a runtime's own non-blocking `flock` fail, as a taken-and-dropped probe
/// could, nor create a lock file. Creates nothing.
#[derive(Debug)]
pub(crate) struct HeldLocks {
    locks: Option<OwnedFd>,
    creation: Option<OwnedFd>,
    files: Vec<FileId>,
}

impl HeldLocks {
    /// `None` when `/proc/locks` cannot be read: nothing can be told.
    pub(crate) fn read(run_dir: &Path) -> Option<HeldLocks> {
        let files = flocked_files()?;
        let run = dir::open_dir(run_dir).ok();
        let sub = |name: &CStr| {
            run.as_ref()
                .and_then(|run| dir::open_dir_nofollow(run.as_fd(), name).ok())
        };
        Some(HeldLocks {
            locks: sub(c"locks"),
            creation: sub(c"creation-locks"),
            files,
        })
    }

    /// Whether sandbox `name`'s creation or lifecycle lock file exists and
    /// is held: an owner, which a sweep leaves alone.
    pub(crate) fn is_held(&self, name: &str) -> bool {
        self.is_held_hashed(&h16(name))
    }

    /// [`HeldLocks::is_held`] for the sandbox whose `H16` is `h16` (what
    /// a leftover lock file or socket names; its sandbox is unknown).
    pub(crate) fn is_held_hashed(&self, h16: &[u8; 32]) -> bool {
        [LockKind::Lifecycle, LockKind::Creation]
            .into_iter()
            .any(|kind| self.holds(kind, h16))
    }

    /// Whether lock `kind` of the sandbox whose `H16` is `h16` exists and
    /// is held (a missing file has no holder).
    pub(crate) fn holds(&self, kind: LockKind, h16: &[u8; 32]) -> bool {
        let dir = match kind {
            LockKind::Lifecycle | LockKind::SnapshotLineage => &self.locks,
            LockKind::Creation => &self.creation,
        };
        let file = LockFileName::hashed(kind, h16);
        let (Some(dir), Ok(file)) = (dir, file.as_c_str()) else {
            return false;
        };
        file_id_at(dir.as_fd(), file)
            .ok()
            .flatten()
            .is_some_and(|id| self.files.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsandbox_hash_vectors() {
        assert_eq!(name_hash("worker", 12), "87eba76e7f3164534045ba92");
        assert_eq!(name_hash("worker", 16), "87eba76e7f3164534045ba922e7770fb");
        assert_eq!(name_hash("工作", 16), "bc62d1b6b936c78dbbd0bbe5572e32d0");
        let run = Path::new("/run/msb");
        let h16 = "87eba76e7f3164534045ba922e7770fb";
        assert_eq!(
            lock_path(run, LockKind::Creation, "worker"),
            run.join(format!("creation-locks/{h16}.lock"))
        );
        assert_eq!(
            lock_path(run, LockKind::SnapshotLineage, "worker"),
            run.join(format!("locks/{h16}.snapshot-lineage.lock"))
        );
    }

    #[test]
    fn a_symlinked_lock_folder_is_refused_and_nothing_is_made_through_it() {
        for kind in [LockKind::Lifecycle, LockKind::Creation] {
            let run = tempfile::tempdir().expect("tempdir");
            let elsewhere = tempfile::tempdir().expect("tempdir");
            std::os::unix::fs::symlink(elsewhere.path(), run.path().join(kind.dir()))
                .expect("symlink");
            let run_dir = RunDir::new(run.path());
            let err = run_dir
                .try_lock_fd(kind, "web")
                .expect_err("a symlinked folder");
            assert!(err.to_string().contains(kind.dir()), "{err}");
            let made = std::fs::read_dir(elsewhere.path()).expect("read").count();
            assert_eq!(made, 0, "{kind:?}: nothing made through the link");
        }
    }

    #[test]
    fn a_symlinked_or_odd_lock_path_is_an_error_and_is_left_alone() -> Result<()> {
        let run = tempfile::tempdir().expect("tempdir");
        let target = run.path().join("elsewhere");
        std::fs::write(&target, b"not a lock").expect("write");
        std::fs::create_dir(run.path().join(LOCKS_DIR)).expect("mkdir");
        std::os::unix::fs::symlink(&target, lifecycle_lock_path(run.path(), "linked"))
            .expect("symlink");
        std::fs::create_dir(lifecycle_lock_path(run.path(), "dir")).expect("mkdir");
        let run_dir = RunDir::new(run.path());
        assert!(run_dir.try_lock("linked").is_err());
        assert!(run_dir.try_lock("dir").is_err());
        assert_eq!(std::fs::read(&target).expect("target"), b"not a lock");
        assert!(lifecycle_lock_path(run.path(), "linked").is_symlink());
        // A free lock is taken, and its file stays after release.
        let lock = run_dir.try_lock("web")?.expect("free");
        drop(lock);
        assert!(lifecycle_lock_path(run.path(), "web").is_file());
        Ok(())
    }
}
