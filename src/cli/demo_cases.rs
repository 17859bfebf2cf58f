//! The demo's catalog: each sandbox it shows, what its runtime is, and
//! what a sweep should do with it. Data only.

use sandbox_sweep::SandboxStatus;

/// What the demo puts in the catalog: name, status, ephemeral, directory?, runtime, why.
pub struct Case {
    pub name: &'static str,
    pub status: SandboxStatus,
    pub ephemeral: bool,
    pub dir: bool,
    /// Its name written as a BLOB, as another program might: a row the
    /// sweep must leave alone (`invalid_row`).
    pub name_as_blob: bool,
    pub runtime: Runtime,
    pub note: &'static str,
}

pub enum Runtime {
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

pub const CASES: &[Case] = &[
    Case {
        name: "web",
        status: SandboxStatus::Running,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::Live,
        note: "runtime alive: left alone",
    },
    Case {
        name: "api",
        status: SandboxStatus::Running,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::Exited,
        note: "runtime exited: becomes Crashed",
    },
    Case {
        name: "worker",
        status: SandboxStatus::Running,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::Zombie,
        note: "runtime is a zombie: becomes Crashed",
    },
    Case {
        name: "recycled",
        status: SandboxStatus::Running,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::ReusedPid,
        note: "pid now belongs to another process: becomes Crashed",
    },
    Case {
        name: "pre-reboot",
        status: SandboxStatus::Running,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::BeforeReboot,
        note: "recorded before a reboot: becomes Crashed",
    },
    Case {
        name: "batch",
        status: SandboxStatus::Draining,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::Exited,
        note: "draining, runtime gone: becomes Stopped",
    },
    Case {
        name: "locked",
        status: SandboxStatus::Running,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::Exited,
        note: "pid dead, but a live process holds its lifecycle lock: left alone",
    },
    Case {
        name: "booting",
        status: SandboxStatus::Running,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::None,
        note: "no run yet (starting): left alone",
    },
    Case {
        name: "boot-crash",
        status: SandboxStatus::Starting,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::Exited,
        note: "starting, runtime exited: becomes Crashed",
    },
    Case {
        name: "launch-died",
        status: SandboxStatus::Starting,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::None,
        note: "starting, no run, no lock, no socket: abandoned, becomes Crashed",
    },
    Case {
        name: "launching",
        status: SandboxStatus::Starting,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::None,
        note: "starting, a live launcher holds its creation lock: left alone",
    },
    Case {
        name: "job-1",
        status: SandboxStatus::Stopped,
        ephemeral: true,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::None,
        note: "finished ephemeral: directory and rows removed",
    },
    Case {
        name: "job-blob",
        status: SandboxStatus::Stopped,
        ephemeral: true,
        dir: true,
        name_as_blob: true,
        runtime: Runtime::None,
        note: "finished ephemeral, but its name stored as a BLOB: left alone (invalid_row)",
    },
    Case {
        name: "job-2",
        status: SandboxStatus::Crashed,
        ephemeral: true,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::Exited,
        note: "crashed ephemeral: directory and rows removed",
    },
    Case {
        name: "job-3",
        status: SandboxStatus::Stopped,
        ephemeral: true,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::Live,
        note: "ephemeral but a run is alive: kept",
    },
    Case {
        name: "job-4",
        status: SandboxStatus::Stopped,
        ephemeral: true,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::None,
        note: "a snapshot capture holds its lineage lock: kept",
    },
    Case {
        name: "db",
        status: SandboxStatus::Stopped,
        ephemeral: false,
        dir: true,
        name_as_blob: false,
        runtime: Runtime::None,
        note: "persistent: never removed",
    },
    Case {
        name: "../escape",
        status: SandboxStatus::Stopped,
        ephemeral: true,
        dir: false,
        name_as_blob: false,
        runtime: Runtime::None,
        note: "bad name: counted as an error, nothing touched",
    },
];
