//! `sandbox-sweep`: repair a sandbox catalog by hand, inspect it, or watch a demo.
//!
//! ```text
//! sandbox-sweep init   [--home DIR | --db PATH]
//! sandbox-sweep sweep  [--home DIR] [--db PATH] [--sandboxes-dir DIR] [--run-dir DIR]
//!                      [--force] [--dry-run] [--max-active N] [--max-ephemeral N]
//!                      [--budget-ms MS] [--metrics FILE] [--json] [-v]
//! sandbox-sweep status [--home DIR | --db PATH] [--run-dir DIR] [--all] [--json]
//! sandbox-sweep orphans [--home DIR] [--db PATH] [--sandboxes-dir DIR] [--run-dir DIR] [--budget-ms MS] [--json]
//! sandbox-sweep demo   [--keep DIR]
//! sandbox-sweep help   [COMMAND]
//! ```
//!
//! Exit status: 0 when a sweep ran or was skipped, 1 on any error, 2 on a
//! usage error.
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use cli::args::{Args, Command, SweepArgs};
use cli::metrics::Ran;
use cli::{CliError, print};
use sandbox_sweep::orphans::OrphanScan;
use sandbox_sweep::status::SummaryOptions;
use sandbox_sweep::{Catalog, OpenOptions, SweepOutcome, Sweeper, SystemClock};

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(CliError::Io(err)) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            // A script that asked for JSON parses stdout whatever happened.
            if std::env::args_os().any(|a| a == "--json") {
                let line = format!(
                    "{{\"error\":\"usage\",\"message\":{}}}\n",
                    print::quote(&msg)
                );
                let _ = io::stdout().lock().write_all(line.as_bytes());
            }
            complain(format_args!("{msg} (see `sandbox-sweep --help`)"));
            ExitCode::from(2)
        }
        Err(err) => {
            complain(format_args!("{err}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes one `error:` line to stderr. A stderr that cannot be written (a
/// full disk behind `2>>log`, a closed pipe) changes nothing: the exit
/// status still tells, and `eprintln!` would panic instead.
fn complain(msg: std::fmt::Arguments<'_>) {
    let line = format!("error: {msg}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

fn try_main() -> Result<ExitCode, CliError> {
    let args = Args::parse(std::env::args_os().skip(1))?;
    cli::logger::install(args.verbose);
    let json = args.json();
    let mut out = Tracked {
        inner: io::stdout().lock(),
        wrote: false,
    };
    let code = match run(args.command, &mut out) {
        // A script that asked for JSON parses stdout whatever happened: a
        // failure before any output (no home, no catalog) gets its line.
        Err(err) if json && !out.wrote && !matches!(err, CliError::Io(_)) => {
            let line = format!(
                "{{\"error\":\"failed\",\"message\":{}}}\n",
                print::quote(&err.to_string())
            );
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
            return Err(err);
        }
        other => other?,
    };
    out.flush()?;
    Ok(code)
}

/// Stdout, and whether anything was written to it.
struct Tracked<W> {
    inner: W,
    wrote: bool,
}

impl<W: Write> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wrote |= !buf.is_empty();
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Maps a parsed command onto library calls.
fn run(command: Command, out: &mut impl Write) -> Result<ExitCode, CliError> {
    match command {
        Command::Help(topic) => {
            out.write_all(cli::help::help(topic).as_bytes())?;
        }
        Command::Version => {
            writeln!(out, "sandbox-sweep {}", env!("CARGO_PKG_VERSION"))?;
        }
        Command::Init { home, db } => {
            // Where the catalog goes decides whose it is: what exists of
            // its directory, up to the first part that does not.
            let _owner = cli::home::enter(home.as_ref(), &[Some(&db)])?;
            // msb refuses a catalog it did not make ("tables but no
            // migration history"): in a home, only msb makes the first one.
            if home.as_ref().is_some_and(|h| db == h.catalog_path()) && !db.exists() {
                return Err(CliError::Other(cli::home::no_catalog(home.as_ref(), &db)));
            }
            if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| CliError::Other(format!("{}: {e}", parent.display())))?;
            }
            let conn = OpenOptions::new().create(true).open(&db)?;
            sandbox_sweep::migrate(&conn)?;
            writeln!(out, "initialised {}", db.display())?;
        }
        Command::Status {
            home,
            db,
            run_dir,
            sandboxes_dir,
            json,
            all,
        } => {
            let _owner = cli::home::enter(
                home.as_ref(),
                &[Some(&db), run_dir.as_ref(), sandboxes_dir.as_ref()],
            )?;
            let conn = cli::open_existing(home.as_ref(), &db, true)?;
            let catalog = Catalog::from_connection(conn)?;
            let mut options = SummaryOptions::new();
            if let Some(run_dir) = run_dir {
                options = options.run_dir(run_dir);
            }
            if let Some(sandboxes_dir) = sandboxes_dir {
                options = options.sandboxes_dir(sandboxes_dir);
            }
            if json {
                print::status_json(out, &catalog, options)?;
            } else {
                // Only what is printed is held.
                let shown = (!all).then_some(print::STATUS_LIST);
                let options = options.keep(shown.unwrap_or(usize::MAX));
                let summary = catalog.summary_with(&options, |_| Ok::<_, CliError>(()))?;
                print::status(out, &db, &summary, shown)?;
            }
        }
        Command::Orphans {
            home,
            dirs_given,
            db,
            sandboxes_dir,
            run_dir,
            budget_ms,
            json,
            remove,
            all,
        } => {
            let _owner = cli::home::enter(
                home.as_ref(),
                &[Some(&db), run_dir.as_ref(), Some(&sandboxes_dir)],
            )?;
            let catalog =
                match cli::home::catalog_for(home.as_ref(), &db, dirs_given, remove.is_some())? {
                    Ok(catalog) => catalog,
                    Err(message) => {
                        let mut none = sandbox_sweep::orphans::Orphans::default();
                        none.complete = true;
                        if json {
                            print::orphans_json(out, &none, all)?;
                        } else {
                            writeln!(out, "{message}")?;
                        }
                        return Ok(ExitCode::SUCCESS);
                    }
                };
            let mut scan = OrphanScan::new(&sandboxes_dir);
            if let Some(run_dir) = run_dir {
                scan = scan.run_dir(run_dir);
            }
            if let Some(ms) = budget_ms {
                scan = scan.budget(std::time::Duration::from_millis(ms));
            }
            if let Some(grace) = remove {
                let done = scan.remove(&catalog, grace)?;
                if json {
                    print::reclaimed_json(out, &done, all)?;
                } else {
                    print::reclaimed(out, &db, &done, all)?;
                }
                // A tree left in the trash is a leak until someone acts.
                return Ok(if done.trash_failed > 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                });
            }
            let found = scan.scan(&catalog)?;
            if json {
                print::orphans_json(out, &found, all)?;
            } else {
                print::orphans(out, &db, &found, all)?;
            }
        }
        Command::Sweep(args) => return sweep(&args, out),
        Command::Demo { keep } => cli::demo::run(keep.as_deref(), out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn sweep(args: &SweepArgs, out: &mut impl Write) -> Result<ExitCode, CliError> {
    let swept = sweep_home(args);
    // Written after the home's owner is no longer who this process acts
    // as: the file lands where the caller asked, a root-owned directory
    // included.
    if let Some(path) = &args.metrics {
        let ran = match &swept {
            Ok(Ok(outcome)) => Ran::Outcome(outcome),
            Ok(Err(_)) => Ran::NothingToDo,
            Err(_) => Ran::Failed,
        };
        cli::metrics::write_atomically(path, &cli::metrics::render(ran, SystemTime::now()))
            .map_err(|e| {
                CliError::Other(format!("{}: metrics not written: {e}", path.display()))
            })?;
    }
    let outcome = match swept? {
        Ok(outcome) => outcome,
        Err(message) => {
            if args.json {
                print::nothing_to_do_json(out, args.dry_run)?;
            } else {
                writeln!(out, "{message}")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.json {
        print::outcome_json(out, &outcome)?;
    } else {
        print::outcome(out, &outcome)?;
    }
    match outcome {
        SweepOutcome::Failed(err) => Err(err.into()),
        SweepOutcome::Swept(report) => match (report.run_dir_error, report.sandboxes_dir_error) {
            (Some(err), _) => Err(CliError::Other(format!("nothing swept: {err}"))),
            (None, Some(err)) => Err(CliError::Other(format!(
                "ephemeral sandboxes not cleaned: {err}"
            ))),
            (None, None) => match report.trash_error {
                Some(err) => Err(CliError::Other(format!("trash not deleted: {err}"))),
                None => Ok(ExitCode::SUCCESS),
            },
        },
        SweepOutcome::Skipped(_) => Ok(ExitCode::SUCCESS),
    }
}

/// The sweep of the home, acting as its owner: its outcome, or
/// `Err(message)` when msb has created no sandbox there yet.
fn sweep_home(args: &SweepArgs) -> Result<Result<SweepOutcome, String>, CliError> {
    let dirs = [
        Some(&args.db),
        args.run_dir.as_ref(),
        Some(&args.sandboxes_dir),
    ];
    let _owner = cli::home::enter(args.home.as_ref(), &dirs)?;
    let catalog =
        match cli::home::catalog_for(args.home.as_ref(), &args.db, args.dirs_given, !args.dry_run)?
        {
            Ok(catalog) => catalog,
            Err(message) => return Ok(Err(message)),
        };
    let mut sweeper = Sweeper::new(&args.sandboxes_dir).force(args.force);
    if let Some(run_dir) = &args.run_dir {
        sweeper = sweeper.run_dir(run_dir);
    }
    if let Some(n) = args.max_active {
        sweeper = sweeper.max_active(n);
    }
    if let Some(n) = args.max_ephemeral {
        sweeper = sweeper.max_ephemeral(n);
    }
    if let Some(ms) = args.budget_ms {
        sweeper = sweeper.budget(std::time::Duration::from_millis(ms));
    }
    Ok(Ok(if args.dry_run {
        match sweeper.dry_run(&catalog, &SystemClock) {
            Ok(report) => SweepOutcome::Swept(report),
            Err(err) => SweepOutcome::Failed(err),
        }
    } else {
        sweeper.run(&catalog)
    }))
}
