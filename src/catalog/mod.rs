//! Opening a catalog, migrating it, and detecting which optional columns it has.
//!
//! Owns the connection policy (PRAGMAs), this crate's additive schema
//! changes, and [`Catalog`], the checked handle every other module takes;
//! its row ids as types (`ids`).
//! No sweep logic here and no filesystem beyond the database file.

pub(crate) mod columns;
pub(crate) mod ids;
pub(crate) mod sql;
pub(crate) mod stamp;
pub(crate) mod statements;

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};
use crate::sys;

/// The busy timeout [`OpenOptions`] uses unless told otherwise: 5 s.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The prepared-statement cache size [`Catalog::from_connection`] gives its connection: 64.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// The catalog tables as the microsandbox migrations create them (see
/// `tests/data/schema.sql`), so a catalog we create is one the runtimes accept.
const BASE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS "sandbox" ( "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" text NOT NULL UNIQUE, "config" text NOT NULL, "status" text NOT NULL, "created_at" datetime_text, "updated_at" datetime_text , "ephemeral" boolean NOT NULL DEFAULT FALSE, "active_config" text);
CREATE TABLE IF NOT EXISTS "run" ( "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "sandbox_id" integer NOT NULL, "pid" integer, "status" text NOT NULL, "exit_code" integer, "exit_signal" integer, "termination_reason" text, "termination_detail" text, "signals_sent" text, "started_at" datetime_text, "terminated_at" datetime_text, FOREIGN KEY ("sandbox_id") REFERENCES "sandbox" ("id") ON DELETE CASCADE );
CREATE TABLE IF NOT EXISTS "maintenance_lease" ( "name" text NOT NULL PRIMARY KEY, "holder_pid" integer, "lease_expires_at" datetime_text NOT NULL, "last_completed_at" datetime_text );
CREATE INDEX IF NOT EXISTS "idx_sandbox_ephemeral_status" ON "sandbox" ("ephemeral", "status");
"#;

/// The version of this crate's changes that [`migrate`] records in its
/// `sandbox_sweep_migrations` table: 1 added the indexes, the cursor table
/// and the identity columns; 2 the index on `volume_attach.sandbox_id`.
const MIGRATION_VERSION: i64 = 2;

/// This crate's additive changes: indexes that keep every candidate query
/// off a full scan, and the table that remembers where each phase stopped.
const CRATE_SCHEMA: &str = r#"
CREATE INDEX IF NOT EXISTS "idx_run_sandbox_status" ON "run" ("sandbox_id", "status");
CREATE INDEX IF NOT EXISTS "idx_sandbox_status" ON "sandbox" ("status");
CREATE TABLE IF NOT EXISTS "sandbox_sweep_cursor" ( "phase" text NOT NULL PRIMARY KEY, "after_id" integer NOT NULL );
"#;

/// How to open a catalog file: PRAGMAs every connection of this crate wants.
///
/// Every connection gets WAL (so readers never block the sweep's writer),
/// `synchronous=NORMAL`, `foreign_keys=ON` and a busy timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sandbox_sweep::OpenOptions;
///
/// let dir = std::env::temp_dir().join("sandbox-sweep-doc-mod-57");
/// # let _ = std::fs::remove_dir_all(&dir);
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("catalog.db");
/// let conn = OpenOptions::new()
///     .busy_timeout(Duration::from_millis(500))
///     .create(true)
///     .open(&path)?;
/// sandbox_sweep::migrate(&conn)?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    busy_timeout: Duration,
    create: bool,
    read_only: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Options with a 5 s busy timeout that create the file when it is missing.
    pub fn new() -> OpenOptions {
        OpenOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            create: true,
            read_only: false,
        }
    }

    /// How long a statement waits for another connection's lock (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> OpenOptions {
        self.busy_timeout = timeout;
        self
    }

    /// Whether a missing file is created (default `true`). With `false`, the
    /// file must already be a catalog: a missing file, a file that is not a
    /// database, and a database without the catalog tables are errors, and
    /// such a file is left byte-for-byte unchanged.
    pub fn create(mut self, create: bool) -> OpenOptions {
        self.create = create;
        self
    }

    /// Whether the connection only reads (default `false`): for a report,
    /// a dry run or a monitoring user who may read the catalog but not
    /// write it. The file must exist and be a catalog (`create` is
    /// ignored), nothing in it or beside it is changed, and the journal
    /// mode is left as the file has it. Closing a read-only connection
    /// never checkpoints the write-ahead log into the file.
    ///
    /// SQLite reads a catalog in WAL mode (microsandbox's) through its
    /// `-shm` index beside it. Where that exists it is opened read-only
    /// too (SQLite's `readonly_shm`), so nothing beside the catalog is
    /// written either, and a user who may read it but not write it reads
    /// it. Where it is missing (the last connection closed cleanly), SQLite
    /// makes the `-wal` and `-shm` as any reader of a WAL file does, owned
    /// by this process's user (which is why the CLI, as root, first becomes
    /// the home's owner); where this user may not write the directory,
    /// the open fails with [`Error::ReadOnlyWal`]. Any writer (a runtime,
    /// `msb ls`, a sweep) that opens the catalog makes them again.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, OpenOptions};
    ///
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-mod-read-only");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("catalog.db");
    /// sandbox_sweep::migrate(&sandbox_sweep::open(&path)?)?;
    /// let conn = OpenOptions::new().read_only(true).open(&path)?;
    /// assert!(conn.execute("DELETE FROM sandbox", []).is_err());
    /// let catalog = Catalog::from_connection(conn)?;
    /// assert_eq!(catalog.summary()?.active.total, 0);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_only(mut self, read_only: bool) -> OpenOptions {
        self.read_only = read_only;
        self
    }

    /// Opens the file and sets the connection's PRAGMAs.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be opened or a PRAGMA fails; with
    /// `create(false)` or `read_only(true)`, [`Error::Io`] with the path
    /// when nothing is there (`NotFound`), and when it is not a catalog
    /// ([`Error::MissingTable`] or a SQLite "not a database" error); read
    /// only, [`Error::ReadOnlyWal`] as [`OpenOptions::read_only`] says.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Connection> {
        let path = path.as_ref();
        if !self.create || self.read_only {
            // SQLite says only "unable to open database file"; a missing
            // file (a home where msb never ran, a typo) says so, with its path.
            if let Some(err) = crate::sys::path::missing(path)
                && err.kind() == std::io::ErrorKind::NotFound
            {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source: err,
                });
            }
        }
        let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        if self.read_only {
            flags |= OpenFlags::SQLITE_OPEN_READ_ONLY;
        } else if self.create {
            flags |= OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        } else {
            flags |= OpenFlags::SQLITE_OPEN_READ_WRITE;
        }
        if self.read_only {
            let shm = has_shm(path);
            return match self.open_read_only(path, shm, flags) {
                // The -shm went between the look and the open (a writer's
                // last connection closing): once more, the other way.
                Err(Error::ReadOnlyWal { .. }) if shm => self.open_read_only(path, false, flags),
                other => other,
            };
        }
        let conn = Connection::open_with_flags(path, flags)?;
        self.prepare(&conn)?;
        if !self.create {
            // Reads only: a file that is not a database, or a database that
            // is not a catalog, fails here before anything could write to it
            // (switching to WAL rewrites the header).
            Schema::detect(&conn)?;
        }
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        Ok(conn)
    }
}

impl OpenOptions {
    /// A read-only connection, with SQLite's `readonly_shm` when `shm`.
    /// The first statement opens the WAL index: where it cannot, the error
    /// says what is missing rather than SQLite's "unable to open".
    fn open_read_only(&self, path: &Path, shm: bool, flags: OpenFlags) -> Result<Connection> {
        let conn = if shm {
            Connection::open_with_flags(read_only_uri(path), flags)?
        } else {
            Connection::open_with_flags(path, flags)?
        };
        match self.prepare(&conn).and_then(|()| Schema::detect(&conn)) {
            Err(Error::Sqlite(err)) if cannot_open(&err) => Err(Error::ReadOnlyWal {
                path: path.to_path_buf(),
                source: err,
            }),
            other => other.map(|_| conn),
        }
    }

    /// The PRAGMAs every connection gets, whatever its mode.
    fn prepare(&self, conn: &Connection) -> Result<()> {
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(())
    }
}

/// Whether the WAL index beside the catalog exists, beside the file the
/// path resolves to (SQLite follows a symlinked catalog to its target).
fn has_shm(path: &Path) -> bool {
    let real = sys::path::resolved(path).unwrap_or_else(|| path.to_path_buf());
    let mut shm = real.into_os_string();
    shm.push("-shm");
    sys::path::exists_nofollow(Path::new(&shm))
}

/// `file:<path>?readonly_shm=1`: SQLite then opens the `-shm` read-only
/// too (a reader otherwise writes its read marks there), so a read-only
/// connection writes nothing at all. Every byte but the unreserved ones is
/// percent-encoded, so no path reads as a URI's query or fragment; an
/// absolute path gets an empty authority (`file://`), so one that starts
/// with `//` is not read as a host.
fn read_only_uri(path: &Path) -> std::path::PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut uri = if path.is_absolute() {
        b"file://".to_vec()
    } else {
        b"file:".to_vec()
    };
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/._~-".contains(&byte) {
            uri.push(byte);
        } else {
            uri.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    uri.extend_from_slice(b"?readonly_shm=1");
    std::ffi::OsString::from_vec(uri).into()
}

/// SQLite's "cannot open" or "read-only database", which a read-only
/// connection's first reads answer only when a WAL file's `-wal` or
/// `-shm` is missing and cannot be made.
fn cannot_open(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
    )
}

/// Opens (creating if needed) a catalog with [`OpenOptions::new`]'s settings.
///
/// # Errors
///
/// See [`OpenOptions::open`].
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join("sandbox-sweep-doc-mod-141");
/// # let _ = std::fs::remove_dir_all(&dir);
/// std::fs::create_dir_all(&dir)?;
/// let conn = sandbox_sweep::open(dir.join("catalog.db"))?;
/// sandbox_sweep::migrate(&conn)?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open(path: impl AsRef<Path>) -> Result<Connection> {
    OpenOptions::new().open(path)
}

/// Creates the catalog tables when absent and applies this crate's additive
/// changes; idempotent and safe on a catalog another program created.
///
/// Adds `run(sandbox_id, status)` and `sandbox(status)` indexes, the nullable
/// identity columns `run.pid_start_time` and `run.boot_id`, and the
/// `sandbox_sweep_cursor` table; records what it applied in its own
/// `sandbox_sweep_migrations` table. The indexes are made again whenever
/// they are missing (a runtime's migration that rebuilds a table drops
/// them; [`Catalog::missing_indexes`] tells). Never drops or rewrites
/// anything. Runs in one `BEGIN IMMEDIATE`
/// transaction, so racing migrators are safe.
///
/// # Errors
///
/// Fails on any SQLite error (the transaction is then rolled back).
///
/// # Examples
///
/// ```
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// sandbox_sweep::migrate(&conn)?; // a second run changes nothing
/// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
/// assert!(catalog.has_identity_columns());
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
pub fn migrate(conn: &Connection) -> Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(BASE_SCHEMA)?;
    tx.execute_batch(
        r#"CREATE TABLE IF NOT EXISTS "sandbox_sweep_migrations" ( "version" integer NOT NULL PRIMARY KEY, "applied_at" datetime_text NOT NULL );"#,
    )?;
    let applied: i64 = tx.query_row(
        r#"SELECT coalesce(max("version"), 0) FROM "sandbox_sweep_migrations""#,
        [],
        |r| r.get(0),
    )?;
    // Each step is idempotent on its own too, so a catalog that another
    // program already extended the same way migrates cleanly.
    // The indexes and the cursor table on every call: a runtime's own
    // migration that rebuilds a table drops the indexes on it, and a
    // catalog without them sweeps few rows in its budget. Each statement
    // costs a schema lookup when its object exists.
    tx.execute_batch(CRATE_SCHEMA)?;
    if applied < 1 {
        let run_columns = columns(&tx, "run")?;
        for (column, ty) in [("pid_start_time", "INTEGER"), ("boot_id", "TEXT")] {
            if !run_columns.iter().any(|c| c == column) {
                tx.execute_batch(&format!(r#"ALTER TABLE "run" ADD COLUMN "{column}" {ty};"#))?;
            }
        }
    }
    // Likewise: the runtimes' own migrations may create the table after
    // ours ran.
    index_volume_attach(&tx)?;
    if applied < MIGRATION_VERSION {
        let now = crate::catalog::stamp::format_stamp(crate::clock::SystemClock::now());
        for version in applied + 1..=MIGRATION_VERSION {
            tx.execute(
                r#"INSERT INTO "sandbox_sweep_migrations" ("version", "applied_at") VALUES (?1, ?2)"#,
                rusqlite::params![version, now],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Indexes `volume_attach.sandbox_id` where that column exists. Its foreign
/// key is `ON DELETE SET NULL`, so with `foreign_keys=ON` every sandbox row
/// deleted makes SQLite find the attachments that name it: without an
/// index, a scan of the whole table per removed sandbox (measured: 6 ms per
/// sandbox with 50,000 attachment rows, 17 µs with the index).
fn index_volume_attach(conn: &Connection) -> Result<()> {
    if columns(conn, "volume_attach")?
        .iter()
        .any(|c| c == "sandbox_id")
    {
        conn.execute_batch(
            r#"CREATE INDEX IF NOT EXISTS "idx_volume_attach_sandbox_id" ON "volume_attach" ("sandbox_id");"#,
        )?;
    }
    Ok(())
}

/// The column names of `table`; empty when the table does not exist.
fn columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}

/// Which optional parts a catalog has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schema {
    /// `sandbox.active_config` exists (cleared on reconcile).
    pub active_config: bool,
    /// `sandbox.network_slot` exists (microsandbox's migration m20260818;
    /// cleared on reconcile, never written otherwise).
    pub network_slot: bool,
    /// `run.pid_start_time` and `run.boot_id` both exist.
    pub identity: bool,
    /// This crate's `sandbox_sweep_cursor` table exists.
    pub cursor: bool,
}

impl Schema {
    fn detect(conn: &Connection) -> Result<Schema> {
        let sandbox = columns(conn, "sandbox")?;
        let run = columns(conn, "run")?;
        let lease = columns(conn, "maintenance_lease")?;
        for (table, cols) in [
            ("sandbox", &sandbox),
            ("run", &run),
            ("maintenance_lease", &lease),
        ] {
            if cols.is_empty() {
                return Err(Error::MissingTable { table });
            }
        }
        let has = |cols: &[String], name: &str| cols.iter().any(|c| c == name);
        let cursor = conn
            .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sandbox_sweep_cursor'")?
            .query_row([], |_| Ok(()))
            .optional()?
            .is_some();
        Ok(Schema {
            active_config: has(&sandbox, "active_config"),
            network_slot: has(&sandbox, "network_slot"),
            identity: has(&run, "pid_start_time") && has(&run, "boot_id"),
            cursor,
        })
    }
}

/// A catalog: the connection, and what its shape was found to be.
///
/// Owns its [`Connection`], so a host keeps it in a struct beside the rest
/// of its state and reuses it for every sweep and every runtime write.
/// The optional columns are detected when it is built and again whenever
/// the file's `schema_version` changes under it (another program's
/// migration), checked once per sweep and per runtime write.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Catalog, Sweeper};
///
/// // What a host keeps: no borrow ties the catalog to anything else.
/// struct Host {
///     catalog: Catalog,
///     sweeper: Sweeper,
/// }
///
/// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
/// sandbox_sweep::migrate(&conn)?;
/// let host = Host {
///     catalog: Catalog::from_connection(conn)?,
///     sweeper: Sweeper::new("/var/lib/sandboxes"),
/// };
/// assert!(host.catalog.has_active_config());
/// # Ok::<(), sandbox_sweep::Error>(())
/// ```
#[derive(Debug)]
pub struct Catalog {
    pub(crate) conn: Connection,
    /// The shape, and the `schema_version` it was read at.
    shape: Cell<(Schema, i64)>,
    /// When a statement must stop, read by the connection's progress
    /// handler; [`Deadline::NONE`] outside a sweep.
    deadline: Arc<Deadline>,
}

/// A deadline a progress handler can read: nanoseconds after `base`, or
/// [`Deadline::NONE`]. Shared with the handler, which must be `Send`.
#[derive(Debug)]
struct Deadline {
    base: Instant,
    at: AtomicU64,
}

impl Deadline {
    const NONE: u64 = u64::MAX;

    /// Whether a deadline is set and has passed.
    fn passed(&self) -> bool {
        let at = self.at.load(Ordering::Relaxed);
        at != Deadline::NONE
            && u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX) >= at
    }
}

/// How many virtual-machine steps SQLite runs between two looks at the
/// deadline: a few microseconds of work, so a statement that outlives the
/// budget (a full scan on a catalog without this crate's indexes) stops
/// within a fraction of a millisecond of it.
const STEPS_BETWEEN_CHECKS: i32 = 1000;

impl Catalog {
    /// Opens an existing catalog file with [`OpenOptions::new`]'s settings,
    /// creating nothing: a missing file, a file that is not a database and
    /// a database without the catalog tables are errors, and such a file is
    /// left byte-for-byte unchanged. To make a new catalog, [`open`] and
    /// [`migrate`] a connection, then [`Catalog::from_connection`].
    ///
    /// # Errors
    ///
    /// See [`OpenOptions::open`] with `create(false)`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let catalog = sandbox_sweep::Catalog::open("/root/.microsandbox/db/msb.db")?;
    /// println!("{}", catalog.summary()?);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Catalog> {
        Catalog::from_connection(OpenOptions::new().create(false).open(path)?)
    }

    /// Opens an existing catalog file read-only
    /// ([`OpenOptions::read_only`]): for reports ([`Catalog::summary`]),
    /// orphan scans and dry runs, which then change nothing in the file
    /// or beside it. A sweep on it fails at its first write.
    ///
    /// Close it before this process opens the same file to write: SQLite
    /// maps one `-shm` index per file and process, and while a read-only
    /// catalog holds it read-only, a writable one's first write fails
    /// (`attempt to write a readonly database`). Opened the other way
    /// round, or one after the other, both work.
    ///
    /// # Errors
    ///
    /// See [`OpenOptions::open`] with `read_only(true)`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let catalog = sandbox_sweep::Catalog::open_read_only("/root/.microsandbox/db/msb.db")?;
    /// println!("{}", catalog.summary()?);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Catalog> {
        Catalog::from_connection(OpenOptions::new().read_only(true).open(path)?)
    }

    /// Checks that `conn` holds a catalog and detects its optional columns.
    ///
    /// Reads only: never creates or changes anything in the file. It does
    /// raise the connection's prepared-statement cache to 64 statements
    /// (the sweep cycles through about twenty; a smaller cache would
    /// re-parse them on every row).
    ///
    /// # Errors
    ///
    /// [`Error::MissingTable`] when `sandbox`, `run` or `maintenance_lease`
    /// is absent ([`migrate`] creates them); a SQLite error when the file is
    /// not a database.
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, Error};
    /// use sandbox_sweep::rusqlite::Connection;
    ///
    /// let empty = Catalog::from_connection(Connection::open_in_memory()?);
    /// assert!(matches!(empty, Err(Error::MissingTable { table: "sandbox" })));
    /// let conn = Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// assert!(Catalog::from_connection(conn).is_ok());
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn from_connection(mut conn: Connection) -> Result<Catalog> {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        let version = schema_version(&conn)?;
        let schema = Schema::detect(&conn)?;
        let deadline = Arc::new(Deadline {
            base: Instant::now(),
            at: AtomicU64::new(Deadline::NONE),
        });
        let seen = Arc::clone(&deadline);
        conn.progress_handler(STEPS_BETWEEN_CHECKS, Some(move || seen.passed()))?;
        Ok(Catalog {
            conn,
            shape: Cell::new((schema, version)),
            deadline,
        })
    }

    /// The connection this catalog reads and writes through, for a host's
    /// own statements.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
    /// let n: i64 = catalog.connection().query_row("SELECT count(*) FROM sandbox", [], |r| r.get(0))?;
    /// assert_eq!(n, 0);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Begins a write transaction on this catalog's connection (`BEGIN
    /// IMMEDIATE`: the write lock is taken now, so no later statement of it
    /// meets a busy upgrade); it rolls back when dropped uncommitted.
    ///
    /// Inside it, the runtime's single-statement writes may run:
    /// [`insert_sandbox`](Catalog::insert_sandbox),
    /// [`insert_running_run`](Catalog::insert_running_run) and
    /// [`record_identity`](Catalog::record_identity), with the host's own
    /// statements (through the transaction, or [`Catalog::connection`]).
    /// The calls that open their own `BEGIN IMMEDIATE` fail inside it
    /// (SQLite refuses a nested `BEGIN`): [`finish_run`](Catalog::finish_run),
    /// [`Sweeper::clean_ephemeral`](crate::Sweeper::clean_ephemeral), a
    /// sweep, the leases and [`migrate`]. One transaction for a batch of
    /// inserts saves a commit per row: 10,000 sandboxes took 22-40 ms in
    /// one, 0.5-0.7 s with a commit each (a file catalog in WAL mode).
    ///
    /// # Errors
    ///
    /// Any SQLite error: busy past the timeout, or the connection already
    /// inside a transaction.
    ///
    /// # Examples
    ///
    /// Ten thousand sandboxes, each with a running run, in one transaction:
    ///
    /// ```
    /// use sandbox_sweep::process::ProcessIdentity;
    /// use sandbox_sweep::{Catalog, Lifetime, SandboxStatus, SystemClock};
    ///
    /// let dir = std::env::temp_dir().join("sandbox-sweep-doc-transaction");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir)?;
    /// let conn = sandbox_sweep::open(dir.join("catalog.db"))?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let (me, now) = (ProcessIdentity::current()?, SystemClock::now());
    /// let tx = catalog.transaction()?;
    /// for i in 0..10_000 {
    ///     let id = catalog.insert_sandbox(&format!("job-{i}"), SandboxStatus::Running, Lifetime::Ephemeral, now)?;
    ///     catalog.insert_running_run(id, &me, now)?;
    /// }
    /// tx.commit()?;
    /// let n: i64 = catalog.connection().query_row("SELECT count(*) FROM run", [], |r| r.get(0))?;
    /// assert_eq!(n, 10_000);
    /// # drop(catalog);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transaction(&self) -> Result<rusqlite::Transaction<'_>> {
        self.immediate()
    }

    /// Gives the connection back, without this catalog's progress handler.
    pub fn into_connection(mut self) -> Connection {
        // Removing a handler cannot fail; were it to, the handler left
        // behind only ever answers "go on" once no deadline is set.
        let _ = self.conn.progress_handler(0, None::<fn() -> bool>);
        self.conn
    }

    /// Interrupts any statement still running at `at` (it fails with
    /// SQLite's interrupt error, and its transaction rolls back) until the
    /// returned guard is dropped.
    pub(crate) fn interrupt_at(&self, at: Instant) -> InterruptAt<'_> {
        let nanos = at.saturating_duration_since(self.deadline.base).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(Deadline::NONE - 1);
        self.deadline.at.store(nanos, Ordering::Relaxed);
        InterruptAt(self)
    }

    /// Whether `sandbox.active_config` exists (it is cleared on reconcile).
    pub fn has_active_config(&self) -> bool {
        self.schema().active_config
    }

    /// Whether `run.pid_start_time` and `run.boot_id` exist, so recorded
    /// process identities are checked.
    pub fn has_identity_columns(&self) -> bool {
        self.schema().identity
    }

    /// This crate's indexes the catalog lacks, by name (empty when `init`
    /// has run). Without them a sweep still holds its budget, but does
    /// far fewer rows in it: each candidate's run lookup scans every run.
    /// [`migrate`] adds them. Reads only.
    ///
    /// # Errors
    ///
    /// Any SQLite error.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// conn.execute_batch("DROP INDEX idx_run_sandbox_status")?;
    /// let catalog = sandbox_sweep::Catalog::from_connection(conn)?;
    /// assert_eq!(catalog.missing_indexes()?, ["idx_run_sandbox_status"]);
    /// # Ok::<(), sandbox_sweep::Error>(())
    /// ```
    pub fn missing_indexes(&self) -> Result<Vec<&'static str>> {
        let mut wanted = vec!["idx_run_sandbox_status", "idx_sandbox_status"];
        if columns(&self.conn, "volume_attach")?
            .iter()
            .any(|c| c == "sandbox_id")
        {
            wanted.push("idx_volume_attach_sandbox_id");
        }
        let mut present = self
            .conn
            .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1")?;
        let mut missing = Vec::new();
        for name in wanted {
            if !present.exists([name])? {
                missing.push(name);
            }
        }
        Ok(missing)
    }

    /// The shape as last detected: per-row code reads this, never the file.
    pub(crate) fn schema(&self) -> Schema {
        self.shape.get().0
    }

    /// Detects the shape again when another connection changed the schema
    /// since (one `PRAGMA schema_version` read, about a microsecond);
    /// called once per sweep and per runtime write, never per row.
    pub(crate) fn refresh(&self) -> Result<Schema> {
        let (schema, seen) = self.shape.get();
        let version = schema_version(&self.conn)?;
        if version == seen {
            return Ok(schema);
        }
        let schema = Schema::detect(&self.conn)?;
        self.shape.set((schema, version));
        Ok(schema)
    }

    /// How long a statement now waits for another connection's lock
    /// (`PRAGMA busy_timeout`): the host's setting, which a sweep shortens
    /// to its budget and gives back.
    pub(crate) fn busy_timeout(&self) -> Result<Duration> {
        let ms: i64 = self
            .conn
            .prepare_cached("PRAGMA busy_timeout")?
            .query_row([], |r| r.get(0))?;
        Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// Waits for another connection's lock at most until `deadline`, and
    /// never longer than `host` (the host's own busy timeout); `None`
    /// waits `host`. Past the deadline a locked catalog answers busy at
    /// once.
    pub(crate) fn wait_until(&self, host: Duration, deadline: Option<Instant>) -> Result<()> {
        let wait = deadline.map_or(host, |at| {
            host.min(at.saturating_duration_since(Instant::now()))
        });
        self.conn.busy_timeout(wait)?;
        Ok(())
    }

    /// Starts a `BEGIN IMMEDIATE` transaction (the write lock, taken up front
    /// so that every check inside sees what the write will act on).
    pub(crate) fn immediate(&self) -> Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(Error::from_sqlite)
    }
}

/// A statement deadline in force: cleared when dropped, so the lease's
/// release and a host's own statements after a sweep run to the end.
#[must_use = "the deadline is cleared when the guard is dropped"]
pub(crate) struct InterruptAt<'c>(&'c Catalog);

impl Drop for InterruptAt<'_> {
    fn drop(&mut self) {
        self.0.deadline.at.store(Deadline::NONE, Ordering::Relaxed);
    }
}

/// SQLite bumps it on every schema change, whichever process makes it.
fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("PRAGMA schema_version")?
        .query_row([], |r| r.get(0))?)
}

/// The one sentence for indexes the catalog lacks
/// ([`Catalog::missing_indexes`]), which the sweep's report, its log line
/// and the status summary all say.
pub(crate) struct MissingIndexes<'a>(pub &'a [&'a str]);

impl std::fmt::Display for MissingIndexes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "indexes missing: {} (each run lookup scans the whole table, so a sweep does few rows in its budget)",
            self.0.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_is_idempotent_and_adds_identity_columns() -> Result<()> {
        let conn = Connection::open_in_memory()?;
        migrate(&conn)?;
        migrate(&conn)?;
        let versions: i64 =
            conn.query_row("SELECT count(*) FROM sandbox_sweep_migrations", [], |r| {
                r.get(0)
            })?;
        assert_eq!(versions, MIGRATION_VERSION);
        let run = columns(&conn, "run")?;
        assert!(run.iter().any(|c| c == "pid_start_time"));
        assert!(run.iter().any(|c| c == "boot_id"));
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        assert_eq!(
            indexes,
            [
                "idx_run_sandbox_status",
                "idx_sandbox_ephemeral_status",
                "idx_sandbox_status"
            ]
        );
        Ok(())
    }

    #[test]
    fn reference_schema_migrates_without_loss() -> Result<()> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(include_str!("../../tests/data/schema.sql"))?;
        conn.execute(
            "INSERT INTO sandbox (name, config, status, ephemeral) VALUES ('a', '{}', 'Running', 0)",
            [],
        )?;
        let before = Catalog::from_connection(conn)?;
        assert!(before.has_active_config());
        assert!(!before.has_identity_columns());
        assert!(!before.schema().cursor);
        let conn = before.into_connection();
        migrate(&conn)?;
        let after = Catalog::from_connection(conn)?;
        let conn = after.connection();
        assert!(after.has_identity_columns());
        assert!(after.schema().cursor);
        let n: i64 = conn.query_row("SELECT count(*) FROM sandbox", [], |r| r.get(0))?;
        assert_eq!(n, 1);
        Ok(())
    }

    #[test]
    fn volume_attachments_get_their_index_whenever_the_table_appears() -> Result<()> {
        let conn = Connection::open_in_memory()?;
        // A catalog migrated at version 1, before this index existed.
        conn.execute_batch(BASE_SCHEMA)?;
        conn.execute_batch(CRATE_SCHEMA)?;
        conn.execute_batch(
            r#"CREATE TABLE "sandbox_sweep_migrations" ( "version" integer NOT NULL PRIMARY KEY, "applied_at" datetime_text NOT NULL );
               INSERT INTO "sandbox_sweep_migrations" VALUES (1, '2026-01-01 00:00:00');"#,
        )?;
        let index_exists = |conn: &Connection| -> Result<bool> {
            Ok(conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'idx_volume_attach_sandbox_id'",
                [],
                |r| r.get::<_, i64>(0),
            )? == 1)
        };
        migrate(&conn)?;
        assert!(!index_exists(&conn)?, "no table, no index");
        // The runtimes' own migrations add the table later.
        conn.execute_batch(
            r#"CREATE TABLE "volume_attach" ( "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "volume_id" integer NOT NULL, "sandbox_id" integer, "pid" integer NOT NULL, "mode" text NOT NULL, "created_at" datetime_text NOT NULL, FOREIGN KEY ("sandbox_id") REFERENCES "sandbox" ("id") ON DELETE SET NULL );"#,
        )?;
        migrate(&conn)?;
        assert!(index_exists(&conn)?);
        let versions: Vec<i64> = conn
            .prepare("SELECT version FROM sandbox_sweep_migrations ORDER BY version")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        assert_eq!(versions, [1, 2]);
        Ok(())
    }

    #[test]
    fn schema_changes_by_another_connection_are_seen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Io {
            path: "tmp".into(),
            source: e,
        })?;
        let path = dir.path().join("c.db");
        let conn = Connection::open(&path)?;
        conn.execute_batch(include_str!("../../tests/data/schema.sql"))?;
        let catalog = Catalog::from_connection(conn)?;
        assert!(!catalog.has_identity_columns());
        // Another connection migrates the file: seen at the next refresh.
        migrate(&Connection::open(&path)?)?;
        assert!(!catalog.has_identity_columns());
        catalog.refresh()?;
        assert!(catalog.has_identity_columns() && catalog.schema().cursor);
        Connection::open(&path)?.execute_batch("ALTER TABLE sandbox DROP COLUMN active_config")?;
        assert!(catalog.has_active_config());
        catalog.refresh()?;
        assert!(!catalog.has_active_config());
        Ok(())
    }

    #[test]
    fn a_read_only_open_reads_any_path_and_writes_nothing() -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let io = |e| Error::Io {
            path: "tmp".into(),
            source: e,
        };
        let dir = tempfile::tempdir().map_err(io)?;
        // Bytes a URI would read as a query, a fragment or an escape, and
        // one that is not UTF-8.
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"a ?#%\xff=1"));
        std::fs::create_dir(&odd).map_err(io)?;
        let path = odd.join("c.db");
        let writer = OpenOptions::new().open(&path)?;
        migrate(&writer)?;
        writer.execute(
            "INSERT INTO sandbox (name, config, status) VALUES ('a', '{}', 'Stopped')",
            [],
        )?;
        // A home as msb leaves it: the -wal and -shm of a writer that is
        // gone (a copy, so that no connection of this process shares the
        // index: SQLite maps one index per file and process).
        let copy = dir.path().join("copy");
        std::fs::create_dir(&copy).map_err(io)?;
        for suffix in ["", "-wal", "-shm"] {
            std::fs::copy(
                odd.join(format!("c.db{suffix}")),
                copy.join(format!("c.db{suffix}")),
            )
            .map_err(io)?;
        }
        drop(writer);
        std::fs::remove_dir_all(&odd).map_err(io)?;
        std::fs::rename(&copy, &odd).map_err(io)?;
        let shm = odd.join("c.db-shm");
        let before = std::fs::read(&shm).map_err(io)?;
        // An absolute path that starts with `//` is still a path.
        let mut doubled = std::ffi::OsString::from("/");
        doubled.push(&path);
        for at in [path.clone(), std::path::PathBuf::from(doubled)] {
            let conn = OpenOptions::new().read_only(true).open(&at)?;
            let n: i64 = conn.query_row("SELECT count(*) FROM sandbox", [], |r| r.get(0))?;
            assert_eq!(n, 1);
            assert!(conn.execute("DELETE FROM sandbox", []).is_err());
        }
        assert_eq!(
            std::fs::read(&shm).map_err(io)?,
            before,
            "not a byte of the -shm"
        );
        Ok(())
    }

    /// SQLite maps one `-shm` index per file and process: while a
    /// read-only catalog holds it read-only, a writable catalog of the same
    /// file in the same process cannot write; once it is closed, one can.
    /// What `Catalog::open_read_only` documents.
    #[test]
    fn a_read_only_catalog_open_in_the_process_keeps_a_writer_from_writing() -> Result<()> {
        let io = |e| Error::Io {
            path: "tmp".into(),
            source: e,
        };
        let dir = tempfile::tempdir().map_err(io)?;
        let (made, path) = (dir.path().join("made.db"), dir.path().join("c.db"));
        let writer = OpenOptions::new().open(&made)?;
        migrate(&writer)?;
        // As msb leaves it: the -wal and -shm of a writer that is gone.
        for suffix in ["", "-wal", "-shm"] {
            let (from, to) = (format!("made.db{suffix}"), format!("c.db{suffix}"));
            std::fs::copy(dir.path().join(from), dir.path().join(to)).map_err(io)?;
        }
        drop(writer);
        let insert = "INSERT INTO sandbox (name, config, status) VALUES (?1, '{}', 'Stopped')";
        let reader = Catalog::open_read_only(&path)?;
        let catalog = Catalog::open(&path)?;
        let refused = catalog.connection().execute(insert, ["a"]);
        assert!(
            matches!(&refused, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ReadOnly),
            "{refused:?}"
        );
        drop((catalog, reader));
        let catalog = Catalog::open(&path)?;
        assert_eq!(catalog.connection().execute(insert, ["b"])?, 1);
        Ok(())
    }

    /// A catalog that is not there is named, with the OS's words, and
    /// nothing is made at its path.
    #[test]
    fn a_missing_catalog_names_its_path() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Io {
            path: "tmp".into(),
            source: e,
        })?;
        let path = dir.path().join("home/db/msb.db");
        for opened in [Catalog::open(&path), Catalog::open_read_only(&path)] {
            let Err(err) = opened else {
                panic!("a catalog at {}", path.display());
            };
            assert!(
                matches!(&err, Error::Io { path: p, .. } if *p == path),
                "{err:?}"
            );
            assert_eq!(
                format!("{err:#}"),
                format!("{}: No such file or directory (os error 2)", path.display())
            );
        }
        assert!(!dir.path().join("home").exists());
        Ok(())
    }

    #[test]
    fn catalog_without_tables_names_the_missing_one() -> Result<()> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(BASE_SCHEMA)?;
        conn.execute_batch("DROP TABLE maintenance_lease")?;
        match Catalog::from_connection(conn) {
            Err(Error::MissingTable { table }) => assert_eq!(table, "maintenance_lease"),
            other => panic!("expected MissingTable, got {other:?}"),
        }
        Ok(())
    }
}
