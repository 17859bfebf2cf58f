//! What stands at a path, read by path rather than through a descriptor:
//! for the few checks made before anything is opened (the WAL index beside
//! a catalog, who owns each directory on the way to a home). Mechanism
//! only: what an owner or a mode means is the caller's.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Who owns an entry and how it may be written, as `lstat` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owned {
    pub(crate) uid: u32,
    /// The permission bits and file type (`st_mode`).
    pub(crate) mode: u32,
    pub(crate) is_dir: bool,
}

/// `path` with every symlink resolved (`realpath`); `None` when it cannot
/// be (it does not exist, or a component cannot be read).
pub(crate) fn resolved(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// Why nothing can be opened at `path` (`stat`, following symlinks):
/// `None` when something is there.
pub(crate) fn missing(path: &Path) -> Option<io::Error> {
    std::fs::metadata(path).err()
}

/// Whether anything (of any type, a dangling symlink included) is at
/// `path`; a failed call says no.
pub(crate) fn exists_nofollow(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Who owns what is at `path`, not following a symlink there; `None` when
/// nothing is.
pub(crate) fn owned_nofollow(path: &Path) -> io::Result<Option<Owned>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(Owned {
            uid: meta.uid(),
            mode: meta.permissions().mode(),
            is_dir: meta.is_dir(),
        })),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}
