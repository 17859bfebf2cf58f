//! The file-system identity of this process: who owns what it creates and
//! whose permissions its file calls are checked against.
//!
//! Mechanism only: whose identity to take is `home::owner`'s. Linux's
//! `setfsuid`/`setfsgid` change the identity every file call uses and
//! nothing else (signals, `/proc` access by pid, the saved ids stay);
//! changing the file-system uid away from 0 also drops the file
//! capabilities (`CAP_DAC_OVERRIDE`, `CAP_FOWNER`, `CAP_CHOWN`, …) from the
//! effective set, and changing it back to 0 restores them.

use std::ffi::CString;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid, User, getgrouplist, getgroups, setfsgid, setfsuid, setgroups};

/// The supplementary groups `uid` has by the user database (its name's
/// groups, with `gid`); just `gid` when no user has that uid.
pub(crate) fn groups_of(uid: Uid, gid: Gid) -> nix::Result<Vec<Gid>> {
    let Some(user) = User::from_uid(uid)? else {
        return Ok(vec![gid]);
    };
    let name = CString::new(user.name).map_err(|_| Errno::EINVAL)?;
    getgrouplist(&name, gid)
}

/// This process's supplementary groups.
pub(crate) fn current_groups() -> nix::Result<Vec<Gid>> {
    getgroups()
}

/// Takes `groups`, then `gid`, then `uid` as the identity file calls use,
/// in that order, and checks each: `EPERM` when one did not take (only
/// root may change them).
pub(crate) fn set_fs_identity(groups: &[Gid], gid: Gid, uid: Uid) -> nix::Result<()> {
    setgroups(groups)?;
    let now = getgroups()?;
    let same = |a: &[Gid], b: &[Gid]| a.iter().all(|g| b.contains(g));
    if !same(&now, groups) || !same(groups, &now) {
        return Err(Errno::EPERM);
    }
    // Each call answers the previous id, never an error: a second call
    // with the same id answers what the first one set.
    setfsgid(gid);
    if setfsgid(gid) != gid {
        return Err(Errno::EPERM);
    }
    setfsuid(uid);
    if setfsuid(uid) != uid {
        return Err(Errno::EPERM);
    }
    Ok(())
}
