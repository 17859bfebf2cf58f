//! The sandboxes directory as the crate holds it: its path and, opened on
//! first use, its descriptor. The trash and a dead runtime's file removal
//! (`rundir/`) both act relative to this one descriptor, so the path is
//! resolved once per sweep and nothing is reached through a path again.
//!
//! Owns no rule about what is inside, and moves or deletes nothing.

use std::cell::OnceCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::sys::{NOT_A_DIRECTORY, dir};

/// The sandboxes directory: a path the caller chose, and its descriptor.
#[derive(Debug)]
pub(crate) struct SandboxesDir<'p> {
    path: &'p Path,
    /// Opened by the first call that needs it (following a symlink: the
    /// caller chose this path).
    fd: OnceCell<OwnedFd>,
}

impl<'p> SandboxesDir<'p> {
    /// The sandboxes directory at `path`; nothing is opened yet.
    pub(crate) fn new(path: &'p Path) -> SandboxesDir<'p> {
        SandboxesDir {
            path,
            fd: OnceCell::new(),
        }
    }

    /// Its path, for messages and for what is only reached by path.
    pub(crate) fn path(&self) -> &'p Path {
        self.path
    }

    /// Its descriptor, opened on first use.
    pub(crate) fn fd(&self) -> Result<BorrowedFd<'_>> {
        if let Some(fd) = self.fd.get() {
            return Ok(fd.as_fd());
        }
        let fd = match dir::open_dir(self.path) {
            Ok(fd) => fd,
            Err(NOT_A_DIRECTORY) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "sandboxes dir is not a directory",
                ))
                .at(self.path);
            }
            Err(errno) => return Err(errno).at(self.path),
        };
        Ok(self.fd.get_or_init(|| fd).as_fd())
    }

    /// Fails unless the directory exists: without it, a missing sandbox
    /// directory cannot be told from a mistyped path, and rows would be
    /// deleted while their directories live on elsewhere.
    pub(crate) fn check(&self) -> Result<()> {
        self.fd().map(drop)
    }
}
