//! `sweep --metrics FILE`: the sweep's counts and timings in the
//! Prometheus text format (node_exporter's textfile collector reads it),
//! so a timer's sweeps can be watched and alerted on. Std only.
//!
//! Owns the metric names and that the file is replaced atomically: a
//! reader sees the last sweep's file or this one's, never a part. Writes
//! nothing but that file and its temporary sibling.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sandbox_sweep::process::DeadReason;
use sandbox_sweep::{CleanupOutcome, Report, SweepOutcome};

/// One gauge: its help, then a sample per `(labels, value)`.
fn gauge(text: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(text, "# HELP sandbox_sweep_{name} {help}");
    let _ = writeln!(text, "# TYPE sandbox_sweep_{name} gauge");
    for (labels, value) in samples {
        let _ = writeln!(text, "sandbox_sweep_{name}{labels} {value}");
    }
}

fn one(value: impl Into<f64>) -> Vec<(String, f64)> {
    vec![(String::new(), value.into())]
}

fn flag(value: bool) -> Vec<(String, f64)> {
    one(u8::from(value))
}

/// A `u64` count as a sample value (exact below 2^53, far above any count).
fn count(n: u64) -> f64 {
    n as f64
}

/// How a `sweep` command ended, as its metrics tell it.
pub enum Ran<'a> {
    /// The library's outcome.
    Outcome(&'a SweepOutcome),
    /// msb has created no sandbox in the home yet.
    NothingToDo,
    /// The command failed before a sweep (no catalog, say).
    Failed,
}

/// The metrics of one `sweep` command, ended at `now`.
pub fn render(ran: Ran<'_>, now: SystemTime) -> String {
    let empty = Report::default();
    let (kind, report) = match ran {
        Ran::NothingToDo => ("nothing_to_do", &empty),
        Ran::Outcome(SweepOutcome::Swept(report)) => ("swept", report),
        Ran::Outcome(SweepOutcome::Skipped(_)) => ("skipped", &empty),
        Ran::Outcome(SweepOutcome::Failed(_)) | Ran::Failed => ("failed", &empty),
    };
    let mut text = String::new();
    let ended = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    gauge(
        &mut text,
        "last_run_timestamp_seconds",
        "When the last sweep ended, in seconds since the Unix epoch.",
        &one(ended),
    );
    let outcomes = ["swept", "skipped", "failed", "nothing_to_do"]
        .iter()
        .map(|k| {
            (
                format!("{{outcome=\"{k}\"}}"),
                f64::from(u8::from(*k == kind)),
            )
        })
        .collect::<Vec<_>>();
    gauge(
        &mut text,
        "last_run_outcome",
        "How the last sweep ended (1 for the outcome it had).",
        &outcomes,
    );
    let skip = match ran {
        Ran::Outcome(SweepOutcome::Skipped(reason)) => {
            vec![(format!("{{reason=\"{}\"}}", reason.as_str()), 1.0)]
        }
        _ => Vec::new(),
    };
    gauge(
        &mut text,
        "last_run_skipped",
        "Why the last sweep was skipped, when it was.",
        &skip,
    );
    gauge(
        &mut text,
        "last_run_duration_seconds",
        "How long the last sweep took.",
        &one(report.elapsed.as_secs_f64()),
    );
    gauge(
        &mut text,
        "last_run_reconciled",
        "Active sandboxes the last sweep marked Crashed or Stopped.",
        &one(count(report.reconciled)),
    );
    gauge(
        &mut text,
        "last_run_removed",
        "Finished ephemeral sandboxes the last sweep removed.",
        &one(count(report.removed)),
    );
    gauge(
        &mut text,
        "last_run_errors",
        "Rows the last sweep could not handle (logged; left as they were).",
        &one(count(report.errors)),
    );
    gauge(
        &mut text,
        "last_run_timed_out",
        "Whether the last sweep ran out of its time budget.",
        &flag(report.timed_out),
    );
    gauge(
        &mut text,
        "last_run_complete",
        "Whether the last sweep went through every candidate.",
        &flag(report.complete),
    );
    let labelled = |label: &str, pairs: &mut dyn Iterator<Item = (&str, u64)>| {
        pairs
            .map(|(value, n)| (format!("{{{label}=\"{value}\"}}"), count(n)))
            .collect::<Vec<_>>()
    };
    let mut dead = DeadReason::ALL
        .iter()
        .map(|&r| (r.as_str(), report.dead(r)));
    gauge(
        &mut text,
        "last_run_dead_runtimes",
        "Dead runtimes the last sweep found, by the evidence.",
        &labelled("reason", &mut dead),
    );
    let mut cleanup = CleanupOutcome::ALL
        .iter()
        .map(|&o| (o.as_str(), report.outcome(o)));
    gauge(
        &mut text,
        "last_run_cleanup",
        "Ephemeral candidates of the last sweep, by outcome.",
        &labelled("outcome", &mut cleanup),
    );
    gauge(
        &mut text,
        "last_run_invalid_rows",
        "Rows left alone for a column of the wrong storage class.",
        &labelled("column", &mut report.invalid_row.by_column().into_iter()),
    );
    text
}

/// Replaces `path` with `text` atomically: written to a temporary file
/// beside it, flushed to disk, then renamed over it. On failure the old
/// file stays and the temporary one is removed.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    // Only a file this call made is removed on failure.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
