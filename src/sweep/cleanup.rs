//! Deciding the cleanup of one finished ephemeral sandbox, and carrying it
//! out inside the caller's write transaction.
//!
//! Owns the per-row rules: which rows may be removed ([`CleanupOutcome`]),
//! which names may reach the filesystem
//! ([`validate_name`](crate::sandboxes::validate_name)), and the order of
//! steps (check, move the directory into the trash, delete the rows).
//! The directory mechanics live in `trash`; this file opens no descriptor.

use std::fmt;
use std::path::Path;

use crate::catalog::columns::{self, Column};

use crate::catalog::Catalog;
use crate::catalog::sql::{CLEANUP_CANDIDATE, DELETE_RUNS, DELETE_SANDBOX};
use crate::catalog::statements::Statements;
use crate::error::{Error, Result};
use crate::process::liveness::Prober;
use crate::process::runs::any_live_running;
use crate::rundir::locks::LockKind;
use crate::rundir::row_locks::{CLEANUP_LOCKS, Refusal, RowLocks};
use crate::sandboxes::names::stored_name;
use crate::sandboxes::trash::{Moved, Trash};
use crate::sweep::context::RowContext;

/// What happened to one sandbox asked to be cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CleanupOutcome {
    /// Directory and rows removed.
    Removed,
    /// The directory could not be moved away; the row is kept for a retry.
    DirRemoveFailed,
    /// No such sandbox row (already removed).
    AlreadyGone,
    /// The row vanished between the check and the delete (another cleaner won).
    AlreadyClaimed,
    /// A persistent sandbox: never cleaned.
    SkippedPersistent,
    /// Not `Stopped` or `Crashed`: still active (or an unknown status).
    SkippedActive,
    /// A `Running` run still has a live process.
    SkippedLivePid,
    /// The name is not a single normal path component; nothing was touched.
    InvalidName,
    /// Its lifecycle lock is held elsewhere: a live owner, hands off.
    LifecycleOwned,
    /// Its lifecycle lock could not be taken (the lock path is a symlink or
    /// not a regular file, or a call failed); nothing was touched.
    LockFailed,
    /// Its dead runtime's socket files could not all be removed; the row is
    /// kept for a retry.
    SocketRemoveFailed,
    /// Its snapshot-lineage lock is held: a snapshot capture is still
    /// publishing its storage, so it is not removed this time (microsandbox
    /// 0.7.13). Not an error.
    SnapshotInProgress,
    /// Its `status`, `ephemeral` or a running run's `pid` is not stored as
    /// the catalog declares (another program's row): left exactly as it
    /// is, and counted in [`Report::invalid_row`](crate::Report::invalid_row)
    /// by column. Not an error.
    InvalidRow,
}

impl CleanupOutcome {
    /// Every outcome, in a stable order (the order of report counters).
    pub const ALL: [CleanupOutcome; 13] = [
        CleanupOutcome::Removed,
        CleanupOutcome::DirRemoveFailed,
        CleanupOutcome::AlreadyGone,
        CleanupOutcome::AlreadyClaimed,
        CleanupOutcome::SkippedPersistent,
        CleanupOutcome::SkippedActive,
        CleanupOutcome::SkippedLivePid,
        CleanupOutcome::InvalidName,
        CleanupOutcome::LifecycleOwned,
        CleanupOutcome::LockFailed,
        CleanupOutcome::SocketRemoveFailed,
        CleanupOutcome::SnapshotInProgress,
        CleanupOutcome::InvalidRow,
    ];

    /// A short lowercase name, as the CLI and JSON show it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sandbox_sweep::CleanupOutcome::SkippedLivePid.as_str(), "skipped_live_pid");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupOutcome::Removed => "removed",
            CleanupOutcome::DirRemoveFailed => "dir_remove_failed",
            CleanupOutcome::AlreadyGone => "already_gone",
            CleanupOutcome::AlreadyClaimed => "already_claimed",
            CleanupOutcome::SkippedPersistent => "skipped_persistent",
            CleanupOutcome::SkippedActive => "skipped_active",
            CleanupOutcome::SkippedLivePid => "skipped_live_pid",
            CleanupOutcome::InvalidName => "invalid_name",
            CleanupOutcome::LifecycleOwned => "lifecycle_owned",
            CleanupOutcome::LockFailed => "lock_failed",
            CleanupOutcome::SocketRemoveFailed => "socket_remove_failed",
            CleanupOutcome::SnapshotInProgress => "snapshot_in_progress",
            CleanupOutcome::InvalidRow => "invalid_row",
        }
    }

    /// Whether this outcome is a per-row error (counted in `errors`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::CleanupOutcome;
    ///
    /// assert!(CleanupOutcome::InvalidName.is_error());
    /// assert!(!CleanupOutcome::SkippedLivePid.is_error());
    /// ```
    pub fn is_error(self) -> bool {
        matches!(
            self,
            CleanupOutcome::DirRemoveFailed
                | CleanupOutcome::InvalidName
                | CleanupOutcome::LockFailed
                | CleanupOutcome::SocketRemoveFailed
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The inverse of [`CleanupOutcome::as_str`].
///
/// ```
/// use sandbox_sweep::CleanupOutcome;
/// assert_eq!("removed".parse::<CleanupOutcome>()?, CleanupOutcome::Removed);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
impl std::str::FromStr for CleanupOutcome {
    type Err = Error;

    fn from_str(text: &str) -> std::result::Result<CleanupOutcome, Error> {
        crate::error::parse_word(
            &CleanupOutcome::ALL,
            CleanupOutcome::as_str,
            "cleanup_outcome",
            text,
        )
    }
}

/// `{}`: the word (`skipped_live_pid`); `{:#}`: the word and what it means.
///
/// ```
/// use sandbox_sweep::CleanupOutcome;
/// assert_eq!(CleanupOutcome::AlreadyGone.to_string(), "already_gone");
/// assert_eq!(format!("{:#}", CleanupOutcome::AlreadyGone), "already_gone: no such sandbox row");
/// ```
impl fmt::Display for CleanupOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if !f.alternate() {
            return Ok(());
        }
        let meaning = match self {
            CleanupOutcome::Removed => "directory and rows removed",
            CleanupOutcome::DirRemoveFailed => {
                "the directory could not be moved away; the row is kept for a retry"
            }
            CleanupOutcome::AlreadyGone => "no such sandbox row",
            CleanupOutcome::AlreadyClaimed => "another cleaner removed the row first",
            CleanupOutcome::SkippedPersistent => "a persistent sandbox is never cleaned",
            CleanupOutcome::SkippedActive => "not Stopped or Crashed",
            CleanupOutcome::SkippedLivePid => "a running run still has a live process",
            CleanupOutcome::InvalidName => "the name is not a single normal path component",
            CleanupOutcome::LifecycleOwned => "its lifecycle lock is held by a live owner",
            CleanupOutcome::LockFailed => "its lifecycle lock could not be taken",
            CleanupOutcome::SocketRemoveFailed => {
                "its runtime's socket files could not all be removed; the row is kept for a retry"
            }
            CleanupOutcome::SnapshotInProgress => "a snapshot capture holds its lineage lock",
            CleanupOutcome::InvalidRow => "a column is not stored as the catalog declares",
        };
        write!(f, ": {meaning}")
    }
}

/// Why a row is not cleaned: the outcome, and the column that had the
/// wrong storage class when that is why.
pub(crate) type Skip = (CleanupOutcome, Option<Column>);

/// Reads sandbox `id` and decides whether it may be removed: its name
/// when it may, why not otherwise. Each column is read by its storage
/// class; a row with any other is left exactly as it is. `ended`: a dry
/// run's row that its reconcile would have ended, so its active status
/// stands for the `Stopped` or `Crashed` the sweep would have written.
fn candidate(
    catalog: &Catalog,
    stmts: &mut Statements<'_>,
    prober: &Prober,
    id: i64,
    ended: bool,
) -> Result<Result<String, Skip>> {
    let invalid = |column| Ok(Err((CleanupOutcome::InvalidRow, Some(column))));
    let stmt = stmts.get(CLEANUP_CANDIDATE)?;
    let mut rows = stmt.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(Err((CleanupOutcome::AlreadyGone, None)));
    };
    match columns::ephemeral(row.get_ref(2)?) {
        Ok(true) => {}
        Ok(false) => return Ok(Err((CleanupOutcome::SkippedPersistent, None))),
        Err(column) => return invalid(column),
    }
    match columns::text(row.get_ref(1)?, Column::Status) {
        Ok("Stopped" | "Crashed") => {}
        Ok(_) if ended => {}
        Ok(_) => return Ok(Err((CleanupOutcome::SkippedActive, None))),
        Err(column) => return invalid(column),
    }
    let name = stored_name(row.get_ref(0)?);
    drop(rows);
    match any_live_running(catalog, stmts, prober, id)? {
        Ok(false) => {}
        Ok(true) => return Ok(Err((CleanupOutcome::SkippedLivePid, None))),
        Err(column) => return invalid(column),
    }
    // A name stored as a BLOB, or one that is not a path component, names
    // no directory of ours: removing the row would orphan the real one.
    Ok(name.map_err(|column| (CleanupOutcome::InvalidName, Some(column))))
}

/// Beside a run directory, before a terminal sandbox is removed: take its
/// snapshot-lineage and lifecycle locks and remove its runtime sockets.
/// `Some` outcome when the row must be kept.
fn guard(
    locks: &mut RowLocks<'_>,
    trash: &Trash<'_>,
    id: i64,
    name: &str,
) -> Option<CleanupOutcome> {
    let refusal = locks
        .claim(&CLEANUP_LOCKS, id, name)
        .or_else(|| locks.remove_artifacts(trash.sandboxes(), id, name).err())?;
    Some(refused(refusal))
}

/// The outcome of a row a refusal keeps.
fn refused(refusal: Refusal) -> CleanupOutcome {
    match refusal {
        Refusal::Owned(LockKind::SnapshotLineage) => CleanupOutcome::SnapshotInProgress,
        Refusal::Owned(_) => CleanupOutcome::LifecycleOwned,
        Refusal::LockFailed => CleanupOutcome::LockFailed,
        Refusal::ArtifactsFailed => CleanupOutcome::SocketRemoveFailed,
    }
}

/// Deletes sandbox `id`'s runs and row once its directory is in the trash;
/// puts the directory back when the row is no longer a candidate.
fn delete_rows(
    stmts: &mut Statements<'_>,
    trash: &Trash<'_>,
    id: i64,
    moved: Option<Moved>,
) -> Result<(CleanupOutcome, Option<Moved>)> {
    // Run rows go first and explicitly: the connection may not enforce
    // foreign keys, and orphan runs must not outlive their sandbox.
    let deleted = stmts
        .get(DELETE_RUNS)?
        .execute([id])
        .and_then(|_| stmts.get(DELETE_SANDBOX)?.execute([id]));
    let outcome = match deleted {
        Ok(1) => return Ok((CleanupOutcome::Removed, moved)),
        Ok(_) => Ok((CleanupOutcome::AlreadyClaimed, None)),
        Err(err) => Err(err.into()),
    };
    if let Some(moved) = moved {
        trash.put_back(moved);
    }
    outcome
}

/// How a row is cleaned: for real, inside the caller's write transaction,
/// or only decided (a dry run), where `ended` marks a row that the dry
/// run's reconcile would have ended (the sweep would clean it in the same
/// pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Write,
    DryRun { ended: bool },
}

/// Decides, and in [`Mode::Write`] carries out inside the caller's write
/// transaction, the cleanup of sandbox `id`. A returned [`Moved`] must be
/// discarded after the commit or put back if it fails.
pub(crate) fn clean_row(
    row: &mut RowContext<'_, '_>,
    id: i64,
    mode: Mode,
) -> Result<(CleanupOutcome, Option<Moved>, Option<Column>)> {
    let RowContext {
        catalog,
        stmts,
        prober,
        trash,
        locks,
    } = row;
    let locks = locks.as_mut();
    let ended = mode == Mode::DryRun { ended: true };
    let name = match candidate(catalog, stmts, prober, id, ended)? {
        Ok(name) => name,
        Err((outcome, invalid)) => return Ok((outcome, None, invalid)),
    };
    if mode != Mode::Write {
        // What the sweep's locks would find, read without taking them.
        let held = locks.and_then(|locks| locks.held_elsewhere(&CLEANUP_LOCKS, id, &name));
        return Ok((held.map_or(CleanupOutcome::Removed, refused), None, None));
    }
    if let Some(locks) = locks
        && let Some(left) = guard(locks, trash, id, &name)
    {
        return Ok((left, None, None));
    }
    match trash.move_in(id, &name) {
        Ok(moved) => {
            let (outcome, moved) = delete_rows(stmts, trash, id, moved)?;
            Ok((outcome, moved, None))
        }
        Err(err) => {
            log::warn!(
                target: crate::error::LOG_KEPT,
                "sandbox {name:?} (id {id}): cannot move its directory away, keeping the row for retry: {err:#}"
            );
            Ok((CleanupOutcome::DirRemoveFailed, None, None))
        }
    }
}

/// Cleans sandbox `sandbox_id` of `sandboxes_dir` (see
/// [`Sweeper::clean_ephemeral`](crate::Sweeper::clean_ephemeral)), holding
/// `locks` (beside a run directory) until its directory is settled.
pub(crate) fn clean_one(
    catalog: &Catalog,
    sandboxes_dir: &Path,
    sandbox_id: i64,
    locks: Option<RowLocks<'_>>,
) -> Result<CleanupOutcome> {
    // Made before the transaction, so its locks outlive it whichever way
    // it ends.
    let mut row = RowContext::new(catalog, Trash::new(sandboxes_dir), locks);
    row.trash.sandboxes().check()?;
    let tx = catalog.immediate()?;
    let (outcome, moved, invalid) = clean_row(&mut row, sandbox_id, Mode::Write)?;
    drop(row.stmts);
    let trash = &row.trash;
    if let Some(column) = invalid {
        log::warn!(
            "sandbox {sandbox_id}: its {column} is not stored as the catalog declares; left as it is"
        );
    }
    // `row.locks` is held until the row's transaction has ended and its
    // directory is deleted or put back.
    let ended = tx.commit().map_err(Error::from_sqlite);
    let settled = trash.settle(ended, moved);
    // A crash's leftover set aside on the way: garbage either way.
    for entry in trash.take_garbage() {
        trash.discard(&entry, None);
    }
    if let Some(moved) = settled? {
        trash.discard(moved.entry(), None);
        trash.remove_if_empty();
    }
    Ok(outcome)
}
