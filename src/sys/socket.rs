//! Asking a Unix socket path whether anything accepts connections there,
//! without waiting on it.
//!
//! Mechanism only: which paths a runtime listens on, and how long to keep
//! asking, is `sockets`'s. The socket is non-blocking, so a listener whose
//! queue is full answers `EAGAIN` at once instead of holding the caller.
//! Nothing here writes to, or removes, the path.

use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};

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

/// One non-blocking `connect` to the socket at `path`. Any other failure
/// (a permission error, a failed `socket`) is `Err`: no evidence either way.
pub(crate) fn knock(path: &Path) -> nix::Result<Knock> {
    let addr = match UnixAddr::new(path) {
        Ok(addr) => addr,
        Err(Errno::ENAMETOOLONG) => return Ok(Knock::Absent),
        Err(errno) => return Err(errno),
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    match connect(fd.as_raw_fd(), &addr) {
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
}
