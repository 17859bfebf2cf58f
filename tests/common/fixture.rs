//! The one test fixture, shared by the unit tests (`src/lib.rs` includes
//! this file) and the integration tests (through `tests/common`): a
//! migrated catalog file and a sandboxes directory, and the constants every
//! test agrees on. Test-only; uses the crate as a user would.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use time::PrimitiveDateTime;

use sandbox_sweep::{Catalog, Result};

/// A pid above every kernel's `pid_max`: `kill` says `ESRCH`.
pub const DEAD_PID: i64 = 2_000_000_000;
/// The fixed "now" of the fixture clock.
pub const NOW: &str = "2026-06-04 12:00:00";

/// [`NOW`] as a time.
pub fn now() -> PrimitiveDateTime {
    sandbox_sweep::__private::parse_stamp(NOW).expect("valid fixture time")
}

/// This test process's pid, as the catalog stores pids.
pub fn own_pid() -> i64 {
    i64::from(std::process::id())
}

/// A run's `(status, termination_reason, terminated_at)` as stored.
pub type RunRow = (String, Option<String>, Option<String>);

/// A migrated catalog `catalog.db` and an empty `sandboxes` directory in a
/// temporary directory, with one connection open.
pub struct Fixture {
    /// The temporary directory, removed on drop.
    pub dir: tempfile::TempDir,
    /// `<dir>/sandboxes`, made empty.
    pub sandboxes: PathBuf,
    /// The catalog, opened and migrated.
    pub catalog: Catalog,
}

impl Fixture {
    /// A fresh fixture in a new temporary directory.
    pub fn new() -> Result<Fixture> {
        let dir = tempfile::tempdir().map_err(|e| sandbox_sweep::Error::Io {
            path: "tmp".into(),
            source: e,
        })?;
        let conn = sandbox_sweep::open(dir.path().join("catalog.db"))?;
        sandbox_sweep::migrate(&conn)?;
        Fixture::with(dir, conn)
    }

    /// A fixture on `conn` (already migrated, or not: the test's choice) in `dir`.
    pub fn with(dir: tempfile::TempDir, conn: Connection) -> Result<Fixture> {
        let sandboxes = dir.path().join("sandboxes");
        std::fs::create_dir(&sandboxes).map_err(|e| sandbox_sweep::Error::Io {
            path: sandboxes.clone(),
            source: e,
        })?;
        Ok(Fixture {
            dir,
            sandboxes,
            catalog: Catalog::from_connection(conn)?,
        })
    }

    /// The catalog's connection, for the test's own SQL.
    pub fn conn(&self) -> &Connection {
        self.catalog.connection()
    }

    /// The catalog file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("catalog.db")
    }

    /// Inserts a sandbox row as microsandbox writes one (an `active_config`
    /// set, as for a started sandbox); returns its id.
    pub fn sandbox(&self, name: &str, status: &str, ephemeral: bool) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO sandbox (name, config, status, ephemeral, created_at, updated_at, active_config)
             VALUES (?1, '{}', ?2, ?3, '2026-06-01 00:00:00', '2026-06-01 00:00:00', '{\"cpus\":1}')",
            params![name, status, ephemeral],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Inserts a run with no identity columns, started at the fixture's epoch.
    pub fn run(&self, sandbox_id: i64, pid: Option<i64>, status: &str) -> Result<i64> {
        self.run_at(sandbox_id, pid, status, "2026-06-01 00:00:00")
    }

    /// Inserts a run with no identity columns, started at `started_at`.
    pub fn run_at(
        &self,
        sandbox_id: i64,
        pid: Option<i64>,
        status: &str,
        started_at: &str,
    ) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, ?3, ?4)",
            params![sandbox_id, pid, status, started_at],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// `n` `Running` sandboxes `s0`, `s1`, … whose runtime is dead.
    pub fn stale(&self, n: usize) -> Result<Vec<i64>> {
        (0..n)
            .map(|i| {
                let id = self.sandbox(&format!("s{i}"), "Running", false)?;
                self.run(id, Some(DEAD_PID), "Running")?;
                Ok(id)
            })
            .collect()
    }

    /// Creates `<sandboxes>/<name>` with a file inside.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let path = self.sandboxes.join(name);
        std::fs::create_dir_all(path.join("rootfs")).expect("create sandbox dir");
        std::fs::write(path.join("rootfs/data"), b"payload").expect("write sandbox file");
        path
    }

    /// A sandbox's status as stored; `None` once its row is gone.
    pub fn status(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT status FROM sandbox WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// `(status, termination_reason, terminated_at)` of a run.
    pub fn run_row(&self, id: i64) -> Result<Option<RunRow>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT status, termination_reason, terminated_at FROM run WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// The one integer `sql` selects.
    pub fn count(&self, sql: &str) -> Result<i64> {
        Ok(self.conn().query_row(sql, [], |r| r.get(0))?)
    }
}

/// Whether anything (a symlink included) is at `path`.
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The trash folder inside the sandboxes directory, as the crate documents it.
pub const TRASH_DIR: &str = ".sandbox-sweep-trash";

/// The report of a sweep that ran; a skip or a failure fails the test,
/// saying which.
#[track_caller]
pub fn swept(outcome: sandbox_sweep::SweepOutcome) -> sandbox_sweep::Report {
    match outcome {
        sandbox_sweep::SweepOutcome::Swept(report) => report,
        other => panic!("expected a sweep, got {other:?}"),
    }
}

impl Fixture {
    /// One forced sweep with no limits of `self` at the fixture's "now":
    /// what the rules do to every row.
    #[track_caller]
    pub fn sweep(&self) -> sandbox_sweep::Report {
        swept(
            sandbox_sweep::Sweeper::new(&self.sandboxes)
                .limits(sandbox_sweep::Limits::unlimited())
                .force(true)
                .run_with(&self.catalog, &now),
        )
    }
}

impl Fixture {
    /// The sweep lease, forced past the recent-sweep window at the
    /// fixture's "now"; held by someone else fails the test.
    #[track_caller]
    pub fn lease(&self) -> sandbox_sweep::lease::Lease<'_> {
        match self
            .catalog
            .try_acquire(&now, sandbox_sweep::lease::MinInterval::Ignore)
        {
            Ok(sandbox_sweep::lease::Acquire::Acquired(lease)) => lease,
            Ok(_) => panic!("the lease is not free"),
            Err(err) => panic!("the lease: {err}"),
        }
    }
}
