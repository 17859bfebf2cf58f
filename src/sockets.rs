//! A dead runtime's socket files, removed as microsandbox removes them.
//!
//! Three places, each reached through open directories and never through a
//! symlink (one planted at any step is unlinked or left, never followed):
//! - canonical: `<run>/sandboxes/<H12>/agent.sock` and `control.sock`, the
//!   `<H12>` directory removed once empty (an `<H12>` that is not a
//!   directory is unlinked itself);
//! - legacy: `<run>/agent/<H16>.sock` and `<run>/agent/<H16>.control.sock`;
//! - fallback: `<sandboxes_dir>/<name>/runtime/agent.sock` and
//!   `agent.control.sock`.
//!
//! Missing is success. Only called for a runtime already judged dead whose
//! lifecycle lock this process holds: a live runtime's sockets are never
//! touched. No catalog here.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use crate::error::{IoContext, Result};
use crate::locks::{RunDir, name_hash};
use crate::sys::dir::{open_dir_nofollow, remove_empty_dir, unlink_entry};

/// `name` as a C string, or an error about `at`.
fn c(name: &str, at: &Path) -> Result<CString> {
    CString::new(name).map_err(io::Error::other).at(at)
}

/// Opens directory `name` in `parent` without following a symlink; `None`
/// when there is no directory there (missing, a symlink, a file).
fn subdir(parent: BorrowedFd<'_>, name: &str, at: &Path) -> Result<Option<OwnedFd>> {
    match open_dir_nofollow(parent, &c(name, at)?) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => Ok(None),
        Err(errno) => Err(io::Error::from(errno)).at(at),
    }
}

/// Unlinks each of `names` in `dir` (at path `at`); missing is fine.
fn unlink_all(dir: BorrowedFd<'_>, names: &[&str], at: &Path) -> Result<()> {
    for name in names {
        let path = at.join(name);
        unlink_entry(dir, &c(name, &path)?)
            .map_err(io::Error::from)
            .at(&path)?;
    }
    Ok(())
}

/// Removes every socket artifact of sandbox `name` (see the module docs).
/// `sandboxes` is the sandboxes directory, open, at path `sandboxes_path`.
pub(crate) fn remove_runtime_sockets(
    run: &RunDir<'_>,
    sandboxes: BorrowedFd<'_>,
    sandboxes_path: &Path,
    name: &str,
) -> Result<()> {
    let run_fd = run.fd()?;
    let run_path = run.path();

    let canonical = run_path.join("sandboxes");
    if let Some(dir) = subdir(run_fd, "sandboxes", &canonical)? {
        let h12 = name_hash(name, 12);
        let at = canonical.join(&h12);
        let c_h12 = c(&h12, &at)?;
        match open_dir_nofollow(dir.as_fd(), &c_h12) {
            Ok(fd) => {
                unlink_all(fd.as_fd(), &["agent.sock", "control.sock"], &at)?;
                drop(fd);
                match remove_empty_dir(dir.as_fd(), &c_h12) {
                    Ok(()) | Err(Errno::ENOENT | Errno::ENOTEMPTY | Errno::EEXIST) => {}
                    Err(errno) => return Err(io::Error::from(errno)).at(&at),
                }
            }
            Err(Errno::ENOENT) => {}
            // Not a directory: the entry itself goes, never followed.
            Err(Errno::ELOOP | Errno::ENOTDIR) => unlink_entry(dir.as_fd(), &c_h12)
                .map_err(io::Error::from)
                .at(&at)?,
            Err(errno) => return Err(io::Error::from(errno)).at(&at),
        }
    }

    let legacy = run_path.join("agent");
    if let Some(dir) = subdir(run_fd, "agent", &legacy)? {
        let h16 = name_hash(name, 16);
        let agent = format!("{h16}.sock");
        let control = format!("{h16}.control.sock");
        unlink_all(dir.as_fd(), &[&agent, &control], &legacy)?;
    }

    let sandbox = sandboxes_path.join(name);
    if let Some(dir) = subdir(sandboxes, name, &sandbox)? {
        let runtime = sandbox.join("runtime");
        if let Some(dir) = subdir(dir.as_fd(), "runtime", &runtime)? {
            unlink_all(dir.as_fd(), &["agent.sock", "agent.control.sock"], &runtime)?;
        }
    }
    Ok(())
}
