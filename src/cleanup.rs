//! Removing one finished ephemeral sandbox: name check, rename to trash, row delete.
//!
//! The directory is moved into a trash folder inside the sandboxes directory
//! while the write lock is held, the rows are deleted, and only after the
//! commit is the trash deleted (outside the lock). A failed commit moves the
//! directory back; a crash leaves the directory in the trash, where the next
//! sweep either restores it (the row survived) or deletes it (the row is gone).

use std::cell::{OnceCell, Ref, RefCell};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use rusqlite::OptionalExtension;

use crate::catalog::Catalog;
use crate::error::{Error, IoContext, Result};
use crate::liveness::Prober;
use crate::runs::any_live_running;
use crate::statements::Statements;

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
    /// Its name in the sandboxes directory.
    name: String,
    /// Its name inside the trash (the sandbox id).
    entry: OsString,
}

impl Moved {
    /// Its name inside the trash, for [`Sandboxes::delete_in_trash`].
    pub(crate) fn entry(&self) -> &OsStr {
        &self.entry
    }
}

/// Entries read from a directory per listing: bounds memory on a huge one.
const LIST_BATCH: usize = 256;
/// How often a directory that refills while it is emptied is listed again
/// before its deletion is given up (until the next sweep).
const REFILLS: u32 = 8;

/// Runs `op` on an entry of `dir`; when the directory is not writable
/// (`EACCES`, as in a read-only image tree) makes it writable by its owner
/// and runs `op` once more. The directory is garbage, so its mode no longer
/// matters; a caller who is not its owner gets the first error back.
fn with_write_access(dir: BorrowedFd<'_>, op: impl Fn() -> nix::Result<()>) -> nix::Result<()> {
    match op() {
        Err(Errno::EACCES) => {
            nix::sys::stat::fchmod(dir, Mode::S_IRWXU).map_err(|_| Errno::EACCES)?;
            op()
        }
        other => other,
    }
}

/// Unlinks `name` in `parent` unless it is a directory; `true` when it is
/// gone (or was never there), `false` when it is a directory.
fn unlink_non_dir(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    match with_write_access(parent, || {
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
    }) {
        Ok(()) | Err(Errno::ENOENT) => Ok(true),
        Err(Errno::EISDIR | Errno::EPERM) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// Opens directory `name` in `parent`, refusing to follow a symlink.
fn open_dir_at(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<Dir> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Dir::from_fd(openat(parent, name, flags, Mode::empty())?)
}

/// Up to [`LIST_BATCH`] names from `dir` (without `.` and `..`), and whether
/// the listing reached the end.
fn list(dir: &mut Dir) -> io::Result<(Vec<CString>, bool)> {
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        if names.len() == LIST_BATCH {
            return Ok((names, false));
        }
        names.push(name.to_owned());
    }
    Ok((names, true))
}

/// A directory being emptied by [`remove_tree_at`].
struct Level {
    dir: Dir,
    name: CString,
    /// Every entry seen by a listing that reached the end has been deleted.
    drained: bool,
}

/// Deletes the tree `name` in `parent` without following any symlink, every
/// step relative to an open directory (so nothing swapped in mid-way can lead
/// elsewhere), and without recursion (so no depth overflows the stack).
/// Stops at `deadline`, returning `false`: the rest waits for the next sweep.
///
/// Each directory is listed once and then removed: the system calls per
/// small directory are one open, two reads, one unlink per file, one close
/// and one rmdir, which is as few as deleting it can take.
fn remove_tree_at(
    parent: BorrowedFd<'_>,
    name: &CStr,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    let past = || deadline.is_some_and(|d| Instant::now() >= d);
    let top = match open_dir_at(parent, name) {
        Ok(dir) => dir,
        Err(Errno::ENOENT) => return Ok(true),
        // A symlink or a file: removed itself, never followed.
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return match unlink_non_dir(parent, name)? {
                true => Ok(true),
                false => Err(Errno::EISDIR.into()),
            };
        }
        Err(errno) => return Err(errno.into()),
    };
    let mut stack = vec![Level {
        dir: top,
        name: name.to_owned(),
        drained: false,
    }];
    let mut refills = 0;
    while let Some(level) = stack.last_mut() {
        if past() {
            return Ok(false);
        }
        if level.drained {
            let Some(done) = stack.pop() else { break };
            drop(done.dir);
            let parent = stack.last().map_or(parent, |up| up.dir.as_fd());
            match with_write_access(parent, || {
                unlinkat(parent, done.name.as_c_str(), UnlinkatFlags::RemoveDir)
            }) {
                Ok(()) | Err(Errno::ENOENT) => {}
                // Something was created in it meanwhile: list it again.
                Err(Errno::ENOTEMPTY | Errno::EEXIST) if refills < REFILLS => {
                    refills += 1;
                    let dir = open_dir_at(parent, &done.name)?;
                    stack.push(Level {
                        dir,
                        name: done.name,
                        drained: false,
                    });
                }
                Err(errno) => return Err(errno.into()),
            }
            continue;
        }
        let (names, complete) = list(&mut level.dir)?;
        let fd = level.dir.as_fd();
        let mut descend = None;
        for child in names {
            if past() {
                return Ok(false);
            }
            if !unlink_non_dir(fd, &child)? {
                descend = Some(child);
                break;
            }
        }
        match descend {
            Some(child) => {
                let dir = open_dir_at(fd, &child)?;
                stack.push(Level {
                    dir,
                    name: child,
                    drained: false,
                });
            }
            None => level.drained = complete,
        }
    }
    Ok(true)
}

/// How every directory here is opened: for reading its entries, never
/// inherited by a child process.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

/// The sandboxes directory and its trash folder, held open: every rename,
/// listing and deletion is relative to these descriptors, so a trash swapped
/// for a symlink after it was opened cannot redirect anything outside the
/// sandboxes dir, and no path is resolved again per sandbox.
#[derive(Debug)]
pub(crate) struct Sandboxes<'p> {
    dir: &'p Path,
    /// Opened by the first operation (following a symlink: the caller chose
    /// this path).
    root: OnceCell<OwnedFd>,
    /// Opened once per sweep without following a symlink, again if a rename
    /// suggests it vanished.
    trash: RefCell<Option<OwnedFd>>,
}

impl<'p> Sandboxes<'p> {
    pub(crate) fn new(dir: &'p Path) -> Sandboxes<'p> {
        Sandboxes {
            dir,
            root: OnceCell::new(),
            trash: RefCell::new(None),
        }
    }

    fn trash_path(&self) -> PathBuf {
        self.dir.join(TRASH_DIR)
    }

    /// The sandboxes directory, opened on first use.
    fn root(&self) -> Result<BorrowedFd<'_>> {
        if let Some(fd) = self.root.get() {
            return Ok(fd.as_fd());
        }
        let fd = match nix::fcntl::open(self.dir, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOTDIR) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "sandboxes dir is not a directory",
                ))
                .at(self.dir);
            }
            Err(errno) => return Err(io::Error::from(errno)).at(self.dir),
        };
        Ok(self.root.get_or_init(|| fd).as_fd())
    }

    /// Fails unless the sandboxes directory exists: without it, a missing
    /// sandbox directory cannot be told from a mistyped path, and rows would
    /// be deleted while their directories live on elsewhere.
    pub(crate) fn check(&self) -> Result<()> {
        self.root().map(drop)
    }

    /// The trash, opened on first use without following a symlink; `None`
    /// when it does not exist.
    fn trash(&self) -> Result<Option<Ref<'_, OwnedFd>>> {
        if self.trash.borrow().is_none() {
            let flags = dir_flags() | OFlag::O_NOFOLLOW;
            let fd = match openat(self.root()?, TRASH_DIR, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(io::Error::other("trash exists and is not a directory"))
                        .at(&self.trash_path());
                }
                Err(errno) => return Err(io::Error::from(errno)).at(&self.trash_path()),
            };
            *self.trash.borrow_mut() = Some(fd);
        }
        Ok(Ref::filter_map(self.trash.borrow(), Option::as_ref).ok())
    }

    /// The trash, created first if it does not exist.
    fn made_trash(&self) -> Result<Ref<'_, OwnedFd>> {
        if self.trash.borrow().is_none() {
            let mode = Mode::from_bits_truncate(0o777);
            match nix::sys::stat::mkdirat(self.root()?, TRASH_DIR, mode) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(io::Error::from(errno)).at(&self.trash_path()),
            }
        }
        match self.trash()? {
            Some(trash) => Ok(trash),
            // Removed again between the mkdir and the open.
            None => Err(io::Error::from(Errno::ENOENT)).at(&self.trash_path()),
        }
    }

    /// Moves `<dir>/<name>` to `<trash>/<id>`; `None` when there was nothing to move.
    ///
    /// The common case costs one `renameat`: no `lstat` first, since a
    /// missing source and a leftover target both show up as its error.
    fn move_to_trash(&self, id: i64, name: &str) -> Result<Option<Moved>> {
        let root = self.root()?;
        let entry = id.to_string();
        let rename = || -> Result<nix::Result<()>> {
            Ok(renameat(
                root,
                name,
                self.made_trash()?.as_fd(),
                entry.as_str(),
            ))
        };
        let retry = match rename()? {
            Ok(()) => false,
            Err(Errno::ENOENT) => match fstatat(root, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Err(Errno::ENOENT) => return Ok(None),
                Err(errno) => return Err(io::Error::from(errno)).at(&self.dir.join(name)),
                // The source exists, so the trash went away: make it again.
                Ok(_) => {
                    *self.trash.borrow_mut() = None;
                    true
                }
            },
            Err(Errno::ENOTEMPTY | Errno::EEXIST | Errno::ENOTDIR | Errno::EISDIR) => {
                // A leftover from a crash under this id holds an older copy
                // of this same sandbox, which is being removed now anyway.
                self.delete_in_trash(OsStr::new(&entry), None)?;
                true
            }
            Err(errno) => return Err(io::Error::from(errno)).at(&self.dir.join(name)),
        };
        if retry {
            rename()?
                .map_err(io::Error::from)
                .at(&self.dir.join(name))?;
        }
        Ok(Some(Moved {
            name: name.to_owned(),
            entry: entry.into(),
        }))
    }

    /// After a failed commit (or a crash that rolled back the row's
    /// removal): puts the directory back where it was.
    pub(crate) fn restore(&self, moved: Moved) {
        let back = self.root().and_then(|root| {
            let Some(trash) = self.trash()? else {
                return Err(io::Error::from(Errno::ENOENT)).at(&self.trash_path());
            };
            renameat(
                trash.as_fd(),
                moved.entry.as_os_str(),
                root,
                moved.name.as_str(),
            )
            .map_err(io::Error::from)
            .at(&self.trash_path().join(&moved.entry))
        });
        if let Err(err) = back {
            log::warn!(
                "could not move a directory back to {} (the next sweep restores it): {err}",
                self.dir.join(&moved.name).display()
            );
        }
    }

    /// Deletes trash entry `entry` (after the commit that made it garbage),
    /// stopping at `deadline`; `Ok(false)` when it stopped, leaving the rest
    /// for the next sweep. A trash that is not there has nothing to delete.
    pub(crate) fn delete_in_trash(&self, entry: &OsStr, deadline: Option<Instant>) -> Result<bool> {
        let Some(trash) = self.trash()? else {
            return Ok(true);
        };
        let at = || self.trash_path().join(entry);
        let name = CString::new(entry.as_bytes())
            .map_err(io::Error::other)
            .at(&at())?;
        remove_tree_at(trash.as_fd(), &name, deadline).at(&at())
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
        self.root()
            .is_ok_and(|root| fstatat(root, TRASH_DIR, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok())
    }

    /// Sorts what a crash left in the trash. Call inside a write
    /// transaction: moves back any directory whose row survived (its removal
    /// was rolled back) and returns the entries to delete once it commits.
    pub(crate) fn sort_trash(&self, catalog: &Catalog<'_>) -> Result<Vec<OsString>> {
        // Never list (and so never delete from) anything but a real
        // directory: a symlink here would lead outside the sandboxes dir.
        let entries = {
            let trash = match self.trash() {
                Ok(Some(trash)) => trash,
                Ok(None) => return Ok(Vec::new()),
                Err(err) => {
                    log::warn!(
                        "{err}; not ours to purge, and no sandbox can be removed while it is there"
                    );
                    return Ok(Vec::new());
                }
            };
            let mut dir = Dir::openat(trash.as_fd(), ".", dir_flags(), Mode::empty())
                .map_err(io::Error::from)
                .at(&self.trash_path())?;
            let mut entries = Vec::new();
            for entry in dir.iter() {
                let entry = entry.map_err(io::Error::from).at(&self.trash_path())?;
                let name = entry.file_name();
                if name != c"." && name != c".." {
                    entries.push(OsStr::from_bytes(name.to_bytes()).to_owned());
                }
            }
            entries
        };
        let root = self.root()?;
        let mut doomed = Vec::new();
        let mut name_of = catalog
            .conn
            .prepare_cached("SELECT name FROM sandbox WHERE id = ?1")?;
        for entry in entries {
            let id = entry.to_str().and_then(|s| s.parse::<i64>().ok());
            let owner = match id {
                Some(id) => name_of
                    .query_row([id], |row| row.get::<_, String>(0))
                    .optional()?,
                None => None,
            };
            if let Some(name) = owner.filter(|name| validate_name(name).is_ok()) {
                let free = matches!(
                    fstatat(root, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW),
                    Err(Errno::ENOENT)
                );
                if free {
                    log::info!(
                        "restoring {} from the trash: its row survived",
                        self.dir.join(&name).display()
                    );
                    self.restore(Moved { name, entry });
                    continue;
                }
            }
            doomed.push(entry);
        }
        Ok(doomed)
    }
}

/// Decides, and unless `dry_run` carries out inside the caller's write
/// transaction, the cleanup of sandbox `id`. A returned [`Moved`] must be
/// discarded after the commit or restored if it fails.
pub(crate) fn clean_row(
    catalog: &Catalog<'_>,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    sandboxes: &Sandboxes<'_>,
    id: i64,
    dry_run: bool,
) -> Result<(CleanupOutcome, Option<Moved>)> {
    use rusqlite::types::ValueRef;
    let stmt = stmts.get("SELECT name, status, ephemeral FROM sandbox WHERE id = ?1")?;
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
    if any_live_running(catalog, stmts, prober, id)? {
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
    let deleted = stmts
        .get("DELETE FROM run WHERE sandbox_id = ?1")?
        .execute([id])
        .and_then(|_| {
            stmts
                .get(
                    "DELETE FROM sandbox WHERE id = ?1 AND ephemeral = 1 AND status IN ('Stopped', 'Crashed')",
                )?
                .execute([id])
        });
    match deleted {
        Ok(1) => Ok((CleanupOutcome::Removed, moved)),
        Ok(_) => {
            if let Some(moved) = moved {
                sandboxes.restore(moved);
            }
            Ok((CleanupOutcome::AlreadyClaimed, None))
        }
        Err(err) => {
            if let Some(moved) = moved {
                sandboxes.restore(moved);
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
    let mut stmts = Statements::new(catalog.conn);
    let (outcome, moved) = clean_row(catalog, &mut stmts, &prober, &sandboxes, sandbox_id, false)?;
    drop(stmts);
    match tx.commit() {
        Ok(()) => {
            if let Some(moved) = moved {
                sandboxes.discard(moved.entry(), None);
            }
            Ok(outcome)
        }
        Err(err) => {
            if let Some(moved) = moved {
                sandboxes.restore(moved);
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
