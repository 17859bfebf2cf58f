//! The hot paths: the gate every runtime start pays, sweep throughput, budget
//! adherence, and cost on a large catalog. Catalogs are built once per
//! benchmark as a template file and copied fresh (outside the timed region)
//! for every iteration that changes them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rusqlite::params;
use sandbox_sweep::__private::parse_stamp;
use sandbox_sweep::lease::{Acquire, MinInterval};
use sandbox_sweep::time::PrimitiveDateTime;
use sandbox_sweep::{Catalog, Limits, SweepOutcome, Sweeper, SystemClock};

#[path = "../tests/common/fixture.rs"]
pub mod fixture;

use fixture::DEAD_PID;

fn now() -> PrimitiveDateTime {
    parse_stamp("2026-06-04 12:00:00").expect("valid")
}

/// What a template catalog holds.
#[derive(Clone, Copy, Default)]
struct Shape {
    stale: usize,
    ephemeral: usize,
    persistent: usize,
    runs_per_persistent: usize,
}

struct Template {
    _dir: tempfile::TempDir,
    db: PathBuf,
    shape: Shape,
}

impl Template {
    fn new(shape: Shape) -> Template {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("template.db");
        let conn = sandbox_sweep::open(&db).expect("open");
        sandbox_sweep::migrate(&conn).expect("migrate");
        let tx = conn.unchecked_transaction().expect("tx");
        {
            let mut sandbox = tx
                .prepare("INSERT INTO sandbox (name, config, status, ephemeral) VALUES (?1, '{}', ?2, ?3)")
                .expect("prepare");
            let mut run = tx
                .prepare("INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, ?3, '2026-06-01 00:00:00')")
                .expect("prepare");
            // Persistent history first, so candidates sit behind it in id order.
            for i in 0..shape.persistent {
                sandbox
                    .execute(params![format!("keep-{i}"), "Stopped", false])
                    .expect("insert");
                let id = tx.last_insert_rowid();
                for _ in 0..shape.runs_per_persistent {
                    run.execute(params![id, DEAD_PID, "Terminated"])
                        .expect("insert");
                }
            }
            for i in 0..shape.stale {
                sandbox
                    .execute(params![format!("stale-{i}"), "Running", false])
                    .expect("insert");
                run.execute(params![tx.last_insert_rowid(), DEAD_PID, "Running"])
                    .expect("insert");
            }
            for i in 0..shape.ephemeral {
                sandbox
                    .execute(params![format!("eph-{i}"), "Stopped", true])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        Template {
            _dir: dir,
            db,
            shape,
        }
    }

    /// A fresh copy with the ephemeral sandboxes' directories.
    fn instance(&self) -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("catalog.db");
        std::fs::copy(&self.db, &db).expect("copy template");
        let sandboxes = dir.path().join("sandboxes");
        std::fs::create_dir(&sandboxes).expect("mkdir");
        for i in 0..self.shape.ephemeral {
            let d = sandboxes.join(format!("eph-{i}"));
            std::fs::create_dir(&d).expect("mkdir");
            std::fs::write(d.join("config.json"), b"{}").expect("write");
        }
        let conn = sandbox_sweep::open(&db).expect("open");
        Instance {
            _dir: dir,
            catalog: Catalog::from_connection(conn).expect("catalog"),
            sandboxes,
        }
    }

    /// [`Template::instance`] beside a microsandbox run directory whose
    /// creation and lifecycle lock files exist (as msb's launchers and
    /// runtimes leave them) and are free, with no sockets: what the lock
    /// protocol costs on its own.
    fn instance_with_run_dir(&self) -> (Instance, PathBuf) {
        let instance = self.instance();
        let run = instance._dir.path().join("run");
        for path in self.lock_files(&run) {
            std::fs::File::create(path).expect("lock file");
        }
        (instance, run)
    }

    /// Every candidate's creation and lifecycle lock file in `run`, in the
    /// order a sweep takes them (the folders are created).
    fn lock_files(&self, run: &Path) -> Vec<PathBuf> {
        std::fs::create_dir_all(run.join("locks")).expect("mkdir");
        std::fs::create_dir_all(run.join("creation-locks")).expect("mkdir");
        let names = (0..self.shape.stale)
            .map(|i| format!("stale-{i}"))
            .chain((0..self.shape.ephemeral).map(|i| format!("eph-{i}")));
        names
            .flat_map(|name| {
                let lifecycle = sandbox_sweep::rundir::lifecycle_lock_path(run, &name);
                let file = lifecycle.file_name().expect("file name").to_owned();
                [run.join("creation-locks").join(file), lifecycle]
            })
            .collect()
    }
}

struct Instance {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    sandboxes: PathBuf,
}

fn sweep(instance: &Instance, sweeper: Sweeper) -> sandbox_sweep::Report {
    fixture::swept(sweeper.force(true).run_with(&instance.catalog, &now))
}

/// Each row's name and its lock files' `H16`, for a floor: computed
/// outside the timed region (hashing is the crate's work, not a floor's).
fn floor_rows(run: &Path, prefix: &str, n: usize) -> Vec<(std::ffi::CString, String)> {
    (0..n)
        .map(|i| {
            let name = format!("{prefix}-{i}");
            let lock = sandbox_sweep::rundir::lifecycle_lock_path(run, &name);
            let file = lock.file_name().expect("file name").to_string_lossy();
            let h16 = file.trim_end_matches(".lock").to_owned();
            (std::ffi::CString::new(name).expect("name"), h16)
        })
        .collect()
}

/// `10000/locks_floor` in `group`: [`lock_floor`] over the `n` rows
/// `<prefix>-<i>` of a copy of `template` beside a run directory, taking
/// `locks` (folder, suffix) for each.
fn bench_lock_floor(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    template: &Template,
    prefix: &str,
    n: usize,
    locks: &[(&str, &str)],
) {
    group.bench_function("10000/locks_floor", |b| {
        b.iter_batched_ref(
            || {
                let (i, run) = template.instance_with_run_dir();
                let rows = floor_rows(&run, prefix, n);
                (i, run, rows)
            },
            |(i, run, rows)| lock_floor(&i.sandboxes, run, rows, locks),
            BatchSize::PerIteration,
        )
    });
}

/// A lock protocol's floor: per row, each of `locks` (`(folder, suffix)`)
/// opened relative to its open folder as the crate opens it (created when
/// missing), `fstat`ed and `flock`ed without blocking, all held until the
/// row's end; then `<sandboxes>/<name>` looked up once, as a directory,
/// not followed.
fn lock_floor(
    sandboxes: &Path,
    run: &Path,
    rows: &[(std::ffi::CString, String)],
    locks: &[(&str, &str)],
) {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, fstat};
    use std::os::fd::AsFd;
    let dir = |path: &Path| {
        nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open a folder")
    };
    let sandboxes = dir(sandboxes);
    let folders: Vec<_> = locks
        .iter()
        .map(|(folder, _)| dir(&run.join(folder)))
        .collect();
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(0o644);
    for (name, h16) in rows {
        let mut held = Vec::with_capacity(locks.len());
        for ((_, suffix), folder) in locks.iter().zip(&folders) {
            let file = format!("{h16}{suffix}");
            let fd = match openat(folder.as_fd(), file.as_str(), flags, mode) {
                Err(nix::errno::Errno::ENOENT) => {
                    openat(folder.as_fd(), file.as_str(), flags | OFlag::O_CREAT, mode)
                }
                other => other,
            }
            .expect("open a lock file");
            assert!(fstat(&fd).expect("fstat").st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG);
            let fd = std::fs::File::from(fd);
            fd.try_lock().expect("flock");
            held.push(fd);
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(sandboxes.as_fd(), name.as_c_str(), flags, Mode::empty()) {
            Ok(fd) => drop(fd),
            Err(nix::errno::Errno::ENOENT) => {}
            Err(errno) => panic!("{name:?}: {errno}"),
        }
    }
}

fn unlimited(sandboxes: &Path) -> Sweeper {
    Sweeper::new(sandboxes).limits(Limits::unlimited())
}

fn gate(c: &mut Criterion) {
    let template = Template::new(Shape::default());
    let held = template.instance();
    let catalog = &held.catalog;
    let Acquire::Acquired(lease) = catalog
        .try_acquire(&now, MinInterval::Respect)
        .expect("acquire")
    else {
        panic!("free");
    };
    std::mem::forget(lease);
    c.bench_function("gate/held", |b| {
        b.iter(|| {
            assert!(matches!(
                catalog.try_acquire(&now, MinInterval::Respect),
                Ok(Acquire::Skipped(_))
            ))
        })
    });
    // What a runtime pays per start through `Sweeper::run` on the catalog
    // it keeps, on the real clock, after a recent sweep.
    let entry = template.instance();
    let catalog = &entry.catalog;
    let sweeper = Sweeper::new(&entry.sandboxes);
    let Acquire::Acquired(lease) = catalog
        .try_acquire(&SystemClock, MinInterval::Respect)
        .expect("acquire")
    else {
        panic!("free");
    };
    lease.complete(SystemClock::now()).expect("complete");
    c.bench_function("gate/startup_entry", |b| {
        b.iter(|| assert!(matches!(sweeper.run(catalog), SweepOutcome::Skipped(_))))
    });
    let recent = template.instance();
    let catalog = &recent.catalog;
    let Acquire::Acquired(lease) = catalog
        .try_acquire(&now, MinInterval::Respect)
        .expect("acquire")
    else {
        panic!("free");
    };
    lease.complete(now()).expect("complete");
    c.bench_function("gate/recent", |b| {
        b.iter(|| {
            assert!(matches!(
                catalog.try_acquire(&now, MinInterval::Respect),
                Ok(Acquire::Skipped(_))
            ))
        })
    });
    let free = template.instance();
    let catalog = &free.catalog;
    c.bench_function("acquire_release", |b| {
        b.iter(|| match catalog.try_acquire(&now, MinInterval::Respect) {
            Ok(Acquire::Acquired(lease)) => lease.release().expect("release"),
            other => panic!("expected the lease, got {other:?}"),
        })
    });
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    // An iteration takes about a second with its setup: ten of them, not
    // linear sampling's fifty-five.
    group.sampling_mode(SamplingMode::Flat);
    let template = Template::new(Shape {
        stale: 10_000,
        ..Shape::default()
    });
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10000", |b| {
        b.iter_batched_ref(
            || template.instance(),
            |i| assert_eq!(sweep(i, unlimited(&i.sandboxes)).reconciled, 10_000),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("10000/locks", |b| {
        b.iter_batched_ref(
            || template.instance_with_run_dir(),
            |(i, run)| {
                let sweeper = unlimited(&i.sandboxes).run_dir(&*run);
                assert_eq!(sweep(i, sweeper).reconciled, 10_000);
            },
            BatchSize::PerIteration,
        )
    });
    // The lock protocol's floor, for `10000/locks` on the same machine:
    // the system calls it cannot do without, with no catalog, no hashing
    // and no logic around them: per row, each lock file opened relative to
    // its folder (read-write, no symlink followed), checked to be a regular
    // file and `flock`ed without blocking, and the one lookup of
    // `<sandboxes>/<name>` (its fallback sockets and bootstrap root live
    // there; msb looks too). `10000/locks` is held to at most
    // 1.3 x (`10000` + this).
    bench_lock_floor(
        &mut group,
        &template,
        "stale",
        template.shape.stale,
        &[("creation-locks", ".lock"), ("locks", ".lock")],
    );
    group.finish();

    let mut group = c.benchmark_group("cleanup");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    let template = Template::new(Shape {
        ephemeral: 10_000,
        ..Shape::default()
    });
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10000", |b| {
        b.iter_batched_ref(
            || template.instance(),
            |i| assert_eq!(sweep(i, unlimited(&i.sandboxes)).removed, 10_000),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("10000/locks", |b| {
        b.iter_batched_ref(
            || template.instance_with_run_dir(),
            |(i, run)| {
                let sweeper = unlimited(&i.sandboxes).run_dir(&*run);
                assert_eq!(sweep(i, sweeper).removed, 10_000);
            },
            BatchSize::PerIteration,
        )
    });
    // The cleanup's lock floor, for `10000/locks`: per row, its
    // snapshot-lineage lock (made, as the first sweep beside a run
    // directory makes it) and its lifecycle lock opened, checked and
    // `flock`ed, and the one lookup of `<sandboxes>/<name>`, with no
    // catalog. `10000/locks` is held to at most 1.3 x (`10000` + this).
    bench_lock_floor(
        &mut group,
        &template,
        "eph",
        template.shape.ephemeral,
        &[("locks", ".snapshot-lineage.lock"), ("locks", ".lock")],
    );
    // The filesystem's share alone, for comparison on the same machine: the
    // same renames into a trash and deletions, with no catalog at all.
    group.bench_function("10000/filesystem_only", |b| {
        b.iter_batched_ref(
            || template.instance(),
            |i| {
                let trash = i.sandboxes.join("trash");
                std::fs::create_dir(&trash).expect("mkdir");
                for n in 0..10_000 {
                    let from = i.sandboxes.join(format!("eph-{n}"));
                    std::fs::rename(from, trash.join(n.to_string())).expect("rename");
                }
                for n in 0..10_000 {
                    std::fs::remove_dir_all(trash.join(n.to_string())).expect("delete");
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn defaults(c: &mut Criterion) {
    let mut group = c.benchmark_group("defaults");
    group.sample_size(20);
    let template = Template::new(Shape {
        stale: 250,
        ephemeral: 250,
        ..Shape::default()
    });
    group.throughput(Throughput::Elements(500));
    group.bench_function("250+250", |b| {
        b.iter_batched_ref(
            || template.instance(),
            |i| {
                let report = sweep(i, Sweeper::new(&i.sandboxes));
                assert_eq!(
                    (report.reconciled, report.removed, report.timed_out),
                    (250, 250, false)
                );
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn big_catalog(c: &mut Criterion) {
    let mut group = c.benchmark_group("big_catalog");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2_000));
    let work = Shape {
        stale: 1_000,
        ephemeral: 1_000,
        ..Shape::default()
    };
    for (id, shape) in [
        ("empty", work),
        (
            "20000x5",
            Shape {
                persistent: 20_000,
                runs_per_persistent: 5,
                ..work
            },
        ),
    ] {
        let template = Template::new(shape);
        group.bench_function(id, |b| {
            b.iter_batched_ref(
                || template.instance(),
                |i| {
                    let report = sweep(i, unlimited(&i.sandboxes));
                    assert_eq!((report.reconciled, report.removed), (1_000, 1_000));
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn budget(c: &mut Criterion) {
    let mut group = c.benchmark_group("budget");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let template = Template::new(Shape {
        stale: 100_000,
        ..Shape::default()
    });
    group.bench_function("100000", |b| {
        b.iter_batched_ref(
            || template.instance(),
            |i| {
                let sweeper = unlimited(&i.sandboxes).budget(Duration::from_millis(250));
                let report = sweep(i, sweeper);
                assert!(report.timed_out && report.reconciled > 0, "{report:?}");
                report.reconciled
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// An orphan scan of 10,000 sandbox directories beside their 10,000 rows,
/// against its floor: the same directory read and one indexed lookup of
/// each name through plain rusqlite, nothing else.
fn orphans(c: &mut Criterion) {
    let mut group = c.benchmark_group("orphans");
    group.sample_size(20);
    group.throughput(Throughput::Elements(10_000));
    let template = Template::new(Shape::default());
    let instance = template.instance();
    let names: Vec<String> = (0..10_000).map(|i| format!("sb-{i}")).collect();
    {
        let conn = instance.catalog.connection();
        let tx = conn.unchecked_transaction().expect("tx");
        for name in &names {
            tx.execute(
                "INSERT INTO sandbox (name, config, status, ephemeral) VALUES (?1, '{}', 'Stopped', 0)",
                [name],
            )
            .expect("insert");
            std::fs::create_dir(instance.sandboxes.join(name)).expect("mkdir");
        }
        tx.commit().expect("commit");
    }
    let scan = sandbox_sweep::orphans::OrphanScan::new(&instance.sandboxes);
    group.bench_function("10000", |b| {
        b.iter(|| {
            let found = scan.scan(&instance.catalog).expect("scan");
            assert!(found.complete && found.entries.is_empty() && found.examined == 10_000);
        })
    });
    group.bench_function("10000/floor", |b| {
        let conn = instance.catalog.connection();
        b.iter(|| {
            let mut lookup = conn
                .prepare_cached("SELECT 1 FROM sandbox WHERE name = ?1")
                .expect("prepare");
            let mut named = 0;
            for entry in std::fs::read_dir(&instance.sandboxes).expect("read_dir") {
                let name = entry.expect("entry").file_name();
                if lookup
                    .exists([name.to_str().expect("utf-8")])
                    .expect("lookup")
                {
                    named += 1;
                }
            }
            assert_eq!(named, 10_000);
        })
    });
    group.finish();
}

/// A catalog of 1,000,000 sandboxes with two runs each, 1,000 of them
/// `Running` with a dead runtime, spread one in every thousand: built once
/// and cached under the target directory (`CARGO_TARGET_TMPDIR`), since
/// building it takes seconds.
fn million_template() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-catalogs");
    let db = dir.join("million-v1.db");
    if db.exists() {
        return db;
    }
    std::fs::create_dir_all(&dir).expect("mkdir");
    let building = dir.join(format!("building-{}.db", std::process::id()));
    let conn = sandbox_sweep::open(&building).expect("open");
    sandbox_sweep::migrate(&conn).expect("migrate");
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000)
         INSERT INTO sandbox (id, name, config, status, ephemeral, updated_at)
             SELECT x, 'sb-' || x, '{{}}', CASE WHEN x % 1000 = 500 THEN 'Running' ELSE 'Stopped' END, 0,
                    '2026-06-01 00:00:00' FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000000)
         INSERT INTO run (sandbox_id, pid, status, started_at)
             SELECT (x + 1) / 2, {DEAD_PID},
                    CASE WHEN x % 2 = 0 AND (x / 2) % 1000 = 500 THEN 'Running' ELSE 'Terminated' END,
                    '2026-06-01 00:00:00' FROM n;
         COMMIT;
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .expect("build");
    drop(conn);
    std::fs::rename(&building, &db).expect("publish");
    db
}

/// The million-row catalog as microsandbox leaves it before anyone runs
/// `init`: without this crate's indexes, so each run lookup scans the
/// `run` table. Built once from [`million_template`] and cached beside it.
fn million_unindexed_template(indexed: &Path) -> PathBuf {
    let db = indexed.with_file_name("million-unindexed-v1.db");
    if db.exists() {
        return db;
    }
    let building = indexed.with_file_name(format!("building-unindexed-{}.db", std::process::id()));
    std::fs::copy(indexed, &building).expect("copy");
    let conn = sandbox_sweep::open(&building).expect("open");
    conn.execute_batch(
        "DROP INDEX idx_run_sandbox_status; DROP INDEX idx_sandbox_status;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .expect("drop the indexes");
    drop(conn);
    std::fs::rename(&building, &db).expect("publish");
    db
}

/// A private copy of the million-row catalog.
fn million_copy(template: &Path) -> Instance {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.db");
    std::fs::copy(template, &db).expect("copy");
    let sandboxes = dir.path().join("sandboxes");
    std::fs::create_dir(&sandboxes).expect("mkdir");
    let conn = sandbox_sweep::open(&db).expect("open");
    Instance {
        _dir: dir,
        catalog: Catalog::from_connection(conn).expect("catalog"),
        sandboxes,
    }
}

/// The 1,000 stale rows of a million-row copy: (sandbox id, running run id).
fn stale_pairs(i: &Instance) -> Vec<(i64, i64)> {
    i.catalog
        .connection()
        .prepare(
            "SELECT s.id, r.id FROM sandbox s JOIN run r ON r.sandbox_id = s.id AND r.status = 'Running'
             WHERE s.status = 'Running' ORDER BY s.id",
        )
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("pairs")
}

/// The gate, `status` and a sparse reconcile on a million sandboxes, each
/// against its small-catalog twin or its floor.
fn million(c: &mut Criterion) {
    let template = million_template();
    let held = million_copy(&template);
    let Acquire::Acquired(lease) = held
        .catalog
        .try_acquire(&now, MinInterval::Respect)
        .expect("acquire")
    else {
        panic!("free");
    };
    std::mem::forget(lease);
    c.bench_function("gate/held/1000000", |b| {
        b.iter(|| {
            assert!(matches!(
                held.catalog.try_acquire(&now, MinInterval::Respect),
                Ok(Acquire::Skipped(_))
            ))
        })
    });
    drop(held);
    let mut group = c.benchmark_group("status");
    group.sample_size(10);
    let read = million_copy(&template);
    group.bench_function("1000000", |b| {
        b.iter(|| {
            let summary = read.catalog.summary().expect("summary");
            assert_eq!(summary.dead_active.total, 1000);
            summary.by_status.len()
        })
    });
    // Its floor: what any exact `status` reads, through plain rusqlite:
    // every row counted (SQLite's count of each index page's cells, no
    // step per row), and each active sandbox's running run, once.
    group.bench_function("1000000/floor", |b| {
        let conn = read.catalog.connection();
        b.iter(|| {
            let total: i64 = conn
                .query_row("SELECT count(*) FROM sandbox", [], |r| r.get(0))
                .expect("count");
            let ids: Vec<i64> = conn
                .prepare_cached(
                    "SELECT id FROM sandbox WHERE status IN ('Starting', 'Running', 'Draining') ORDER BY id",
                )
                .expect("prepare")
                .query_map([], |r| r.get(0))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("ids");
            let mut runs = conn
                .prepare_cached(
                    "SELECT id, pid, started_at, pid_start_time, boot_id FROM run
                     WHERE sandbox_id = ?1 AND status = 'Running'",
                )
                .expect("prepare");
            let mut found = 0;
            for id in ids {
                found += runs.query([id]).expect("runs").next().expect("run").is_some() as usize;
            }
            assert_eq!((total, found), (1_000_000, 1000));
        })
    });
    group.finish();
    drop(read);
    // A default sweep where one run lookup outlives the budget: it stops at
    // the budget (250 ms) plus the slack of its interrupt, which is the
    // figure this holds.
    let unindexed = million_unindexed_template(&template);
    let mut group = c.benchmark_group("budget");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("unindexed_1000000", |b| {
        b.iter_batched_ref(
            || million_copy(&unindexed),
            |i| {
                let report = sweep(i, Sweeper::new(&i.sandboxes));
                assert!(report.timed_out, "{report:?}");
                assert_eq!(report.missing_indexes.len(), 2, "{report:?}");
                report.reconciled
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("1000/sparse_1000000", |b| {
        b.iter_batched_ref(
            || million_copy(&template),
            |i| {
                let report = sweep(i, unlimited(&i.sandboxes));
                assert_eq!(report.reconciled, 1_000);
            },
            BatchSize::PerIteration,
        )
    });
    // The physical limit: the same two guarded updates per row, in the
    // same 512-row transactions, and nothing else.
    group.bench_function("1000/sparse_1000000/floor", |b| {
        b.iter_batched_ref(
            || {
                let i = million_copy(&template);
                let pairs = stale_pairs(&i);
                (i, pairs)
            },
            |(i, pairs)| {
                let conn = i.catalog.connection();
                for page in pairs.chunks(512) {
                    let tx = conn.unchecked_transaction().expect("tx");
                    for &(sandbox, run) in page {
                        tx.prepare_cached(
                            "UPDATE sandbox SET status = 'Crashed', updated_at = ?2, active_config = NULL
                             WHERE id = ?1 AND status = 'Running'",
                        )
                        .expect("prepare")
                        .execute(params![sandbox, "2026-06-04 12:00:00"])
                        .expect("update");
                        tx.prepare_cached(
                            "UPDATE run SET status = 'Terminated', termination_reason = 'InternalError',
                             terminated_at = ?2 WHERE id = ?1 AND status = 'Running'",
                        )
                        .expect("prepare")
                        .execute(params![run, "2026-06-04 12:00:00"])
                        .expect("update");
                    }
                    tx.commit().expect("commit");
                }
                assert_eq!(pairs.len(), 1_000);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    gate,
    throughput,
    defaults,
    big_catalog,
    budget,
    orphans,
    million
);
criterion_main!(benches);
