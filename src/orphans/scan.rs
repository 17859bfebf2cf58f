//! The scan itself: list each place, look each entry up, measure what no
//! row accounts for. Reads only: no lock taken, nothing written, no
//! symlink followed.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;

use super::{Orphan, OrphanKind, Orphans};
use crate::catalog::Catalog;
use crate::catalog::sql::{ALL_NAMES, SANDBOX_NAMED};
use crate::error::{Error, IoContext, Result};
use crate::rundir::locks::{HeldLocks, h16};
use crate::sandboxes::trash::{C_TRASH, TRASH_DIR};
use crate::sys::dir::{self, Subdir, is_plain_file_at, list_all, open_subdir};
use crate::sys::usage::usage_at;

/// The run directory's folders as the scan opened them (no symlink
/// followed), kept for a removal: it takes locks and removes entries
/// relative to these very descriptors, never by path again.
#[derive(Debug, Default)]
pub(crate) struct RunPlaces {
    /// `<run>/locks`: lifecycle and snapshot-lineage lock files.
    pub(crate) locks: Option<OwnedFd>,
    /// `<run>/creation-locks`.
    pub(crate) creation: Option<OwnedFd>,
    /// `<run>/agent`: legacy sockets.
    pub(crate) agent: Option<OwnedFd>,
    /// `<run>/sandboxes`: socket directories.
    pub(crate) sockets: Option<OwnedFd>,
    /// Every lock file's full name hash, by its first 24 digits: a socket
    /// directory is named by those alone.
    pub(crate) hashes_by_prefix: HashMap<[u8; 24], Vec<[u8; 32]>>,
}

/// One scan in progress.
struct Scan<'c> {
    /// `None` for a look at the trash alone, which reads no row.
    catalog: Option<&'c Catalog>,
    deadline: Instant,
    held: Option<HeldLocks>,
    found: Orphans,
    places: RunPlaces,
}

impl Scan<'_> {
    /// Whether the budget ran out; if so, records where (built only then).
    fn out_of_time(&mut self, at: impl FnOnce() -> PathBuf) -> bool {
        if Instant::now() < self.deadline {
            return false;
        }
        self.found.stopped_at = Some(at());
        true
    }

    /// Measures `name` in `parent` and lists it as a `kind` orphan; stops
    /// the scan (`false`) when the budget ran out inside it.
    fn add(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        path: PathBuf,
        kind: OrphanKind,
        lock_held: bool,
    ) -> bool {
        match usage_at(parent, name, self.deadline) {
            Ok(Some(usage)) => {
                let complete = usage.complete;
                if !complete {
                    self.found.stopped_at = Some(path.clone());
                }
                self.found.entries.push(Orphan {
                    kind,
                    path,
                    bytes: usage.bytes,
                    age: usage.age,
                    lock_held,
                });
                complete
            }
            Ok(None) => true,
            Err(errno) => {
                log::warn!("{}: not examined: {errno}", path.display());
                self.found.errors += 1;
                true
            }
        }
    }

    /// `<sandboxes>/<name>` entries no row names, and the trash's leftovers
    /// (only those without a catalog).
    fn sandboxes(&mut self, sandboxes: &Path) -> Result<bool> {
        let root = dir::open_dir(sandboxes).at(sandboxes)?;
        let Some(catalog) = self.catalog else {
            let path = sandboxes.join(TRASH_DIR);
            return Ok(self.trash(root.as_fd(), C_TRASH, &path));
        };
        let names = list_all(root.as_fd()).at(sandboxes)?;
        let mut named = catalog.conn.prepare_cached(SANDBOX_NAMED)?;
        for name in names {
            let path = || sandboxes.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
            if self.out_of_time(path) {
                return Ok(false);
            }
            self.found.examined += 1;
            let bytes = name.as_bytes();
            if bytes == TRASH_DIR.as_bytes() {
                if !self.trash(root.as_fd(), &name, &path()) {
                    return Ok(false);
                }
                continue;
            }
            let text = std::str::from_utf8(bytes).ok();
            if is_named(&mut named, bytes)? {
                continue;
            }
            // Regular files are not sandbox state: only directories (and
            // what stands where one would, a symlink) are listed.
            let lock_held = text.is_some_and(|t| self.held.as_ref().is_some_and(|h| h.is_held(t)));
            if is_plain_file_at(root.as_fd(), &name) {
                continue;
            }
            if !self.add(
                root.as_fd(),
                &name,
                path(),
                OrphanKind::SandboxDir,
                lock_held,
            ) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every entry of the trash: a sweep's unfinished deletions.
    fn trash(&mut self, root: BorrowedFd<'_>, name: &CStr, path: &Path) -> bool {
        let Ok(Subdir::Open(bin)) = open_subdir(root, name) else {
            return true;
        };
        let Ok(entries) = list_all(bin.as_fd()) else {
            self.found.errors += 1;
            return true;
        };
        for entry in entries {
            let at = path.join(std::ffi::OsStr::from_bytes(entry.as_bytes()));
            if self.out_of_time(|| at.clone())
                || !self.add(bin.as_fd(), &entry, at, OrphanKind::Trash, false)
            {
                return false;
            }
        }
        true
    }

    /// Sockets, socket directories and lock files in `run` matching no row.
    fn run_dir(&mut self, catalog: &Catalog, run: &Path) -> Result<bool> {
        let Ok(run_fd) = dir::open_dir(run) else {
            self.found.errors += 1;
            log::warn!(
                "{}: cannot be opened; run directory not scanned",
                run.display()
            );
            return Ok(true);
        };
        let hashes = row_hashes(catalog)?;
        let prefixes: HashSet<&[u8]> = hashes.iter().map(|h| &h[..24]).collect();
        let places: [(&str, OrphanKind, &[&str]); 4] = [
            (
                "locks",
                OrphanKind::LockFile,
                &[".lock", ".snapshot-lineage.lock"],
            ),
            ("creation-locks", OrphanKind::LockFile, &[".lock"]),
            (
                "agent",
                OrphanKind::LegacySocket,
                &[".sock", ".control.sock"],
            ),
            ("sandboxes", OrphanKind::SocketDir, &[""]),
        ];
        for (sub, kind, suffixes) in places {
            let name = CString::new(sub).unwrap_or_default();
            let Ok(Subdir::Open(fd)) = open_subdir(run_fd.as_fd(), &name) else {
                continue;
            };
            let done = self.run_subdir(&run.join(sub), &fd, kind, suffixes, &hashes, &prefixes);
            let place = match sub {
                "locks" => &mut self.places.locks,
                "creation-locks" => &mut self.places.creation,
                "agent" => &mut self.places.agent,
                _ => &mut self.places.sockets,
            };
            *place = Some(fd);
            if !done {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn run_subdir(
        &mut self,
        at: &Path,
        fd: &OwnedFd,
        kind: OrphanKind,
        suffixes: &[&str],
        hashes: &HashSet<[u8; 32]>,
        prefixes: &HashSet<&[u8]>,
    ) -> bool {
        let Ok(entries) = list_all(fd.as_fd()) else {
            self.found.errors += 1;
            return true;
        };
        for entry in entries {
            let path = at.join(std::ffi::OsStr::from_bytes(entry.as_bytes()));
            if self.out_of_time(|| path.clone()) {
                return false;
            }
            self.found.examined += 1;
            let bytes = entry.as_bytes();
            // Only names of this protocol's shape are judged: `<hex><suffix>`.
            let width = if kind == OrphanKind::SocketDir {
                24
            } else {
                32
            };
            let Some((hash, rest)) = bytes.split_at_checked(width) else {
                continue;
            };
            if !hash
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                || !suffixes.iter().any(|s| rest == s.as_bytes())
            {
                continue;
            }
            // Lock files name a sandbox's full hash; a socket directory
            // only its first 24 digits: which held lock, if any, is that
            // directory's (the lock folders are listed first).
            let (known, held) = if let Ok(full) = <[u8; 32]>::try_from(hash) {
                let mut prefix = [0u8; 24];
                prefix.copy_from_slice(&full[..24]);
                let same = self.places.hashes_by_prefix.entry(prefix).or_default();
                if kind == OrphanKind::LockFile && !same.contains(&full) {
                    same.push(full);
                }
                let held = self.held.as_ref().is_some_and(|h| h.is_held_hashed(&full));
                (hashes.contains(&full), held)
            } else {
                let held = <[u8; 24]>::try_from(hash)
                    .ok()
                    .and_then(|p| self.places.hashes_by_prefix.get(&p))
                    .is_some_and(|fulls| {
                        fulls
                            .iter()
                            .any(|f| self.held.as_ref().is_some_and(|h| h.is_held_hashed(f)))
                    });
                (prefixes.contains(hash), held)
            };
            if !known && !self.add(fd.as_fd(), &entry, path, kind, held) {
                return false;
            }
        }
        true
    }
}

/// Every row's name hash (`H16`, hex), for matching what a run directory
/// holds: read once per scan, and once per removal under its write lock.
pub(crate) fn row_hashes(catalog: &Catalog) -> Result<HashSet<[u8; 32]>> {
    let mut stmt = catalog.conn.prepare(ALL_NAMES)?;
    let mut rows = stmt.query([])?;
    let mut hashes = HashSet::new();
    while let Some(row) = rows.next()? {
        let bytes = match row.get_ref(0)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => b,
            _ => continue,
        };
        if let Ok(name) = std::str::from_utf8(bytes) {
            hashes.insert(h16(name));
        }
    }
    Ok(hashes)
}

/// Whether a row names `name`: as TEXT (one probe of the unique index,
/// the common case), or as the same bytes stored as a BLOB (another
/// program's row), so a directory such a row names is never an orphan.
pub(crate) fn is_named(named: &mut rusqlite::CachedStatement<'_>, name: &[u8]) -> Result<bool> {
    if let Ok(text) = std::str::from_utf8(name)
        && named.exists([text])?
    {
        return Ok(true);
    }
    Ok(named.exists([name])?)
}

/// Scans, and hands over the run directory's folders as it opened them.
pub(crate) fn run(
    catalog: &Catalog,
    sandboxes: &Path,
    run: Option<&Path>,
    budget: Duration,
) -> Result<(Orphans, RunPlaces)> {
    let started = Instant::now();
    let mut scan = Scan {
        catalog: Some(catalog),
        deadline: started.checked_add(budget).unwrap_or(started),
        held: run.and_then(HeldLocks::read),
        found: Orphans::default(),
        places: RunPlaces::default(),
    };
    let mut done = scan.sandboxes(sandboxes)?;
    if done && let Some(run) = run {
        done = scan.run_dir(catalog, run)?;
    }
    scan.found.complete = done && scan.found.stopped_at.is_none();
    Ok((scan.found, scan.places))
}

/// The trash's entries alone, measured: what sweeps did not finish
/// deleting. Reads no row, takes no lock, writes nothing.
pub(crate) fn trash_only(sandboxes: &Path, budget: Duration) -> Orphans {
    let started = Instant::now();
    let mut scan = Scan {
        catalog: None,
        deadline: started.checked_add(budget).unwrap_or(started),
        held: None,
        found: Orphans::default(),
        places: RunPlaces::default(),
    };
    // No sandboxes directory yet holds no trash; one that cannot be read
    // is counted, never a failure of the report that asked.
    let done = match scan.sandboxes(sandboxes) {
        Ok(done) => done,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => true,
        Err(err) => {
            log::warn!("{}: trash not examined: {err:#}", sandboxes.display());
            scan.found.errors += 1;
            false
        }
    };
    scan.found.complete = done && scan.found.stopped_at.is_none();
    scan.found
}
