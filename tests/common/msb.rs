//! The real microsandbox (`msb` from the pinned PyPI wheels), as the tests
//! use it for an oracle: fetched and cached by `tests/msb/setup.sh`, a home
//! copied from the template per test, and `msb` runs bounded in time.
//! Test-only.
//!
//! Under `CI` a setup that fails is a test failure. Elsewhere (a machine
//! with no pip or no Debian packages) the tests that need msb say so
//! (`common::cannot_run`) and stop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The releases users run, oldest first, each pinned by `setup.sh`. They
/// share the home layout and the lock protocols; where their sweeps
/// differ, the test that compares says how and why.
pub const RELEASES: [&str; 3] = ["0.6.18", "0.7.0", "0.7.11"];

/// The cached binary and the template home (image loaded, one sandbox
/// `seed` that msb created) of one release.
pub struct Msb {
    /// One of [`RELEASES`].
    pub release: &'static str,
    /// The `msb` binary.
    pub bin: PathBuf,
    /// The template home, never written by a test.
    pub template: PathBuf,
}

/// msb 0.7.11, set up once per test binary; `None` (after saying why) only
/// outside CI.
pub fn msb() -> Option<&'static Msb> {
    release("0.7.11")
}

/// Every release of [`RELEASES`], set up once per test binary; `None`
/// (after saying why) only outside CI.
pub fn releases() -> Option<Vec<&'static Msb>> {
    RELEASES.iter().map(|r| release(r)).collect()
}

/// msb `version` (one of [`RELEASES`]), set up once per test binary.
pub fn release(version: &'static str) -> Option<&'static Msb> {
    static SET_UP: [OnceLock<Option<Msb>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let at = RELEASES
        .iter()
        .position(|r| *r == version)
        .expect("a pinned release");
    SET_UP[at]
        .get_or_init(|| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/msb/setup.sh");
            let out = Command::new("bash")
                .arg(script)
                .arg(version)
                .stdin(Stdio::null())
                .output();
            let why = match out {
                Ok(out) if out.status.success() => {
                    let text = String::from_utf8_lossy(&out.stdout);
                    let field = |key: &str| {
                        text.lines()
                            .find_map(|l| l.strip_prefix(key))
                            .map(PathBuf::from)
                    };
                    match (field("msb="), field("home=")) {
                        (Some(bin), Some(template)) => {
                            return Some(Msb {
                                release: version,
                                bin,
                                template,
                            });
                        }
                        _ => format!("setup.sh printed no paths: {text}"),
                    }
                }
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(err) => format!("cannot run bash: {err}"),
            };
            super::cannot_run(&format!("the real msb {version}"), &why);
            None
        })
        .as_ref()
}

/// One msb at a time in a test binary: each boot attempt keeps a core busy
/// for ~20 s, and two would only slow each other down.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A microsandbox home of a test's own, copied from the template; removed
/// (with everything msb put in it) when dropped.
pub struct Home {
    /// The temporary directory holding the home.
    pub dir: tempfile::TempDir,
    /// `<dir>/home`, the copy.
    pub path: PathBuf,
}

impl Home {
    /// A fresh copy of `msb`'s template home.
    pub fn new(msb: &Msb) -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("home");
        copy_tree(&msb.template, &path);
        Home { dir, path }
    }

    /// A copy of this home beside it, named `name`.
    pub fn copy(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        copy_tree(&self.path, &path);
        path
    }
}

/// `cp -a from to`: msb's homes hold sparse disk images, which `cp` keeps
/// sparse.
pub fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// `msb ARGS` in home `home`, never reading stdin.
pub fn command(msb: &Msb, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(&msb.bin);
    cmd.args(args).env("MSB_HOME", home).stdin(Stdio::null());
    cmd
}

/// `msb ARGS` to the end, at most `limit`; its output.
pub fn run(msb: &Msb, home: &Path, args: &[&str], limit: Duration) -> Output {
    let child = command(msb, home, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn msb");
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + limit;
    while !waiter.is_finished() {
        if Instant::now() >= deadline {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("msb {args:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().expect("join").expect("msb output")
}

/// Waits for `child` at most `limit`; kills it and fails past that.
pub fn wait(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("msb ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The config msb wrote for `seed`, renamed `name` and made ephemeral or
/// not, as msb would have written it for that sandbox.
pub fn config_for(seed: &str, name: &str, ephemeral: bool) -> String {
    let renamed = seed.replacen("\"name\":\"seed\"", &format!("\"name\":\"{name}\""), 1);
    assert_ne!(renamed, seed, "seed's config names no sandbox: {seed}");
    let lifecycle = format!("\"lifecycle\":{{\"ephemeral\":{ephemeral}");
    let out = renamed.replacen("\"lifecycle\":{\"ephemeral\":false", &lifecycle, 1);
    assert!(
        out.contains(&lifecycle),
        "seed's config has no lifecycle: {seed}"
    );
    out
}

/// Whether someone holds an exclusive `flock` on the file at `path`, read
/// from `/proc/locks` without taking it (taking it, even for a moment,
/// could make msb's own non-blocking `flock` fail).
pub fn flock_held(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let locks = std::fs::read_to_string("/proc/locks").expect("read /proc/locks");
    let ino = meta.ino().to_string();
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"FLOCK")
            && fields.get(3) == Some(&"WRITE")
            && fields
                .get(5)
                .and_then(|id| id.rsplit(':').next())
                .is_some_and(|i| i == ino)
    })
}
