//! The identity this process acts with: who owns what it creates, whose
//! permissions its calls are checked against, and the user database.
//!
//! Mechanism only: whose identity to take is `home::owner`'s. Only the
//! effective ids and the supplementary groups change; the real and saved
//! ids stay, so root can take its own back. Changing the effective uid
//! away from 0 clears every capability from the effective set (and the
//! file-system uid follows it); taking 0 back restores them. glibc applies
//! these calls to every thread of the process.

use std::ffi::CString;

use nix::errno::Errno;
pub(crate) use nix::unistd::{Gid, Uid};
use nix::unistd::{
    User, getegid, geteuid, getgrouplist, getgroups, getresgid, getresuid, setgroups, setresgid,
    setresuid,
};

/// Effective ids and supplementary groups, to be given back.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    groups: Vec<Gid>,
    gid: Gid,
    uid: Uid,
}

/// Whether this process acts as root (its effective uid is 0).
pub(crate) fn is_root() -> bool {
    geteuid().is_root()
}

/// This process's identity now.
pub(crate) fn current() -> nix::Result<Identity> {
    Ok(Identity {
        groups: getgroups()?,
        gid: getegid(),
        uid: geteuid(),
    })
}

/// The user `uid` is by the user database: its name's groups (with its
/// primary group) and that primary group; `None` when no user has it.
pub(crate) fn user_of(uid: Uid) -> nix::Result<Option<(Vec<Gid>, Gid)>> {
    let Some(user) = User::from_uid(uid)? else {
        return Ok(None);
    };
    let name = CString::new(user.name).map_err(|_| Errno::EINVAL)?;
    Ok(Some((getgrouplist(&name, user.gid)?, user.gid)))
}

/// Takes `groups`, then effective `gid`, then effective `uid`, in that
/// order (after the uid, no other may change), and checks each: `EPERM`
/// when one did not take.
pub(crate) fn become_user(groups: &[Gid], gid: Gid, uid: Uid) -> nix::Result<()> {
    setgroups(groups)?;
    let now = getgroups()?;
    let same = |a: &[Gid], b: &[Gid]| a.iter().all(|g| b.contains(g));
    if !same(&now, groups) || !same(groups, &now) {
        return Err(Errno::EPERM);
    }
    let rgid = getresgid()?;
    setresgid(rgid.real, gid, rgid.saved)?;
    if getegid() != gid {
        return Err(Errno::EPERM);
    }
    let ruid = getresuid()?;
    setresuid(ruid.real, uid, ruid.saved)?;
    if geteuid() != uid {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// Gives `to` back: the effective uid first (only it may then change the
/// rest), then the effective gid and the groups; checked.
pub(crate) fn restore(to: &Identity) -> nix::Result<()> {
    let ruid = getresuid()?;
    setresuid(ruid.real, to.uid, ruid.saved)?;
    let rgid = getresgid()?;
    setresgid(rgid.real, to.gid, rgid.saved)?;
    setgroups(&to.groups)?;
    if geteuid() != to.uid || getegid() != to.gid {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// For a test thread: file calls as `uid`/`gid` on this thread only
/// (Linux keeps the file-system ids per thread, and glibc does not spread
/// them), so tests running beside it keep root's.
#[cfg(test)]
pub(crate) fn files_as(uid: Uid, gid: Gid) {
    nix::unistd::setfsgid(gid);
    nix::unistd::setfsuid(uid);
}
