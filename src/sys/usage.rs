//! How much disk an entry holds: allocated bytes of a tree, counted
//! without following a symlink, and when the entry last changed.
//!
//! Reads only, relative to open descriptors, bounded by a deadline (a
//! sandbox's tree can be arbitrarily large). No policy here.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag, fstatat};

use super::dir::open_dir_nofollow;
use super::listing::Listing;

/// What one entry holds on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Allocated bytes (`st_blocks` × 512), the entry and all below it.
    pub bytes: u64,
    /// Since it last changed, its data or its inode (`None`: a time in
    /// the future).
    pub age: Option<Duration>,
    /// A directory (not a symlink to one).
    pub is_dir: bool,
    /// The whole tree was counted before the deadline.
    pub complete: bool,
}

fn allocated(stat: &FileStat) -> u64 {
    u64::try_from(stat.st_blocks)
        .unwrap_or(0)
        .saturating_mul(512)
}

fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Since the newer of its modification and status-change times: `touch
/// -d`, `cp -a` or `rsync -a` set `st_mtime` freely, but any change sets
/// `st_ctime` to now.
fn age(stat: &FileStat) -> Option<Duration> {
    let secs = u64::try_from(stat.st_mtime.max(stat.st_ctime)).ok()?;
    let changed = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
    SystemTime::now().duration_since(changed).ok()
}

/// The usage of `name` in `parent`; `Ok(None)` when it is gone. Entries
/// that vanish or cannot be read mid-walk count as nothing.
pub(crate) fn usage_at(
    parent: BorrowedFd<'_>,
    name: &CStr,
    deadline: Instant,
) -> nix::Result<Option<Usage>> {
    let stat = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(None),
        Err(errno) => return Err(errno),
    };
    let mut usage = Usage {
        bytes: allocated(&stat),
        age: age(&stat),
        is_dir: is_dir(&stat),
        complete: true,
    };
    if usage.is_dir {
        let (below, complete) = tree_bytes(parent, name, deadline);
        usage.bytes = usage.bytes.saturating_add(below);
        usage.complete = complete;
    }
    Ok(Some(usage))
}

/// Allocated bytes below directory `name` (not its own), and whether the
/// walk finished before `deadline`. An explicit stack: no depth limit.
fn tree_bytes(parent: BorrowedFd<'_>, name: &CStr, deadline: Instant) -> (u64, bool) {
    let Ok(top) = open_dir_nofollow(parent, name).and_then(Listing::new) else {
        return (0, true);
    };
    let mut stack = vec![top];
    let mut total = 0u64;
    while let Some(dir) = stack.last_mut() {
        if Instant::now() >= deadline {
            return (total, false);
        }
        let Some(entry) = dir.next_name() else {
            stack.pop();
            continue;
        };
        let Ok(entry) = entry else { continue };
        let fd = dir.as_fd();
        let Ok(stat) = fstatat(fd, entry.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        total = total.saturating_add(allocated(&stat));
        if is_dir(&stat)
            && let Ok(sub) = open_dir_nofollow(fd, &entry).and_then(Listing::new)
        {
            stack.push(sub);
        }
    }
    (total, true)
}
