//! A runtime's writes around the sweep, with no SQL of its own: insert a
//! sandbox, record its run, finish the run, clean the sandbox.

pub mod common;

use common::*;
use sandbox_sweep::process::*;
use sandbox_sweep::*;

/// `(status, termination_reason, exit_code, exit_signal, terminated_at)` of a run.
type RunEndRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn run_end(f: &Fixture, run: RunId) -> Result<RunEndRow> {
    Ok(f.conn().query_row(
        "SELECT status, termination_reason, exit_code, exit_signal, terminated_at FROM run WHERE id = ?1",
        [run],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?)
}

#[test]
fn finishing_a_run_ends_it_and_its_sandbox_in_one_transaction() -> Result<()> {
    let f = Fixture::new()?;
    // As microsandbox's migration m20260818 adds it.
    f.conn()
        .execute_batch("ALTER TABLE sandbox ADD COLUMN network_slot INTEGER")?;
    let catalog = &f.catalog;
    let me = ProcessIdentity::current()?;
    let ok = catalog.insert_sandbox("ok", SandboxStatus::Running, Lifetime::Ephemeral, now())?;
    let ok_run = catalog.insert_running_run(ok, &me, now())?;
    let killed = catalog.insert_sandbox(
        "killed",
        SandboxStatus::Running,
        Lifetime::Persistent,
        now(),
    )?;
    let killed_run = catalog.insert_running_run(killed, &me, now())?;
    f.conn().execute(
        "UPDATE sandbox SET active_config = '{\"cpus\":2}', network_slot = id",
        [],
    )?;

    let done = RunEnd::stopped(TerminationReason::Completed).exit_code(0);
    assert!(catalog.finish_run(ok_run, done, now())?);
    assert_eq!(
        run_end(&f, ok_run)?,
        (
            "Terminated".into(),
            Some("Completed".into()),
            Some(0),
            None,
            Some(NOW.into())
        )
    );
    assert_eq!(f.status(ok.get())?.as_deref(), Some("Stopped"));

    let end = RunEnd::crashed(TerminationReason::Signal).exit_signal(9);
    assert!(catalog.finish_run(killed_run, end, now())?);
    assert_eq!(
        run_end(&f, killed_run)?,
        (
            "Terminated".into(),
            Some("Signal".into()),
            None,
            Some(9),
            Some(NOW.into())
        )
    );
    assert_eq!(f.status(killed.get())?.as_deref(), Some("Crashed"));
    let configs = f.count("SELECT count(*) FROM sandbox WHERE active_config IS NOT NULL")?;
    assert_eq!(configs, 0, "a finished sandbox keeps no active config");
    let slots = f.count("SELECT count(*) FROM sandbox WHERE network_slot IS NOT NULL")?;
    assert_eq!(slots, 0, "a finished sandbox keeps no network slot");

    // Already finished, or no such run: nothing changes.
    let again = RunEnd::crashed(TerminationReason::InternalError);
    assert!(!catalog.finish_run(ok_run, again, now())?);
    assert!(!catalog.finish_run(RunId::new(999), again, now())?);
    assert_eq!(f.status(ok.get())?.as_deref(), Some("Stopped"));

    // The finished ephemeral sandbox is now the runtime's to clean.
    f.mkdir("ok");
    assert_eq!(
        Sweeper::new(&f.sandboxes).clean_ephemeral(catalog, ok)?,
        CleanupOutcome::Removed
    );
    assert!(!exists(&f.sandboxes.join("ok")));
    Ok(())
}

#[test]
fn a_sandbox_the_sweep_could_never_clean_cannot_be_inserted() -> Result<()> {
    let f = Fixture::new()?;
    let catalog = &f.catalog;
    for bad in ["", "..", "a/b", ".sandbox-sweep-x"] {
        assert!(
            matches!(
                catalog.insert_sandbox(bad, SandboxStatus::Created, Lifetime::Ephemeral, now()),
                Err(Error::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    let web = (SandboxStatus::Created, Lifetime::Persistent);
    let id = catalog.insert_sandbox("web", web.0, web.1, now())?;
    assert!(catalog.insert_sandbox("web", web.0, web.1, now()).is_err());
    let row: (String, String, bool, String) = f.conn().query_row(
        "SELECT name, status, ephemeral, created_at FROM sandbox WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    assert_eq!(row, ("web".into(), "Created".into(), false, NOW.into()));
    Ok(())
}

#[test]
fn status_and_reason_strings_are_microsandboxs() {
    let statuses: Vec<&str> = SandboxStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "Created", "Starting", "Running", "Draining", "Paused", "Stopped", "Crashed"
        ]
    );
    let reasons: Vec<&str> = TerminationReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "Completed",
            "Failed",
            "MaxDurationExceeded",
            "IdleTimeout",
            "AgentUnresponsive",
            "ShutdownRequested",
            "DrainRequested",
            "Signal",
            "InternalError"
        ]
    ); // Each string parses back to its variant, and nothing else parses.
    for &status in SandboxStatus::ALL {
        assert_eq!(status.as_str().parse::<SandboxStatus>().ok(), Some(status));
    }
    for &reason in TerminationReason::ALL {
        assert_eq!(
            reason.to_string().parse::<TerminationReason>().ok(),
            Some(reason)
        );
    }
    let err = "running"
        .parse::<SandboxStatus>()
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("\"running\" is not a known `sandbox.status` value")
    );
}

#[test]
fn a_status_reads_back_typed_and_odd_ones_are_errors() -> Result<()> {
    let f = Fixture::new()?;
    let catalog = &f.catalog;
    let web =
        catalog.insert_sandbox("web", SandboxStatus::Draining, Lifetime::Persistent, now())?;
    assert_eq!(catalog.sandbox_status(web)?, Some(SandboxStatus::Draining));
    assert_eq!(
        catalog.sandbox_status(SandboxId::new(web.get() + 100))?,
        None
    );
    // Another program's rows: a status microsandbox does not know, and one
    // stored as a BLOB. Errors that name what was found; nothing changes.
    let odd = f.sandbox("odd", "Hibernating", false)?;
    let blob = f.sandbox("blob", "Running", false)?;
    f.conn().execute(
        "UPDATE sandbox SET status = CAST('Running' AS BLOB) WHERE id = ?1",
        [blob],
    )?;
    for (id, text) in [(odd, "Hibernating"), (blob, "(Blob)")] {
        match catalog.sandbox_status(SandboxId::new(id)) {
            Err(sandbox_sweep::Error::UnknownString { column, text: got }) => {
                assert_eq!((column, got.as_str()), ("sandbox.status", text));
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    Ok(())
}
