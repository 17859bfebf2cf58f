//! `sandbox-sweep demo`: a realistic catalog, shown before and after a sweep.
//!
//! Builds its catalog through the library's lifecycle helpers, as a runtime
//! would, and reads it back through the library. Its only SQL writes the
//! rows no runtime would (an invalid name, a name stored as a BLOB) and
//! finds a row by its name, whatever its class.

use std::io::Write;
use std::path::Path;

use sandbox_sweep::lease::InstallLease;
use sandbox_sweep::process::{Liveness, ProcessIdentity};
use sandbox_sweep::{Catalog, Lifetime, SandboxId, SweepOutcome, SystemClock};

use super::demo_cases::{CASES, Case, Runtime};
use super::demo_setup::{Children, Layout, NEVER_A_PID};
use super::{CliError, print};

/// Runs the demo in `keep` (kept) or in a temporary directory (removed after).
pub fn run(keep: Option<&Path>, out: &mut impl Write) -> Result<(), CliError> {
    let root = match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
            if dir.join("catalog.db").exists() {
                return Err(CliError::Other(format!(
                    "{}: already holds a catalog.db; choose an empty directory",
                    dir.display()
                )));
            }
            dir.to_path_buf()
        }
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = std::env::temp_dir()
                .join(format!("sandbox-sweep-demo-{}-{nanos}", std::process::id()));
            std::fs::create_dir(&dir)
                .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
            dir
        }
    };
    let result = show(&root, out);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    } else if result.is_ok() {
        writeln!(
            out,
            "\nkept in {} (try: sandbox-sweep status --db {})",
            root.display(),
            root.join("catalog.db").display()
        )?;
    }
    result
}

fn show(root: &Path, out: &mut impl Write) -> Result<(), CliError> {
    let layout = Layout::new(root)?;
    let conn = sandbox_sweep::open(&layout.db)?;
    sandbox_sweep::migrate(&conn)?;
    let catalog = Catalog::from_connection(conn)?;
    let children = Children::spawn();
    build(&catalog, &layout.sandboxes, &children)?;
    // The canary a naive sweeper would delete for the row named "../escape".
    let canary = root.join("escape");
    std::fs::create_dir_all(&canary)
        .map_err(|e| CliError::Other(format!("{}: {e}", canary.display())))?;
    let sockets = layout.dead_runtime_sockets("api")?;
    // This process stands for a sandbox process that still holds the lock,
    // a launcher creating "launching", and a snapshot capture of "job-4".
    let lock = sandbox_sweep::rundir::try_lock_lifecycle(&layout.run, "locked")?;
    let launcher = layout.hold("creation-locks", "launching", ".lock")?;
    let capture = layout.hold("locks", "job-4", ".snapshot-lineage.lock")?;

    writeln!(out, "sandbox-sweep demo")?;
    writeln!(out, "catalog:   {}", layout.db.display())?;
    writeln!(out, "sandboxes: {}", layout.sandboxes.display())?;
    writeln!(
        out,
        "run dir:   {} (microsandbox's locks and sockets)\n",
        layout.run.display()
    )?;
    writeln!(out, "before the sweep:")?;
    table(out, &catalog, &layout.sandboxes, true)?;
    writeln!(
        out,
        "  + {} socket files of api's dead runtime",
        sockets.len()
    )?;

    installing(out, &catalog, &layout)?;
    writeln!(
        out,
        "\nsweeping (what every runtime start does; --force skips the 30 s interval) ..."
    )?;
    let outcome = layout.sweeper().run(&catalog);
    print::outcome(out, &outcome)?;
    if let SweepOutcome::Failed(err) = outcome {
        return Err(err.into());
    }
    drop((lock, launcher, capture));

    writeln!(out, "\nafter the sweep:")?;
    table(out, &catalog, &layout.sandboxes, false)?;
    let left = sockets.iter().filter(|p| p.exists()).count();
    writeln!(out, "  + api's runtime sockets left: {left}")?;
    writeln!(
        out,
        "\n{} outside the sandboxes directory: {}",
        canary.display(),
        if canary.exists() {
            "still there (a bad name never reaches the filesystem)"
        } else {
            "GONE"
        }
    )?;
    drop(children);
    Ok(())
}

/// An installer holds the catalog: a sweep writes nothing until it is done.
fn installing(out: &mut impl Write, catalog: &Catalog, layout: &Layout) -> Result<(), CliError> {
    let install = InstallLease::acquire(catalog, &SystemClock)?;
    writeln!(
        out,
        "\nan installer takes the catalog (install_exclusive until {}); a sweep now:",
        install.expires_at()
    )?;
    print::outcome(out, &layout.sweeper().run(catalog))?;
    install.clear(catalog, &SystemClock)?;
    writeln!(out, "the installer is done and clears its lease.")?;
    Ok(())
}

fn build(catalog: &Catalog, sandboxes: &Path, children: &Children) -> Result<(), CliError> {
    let me = ProcessIdentity::current()?;
    let started = SystemClock::now();
    for case in CASES {
        let id = insert_case(catalog, case, started)?;
        if case.dir {
            let dir = sandboxes.join(case.name).join("rootfs");
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
            std::fs::write(dir.join("data"), b"demo")
                .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
        }
        let identity = match case.runtime {
            Runtime::None => continue,
            Runtime::Live => me.clone(),
            Runtime::Exited => ProcessIdentity {
                pid: children.exited.unwrap_or(NEVER_A_PID),
                start_time: None,
                boot_id: None,
            },
            Runtime::Zombie => ProcessIdentity {
                pid: children.zombie_pid(),
                start_time: None,
                boot_id: None,
            },
            Runtime::ReusedPid => ProcessIdentity {
                start_time: Some(me.start_time.unwrap_or(0) + 1),
                ..me.clone()
            },
            Runtime::BeforeReboot => ProcessIdentity {
                boot_id: Some("00000000-dead-beef-0000-000000000000".into()),
                ..me.clone()
            },
        };
        catalog.insert_running_run(id, &identity, started)?;
    }
    Ok(())
}

/// Inserts a case's row. The bad name is one no runtime could insert
/// through the library, which refuses it: it stands for a row another
/// program wrote, so it goes in by hand.
fn insert_case(
    catalog: &Catalog,
    case: &Case,
    at: sandbox_sweep::time::PrimitiveDateTime,
) -> Result<SandboxId, CliError> {
    if sandbox_sweep::sandboxes::validate_name(case.name).is_ok() && !case.name_as_blob {
        let lifetime = if case.ephemeral {
            Lifetime::Ephemeral
        } else {
            Lifetime::Persistent
        };
        return Ok(catalog.insert_sandbox(case.name, case.status, lifetime, at)?);
    }
    let conn = catalog.connection();
    conn.execute(
        "INSERT INTO sandbox (name, config, status, ephemeral)
         VALUES (CASE WHEN ?4 THEN CAST(?1 AS BLOB) ELSE ?1 END, '{}', ?2, ?3)",
        sandbox_sweep::rusqlite::params![
            case.name,
            case.status.as_str(),
            case.ephemeral,
            case.name_as_blob
        ],
    )?;
    Ok(SandboxId::new(conn.last_insert_rowid()))
}

/// What the table shows of a sandbox: status, kind, and its runtime.
fn describe(catalog: &Catalog, name: &str) -> Result<Option<(String, bool, String)>, CliError> {
    use sandbox_sweep::rusqlite::OptionalExtension;
    let row = catalog
        .connection()
        .prepare_cached(
            "SELECT id, status, ephemeral FROM sandbox WHERE name IN (?1, CAST(?1 AS BLOB))",
        )?
        .query_row([name], |r| {
            Ok((
                r.get::<_, SandboxId>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })
        .optional()?;
    let Some((id, status, ephemeral)) = row else {
        return Ok(None);
    };
    let runtime = match catalog.newest_running_run(id)? {
        None => "no running run".to_owned(),
        Some(run) => {
            let pid = run.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
            match run.liveness {
                Liveness::Dead(reason) => format!("pid {pid} {reason}"),
                _ => format!("pid {pid} alive"),
            }
        }
    };
    Ok(Some((status, ephemeral, runtime)))
}

fn table(
    out: &mut impl Write,
    catalog: &Catalog,
    sandboxes: &Path,
    notes: bool,
) -> Result<(), CliError> {
    let header = format!(
        "  {:<12} {:<9} {:<10} {:<4} {:<27} {}",
        "name",
        "status",
        "kind",
        "dir",
        "runtime",
        if notes {
            "what the sweep should do"
        } else {
            ""
        }
    );
    writeln!(out, "{}", header.trim_end())?;
    for case in CASES {
        let dir = if case.name.contains('/') {
            "-"
        } else if sandboxes.join(case.name).exists() {
            "yes"
        } else {
            "no"
        };
        match describe(catalog, case.name)? {
            Some((status, ephemeral, runtime)) => {
                let line = format!(
                    "  {:<12} {:<9} {:<10} {:<4} {:<27} {}",
                    case.name,
                    status,
                    if ephemeral { "ephemeral" } else { "persistent" },
                    dir,
                    runtime,
                    if notes { case.note } else { "" }
                );
                writeln!(out, "{}", line.trim_end())?;
            }
            None => writeln!(out, "  {:<12} (row and directory removed)", case.name)?,
        }
    }
    Ok(())
}
