//! What a row needs before it is acted on beside a microsandbox run
//! directory: its locks (creation and lifecycle for a reconcile,
//! snapshot-lineage and lifecycle for a cleanup), held until the row's
//! transaction ends, and its dead runtime's sockets removed. Reconcile and
//! cleanup share these steps, log lines included.
//!
//! Owns how many locks one transaction may hold (the open-file limit is
//! finite and a batch may be large), that a lock of a row that changed is
//! never given up before its transaction commits or rolls back, and that
//! a row left alone gives its locks back at once. No SQL here.

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::error::Result;
use crate::rundir::locks::{HeldLocks, LockKind, RunDir, h16};
use crate::rundir::sockets::{SocketDirs, may_be_live, remove_runtime_files};
use crate::sandboxes::dir::SandboxesDir;
use crate::sys::flock::open_file_limit;

/// Locks one transaction holds at most, whatever the batch size: a quarter
/// of the soft open-file limit (256 of the usual 1,024), leaving the rest to
/// SQLite, the directories and the caller.
fn lock_cap() -> usize {
    let limit = open_file_limit().unwrap_or(1024);
    usize::try_from(limit / 4).unwrap_or(usize::MAX).max(1)
}

/// Why a row is left alone before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// This lock is held elsewhere: a live owner, hands off. Not an error.
    Owned(LockKind),
    /// A lock could not be taken (a symlink, not a file, a failed call):
    /// nothing is known, so nothing is written. An error.
    LockFailed,
    /// The sockets (or the bootstrap root) were not removed: the row stays
    /// as it is, to be retried. An error.
    ArtifactsFailed,
}

/// Which locks a step takes, in microsandbox's order.
pub(crate) const RECONCILE_LOCKS: [LockKind; 2] = [LockKind::Creation, LockKind::Lifecycle];

/// Which locks a cleanup takes: a snapshot capture publishing the
/// sandbox's storage first, then its lifecycle (microsandbox 0.7.13).
pub(crate) const CLEANUP_LOCKS: [LockKind; 2] = [LockKind::SnapshotLineage, LockKind::Lifecycle];

/// The lifecycle locks held by the current transaction, and how to reach
/// the run directory and the sandboxes directory.
#[derive(Debug)]
pub(crate) struct RowLocks<'p> {
    run: RunDir<'p>,
    sockets: std::cell::OnceCell<SocketDirs>,
    held: Vec<OwnedFd>,
    /// For a dry run: who holds which lock, read once.
    seen: std::cell::OnceCell<Option<HeldLocks>>,
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
            seen: std::cell::OnceCell::new(),
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

    /// Takes each of `kinds` for sandbox `name` (row `id`), in order, and
    /// keeps them until [`RowLocks::release_all`]. When one is held
    /// elsewhere or cannot be taken, those already taken for this row are
    /// given up again and the refusal is logged.
    pub(crate) fn claim(&mut self, kinds: &[LockKind], id: i64, name: &str) -> Option<Refusal> {
        let mark = self.held.len();
        let hash = h16(name);
        for &kind in kinds {
            if kind == LockKind::Lifecycle && self.caller_holds == Some(name) {
                continue;
            }
            let refusal = match self.run.try_lock_hashed(kind, name, &hash) {
                Ok(Some(fd)) => {
                    self.held.push(fd);
                    continue;
                }
                Ok(None) => {
                    log::info!(
                        "sandbox {name:?} (id {id}): its {} is held; left alone",
                        kind.as_str()
                    );
                    Refusal::Owned(kind)
                }
                Err(err) => {
                    log::warn!(target: crate::error::LOG_KEPT, "sandbox {name:?} (id {id}): {err:#}; left alone");
                    Refusal::LockFailed
                }
            };
            self.held.truncate(mark);
            return Some(refusal);
        }
        None
    }

    /// For a dry run: the refusal [`RowLocks::claim`] would meet now, read
    /// from `/proc/locks` (once per pass) instead of taken, since a dry run
    /// writes nothing (taking a lock creates its file when it is missing)
    /// and must not make a runtime's own non-blocking `flock` fail. Where
    /// `/proc/locks` cannot be read, nothing is known to be held.
    pub(crate) fn held_elsewhere(
        &self,
        kinds: &[LockKind],
        id: i64,
        name: &str,
    ) -> Option<Refusal> {
        let held = self
            .seen
            .get_or_init(|| HeldLocks::read(self.run.path()))
            .as_ref()?;
        let hash = h16(name);
        let kind = kinds.iter().copied().find(|&kind| {
            !(kind == LockKind::Lifecycle && self.caller_holds == Some(name))
                && held.holds(kind, &hash)
        })?;
        log::info!(
            "sandbox {name:?} (id {id}): its {} is held; a sweep would leave it alone",
            kind.as_str()
        );
        Some(Refusal::Owned(kind))
    }

    /// Whether the run directory can be opened (it is, once, for the sweep).
    pub(crate) fn check(&self) -> Result<()> {
        self.run.fd().map(|_| ())
    }

    fn socket_dirs(&self) -> Result<&SocketDirs> {
        if let Some(dirs) = self.sockets.get() {
            return Ok(dirs);
        }
        let dirs = SocketDirs::open(&self.run)?;
        Ok(self.sockets.get_or_init(|| dirs))
    }

    /// Removes the socket artifacts of sandbox `name` (row `id`), whose
    /// runtime is dead and whose locks this transaction holds; the
    /// sandbox's directory as it was opened on the way (`None`: there is
    /// none). A failure is logged: the row must then be kept for a retry.
    pub(crate) fn remove_artifacts(
        &self,
        sandboxes: &SandboxesDir<'_>,
        id: i64,
        name: &str,
    ) -> std::result::Result<Option<OwnedFd>, Refusal> {
        let removed = self.socket_dirs().and_then(|dirs| {
            remove_runtime_files(&self.run, dirs, sandboxes.fd()?, sandboxes.path(), name)
        });
        match removed {
            Ok(sandbox) => Ok(sandbox),
            Err(err) => {
                log::warn!(
                    target: crate::error::LOG_KEPT,
                    "sandbox {name:?} (id {id}): runtime files not removed, row kept: {err:#}"
                );
                Err(Refusal::ArtifactsFailed)
            }
        }
    }

    /// Whether anything still answers on sandbox `name`'s runtime
    /// endpoints, the fallback ones in `sandboxes` when known (see
    /// [`may_be_live`]).
    pub(crate) fn may_be_live(&self, sandboxes: Option<&Path>, name: &str) -> Result<bool> {
        may_be_live(self.run.path(), sandboxes, name)
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

    /// Where the next row's locks start: [`RowLocks::release_since`] gives
    /// back only that row's.
    pub(crate) fn mark(&self) -> usize {
        self.held.len()
    }

    /// Gives back the locks taken since `mark`: a row left alone needs
    /// none of them until the batch commits, and a runtime's own
    /// non-blocking attempt on that sandbox must not fail meanwhile.
    pub(crate) fn release_since(&mut self, mark: usize) {
        self.held.truncate(mark);
    }
}
