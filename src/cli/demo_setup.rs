//! What the demo stands up before it builds its catalog: child processes
//! in the states a recorded runtime can be in, and the home's folders,
//! held locks and stale sockets. No catalog here.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sandbox_sweep::Sweeper;
use sandbox_sweep::rundir::lifecycle_lock_path;

use super::CliError;

/// A pid no kernel hands out (above every `pid_max`), for when no child can be spawned.
pub(super) const NEVER_A_PID: i64 = 2_000_000_000;

/// Children spawned for the demo, reaped when it ends.
pub(super) struct Children {
    pub(super) exited: Option<i64>,
    zombie: Option<Child>,
}

impl Children {
    pub(super) fn spawn() -> Children {
        let exited = Command::new("true").spawn().ok().and_then(|mut child| {
            let pid = i64::from(child.id());
            child.wait().ok().map(|_| pid)
        });
        let zombie = Command::new("true").spawn().ok();
        if let Some(child) = &zombie {
            wait_until_zombie(child.id());
        }
        Children { exited, zombie }
    }

    pub(super) fn zombie_pid(&self) -> i64 {
        self.zombie
            .as_ref()
            .map_or(NEVER_A_PID, |c| i64::from(c.id()))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if let Some(child) = &mut self.zombie {
            let _ = child.wait();
        }
    }
}

/// Gives the child a moment to exit (bounded: 2 s).
fn wait_until_zombie(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    while Instant::now() < deadline {
        match std::fs::read(&stat) {
            Ok(line)
                if sandbox_sweep::__private::parse_proc_stat(&line)
                    .is_some_and(|s| s.is_zombie()) =>
            {
                return;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return,
        }
    }
}

/// Where the demo's catalog, sandboxes and microsandbox run dir live.
pub(super) struct Layout {
    pub(super) db: PathBuf,
    pub(super) sandboxes: PathBuf,
    pub(super) run: PathBuf,
}

impl Layout {
    pub(super) fn new(root: &Path) -> Result<Layout, CliError> {
        let layout = Layout {
            db: root.join("catalog.db"),
            sandboxes: root.join("sandboxes"),
            run: root.join("run"),
        };
        for dir in [&layout.sandboxes, &layout.run] {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
        }
        Ok(layout)
    }

    pub(super) fn sweeper(&self) -> Sweeper {
        Sweeper::new(&self.sandboxes).run_dir(&self.run).force(true)
    }

    /// Takes microsandbox's lock `<run>/<dir>/<H16><suffix>` of sandbox
    /// `name` (as a launcher or a snapshot capture does: `flock`, which
    /// std's `File::try_lock` is on Linux), held until the file is dropped.
    pub(super) fn hold(
        &self,
        dir: &str,
        name: &str,
        suffix: &str,
    ) -> Result<std::fs::File, CliError> {
        let lock = lifecycle_lock_path(&self.run, name);
        let h16 = lock
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let path = self.run.join(dir).join(format!("{h16}{suffix}"));
        let fail = |e: &dyn std::fmt::Display| CliError::Other(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(self.run.join(dir)).map_err(|e| fail(&e))?;
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail(&e))?;
        file.try_lock().map_err(|e| fail(&e))?;
        Ok(file)
    }

    /// Bound (then closed) Unix sockets where a runtime of `name` leaves
    /// them: what a runtime that died without cleaning up leaves behind.
    pub(super) fn dead_runtime_sockets(&self, name: &str) -> Result<Vec<PathBuf>, CliError> {
        let lock = lifecycle_lock_path(&self.run, name);
        let h16 = lock
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let dir = self.run.join("sandboxes").join(&h16[..24.min(h16.len())]);
        let paths = vec![dir.join("agent.sock"), dir.join("control.sock")];
        std::fs::create_dir_all(&dir)
            .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
        for path in &paths {
            UnixListener::bind(path)
                .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
        }
        Ok(paths)
    }
}
