//! Microsandbox's run directory: per-sandbox lifecycle locks, for a
//! runtime sharing the protocol ([`try_lock_lifecycle`], [`LifecycleLock`],
//! [`lifecycle_lock_path`]).
//!
//! Inside: lock files (`locks`), runtime sockets (`sockets`), and what one
//! row needs of both before it is acted on (`row_locks`), which reconcile
//! and cleanup share.

pub(crate) mod locks;
pub(crate) mod row_locks;
pub(crate) mod sockets;

pub use locks::{LifecycleLock, lifecycle_lock_path, try_lock_lifecycle};
