//! Sandboxes as a runtime records them and as they sit on disk: which
//! names may reach the filesystem (`names`), a runtime's own writes and the
//! catalog's status strings (`lifecycle`), and moving a directory aside
//! and deleting it (`trash`).

pub(crate) mod lifecycle;
pub(crate) mod names;
pub(crate) mod trash;
