//! Acting as a home's owner: what a tool run as root does before it opens
//! anything in a home that another user owns (logrotate's `su`).
//!
//! Owns whose identity that is, when a path is not safe to act in as
//! anyone, and that the switch is checked. Must not open, create or change
//! any file: it reads path metadata and the user database, nothing else.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::sys::path::{owned_nofollow, resolved};
use crate::sys::user::{Identity, Uid, become_user, current, is_root, restore, user_of};

/// This process acting as a home's owner, until dropped.
///
/// Run as root over a home that another user owns (a system timer, `sudo
/// sandbox-sweep sweep`), everything a sweep creates there (lock files and
/// their folders, the trash) would be root's, and microsandbox, run as
/// that user, then fails with `Permission denied` on its own sandboxes.
/// Acting as the owner (their uid, primary group and groups, as the
/// effective ids), every call is checked against the owner's permissions,
/// every file made is the owner's, and root's capabilities are out of
/// effect: a symlink the owner plants anywhere in the home, at any
/// instant, steers nothing the owner could not do alone.
///
/// The real and saved ids stay root's, so dropping this gives root back
/// (for a metrics file in a root-owned directory, say), and the owner
/// cannot signal or trace the process meanwhile. The ids are the whole
/// process's (glibc applies them to every thread). Nothing else in this
/// crate changes the process's identity.
///
/// # Examples
///
/// ```no_run
/// use sandbox_sweep::home::ActingAsOwner;
///
/// let home = std::path::Path::new("/home/alice/.microsandbox");
/// let acting = ActingAsOwner::of([home])?;
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
    /// Who the process was, given back on drop.
    was: Identity,
}

impl ActingAsOwner {
    /// Acts as the user who owns `paths` (a home; or a catalog's directory
    /// and the directories a sweep works in) when this process runs as
    /// root and another user owns any of them; `None`, with nothing
    /// changed, when the process is not root or root owns them all.
    ///
    /// A path belongs to a user when that user owns it or any directory on
    /// the way to it, as given (a symlink included, itself) and as
    /// resolved: whoever owns a directory on the way can swap what lies
    /// below it at any instant, so its contents are only as trusted as
    /// that user. A path that does not exist yet is judged by the
    /// directories that do.
    ///
    /// # Errors
    ///
    /// [`Error::Ownership`] when the paths belong to more than one user,
    /// when a directory on the way is root's but writable by a group or by
    /// everyone without the sticky bit (anyone there could swap it), or
    /// when the owner has no entry in the user database (no primary group
    /// to act with); [`Error::Io`] when a path cannot be examined or a
    /// switch did not take (checked after each of groups, gid and uid; the
    /// identity is then root's again).
    pub fn of<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Option<ActingAsOwner>> {
        if !is_root() {
            return Ok(None);
        }
        let mut owner: Option<(u32, PathBuf)> = None;
        for path in paths {
            let path = path.as_ref();
            for (at, uid) in owners_on_the_way(path)? {
                match &owner {
                    None => owner = Some((uid, at)),
                    Some((first, _)) if *first == uid => {}
                    Some((first, first_at)) => {
                        return Err(Error::Ownership {
                            path: at,
                            detail: format!(
                                "belongs to uid {uid}, and {} to uid {first}: act as one user at a time",
                                first_at.display()
                            ),
                        });
                    }
                }
            }
        }
        let Some((uid, at)) = owner else {
            return Ok(None);
        };
        let Some((groups, gid)) = user_of(Uid::from_raw(uid)).at(&at)? else {
            return Err(Error::Ownership {
                path: at,
                detail: format!(
                    "belongs to uid {uid}, which has no entry in the user database: \
                     run as that user instead"
                ),
            });
        };
        let was = current().at(&at)?;
        let acting = ActingAsOwner {
            uid,
            gid: gid.as_raw(),
            was,
        };
        // On failure, `acting` is dropped here and gives root's back.
        become_user(&groups, gid, Uid::from_raw(uid)).at(&at)?;
        log::info!(
            "{}: acting as its owner, uid {} gid {} (groups {})",
            at.display(),
            acting.uid,
            acting.gid,
            groups
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(Some(acting))
    }

    /// The effective uid the process now acts with.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The effective gid the process now acts with (the owner's primary
    /// group).
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

impl Drop for ActingAsOwner {
    fn drop(&mut self) {
        // Root may always take its own ids back (the saved uid is 0); were
        // it refused, the process would go on with less than it had, never
        // more.
        if let Err(errno) = restore(&self.was) {
            log::warn!(
                "could not take back the identity it had before acting as uid {}: {errno}",
                self.uid
            );
        }
    }
}

/// Every component of `path` that a user other than root owns, with that
/// user: each prefix as given (a symlink examined itself) and each prefix
/// of where it resolves. `Err` for a root directory on the way that others
/// may write without the sticky bit.
fn owners_on_the_way(path: &Path) -> Result<Vec<(PathBuf, u32)>> {
    let given = std::path::absolute(path).at(path)?;
    let mut found = Vec::new();
    let mut walk = |full: &Path| -> Result<()> {
        let mut prefix = PathBuf::new();
        for part in full.components() {
            prefix.push(part);
            let Some(meta) = owned_nofollow(&prefix).at(&prefix)? else {
                return Ok(());
            };
            if meta.uid != 0 {
                found.push((prefix.clone(), meta.uid));
                continue;
            }
            let mode = meta.mode;
            let others_write = mode & 0o022 != 0;
            let sticky = mode & 0o1000 != 0;
            if meta.is_dir && others_write && !sticky {
                return Err(Error::Ownership {
                    path: prefix,
                    detail: format!(
                        "is root's but writable by others (mode {:o}) without the sticky bit: \
                         anyone there could swap what lies below it",
                        mode & 0o7777
                    ),
                });
            }
        }
        Ok(())
    };
    walk(&given)?;
    if let Some(resolved) = resolved(&given) {
        walk(&resolved)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_home_needs_no_switch_and_a_shared_one_is_refused() -> Result<()> {
        if !is_root() {
            assert!(std::env::var_os("CI").is_none(), "needs root under CI");
            return Ok(());
        }
        let dir = tempfile::tempdir().at(Path::new("tmp"))?;
        let home = dir.path().join("home");
        std::fs::create_dir(&home).at(&home)?;
        assert!(ActingAsOwner::of([&home])?.is_none());
        // A directory on the way that a group may write: refused.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).at(&shared)?;
        std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o775))
            .at(&shared)?;
        std::fs::create_dir(shared.join("home")).at(&shared)?;
        match ActingAsOwner::of([shared.join("home")]) {
            Err(Error::Ownership { path, .. }) => assert_eq!(path, shared),
            other => panic!("expected Ownership, got {other:?}"),
        }
        // Two users' paths at once: refused, before anything changed.
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for (p, uid) in [(&a, 65534), (&b, 42)] {
            std::fs::create_dir(p).at(p)?;
            nix::unistd::chown(p.as_path(), Some(Uid::from_raw(uid)), None).at(p)?;
        }
        match ActingAsOwner::of([&a, &b]) {
            Err(Error::Ownership { path, .. }) => assert_eq!(path, b),
            other => panic!("expected Ownership, got {other:?}"),
        }
        assert!(is_root());
        Ok(())
    }
}
