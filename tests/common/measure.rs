//! A child process's peak memory, as the kernel counts it (`ru_maxrss`),
//! read through GNU time, for tests that hold memory flat.
//!
//! GNU time forks a small copy of itself before it execs the command. The
//! test process cannot measure its own children this way: on Linux, a
//! child's `ru_maxrss` includes the peak of the memory it was spawned from
//! (the kernel carries it across `exec`), so a test binary that has read
//! large outputs would see its own peak, not the child's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where GNU time is (Debian's `time` package; `.ci/run` installs it).
pub const GNU_TIME: &str = "/usr/bin/time";

/// Runs `program args` with stdout into the file `stdout`, and returns its
/// exit code and its peak resident set in KiB. Waits at most `limit`, then
/// kills it and panics.
pub fn peak_rss_kib(
    program: &Path,
    args: &[&str],
    stdout: &Path,
    limit: Duration,
) -> (Option<i32>, u64) {
    let report = stdout.with_extension("peak");
    let mut child = Command::new(GNU_TIME)
        .args(["--quiet", "-f", "%M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).expect("create the output file"))
        .spawn()
        .expect("spawn GNU time");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program:?} {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = std::fs::read_to_string(&report).expect("GNU time's report");
    let kib = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("GNU time said {text:?}"));
    (status.code(), kib)
}
