//! A dry run and `status` predict the sweep that follows them: on generated
//! homes (rows of every active and finished status, ephemeral or not, with
//! a dead run, a live one or none, their creation, lifecycle and
//! snapshot-lineage locks held at random by another open file, a runtime
//! endpoint answering or left behind), beside a run directory and without
//! one, the dry run's counts equal those of the sweep run right after it
//! and it wrote nothing (the catalog's rows, and no lock file made); and
//! what `status` lists as a dead runtime or an abandoned start is exactly
//! (same names, same kind) what that sweep then reconciles, read from the
//! rows as stored before and after.

pub mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use common::*;
use nix::fcntl::{Flock, FlockArg};
use proptest::prelude::*;
use sandbox_sweep::rusqlite::{self, Connection};
use sandbox_sweep::status::{Entry, StaleList, SummaryOptions};
use sandbox_sweep::{Catalog, Report, SweepOutcome, Sweeper, SystemClock};

/// A row's `Running` run: none, one whose process is dead, or this
/// process's own (alive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    None,
    Dead,
    Live,
}

/// One generated row: its status, whether it is ephemeral, its running
/// run, which of its locks are held, and a runtime endpoint (an index of
/// `socket_paths`, answering or a socket file nobody listens on).
#[derive(Debug, Clone)]
struct Row {
    status: &'static str,
    ephemeral: bool,
    run: Run,
    held: [bool; 3],
    endpoint: Option<(usize, bool)>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop::sample::select(vec![
            "Starting", "Running", "Draining", "Stopped", "Crashed",
        ]),
        any::<bool>(),
        prop::sample::select(vec![Run::None, Run::Dead, Run::Live]),
        any::<[bool; 3]>(),
        prop::option::weighted(0.25, (0..6usize, any::<bool>())),
    )
        .prop_map(|(status, ephemeral, run, held, endpoint)| Row {
            status,
            ephemeral,
            run,
            held,
            endpoint,
        })
}

/// The lock files a row's `held` names: creation, lifecycle, lineage.
const LOCKS: [(&str, &str); 3] = [
    ("creation-locks", ".lock"),
    ("locks", ".lock"),
    ("locks", ".snapshot-lineage.lock"),
];

/// Holds `path`'s lock on an open file of this process's own, as another
/// process would: the sweep's own open file cannot take it.
fn hold(path: &Path) -> Flock<File> {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the lock file");
    Flock::lock(file, FlockArg::LockExclusiveNonblock).expect("free before the test")
}

/// What a dry run must predict of a sweep.
fn counts(report: &Report) -> Vec<(String, u64)> {
    use sandbox_sweep::CleanupOutcome;
    use sandbox_sweep::process::DeadReason;
    let mut all = vec![
        ("reconciled".to_owned(), report.reconciled),
        ("removed".to_owned(), report.removed),
        ("errors".to_owned(), report.errors),
        ("crashed".to_owned(), report.crashed),
        ("stopped".to_owned(), report.stopped),
        ("abandoned".to_owned(), report.abandoned),
        ("lifecycle_owned".to_owned(), report.lifecycle_owned),
    ];
    all.extend(
        DeadReason::ALL
            .iter()
            .map(|&r| (format!("dead.{}", r.as_str()), report.dead(r))),
    );
    all.extend(
        CleanupOutcome::ALL
            .iter()
            .map(|&o| (format!("cleanup.{}", o.as_str()), report.outcome(o))),
    );
    all
}

/// The files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            found.push(path);
        }
    }
    found.sort();
    found
}

/// A generated home: the catalog's rows, their sandbox directories, the
/// locks held and the endpoints left, kept until it is dropped.
struct Home {
    env: Env,
    run: PathBuf,
    beside: bool,
    _held: Vec<Flock<File>>,
    _listening: Vec<UnixListener>,
}

impl Home {
    /// `rows` as a home; the sweep and `status` look beside its run
    /// directory only when `beside`.
    fn new(rows: &[Row], beside: bool) -> Home {
        let env = Env::new();
        let run = env.dir.path().join("run");
        std::fs::create_dir(&run).expect("mkdir run");
        let conn = env.conn();
        let (mut held, mut listening) = (Vec::new(), Vec::new());
        for (i, row) in rows.iter().enumerate() {
            let name = format!("s{i}");
            let id = add_sandbox(&conn, &name, row.status, row.ephemeral);
            match row.run {
                Run::None => {}
                Run::Dead => {
                    add_run(&conn, id, Some(DEAD_PID));
                }
                Run::Live => {
                    add_run(&conn, id, Some(own_pid()));
                }
            }
            std::fs::create_dir(env.sandboxes.join(&name)).expect("mkdir sandbox");
            for ((dir, suffix), on) in LOCKS.iter().zip(row.held) {
                if on {
                    held.push(hold(&lock_at(&run, dir, &name, suffix)));
                }
            }
            if let Some((at, answers)) = row.endpoint {
                let path = socket_paths(&run, &env.sandboxes, &name).swap_remove(at);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                let listener = UnixListener::bind(&path).expect("bind");
                if answers {
                    listening.push(listener);
                }
            }
        }
        Home {
            env,
            run,
            beside,
            _held: held,
            _listening: listening,
        }
    }

    fn sweeper(&self) -> Sweeper {
        let sweeper = Sweeper::new(&self.env.sandboxes).force(true);
        if self.beside {
            sweeper.run_dir(&self.run)
        } else {
            sweeper
        }
    }

    fn sweep(&self, catalog: &Catalog) -> Result<Report, TestCaseError> {
        match self.sweeper().run(catalog) {
            SweepOutcome::Swept(report) => Ok(report),
            other => Err(TestCaseError::fail(format!(
                "expected a sweep, got {other:?}"
            ))),
        }
    }
}

/// Every sandbox row as stored, by id: name, status, and whether it has a
/// `Running` run.
fn rows_as_stored(conn: &Connection) -> BTreeMap<i64, (String, String, bool)> {
    let mut stmt = conn
        .prepare(
            "SELECT id, name, status,
                    EXISTS (SELECT 1 FROM run WHERE sandbox_id = sandbox.id AND status = 'Running')
             FROM sandbox",
        )
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// What a sweep reconciled, from the rows before and after it: each active
/// row whose status moved or that is gone (reconciled, then cleaned in the
/// same pass), by name, as `abandoned` (a start with no running run) or
/// `dead`.
fn reconciled(
    before: &BTreeMap<i64, (String, String, bool)>,
    after: &BTreeMap<i64, (String, String, bool)>,
) -> BTreeSet<(String, &'static str)> {
    before
        .iter()
        .filter(|(_, (_, status, _))| {
            ["Starting", "Running", "Draining"].contains(&status.as_str())
        })
        .filter(|(id, (_, status, _))| after.get(id).is_none_or(|(_, now, _)| now != status))
        .map(|(_, (name, status, has_run))| {
            let kind = if status == "Starting" && !has_run {
                "abandoned"
            } else {
                "dead"
            };
            (name.clone(), kind)
        })
        .collect()
}

fn dry_run_predicts_the_sweep(rows: &[Row], beside: bool) -> Result<(), TestCaseError> {
    let home = Home::new(rows, beside);
    let catalog = Catalog::from_connection(sandbox_sweep::open(&home.env.db)?)?;
    let before = (
        names_and_statuses(catalog.connection()),
        files_under(&home.run),
    );
    let dry = home.sweeper().dry_run(&catalog, &SystemClock)?;
    prop_assert_eq!(
        (
            names_and_statuses(catalog.connection()),
            files_under(&home.run)
        ),
        before,
        "the dry run wrote"
    );
    let swept = home.sweep(&catalog)?;
    prop_assert_eq!(counts(&dry), counts(&swept), "{:?}", rows);
    Ok(())
}

fn status_lists_what_the_sweep_reconciles(rows: &[Row], beside: bool) -> Result<(), TestCaseError> {
    let home = Home::new(rows, beside);
    let mut options = SummaryOptions::new().sandboxes_dir(&home.env.sandboxes);
    if beside {
        options = options.run_dir(&home.run);
    }
    let read_only = Catalog::open_read_only(&home.env.db)?;
    let files = files_under(&home.run);
    let mut listed = BTreeSet::new();
    let summary = read_only.summary_with(&options, |entry| {
        if let Entry::Stale(list, sandbox) = entry {
            let kind = match list {
                StaleList::DeadActive => "dead",
                StaleList::AbandonedStarts => "abandoned",
                _ => "owned",
            };
            listed.insert((sandbox.name.clone(), kind));
        }
        Ok::<_, sandbox_sweep::Error>(())
    })?;
    drop(read_only);
    prop_assert_eq!(
        files_under(&home.run),
        files,
        "status wrote in the run directory"
    );
    let (owned, listed): (BTreeSet<_>, BTreeSet<_>) =
        listed.into_iter().partition(|(_, kind)| *kind == "owned");

    let catalog = Catalog::from_connection(sandbox_sweep::open(&home.env.db)?)?;
    let before = rows_as_stored(catalog.connection());
    let swept = home.sweep(&catalog)?;
    let after = rows_as_stored(catalog.connection());
    let reconciled = reconciled(&before, &after);
    prop_assert_eq!(&listed, &reconciled, "{:?}", rows);
    // What it lists as left to a lock's holder, the sweep leaves.
    let reconciled_names: BTreeSet<_> = reconciled.iter().map(|(name, _)| name).collect();
    prop_assert!(
        owned
            .iter()
            .all(|(name, _)| !reconciled_names.contains(name)),
        "{:?}",
        rows
    );
    // The report's `lifecycle_owned` also counts cleanups a held lock
    // stopped, so only the reconciled counts compare whole.
    prop_assert_eq!(
        (
            summary.dead_active.total + summary.abandoned_starts.total,
            summary.abandoned_starts.total,
        ),
        (swept.reconciled, swept.abandoned),
        "{:?}",
        rows
    );
    Ok(())
}

proptest! {
    // 64 cases unless PROPTEST_CASES says otherwise: each builds a home.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_dry_run_counts_what_the_sweep_then_does(
        rows in prop::collection::vec(row(), 1..12),
        beside in any::<bool>(),
    ) {
        dry_run_predicts_the_sweep(&rows, beside)?;
    }

    #[test]
    fn status_lists_as_dead_or_abandoned_exactly_what_the_sweep_then_reconciles(
        rows in prop::collection::vec(row(), 1..12),
        beside in any::<bool>(),
    ) {
        status_lists_what_the_sweep_reconciles(&rows, beside)?;
    }
}
