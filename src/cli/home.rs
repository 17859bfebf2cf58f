//! The home a command works on, before anything in it is opened: that it
//! is there, acting as its owner when run as root, and a home where msb
//! has made no sandbox yet. Std only; opens nothing for writing.

use std::io;
use std::path::{Path, PathBuf};

use sandbox_sweep::Catalog;
use sandbox_sweep::home::ActingAsOwner;

use super::CliError;
use sandbox_sweep::home::HomeSource;

use super::args::Home;

/// Checks that `home` (when the command has one) is there and, run as
/// root over a home (or over `paths`: the catalog and the directories a
/// command was given) that another user owns, acts as that user from here
/// on (said under `-v`). Call before the catalog or any directory is
/// opened.
pub fn enter(
    home: Option<&Home>,
    paths: &[Option<&PathBuf>],
) -> Result<Option<ActingAsOwner>, CliError> {
    let given = paths.iter().flatten().map(|p| p.as_path());
    let paths = home.map(|h| h.path()).into_iter().chain(given);
    let Some(home) = home else {
        return Ok(ActingAsOwner::of(paths)?);
    };
    match std::fs::metadata(home.path()) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(CliError::Other(format!(
                "{}: not a directory, so not a microsandbox home",
                home.path().display()
            )));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(CliError::Other(no_home(home)));
        }
        Err(err) => return Err(CliError::Other(format!("{}: {err}", home.path().display()))),
    }
    Ok(ActingAsOwner::of(paths)?)
}

/// What was looked for, and how to point at a home.
fn no_home(home: &Home) -> String {
    let path = home.path().display();
    let point = "point at one with --home DIR, $MSB_HOME or --db PATH";
    match home.source() {
        HomeSource::Given => format!("{path}: no such microsandbox home (--home)"),
        HomeSource::MsbHomeVar => format!("{path}: no such microsandbox home ($MSB_HOME); {point}"),
        // `$HOME/.microsandbox` (and any source a later release adds).
        _ => {
            format!("no microsandbox home: $MSB_HOME is not set and {path} does not exist; {point}")
        }
    }
}

/// The message for a catalog that is not there: msb makes its own on its
/// first command, so only a catalog named by `--db` is one to `init`.
pub fn no_catalog(home: Option<&Home>, db: &Path) -> String {
    match home {
        Some(home) if db == home.catalog_path() => format!(
            "{}: no catalog yet ({} is missing; msb makes it on its first command, such as \
             `msb ls`, and refuses one that another program made first)",
            home.path().display(),
            db.display()
        ),
        _ => format!(
            "{}: no such catalog; create it with `sandbox-sweep init --db {}`",
            db.display(),
            db.display()
        ),
    }
}

/// The catalog a sweep or a scan works on, opened read-only and, when
/// `write`, again for writing; or `Err(message)` when there is nothing to
/// do ([`holds_no_sandbox`]). Whether there is is read read-only, so a
/// home where msb has created no sandbox is left exactly as it is.
pub fn catalog_for(
    home: Option<&Home>,
    db: &Path,
    dirs_given: bool,
    write: bool,
) -> Result<Result<Catalog, String>, CliError> {
    let catalog = Catalog::from_connection(super::open_existing(home, db, true)?)?;
    if let Some(message) = holds_no_sandbox(home, dirs_given, &catalog)? {
        return Ok(Err(message));
    }
    if !write {
        return Ok(Ok(catalog));
    }
    drop(catalog);
    Ok(Ok(Catalog::from_connection(super::open_existing(
        home, db, false,
    )?)?))
}

/// `Some(message)` when the run and sandboxes directories are the home's
/// own, neither exists, and the catalog holds no sandbox: msb has created
/// none here yet (a home after `msb pull` or `msb load`), so a sweep or a
/// scan has nothing to do. A directory named by a flag that is missing
/// stays an error, and so does a home whose catalog holds sandboxes.
fn holds_no_sandbox(
    home: Option<&Home>,
    dirs_given: bool,
    catalog: &Catalog,
) -> Result<Option<String>, CliError> {
    let Some(home) = home.filter(|_| !dirs_given) else {
        return Ok(None);
    };
    let missing = |p: &Path| matches!(std::fs::symlink_metadata(p), Err(e) if e.kind() == io::ErrorKind::NotFound);
    if !missing(&home.run_dir()) || !missing(&home.sandboxes_dir()) {
        return Ok(None);
    }
    let any: bool =
        catalog
            .connection()
            .query_row("SELECT EXISTS (SELECT 1 FROM sandbox)", [], |r| r.get(0))?;
    Ok((!any).then(|| {
        format!(
            "nothing to do: msb has created no sandbox in {} yet (no run/, no sandboxes/)",
            home.path().display()
        )
    }))
}
