//! The files under `contrib/` work as shipped: the system and the user
//! systemd service and timer pass `systemd-analyze verify`, with the
//! service pointed at the binary this build made (the shipped path,
//! /usr/local/bin, is where an operator installs it); and what a timer's
//! sweep leaves to watch, `sweep --metrics`, parses as Prometheus text and
//! is replaced atomically.

pub mod common;

use std::process::Command;

use common::*;

/// `systemd-analyze [--user] verify` on the units in `contrib/systemd/<sub>`,
/// with the service's binary this build's; fails on any warning about them.
fn verify(sub: &str, user: bool) -> TestResult {
    let have = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        cannot_run("systemd units", "no systemd-analyze here");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let units = format!("{}/contrib/systemd/{sub}", env!("CARGO_MANIFEST_DIR"));
    let service = std::fs::read_to_string(format!("{units}/sandbox-sweep.service"))?;
    assert!(service.contains("ExecStart=/usr/local/bin/sandbox-sweep sweep"));
    let service = service.replace(
        "/usr/local/bin/sandbox-sweep",
        env!("CARGO_BIN_EXE_sandbox-sweep"),
    );
    std::fs::write(dir.path().join("sandbox-sweep.service"), service)?;
    std::fs::copy(
        format!("{units}/sandbox-sweep.timer"),
        dir.path().join("sandbox-sweep.timer"),
    )?;
    let mut cmd = Command::new("systemd-analyze");
    if user {
        // A user manager's runtime directory, of this test's own.
        let runtime = dir.path().join("runtime");
        std::fs::create_dir(&runtime)?;
        cmd.arg("--user")
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("HOME", dir.path());
    }
    let out = cmd
        .arg("verify")
        .arg(dir.path().join("sandbox-sweep.service"))
        .arg(dir.path().join("sandbox-sweep.timer"))
        .output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    // Warnings come on stderr with exit 0: there must be none about our units.
    assert!(
        !said.contains("sandbox-sweep"),
        "systemd-analyze verify: {said}"
    );
    Ok(())
}

#[test]
fn the_system_units_verify() -> TestResult {
    verify("", false)
}

#[test]
fn the_user_units_verify() -> TestResult {
    verify("user", true)
}

/// The samples of a Prometheus text file, `name{labels}` to value, after
/// checking every line against the format: `# HELP`/`# TYPE` comments, a
/// `TYPE` before a name's first sample, metric and label names of the
/// allowed characters, label values quoted, values that parse.
fn parse_prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = std::collections::BTreeMap::new();
    assert!(text.ends_with('\n'), "the last line ends: {text:?}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name, what) = (words.next(), words.next(), words.next());
            let name = name.unwrap_or_else(|| panic!("{line}"));
            assert!(name_ok(name), "{line}");
            match kind {
                Some("HELP") => assert!(what.is_some_and(|w| !w.is_empty()), "{line}"),
                Some("TYPE") => {
                    assert_eq!(what, Some("gauge"), "{line}");
                    assert!(typed.insert(name.to_owned()), "typed twice: {line}");
                }
                _ => panic!("not a HELP or TYPE comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            name_ok(name) && typed.contains(name),
            "untyped sample: {line}"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("labels: {line}"));
            for pair in inner.split(',') {
                let (key, quoted) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                assert!(name_ok(key), "label name: {line}");
                assert!(
                    quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                    "{line}"
                );
            }
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "twice: {line}"
        );
    }
    samples
}

#[test]
fn sweep_metrics_parse_and_replace_the_file_atomically() -> TestResult {
    use std::os::unix::fs::MetadataExt;
    let (env, _, _, _) = dead_and_finished();
    let dir = tempfile::tempdir()?;
    let prom = dir.path().join("sandbox_sweep.prom");
    let prom_arg = prom.to_str().expect("utf8");
    let out = cli(&env.sweep_args(&["--force", "--metrics", prom_arg]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = std::fs::metadata(&prom)?;
    let got = parse_prometheus(&std::fs::read_to_string(&prom)?);
    let at = |k: &str| {
        got.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in {got:?}"))
    };
    assert_eq!(at("sandbox_sweep_last_run_outcome{outcome=\"swept\"}"), 1.0);
    assert_eq!(
        at("sandbox_sweep_last_run_outcome{outcome=\"skipped\"}"),
        0.0
    );
    assert_eq!(at("sandbox_sweep_last_run_reconciled"), 1.0);
    assert_eq!(at("sandbox_sweep_last_run_removed"), 1.0);
    assert_eq!(at("sandbox_sweep_last_run_errors"), 0.0);
    assert_eq!(at("sandbox_sweep_last_run_complete"), 1.0);
    assert_eq!(
        at("sandbox_sweep_last_run_dead_runtimes{reason=\"no_such_process\"}"),
        1.0
    );
    assert_eq!(
        at("sandbox_sweep_last_run_cleanup{outcome=\"removed\"}"),
        1.0
    );
    assert!(at("sandbox_sweep_last_run_duration_seconds") > 0.0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    assert!((now.as_secs_f64() - at("sandbox_sweep_last_run_timestamp_seconds")).abs() < 60.0);

    // A skipped sweep replaces it: a new file renamed over the old (a new
    // inode), nothing else left in the directory.
    let out = cli(&env.sweep_args(&["--metrics", prom_arg]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let second = std::fs::metadata(&prom)?;
    assert_ne!(
        first.ino(),
        second.ino(),
        "replaced by rename, not rewritten in place"
    );
    let got = parse_prometheus(&std::fs::read_to_string(&prom)?);
    assert_eq!(
        got.get("sandbox_sweep_last_run_outcome{outcome=\"skipped\"}"),
        Some(&1.0)
    );
    assert_eq!(
        got.get("sandbox_sweep_last_run_skipped{reason=\"recent\"}"),
        Some(&1.0)
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, ["sandbox_sweep.prom"]);

    // A dry run writes nothing, metrics included.
    let out = cli(&env.sweep_args(&["--dry-run", "--metrics", prom_arg]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: --metrics records a sweep, and --dry-run writes nothing (see `sandbox-sweep --help`)\n"
    );
    assert_eq!(std::fs::metadata(&prom)?.ino(), second.ino());

    // A file that cannot be replaced (a directory is in the way): exit 1,
    // what was there stays, and no temporary file is left.
    let blocked = dir.path().join("blocked.prom");
    std::fs::create_dir(&blocked)?;
    std::fs::write(blocked.join("keep"), b"x")?;
    let out = cli(&env.sweep_args(&["--force", "--metrics", blocked.to_str().expect("utf8")]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!(
            "error: {}: metrics not written: ",
            blocked.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(blocked.join("keep"))?, b"x");
    let mut names: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    assert_eq!(names, ["blocked.prom", "sandbox_sweep.prom"]);
    Ok(())
}
