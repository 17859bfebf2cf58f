//! Human and JSON output, written to any `io::Write`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use sandbox_sweep::orphans::{Orphan, OrphanKind, Orphans, Reclaimed};
use sandbox_sweep::process::DeadReason;
use sandbox_sweep::status::{Entry, LeaseRecord, Summary, SummaryOptions};
use sandbox_sweep::{Catalog, CleanupOutcome, Report, SkipReason, SweepEnd, SweepOutcome};

use crate::cli::CliError;

/// A JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `"a","b"`: names as the inside of a JSON array.
fn names_json(names: &[&str]) -> String {
    names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(",")
}

fn opt_quote(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), quote)
}

/// `{"a":1,"b":2}` from name/count pairs.
fn counts<'a>(pairs: impl Iterator<Item = (&'a str, u64)>) -> String {
    let fields: Vec<String> = pairs.map(|(k, v)| format!("{}:{v}", quote(k))).collect();
    format!("{{{}}}", fields.join(","))
}

fn dead_counts(report: &Report) -> String {
    counts(
        DeadReason::ALL
            .iter()
            .map(|&r| (r.as_str(), report.dead(r))),
    )
}

fn outcome_counts(report: &Report) -> String {
    counts(
        CleanupOutcome::ALL
            .iter()
            .map(|&o| (o.as_str(), report.outcome(o))),
    )
}

/// The sweep's result as one JSON object on one line.
pub fn outcome_json(out: &mut impl Write, outcome: &SweepOutcome) -> io::Result<()> {
    let empty = Report::default();
    let (kind, skip, report, error) = match outcome {
        SweepOutcome::Swept(report) => (
            "swept",
            None,
            report,
            report
                .run_dir_error
                .clone()
                .or_else(|| report.sandboxes_dir_error.clone())
                .or_else(|| report.trash_error.clone()),
        ),
        SweepOutcome::Skipped(reason) => ("skipped", Some(reason.as_str()), &empty, None),
        SweepOutcome::Failed(err) => ("failed", None, &empty, Some(format!("{err:#}"))),
    };
    report_json(out, kind, skip, report, error.as_deref())
}

/// `sweep --json` where msb has created no sandbox yet: the same line,
/// outcome `nothing_to_do`, every count zero.
pub fn nothing_to_do_json(out: &mut impl Write, dry_run: bool) -> io::Result<()> {
    let mut report = Report::default();
    report.dry_run = dry_run;
    report.complete = true;
    report_json(out, "nothing_to_do", None, &report, None)
}

/// One sweep line: how it went and the report's counts.
fn report_json(
    out: &mut impl Write,
    kind: &str,
    skip: Option<&str>,
    report: &Report,
    error: Option<&str>,
) -> io::Result<()> {
    writeln!(
        out,
        "{{\"outcome\":{},\"skip_reason\":{},\"reconciled\":{},\"removed\":{},\"errors\":{},\
         \"timed_out\":{},\"lease_lost\":{},\"installing\":{},\"elapsed_us\":{},\"complete\":{},\"dry_run\":{},\
         \"crashed\":{},\"stopped\":{},\"abandoned\":{},\"lifecycle_owned\":{},\"dead\":{},\"cleanup\":{},\"invalid_row\":{},\"trash_failed\":{},\"missing_indexes\":[{}],\"error\":{}}}",
        quote(kind),
        opt_quote(skip),
        report.reconciled,
        report.removed,
        report.errors,
        report.timed_out,
        report.lease_lost,
        report.installing,
        report.elapsed.as_micros(),
        report.complete,
        report.dry_run,
        report.crashed,
        report.stopped,
        report.abandoned,
        report.lifecycle_owned,
        dead_counts(report),
        outcome_counts(report),
        counts(report.invalid_row.by_column().into_iter()),
        report.trash_failed,
        names_json(&report.missing_indexes),
        opt_quote(error),
    )
}

/// One orphan as a JSON object, with `why` when it was kept.
fn orphan_json(o: &Orphan, why: Option<&str>) -> String {
    let why = why.map_or_else(String::new, |w| format!(",\"why\":{}", quote(w)));
    format!(
        "{{\"kind\":{},\"path\":{},\"bytes\":{},\"age_s\":{},\"lock_held\":{}{why}}}",
        quote(o.kind.as_str()),
        quote(&o.path.to_string_lossy()),
        o.bytes,
        o.age
            .map_or_else(|| "null".to_owned(), |a| a.as_secs().to_string()),
        o.lock_held
    )
}

/// Whether `o` is listed: lock files only with `--all` (they are summed).
fn listed(o: &Orphan, all: bool) -> bool {
    all || o.kind != OrphanKind::LockFile
}

/// The scan's own fields, shared by both JSON forms.
fn scan_fields(found: &Orphans, all: bool) -> String {
    let entries: Vec<String> = found
        .entries
        .iter()
        .filter(|o| listed(o, all))
        .map(|o| orphan_json(o, None))
        .collect();
    let locks = found.lock_files();
    format!(
        "\"orphans\":[{}],\"count\":{},\"total_bytes\":{},\"examined\":{},\"errors\":{},\"complete\":{},\"stopped_at\":{},\"lock_files\":{{\"count\":{},\"bytes\":{},\"oldest_s\":{}}}",
        entries.join(","),
        found.entries.len(),
        found.total_bytes(),
        found.examined,
        found.errors,
        found.complete,
        opt_quote(
            found
                .stopped_at
                .as_ref()
                .map(|p| p.to_string_lossy())
                .as_deref()
        ),
        locks.count,
        locks.bytes,
        locks
            .oldest
            .map_or_else(|| "null".to_owned(), |a| a.as_secs().to_string()),
    )
}

/// `orphans --json`: one line.
pub fn orphans_json(out: &mut impl Write, found: &Orphans, all: bool) -> io::Result<()> {
    writeln!(out, "{{{}}}", scan_fields(found, all))
}

/// `orphans --remove --json`: the scan, then what was removed and kept.
pub fn reclaimed_json(out: &mut impl Write, done: &Reclaimed, all: bool) -> io::Result<()> {
    let removed: Vec<String> = done.removed.iter().map(|o| orphan_json(o, None)).collect();
    let kept: Vec<String> = done
        .kept
        .iter()
        .filter(|(o, _)| listed(o, all))
        .map(|(o, why)| orphan_json(o, Some(why.as_str())))
        .collect();
    writeln!(
        out,
        "{{{},\"removed\":[{}],\"removed_count\":{},\"removed_bytes\":{},\"kept\":[{}],\"kept_count\":{},\"deferred\":{},\"trash_failed\":{}}}",
        scan_fields(&done.scan, all),
        removed.join(","),
        done.removed.len(),
        done.removed_bytes(),
        kept.join(","),
        done.kept.len(),
        done.deferred,
        done.trash_failed,
    )
}

/// `orphans --remove` for a person: lock files summed unless `all`.
pub fn reclaimed(out: &mut impl Write, db: &Path, done: &Reclaimed, all: bool) -> io::Result<()> {
    writeln!(out, "orphans beside catalog {}", db.display())?;
    if all {
        writeln!(out, "{done:#}")
    } else {
        writeln!(out, "{done:#.0}")
    }
}

/// `orphans` for a person: lock files summed unless `all`.
pub fn orphans(out: &mut impl Write, db: &Path, found: &Orphans, all: bool) -> io::Result<()> {
    writeln!(out, "orphans beside catalog {}", db.display())?;
    if all {
        writeln!(out, "{found:#}")
    } else {
        writeln!(out, "{found:#.0}")
    }
}

/// `sandbox-sweep init` adds what the library says is missing: the
/// command to type is the CLI's to say, never the library's.
const INIT_HINT: &str = "hint: `sandbox-sweep init` adds the missing indexes";

/// The sweep's result for a person, then what to type about it.
pub fn outcome(out: &mut impl Write, outcome: &SweepOutcome) -> io::Result<()> {
    writeln!(out, "{outcome:#}")?;
    match outcome {
        SweepOutcome::Skipped(SkipReason::Recent) => {
            writeln!(out, "hint: `--force` sweeps anyway")?;
        }
        SweepOutcome::Swept(report) => {
            if report.end() == SweepEnd::RunDir {
                writeln!(
                    out,
                    "hint: `--run-dir` names the run directory (in a home: <home>/run)"
                )?;
            }
            if !report.missing_indexes.is_empty() {
                writeln!(out, "{INIT_HINT}")?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// How many dead runtimes `status` lists without `--all`.
pub const STATUS_LIST: usize = 20;

/// `status` for a person, listing at most `shown` of each list (all with
/// `None`).
pub fn status(
    out: &mut impl Write,
    db: &Path,
    summary: &Summary,
    shown: Option<usize>,
) -> io::Result<()> {
    writeln!(out, "catalog {}", db.display())?;
    match shown {
        Some(shown) => writeln!(out, "{summary:#.shown$}")?,
        None => writeln!(out, "{summary:#}")?,
    }
    let lists = [
        &summary.dead_active,
        &summary.abandoned_starts,
        &summary.lifecycle_owned,
    ];
    if shown.is_some_and(|shown| lists.iter().any(|l| l.total > shown as u64)) {
        writeln!(out, "hint: `--all` lists every entry")?;
    }
    if !summary.missing_indexes.is_empty() {
        writeln!(out, "{INIT_HINT}")?;
    }
    Ok(())
}

/// `status --json`: one line, whose lists are written as they are found
/// and never held (`stale`, each entry naming its `list`, then `active`);
/// the counts follow them. Should the walk fail, the line still closes,
/// with the error in `error`.
pub fn status_json(
    out: &mut impl Write,
    catalog: &Catalog,
    options: SummaryOptions,
) -> Result<(), CliError> {
    out.write_all(b"{\"stale\":[")?;
    let mut lists = JsonLists {
        out: &mut *out,
        active: false,
        empty: true,
    };
    let walked = catalog.summary_with(&options.keep(0), |entry| lists.write(entry));
    if matches!(walked, Err(CliError::Io(_))) {
        // Stdout itself failed: there is nowhere to say more.
        return walked.map(drop);
    }
    lists.begin_active()?;
    let summary = match walked {
        Ok(summary) => summary,
        Err(err) => {
            writeln!(out, "],\"error\":{}}}", quote(&err.to_string()))?;
            return Err(err);
        }
    };
    let by_status = counts(summary.by_status.iter().map(|(s, n)| (s.as_str(), *n)));
    writeln!(
        out,
        "],\"by_status\":{by_status},\"other_status\":{},\"missing_indexes\":[{}],\"ephemeral_terminal\":{},\"dead_active_count\":{},\"lifecycle_owned_count\":{},\"abandoned_starts_count\":{},\"active_count\":{},\"lease\":{},\"install\":{},\"trash\":{},\"error\":null}}",
        summary.other_status,
        names_json(&summary.missing_indexes),
        summary.ephemeral_terminal,
        summary.dead_active.total,
        summary.lifecycle_owned.total,
        summary.abandoned_starts.total,
        summary.active.total,
        lease_json(summary.lease.as_ref()),
        lease_json(summary.install.as_ref()),
        summary
            .trash
            .as_ref()
            .map_or_else(|| "null".to_owned(), trash_json),
    )?;
    Ok(())
}

/// `status --json`'s `trash`: what sweeps did not finish deleting.
fn trash_json(trash: &Orphans) -> String {
    let entries: Vec<String> = trash
        .entries
        .iter()
        .map(|o| {
            format!(
                "{{\"path\":{},\"bytes\":{}}}",
                quote(&o.path.to_string_lossy()),
                o.bytes
            )
        })
        .collect();
    format!(
        "{{\"count\":{},\"bytes\":{},\"complete\":{},\"entries\":[{}]}}",
        trash.entries.len(),
        trash.total_bytes(),
        trash.complete,
        entries.join(",")
    )
}

/// The two arrays of `status --json`, written an entry at a time.
struct JsonLists<W> {
    out: W,
    /// Whether the `active` array has begun (it follows every stale entry).
    active: bool,
    /// Whether the array being written has no entry yet.
    empty: bool,
}

impl<W: Write> JsonLists<W> {
    /// Closes `stale` and opens `active`, unless that is done already.
    fn begin_active(&mut self) -> io::Result<()> {
        if !self.active {
            self.out.write_all(b"],\"active\":[")?;
            (self.active, self.empty) = (true, true);
        }
        Ok(())
    }

    fn write(&mut self, entry: Entry<'_>) -> Result<(), CliError> {
        if matches!(entry, Entry::Active(_)) {
            self.begin_active()?;
        }
        if !std::mem::replace(&mut self.empty, false) {
            self.out.write_all(b",")?;
        }
        match entry {
            Entry::Stale(list, d) => write!(
                self.out,
                "{{\"list\":{},\"id\":{},\"name\":{},\"status\":{},\"reason\":{}}}",
                quote(list.as_str()),
                d.id,
                quote(&d.name),
                quote(d.status.as_str()),
                quote(d.reason.map_or("no_running_run", DeadReason::as_str))
            )?,
            Entry::Active(a) => write!(
                self.out,
                "{{\"name\":{},\"status\":{},\"pid\":{}}}",
                quote(&a.name),
                quote(a.status.as_str()),
                a.pid.map_or_else(|| "null".to_owned(), |p| p.to_string())
            )?,
            _ => {}
        }
        Ok(())
    }
}

/// A lease row as a JSON object, or `null`.
fn lease_json(lease: Option<&LeaseRecord>) -> String {
    lease.map_or_else(
        || "null".to_owned(),
        |l| {
            format!(
                "{{\"holder_pid\":{},\"lease_expires_at\":{},\"last_completed_at\":{}}}",
                l.holder_pid
                    .map_or_else(|| "null".to_owned(), |p| p.to_string()),
                opt_quote(l.lease_expires_at.as_deref()),
                opt_quote(l.last_completed_at.as_deref())
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_json_specials() {
        assert_eq!(quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    /// The library's text says what is true; the CLI adds what to type.
    #[test]
    fn hints_follow_the_library_text() {
        let text = |outcome: &SweepOutcome| {
            let mut buf = Vec::new();
            super::outcome(&mut buf, outcome).expect("write");
            String::from_utf8(buf).expect("utf8")
        };
        assert_eq!(
            text(&SweepOutcome::Skipped(SkipReason::Recent)),
            "skipped (recent): a sweep completed less than 30 s ago\n\
             hint: `--force` sweeps anyway\n"
        );
        let mut report = Report::default();
        report.run_dir_error = Some("/h/run: No such file or directory (os error 2)".into());
        let swept = text(&SweepOutcome::Swept(report));
        assert!(
            swept.ends_with(
                "\n  nothing is swept until the run directory can be opened\n\
                 hint: `--run-dir` names the run directory (in a home: <home>/run)\n"
            ),
            "{swept}"
        );
    }

    #[test]
    fn skipped_json_has_every_field() {
        let mut buf = Vec::new();
        outcome_json(
            &mut buf,
            &SweepOutcome::Skipped(sandbox_sweep::SkipReason::Held),
        )
        .expect("write");
        let line = String::from_utf8(buf).expect("utf8");
        assert!(
            line.starts_with("{\"outcome\":\"skipped\",\"skip_reason\":\"held\",\"reconciled\":0,")
        );
        assert!(line.ends_with("\"error\":null}\n"));
    }
}
