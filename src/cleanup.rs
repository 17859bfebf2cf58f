//! Removing one finished ephemeral sandbox: name check, rename to trash, row delete.
//!
//! The directory is moved into a trash folder inside the sandboxes directory
//! while the write lock is held, the rows are deleted, and only after the
//! commit is the trash deleted (outside the lock). A failed commit moves the
//! directory back; a crash leaves the directory in the trash, where the next
//! sweep either restores it (the row survived) or deletes it (the row is gone).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, unlinkat};

use rusqlite::OptionalExtension;

use crate::catalog::Catalog;
use crate::error::{Error, IoContext, Result};
use crate::liveness::Prober;
use crate::runs::any_live_running;

/// Names starting with this are reserved for the crate's own folders.
pub const RESERVED_PREFIX: &str = ".sandbox-sweep";
/// The trash folder, inside the sandboxes directory.
pub(crate) const TRASH_DIR: &str = ".sandbox-sweep-trash";

/// What happened to one sandbox asked to be cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CleanupOutcome {
    /// Directory and rows removed.
    Removed,
    /// The directory could not be moved away; the row is kept for a retry.
    DirRemoveFailed,
    /// No such sandbox row (already removed).
    AlreadyGone,
    /// The row vanished between the check and the delete (another cleaner won).
    AlreadyClaimed,
    /// A persistent sandbox: never cleaned.
    SkippedPersistent,
    /// Not `Stopped` or `Crashed`: still active (or an unknown status).
    SkippedActive,
    /// A `Running` run still has a live process.
    SkippedLivePid,
    /// The name is not a single normal path component; nothing was touched.
    InvalidName,
}

impl CleanupOutcome {
    /// Every outcome, in a stable order (the order of report counters).
    pub const ALL: [CleanupOutcome; 8] = [
        CleanupOutcome::Removed,
        CleanupOutcome::DirRemoveFailed,
        CleanupOutcome::AlreadyGone,
        CleanupOutcome::AlreadyClaimed,
        CleanupOutcome::SkippedPersistent,
        CleanupOutcome::SkippedActive,
        CleanupOutcome::SkippedLivePid,
        CleanupOutcome::InvalidName,
    ];

    /// A short lowercase name, as the CLI and JSON show it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sandbox_sweep::CleanupOutcome::SkippedLivePid.as_str(), "skipped_live_pid");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupOutcome::Removed => "removed",
            CleanupOutcome::DirRemoveFailed => "dir_remove_failed",
            CleanupOutcome::AlreadyGone => "already_gone",
            CleanupOutcome::AlreadyClaimed => "already_claimed",
            CleanupOutcome::SkippedPersistent => "skipped_persistent",
            CleanupOutcome::SkippedActive => "skipped_active",
            CleanupOutcome::SkippedLivePid => "skipped_live_pid",
            CleanupOutcome::InvalidName => "invalid_name",
        }
    }

    /// Whether this outcome is a per-row error (counted in `errors`).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            CleanupOutcome::DirRemoveFailed | CleanupOutcome::InvalidName
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CleanupOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks that `name` can only name a directory directly inside the
/// sandboxes directory: one normal path component.
///
/// # Errors
///
/// [`Error::InvalidName`] for an empty name, `.`, `..`, a name with `/` or
/// NUL, or one starting with [`RESERVED_PREFIX`].
///
/// # Examples
///
/// ```
/// use sandbox_sweep::validate_name;
///
/// assert!(validate_name("web-1").is_ok());
/// for bad in ["", ".", "..", "a/b", "/etc", "../x", "a\0b", ".sandbox-sweep-trash"] {
///     assert!(validate_name(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\0'])
        || name.starts_with(RESERVED_PREFIX);
    if bad {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// A sandbox directory moved into the trash, pending the commit.
#[derive(Debug)]
pub(crate) struct Moved {
    from: PathBuf,
    to: PathBuf,
    /// Its name inside the trash (the sandbox id).
    entry: OsString,
}

impl Moved {
    /// Its name inside the trash, for [`Sandboxes::delete_in_trash`].
    pub(crate) fn entry(&self) -> &OsStr {
        &self.entry
    }

    /// After a failed commit: put the directory back where it was.
    pub(crate) fn restore(self) {
        if let Err(err) = std::fs::rename(&self.to, &self.from) {
            log::warn!(
                "could not move {} back to {} (the next sweep restores it): {err}",
                self.to.display(),
                self.from.display()
            );
        }
    }
}

/// Unlinks `name` in `parent` unless it is a directory; `true` when it is
/// gone (or was never there), `false` when it is a directory.
fn unlink_non_dir(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(true),
        Err(Errno::EISDIR | Errno::EPERM) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// Opens directory `name` in `parent`, refusing to follow a symlink.
fn open_dir_at(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<Dir> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(parent, name, flags, Mode::empty())?;
    Ok(Dir::from_fd(fd)?)
}

/// Deletes the tree `name` in `parent` without following any symlink, every
/// step relative to an open directory (so nothing swapped in mid-way can lead
/// elsewhere), and without recursion (so no depth overflows the stack).
/// Stops at `deadline`, returning `false`: the rest waits for the next sweep.
fn remove_tree_at(
    parent: BorrowedFd<'_>,
    name: &CStr,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    let past = || deadline.is_some_and(|d| Instant::now() >= d);
    if unlink_non_dir(parent, name)? {
        return Ok(true);
    }
    let mut stack: Vec<(Dir, CString)> = vec![(open_dir_at(parent, name)?, name.to_owned())];
    while let Some((dir, _)) = stack.last_mut() {
        if past() {
            return Ok(false);
        }
        // A batch of names per pass over the directory: the iterator rewinds
        // when dropped, and entries deleted meanwhile are not seen again.
        let batch: Vec<CString> = dir
            .iter()
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .take(256)
            .collect();
        if batch.is_empty() {
            let Some((_, done)) = stack.pop() else { break };
            let parent = stack.last().map_or(parent, |(d, _)| d.as_fd());
            match unlinkat(parent, done.as_c_str(), UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(errno) => return Err(errno.into()),
            }
            continue;
        }
        let dir_fd = dir.as_fd();
        let mut descend = None;
        for child in batch {
            if past() {
                return Ok(false);
            }
            if !unlink_non_dir(dir_fd, &child)? {
                descend = Some(child);
                break;
            }
        }
        if let Some(child) = descend {
            let sub = open_dir_at(dir_fd, &child)?;
            stack.push((sub, child));
        }
    }
    Ok(true)
}

/// The trash directory, held open.
#[derive(Debug)]
struct OpenTrash {
    /// Keeps the directory (and so `base`) valid while the sweep runs.
    dir: std::fs::File,
    /// Where entries are reached: `/proc/self/fd/<fd>` on Linux, so a trash
    /// swapped for a symlink after it was opened cannot redirect a rename or
    /// a deletion outside the sandboxes dir; the plain path elsewhere.
    base: PathBuf,
}

/// The sandboxes directory and its trash folder.
#[derive(Debug)]
pub(crate) struct Sandboxes<'p> {
    dir: &'p Path,
    trash: PathBuf,
    /// Opened once per sweep, again if a rename suggests it vanished.
    opened: std::cell::RefCell<Option<OpenTrash>>,
}

impl<'p> Sandboxes<'p> {
    pub(crate) fn new(dir: &'p Path) -> Sandboxes<'p> {
        Sandboxes {
            dir,
            trash: dir.join(TRASH_DIR),
            opened: std::cell::RefCell::new(None),
        }
    }

    /// Opens the trash without following a symlink (creating it if asked)
    /// and returns the base path for its entries; `None` when it does not
    /// exist and `create` is false.
    fn open_trash(&self, create: bool) -> Result<Option<PathBuf>> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(open) = self.opened.borrow().as_ref() {
            return Ok(Some(open.base.clone()));
        }
        if create {
            match std::fs::create_dir(&self.trash) {
                Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(err).at(&self.trash);
                }
                _ => {}
            }
        }
        let flags = nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC;
        let dir = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&self.trash)
        {
            Ok(dir) => dir,
            Err(err) if err.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(nix::libc::ELOOP | nix::libc::ENOTDIR)
                ) =>
            {
                return Err(io::Error::other("trash exists and is not a directory"))
                    .at(&self.trash);
            }
            Err(err) => return Err(err).at(&self.trash),
        };
        let base = fd_path(&dir).unwrap_or_else(|| self.trash.clone());
        *self.opened.borrow_mut() = Some(OpenTrash {
            dir,
            base: base.clone(),
        });
        Ok(Some(base))
    }

    /// Fails unless the sandboxes directory exists: without it, a missing
    /// sandbox directory cannot be told from a mistyped path, and rows would
    /// be deleted while their directories live on elsewhere.
    pub(crate) fn check(&self) -> Result<()> {
        match std::fs::metadata(self.dir) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "sandboxes dir is not a directory",
            ))
            .at(self.dir),
            Err(err) => Err(err).at(self.dir),
        }
    }

    /// Moves `<dir>/<name>` to `<trash>/<id>`; `None` when there was nothing to move.
    ///
    /// The common case costs one `rename`: no `lstat` first, since a missing
    /// source and a leftover target both show up as its error.
    fn move_to_trash(&self, id: i64, name: &str) -> Result<Option<Moved>> {
        use nix::libc::{EEXIST, EISDIR, ENOTDIR, ENOTEMPTY};
        let from = self.dir.join(name);
        let base = self.open_trash(true)?.unwrap_or_else(|| self.trash.clone());
        let entry = OsString::from(id.to_string());
        let mut to = base.join(&entry);
        match std::fs::rename(&from, &to) {
            Ok(()) => return Ok(Some(Moved { from, to, entry })),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                match std::fs::symlink_metadata(&from) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(err) => return Err(err).at(&from),
                    // The source exists, so the trash went away: make it again.
                    Ok(_) => {
                        *self.opened.borrow_mut() = None;
                        let base = self.open_trash(true)?.unwrap_or_else(|| self.trash.clone());
                        to = base.join(&entry);
                    }
                }
            }
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(ENOTEMPTY | EEXIST | ENOTDIR | EISDIR)
                ) =>
            {
                // A leftover from a crash under this id holds an older copy
                // of this same sandbox, which is being removed now anyway.
                self.delete_in_trash(&entry, None)?;
            }
            Err(err) => return Err(err).at(&from),
        }
        std::fs::rename(&from, &to).at(&from)?;
        Ok(Some(Moved { from, to, entry }))
    }

    /// Deletes trash entry `entry` (after the commit that made it garbage),
    /// stopping at `deadline`; `Ok(false)` when it stopped, leaving the rest
    /// for the next sweep. A trash that is not there has nothing to delete.
    pub(crate) fn delete_in_trash(&self, entry: &OsStr, deadline: Option<Instant>) -> Result<bool> {
        if self.open_trash(false)?.is_none() {
            return Ok(true);
        }
        let opened = self.opened.borrow();
        let Some(trash) = opened.as_ref() else {
            return Ok(true);
        };
        let path = self.trash.join(entry);
        let name = CString::new(entry.as_bytes())
            .map_err(io::Error::other)
            .at(&path)?;
        remove_tree_at(trash.dir.as_fd(), &name, deadline).at(&path)
    }

    /// Deletes `entry`, logging a failure (the next sweep's purge retries);
    /// `false` when the deadline stopped it.
    pub(crate) fn discard(&self, entry: &OsStr, deadline: Option<Instant>) -> bool {
        match self.delete_in_trash(entry, deadline) {
            Ok(done) => done,
            Err(err) => {
                log::warn!("could not delete trash (the next sweep retries): {err}");
                true
            }
        }
    }

    /// Whether anything is at the trash path (a directory or not).
    pub(crate) fn trash_exists(&self) -> bool {
        std::fs::symlink_metadata(&self.trash).is_ok()
    }

    /// Sorts what a crash left in the trash. Call inside a write
    /// transaction: moves back any directory whose row survived (its removal
    /// was rolled back) and returns the entries to delete once it commits.
    pub(crate) fn sort_trash(&self, catalog: &Catalog<'_>) -> Result<Vec<OsString>> {
        // Never list (and so never delete from) anything but a real
        // directory: a symlink here would lead outside the sandboxes dir.
        let base = match self.open_trash(false) {
            Ok(Some(base)) => base,
            Ok(None) => return Ok(Vec::new()),
            Err(err) => {
                log::warn!(
                    "{err}; not ours to purge, and no sandbox can be removed while it is there"
                );
                return Ok(Vec::new());
            }
        };
        let entries = std::fs::read_dir(&base).at(&self.trash)?;
        let mut doomed = Vec::new();
        let mut name_of = catalog
            .conn
            .prepare_cached("SELECT name FROM sandbox WHERE id = ?1")?;
        for entry in entries {
            let entry = entry.at(&self.trash)?.file_name();
            let to = base.join(&entry);
            let id = entry.to_str().and_then(|s| s.parse::<i64>().ok());
            let owner = match id {
                Some(id) => name_of
                    .query_row([id], |row| row.get::<_, String>(0))
                    .optional()?,
                None => None,
            };
            if let Some(name) = owner.filter(|name| validate_name(name).is_ok()) {
                let from = self.dir.join(&name);
                let free = matches!(std::fs::symlink_metadata(&from), Err(e) if e.kind() == io::ErrorKind::NotFound);
                if free {
                    log::info!(
                        "restoring {} from the trash: its row survived",
                        from.display()
                    );
                    Moved { from, to, entry }.restore();
                    continue;
                }
            }
            doomed.push(entry);
        }
        Ok(doomed)
    }
}

/// `/proc/self/fd/<fd>` for an open directory, where that resolves (Linux
/// with `/proc` mounted).
fn fd_path(dir: &std::fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    (cfg!(target_os = "linux") && path.is_dir()).then_some(path)
}

/// Decides, and unless `dry_run` carries out inside the caller's write
/// transaction, the cleanup of sandbox `id`. A returned [`Moved`] must be
/// discarded after the commit or restored if it fails.
pub(crate) fn clean_row(
    catalog: &Catalog<'_>,
    prober: &Prober,
    sandboxes: &Sandboxes<'_>,
    id: i64,
    dry_run: bool,
) -> Result<(CleanupOutcome, Option<Moved>)> {
    use rusqlite::types::ValueRef;
    let mut stmt = catalog
        .conn
        .prepare_cached("SELECT name, status, ephemeral FROM sandbox WHERE id = ?1")?;
    let mut rows = stmt.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok((CleanupOutcome::AlreadyGone, None));
    };
    if !matches!(row.get_ref(2)?, ValueRef::Integer(1)) {
        return Ok((CleanupOutcome::SkippedPersistent, None));
    }
    if !matches!(row.get_ref(1)?, ValueRef::Text(b"Stopped" | b"Crashed")) {
        return Ok((CleanupOutcome::SkippedActive, None));
    }
    let name = match row.get_ref(0)? {
        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
        other => format!("{other:?}"),
    };
    drop(rows);
    if any_live_running(catalog, prober, id)? {
        return Ok((CleanupOutcome::SkippedLivePid, None));
    }
    if let Err(err) = validate_name(&name) {
        log::warn!("sandbox {id}: {err}; row left in place, nothing on disk touched");
        return Ok((CleanupOutcome::InvalidName, None));
    }
    if dry_run {
        return Ok((CleanupOutcome::Removed, None));
    }
    let moved = match sandboxes.move_to_trash(id, &name) {
        Ok(moved) => moved,
        Err(err) => {
            log::warn!(
                "sandbox {name:?} (id {id}): cannot move its directory away, keeping the row for retry: {err}"
            );
            return Ok((CleanupOutcome::DirRemoveFailed, None));
        }
    };
    // Run rows go first and explicitly: the connection may not enforce
    // foreign keys, and orphan runs must not outlive their sandbox.
    let deleted = catalog
        .conn
        .prepare_cached("DELETE FROM run WHERE sandbox_id = ?1")?
        .execute([id])
        .and_then(|_| {
            catalog
                .conn
                .prepare_cached(
                    "DELETE FROM sandbox WHERE id = ?1 AND ephemeral = 1 AND status IN ('Stopped', 'Crashed')",
                )?
                .execute([id])
        });
    match deleted {
        Ok(1) => Ok((CleanupOutcome::Removed, moved)),
        Ok(_) => {
            if let Some(moved) = moved {
                moved.restore();
            }
            Ok((CleanupOutcome::AlreadyClaimed, None))
        }
        Err(err) => {
            if let Some(moved) = moved {
                moved.restore();
            }
            Err(err.into())
        }
    }
}

/// Cleans one finished ephemeral sandbox, for a runtime's own exit path:
/// checks it under the write lock, moves its directory out of the way,
/// deletes its rows, commits, then deletes the directory.
///
/// Needs no lease: the write lock alone serialises it with sweeps and
/// restarts. Per-row problems are outcomes, not errors.
///
/// # Errors
///
/// [`Error::Io`] when `sandboxes_dir` is not an existing directory; SQLite
/// errors, busy past the timeout included (nothing is then changed).
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, CleanupOutcome, clean_ephemeral};
///
/// let dir = tempfile::tempdir()?;
/// let conn = rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// conn.execute(
///     "INSERT INTO sandbox (name, config, status, ephemeral) VALUES ('job-7', '{}', 'Stopped', 1)",
///     [],
/// )?;
/// std::fs::create_dir(dir.path().join("job-7"))?;
/// let catalog = Catalog::new(&conn)?;
/// assert_eq!(clean_ephemeral(&catalog, dir.path(), 1)?, CleanupOutcome::Removed);
/// assert!(!dir.path().join("job-7").exists());
/// assert_eq!(clean_ephemeral(&catalog, dir.path(), 1)?, CleanupOutcome::AlreadyGone);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn clean_ephemeral(
    catalog: &Catalog<'_>,
    sandboxes_dir: &Path,
    sandbox_id: i64,
) -> Result<CleanupOutcome> {
    let sandboxes = Sandboxes::new(sandboxes_dir);
    sandboxes.check()?;
    let prober = Prober::new();
    let tx = catalog.immediate()?;
    let (outcome, moved) = clean_row(catalog, &prober, &sandboxes, sandbox_id, false)?;
    match tx.commit() {
        Ok(()) => {
            if let Some(moved) = moved {
                sandboxes.discard(moved.entry(), None);
            }
            Ok(outcome)
        }
        Err(err) => {
            if let Some(moved) = moved {
                moved.restore();
            }
            Err(Error::from_sqlite(err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{DEAD_PID, Fixture, exists, own_pid};

    fn clean(f: &Fixture, id: i64) -> Result<CleanupOutcome> {
        clean_ephemeral(&Catalog::new(&f.conn)?, &f.sandboxes, id)
    }

    #[test]
    fn cleanup_removes_terminal_ephemeral_row_and_dir() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("eph", "Stopped", true)?;
        f.run(id, Some(DEAD_PID), "Running")?;
        let dir = f.mkdir("eph");
        assert_eq!(clean(&f, id)?, CleanupOutcome::Removed);
        assert_eq!(f.status(id)?, None);
        assert_eq!(f.count("SELECT count(*) FROM run")?, 0);
        assert!(!exists(&dir));
        assert_eq!(
            std::fs::read_dir(f.sandboxes.join(TRASH_DIR))
                .expect("trash")
                .count(),
            0
        );
        Ok(())
    }

    #[test]
    fn cleanup_skips_persistent() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("keep", "Stopped", false)?;
        let dir = f.mkdir("keep");
        assert_eq!(clean(&f, id)?, CleanupOutcome::SkippedPersistent);
        assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
        assert!(exists(&dir.join("rootfs/data")));
        Ok(())
    }

    #[test]
    fn cleanup_skips_non_terminal() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("run", "Running", true)?;
        let dir = f.mkdir("run");
        assert_eq!(clean(&f, id)?, CleanupOutcome::SkippedActive);
        assert_eq!(f.status(id)?.as_deref(), Some("Running"));
        assert!(exists(&dir));
        Ok(())
    }

    #[test]
    fn cleanup_skips_when_run_pid_is_live() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("live", "Stopped", true)?;
        f.run(id, Some(own_pid()), "Running")?;
        let dir = f.mkdir("live");
        assert_eq!(clean(&f, id)?, CleanupOutcome::SkippedLivePid);
        assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
        assert!(exists(&dir));
        Ok(())
    }

    #[test]
    fn cleanup_second_call_is_no_op() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("eph", "Stopped", true)?;
        assert_eq!(clean(&f, id)?, CleanupOutcome::Removed);
        assert_eq!(clean(&f, id)?, CleanupOutcome::AlreadyGone);
        Ok(())
    }

    #[test]
    fn cleanup_rejects_invalid_names_without_touching_disk() -> Result<()> {
        let f = Fixture::new()?;
        let canary = f.dir.path().join("canary");
        std::fs::create_dir(&canary).expect("mkdir");
        let id = f.sandbox("../canary", "Stopped", true)?;
        assert_eq!(clean(&f, id)?, CleanupOutcome::InvalidName);
        assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
        assert!(exists(&canary));
        assert!(!exists(&f.sandboxes.join(TRASH_DIR)));
        Ok(())
    }

    #[test]
    fn cleanup_deletes_runs_even_without_foreign_keys() -> Result<()> {
        let f = Fixture::new()?;
        f.conn.execute_batch("PRAGMA foreign_keys = OFF")?;
        let id = f.sandbox("eph", "Crashed", true)?;
        f.run(id, Some(DEAD_PID), "Terminated")?;
        f.run(id, None, "Running")?;
        let other = f.sandbox("other", "Crashed", false)?;
        let kept_run = f.run(other, None, "Terminated")?;
        assert_eq!(clean(&f, id)?, CleanupOutcome::Removed);
        assert_eq!(f.count("SELECT count(*) FROM run")?, 1);
        assert!(f.run_row(kept_run)?.is_some());
        Ok(())
    }

    #[test]
    fn blocked_trash_keeps_the_row_for_retry() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("eph", "Stopped", true)?;
        let dir = f.mkdir("eph");
        // The trash path is taken by a file: the directory cannot be moved.
        std::fs::write(f.sandboxes.join(TRASH_DIR), b"not a dir").expect("write");
        assert_eq!(clean(&f, id)?, CleanupOutcome::DirRemoveFailed);
        assert_eq!(f.status(id)?.as_deref(), Some("Stopped"));
        assert!(exists(&dir.join("rootfs/data")));
        Ok(())
    }

    #[test]
    fn symlinked_trash_is_never_used() -> Result<()> {
        let f = Fixture::new()?;
        let outside = f.dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, f.sandboxes.join(TRASH_DIR)).expect("symlink");
        let id = f.sandbox("eph", "Stopped", true)?;
        let dir = f.mkdir("eph");
        assert_eq!(clean(&f, id)?, CleanupOutcome::DirRemoveFailed);
        assert!(exists(&dir.join("rootfs/data")));
        assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 0);
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn trash_swapped_for_a_symlink_mid_sweep_does_not_redirect() -> Result<()> {
        let f = Fixture::new()?;
        let outside = f.dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        let sandboxes = Sandboxes::new(&f.sandboxes);
        f.mkdir("a");
        f.mkdir("b");
        let first = sandboxes.move_to_trash(1, "a")?.expect("moved");
        // Someone swaps the trash for a symlink that points outside.
        let trash = f.sandboxes.join(TRASH_DIR);
        std::fs::rename(&trash, f.sandboxes.join("old-trash")).expect("rename");
        std::os::unix::fs::symlink(&outside, &trash).expect("symlink");
        let second = sandboxes.move_to_trash(2, "b")?.expect("moved");
        assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 0);
        assert!(f.sandboxes.join("old-trash/2/rootfs/data").exists());
        assert!(sandboxes.discard(first.entry(), None));
        assert!(sandboxes.discard(second.entry(), None));
        assert_eq!(
            std::fs::read_dir(f.sandboxes.join("old-trash"))
                .expect("trash")
                .count(),
            0
        );
        assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 0);
        Ok(())
    }

    fn open_root(path: &Path) -> std::fs::File {
        std::fs::File::open(path).expect("open dir")
    }

    #[test]
    fn tree_removal_stops_at_the_deadline_and_finishes_later() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let tree = dir.path().join("t");
        std::fs::create_dir_all(tree.join("sub"))?;
        for i in 0..300 {
            std::fs::write(tree.join(format!("f{i}")), b"x")?;
        }
        let root = open_root(dir.path());
        let name = CString::new("t").expect("no nul");
        assert!(!remove_tree_at(root.as_fd(), &name, Some(Instant::now()))?);
        assert!(tree.join("sub").is_dir(), "stopped before finishing");
        assert!(remove_tree_at(root.as_fd(), &name, None)?);
        assert!(!tree.exists());
        // Gone already: nothing to do, and no error.
        assert!(remove_tree_at(root.as_fd(), &name, None)?);
        Ok(())
    }

    #[test]
    fn tree_removal_never_follows_symlinks_and_handles_depth() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside)?;
        std::fs::write(outside.join("precious"), b"keep")?;
        let mut deep = dir.path().join("t");
        for _ in 0..300 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep)?;
        std::os::unix::fs::symlink(&outside, deep.join("escape"))?;
        std::os::unix::fs::symlink(&outside, dir.path().join("t/link"))?;
        let root = open_root(dir.path());
        assert!(remove_tree_at(
            root.as_fd(),
            &CString::new("t").expect("no nul"),
            None
        )?);
        assert!(!dir.path().join("t").exists());
        assert_eq!(std::fs::read(outside.join("precious"))?, b"keep");
        Ok(())
    }

    #[test]
    fn missing_directory_still_removes_the_row() -> Result<()> {
        let f = Fixture::new()?;
        let id = f.sandbox("never-created", "Crashed", true)?;
        assert_eq!(clean(&f, id)?, CleanupOutcome::Removed);
        assert_eq!(f.status(id)?, None);
        Ok(())
    }
}
