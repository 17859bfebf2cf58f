//! Human and JSON output, written to any `io::Write`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use sandbox_sweep::{
    CleanupOutcome, DeadReason, LeaseRecord, Report, SkipReason, StaleSandbox, Summary,
    SweepOutcome,
};

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
                .or_else(|| report.sandboxes_dir_error.clone()),
        ),
        SweepOutcome::Skipped(reason) => ("skipped", Some(reason.as_str()), &empty, None),
        SweepOutcome::Failed(err) => ("failed", None, &empty, Some(err.to_string())),
    };
    writeln!(
        out,
        "{{\"outcome\":{},\"skip_reason\":{},\"reconciled\":{},\"removed\":{},\"errors\":{},\
         \"timed_out\":{},\"lease_lost\":{},\"installing\":{},\"elapsed_us\":{},\"complete\":{},\"dry_run\":{},\
         \"crashed\":{},\"stopped\":{},\"abandoned\":{},\"lifecycle_owned\":{},\"dead\":{},\"cleanup\":{},\"error\":{}}}",
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
        opt_quote(error.as_deref()),
    )
}

/// Non-zero counters as `name n, name n`.
fn nonzero<'a>(pairs: impl Iterator<Item = (&'a str, u64)>) -> String {
    let parts: Vec<String> = pairs
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The sweep's result for a person.
pub fn outcome(out: &mut impl Write, outcome: &SweepOutcome) -> io::Result<()> {
    match outcome {
        SweepOutcome::Skipped(reason) => {
            let why = match reason {
                SkipReason::Held => "another process holds the maintenance lease",
                SkipReason::Recent => "a sweep completed less than 30 s ago (use --force)",
                SkipReason::Busy => "the catalog stayed locked past the busy timeout",
                SkipReason::Installing => "an installer holds the catalog (install_exclusive)",
                _ => "",
            };
            writeln!(out, "skipped ({reason}): {why}")
        }
        SweepOutcome::Failed(err) => writeln!(out, "sweep failed: {err}"),
        SweepOutcome::Swept(report) => self::report(out, report),
    }
}

/// A report for a person.
pub fn report(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let verb = if report.dry_run {
        "dry run (nothing written)"
    } else {
        "swept"
    };
    writeln!(
        out,
        "{verb} in {:.3} ms: reconciled {} (crashed {}, stopped {}), removed {}, errors {}",
        report.elapsed.as_secs_f64() * 1000.0,
        report.reconciled,
        report.crashed,
        report.stopped,
        report.removed,
        report.errors
    )?;
    if report.abandoned > 0 {
        writeln!(
            out,
            "  abandoned starts crashed (Starting, no run, no owner, no endpoint): {}",
            report.abandoned
        )?;
    }
    if report.lifecycle_owned > 0 {
        writeln!(
            out,
            "  left alone, creation or lifecycle lock held by a live owner: {}",
            report.lifecycle_owned
        )?;
    }
    writeln!(
        out,
        "  dead runtimes: {}",
        nonzero(
            DeadReason::ALL
                .iter()
                .map(|&r| (r.as_str(), report.dead(r)))
        )
    )?;
    writeln!(
        out,
        "  ephemeral candidates: {}",
        nonzero(
            CleanupOutcome::ALL
                .iter()
                .map(|&o| (o.as_str(), report.outcome(o)))
        )
    )?;
    if let Some(err) = &report.sandboxes_dir_error {
        writeln!(out, "  ephemeral sandboxes not cleaned: {err}")?;
    }
    if let Some(err) = &report.run_dir_error {
        writeln!(out, "  nothing swept: {err}")?;
    }
    let left = match report.end() {
        "run_dir" => "fix the run directory (--run-dir, or <home>/run)",
        "lease_lost" => "stopped: the lease was taken by another process",
        "installing" => "stopped: an installer took the catalog; nothing written after",
        "timed_out" => "time budget ran out; the next sweep continues",
        "sandboxes_dir" => "reconcile done; fix the sandboxes directory for cleanup",
        "row_limit" => "row limit reached; the next sweep continues",
        _ => "nothing left behind",
    };
    writeln!(out, "  {left}")
}

/// How many dead runtimes `status` lists without `--all`.
pub const STATUS_LIST: usize = 20;

/// `status` for a person, listing at most `shown` dead runtimes.
pub fn status(out: &mut impl Write, db: &Path, summary: &Summary, shown: usize) -> io::Result<()> {
    writeln!(out, "catalog {}", db.display())?;
    if summary.by_status.is_empty() {
        writeln!(out, "  no sandboxes")?;
    }
    for (status, n) in &summary.by_status {
        writeln!(out, "  {status:<12} {n:>6}")?;
    }
    writeln!(
        out,
        "finished ephemeral sandboxes (cleanup candidates): {}",
        summary.ephemeral_terminal
    )?;
    writeln!(
        out,
        "active sandboxes with a dead runtime now: {}",
        summary.dead_active.len()
    )?;
    stale_list(out, &summary.dead_active, shown)?;
    if !summary.abandoned_starts.is_empty() {
        writeln!(
            out,
            "abandoned starts (Starting, no run, no lock held, no endpoint answering): {}",
            summary.abandoned_starts.len()
        )?;
        stale_list(out, &summary.abandoned_starts, shown)?;
    }
    if !summary.lifecycle_owned.is_empty() {
        writeln!(
            out,
            "left alone, runtime dead or not started but a creation or lifecycle lock held (lifecycle_owned): {}",
            summary.lifecycle_owned.len()
        )?;
        stale_list(out, &summary.lifecycle_owned, shown)?;
    }
    match &summary.install {
        Some(install) if install.holder_pid.is_some() => writeln!(
            out,
            "install: held by pid {} until {}",
            install.holder_pid.map_or(0, |p| p),
            install.lease_expires_at.as_deref().unwrap_or("-"),
        )?,
        Some(_) => writeln!(out, "install: none in progress")?,
        None => writeln!(out, "install: never taken")?,
    }
    match &summary.lease {
        None => writeln!(out, "lease: never taken"),
        Some(lease) => writeln!(
            out,
            "lease: holder {}, expires {}, last completed {}",
            lease
                .holder_pid
                .map_or_else(|| "none".to_owned(), |p| format!("pid {p}")),
            lease.lease_expires_at.as_deref().unwrap_or("-"),
            lease.last_completed_at.as_deref().unwrap_or("never"),
        ),
    }
}

/// Up to `shown` stale sandboxes, one a line, then how many more.
fn stale_list(out: &mut impl Write, stale: &[StaleSandbox], shown: usize) -> io::Result<()> {
    for dead in stale.iter().take(shown) {
        let reason = dead.reason.map_or("no running run", DeadReason::as_str);
        writeln!(
            out,
            "  #{:<6} {:<24} {:<9} {reason}",
            dead.id,
            format!("{:?}", dead.name),
            dead.status.as_str()
        )?;
    }
    let hidden = stale.len().saturating_sub(shown);
    if hidden > 0 {
        writeln!(out, "  … and {hidden} more (`--all` lists them)")?;
    }
    Ok(())
}

/// Stale sandboxes as a JSON array.
fn stale_json(stale: &[StaleSandbox]) -> String {
    let items: Vec<String> = stale
        .iter()
        .map(|d| {
            format!(
                "{{\"id\":{},\"name\":{},\"status\":{},\"reason\":{}}}",
                d.id,
                quote(&d.name),
                quote(d.status.as_str()),
                quote(d.reason.map_or("no_running_run", DeadReason::as_str))
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `status --json`: one line.
pub fn status_json(out: &mut impl Write, summary: &Summary) -> io::Result<()> {
    let by_status = counts(summary.by_status.iter().map(|(s, n)| (s.as_str(), *n)));
    writeln!(
        out,
        "{{\"by_status\":{by_status},\"ephemeral_terminal\":{},\"dead_active_count\":{},\"dead_active\":{},\"lifecycle_owned_count\":{},\"lifecycle_owned\":{},\"abandoned_starts_count\":{},\"abandoned_starts\":{},\"active\":[{}],\"lease\":{},\"install\":{}}}",
        summary.ephemeral_terminal,
        summary.dead_active.len(),
        stale_json(&summary.dead_active),
        summary.lifecycle_owned.len(),
        stale_json(&summary.lifecycle_owned),
        summary.abandoned_starts.len(),
        stale_json(&summary.abandoned_starts),
        summary
            .active
            .iter()
            .map(|a| format!(
                "{{\"name\":{},\"status\":{},\"pid\":{}}}",
                quote(&a.name),
                quote(a.status.as_str()),
                a.pid.map_or_else(|| "null".to_owned(), |p| p.to_string())
            ))
            .collect::<Vec<_>>()
            .join(","),
        lease_json(summary.lease.as_ref()),
        lease_json(summary.install.as_ref()),
    )
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

    #[test]
    fn skipped_json_has_every_field() {
        let mut buf = Vec::new();
        outcome_json(&mut buf, &SweepOutcome::Skipped(SkipReason::Held)).expect("write");
        let line = String::from_utf8(buf).expect("utf8");
        assert!(
            line.starts_with("{\"outcome\":\"skipped\",\"skip_reason\":\"held\",\"reconciled\":0,")
        );
        assert!(line.ends_with("\"error\":null}\n"));
    }
}
