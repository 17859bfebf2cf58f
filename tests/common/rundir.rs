//! Where microsandbox keeps a sandbox's locks and runtime sockets, as the
//! tests name them: computed from the crate's own `lifecycle_lock_path`
//! (so the hash is the crate's, checked against microsandbox's vectors in
//! its unit tests). Test-only.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use sandbox_sweep::rundir::lifecycle_lock_path;

/// `H16` of a name: 32 lowercase hex digits.
pub fn h16(name: &str) -> String {
    let path = lifecycle_lock_path(Path::new("/"), name);
    let file = path.file_name().and_then(|f| f.to_str()).expect("utf8");
    file.trim_end_matches(".lock").to_owned()
}

/// Lock `<run>/<dir>/<H16><suffix>` of sandbox `name`.
pub fn lock_at(run: &Path, dir: &str, name: &str, suffix: &str) -> PathBuf {
    run.join(dir).join(format!("{}{suffix}", h16(name)))
}

/// Every socket path a runtime of sandbox `name` may leave, in
/// microsandbox's order: canonical agent and control, legacy agent and
/// control, fallback agent and control.
pub fn socket_paths(run: &Path, sandboxes: &Path, name: &str) -> Vec<PathBuf> {
    let h16 = h16(name);
    let canonical = run.join("sandboxes").join(&h16[..24]);
    let fallback = sandboxes.join(name).join("runtime");
    vec![
        canonical.join("agent.sock"),
        canonical.join("control.sock"),
        run.join("agent").join(format!("{h16}.sock")),
        run.join("agent").join(format!("{h16}.control.sock")),
        fallback.join("agent.sock"),
        fallback.join("agent.control.sock"),
    ]
}

/// A listener at `path` whose queue is full: a non-blocking connect
/// says `EAGAIN`. Its descriptors (listener first, then the queued
/// connections), which keep it so until dropped.
pub fn busy_listener(path: &Path) -> Vec<OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
    };
    let addr = UnixAddr::new(path).expect("address");
    let open = || {
        socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket")
    };
    let listener = open();
    bind(listener.as_raw_fd(), &addr).expect("bind");
    listen(&listener, Backlog::new(0).expect("backlog")).expect("listen");
    let mut fds = vec![listener];
    for _ in 0..64 {
        let client = open();
        match connect(client.as_raw_fd(), &addr) {
            Ok(()) => fds.push(client),
            Err(nix::errno::Errno::EAGAIN) => return fds,
            Err(errno) => panic!("connect to {}: {errno}", path.display()),
        }
    }
    panic!("the queue at {} never filled", path.display());
}
