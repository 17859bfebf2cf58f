//! Asking a Unix socket path whether anything accepts connections there,
//! without waiting on it.
//!
//! Mechanism only: which paths a runtime listens on, and how long to keep
//! asking, is `sockets`'s. The socket is non-blocking, so a listener whose
//! queue is full answers `EAGAIN` at once instead of holding the caller.
//! Nothing here writes to, or removes, the path.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use nix::sys::stat::{fstat, stat};

/// What one connect attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Knock {
    /// A listener accepted (or queued) the connection: something is there.
    Answered,
    /// Nothing can be listening: missing, not a socket, refused, or a path
    /// too long to address.
    Absent,
    /// A listener is there but its queue is full: ask again.
    Busy,
}

/// One non-blocking `connect` to `addr` from a new stream socket, closed
/// after: the inner result is the answer. A socket that could not be made
/// is the outer error, never read as an answer.
fn connect_once(addr: &UnixAddr) -> nix::Result<nix::Result<()>> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    Ok(connect(fd.as_raw_fd(), addr))
}

/// One non-blocking `connect` to the socket at `path`. Any other failure
/// (a permission error, a failed `socket`) is `Err`: no evidence either way.
pub(crate) fn knock(path: &Path) -> nix::Result<Knock> {
    let addr = match UnixAddr::new(path) {
        Ok(addr) => addr,
        Err(Errno::ENAMETOOLONG) => return Ok(Knock::Absent),
        Err(errno) => return Err(errno),
    };
    match connect_once(&addr)? {
        Ok(()) => Ok(Knock::Answered),
        Err(Errno::EAGAIN) => Ok(Knock::Busy),
        Err(
            Errno::ECONNREFUSED
            | Errno::ENOENT
            | Errno::ENOTSOCK
            | Errno::EPROTOTYPE
            | Errno::ELOOP
            | Errno::ENOTDIR,
        ) => Ok(Knock::Absent),
        Err(errno) => Err(errno),
    }
}

/// Whether nothing listens on entry `name` of directory `dir`: `Ok(true)`
/// only when a connect is refused (`ECONNREFUSED`: no listener, or not a
/// socket) or finds no entry (`ENOENT`). An accepted or queued connection,
/// or a full queue, is `Ok(false)`; any other failure is `Err`, which
/// proves nothing.
///
/// The address is `/proc/self/fd/<dir>/<name>`, so the probe asks the very
/// directory the caller holds open (a path could have been swapped since)
/// and always fits a socket address. That path is used only after
/// `stat` through it finds the same directory as `fstat` of `dir`: without
/// `/proc` it would fail `ENOENT`, which must not read as "no listener".
pub(crate) fn nothing_listens_at(dir: BorrowedFd<'_>, name: &CStr) -> nix::Result<bool> {
    let through = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let (held, seen) = (fstat(dir)?, stat(&through)?);
    if (held.st_dev, held.st_ino) != (seen.st_dev, seen.st_ino) {
        return Err(Errno::ESTALE);
    }
    let addr = UnixAddr::new(&through.join(std::ffi::OsStr::from_bytes(name.to_bytes())))?;
    match connect_once(&addr)? {
        Ok(()) | Err(Errno::EAGAIN) => Ok(false),
        Err(Errno::ECONNREFUSED | Errno::ENOENT) => Ok(true),
        Err(errno) => Err(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_answers_and_leftovers_do_not() -> nix::Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = dir.path().join("live.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&live).expect("bind");
        assert_eq!(knock(&live)?, Knock::Answered);
        // A socket file whose listener is gone refuses.
        let dead = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
        assert_eq!(knock(&dead)?, Knock::Absent);
        let file = dir.path().join("plain");
        std::fs::write(&file, b"").expect("write");
        assert_eq!(knock(&file)?, Knock::Absent);
        assert_eq!(knock(&dir.path().join("missing"))?, Knock::Absent);
        assert_eq!(knock(&dir.path().join("x".repeat(200)))?, Knock::Absent);
        Ok(())
    }

    #[test]
    fn only_a_refusal_or_no_entry_proves_that_nothing_listens() -> nix::Result<()> {
        let dir = tempfile::tempdir().expect("tempdir");
        let _live =
            std::os::unix::net::UnixListener::bind(dir.path().join("live.sock")).expect("bind");
        drop(std::os::unix::net::UnixListener::bind(dir.path().join("dead.sock")).expect("bind"));
        std::fs::write(dir.path().join("plain"), b"").expect("write");
        std::os::unix::fs::symlink(dir.path().join("live.sock"), dir.path().join("link"))
            .expect("symlink");
        // Deep enough that the socket's own path would not fit an address.
        let deep = dir.path().join("d".repeat(120)).join("e".repeat(120));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let deep_fd = crate::sys::dir::open_dir(&deep)?;
        let _deep_live = std::os::unix::net::UnixListener::bind(format!(
            "/proc/self/fd/{}/agent.sock",
            deep_fd.as_raw_fd()
        ))
        .expect("bind through /proc");
        let fd = crate::sys::dir::open_dir(dir.path())?;
        use std::os::fd::AsFd;
        assert!(!nothing_listens_at(fd.as_fd(), c"live.sock")?);
        assert!(
            !nothing_listens_at(fd.as_fd(), c"link")?,
            "a symlink to a listener"
        );
        assert!(nothing_listens_at(fd.as_fd(), c"dead.sock")?);
        assert!(nothing_listens_at(fd.as_fd(), c"plain")?);
        assert!(nothing_listens_at(fd.as_fd(), c"missing")?);
        assert!(!nothing_listens_at(deep_fd.as_fd(), c"agent.sock")?);
        Ok(())
    }
}
