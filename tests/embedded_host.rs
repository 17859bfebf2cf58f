//! A host as the README describes it: one struct that owns its catalog
//! and its sweeper, built once, used for every start and every sandbox.
//! Uses only the crate's root names and `sandbox_sweep::rusqlite`.

pub mod common;

use std::path::{Path, PathBuf};

use common::*;
use sandbox_sweep::{
    Catalog, Lifetime, RunEnd, SandboxStatus, SweepOutcome, Sweeper, TerminationReason,
};

/// What an embedding runtime keeps for its life: no borrow ties the
/// catalog to a connection kept elsewhere.
struct Host {
    catalog: Catalog,
    sweeper: Sweeper,
    sandboxes: PathBuf,
}

impl Host {
    fn open(db: &Path, sandboxes: &Path) -> sandbox_sweep::Result<Host> {
        Ok(Host {
            catalog: Catalog::open(db)?,
            sweeper: Sweeper::new(sandboxes).force(true),
            sandboxes: sandboxes.to_owned(),
        })
    }

    fn on_start(&self) -> SweepOutcome {
        self.sweeper.run(&self.catalog)
    }
}

#[test]
fn a_host_struct_owns_its_catalog_for_every_call() -> TestResult {
    let f = Fixture::new()?;
    let host = Host::open(&f.db_path(), &f.sandboxes)?;
    let job =
        (host.catalog).insert_sandbox("job", SandboxStatus::Running, Lifetime::Ephemeral, now())?;
    std::fs::create_dir(host.sandboxes.join("job"))?;
    let me = sandbox_sweep::process::ProcessIdentity::current()?;
    let run = host.catalog.insert_running_run(job, &me, now())?;
    assert_eq!(
        host.catalog.sandbox_status(job)?,
        Some(SandboxStatus::Running)
    );
    assert!(
        matches!(host.on_start(), SweepOutcome::Swept(ref r) if r.reconciled == 0 && r.removed == 0)
    );
    let end = RunEnd::stopped(TerminationReason::Completed).exit_code(0);
    assert!(host.catalog.finish_run(run, end, now())?);
    assert_eq!(
        host.catalog.sandbox_status(job)?,
        Some(SandboxStatus::Stopped)
    );
    let report = swept(host.on_start());
    assert_eq!(report.removed, 1, "{report}");
    assert_eq!(host.catalog.sandbox_status(job)?, None);
    assert!(!exists(&host.sandboxes.join("job")));
    Ok(())
}

#[test]
fn a_kept_catalog_sees_another_programs_migration() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("msb.db");
    let conn = sandbox_sweep::rusqlite::Connection::open(&db)?;
    conn.execute_batch(include_str!("data/schema.sql"))?;
    drop(conn);
    let host = Host::open(&db, dir.path())?;
    assert!(!host.catalog.has_identity_columns());
    sandbox_sweep::migrate(&sandbox_sweep::open(&db)?)?;
    // The next sweep reads the new shape: identities are recorded from then on.
    assert!(matches!(host.on_start(), SweepOutcome::Swept(_)));
    assert!(host.catalog.has_identity_columns());
    Ok(())
}
