//! Acting as a home's owner: what a tool run as root does before it opens
//! anything in a home that another user owns (logrotate's `su`, for the
//! file system only).
//!
//! Owns whose identity that is and that the switch is checked. Must not
//! change anything but the identity file calls use: the sweep's evidence
//! (signals, `/proc`) is read as before, and no file is touched here
//! beyond the two `stat`s of the home.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Uid, geteuid};

use crate::error::{IoContext, Result};
use crate::sys::user::{current_groups, groups_of, set_fs_identity};

/// This process acting on files as a home's owner, until dropped.
///
/// Run as root over a home that another user owns (a system timer, `sudo
/// sandbox-sweep sweep`), everything a sweep creates there (lock files and
/// their folders, the trash) would be root's, and microsandbox, run as
/// that user, then fails with `Permission denied` on its own sandboxes.
/// Acting as the owner, every file call is checked against the owner's
/// permissions and every file made is the owner's, by construction: a
/// symlink the owner plants anywhere in the home steers nothing the owner
/// could not do alone.
///
/// Only the identity used for files changes (Linux's file-system uid and
/// gid, and the supplementary groups): the process keeps its user, so it
/// may still read every process's liveness and, once this is dropped,
/// write a file where root asked (a metrics file in a root-owned
/// directory). Linux keeps the file-system ids per thread: take this on
/// the thread that does the work, in a tool with one thread. Nothing else
/// in this crate changes the process's identity.
///
/// # Examples
///
/// ```no_run
/// use sandbox_sweep::home::ActingAsOwner;
///
/// let home = std::path::Path::new("/home/alice/.microsandbox");
/// let acting = ActingAsOwner::of(home)?;
/// if let Some(acting) = &acting {
///     println!("acting as uid {} gid {}", acting.uid(), acting.gid());
/// }
/// // ... open the catalog and sweep: what is created is alice's.
/// drop(acting);
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the process acts as the owner only while this is held"]
pub struct ActingAsOwner {
    uid: u32,
    gid: u32,
    /// Root's supplementary groups, given back on drop.
    groups: Vec<Gid>,
}

impl ActingAsOwner {
    /// Acts as the owner of `home` (its owner and group, and the owner's
    /// supplementary groups from the user database) when this process runs
    /// as root and the home belongs to another user; `None` otherwise
    /// (not root, or a home of root's), with nothing changed.
    ///
    /// The owner is that of `home` itself when it is a symlink that
    /// another user owns, else that of the directory it names: a user who
    /// swaps their home for a link to a directory of root's does not get
    /// root's hands.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when `home` cannot be examined, or
    /// when a switch did not take (checked after each of groups, gid and
    /// uid); the identity is then root's again.
    pub fn of(home: &Path) -> Result<Option<ActingAsOwner>> {
        if !geteuid().is_root() {
            return Ok(None);
        }
        let link = std::fs::symlink_metadata(home).at(home)?;
        let meta = if link.file_type().is_symlink() && link.uid() != 0 {
            link
        } else {
            std::fs::metadata(home).at(home)?
        };
        if meta.uid() == 0 {
            return Ok(None);
        }
        let (uid, gid) = (Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid()));
        let groups = current_groups().at(home)?;
        let theirs = groups_of(uid, gid).at(home)?;
        let acting = ActingAsOwner {
            uid: meta.uid(),
            gid: meta.gid(),
            groups,
        };
        // On failure, `acting` is dropped here and gives root's back.
        set_fs_identity(&theirs, gid, uid).at(home)?;
        log::info!(
            "{}: acting as its owner, uid {} gid {} (groups {})",
            home.display(),
            acting.uid,
            acting.gid,
            theirs
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(Some(acting))
    }

    /// The uid files are now made and checked as.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The gid files are now made and checked as.
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

impl Drop for ActingAsOwner {
    fn drop(&mut self) {
        // Root may always take its own ids back; were it refused, the
        // process would only go on with less than it had, never more.
        if set_fs_identity(&self.groups, Gid::from_raw(0), Uid::from_raw(0)).is_err() {
            log::warn!(
                "could not act as root again after acting as uid {}",
                self.uid
            );
        }
    }
}
