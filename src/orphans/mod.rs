//! What no catalog row accounts for: sandbox directories no row names,
//! runtime socket directories and sockets, and lock files whose name hash
//! matches no row, and what a killed sweep left in the trash.
//!
//! A read-only scan ([`OrphanScan::scan`]): it lists, stats and reads
//! `/proc/locks`, and never takes a lock, writes, or follows a symlink.
//! Bounded by a time budget; a scan that runs out says where it stopped.
//!
//! ```
//! use sandbox_sweep::Catalog;
//! use sandbox_sweep::orphans::{OrphanKind, OrphanScan};
//!
//! let dir = std::env::temp_dir().join("sandbox-sweep-doc-orphans");
//! # let _ = std::fs::remove_dir_all(&dir);
//! std::fs::create_dir_all(dir.join("left-behind"))?;
//! let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
//! sandbox_sweep::migrate(&conn)?;
//! let catalog = Catalog::from_connection(conn)?;
//! let found = OrphanScan::new(&dir).scan(&catalog)?;
//! assert!(found.complete);
//! assert_eq!(found.entries.len(), 1);
//! assert_eq!(found.entries[0].kind, OrphanKind::SandboxDir);
//! assert!(found.entries[0].path.ends_with("left-behind"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod reclaim;
mod scan;
pub(crate) mod text;

pub use reclaim::{Kept, Reclaimed};
pub(crate) use scan::trash_only;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::catalog::Catalog;
use crate::error::Result;

/// What kind of leftover an [`Orphan`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrphanKind {
    /// `<sandboxes>/<name>`, a directory (or a symlink) no row names.
    SandboxDir,
    /// `<run>/sandboxes/<H12>`, a runtime's socket directory whose hash
    /// matches no row's name.
    SocketDir,
    /// `<run>/agent/<H16>.sock` or `<H16>.control.sock`, an older
    /// runtime's socket matching no row.
    LegacySocket,
    /// `<run>/locks/<H16>.lock`, `<H16>.snapshot-lineage.lock` or
    /// `<run>/creation-locks/<H16>.lock` matching no row. Reported only:
    /// lock files are never deleted (a runtime may be about to take one).
    LockFile,
    /// `<sandboxes>/.sandbox-sweep-trash/<id>`: a directory a sweep moved
    /// aside and did not finish deleting; the next sweep does.
    Trash,
}

impl OrphanKind {
    /// Every kind, in the order declared.
    pub const ALL: [OrphanKind; 5] = [
        OrphanKind::SandboxDir,
        OrphanKind::SocketDir,
        OrphanKind::LegacySocket,
        OrphanKind::LockFile,
        OrphanKind::Trash,
    ];

    /// A short lowercase name, as the CLI and JSON show it.
    ///
    /// ```
    /// use sandbox_sweep::orphans::OrphanKind;
    /// assert_eq!(OrphanKind::SocketDir.as_str(), "socket_dir");
    /// assert_eq!("socket_dir".parse::<OrphanKind>()?, OrphanKind::SocketDir);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanKind::SandboxDir => "sandbox_dir",
            OrphanKind::SocketDir => "socket_dir",
            OrphanKind::LegacySocket => "legacy_socket",
            OrphanKind::LockFile => "lock_file",
            OrphanKind::Trash => "trash",
        }
    }
}

/// The inverse of [`OrphanKind::as_str`].
impl std::str::FromStr for OrphanKind {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> Result<OrphanKind> {
        crate::error::parse_word(&OrphanKind::ALL, OrphanKind::as_str, "orphan_kind", text)
    }
}

/// One thing no row accounts for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Orphan {
    /// What it is.
    pub kind: OrphanKind,
    /// Where it is.
    pub path: PathBuf,
    /// Allocated bytes, the entry and everything below it, counted without
    /// following a symlink (a tree cut short by the budget counts what was
    /// seen).
    pub bytes: u64,
    /// Since it last changed (`None`: its time is in the future).
    pub age: Option<Duration>,
    /// Whether a lifecycle or creation lock for it is held now (read from
    /// `/proc/locks`; only beside a run directory): someone owns it.
    pub lock_held: bool,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Orphans {
    /// Everything found, in the order found.
    pub entries: Vec<Orphan>,
    /// Entries looked at (found or not).
    pub examined: u64,
    /// Entries that could not be examined (a failed call proves nothing,
    /// so they are not listed).
    pub errors: u64,
    /// The scan went through everything before its budget ran out.
    pub complete: bool,
    /// Where the budget ran out, when it did.
    pub stopped_at: Option<PathBuf>,
}

impl Orphans {
    /// The allocated bytes of every entry.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|o| o.bytes).sum()
    }

    /// The lock files found, summed: they are never deleted (see
    /// [`LockFiles`]), so a busy home gathers thousands, and a report
    /// lists them one by one only when asked.
    pub fn lock_files(&self) -> LockFiles {
        let files = self
            .entries
            .iter()
            .filter(|o| o.kind == OrphanKind::LockFile);
        files.fold(LockFiles::default(), |mut sum, o| {
            sum.count += 1;
            sum.bytes += o.bytes;
            sum.oldest = sum.oldest.max(o.age);
            sum
        })
    }
}

/// Lock files no row accounts for, summed. They stay: msb opens a lock
/// file by its path and never checks, once locked, that the path still
/// names the file it locked, so deleting one while a process holds it
/// could let the next process lock a new file of the same name, and give
/// one sandbox two owners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockFiles {
    /// How many.
    pub count: u64,
    /// Their allocated bytes.
    pub bytes: u64,
    /// The oldest one's age (`None`: none found, or every time is in the
    /// future).
    pub oldest: Option<Duration>,
}

/// A read-only scan for orphans of one sandboxes directory.
#[derive(Debug, Clone)]
pub struct OrphanScan {
    sandboxes_dir: PathBuf,
    run_dir: Option<PathBuf>,
    budget: Duration,
}

impl OrphanScan {
    /// A scan of `<sandboxes_dir>/<name>` directories, with no run
    /// directory and a 10 s budget.
    pub fn new(sandboxes_dir: impl Into<PathBuf>) -> OrphanScan {
        OrphanScan {
            sandboxes_dir: sandboxes_dir.into(),
            run_dir: None,
            budget: Duration::from_secs(10),
        }
    }

    /// Also scan microsandbox's run directory: socket directories, legacy
    /// sockets and lock files, and tell which orphans' locks are held.
    pub fn run_dir(mut self, run_dir: impl Into<PathBuf>) -> OrphanScan {
        self.run_dir = Some(run_dir.into());
        self
    }

    /// How long the scan may take (default 10 s).
    pub fn budget(mut self, budget: Duration) -> OrphanScan {
        self.budget = budget;
        self
    }

    /// Scans now. Reads only.
    ///
    /// # Errors
    ///
    /// The sandboxes directory cannot be opened or listed; a SQLite error.
    /// An entry that cannot be examined is counted in
    /// [`Orphans::errors`], not an error.
    pub fn scan(&self, catalog: &Catalog) -> Result<Orphans> {
        let (found, _places) = scan::run(
            catalog,
            &self.sandboxes_dir,
            self.run_dir.as_deref(),
            self.budget,
        )?;
        Ok(found)
    }

    /// Scans, then removes what is safe to remove: orphaned sandbox
    /// directories and runtime socket directories and sockets older than
    /// `older_than`, each checked again as the module docs say. Lock files
    /// and trash leftovers are kept (the next sweep purges the trash). The
    /// budget covers the scan and the removal together.
    ///
    /// # Errors
    ///
    /// As [`OrphanScan::scan`]; a busy catalog. A removal that fails for one
    /// orphan keeps it ([`Kept::Failed`]) and goes on.
    pub fn remove(&self, catalog: &Catalog, older_than: Duration) -> Result<Reclaimed> {
        reclaim::run(
            catalog,
            &self.sandboxes_dir,
            self.run_dir.as_deref(),
            self.budget,
            older_than,
        )
    }

    /// The sandboxes directory scanned.
    pub fn sandboxes_dir(&self) -> &Path {
        &self.sandboxes_dir
    }
}
