//! A dry run predicts the sweep that follows it: on generated homes (rows
//! of every active and finished status, ephemeral or not, with a dead run
//! or none, their creation, lifecycle and snapshot-lineage locks held at
//! random by another open file), beside a run directory, the dry run's
//! counts equal those of the sweep run right after it, and the dry run
//! wrote nothing (the catalog's rows, and no lock file made).

pub mod common;

use std::fs::File;
use std::path::Path;

use common::*;
use nix::fcntl::{Flock, FlockArg};
use proptest::prelude::*;
use sandbox_sweep::{Catalog, Report, SweepOutcome, Sweeper, SystemClock};

/// One generated row: its status, whether it is ephemeral, whether it has
/// a dead `Running` run, and which of its locks are held.
#[derive(Debug, Clone)]
struct Row {
    status: &'static str,
    ephemeral: bool,
    dead_run: bool,
    held: [bool; 3],
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop::sample::select(vec![
            "Starting", "Running", "Draining", "Stopped", "Crashed",
        ]),
        any::<bool>(),
        any::<bool>(),
        any::<[bool; 3]>(),
    )
        .prop_map(|(status, ephemeral, dead_run, held)| Row {
            status,
            ephemeral,
            dead_run,
            held,
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

fn check(rows: &[Row]) -> Result<(), TestCaseError> {
    let env = Env::new();
    let run = env.dir.path().join("run");
    std::fs::create_dir(&run).expect("mkdir run");
    let conn = env.conn();
    let mut held = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let name = format!("s{i}");
        let id = add_sandbox(&conn, &name, row.status, row.ephemeral);
        if row.dead_run {
            add_run(&conn, id, Some(DEAD_PID));
        }
        std::fs::create_dir(env.sandboxes.join(&name)).expect("mkdir sandbox");
        for ((dir, suffix), on) in LOCKS.iter().zip(row.held) {
            if on {
                held.push(hold(&lock_at(&run, dir, &name, suffix)));
            }
        }
    }
    let catalog = Catalog::from_connection(sandbox_sweep::open(&env.db)?)?;
    let sweeper = Sweeper::new(&env.sandboxes).run_dir(&run).force(true);
    let before = (names_and_statuses(catalog.connection()), files_under(&run));
    let dry = sweeper.dry_run(&catalog, &SystemClock)?;
    prop_assert_eq!(
        (names_and_statuses(catalog.connection()), files_under(&run)),
        before,
        "the dry run wrote"
    );
    let SweepOutcome::Swept(swept) = sweeper.run(&catalog) else {
        return Err(TestCaseError::fail("expected a sweep"));
    };
    prop_assert_eq!(counts(&dry), counts(&swept), "{:?}", rows);
    drop(held);
    Ok(())
}

proptest! {
    // 64 cases unless PROPTEST_CASES says otherwise: each builds a home.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_dry_run_counts_what_the_sweep_then_does(rows in prop::collection::vec(row(), 1..12)) {
        check(&rows)?;
    }
}
