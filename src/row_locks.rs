//! What a row needs before it is acted on beside a microsandbox run
//! directory: its lifecycle lock, held until the row's transaction ends,
//! and its dead runtime's sockets removed.
//!
//! Owns how many locks one transaction may hold (the open-file limit is
//! finite and a batch may be large) and that a lock is never given up
//! before its row's transaction commits or rolls back. No SQL here.

use std::path::Path;

use crate::error::Result;
use std::os::fd::OwnedFd;

use crate::locks::RunDir;
use crate::sockets::{SocketDirs, remove_runtime_sockets};
use crate::sys::flock::open_file_limit;
use crate::trash::Trash;

/// Locks one transaction holds at most, whatever the batch size: a quarter
/// of the soft open-file limit (256 of the usual 1,024), leaving the rest to
/// SQLite, the directories and the caller.
fn lock_cap() -> usize {
    let limit = open_file_limit().unwrap_or(1024);
    usize::try_from(limit / 4).unwrap_or(usize::MAX).max(1)
}

/// What taking a row's lock found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Ours until the transaction ends.
    Taken,
    /// Held elsewhere: a live owner, hands off.
    Owned,
}

/// The lifecycle locks held by the current transaction, and how to reach
/// the run directory and the sandboxes directory.
#[derive(Debug)]
pub(crate) struct RowLocks<'p> {
    run: RunDir<'p>,
    sockets: std::cell::OnceCell<SocketDirs>,
    held: Vec<OwnedFd>,
    cap: usize,
    /// A sandbox whose lock the caller already holds (a runtime cleaning
    /// up after its own sandbox): taking it again would find it held.
    caller_holds: Option<&'p str>,
}

impl<'p> RowLocks<'p> {
    pub(crate) fn new(run_dir: &'p Path) -> RowLocks<'p> {
        RowLocks {
            run: RunDir::new(run_dir),
            sockets: std::cell::OnceCell::new(),
            held: Vec::new(),
            cap: lock_cap(),
            caller_holds: None,
        }
    }

    /// Locks for a caller that holds sandbox `name`'s lock itself.
    pub(crate) fn holding(run_dir: &'p Path, name: &'p str) -> RowLocks<'p> {
        RowLocks {
            caller_holds: Some(name),
            ..RowLocks::new(run_dir)
        }
    }

    /// Takes sandbox `name`'s lock and keeps it until [`RowLocks::release_all`].
    pub(crate) fn claim(&mut self, name: &str) -> Result<Claim> {
        if self.caller_holds == Some(name) {
            return Ok(Claim::Taken);
        }
        Ok(match self.run.try_lock_fd(name)? {
            Some(fd) => {
                self.held.push(fd);
                Claim::Taken
            }
            None => Claim::Owned,
        })
    }

    /// Removes the socket artifacts of sandbox `name`, whose runtime is
    /// dead and whose lock this transaction holds.
    pub(crate) fn remove_sockets(&self, trash: &Trash<'_>, name: &str) -> Result<()> {
        let dirs = match self.sockets.get() {
            Some(dirs) => dirs,
            None => {
                let dirs = SocketDirs::open(&self.run)?;
                self.sockets.get_or_init(|| dirs)
            }
        };
        remove_runtime_sockets(&self.run, dirs, trash.root()?, trash.dir(), name)
    }

    /// Whether the transaction should commit before taking another lock.
    pub(crate) fn full(&self) -> bool {
        self.held.len() >= self.cap
    }

    /// After the row's transaction committed or rolled back: gives every
    /// lock up (closing the files; the files stay).
    pub(crate) fn release_all(&mut self) {
        self.held.clear();
    }
}
