//! Microsandbox's run directory: per-sandbox lock files (`locks`),
//! runtime sockets (`sockets`), and what one row needs of both before it
//! is acted on (`row_locks`), which reconcile and cleanup share.

pub(crate) mod locks;
pub(crate) mod row_locks;
pub(crate) mod sockets;
