//! Builds a large catalog for trying the CLI by hand (and measuring it).
//!
//! ```sh
//! cargo run --release --example build_catalog -- /tmp/big 100000 0
//! /usr/bin/time -v target/release/sandbox-sweep sweep --db /tmp/big/catalog.db \
//!     --sandboxes-dir /tmp/big/sandboxes --max-active 1000000 --budget-ms 600000
//! ```
//!
//! Arguments: a directory (created), how many stale `Running` sandboxes with
//! a dead runtime, and how many finished ephemeral sandboxes with a small
//! directory each.

use std::path::Path;

use rusqlite::params;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: build_catalog DIR STALE EPHEMERAL";
    let dir = args.next().ok_or(usage)?;
    let stale: usize = args.next().ok_or(usage)?.parse()?;
    let ephemeral: usize = args.next().ok_or(usage)?.parse()?;
    let dir = Path::new(&dir);
    let sandboxes = dir.join("sandboxes");
    std::fs::create_dir_all(&sandboxes)?;
    let conn = sandbox_sweep::open(dir.join("catalog.db"))?;
    sandbox_sweep::migrate(&conn)?;
    let tx = conn.unchecked_transaction()?;
    {
        let mut sandbox = tx.prepare(
            "INSERT INTO sandbox (name, config, status, ephemeral) VALUES (?1, '{}', ?2, ?3)",
        )?;
        let mut run = tx.prepare(
            "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, 2000000000, 'Running', '2026-06-01 00:00:00')",
        )?;
        for i in 0..stale {
            sandbox.execute(params![format!("stale-{i}"), "Running", false])?;
            run.execute([tx.last_insert_rowid()])?;
        }
        for i in 0..ephemeral {
            let name = format!("eph-{i}");
            sandbox.execute(params![name, "Stopped", true])?;
            std::fs::create_dir(sandboxes.join(&name))?;
            std::fs::write(sandboxes.join(&name).join("config.json"), b"{}")?;
        }
    }
    tx.commit()?;
    println!(
        "{}: {stale} stale, {ephemeral} ephemeral",
        dir.join("catalog.db").display()
    );
    Ok(())
}
