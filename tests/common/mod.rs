//! Helpers shared by the integration tests: the one place a test's setup,
//! runs of the binary and reads of the catalog are written.
//!
//! Each test binary declares it `pub mod common;`: every binary uses a
//! different part, and as a public module of its crate nothing here is
//! reported unused in the binaries that do not call it. Each item is
//! documented and used by some test (no `allow` hides a dead one).

pub mod fixture;
pub mod holder;
pub mod measure;
pub mod mount;
pub mod msb;
pub mod rundir;

pub use fixture::{DEAD_PID, Fixture, NOW, TRASH_DIR, exists, now, own_pid, swept};
pub use holder::Holder;
pub use mount::Mount;
pub use rundir::{busy_listener, h16, lock_at, socket_paths};

use std::path::PathBuf;
use std::process::{Command, Output};

use rusqlite::{Connection, params};

/// What a test returns: `?` on any error fails it with the error's text.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The built `sandbox-sweep` binary, ready for arguments.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sandbox-sweep"))
}

/// Runs the CLI with `args`; never waits on stdin.
pub fn cli(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the sandbox-sweep binary")
}

/// A run's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A run's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The last line of stdout, where `--json` puts its object.
pub fn json_line(out: &Output) -> String {
    stdout(out).lines().last().unwrap_or_default().to_owned()
}

/// The raw text of a scalar field in a flat JSON line: `"key":VALUE`.
pub fn json_field<'a>(line: &'a str, key: &str) -> &'a str {
    let needle = format!("\"{key}\":");
    let start = line
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + needle.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

/// A migrated catalog file and an existing sandboxes directory.
pub struct Env {
    /// The temporary directory, removed on drop.
    pub dir: tempfile::TempDir,
    /// `<dir>/catalog.db`, migrated.
    pub db: PathBuf,
    /// `<dir>/sandboxes`, made empty.
    pub sandboxes: PathBuf,
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

impl Env {
    /// An `Env` in a fresh temporary directory.
    pub fn new() -> Env {
        Env::with(tempfile::tempdir().expect("tempdir"))
    }

    /// An `Env` in a fresh directory inside `parent` (a test's mount, say).
    pub fn in_dir(parent: &std::path::Path) -> Env {
        Env::with(tempfile::tempdir_in(parent).expect("tempdir"))
    }

    fn with(dir: tempfile::TempDir) -> Env {
        let db = dir.path().join("catalog.db");
        let sandboxes = dir.path().join("sandboxes");
        std::fs::create_dir(&sandboxes).expect("mkdir sandboxes");
        let conn = sandbox_sweep::open(&db).expect("open");
        sandbox_sweep::migrate(&conn).expect("migrate");
        Env { dir, db, sandboxes }
    }

    /// A new connection to the catalog, as another process would open it.
    pub fn conn(&self) -> Connection {
        Connection::open(&self.db).expect("open catalog")
    }

    /// One sweep with no limits, through the library on a new connection
    /// (the lease window is fresh: nothing has swept this catalog yet).
    #[track_caller]
    pub fn sweep(&self) -> sandbox_sweep::Report {
        let catalog = sandbox_sweep::Catalog::from_connection(self.conn()).expect("a catalog");
        swept(
            sandbox_sweep::Sweeper::new(&self.sandboxes)
                .limits(sandbox_sweep::Limits::unlimited())
                .run(&catalog),
        )
    }

    /// The catalog's path as an argument.
    pub fn db_str(&self) -> &str {
        self.db.to_str().expect("utf8 path")
    }

    /// The sandboxes directory as an argument.
    pub fn sandboxes_str(&self) -> &str {
        self.sandboxes.to_str().expect("utf8 path")
    }

    /// `sweep --db DB --sandboxes-dir DIR` and then `extra`.
    pub fn sweep_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "sweep",
            "--db",
            self.db_str(),
            "--sandboxes-dir",
            self.sandboxes_str(),
        ];
        args.extend_from_slice(extra);
        args
    }
}

/// Inserts a sandbox row with only the columns microsandbox requires; returns its id.
pub fn add_sandbox(conn: &Connection, name: &str, status: &str, ephemeral: bool) -> i64 {
    conn.execute(
        "INSERT INTO sandbox (name, config, status, ephemeral) VALUES (?1, '{}', ?2, ?3)",
        params![name, status, ephemeral],
    )
    .expect("insert sandbox");
    conn.last_insert_rowid()
}

/// Inserts a `Running` run of `sandbox_id` owned by `pid`; returns its id.
pub fn add_run(conn: &Connection, sandbox_id: i64, pid: Option<i64>) -> i64 {
    conn.execute(
        "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, 'Running', '2026-06-01 00:00:00')",
        params![sandbox_id, pid],
    )
    .expect("insert run");
    conn.last_insert_rowid()
}

/// A fresh `Env` holding what every sweep acts on: a `Running` sandbox
/// `dead` whose runtime is gone, and a finished ephemeral `eph` with its
/// directory; with a connection and both ids.
pub fn dead_and_finished() -> (Env, Connection, i64, i64) {
    let env = Env::new();
    let conn = env.conn();
    let dead = add_sandbox(&conn, "dead", "Running", false);
    add_run(&conn, dead, Some(DEAD_PID));
    let eph = add_sandbox(&conn, "eph", "Stopped", true);
    std::fs::create_dir(env.sandboxes.join("eph")).expect("mkdir eph");
    (env, conn, dead, eph)
}

/// Every sandbox row as stored, `(name, status)` by id.
pub fn names_and_statuses(conn: &Connection) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare("SELECT name, status FROM sandbox ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// A sandbox's status as stored; `None` once its row is gone.
pub fn status_of(conn: &Connection, id: i64) -> Option<String> {
    conn.query_row("SELECT status FROM sandbox WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .ok()
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A test (or a case of one) that cannot run here, for `why`. Under `CI`
/// that is a failure: CI runs as root with every tool `.ci/run` installs,
/// so a test must never pass there by not running. Elsewhere the skip is
/// printed on stdout, which `cargo test -- --nocapture` shows.
pub fn cannot_run(what: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} cannot run under CI: {why}"
    );
    println!("SKIPPED {what}: {why}");
}

/// `true` when this process is root; otherwise [`cannot_run`] says why
/// `what` needs it, and this is `false`.
pub fn root_for(what: &str) -> bool {
    if is_root() {
        return true;
    }
    cannot_run(what, "needs root (mounts, other users)");
    false
}
