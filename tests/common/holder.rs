//! A child process holding a lock file, as a sandbox process, a launcher
//! or a snapshot capture does. Test-only.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fixture::exists;
use sandbox_sweep::rundir::lifecycle_lock_path;

/// A child process holding one of a sandbox's lock files, as a sandbox
/// process or a launcher does, killed and reaped when dropped.
pub struct Holder(Child);

impl Holder {
    /// Holds sandbox `name`'s lifecycle lock.
    pub fn new(run: &Path, name: &str) -> Holder {
        Holder::at(&lifecycle_lock_path(run, name))
    }

    /// Starts a shell that opens the lock file at `path`, locks it with
    /// `flock(1)` (the lock belongs to the open file, which it keeps),
    /// says so in a file beside it and becomes `sleep 60`; waits (at most
    /// 5 s) for that word. `flock(1)` is util-linux's, on every Linux.
    pub fn at(path: &Path) -> Holder {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let ready = path.with_extension("ready");
        let child = Command::new("sh")
            .args([
                "-c",
                "exec 9>>\"$1\" && flock -x 9 && : > \"$2\" && exec sleep 60",
                "sh",
            ])
            .arg(path)
            .arg(&ready)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the holder");
        let holder = Holder(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if exists(&ready) {
                std::fs::remove_file(&ready).expect("remove the ready file");
                return holder;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the child never took the lock at {}", path.display());
    }

    /// `SIGKILL`s the holder and reaps it.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
