//! `sandbox-sweep demo`: a realistic catalog, shown before and after a sweep.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use sandbox_sweep::{
    Catalog, Clock, Liveness, Outcome, Prober, ProcessIdentity, RecordedProcess, Sweeper,
    SystemClock, insert_running_run,
};

use super::{CliError, print};

/// A pid no kernel hands out (above every `pid_max`), for when no child can be spawned.
const NEVER_A_PID: i32 = 2_000_000_000;

/// What the demo puts in the catalog: name, status, ephemeral, directory?, runtime, why.
struct Case {
    name: &'static str,
    status: &'static str,
    ephemeral: bool,
    dir: bool,
    runtime: Runtime,
    note: &'static str,
}

enum Runtime {
    /// No run row at all.
    None,
    /// This demo process, with its true identity.
    Live,
    /// A child that exited and was reaped.
    Exited,
    /// A child that exited and was not reaped.
    Zombie,
    /// This process's pid, recorded with another start time.
    ReusedPid,
    /// This process's pid, recorded under another boot.
    BeforeReboot,
}

const CASES: &[Case] = &[
    Case {
        name: "web",
        status: "Running",
        ephemeral: false,
        dir: true,
        runtime: Runtime::Live,
        note: "runtime alive: left alone",
    },
    Case {
        name: "api",
        status: "Running",
        ephemeral: false,
        dir: true,
        runtime: Runtime::Exited,
        note: "runtime exited: becomes Crashed",
    },
    Case {
        name: "worker",
        status: "Running",
        ephemeral: false,
        dir: true,
        runtime: Runtime::Zombie,
        note: "runtime is a zombie: becomes Crashed",
    },
    Case {
        name: "recycled",
        status: "Running",
        ephemeral: false,
        dir: true,
        runtime: Runtime::ReusedPid,
        note: "pid now belongs to another process: becomes Crashed",
    },
    Case {
        name: "pre-reboot",
        status: "Running",
        ephemeral: false,
        dir: true,
        runtime: Runtime::BeforeReboot,
        note: "recorded before a reboot: becomes Crashed",
    },
    Case {
        name: "batch",
        status: "Draining",
        ephemeral: false,
        dir: true,
        runtime: Runtime::Exited,
        note: "draining, runtime gone: becomes Stopped",
    },
    Case {
        name: "booting",
        status: "Running",
        ephemeral: false,
        dir: true,
        runtime: Runtime::None,
        note: "no run yet (starting): left alone",
    },
    Case {
        name: "job-1",
        status: "Stopped",
        ephemeral: true,
        dir: true,
        runtime: Runtime::None,
        note: "finished ephemeral: directory and rows removed",
    },
    Case {
        name: "job-2",
        status: "Crashed",
        ephemeral: true,
        dir: true,
        runtime: Runtime::Exited,
        note: "crashed ephemeral: directory and rows removed",
    },
    Case {
        name: "job-3",
        status: "Stopped",
        ephemeral: true,
        dir: true,
        runtime: Runtime::Live,
        note: "ephemeral but a run is alive: kept",
    },
    Case {
        name: "db",
        status: "Stopped",
        ephemeral: false,
        dir: true,
        runtime: Runtime::None,
        note: "persistent: never removed",
    },
    Case {
        name: "../escape",
        status: "Stopped",
        ephemeral: true,
        dir: false,
        runtime: Runtime::None,
        note: "bad name: counted as an error, nothing touched",
    },
];

/// Children spawned for the demo, reaped when it ends.
struct Children {
    exited: Option<i32>,
    zombie: Option<Child>,
}

impl Children {
    fn spawn() -> Children {
        let exited = Command::new("true").spawn().ok().and_then(|mut child| {
            let pid = i32::try_from(child.id()).ok();
            child.wait().ok().and(pid)
        });
        let zombie = Command::new("true").spawn().ok();
        if let Some(child) = &zombie {
            wait_until_zombie(child.id());
        }
        Children { exited, zombie }
    }

    fn zombie_pid(&self) -> i32 {
        self.zombie
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .unwrap_or(NEVER_A_PID)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if let Some(child) = &mut self.zombie {
            let _ = child.wait();
        }
    }
}

/// Gives the child a moment to exit (bounded: 2 s).
fn wait_until_zombie(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    while Instant::now() < deadline {
        match std::fs::read(&stat) {
            Ok(line) if sandbox_sweep::parse_proc_stat(&line).is_some_and(|s| s.is_zombie()) => {
                return;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return,
        }
    }
}

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
    let db = root.join("catalog.db");
    let sandboxes = root.join("sandboxes");
    std::fs::create_dir_all(&sandboxes)
        .map_err(|e| CliError::Other(format!("{}: {e}", sandboxes.display())))?;
    let conn = sandbox_sweep::open(&db)?;
    sandbox_sweep::migrate(&conn)?;
    let children = Children::spawn();
    build(&conn, &sandboxes, &children)?;
    // The canary a naive sweeper would delete for the row named "../escape".
    let canary = root.join("escape");
    std::fs::create_dir_all(&canary)
        .map_err(|e| CliError::Other(format!("{}: {e}", canary.display())))?;

    writeln!(out, "sandbox-sweep demo")?;
    writeln!(out, "catalog:   {}", db.display())?;
    writeln!(out, "sandboxes: {}\n", sandboxes.display())?;
    writeln!(out, "before the sweep:")?;
    table(out, &conn, &sandboxes, true)?;

    writeln!(
        out,
        "\nsweeping (what every runtime start does; --force skips the 30 s interval) ..."
    )?;
    let catalog = Catalog::new(&conn)?;
    let outcome = Sweeper::new(&sandboxes)
        .force(true)
        .run_with(&catalog, &SystemClock);
    print::outcome(out, &outcome)?;
    if let Outcome::Failed(err) = outcome {
        return Err(err.into());
    }

    writeln!(out, "\nafter the sweep:")?;
    table(out, &conn, &sandboxes, false)?;
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

fn build(conn: &Connection, sandboxes: &Path, children: &Children) -> Result<(), CliError> {
    let catalog = Catalog::new(conn)?;
    let me = ProcessIdentity::current()?;
    let started = SystemClock.now();
    for case in CASES {
        conn.execute(
            "INSERT INTO sandbox (name, config, status, ephemeral, created_at, updated_at, active_config)
             VALUES (?1, '{}', ?2, ?3, ?4, ?4, '{}')",
            params![case.name, case.status, case.ephemeral, &*sandbox_sweep::format_stamp(started)],
        )?;
        let id = conn.last_insert_rowid();
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
        insert_running_run(&catalog, id, &identity, started)?;
    }
    Ok(())
}

fn table(
    out: &mut impl Write,
    conn: &Connection,
    sandboxes: &Path,
    notes: bool,
) -> Result<(), CliError> {
    let prober = Prober::new();
    let mut stmt = conn.prepare(
        "SELECT s.name, s.status, s.ephemeral, r.pid, r.pid_start_time, r.boot_id
         FROM sandbox s LEFT JOIN run r ON r.id = (
             SELECT id FROM run WHERE sandbox_id = s.id AND status = 'Running'
             ORDER BY started_at DESC, id DESC LIMIT 1)
         WHERE s.name = ?1",
    )?;
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
        let row = stmt
            .query_row([case.name], |r| {
                let status: String = r.get(1)?;
                let ephemeral: bool = r.get(2)?;
                let pid: Option<i64> = r.get(3)?;
                let start: Option<i64> = r.get(4)?;
                let boot: Option<String> = r.get(5)?;
                let runtime = match pid {
                    None => "no running run".to_owned(),
                    Some(pid) => {
                        let recorded = RecordedProcess {
                            pid: Some(pid),
                            start_time: start,
                            boot_id: boot.as_deref(),
                        };
                        match prober.check(&recorded) {
                            Liveness::Alive => format!("pid {pid} alive"),
                            Liveness::Dead(reason) => format!("pid {pid} {reason}"),
                        }
                    }
                };
                Ok((status, ephemeral, runtime))
            })
            .ok();
        let dir = if case.name.contains('/') {
            "-"
        } else if sandboxes.join(case.name).exists() {
            "yes"
        } else {
            "no"
        };
        match row {
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
