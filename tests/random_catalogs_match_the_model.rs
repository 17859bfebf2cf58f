//! Hostile catalogs: random statuses, flags, pids, names, directories and
//! timestamps, each column also written in every storage class SQLite
//! accepts there, swept once without limits and compared with a small,
//! obviously-correct model of the rules in ARCHITECTURE.md. The invariant
//! above all: no row is deleted while a directory it named stays.

pub mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{DEAD_PID, is_root, root_for};
use proptest::prelude::*;
use rusqlite::{Connection, OptionalExtension, params};
use sandbox_sweep::__private::parse_stamp;
use sandbox_sweep::{Catalog, Limits, SandboxStatus, SweepOutcome, Sweeper};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Valid,
    Empty,
    Dot,
    DotDot,
    Slash,
    Absolute,
    Parent,
    Nul,
    Reserved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Absent,
    Present,
    Nested,
    SymlinkOut,
    File,
    ReadOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pid {
    Live,
    Dead,
    Zombie,
    Zero,
    Negative,
    Huge,
    Null,
    Text,
    Real,
    Blob,
}

/// How a column's value is written: as the catalog declares it, or as
/// another storage class. `NULL` only where the column allows it (SQLite
/// refuses it in a `NOT NULL` column); a number written to a TEXT column
/// is stored as text (its affinity), which the model reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Declared,
    Integer,
    Real,
    Text,
    Blob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Started {
    At(u8),
    Garbage,
    Null,
    Integer,
    Real,
    Blob,
}

#[derive(Debug, Clone)]
struct RunSpec {
    running: bool,
    pid: Pid,
    started: Started,
}

#[derive(Debug, Clone)]
struct SandboxSpec {
    name: Name,
    name_class: Class,
    status: &'static str,
    status_class: Class,
    ephemeral: bool,
    ephemeral_class: Class,
    dir: Dir,
    runs: Vec<RunSpec>,
}

#[derive(Debug, Clone)]
struct CatalogSpec {
    sandboxes: Vec<SandboxSpec>,
    orphans: Vec<RunSpec>,
    lease: Option<(&'static str, &'static str)>,
}

fn run_spec() -> impl Strategy<Value = RunSpec> {
    (
        prop::bool::weighted(0.7),
        prop_oneof![
            3 => Just(Pid::Live),
            3 => Just(Pid::Dead),
            1 => Just(Pid::Zombie),
            1 => Just(Pid::Zero),
            1 => Just(Pid::Negative),
            1 => Just(Pid::Huge),
            1 => Just(Pid::Null),
            1 => Just(Pid::Text),
            1 => Just(Pid::Real),
            1 => Just(Pid::Blob),
        ],
        prop_oneof![
            8 => (0u8..5).prop_map(Started::At),
            1 => Just(Started::Garbage),
            2 => Just(Started::Null),
            1 => Just(Started::Integer),
            1 => Just(Started::Real),
            1 => Just(Started::Blob),
        ],
    )
        .prop_map(|(running, pid, started)| RunSpec {
            running,
            pid,
            started,
        })
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        8 => Just(Class::Declared),
        1 => Just(Class::Integer),
        1 => Just(Class::Real),
        1 => Just(Class::Text),
        1 => Just(Class::Blob),
    ]
}

fn sandbox_spec() -> impl Strategy<Value = SandboxSpec> {
    (
        prop_oneof![
            12 => Just(Name::Valid),
            1 => Just(Name::Empty),
            1 => Just(Name::Dot),
            1 => Just(Name::DotDot),
            1 => Just(Name::Slash),
            1 => Just(Name::Absolute),
            1 => Just(Name::Parent),
            1 => Just(Name::Nul),
            1 => Just(Name::Reserved),
        ],
        prop::sample::select(vec![
            "Running", "Draining", "Stopped", "Crashed", "Paused", "running", "", "Stopped ",
        ]),
        any::<bool>(),
        prop_oneof![
            2 => Just(Dir::Absent),
            4 => Just(Dir::Present),
            1 => Just(Dir::Nested),
            1 => Just(Dir::SymlinkOut),
            1 => Just(Dir::File),
            1 => Just(Dir::ReadOnly),
        ],
        prop::collection::vec(run_spec(), 0..4),
        (class(), class(), class()),
    )
        .prop_map(
            |(name, status, ephemeral, dir, runs, (name_class, status_class, ephemeral_class))| {
                SandboxSpec {
                    name,
                    name_class,
                    status,
                    status_class,
                    ephemeral,
                    ephemeral_class,
                    dir,
                    runs,
                }
            },
        )
}

fn catalog_spec() -> impl Strategy<Value = CatalogSpec> {
    (
        prop::collection::vec(sandbox_spec(), 0..24),
        prop::collection::vec(run_spec(), 0..3),
        prop::option::of(prop::sample::select(vec![
            ("garbage", "not a time"),
            ("9999-12-31 23:59:59", "9999-12-31 23:59:59"),
            ("2000-01-01 00:00:00", "2000-01-01 00:00:00.5"),
        ])),
    )
        .prop_map(|(sandboxes, orphans, lease)| CatalogSpec {
            sandboxes,
            orphans,
            lease,
        })
}

/// One zombie for the whole run: a child that exited and is never reaped.
fn zombie_pid() -> i64 {
    static ZOMBIE: OnceLock<i64> = OnceLock::new();
    *ZOMBIE.get_or_init(|| {
        let child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = i64::from(child.id());
        std::mem::forget(child);
        // Bounded wait until it has exited (it is then a zombie).
        for _ in 0..400 {
            let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap_or_default();
            if sandbox_sweep::__private::parse_proc_stat(&stat).is_some_and(|s| s.is_zombie()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        pid
    })
}

struct Built {
    name: String,
    id: i64,
    run_ids: Vec<i64>,
}

fn pid_value(pid: Pid) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match pid {
        Pid::Live => Value::Integer(i64::from(std::process::id())),
        Pid::Dead => Value::Integer(DEAD_PID),
        Pid::Zombie => Value::Integer(zombie_pid()),
        Pid::Zero => Value::Integer(0),
        Pid::Negative => Value::Integer(-1),
        Pid::Huge => Value::Integer(i64::MAX),
        Pid::Null => Value::Null,
        // Not numeric, so the column's INTEGER affinity keeps it as text.
        Pid::Text => Value::Text("abc".into()),
        Pid::Real => Value::Real(1.5),
        Pid::Blob => Value::Blob(b"\x01".to_vec()),
    }
}

/// A TEXT column's value written as `class` (`index` keeps numbers unique).
fn text_value(text: &str, class: Class, index: usize) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match class {
        Class::Declared | Class::Text => Value::Text(text.into()),
        Class::Integer => Value::Integer(1000 + index as i64),
        Class::Real => Value::Real(index as f64 + 0.5),
        Class::Blob => Value::Blob(text.as_bytes().to_vec()),
    }
}

/// `sandbox.ephemeral` written as `class`.
fn flag_value(ephemeral: bool, class: Class) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match class {
        Class::Declared => Value::Integer(i64::from(ephemeral)),
        Class::Integer => Value::Integer(2),
        Class::Real => Value::Real(0.5),
        Class::Text => Value::Text("yes".into()),
        Class::Blob => Value::Blob(vec![u8::from(ephemeral)]),
    }
}

/// A column as stored: its class (`typeof`) and its text.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    class: String,
    text: String,
}

impl Stored {
    fn is(&self, class: &str) -> bool {
        self.class == class
    }
}

fn read_stored(conn: &Connection, sql: &str, id: i64) -> rusqlite::Result<Stored> {
    conn.query_row(sql, [id], |r| {
        Ok(Stored {
            class: r.get(0)?,
            text: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        })
    })
}

/// What a sandbox row and its runs hold after insertion, by storage class.
#[derive(Debug, Clone)]
struct Row {
    name: Stored,
    status: Stored,
    ephemeral: Stored,
    pids: Vec<Stored>,
}

/// `started_at` as the model orders it (SQLite's order: NULL, numbers,
/// text, blobs).
fn started_value(started: Started) -> (u8, String) {
    match started {
        Started::At(n) => (2, format!("2026-06-0{} 10:00:00", 1 + n)),
        Started::Garbage => (2, "garbage".into()),
        Started::Null => (0, String::new()),
        Started::Integer => (1, "1".into()),
        Started::Real => (1, "1.5".into()),
        Started::Blob => (3, "x".into()),
    }
}

/// `started_at` as written.
fn started_sql(started: Started) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match started {
        Started::At(_) | Started::Garbage => Value::Text(started_value(started).1),
        Started::Null => Value::Null,
        Started::Integer => Value::Integer(1),
        Started::Real => Value::Real(1.5),
        Started::Blob => Value::Blob(b"x".to_vec()),
    }
}

fn insert_run(conn: &Connection, sandbox_id: i64, run: &RunSpec) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            sandbox_id,
            pid_value(run.pid),
            if run.running { "Running" } else { "Terminated" },
            started_sql(run.started)
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

fn name_text(name: Name, index: usize, canary: &Path) -> String {
    match name {
        Name::Valid => format!("sb-{index}"),
        Name::Empty => String::new(),
        Name::Dot => ".".into(),
        Name::DotDot => "..".into(),
        Name::Slash => "canary/x".into(),
        Name::Absolute => canary.display().to_string(),
        Name::Parent => "../canary".into(),
        Name::Nul => "nul\0name".into(),
        Name::Reserved => ".sandbox-sweep-trash".into(),
    }
}

fn make_dir(path: &Path, dir: Dir, canary: &Path) -> std::io::Result<()> {
    match dir {
        Dir::Absent => Ok(()),
        Dir::Present => {
            std::fs::create_dir(path)?;
            std::fs::write(path.join("config.json"), b"{}")
        }
        Dir::Nested => {
            std::fs::create_dir_all(path.join("a/b/c"))?;
            std::fs::write(path.join("a/b/c/deep"), b"x")?;
            std::os::unix::fs::symlink(canary, path.join("a/escape"))
        }
        Dir::SymlinkOut => std::os::unix::fs::symlink(canary, path),
        Dir::File => std::fs::write(path, b"not a directory"),
        Dir::ReadOnly => {
            std::fs::create_dir_all(path.join("ro"))?;
            std::fs::write(path.join("ro/file"), b"x")?;
            std::fs::set_permissions(path.join("ro"), std::fs::Permissions::from_mode(0o555))
        }
    }
}

/// Everything under `root`, with file contents, symlinks as their targets.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let content = if meta.file_type().is_symlink() {
                std::fs::read_link(&path)
                    .map(|t| t.into_os_string().into_encoded_bytes())
                    .unwrap_or_default()
            } else if meta.is_dir() {
                stack.push(path.clone());
                b"<dir>".to_vec()
            } else {
                std::fs::read(&path).unwrap_or_default()
            };
            out.insert(path, content);
        }
    }
    out
}

/// What the model says the sweep leaves.
struct Expected {
    /// Final status per sandbox; `None` when removed.
    statuses: Vec<Option<String>>,
    /// Final status per run of each sandbox; `None` when deleted.
    runs: Vec<Vec<Option<&'static str>>>,
    /// Per-row errors (bad names among removable sandboxes; a name of the
    /// wrong class included).
    errors: u64,
}

/// The model: the rules of ARCHITECTURE.md, written as plainly as possible,
/// on the rows as stored: a rule acts only on columns of their declared
/// class (status TEXT, ephemeral INTEGER 0 or 1, pid INTEGER or NULL, name
/// TEXT and a valid name).
fn model(spec: &CatalogSpec, rows: &[Row]) -> Expected {
    let readable = |pid: &Stored| pid.is("integer") || pid.is("null");
    let alive = |pid: Pid| pid == Pid::Live;
    let mut statuses = Vec::new();
    let mut runs_out = Vec::new();
    let mut errors = 0;
    for (sb, row) in spec.sandboxes.iter().zip(rows) {
        let mut status = row.status.text.clone();
        let text_status = row.status.is("text");
        let mut runs: Vec<(bool, Pid)> = sb.runs.iter().map(|r| (r.running, r.pid)).collect();
        // Phase 1: the latest Running run (by started_at, NULL first, then insertion order).
        if text_status && (status == "Running" || status == "Draining") {
            let latest = sb
                .runs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.running)
                .max_by(|(i, a), (j, b)| {
                    (started_value(a.started), i).cmp(&(started_value(b.started), j))
                })
                .map(|(i, _)| i);
            // A running run's start that is not a catalog timestamp (nor
            // NULL) orders nothing: which run is newest cannot be told.
            let unordered = sb
                .runs
                .iter()
                .any(|r| r.running && !matches!(r.started, Started::At(_) | Started::Null));
            match latest {
                _ if unordered => {}
                None if status == "Draining" => status = "Stopped".into(),
                None => {}
                // A pid of the wrong class proves nothing: left as it is.
                Some(i) if !readable(&row.pids[i]) => {}
                Some(i) if alive(sb.runs[i].pid) => {}
                Some(i) => {
                    runs[i].0 = false;
                    status = if status == "Running" {
                        "Crashed".into()
                    } else {
                        "Stopped".into()
                    };
                }
            }
        }
        // Phase 2: finished ephemeral, every running run's pid readable and
        // none live, a sane name stored as text.
        let finished = text_status && (status == "Stopped" || status == "Crashed");
        let ephemeral = row.ephemeral.is("integer") && row.ephemeral.text == "1";
        let running = || {
            runs.iter()
                .zip(&row.pids)
                .filter(|((running, _), _)| *running)
        };
        let unreadable = running().any(|(_, pid)| !readable(pid));
        let live_run = running().any(|((_, pid), _)| alive(*pid));
        if ephemeral && finished && !unreadable && !live_run {
            let name_ok = row.name.is("text")
                && sandbox_sweep::sandboxes::validate_name(&row.name.text).is_ok();
            if name_ok {
                statuses.push(None);
                runs_out.push(vec![None; runs.len()]);
                continue;
            }
            errors += 1;
        }
        statuses.push(Some(status));
        runs_out.push(
            runs.iter()
                .map(|(running, _)| Some(if *running { "Running" } else { "Terminated" }))
                .collect(),
        );
    }
    Expected {
        statuses,
        runs: runs_out,
        errors,
    }
}

fn check(spec: &CatalogSpec) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let canary = dir.path().join("canary");
    std::fs::create_dir_all(canary.join("x")).map_err(|e| TestCaseError::fail(e.to_string()))?;
    std::fs::write(canary.join("precious"), b"keep")
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let sandboxes = dir.path().join("sandboxes");
    std::fs::create_dir_all(sandboxes.join("canary/x"))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let db = dir.path().join("catalog.db");
    let conn = sandbox_sweep::open(&db).map_err(|e| TestCaseError::fail(e.to_string()))?;
    sandbox_sweep::migrate(&conn).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let fail = |e: rusqlite::Error| TestCaseError::fail(e.to_string());

    // Names must be unique (the column is UNIQUE): a repeated odd name becomes valid.
    let mut names: Vec<String> = Vec::new();
    let mut effective = spec.clone();
    for (i, sb) in effective.sandboxes.iter_mut().enumerate() {
        let mut name = name_text(sb.name, i, &canary);
        if names.contains(&name) {
            sb.name = Name::Valid;
            name = name_text(Name::Valid, i, &canary);
        }
        if !is_root() && sb.dir == Dir::ReadOnly {
            sb.dir = Dir::Present;
        }
        names.push(name);
    }
    let mut built = Vec::new();
    let mut rows = Vec::new();
    for (i, (sb, name)) in effective.sandboxes.iter().zip(&names).enumerate() {
        conn.execute(
            "INSERT INTO sandbox (name, config, status, ephemeral, updated_at) VALUES (?1, '{}', ?2, ?3, 'garbage')",
            params![
                text_value(name, sb.name_class, i),
                text_value(sb.status, sb.status_class, i),
                flag_value(sb.ephemeral, sb.ephemeral_class)
            ],
        )
        .map_err(fail)?;
        let id = conn.last_insert_rowid();
        let run_ids = sb
            .runs
            .iter()
            .map(|r| insert_run(&conn, id, r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let column =
            |c: &str| format!("SELECT typeof({c}), CAST({c} AS TEXT) FROM sandbox WHERE id = ?1");
        let row = Row {
            name: read_stored(&conn, &column("name"), id).map_err(fail)?,
            status: read_stored(&conn, &column("status"), id).map_err(fail)?,
            ephemeral: read_stored(&conn, &column("ephemeral"), id).map_err(fail)?,
            pids: run_ids
                .iter()
                .map(|&r| {
                    read_stored(
                        &conn,
                        "SELECT typeof(pid), CAST(pid AS TEXT) FROM run WHERE id = ?1",
                        r,
                    )
                })
                .collect::<Result<_, _>>()
                .map_err(fail)?,
        };
        // The directory the row names, by the bytes it stores, whatever
        // their class: the invariant below is about exactly this one.
        let dir_name = row.name.text.clone();
        if sb.name == Name::Valid {
            make_dir(&sandboxes.join(&dir_name), sb.dir, &canary)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        built.push(Built {
            name: dir_name,
            id,
            run_ids,
        });
        rows.push(row);
    }
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .map_err(fail)?;
    let orphan_ids = effective
        .orphans
        .iter()
        .map(|r| insert_run(&conn, 1_000_000, r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    conn.execute_batch("PRAGMA foreign_keys = ON")
        .map_err(fail)?;
    if let Some((expires, completed)) = effective.lease {
        conn.execute(
            "INSERT INTO maintenance_lease VALUES (?1, 4242, ?2, ?3)",
            params![sandbox_sweep::lease::LEASE_NAME, expires, completed],
        )
        .map_err(fail)?;
    }
    let canary_before = snapshot(&canary);

    let catalog = Catalog::from_connection(conn).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let conn = catalog.connection();
    let now = || parse_stamp("2026-06-04 12:00:00").expect("valid");
    let report = match Sweeper::new(&sandboxes)
        .limits(Limits::unlimited())
        .force(true)
        .run_with(&catalog, &now)
    {
        SweepOutcome::Swept(report) => report,
        other => {
            return Err(TestCaseError::fail(format!(
                "expected a sweep, got {other:?}"
            )));
        }
    };

    let Expected {
        statuses,
        runs,
        errors,
    } = model(&effective, &rows);
    prop_assert_eq!(report.errors, errors);
    prop_assert!(report.complete);
    for ((b, expected), expected_runs) in built.iter().zip(&statuses).zip(&runs) {
        let actual: Option<String> = conn
            .query_row(
                "SELECT CAST(status AS TEXT) FROM sandbox WHERE id = ?1",
                [b.id],
                |r| r.get(0),
            )
            .optional()
            .map_err(fail)?;
        prop_assert_eq!(&actual, expected, "sandbox {:?}", b.name);
        for (run_id, expected_run) in b.run_ids.iter().zip(expected_runs) {
            let actual: Option<String> = conn
                .query_row("SELECT status FROM run WHERE id = ?1", [run_id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(fail)?;
            prop_assert_eq!(
                actual.as_deref(),
                *expected_run,
                "run {} of {:?}",
                run_id,
                b.name
            );
        }
        let spec = &effective.sandboxes[built.iter().position(|x| x.id == b.id).unwrap_or(0)];
        if spec.name == Name::Valid && spec.dir != Dir::Absent {
            let path = sandboxes.join(&b.name);
            let on_disk = std::fs::symlink_metadata(&path).is_ok();
            prop_assert_eq!(on_disk, expected.is_some(), "directory of {:?}", b.name);
        }
    }
    for run_id in orphan_ids {
        let present: Option<i64> = conn
            .query_row("SELECT id FROM run WHERE id = ?1", [run_id], |r| r.get(0))
            .optional()
            .map_err(fail)?;
        prop_assert_eq!(present, Some(run_id), "orphan run");
    }
    prop_assert_eq!(
        snapshot(&canary),
        canary_before,
        "the canary outside changed"
    );
    prop_assert!(
        sandboxes.join("canary/x").is_dir(),
        "the canary inside changed"
    );
    let trash_left =
        std::fs::read_dir(sandboxes.join(".sandbox-sweep-trash")).map_or(0, |d| d.count());
    prop_assert_eq!(trash_left, 0);

    // `status` counts what is left: the catalog's statuses stored as
    // text, by their text, and every other value apart.
    let mut known = std::collections::BTreeMap::new();
    let mut other = 0u64;
    let mut stored = conn
        .prepare("SELECT typeof(status), CAST(status AS TEXT) FROM sandbox")
        .map_err(fail)?;
    let mut left = stored.query([]).map_err(fail)?;
    while let Some(row) = left.next().map_err(fail)? {
        let (class, text): (String, String) =
            (row.get(0).map_err(fail)?, row.get(1).map_err(fail)?);
        match text.parse::<SandboxStatus>() {
            Ok(status) if class == "text" => known.entry(text).or_insert((status, 0u64)).1 += 1,
            _ => other += 1,
        }
    }
    let summary = catalog
        .summary()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let expected: Vec<_> = known.into_values().collect();
    prop_assert_eq!(&summary.by_status, &expected);
    prop_assert_eq!(summary.other_status, other);
    Ok(())
}

/// Without root, the model's read-only sandbox trees become plain ones
/// (see `check`): that loss must be seen, and under CI it is a failure.
#[test]
fn read_only_trees_are_modelled_only_as_root() {
    root_for("hostile: read-only sandbox trees in the model");
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn hostile_catalogs_match_the_model(spec in catalog_spec()) {
        check(&spec)?;
    }
}
