//! Directory calls relative to open descriptors: open, list, unlink, and
//! delete a whole tree without following a symlink.
//!
//! Every operation names its target relative to a directory held open, so a
//! path component swapped for a symlink half-way cannot lead outside. No
//! catalog and no policy here: callers decide what may be deleted.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::listing::Listing;

pub(crate) use nix::fcntl::renameat;
pub(crate) use nix::sys::stat::mkdirat;

/// Entries read from a directory per listing: bounds memory on a huge one.
const LIST_BATCH: usize = 256;
/// How often a directory that refills while it is emptied is listed again
/// before its deletion is given up (until the next sweep).
const REFILLS: u32 = 8;

/// How every directory here is opened: for reading its entries, never
/// inherited by a child process.
pub(crate) fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

/// Opens the directory at `path`, following a symlink (the caller chose it).
pub(crate) fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(path, dir_flags(), Mode::empty())
}

/// Opens directory `name` in `parent` without following a symlink.
pub(crate) fn open_dir_nofollow(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<OwnedFd> {
    openat(parent, name, dir_flags() | OFlag::O_NOFOLLOW, Mode::empty())
}

/// What [`open_subdir`] found at a name.
pub(crate) enum Subdir {
    /// A directory, now open.
    Open(OwnedFd),
    /// Nothing by that name.
    Missing,
    /// A symlink, never followed (whatever it names).
    Symlink,
    /// Something else that is not a directory: a file, a socket.
    NotADir,
}

/// Opens directory `name` in `parent` without following a symlink,
/// telling "nothing there" and "not a directory" from a failed call.
pub(crate) fn open_subdir(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<Subdir> {
    match open_dir_nofollow(parent, name) {
        Ok(fd) => Ok(Subdir::Open(fd)),
        Err(Errno::ENOENT) => Ok(Subdir::Missing),
        Err(Errno::ELOOP) => Ok(Subdir::Symlink),
        // With O_DIRECTORY, Linux says ENOTDIR for a symlink too: which one
        // it is, asked without following it.
        Err(Errno::ENOTDIR) => match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat)
                if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK =>
            {
                Ok(Subdir::Symlink)
            }
            Ok(_) => Ok(Subdir::NotADir),
            Err(Errno::ENOENT) => Ok(Subdir::Missing),
            Err(errno) => Err(errno),
        },
        Err(errno) => Err(errno),
    }
}

/// Makes directory `name` in `parent` unless something is there already
/// (what is there is checked when it is opened, never followed).
pub(crate) fn make_dir<P: ?Sized + nix::NixPath>(
    parent: BorrowedFd<'_>,
    name: &P,
    mode: u32,
) -> nix::Result<()> {
    match mkdirat(parent, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// The error for a symlink or a file found where a directory should be:
/// nothing is done through it.
pub(crate) fn not_a_directory() -> std::io::Error {
    std::io::Error::other("not a directory (a symlink or a file); never followed")
}

/// Removes directory `name` in `parent` if it is empty; gone already, or
/// not empty (`ENOTEMPTY`, or POSIX's `EEXIST`), is not an error.
pub(crate) fn remove_dir_if_empty(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<()> {
    match remove_empty_dir(parent, name) {
        Ok(()) | Err(Errno::ENOENT | Errno::ENOTEMPTY | Errno::EEXIST) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// Whether a failed `rename` found its target in the way: a directory
/// that is not empty, or an entry of the other type.
pub(crate) fn target_in_the_way(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::ENOTEMPTY | Errno::EEXIST | Errno::ENOTDIR | Errno::EISDIR
    )
}

/// Removes the empty directory `name` in `parent`; one already gone is
/// not an error, one that is not empty is.
pub(crate) fn remove_empty_dir_if_present(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<()> {
    match remove_empty_dir(parent, name) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// Whether `name` in `parent` is a regular file (not a directory, not a
/// symlink: never followed); a failed call is not one.
pub(crate) fn is_plain_file_at(parent: BorrowedFd<'_>, name: &CStr) -> bool {
    fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|s| SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
}

/// Whether anything (of any type) is at `name` in `parent`; a failed call
/// other than "not found" reports `Err`.
pub(crate) fn entry_exists(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<bool> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(errno) => Err(errno),
    }
}

/// Every name in the directory `dir` (without `.` and `..`).
pub(crate) fn list_all(dir: BorrowedFd<'_>) -> nix::Result<Vec<CString>> {
    let mut listing = Listing::new(openat(dir, ".", dir_flags(), Mode::empty())?)?;
    let mut names = Vec::new();
    while let Some(name) = listing.next_name() {
        names.push(name?);
    }
    Ok(names)
}

/// Unlinks `name` in `parent` if it is not a directory (a socket, a file, a
/// symlink, which is removed itself, never followed); gone already is fine.
pub(crate) fn unlink_entry(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// Removes the empty directory `name` in `parent` (`rmdir`, which never
/// follows a symlink: one there fails with `ENOTDIR`).
pub(crate) fn remove_empty_dir(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<()> {
    unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

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
/// gone (or was never there), `false` when it is a directory. `inside`:
/// `parent` is a directory of the tree being deleted, whose mode may be
/// changed; the directory that holds the tree's top is never changed (it
/// is a sandbox's, the run directory's or the trash's, not garbage).
fn unlink_non_dir(parent: BorrowedFd<'_>, name: &CStr, inside: bool) -> io::Result<bool> {
    let unlink = || unlinkat(parent, name, UnlinkatFlags::NoRemoveDir);
    let done = if inside {
        with_write_access(parent, unlink)
    } else {
        unlink()
    };
    match done {
        Ok(()) | Err(Errno::ENOENT) => Ok(true),
        Err(Errno::EISDIR | Errno::EPERM) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}

/// Opens directory `name` in `parent` for listing, refusing to follow a symlink.
fn open_listing(parent: BorrowedFd<'_>, name: &CStr) -> nix::Result<Listing> {
    Listing::new(open_dir_nofollow(parent, name)?)
}

/// Up to [`LIST_BATCH`] names from `dir` (without `.` and `..`), and whether
/// the listing reached the end.
fn list_batch(dir: &mut Listing) -> io::Result<(Vec<CString>, bool)> {
    let mut names = Vec::new();
    while let Some(name) = dir.next_name() {
        names.push(name?);
        if names.len() == LIST_BATCH {
            return Ok((names, false));
        }
    }
    Ok((names, true))
}

/// A directory being emptied by [`remove_tree_at`].
struct Level {
    dir: Listing,
    name: CString,
    /// Every entry seen by a listing that reached the end has been deleted.
    drained: bool,
    /// Names listed but not yet deleted, last first: a subdirectory met in
    /// a batch is emptied before the rest of that batch, which must not be
    /// lost (the listing has moved past it).
    pending: Vec<CString>,
    /// The listing reached its end.
    listed: bool,
    /// How many times it was listed again, found not empty after a
    /// listing that reached its end (entries unlinked while a listing is
    /// open can be skipped by it, and a writer may add some).
    refills: u32,
}

impl Level {
    fn new(dir: Listing, name: CString, refills: u32) -> Level {
        Level {
            dir,
            name,
            drained: false,
            pending: Vec::new(),
            listed: false,
            refills,
        }
    }
}

/// A tree being deleted: the open directories from its top down to where
/// the deletion stands. An explicit stack, so no depth overflows ours.
struct Removal<'p> {
    parent: BorrowedFd<'p>,
    stack: Vec<Level>,
    deadline: Option<Instant>,
}

impl Removal<'_> {
    fn past(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Removes the drained directory on top of the stack; lists it again
    /// when something was created in it meanwhile (a bounded number of times).
    fn remove_drained(&mut self) -> io::Result<()> {
        let Some(done) = self.stack.pop() else {
            return Ok(());
        };
        drop(done.dir);
        let rmdir = |parent| unlinkat(parent, done.name.as_c_str(), UnlinkatFlags::RemoveDir);
        // Only directories inside the tree are made writable, never the
        // one that holds its top.
        let (parent, removed) = match self.stack.last() {
            Some(up) => {
                let parent = up.dir.as_fd();
                (parent, with_write_access(parent, || rmdir(parent)))
            }
            None => (self.parent, rmdir(self.parent)),
        };
        match removed {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::ENOTEMPTY | Errno::EEXIST) if done.refills < REFILLS => {
                let dir = open_listing(parent, &done.name)?;
                self.stack
                    .push(Level::new(dir, done.name, done.refills + 1));
                Ok(())
            }
            Err(errno) => Err(errno.into()),
        }
    }

    /// Unlinks one batch of the top directory's entries until it meets a
    /// subdirectory, which it descends into; `false` when the deadline hit.
    fn drain_top(&mut self) -> io::Result<bool> {
        let deadline = self.deadline;
        let past = || deadline.is_some_and(|d| Instant::now() >= d);
        let Some(level) = self.stack.last_mut() else {
            return Ok(true);
        };
        if level.pending.is_empty() {
            if level.listed {
                level.drained = true;
                return Ok(true);
            }
            let (mut names, complete) = list_batch(&mut level.dir)?;
            names.reverse();
            (level.pending, level.listed) = (names, complete);
        }
        let fd = level.dir.as_fd();
        while let Some(child) = level.pending.pop() {
            if past() {
                level.pending.push(child);
                return Ok(false);
            }
            if !unlink_non_dir(fd, &child, true)? {
                let dir = open_listing(fd, &child)?;
                self.stack.push(Level::new(dir, child, 0));
                return Ok(true);
            }
        }
        Ok(true)
    }
}

/// Deletes the tree `name` in `parent` without following any symlink, every
/// step relative to an open directory (so nothing swapped in mid-way can lead
/// elsewhere), and without recursion (so no depth overflows the stack).
/// Stops at `deadline`, returning `false`: the rest waits for the next sweep.
///
/// Each directory is listed once and then removed: the system calls per
/// small directory are one open, two reads, one unlink per file, one close
/// and one rmdir, which is as few as deleting it can take.
pub(crate) fn remove_tree_at(
    parent: BorrowedFd<'_>,
    name: &CStr,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    let top = match open_listing(parent, name) {
        Ok(dir) => dir,
        Err(Errno::ENOENT) => return Ok(true),
        // A symlink or a file: removed itself, never followed.
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return match unlink_non_dir(parent, name, false)? {
                true => Ok(true),
                false => Err(Errno::EISDIR.into()),
            };
        }
        Err(errno) => return Err(errno.into()),
    };
    let mut removal = Removal {
        parent,
        stack: vec![Level::new(top, name.to_owned(), 0)],
        deadline,
    };
    while let Some(level) = removal.stack.last() {
        if removal.past() {
            return Ok(false);
        }
        if level.drained {
            removal.remove_drained()?;
        } else if !removal.drain_top()? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subdirectory_a_symlink_a_file_and_nothing_are_told_apart() -> nix::Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::os::unix::fs::symlink("d", dir.path().join("to-dir")).expect("symlink");
        std::os::unix::fs::symlink("nowhere", dir.path().join("dangling")).expect("symlink");
        std::fs::write(dir.path().join("f"), b"").expect("write");
        let parent = open_dir(dir.path())?;
        let at = |name: &CStr| open_subdir(parent.as_fd(), name);
        assert!(matches!(at(c"d")?, Subdir::Open(_)));
        assert!(matches!(at(c"to-dir")?, Subdir::Symlink));
        assert!(matches!(at(c"dangling")?, Subdir::Symlink));
        assert!(matches!(at(c"f")?, Subdir::NotADir));
        assert!(matches!(at(c"missing")?, Subdir::Missing));
        Ok(())
    }

    fn open_root(path: &Path) -> OwnedFd {
        open_dir(path).expect("open dir")
    }

    #[test]
    fn tree_removal_stops_at_the_deadline_and_finishes_later() -> io::Result<()> {
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
    fn tree_removal_never_follows_symlinks_and_handles_depth() -> io::Result<()> {
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
    fn only_directories_inside_the_tree_are_made_writable() -> io::Result<()> {
        use nix::unistd::{Gid, Uid, chown};
        use std::os::unix::fs::PermissionsExt;
        // Permissions bind only a caller that is not root: this thread acts
        // as another user for files (the file-system ids are per thread).
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "needs root under CI");
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let (holder, tree) = (dir.path().join("holder"), dir.path().join("holder/t"));
        std::fs::create_dir_all(tree.join("ro/inner"))?;
        std::fs::write(tree.join("ro/inner/f"), b"x")?;
        let nobody = (Uid::from_raw(65534), Gid::from_raw(65534));
        for path in [
            dir.path(),
            &holder,
            &tree,
            &tree.join("ro"),
            &tree.join("ro/inner"),
            &tree.join("ro/inner/f"),
        ] {
            chown(path, Some(nobody.0), Some(nobody.1))?;
        }
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o7777);
        std::fs::set_permissions(tree.join("ro"), std::fs::Permissions::from_mode(0o555))?;
        std::fs::set_permissions(&holder, std::fs::Permissions::from_mode(0o555))?;
        crate::sys::user::files_as(nobody.0, nobody.1);
        let holder_fd = open_root(&holder);
        let removed = remove_tree_at(holder_fd.as_fd(), c"t", None);
        crate::sys::user::files_as(Uid::from_raw(0), Gid::from_raw(0));
        // Everything inside went (`ro` was made writable: it is garbage),
        // the top could not, and the directory holding it kept its mode.
        assert_eq!(
            removed.map_err(|e| e.raw_os_error()),
            Err(Some(libc_eacces()))
        );
        assert_eq!(std::fs::read_dir(&tree)?.count(), 0);
        assert_eq!(mode(&holder)?, 0o555);
        Ok(())
    }

    fn libc_eacces() -> i32 {
        Errno::EACCES as i32
    }

    #[test]
    fn listing_skips_dot_entries_and_existence_ignores_symlink_targets() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a"), b"x")?;
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("dangling"))?;
        let root = open_root(dir.path());
        let mut names = list_all(root.as_fd())?;
        names.sort();
        assert_eq!(names, [c"a".to_owned(), c"dangling".to_owned()]);
        assert!(entry_exists(root.as_fd(), c"dangling")?);
        assert!(!entry_exists(root.as_fd(), c"missing")?);
        Ok(())
    }
}
