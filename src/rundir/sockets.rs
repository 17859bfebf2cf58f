//! A runtime's socket files: whether anything still answers on them, and
//! removing a dead runtime's, as microsandbox does.
//!
//! Three places, each reached through open directories and never through a
//! symlink (one planted at any step is unlinked or left, never followed):
//! - canonical: `<run>/sandboxes/<H12>/agent.sock`, `control.sock` and
//!   `display.sock`, the `<H12>` directory removed once empty (an `<H12>`
//!   that is not a directory is unlinked itself);
//! - legacy: `<run>/agent/<H16>.sock` and `<run>/agent/<H16>.control.sock`;
//! - fallback: `<sandboxes_dir>/<name>/runtime/agent.sock` and
//!   `agent.control.sock`.
//!
//! Missing is success. Where msb fails, so does this (the row waits, and
//! every place is still tried): a symlink or a file where `<run>/sandboxes`
//! or `<run>/agent` should be, a file where `<sandbox>` or
//! `<sandbox>/runtime` should be, an `<H12>` directory still holding
//! anything once its sockets are gone. A symlink at `<sandbox>` or
//! `<sandbox>/runtime` msb follows; this crate follows none, and skips it. Only called for a runtime already judged dead whose
//! locks this process holds: a live runtime's files are never touched. Each
//! step is O(1) (an unlink, an rmdir of an empty directory): it runs under
//! the catalog's write lock. No catalog here; the bootstrap root a reap
//! also takes goes through the trash (`sandboxes::trash`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{IoContext, Result};
use crate::rundir::locks::{RunDir, name_hash};
use crate::sys::c_name;
use crate::sys::dir::{
    Subdir, not_a_directory, open_subdir, remove_empty_dir_if_present, unlink_entry,
};
use crate::sys::socket::{Knock, knock};

/// How long every endpoint of one sandbox may take to answer, in all, as
/// microsandbox allows: past it the start counts as live.
const ENDPOINT_PROBE_BUDGET: Duration = Duration::from_millis(50);

/// The pause before asking a listener with a full queue again.
const BUSY_RETRY: Duration = Duration::from_millis(5);

/// The socket files a canonical `<H12>` directory may hold.
pub(crate) const CANONICAL_SOCKETS: [&str; 3] = ["agent.sock", "control.sock", "display.sock"];

/// Opens `<sandbox>` or `<sandbox>/runtime` (`name` in `parent`) without
/// following a symlink; `None` when nothing is there, or a symlink: msb
/// follows one there and goes on, this crate never follows one, and
/// nothing of the sandbox's is behind it. A file where the directory
/// should be is an error, as it is for msb (`ENOTDIR`): the row waits.
fn subdir(parent: BorrowedFd<'_>, name: &str, at: &Path) -> Result<Option<OwnedFd>> {
    match open_subdir(parent, &c_name(name, || at.to_owned())?).at(at)? {
        Subdir::Open(fd) => Ok(Some(fd)),
        Subdir::Missing | Subdir::Symlink => Ok(None),
        Subdir::NotADir => Err(not_a_directory()).at(at),
    }
}

/// Unlinks each of `names` in `dir` (at path `at`); missing is fine.
fn unlink_all(dir: BorrowedFd<'_>, names: &[&str], at: &Path) -> Result<()> {
    for name in names {
        let path = at.join(name);
        unlink_entry(dir, &c_name(name, || path.clone())?).at(&path)?;
    }
    Ok(())
}

/// `<run>/sandboxes` and `<run>/agent`, opened once per sweep (`None`
/// where there is no such directory): looking them up again for every row
/// doubled what the lock protocol cost. A dead runtime's sockets were made
/// before it died, so a directory absent when the sweep starts holds none.
/// One that is a symlink or a file is kept as that: each row's removal
/// fails on it (the row waits), and still tries the other places.
#[derive(Debug)]
pub(crate) struct SocketDirs {
    canonical: Place,
    legacy: Place,
}

/// One of the run directory's socket folders, as the sweep found it.
#[derive(Debug)]
enum Place {
    Open(OwnedFd),
    Absent,
    /// A symlink or a file: never followed.
    NotADir,
}

impl Place {
    fn open(run: BorrowedFd<'_>, name: &str, at: &Path) -> Result<Place> {
        Ok(
            match open_subdir(run, &c_name(name, || at.to_owned())?).at(at)? {
                Subdir::Open(fd) => Place::Open(fd),
                Subdir::Missing => Place::Absent,
                Subdir::Symlink | Subdir::NotADir => Place::NotADir,
            },
        )
    }

    /// The folder, `None` when absent; an error when it is no directory.
    fn get(&self, at: &Path) -> Result<Option<BorrowedFd<'_>>> {
        match self {
            Place::Open(fd) => Ok(Some(fd.as_fd())),
            Place::Absent => Ok(None),
            Place::NotADir => Err(not_a_directory()).at(at),
        }
    }
}

impl SocketDirs {
    pub(crate) fn open(run: &RunDir<'_>) -> Result<SocketDirs> {
        let run_fd = run.fd()?;
        let path = run.path();
        Ok(SocketDirs {
            canonical: Place::open(run_fd, "sandboxes", &path.join("sandboxes"))?,
            legacy: Place::open(run_fd, "agent", &path.join("agent"))?,
        })
    }
}

/// Every path a runtime of sandbox `name` may listen on, in microsandbox's
/// order (`display.sock` is not an endpoint: nothing connects to it
/// first); the fallback pair only when the sandboxes directory is known.
fn endpoints(run: &Path, sandboxes: Option<&Path>, name: &str) -> Vec<PathBuf> {
    let canonical = run.join("sandboxes").join(name_hash(name, 12));
    let h16 = name_hash(name, 16);
    let legacy = run.join("agent");
    let mut paths = vec![
        canonical.join("agent.sock"),
        canonical.join("control.sock"),
        legacy.join(format!("{h16}.sock")),
        legacy.join(format!("{h16}.control.sock")),
    ];
    if let Some(sandboxes) = sandboxes {
        let fallback = sandboxes.join(name).join("runtime");
        paths.push(fallback.join("agent.sock"));
        paths.push(fallback.join("agent.control.sock"));
    }
    paths
}

/// Whether a runtime of sandbox `name` may still be listening: `true` when
/// any endpoint accepts a connection, or when they have not all answered
/// within [`ENDPOINT_PROBE_BUDGET`] (a busy runtime is a live one).
/// Refused, missing or not a socket is absent. A start recorded with no run
/// is judged by this, under its creation and lifecycle locks, because a
/// runtime older than those locks owns only its endpoints.
///
/// # Errors
///
/// Any other failure (a permission error, say): no evidence either way, so
/// the caller keeps the row.
pub(crate) fn may_be_live(run: &Path, sandboxes: Option<&Path>, name: &str) -> Result<bool> {
    let deadline = Instant::now() + ENDPOINT_PROBE_BUDGET;
    for path in endpoints(run, sandboxes, name) {
        loop {
            match knock(&path) {
                Ok(Knock::Answered) => return Ok(true),
                Ok(Knock::Absent) => break,
                Ok(Knock::Busy) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(true);
                    }
                    std::thread::sleep(BUSY_RETRY.min(deadline - now));
                }
                Err(errno) => return Err(errno).at(&path),
            }
        }
        if Instant::now() >= deadline {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes every socket artifact of sandbox `name` (see the module docs).
/// `sandboxes` is the sandboxes directory, open, at path `sandboxes_path`.
/// Each place is tried even after another failed, as msb does, and the
/// first failure is returned: the row waits for a retry. On success, the
/// sandbox's directory as it opened it (no symlink followed; `None` when
/// there is none), for the caller's next step in it.
pub(crate) fn remove_runtime_files(
    run: &RunDir<'_>,
    dirs: &SocketDirs,
    sandboxes: BorrowedFd<'_>,
    sandboxes_path: &Path,
    name: &str,
) -> Result<Option<OwnedFd>> {
    let run_path = run.path();
    let canonical = || -> Result<()> {
        let Some(dir) = dirs.canonical.get(&run_path.join("sandboxes"))? else {
            return Ok(());
        };
        let h12 = name_hash(name, 12);
        let at = run_path.join("sandboxes").join(&h12);
        let c_h12 = c_name(&h12, || at.clone())?;
        match open_subdir(dir, &c_h12).at(&at)? {
            Subdir::Open(fd) => {
                unlink_all(fd.as_fd(), &CANONICAL_SOCKETS, &at)?;
                drop(fd);
                // Anything else in it is not a runtime's to lose: msb's
                // `rmdir` fails there too, and the row waits.
                remove_empty_dir_if_present(dir, &c_h12).at(&at)
            }
            Subdir::Missing => Ok(()),
            // Not a directory: the entry itself goes, never followed.
            Subdir::Symlink | Subdir::NotADir => unlink_entry(dir, &c_h12).at(&at),
        }
    };
    let legacy = || -> Result<()> {
        let at = run_path.join("agent");
        let Some(dir) = dirs.legacy.get(&at)? else {
            return Ok(());
        };
        let h16 = name_hash(name, 16);
        let agent = format!("{h16}.sock");
        let control = format!("{h16}.control.sock");
        unlink_all(dir, &[&agent, &control], &at)
    };
    let fallback = || -> Result<Option<OwnedFd>> {
        let at = sandboxes_path.join(name);
        let Some(sandbox) = subdir(sandboxes, name, &at)? else {
            return Ok(None);
        };
        let runtime = at.join("runtime");
        if let Some(dir) = subdir(sandbox.as_fd(), "runtime", &runtime)? {
            unlink_all(dir.as_fd(), &["agent.sock", "agent.control.sock"], &runtime)?;
        }
        Ok(Some(sandbox))
    };
    let (legacy, canonical, fallback) = (legacy(), canonical(), fallback());
    legacy.and(canonical).and(fallback)
}
