//! The install-exclusive lease: an installer owns the catalog, and sweeps
//! write nothing while it does.

pub mod common;

use std::time::Duration;

use common::*;
use sandbox_sweep::lease::*;
use sandbox_sweep::*;

fn at(offset: Duration) -> sandbox_sweep::time::PrimitiveDateTime {
    now() + offset
}

#[test]
fn acquire_renew_clear_follow_the_holder_and_the_exact_expiry() -> Result<()> {
    let f = Fixture::new()?;
    let catalog = &f.catalog;
    let mut lease = InstallLease::acquire(catalog, &now)?;
    assert_eq!(lease.holder_pid(), i64::from(std::process::id()));
    assert_eq!(lease.expires_at(), "2026-06-04 12:30:00");
    // A second installer is refused while it is held.
    let second = InstallLease::acquire(catalog, &now);
    assert!(
        matches!(second, Err(Error::Install(InstallRefusal::Held { ref until, .. })) if until == "2026-06-04 12:30:00"),
        "{second:?}"
    );
    lease.renew(catalog, &|| at(Duration::from_secs(60)))?;
    assert_eq!(lease.expires_at(), "2026-06-04 12:31:00");
    // A copy holding the old expiry is no longer the holder.
    let mut stale = lease.clone();
    stale
        .renew(catalog, &now)
        .expect("renewing the current one works");
    assert!(matches!(
        lease.clear(catalog, &now),
        Err(Error::Install(InstallRefusal::NotHolder))
    ));
    stale.clear(catalog, &now)?;
    let row: (Option<i64>, String, Option<String>) = f.conn().query_row(
        "SELECT holder_pid, lease_expires_at, last_completed_at FROM maintenance_lease WHERE name = 'install_exclusive'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    assert_eq!(row, (None, NOW.into(), Some(NOW.into())));
    // Released: clearing again is fine idempotently, an error otherwise.
    stale.clear_idempotent(catalog, &now)?;
    assert!(stale.clear(catalog, &now).is_err());
    InstallLease::refuse_if_held(f.conn(), now())?;
    Ok(())
}

#[test]
fn an_expired_install_lease_is_free_and_a_missing_table_refuses_nothing() -> Result<()> {
    let f = Fixture::new()?;
    let catalog = &f.catalog;
    let dead_installer = InstallLease::acquire(catalog, &now)?;
    let later = || at(Duration::from_secs(31 * 60));
    InstallLease::refuse_if_held(f.conn(), later())?;
    dead_installer.clear_idempotent(catalog, &later)?;
    let next = InstallLease::acquire(catalog, &later)?;
    assert_eq!(next.expires_at(), "2026-06-04 13:01:00");
    let bare = rusqlite::Connection::open_in_memory()?;
    InstallLease::refuse_if_held(&bare, now())?;
    Ok(())
}

#[test]
fn a_held_install_lease_skips_the_sweep_and_writes_nothing() -> Result<()> {
    let f = Fixture::new()?;
    let web = f.sandbox("web", "Running", false)?;
    f.run(web, Some(DEAD_PID), "Running")?;
    let eph = f.sandbox("eph", "Stopped", true)?;
    let dir = f.mkdir("eph");
    let catalog = &f.catalog;
    let lease = InstallLease::acquire(catalog, &now)?;
    let outcome = Sweeper::new(&f.sandboxes)
        .force(true)
        .run_with(catalog, &now);
    assert!(
        matches!(outcome, SweepOutcome::Skipped(SkipReason::Installing)),
        "{outcome:?}"
    );
    assert_eq!(
        catalog.gate(now(), MinInterval::Ignore)?,
        Some(SkipReason::Installing)
    );
    assert_eq!(f.status(web)?.as_deref(), Some("Running"));
    assert_eq!(f.status(eph)?.as_deref(), Some("Stopped"));
    assert!(exists(&dir.join("rootfs/data")));
    assert_eq!(
        catalog.lease_row()?,
        None,
        "the sweep lease was never taken"
    );
    lease.clear(catalog, &now)?;
    let report = swept(
        Sweeper::new(&f.sandboxes)
            .force(true)
            .run_with(catalog, &now),
    );
    assert_eq!((report.reconciled, report.removed), (1, 1));
    Ok(())
}

#[test]
fn an_install_begun_mid_sweep_stops_it_before_its_next_write() -> Result<()> {
    let f = Fixture::new()?;
    f.stale(4)?;
    let mut lease = f.lease();
    let sweeper = Sweeper::new(&f.sandboxes).max_active(1);
    assert_eq!(sweeper.sweep(&mut lease, &now)?.reconciled, 1);
    // An installer starts between two of the sweep's transactions.
    let other = Catalog::from_connection(rusqlite::Connection::open(f.db_path())?)?;
    let installer = InstallLease::acquire(&other, &now)?;
    let report = sweeper.clone().max_active(10).sweep(&mut lease, &now)?;
    assert!(report.installing && !report.complete, "{report}");
    assert_eq!(report.reconciled, 0);
    let running = f.count("SELECT count(*) FROM sandbox WHERE status = 'Running'")?;
    assert_eq!(running, 3);
    drop(lease);
    installer.clear(&other, &now)?;
    Ok(())
}

#[test]
fn the_cli_skips_as_installing_and_status_shows_the_installer() -> TestResult {
    let (env, conn, dead, eph) = dead_and_finished();
    let catalog = Catalog::from_connection(conn)?;
    let conn = catalog.connection();
    let lease = InstallLease::acquire(&catalog, &SystemClock)?;
    let out = cli(&env.sweep_args(&["--force", "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = json_line(&out);
    assert_eq!(json_field(&line, "outcome"), "\"skipped\"");
    assert_eq!(json_field(&line, "skip_reason"), "\"installing\"");
    assert_eq!(status_of(conn, dead).as_deref(), Some("Running"));
    assert_eq!(status_of(conn, eph).as_deref(), Some("Stopped"));
    let out = cli(&["status", "--db", env.db_str()]);
    let text = stdout(&out);
    let expected = format!(
        "install: held by pid {} until {}",
        std::process::id(),
        lease.expires_at()
    );
    assert!(text.contains(&expected), "{text}");
    let out = cli(&["status", "--db", env.db_str(), "--json"]);
    let line = json_line(&out);
    assert!(
        line.contains(&format!(
            "\"install\":{{\"holder_pid\":{}",
            std::process::id()
        )),
        "{line}"
    );
    Ok(())
}
