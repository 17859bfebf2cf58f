//! The files under `contrib/` work as shipped: the systemd service and
//! timer pass `systemd-analyze verify`, with the service pointed at the
//! binary this build made (the shipped path, /usr/local/bin, is where an
//! operator installs it).

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_systemd_units_verify() -> TestResult {
    let have = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        cannot_run("systemd units", "no systemd-analyze here");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/systemd");
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
    let out = Command::new("systemd-analyze")
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
