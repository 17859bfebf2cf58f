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

/// `<run>/sandboxes` and `<run>/agent`, opened once per sweep (`None`
/// where there is no such directory): looking them up again for every row
/// doubled what the lock protocol cost. A dead runtime's sockets were made
/// before it died, so a directory absent when the sweep starts holds none.
#[derive(Debug)]
pub(crate) struct SocketDirs {
    canonical: Option<OwnedFd>,
    legacy: Option<OwnedFd>,
}

impl SocketDirs {
    pub(crate) fn open(run: &RunDir<'_>) -> Result<SocketDirs> {
        let run_fd = run.fd()?;
        let path = run.path();
        Ok(SocketDirs {
            canonical: subdir(run_fd, "sandboxes", &path.join("sandboxes"))?,
            legacy: subdir(run_fd, "agent", &path.join("agent"))?,
        })
    }
}

/// Removes every socket artifact of sandbox `name` (see the module docs).
/// `sandboxes` is the sandboxes directory, open, at path `sandboxes_path`.
pub(crate) fn remove_runtime_sockets(
    run: &RunDir<'_>,
    dirs: &SocketDirs,
    sandboxes: BorrowedFd<'_>,
    sandboxes_path: &Path,
    name: &str,
) -> Result<()> {
    let run_path = run.path();
    if let Some(dir) = &dirs.canonical {
        let h12 = name_hash(name, 12);
        let at = run_path.join("sandboxes").join(&h12);
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
    if let Some(dir) = &dirs.legacy {
        let h16 = name_hash(name, 16);
        let agent = format!("{h16}.sock");
        let control = format!("{h16}.control.sock");
        unlink_all(dir.as_fd(), &[&agent, &control], &run_path.join("agent"))?;
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
