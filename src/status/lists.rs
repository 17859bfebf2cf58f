//! The lists of a [`Summary`]: how many entries each keeps
//! ([`SummaryOptions`]), what it holds ([`List`]), and the entries
//! [`Catalog::summary_with`] hands out as it finds them ([`Entry`]).
//!
//! Shapes only: no SQL, no probing, no decisions about which list a
//! sandbox is on.

use std::path::PathBuf;

#[cfg(doc)]
use super::Summary;
use super::{ActiveSandbox, StaleSandbox};
#[cfg(doc)]
use crate::catalog::Catalog;

/// The first entries of one of a [`Summary`]'s lists (as many as
/// [`SummaryOptions::keep`] allows) and how many the list had in all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct List<T> {
    /// The first entries, in the order they were found.
    pub first: Vec<T>,
    /// How many entries the list had, kept or not.
    pub total: u64,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            first: Vec::new(),
            total: 0,
        }
    }
}

impl<T> List<T> {
    pub(super) fn push(&mut self, item: T, keep: usize) {
        if self.first.len() < keep {
            self.first.push(item);
        }
        self.total += 1;
    }
}

/// Which of a [`Summary`]'s lists a stale sandbox is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleList {
    /// [`Summary::dead_active`].
    DeadActive,
    /// [`Summary::lifecycle_owned`].
    LifecycleOwned,
    /// [`Summary::abandoned_starts`].
    AbandonedStarts,
}

impl StaleList {
    /// Every list, in the order declared.
    pub const ALL: [StaleList; 3] = [
        StaleList::DeadActive,
        StaleList::LifecycleOwned,
        StaleList::AbandonedStarts,
    ];

    /// The list's field name: `dead_active`, `lifecycle_owned` or
    /// `abandoned_starts`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StaleList::DeadActive => "dead_active",
            StaleList::LifecycleOwned => "lifecycle_owned",
            StaleList::AbandonedStarts => "abandoned_starts",
        }
    }
}

/// The inverse of [`StaleList::as_str`].
///
/// ```
/// use sandbox_sweep::status::StaleList;
/// assert_eq!("dead_active".parse::<StaleList>()?, StaleList::DeadActive);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
impl std::str::FromStr for StaleList {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> crate::error::Result<StaleList> {
        crate::error::parse_word(&StaleList::ALL, StaleList::as_str, "stale_list", text)
    }
}

/// One entry of a summary's lists, as [`Catalog::summary_with`] finds it:
/// every stale sandbox first, then every active sandbox, each by status
/// then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry<'a> {
    /// A sandbox on one of the stale lists.
    Stale(StaleList, &'a StaleSandbox),
    /// An entry of [`Summary::active`].
    Active(&'a ActiveSandbox),
}

/// Where a summary looks and how much of each list it keeps.
///
/// ```
/// use sandbox_sweep::status::SummaryOptions;
///
/// let run = std::env::temp_dir().join("sandbox-sweep-doc-options");
/// let options = SummaryOptions::new().run_dir(&run).keep(20);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct SummaryOptions {
    pub(super) run_dir: Option<PathBuf>,
    pub(super) sandboxes_dir: Option<PathBuf>,
    pub(super) keep: usize,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions {
            run_dir: None,
            sandboxes_dir: None,
            keep: usize::MAX,
        }
    }
}

impl SummaryOptions {
    /// No run directory, every entry of every list kept.
    #[must_use]
    pub fn new() -> Self {
        SummaryOptions::default()
    }

    /// Summarise beside a microsandbox run directory: an active sandbox
    /// whose recorded runtime looks dead but whose creation or lifecycle
    /// lock is held goes to [`Summary::lifecycle_owned`], not to
    /// `dead_active`, and abandoned starts are told apart
    /// ([`Summary::abandoned_starts`]: their socket paths are asked whether
    /// anything answers; a connect writes nothing). Which locks are held is
    /// read from `/proc/locks`: no lock is taken (a runtime's own
    /// non-blocking `flock` must never fail because of a report) and no file
    /// is created. Where `/proc/locks` cannot be read, no lock counts as held.
    #[must_use]
    pub fn run_dir(mut self, run_dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(run_dir.into());
        self
    }

    /// The sandboxes directory, whose per-sandbox socket paths are asked
    /// too when telling abandoned starts apart (only with
    /// [`SummaryOptions::run_dir`]).
    #[must_use]
    pub fn sandboxes_dir(mut self, sandboxes_dir: impl Into<PathBuf>) -> Self {
        self.sandboxes_dir = Some(sandboxes_dir.into());
        self
    }

    /// Keep at most `keep` entries of each list (they are all still
    /// counted, and all handed to the callback of
    /// [`Catalog::summary_with`]); the default keeps every one.
    #[must_use]
    pub fn keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }
}
