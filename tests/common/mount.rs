//! A mount a test makes, unmounted when dropped. Test-only.

use super::{cannot_run, is_root};

/// Unmounts on drop, so a failing assertion cannot leave a mount behind.
pub struct Mount(pub std::path::PathBuf);

impl Mount {
    /// Runs `mount ARGS TARGET`; `None` when this process may not mount
    /// (not root). As root, which CI is, the mount must work.
    pub fn new(args: &[&str], target: &std::path::Path, what: &str) -> Option<Mount> {
        let mounted = std::process::Command::new("mount")
            .args(args)
            .arg(target)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(!is_root(), "running as root but could not {what}");
            cannot_run(what, "not root, so no mount");
            return None;
        }
        Some(Mount(target.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Unmounted already (a test that unmounts on purpose): quiet.
        let _ = std::process::Command::new("umount")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
    }
}
