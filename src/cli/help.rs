//! The help: the whole text, and one command's cut from it, so the two
//! never disagree. No parsing here beyond reading that text.

use super::commands::flags;

/// The help text.
pub const USAGE: &str = "\
sandbox-sweep: keep a sandbox catalog honest

Usage:
  sandbox-sweep init   [--home DIR | --db PATH]
  sandbox-sweep sweep  [--home DIR] [--db PATH] [--sandboxes-dir DIR] [--run-dir DIR]
                       [--force] [--dry-run] [--max-active N] [--max-ephemeral N]
                       [--budget-ms MS] [--metrics FILE] [--json] [-v]
  sandbox-sweep status [--home DIR | --db PATH] [--run-dir DIR] [--sandboxes-dir DIR]
                       [--all] [--json]
  sandbox-sweep orphans [--home DIR] [--db PATH] [--sandboxes-dir DIR] [--run-dir DIR]
                       [--budget-ms MS] [--json] [--remove [--older-than DURATION]]
  sandbox-sweep demo   [--keep DIR]
  sandbox-sweep help   [COMMAND]

Commands:
  init     create the catalog file if needed and add this tool's tables, columns and indexes
  sweep    take the lease, reconcile dead runtimes, clean finished ephemeral sandboxes
  status   sandbox counts, cleanable sandboxes, dead runtimes and abandoned starts now, the lease
  orphans  list what no row accounts for: sandbox directories, sockets, lock files,
           trash leftovers, with size, age and whether a lock on them is held (reads only)
  demo     build a sample catalog in a temporary directory and sweep it
  help     this text, or one command's (as `COMMAND --help` does)

Where things are:
  With neither --db nor --home, microsandbox's home is $MSB_HOME (verbatim),
  else ~/.microsandbox. In a home DIR the catalog is DIR/db/msb.db, sandboxes
  are DIR/sandboxes and the run dir is DIR/run; --db, --sandboxes-dir and
  --run-dir override each. With --db alone, sweep needs --sandboxes-dir and
  takes no locks unless --run-dir is given; a Starting row with no run is
  judged (an abandoned start) only beside a run dir.

Options:
  --home DIR           microsandbox's home (default $MSB_HOME, else ~/.microsandbox); as
                       root over a home another user owns, acts as that user throughout
  --db PATH            the catalog (SQLite) file; sweep and status never create it
  --sandboxes-dir DIR  where sandbox directories live (<DIR>/<name>)
  --run-dir DIR        microsandbox's run dir: honour its creation, lifecycle and
                       snapshot-lineage locks, remove dead runtimes' sockets, judge
                       abandoned starts (status: show held locks, take none)
  --force              sweep even if the last sweep was under 30 s ago (never takes a held lease)
  --dry-run            report what a sweep would do; take no lease, write nothing
  --max-active N       most Starting/Running/Draining sandboxes examined (default 250)
  --max-ephemeral N    most finished ephemeral sandboxes examined (default 250)
  --budget-ms MS       time budget in milliseconds (sweep: default 250; orphans: 10000)
  --metrics FILE       sweep: replace FILE (atomically) with the sweep's counts and
                       timings in the Prometheus text format (node_exporter's textfile
                       collector); written as the invoking user, even as root
  --all                status: list every dead runtime (default: the first 20);
                       orphans: list every lock file without a row (default: summed)
  --json               one JSON object on the last line of stdout (status: the full list)
  --remove             orphans: remove orphaned sandbox directories, socket directories
                       and sockets (never lock files): each older than --older-than,
                       its locks free, no row naming it under the write lock
  --older-than DURATION  with --remove: the grace period, such as 30s, 15m, 1h, 2d (default 1h)
  --keep DIR           build the demo in DIR and keep it
  -v, --verbose        log to stderr (without it, only what was left in place and why)
  -h, --help           this text, or after a command, that command's
  -V, --version        the version

Exit status: 0 swept or skipped, 1 error, 2 usage error (with --json, also
one JSON object on stdout: {\"error\":\"usage\",\"message\":\"...\"}).
";

/// The lines of [`USAGE`] under `heading`, up to the next blank line.
fn section(heading: &str) -> impl Iterator<Item = &'static str> {
    USAGE
        .lines()
        .skip_while(move |l| *l != heading)
        .skip(1)
        .take_while(|l| !l.is_empty())
}

/// Lines of `section` that belong to entries whose first line `keep`
/// accepts (an entry's continuation lines are indented deeper).
fn entries(
    lines: impl Iterator<Item = &'static str>,
    keep: impl Fn(&str) -> bool,
) -> Vec<&'static str> {
    let mut kept = Vec::new();
    let mut keeping = false;
    for line in lines {
        if !line.starts_with("    ") || line.trim_start().starts_with('-') {
            keeping = keep(line.trim_start());
        }
        if keeping {
            kept.push(line);
        }
    }
    kept
}

/// The help for one command: its usage, what it does, and only its
/// options, cut from [`USAGE`] so the two never disagree.
pub fn help(command: Option<&str>) -> String {
    let Some(command) = command else {
        return USAGE.to_owned();
    };
    let usage = entries(section("Usage:"), |l| {
        l.strip_prefix("sandbox-sweep ")
            .is_some_and(|rest| rest.split_whitespace().next() == Some(command))
    });
    let what = entries(section("Commands:"), |l| {
        l.split_whitespace().next() == Some(command)
    });
    let ours = flags(command);
    let options = entries(section("Options:"), |l| {
        let flag = l.trim_start_matches("-v, ").trim_start_matches("-h, ");
        let flag = flag.split_whitespace().next().unwrap_or("");
        matches!(flag, "--verbose" | "--help") || ours.iter().any(|(f, _)| *f == flag)
    });
    let mut text = format!("Usage:\n{}\n\n", usage.join("\n"));
    text.push_str(&format!("{}\n\n", what.join("\n").trim_start()));
    if matches!(command, "init" | "sweep" | "status" | "orphans") {
        let place: Vec<_> = section("Where things are:").collect();
        text.push_str(&format!("Where things are:\n{}\n\n", place.join("\n")));
    }
    text.push_str(&format!("Options:\n{}\n", options.join("\n")));
    text
}
