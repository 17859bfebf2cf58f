//! Reading a directory's entries from an open descriptor, closing it
//! without ever panicking.
//!
//! `nix::dir::Dir` does this well, but its `Drop` panics when `closedir`
//! fails with `EBADF`, and nothing in this crate may panic whatever a system
//! call returns. This is the one module with `unsafe` code: `fdopendir`,
//! `readdir` and `closedir`, each with the invariant that makes it sound.
//! No policy here: callers decide what to do with the names.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::libc;

/// An open directory stream. Owns its descriptor; dropping it closes both
/// and ignores what `closedir` says (the descriptor is gone either way).
#[derive(Debug)]
pub(crate) struct Listing {
    // Invariant: a stream `fdopendir` returned, not yet closed.
    stream: NonNull<libc::DIR>,
}

impl Listing {
    /// Starts reading the directory `fd` refers to, taking ownership of it.
    pub(crate) fn new(fd: OwnedFd) -> nix::Result<Listing> {
        let raw = fd.into_raw_fd();
        // SAFETY: `raw` is an open descriptor we own (just released from an
        // `OwnedFd`); on success the stream owns it from now on.
        let stream = unsafe { libc::fdopendir(raw) };
        match NonNull::new(stream) {
            Some(stream) => Ok(Listing { stream }),
            None => {
                let errno = Errno::last();
                // Still ours on failure: close it (its error changes nothing).
                let _ = nix::unistd::close(raw);
                Err(errno)
            }
        }
    }

    /// The next name, `.` and `..` skipped; `None` at the end.
    pub(crate) fn next_name(&mut self) -> Option<nix::Result<CString>> {
        loop {
            Errno::clear();
            // SAFETY: `stream` is open (the invariant) and used by `&mut self`
            // only, so no other call on it runs meanwhile.
            let entry = unsafe { libc::readdir(self.stream.as_ptr()) };
            if entry.is_null() {
                return match Errno::last_raw() {
                    0 => None,
                    raw => Some(Err(Errno::from_raw(raw))),
                };
            }
            // SAFETY: a non-null `readdir` result points to an entry whose
            // `d_name` is NUL-terminated and valid until the next call on the
            // stream; it is copied out before that.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            if name != c"." && name != c".." {
                return Some(Ok(name.to_owned()));
            }
        }
    }
}

impl AsFd for Listing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the stream is open, so its descriptor is, and it stays open
        // as long as `self` (the borrow's lifetime) is not dropped.
        unsafe { BorrowedFd::borrow_raw(libc::dirfd(self.stream.as_ptr())) }
    }
}

impl AsRawFd for Listing {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        // SAFETY: the stream is open (the invariant) and is never used again.
        // Its result is ignored: after `closedir` the descriptor is released
        // whatever it returns, and a panic here is exactly what this type is for
        // avoiding.
        let _ = unsafe { libc::closedir(self.stream.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_without_dot_entries_and_then_the_end() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        for name in ["a", "b c", "ü"] {
            std::fs::write(dir.path().join(name), b"x")?;
        }
        let fd = crate::sys::dir::open_dir(dir.path())?;
        let mut listing = Listing::new(fd)?;
        let mut names = Vec::new();
        while let Some(name) = listing.next_name() {
            names.push(name?.into_string().expect("utf8"));
        }
        names.sort();
        assert_eq!(names, ["a", "b c", "ü"]);
        assert!(listing.next_name().is_none());
        Ok(())
    }

    #[test]
    fn a_descriptor_that_is_not_a_directory_is_refused_and_closed() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = std::fs::File::create(dir.path().join("f"))?;
        let err = Listing::new(OwnedFd::from(file)).expect_err("not a directory");
        assert_eq!(err, Errno::ENOTDIR);
        Ok(())
    }
}
