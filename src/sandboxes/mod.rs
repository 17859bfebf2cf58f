//! Sandboxes as they sit on disk: which names may reach the filesystem
//! ([`validate_name`], [`RESERVED_PREFIX`]).
//!
//! Inside: the name rules (`names`), a runtime's own writes and the
//! catalog's status strings (`lifecycle`, re-exported at the root), and
//! moving a directory aside and deleting it (`trash`).

pub(crate) mod lifecycle;
pub(crate) mod names;
pub(crate) mod trash;

pub use names::{RESERVED_PREFIX, validate_name};
