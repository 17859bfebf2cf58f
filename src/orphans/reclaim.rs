//! Removing orphans safely: only what a scan found, only after every
//! check has been made again, with proof, under the catalog's write lock.
//!
//! A sandbox directory goes only beside a run directory (without one a
//! launcher making it now could not be seen), when it is a plain directory
//! directly inside the sandboxes directory (a symlink there is unlinked,
//! never followed), its name is a valid name, it is older than the grace
//! period, its creation lock is taken (made if missing, as msb's create
//! makes it, so a launcher starting now waits) and its lifecycle and
//! snapshot-lineage locks are free, and inside one `BEGIN IMMEDIATE`
//! transaction no row names it. It moves into the trash there, on the
//! sweep's crash-safe path, and is deleted after.
//!
//! A socket directory or legacy socket goes only when every lock file of
//! its hash that exists is taken (a missing one has no holder, and none is
//! made: msb never deletes a lock file, so one made here would stay as an
//! orphan for ever), every socket in it refuses a connection (asked
//! through the descriptor the scan opened), and under `BEGIN IMMEDIATE` no
//! row has its hash; it is removed there relative to that same descriptor,
//! a few unlinks and an `rmdir`. Lock files are never deleted.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::scan::{RunPlaces, row_hashes};
use super::{Orphan, OrphanKind, Orphans};
use crate::catalog::Catalog;
use crate::catalog::sql::SANDBOX_NAMED;
use crate::error::{Error, IoContext, Result};
use crate::rundir::locks::{LockKind, Present, RunDir, h16, try_lock_present};
use crate::rundir::sockets::CANONICAL_SOCKETS;
use crate::sandboxes::names::validate_name;
use crate::sandboxes::trash::Trash;
use crate::sys::dir::{Subdir, list_all, open_subdir, remove_empty_dir_if_present, unlink_entry};
use crate::sys::socket::nothing_listens_at;

/// Which locks an orphan's removal takes, as a launcher, a runtime and a
/// snapshot capture would hold them.
const ORPHAN_LOCKS: [LockKind; 3] = [
    LockKind::Creation,
    LockKind::Lifecycle,
    LockKind::SnapshotLineage,
];

/// How many socket orphans are proven before one write transaction checks
/// them against the rows and removes them: each holds its locks and an
/// open directory until then.
const RUNTIME_BATCH: usize = 64;

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
    /// Something accepted a connection on one of its sockets (or its
    /// queue was full): a live runtime.
    Listening,
    /// A socket directory holding entries a runtime does not make: not
    /// ours to judge.
    UnknownEntries,
    /// A sandbox directory with no run directory given: whether a launcher
    /// is making it now (its creation lock) cannot be known.
    NoRunDir,
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
            Kept::Listening => "listening",
            Kept::UnknownEntries => "unknown_entries",
            Kept::NoRunDir => "no_run_dir",
            Kept::InvalidName => "invalid_name",
            Kept::LockFile => "lock_file",
            Kept::Trash => "trash",
            Kept::OutOfTime => "out_of_time",
            Kept::Failed(_) => "failed",
        }
    }
}

/// The inverse of [`Kept::as_str`]. The word `failed` reads back as
/// `Failed` with an empty message: the word does not carry the message.
///
/// ```
/// use sandbox_sweep::orphans::Kept;
/// assert_eq!("listening".parse::<Kept>()?, Kept::Listening);
/// assert_eq!("failed".parse::<Kept>()?, Kept::Failed(String::new()));
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
impl std::str::FromStr for Kept {
    type Err = Error;

    fn from_str(text: &str) -> Result<Kept> {
        Kept::every()
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| Error::UnknownString {
                column: "kept",
                text: text.to_owned(),
            })
    }
}

impl Kept {
    /// Every reason, `Failed` with no message: what its words are read
    /// back against.
    pub(crate) fn every() -> [Kept; 11] {
        [
            Kept::Young,
            Kept::LockHeld,
            Kept::Named,
            Kept::Listening,
            Kept::UnknownEntries,
            Kept::NoRunDir,
            Kept::InvalidName,
            Kept::LockFile,
            Kept::Trash,
            Kept::OutOfTime,
            Kept::Failed(String::new()),
        ]
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
    /// Removed directories the trash could not delete (a mount point
    /// inside, an immutable file, a directory this user may not write):
    /// they wait in the trash, every sweep tries again and counts them,
    /// and `orphans` lists them.
    pub trash_failed: u64,
}

impl Reclaimed {
    /// The allocated bytes of everything removed.
    pub fn removed_bytes(&self) -> u64 {
        self.removed.iter().map(|o| o.bytes).sum()
    }
}

/// A socket orphan proven dead, waiting for the write transaction that
/// checks it against the rows and removes it.
struct Proven {
    orphan: Orphan,
    /// The name hashes whose lock files it holds.
    hashes: Vec<[u8; 32]>,
    /// Its hash's lock files that exist, taken: held until it is gone.
    _locks: Vec<OwnedFd>,
    /// The socket directory, opened no-follow; `None` for a legacy socket
    /// or an entry that is not a directory (it is unlinked itself).
    dir: Option<OwnedFd>,
}

/// One removal in progress.
struct Removal<'a> {
    catalog: &'a Catalog,
    trash: Trash<'a>,
    run: Option<RunDir<'a>>,
    places: RunPlaces,
    grace: Duration,
    deadline: Instant,
    done: Reclaimed,
    /// Socket directories and sockets proven dead, removed a batch at a
    /// time.
    runtime: Vec<Proven>,
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

    /// Takes the locks of the sandbox hashed `hash`: for sandbox `create`,
    /// its creation lock made if missing (as msb's create would make it,
    /// so a launcher starting now waits for us), every other one only
    /// where its file exists. `Ok(None)`: one is held. `at` names the
    /// orphan in an error.
    fn take_locks(
        &self,
        hash: &[u8; 32],
        create: Option<&str>,
        at: &Path,
    ) -> Result<Option<Vec<OwnedFd>>> {
        let mut taken = Vec::new();
        for kind in ORPHAN_LOCKS {
            let present = match (&self.run, kind, create) {
                (Some(run), LockKind::Creation, Some(name)) => {
                    match run.try_lock_hashed(kind, name, hash)? {
                        Some(fd) => Present::Taken(fd),
                        None => Present::Held,
                    }
                }
                _ => {
                    let folder = match kind {
                        LockKind::Creation => &self.places.creation,
                        LockKind::Lifecycle | LockKind::SnapshotLineage => &self.places.locks,
                    };
                    try_lock_present(folder.as_ref().map(|f| f.as_fd()), kind, hash).at(at)?
                }
            };
            match present {
                Present::Taken(fd) => taken.push(fd),
                Present::Missing => {}
                Present::Held => return Ok(None),
            }
        }
        Ok(Some(taken))
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
        if self.run.is_none() {
            self.keep(orphan, Kept::NoRunDir);
            return Ok(());
        }
        let hash = h16(&name);
        let Some(locks) = self.take_locks(&hash, Some(&name), &orphan.path)? else {
            self.keep(orphan, Kept::LockHeld);
            return Ok(());
        };
        let tx = self.catalog.immediate()?;
        if self.named(name.as_bytes())? {
            self.keep(orphan, Kept::Named);
            return Ok(());
        }
        let root = self.trash.sandboxes().fd()?;
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
            .move_orphan(&name, &String::from_utf8_lossy(&hash))?;
        let ended = tx.commit().map_err(Error::from_sqlite);
        if let Some(moved) = self.trash.settle(ended, moved)? {
            match self.trash.delete(moved.entry(), Some(self.deadline)) {
                Ok(true) => {}
                Ok(false) => self.done.deferred += 1,
                Err(err) => {
                    log::warn!(target: crate::error::LOG_KEPT, "{err:#}: left in the trash; every sweep tries again");
                    self.done.trash_failed += 1;
                }
            }
            self.done.removed.push(orphan);
        }
        drop(locks);
        Ok(())
    }

    /// Proves a socket directory or legacy socket dead before any write
    /// lock: every existing lock file of its hash taken, and every socket
    /// in it refusing a connection, asked through the descriptor the scan
    /// opened. What passes waits for [`Removal::runtime_files`].
    fn prove_runtime(&mut self, orphan: Orphan) -> Result<()> {
        let socket_dir = orphan.kind == OrphanKind::SocketDir;
        let Some(file) = orphan.path.file_name().map(|f| f.as_bytes().to_vec()) else {
            self.keep(orphan, Kept::InvalidName);
            return Ok(());
        };
        let c_file = CString::new(file.clone())
            .map_err(std::io::Error::other)
            .at(&orphan.path)?;
        let hashes: Vec<[u8; 32]> = if socket_dir {
            <[u8; 24]>::try_from(file.as_slice())
                .ok()
                .and_then(|p| self.places.hashes_by_prefix.get(&p).cloned())
                .unwrap_or_default()
        } else {
            file.get(..32)
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .into_iter()
                .collect()
        };
        let mut locks = Vec::new();
        for hash in &hashes {
            // A legacy socket and a socket directory of one sandbox: the
            // first one's proof holds the locks already (a second open
            // file's `flock` would find them held, by us).
            if self.runtime.iter().any(|p| p.hashes.contains(hash)) {
                continue;
            }
            match self.take_locks(hash, None, &orphan.path)? {
                Some(taken) => locks.extend(taken),
                None => {
                    self.keep(orphan, Kept::LockHeld);
                    return Ok(());
                }
            }
        }
        let place = if socket_dir {
            &self.places.sockets
        } else {
            &self.places.agent
        };
        let Some(parent) = place.as_ref() else {
            self.keep(orphan, Kept::Failed("its folder was not opened".into()));
            return Ok(());
        };
        let dir = if socket_dir {
            match open_subdir(parent.as_fd(), &c_file).at(&orphan.path)? {
                Subdir::Open(dir) => Some(dir),
                // A symlink or a file where the directory was: nothing
                // listens on an entry that is not a socket directory, and
                // it goes itself, never followed.
                Subdir::Symlink | Subdir::NotADir => None,
                Subdir::Missing => {
                    self.keep(orphan, Kept::Failed("gone since the scan".into()));
                    return Ok(());
                }
            }
        } else {
            None
        };
        let (probed, names) = match &dir {
            Some(dir) => (dir.as_fd(), list_all(dir.as_fd()).at(&orphan.path)?),
            None if socket_dir => (parent.as_fd(), Vec::new()),
            None => (parent.as_fd(), vec![c_file]),
        };
        for name in &names {
            if dir.is_some()
                && !CANONICAL_SOCKETS
                    .iter()
                    .any(|s| s.as_bytes() == name.as_bytes())
            {
                self.keep(orphan, Kept::UnknownEntries);
                return Ok(());
            }
            let at = || {
                orphan
                    .path
                    .join(std::ffi::OsStr::from_bytes(name.as_bytes()))
            };
            match nothing_listens_at(probed, name) {
                Ok(true) => {}
                Ok(false) => {
                    self.keep(orphan, Kept::Listening);
                    return Ok(());
                }
                Err(errno) => {
                    let err = Err::<(), _>(errno).at(&at());
                    let why = err.err().map_or_else(String::new, |e| format!("{e:#}"));
                    self.keep(orphan, Kept::Failed(why));
                    return Ok(());
                }
            }
        }
        self.runtime.push(Proven {
            orphan,
            hashes,
            _locks: locks,
            dir,
        });
        if self.runtime.len() >= RUNTIME_BATCH {
            self.runtime_files()?;
        }
        Ok(())
    }

    /// Socket directories and legacy sockets proven dead: under one
    /// `BEGIN IMMEDIATE`, every row's name hashed once, and each that
    /// matches no row removed relative to the scan's descriptors, O(1)
    /// each (a few unlinks and an `rmdir`). A failure keeps that one and
    /// goes on; the locks go with the transaction.
    fn runtime_files(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.runtime);
        if pending.is_empty() {
            return Ok(());
        }
        let tx = self.catalog.immediate()?;
        let hashes = row_hashes(self.catalog)?;
        for proven in pending {
            let orphan = proven.orphan;
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
            match self.remove_runtime_file(&orphan, proven.dir.as_ref()) {
                Ok(()) => self.done.removed.push(orphan),
                Err(err) => {
                    log::warn!(target: crate::error::LOG_KEPT, "{}: kept: {err:#}", orphan.path.display());
                    self.keep(orphan, Kept::Failed(format!("{err:#}")));
                }
            }
        }
        drop(tx);
        Ok(())
    }

    /// Unlinks a socket (or what stands where a socket directory was), or
    /// a socket directory's sockets and then the directory, which must be
    /// empty by then: a file made since the proof keeps it.
    fn remove_runtime_file(&self, orphan: &Orphan, dir: Option<&OwnedFd>) -> Result<()> {
        let place = if orphan.kind == OrphanKind::SocketDir {
            &self.places.sockets
        } else {
            &self.places.agent
        };
        let (Some(parent), Some(file)) = (place.as_ref(), orphan.path.file_name()) else {
            return Ok(());
        };
        let c_file = CString::new(file.as_bytes())
            .map_err(std::io::Error::other)
            .at(&orphan.path)?;
        let Some(dir) = dir else {
            return unlink_entry(parent.as_fd(), &c_file).at(&orphan.path);
        };
        for socket in CANONICAL_SOCKETS {
            let c_socket: &CStr = &CString::new(socket)
                .map_err(std::io::Error::other)
                .at(&orphan.path)?;
            unlink_entry(dir.as_fd(), c_socket).at(&orphan.path.join(socket))?;
        }
        remove_empty_dir_if_present(parent.as_fd(), &c_file).at(&orphan.path)
    }

    fn one(&mut self, orphan: Orphan) -> Result<()> {
        match orphan.kind {
            OrphanKind::LockFile => self.keep(orphan, Kept::LockFile),
            OrphanKind::Trash => self.keep(orphan, Kept::Trash),
            _ if Instant::now() >= self.deadline => self.keep(orphan, Kept::OutOfTime),
            _ if orphan.age.is_none_or(|age| age < self.grace) => self.keep(orphan, Kept::Young),
            _ if orphan.lock_held => self.keep(orphan, Kept::LockHeld),
            OrphanKind::SandboxDir => self.sandbox_dir(orphan)?,
            _ => self.prove_runtime(orphan)?,
        }
        Ok(())
    }
}

pub(crate) fn run(
    catalog: &Catalog,
    sandboxes: &Path,
    run: Option<&Path>,
    budget: Duration,
    grace: Duration,
) -> Result<Reclaimed> {
    let started = Instant::now();
    let (scan, places) = super::scan::run(catalog, sandboxes, run, budget)?;
    let mut removal = Removal {
        catalog,
        trash: Trash::new(sandboxes),
        run: run.map(RunDir::new),
        places,
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
            log::warn!(target: crate::error::LOG_KEPT, "{}: kept: {err:#}", path.display());
            removal.keep(orphan, Kept::Failed(format!("{err:#}")));
        }
    }
    removal.runtime_files()?;
    removal.trash.remove_if_empty();
    removal.done.scan = scan;
    Ok(removal.done)
}
