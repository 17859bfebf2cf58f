//! Removing orphans safely: only what a scan found, only after every
//! check has been made again under the catalog's write lock.
//!
//! A sandbox directory goes only when it is a plain directory directly
//! inside the sandboxes directory (a symlink there is unlinked, never
//! followed), its name is a valid name, it is older than the grace
//! period, its creation, lifecycle and snapshot-lineage locks are free
//! (beside a run directory), and inside one `BEGIN IMMEDIATE` transaction
//! no row names it. It moves into the trash there, on the sweep's
//! crash-safe path, and is deleted after. Lock files are never deleted.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::scan::row_hashes;
use super::{Orphan, OrphanKind, Orphans};
use crate::catalog::Catalog;
use crate::catalog::sql::SANDBOX_NAMED;
use crate::error::{Error, IoContext, Result};
use crate::rundir::locks::{LockKind, h16};
use crate::rundir::row_locks::{Refusal, RowLocks};
use crate::sandboxes::names::validate_name;
use crate::sandboxes::trash::Trash;
use crate::sys::dir::{self, Subdir, open_subdir, remove_tree_at, unlink_entry};

/// Which locks an orphan's removal takes, as a launcher, a runtime and a
/// snapshot capture would hold them.
const ORPHAN_LOCKS: [LockKind; 3] = [
    LockKind::Creation,
    LockKind::Lifecycle,
    LockKind::SnapshotLineage,
];

/// Why an orphan was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kept {
    /// Younger than the grace period: it may be a sandbox being made.
    Young,
    /// A creation, lifecycle or snapshot-lineage lock for it is held: an
    /// owner, hands off.
    LockHeld,
    /// A row names it now (made since the scan).
    Named,
    /// Its name is not one a sandbox may have; nothing of ours.
    InvalidName,
    /// A lock file: never deleted (a runtime may be about to take it).
    LockFile,
    /// A trash leftover: the next sweep's purge deletes it.
    Trash,
    /// The budget ran out before it was looked at.
    OutOfTime,
    /// A call failed (the message says which); nothing was removed.
    Failed(String),
}

impl Kept {
    /// A short lowercase name, as the CLI and JSON show it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kept::Young => "young",
            Kept::LockHeld => "lock_held",
            Kept::Named => "named",
            Kept::InvalidName => "invalid_name",
            Kept::LockFile => "lock_file",
            Kept::Trash => "trash",
            Kept::OutOfTime => "out_of_time",
            Kept::Failed(_) => "failed",
        }
    }
}

/// What a removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reclaimed {
    /// What the scan found.
    pub scan: Orphans,
    /// Removed (symlinks unlinked, directories moved to the trash and
    /// deleted or left there for the next sweep).
    pub removed: Vec<Orphan>,
    /// Kept, and why.
    pub kept: Vec<(Orphan, Kept)>,
    /// Removed directories whose deletion the budget cut short: they wait
    /// in the trash for the next sweep's purge.
    pub deferred: u64,
}

impl Reclaimed {
    /// The allocated bytes of everything removed.
    pub fn removed_bytes(&self) -> u64 {
        self.removed.iter().map(|o| o.bytes).sum()
    }
}

/// One removal in progress.
struct Removal<'a> {
    catalog: &'a Catalog,
    trash: Trash<'a>,
    run: Option<&'a Path>,
    grace: Duration,
    deadline: Instant,
    done: Reclaimed,
    /// Socket directories and sockets to remove together, last.
    runtime: Vec<Orphan>,
}

impl Removal<'_> {
    fn keep(&mut self, orphan: Orphan, why: Kept) {
        self.done.kept.push((orphan, why));
    }

    /// Whether a row names `name` (as TEXT, or the same bytes as a BLOB),
    /// asked inside the caller's transaction.
    fn named(&self, name: &[u8]) -> Result<bool> {
        super::scan::is_named(&mut self.catalog.conn.prepare_cached(SANDBOX_NAMED)?, name)
    }

    fn sandbox_dir(&mut self, orphan: Orphan) -> Result<()> {
        let Some(name) = orphan
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| validate_name(n).is_ok())
            .map(str::to_owned)
        else {
            self.keep(orphan, Kept::InvalidName);
            return Ok(());
        };
        let mut locks = self.run.map(RowLocks::new);
        if let Some(locks) = locks.as_mut() {
            match locks.claim(&ORPHAN_LOCKS, 0, &name) {
                None => {}
                Some(Refusal::Owned(_)) => {
                    self.keep(orphan, Kept::LockHeld);
                    return Ok(());
                }
                Some(_) => {
                    self.keep(orphan, Kept::Failed("its locks could not be taken".into()));
                    return Ok(());
                }
            }
        }
        let tx = self.catalog.immediate()?;
        if self.named(name.as_bytes())? {
            self.keep(orphan, Kept::Named);
            return Ok(());
        }
        let root = self.trash.root()?;
        let c_name = CString::new(name.as_bytes())
            .map_err(std::io::Error::other)
            .at(&orphan.path)?;
        let is_dir = matches!(
            open_subdir(root, &c_name).at(&orphan.path)?,
            Subdir::Open(_)
        );
        if !is_dir {
            // A symlink (or what replaced the directory): the entry itself
            // goes, never what it points at.
            unlink_entry(root, &c_name).at(&orphan.path)?;
            drop(tx);
            self.done.removed.push(orphan);
            return Ok(());
        }
        let moved = self
            .trash
            .move_orphan(&name, &String::from_utf8_lossy(&h16(&name)))?;
        let ended = tx.commit().map_err(Error::from_sqlite);
        if let Some(moved) = self.trash.settle(ended, moved)? {
            if !self.trash.discard(moved.entry(), Some(self.deadline)) {
                self.done.deferred += 1;
            }
            self.done.removed.push(orphan);
        }
        drop(locks);
        Ok(())
    }

    /// Socket directories and legacy sockets that passed the other checks:
    /// under one `BEGIN IMMEDIATE`, every row's name hashed once, and each
    /// that matches no row removed (a failure keeps that one and goes on).
    fn runtime_files(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.runtime);
        if pending.is_empty() {
            return Ok(());
        }
        let tx = self.catalog.immediate()?;
        let hashes = row_hashes(self.catalog)?;
        for orphan in pending {
            let hash_len = if orphan.kind == OrphanKind::SocketDir {
                24
            } else {
                32
            };
            let hash = orphan
                .path
                .file_name()
                .and_then(|f| f.as_bytes().get(..hash_len));
            if hash.is_none_or(|hash| hashes.iter().any(|h| h.starts_with(hash))) {
                self.keep(orphan, Kept::Named);
                continue;
            }
            match remove_runtime_file(&orphan, self.deadline) {
                Ok(()) => self.done.removed.push(orphan),
                Err(err) => {
                    log::warn!("{}: kept: {err}", orphan.path.display());
                    self.keep(orphan, Kept::Failed(err.to_string()));
                }
            }
        }
        drop(tx);
        Ok(())
    }

    fn one(&mut self, orphan: Orphan) -> Result<()> {
        match orphan.kind {
            OrphanKind::LockFile => self.keep(orphan, Kept::LockFile),
            OrphanKind::Trash => self.keep(orphan, Kept::Trash),
            _ if Instant::now() >= self.deadline => self.keep(orphan, Kept::OutOfTime),
            _ if orphan.age.is_none_or(|age| age < self.grace) => self.keep(orphan, Kept::Young),
            _ if orphan.lock_held => self.keep(orphan, Kept::LockHeld),
            OrphanKind::SandboxDir => self.sandbox_dir(orphan)?,
            _ => self.runtime.push(orphan),
        }
        Ok(())
    }
}

/// Removes a socket directory (and what is in it) or unlinks a socket,
/// never following a symlink.
fn remove_runtime_file(orphan: &Orphan, deadline: Instant) -> Result<()> {
    let (Some(parent), Some(file)) = (orphan.path.parent(), orphan.path.file_name()) else {
        return Ok(());
    };
    let dir_fd = dir::open_dir(parent).at(parent)?;
    let c_file = CString::new(file.as_bytes())
        .map_err(std::io::Error::other)
        .at(&orphan.path)?;
    if orphan.kind == OrphanKind::SocketDir {
        remove_tree_at(dir_fd.as_fd(), &c_file, Some(deadline)).at(&orphan.path)?;
    } else {
        unlink_entry(dir_fd.as_fd(), &c_file).at(&orphan.path)?;
    }
    Ok(())
}

pub(crate) fn run(
    catalog: &Catalog,
    sandboxes: &Path,
    run: Option<&Path>,
    budget: Duration,
    grace: Duration,
) -> Result<Reclaimed> {
    let started = Instant::now();
    let scan = super::scan::run(catalog, sandboxes, run, budget)?;
    let mut removal = Removal {
        catalog,
        trash: Trash::new(sandboxes),
        run,
        grace,
        deadline: started.checked_add(budget).unwrap_or(started),
        done: Reclaimed::default(),
        runtime: Vec::new(),
    };
    for orphan in scan.entries.clone() {
        let path = orphan.path.clone();
        if let Err(err) = removal.one(orphan.clone()) {
            if err.is_busy() {
                return Err(err);
            }
            log::warn!("{}: kept: {err}", path.display());
            removal.keep(orphan, Kept::Failed(err.to_string()));
        }
    }
    removal.runtime_files()?;
    removal.trash.remove_if_empty();
    removal.done.scan = scan;
    Ok(removal.done)
}
