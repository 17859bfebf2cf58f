//! The trash: moving a sandbox directory (or a dead runtime's bootstrap
//! root) aside, putting it back, deleting it.
//!
//! A directory is moved into `<sandboxes_dir>/.sandbox-sweep-trash/<id>`
//! while the catalog's write lock is held, and deleted only after the commit
//! that removed its row. A failed commit moves it back; a crash leaves it in
//! the trash, where the next sweep's [`Trash::recover`] puts it back (its
//! row survived) or marks it for deletion (its row is gone). Every operation
//! goes through the sandboxes directory and the trash held open, never
//! following a symlink. No catalog here: callers pass what they know of rows.

use std::cell::{Ref, RefCell};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{IoContext, Result};
use crate::sandboxes::dir::SandboxesDir;
use crate::sys::dir::{self, Subdir, entry_exists, renameat};
use crate::sys::{Errno, NOT_FOUND, c_name};

/// The trash folder's name, inside the sandboxes directory.
pub(crate) const TRASH_DIR: &str = ".sandbox-sweep-trash";

/// A sandbox directory moved into the trash, pending the commit.
#[derive(Debug)]
pub(crate) struct Moved {
    /// Its name in the sandboxes directory.
    name: String,
    /// Its name inside the trash (the sandbox id).
    entry: OsString,
}

impl Moved {
    /// Its name inside the trash, for [`Trash::delete`].
    pub(crate) fn entry(&self) -> &OsStr {
        &self.entry
    }
}

/// The errno of a failed call, as an error about `path`.
fn failed<T>(errno: Errno, path: &Path) -> Result<T> {
    Err(errno).at(path)
}

/// The sandboxes directory and its trash, both held open: every rename,
/// listing and deletion is relative to these descriptors, so a trash swapped
/// for a symlink after it was opened cannot redirect anything outside the
/// sandboxes directory, and no path is resolved again per sandbox.
#[derive(Debug)]
pub(crate) struct Trash<'p> {
    /// The sandboxes directory, opened by the first operation.
    sandboxes: SandboxesDir<'p>,
    /// The trash, opened once per sweep without following a symlink, again
    /// if a rename suggests it vanished.
    bin: RefCell<Option<OwnedFd>>,
    /// Entries moved in that are garbage whatever their transaction does
    /// (dead runtimes' bootstrap roots), to delete after it.
    garbage: RefCell<Vec<OsString>>,
}

/// A stopped sandbox's bootstrap root, inside its directory.
const BOOTSTRAP_ROOTFS: &CStr = c".bootstrap-rootfs";

impl<'p> Trash<'p> {
    /// The trash of `sandboxes_dir`; nothing is opened yet.
    pub(crate) fn new(sandboxes_dir: &'p Path) -> Trash<'p> {
        Trash {
            sandboxes: SandboxesDir::new(sandboxes_dir),
            bin: RefCell::new(None),
            garbage: RefCell::new(Vec::new()),
        }
    }

    fn bin_path(&self) -> PathBuf {
        self.sandboxes.path().join(TRASH_DIR)
    }

    /// The sandboxes directory it lives in, for what acts beside the trash
    /// (a dead runtime's files) on the same descriptor.
    pub(crate) fn sandboxes(&self) -> &SandboxesDir<'p> {
        &self.sandboxes
    }

    /// The trash, opened on first use without following a symlink; `None`
    /// when it does not exist.
    fn bin(&self) -> Result<Option<Ref<'_, OwnedFd>>> {
        if self.bin.borrow().is_none() {
            let fd = match dir::open_subdir(self.sandboxes.fd()?, C_TRASH).at(&self.bin_path())? {
                Subdir::Open(fd) => fd,
                Subdir::Missing => return Ok(None),
                Subdir::Symlink | Subdir::NotADir => {
                    return Err(io::Error::other("trash exists and is not a directory"))
                        .at(&self.bin_path());
                }
            };
            *self.bin.borrow_mut() = Some(fd);
        }
        Ok(Ref::filter_map(self.bin.borrow(), Option::as_ref).ok())
    }

    /// The trash, created first if it does not exist.
    fn made_bin(&self) -> Result<Ref<'_, OwnedFd>> {
        if self.bin.borrow().is_none() {
            dir::make_dir(self.sandboxes.fd()?, TRASH_DIR, 0o777).at(&self.bin_path())?;
        }
        match self.bin()? {
            Some(bin) => Ok(bin),
            // Removed again between the mkdir and the open.
            None => failed(NOT_FOUND, &self.bin_path()),
        }
    }

    /// Moves `<dir>/<name>` to `<trash>/<id>-<name>`, which says whose it
    /// was (`<trash>/<id>` when that would be longer than a name may be);
    /// `None` when there was nothing to move.
    ///
    /// The common case costs one `renameat`: no `lstat` first, since a
    /// missing source and a leftover target both show up as its error.
    pub(crate) fn move_in(&self, id: i64, name: &str) -> Result<Option<Moved>> {
        self.move_as(entry_for(&id.to_string(), name, ""), name)
    }

    /// Moves the orphan `<dir>/<name>` (no row names it) to
    /// `<trash>/orphan-<name>` (`orphan-<H16>` when too long): not an id,
    /// so a crash before its deletion leaves it for the next sweep's purge,
    /// which deletes what no row claims.
    pub(crate) fn move_orphan(&self, name: &str, h16: &str) -> Result<Option<Moved>> {
        self.move_as(entry_for("orphan", name, h16), name)
    }

    fn move_as(&self, entry: String, name: &str) -> Result<Option<Moved>> {
        let root = self.sandboxes.fd()?;
        let source = || self.sandboxes.path().join(name);
        let rename = || -> Result<std::result::Result<(), Errno>> {
            Ok(renameat(
                root,
                name,
                self.made_bin()?.as_fd(),
                entry.as_str(),
            ))
        };
        let retry = match rename()? {
            Ok(()) => false,
            Err(NOT_FOUND) => match entry_exists(root, &c_name(name, source)?) {
                Ok(false) => return Ok(None),
                Err(errno) => return failed(errno, &source()),
                // The source exists, so the trash went away: make it again.
                Ok(true) => {
                    *self.bin.borrow_mut() = None;
                    true
                }
            },
            Err(errno) if dir::target_in_the_way(errno) => {
                // A leftover from a crash under this id holds an older copy
                // of this same sandbox, which is being removed now anyway.
                self.set_aside(&entry)?;
                true
            }
            Err(errno) => return failed(errno, &source()),
        };
        if retry {
            rename()?.at(&source())?;
        }
        Ok(Some(Moved {
            name: name.to_owned(),
            entry: entry.into(),
        }))
    }

    /// Moves a dead runtime's bootstrap root, `<dir>/<name>/.bootstrap-rootfs`,
    /// to `<trash>/<id>.bootstrap-rootfs` with one `renameat`: however
    /// large, it costs the caller's write transaction O(1), and it is
    /// deleted after (see [`Trash::take_garbage`]). It is garbage whether
    /// or not the transaction commits (the runtime is dead and its locks
    /// held), so it is never put back; an entry that is no id is deleted by
    /// the next sweep's purge. `sandbox` is sandbox `name`'s directory as
    /// the caller opened it, no symlink followed (`None`: there is none, or
    /// a symlink, which msb follows and this crate never does): nothing
    /// there is nothing to move; a bootstrap root that is a symlink moves
    /// as itself.
    pub(crate) fn move_bootstrap(
        &self,
        id: i64,
        name: &str,
        sandbox: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        let at = self.sandboxes.path().join(name).join(".bootstrap-rootfs");
        let Some(sandbox) = sandbox else {
            return Ok(());
        };
        // Most sandboxes have none: one lookup, and no trash made for it.
        match entry_exists(sandbox, BOOTSTRAP_ROOTFS) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(errno) => return failed(errno, &at),
        }
        let entry = format!("{id}.bootstrap-rootfs");
        let rename = || -> Result<std::result::Result<(), Errno>> {
            Ok(renameat(
                sandbox.as_fd(),
                BOOTSTRAP_ROOTFS,
                self.made_bin()?.as_fd(),
                entry.as_str(),
            ))
        };
        let retry = match rename()? {
            Ok(()) => false,
            Err(NOT_FOUND) => match entry_exists(sandbox.as_fd(), BOOTSTRAP_ROOTFS) {
                Ok(false) => return Ok(()),
                Err(errno) => return failed(errno, &at),
                // The source exists, so the trash went away: make it again.
                Ok(true) => {
                    *self.bin.borrow_mut() = None;
                    true
                }
            },
            // A leftover of a crash under this name: garbage too.
            Err(errno) if dir::target_in_the_way(errno) => {
                self.set_aside(&entry)?;
                true
            }
            Err(errno) => return failed(errno, &at),
        };
        if retry {
            rename()?.at(&at)?;
        }
        self.garbage.borrow_mut().push(entry.into());
        Ok(())
    }

    /// Renames trash entry `entry` (a crash's leftover in the way of a new
    /// one) to a name no id parses as, for deletion with the garbage: one
    /// rename, since the caller holds the catalog's write lock and the
    /// leftover may be any size.
    fn set_aside(&self, entry: &str) -> Result<()> {
        let Some(bin) = self.bin()? else {
            return Ok(());
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let aside = format!("{entry}.stale-{}-{nanos}", std::process::id());
        renameat(bin.as_fd(), entry, bin.as_fd(), aside.as_str())
            .at(&self.bin_path().join(entry))?;
        drop(bin);
        self.garbage.borrow_mut().push(aside.into());
        Ok(())
    }

    /// The entries [`Trash::move_bootstrap`] moved in, and the leftovers set
    /// aside, since the last call: to delete once their transaction has
    /// ended, whichever way.
    pub(crate) fn take_garbage(&self) -> Vec<OsString> {
        std::mem::take(&mut *self.garbage.borrow_mut())
    }

    /// After a failed commit (or a crash that rolled back the row's
    /// removal): puts the directory back where it was, logging a failure
    /// (the next sweep's [`Trash::recover`] retries).
    /// Ends a transaction that deleted the rows of `moved`: committed, they
    /// are returned to be deleted; otherwise each goes back where it was
    /// (its row is still there) and the error is returned.
    pub(crate) fn settle<M: IntoIterator<Item = Moved>>(
        &self,
        ended: Result<()>,
        moved: M,
    ) -> Result<M> {
        match ended {
            Ok(()) => Ok(moved),
            Err(err) => {
                moved.into_iter().for_each(|m| self.put_back(m));
                Err(err)
            }
        }
    }

    pub(crate) fn put_back(&self, moved: Moved) {
        let back = self.sandboxes.fd().and_then(|root| {
            let Some(bin) = self.bin()? else {
                return failed(NOT_FOUND, &self.bin_path());
            };
            renameat(
                bin.as_fd(),
                moved.entry.as_os_str(),
                root,
                moved.name.as_str(),
            )
            .at(&self.bin_path().join(&moved.entry))
        });
        if let Err(err) = back {
            log::warn!(
                target: crate::error::LOG_KEPT,
                "could not move a directory back to {} (the next sweep restores it): {err:#}",
                self.sandboxes.path().join(&moved.name).display()
            );
        }
    }

    /// Deletes trash entry `entry` (after the commit that made it garbage),
    /// stopping at `deadline`; `Ok(false)` when it stopped, leaving the rest
    /// for the next sweep. A trash that is not there has nothing to delete.
    pub(crate) fn delete(&self, entry: &OsStr, deadline: Option<Instant>) -> Result<bool> {
        let Some(bin) = self.bin()? else {
            return Ok(true);
        };
        let at = || self.bin_path().join(entry);
        let name = c_name(entry, at)?;
        dir::remove_tree_at(bin.as_fd(), &name, deadline).at(&at())
    }

    /// Deletes `entry`, logging a failure (the next sweep's purge retries);
    /// `false` when the deadline stopped it.
    pub(crate) fn discard(&self, entry: &OsStr, deadline: Option<Instant>) -> bool {
        match self.delete(entry, deadline) {
            Ok(done) => done,
            Err(err) => {
                log::warn!(target: crate::error::LOG_KEPT, "could not delete trash (the next sweep retries): {err:#}");
                true
            }
        }
    }

    /// Removes the trash folder when it is empty and this sweep opened it:
    /// users list the sandboxes directory and expect only sandboxes there,
    /// and an absent trash costs the next sweep no write transaction. Not
    /// empty (deferred deletions, another process's entries) or not there:
    /// nothing to do. Never follows a symlink (`rmdir` of one fails).
    pub(crate) fn remove_if_empty(&self) {
        if self.bin.borrow_mut().take().is_none() {
            return;
        }
        let Ok(root) = self.sandboxes.fd() else {
            return;
        };
        match dir::remove_dir_if_empty(root, C_TRASH) {
            Ok(()) => {}
            Err(errno) => log::debug!(
                "{}: left in place: {}",
                self.bin_path().display(),
                io::Error::from(errno)
            ),
        }
    }

    /// Whether anything is at the trash path (a directory or not).
    pub(crate) fn exists(&self) -> bool {
        self.sandboxes
            .fd()
            .is_ok_and(|root| entry_exists(root, C_TRASH).unwrap_or(false))
    }

    /// Recovers what a crash left in the trash. Call inside a write
    /// transaction: `owner(id)` names the sandbox whose row still holds
    /// that id (a valid name only); such a directory is moved back when its
    /// place is free. Returns the entries to delete once the transaction
    /// commits.
    pub(crate) fn recover(
        &self,
        mut owner: impl FnMut(i64) -> Result<Option<String>>,
    ) -> Result<Vec<OsString>> {
        let entries = match self.bin() {
            // Never list (and so never delete from) anything but a real
            // directory: a symlink here would lead outside the sandboxes dir.
            Ok(Some(bin)) => dir::list_all(bin.as_fd()).at(&self.bin_path())?,
            Ok(None) => return Ok(Vec::new()),
            Err(err) => {
                log::warn!(
                    "{err:#}; not ours to purge, and no sandbox can be removed while it is there"
                );
                return Ok(Vec::new());
            }
        };
        let root = self.sandboxes.fd()?;
        let mut doomed = Vec::new();
        for entry in entries {
            let entry = OsStr::from_bytes(entry.to_bytes()).to_owned();
            // Put back only into the row it was moved in for: a row id
            // can be given again once its row is gone, so the name must
            // agree too, where the entry has one.
            let name = match entry.to_str().and_then(parse_entry) {
                Some((id, named)) => owner(id)?.filter(|row| named.is_none_or(|n| n == row)),
                None => None,
            };
            if let Some(name) = name {
                let free = matches!(
                    CString::new(name.as_bytes()).map(|c| entry_exists(root, &c)),
                    Ok(Ok(false))
                );
                if free {
                    log::info!(
                        "restoring {} from the trash: its row survived",
                        self.sandboxes.path().join(&name).display()
                    );
                    self.put_back(Moved { name, entry });
                    continue;
                }
            }
            doomed.push(entry);
        }
        Ok(doomed)
    }
}

/// A trash entry's name: `<head>-<name>`, saying which sandbox it was,
/// or `<head>` then `-<short>` (when given) where that would be longer
/// than `NAME_MAX`.
fn entry_for(head: &str, name: &str, short: &str) -> String {
    const NAME_MAX: usize = 255;
    if head.len() + 1 + name.len() <= NAME_MAX {
        format!("{head}-{name}")
    } else if short.is_empty() {
        head.to_owned()
    } else {
        format!("{head}-{short}")
    }
}

/// The row id and sandbox name a trash entry was moved in for:
/// `<id>-<name>`, or `<id>` (a long name, or an older sweep's entry).
/// Anything else (a bootstrap root, an orphan, a leftover set aside) is
/// no sandbox's to put back.
fn parse_entry(entry: &str) -> Option<(i64, Option<&str>)> {
    let (id, name) = match entry.split_once('-') {
        Some((id, name)) => (id, Some(name)),
        None => (entry, None),
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id.parse().ok()?, name))
}

/// [`TRASH_DIR`] as a C string.
pub(crate) const C_TRASH: &CStr = c".sandbox-sweep-trash";

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox_dir(root: &Path, name: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(root.join(name).join("rootfs"))?;
        std::fs::write(root.join(name).join("rootfs/data"), b"payload")
    }

    fn count(path: &Path) -> usize {
        std::fs::read_dir(path).map_or(0, Iterator::count)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn trash_swapped_for_a_symlink_mid_sweep_does_not_redirect() -> Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        let sandboxes = dir.path().join("sandboxes");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        for name in ["a", "b"] {
            sandbox_dir(&sandboxes, name).expect("sandbox dir");
        }
        let trash = Trash::new(&sandboxes);
        let first = trash.move_in(1, "a")?.expect("moved");
        // Someone swaps the trash for a symlink that points outside.
        let bin = sandboxes.join(TRASH_DIR);
        std::fs::rename(&bin, sandboxes.join("old-trash")).expect("rename");
        std::os::unix::fs::symlink(&outside, &bin).expect("symlink");
        let second = trash.move_in(2, "b")?.expect("moved");
        assert_eq!(count(&outside), 0);
        assert!(sandboxes.join("old-trash/2-b/rootfs/data").exists());
        assert!(trash.discard(first.entry(), None));
        assert!(trash.discard(second.entry(), None));
        assert_eq!(count(&sandboxes.join("old-trash")), 0);
        assert_eq!(count(&outside), 0);
        Ok(())
    }

    #[test]
    fn the_trash_name_is_one_name_in_both_spellings() {
        assert_eq!(C_TRASH.to_str(), Ok(TRASH_DIR));
    }

    #[test]
    fn recovery_puts_back_what_an_owner_claims_and_dooms_the_rest() -> Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        let sandboxes = dir.path();
        let bin = sandboxes.join(TRASH_DIR);
        for entry in [
            "7-seven",
            "8-eight",
            "9",
            "10-ten",
            "11-was-eleven",
            "not-an-id",
            "12.bootstrap-rootfs",
            "orphan-stray",
        ] {
            sandbox_dir(&bin, entry).expect("trash entry");
        }
        // Sandbox 8's place is taken again: its copy in the trash is stale.
        sandbox_dir(sandboxes, "eight").expect("sandbox dir");
        let trash = Trash::new(sandboxes);
        let owners = |id| {
            Ok(match id {
                7 => Some("seven".to_owned()),
                8 => Some("eight".to_owned()),
                // An older sweep's entry, named by the id alone.
                9 => Some("nine".to_owned()),
                // Row 11's id was given again, to another sandbox.
                11 => Some("eleven-again".to_owned()),
                12 => Some("twelve".to_owned()),
                _ => None,
            })
        };
        let mut doomed = trash.recover(owners)?;
        doomed.sort();
        let want: Vec<OsString> = [
            "10-ten",
            "11-was-eleven",
            "12.bootstrap-rootfs",
            "8-eight",
            "not-an-id",
            "orphan-stray",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        assert_eq!(doomed, want);
        assert!(sandboxes.join("seven/rootfs/data").exists());
        assert!(sandboxes.join("eight/rootfs/data").exists());
        assert!(sandboxes.join("nine/rootfs/data").exists());
        assert!(!sandboxes.join("eleven-again").exists());
        assert!(!bin.join("7-seven").exists() && !bin.join("9").exists());
        Ok(())
    }

    #[test]
    fn an_entry_names_its_sandbox_unless_that_would_be_too_long() {
        assert_eq!(entry_for("7", "job-1", ""), "7-job-1");
        assert_eq!(entry_for("orphan", "stray", "abc"), "orphan-stray");
        let long = "n".repeat(254);
        assert_eq!(entry_for("7", &long, ""), "7");
        assert_eq!(entry_for("orphan", &long, "abc"), "orphan-abc");
        assert_eq!(parse_entry("7-job-1"), Some((7, Some("job-1"))));
        assert_eq!(parse_entry("7"), Some((7, None)));
        for no in [
            "orphan-x",
            "7.bootstrap-rootfs",
            "7.stale-1-2",
            "-x",
            "",
            "x7",
        ] {
            assert_eq!(parse_entry(no), None, "{no}");
        }
    }
}
