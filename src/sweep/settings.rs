//! What a sweep is told: where sandboxes and the run directory are, how
//! much it may do ([`Limits`]) and how many rows go in one transaction.
//!
//! Data only, a leaf: the sweeper fills it in and the pass reads it, so
//! neither imports the other.

use std::path::PathBuf;
use std::time::Duration;

/// Rows per write transaction unless [`Sweeper::batch_size`] says otherwise.
///
/// [`Sweeper::batch_size`]: crate::Sweeper::batch_size
const DEFAULT_BATCH: usize = 512;

/// How much one sweep may do. What is left waits for the next sweep.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sandbox_sweep::Limits;
///
/// let limits = Limits::default();
/// assert_eq!((limits.max_active, limits.max_ephemeral), (250, 250));
/// assert_eq!(limits.budget, Duration::from_millis(250));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most active (`Starting`/`Running`/`Draining`) candidates examined per sweep (default 250).
    pub max_active: usize,
    /// Most terminal ephemeral candidates examined per sweep (default 250).
    pub max_ephemeral: usize,
    /// Wall-clock budget, checked before each page and between rows (default 250 ms).
    pub budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_active: 250,
            max_ephemeral: 250,
            budget: Duration::from_millis(250),
        }
    }
}

impl Limits {
    /// No row limits and an effectively unlimited budget: what a tool
    /// draining a big backlog by hand wants, never a runtime start.
    ///
    /// # Examples
    ///
    /// ```
    /// let all = sandbox_sweep::Limits::unlimited();
    /// assert_eq!((all.max_active, all.max_ephemeral), (usize::MAX, usize::MAX));
    /// ```
    pub fn unlimited() -> Limits {
        Limits {
            max_active: usize::MAX,
            max_ephemeral: usize::MAX,
            budget: Duration::from_secs(u64::from(u32::MAX)),
        }
    }
}

/// A sweep's settings, as [`Sweeper`](crate::Sweeper) builds them.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) sandboxes_dir: PathBuf,
    pub(crate) run_dir: Option<PathBuf>,
    pub(crate) limits: Limits,
    pub(crate) batch_size: usize,
}

impl Settings {
    pub(crate) fn new(sandboxes_dir: PathBuf) -> Settings {
        Settings {
            sandboxes_dir,
            run_dir: None,
            limits: Limits::default(),
            batch_size: DEFAULT_BATCH,
        }
    }
}
