//! Processes a run records: who a process is (`identity`), whether it is
//! alive and why not (`liveness`), and a sandbox's running runs judged that
//! way (`runs`).

pub(crate) mod identity;
pub(crate) mod liveness;
pub(crate) mod runs;
