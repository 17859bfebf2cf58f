//! Which sandbox names may reach the filesystem: one normal path
//! component, never one of this crate's own folders.
//!
//! Owns the rule, and the one way a name is read from a row
//! ([`stored_name`]); it opens nothing. Every path built from a name goes
//! through [`validate_name`] first.

use rusqlite::types::ValueRef;

use crate::catalog::columns::{Column, text};
use crate::error::{Error, Result};

/// Names starting with this are reserved for the crate's own folders
/// (`".sandbox-sweep"`, as in the trash `.sandbox-sweep-trash`).
pub const RESERVED_PREFIX: &str = ".sandbox-sweep";

/// The longest name one path component may have, in bytes (Linux's
/// `NAME_MAX`): a longer name can never name a directory.
const NAME_MAX: usize = 255;

/// Checks that `name` can only name a directory directly inside the
/// sandboxes directory: one normal path component.
///
/// # Errors
///
/// [`Error::InvalidName`] for an empty name, `.`, `..`, a name with `/` or
/// NUL, one longer than a path component may be (255 bytes), or one
/// starting with [`RESERVED_PREFIX`].
///
/// # Examples
///
/// ```
/// use sandbox_sweep::sandboxes::validate_name;
///
/// assert!(validate_name("web-1").is_ok());
/// for bad in ["", ".", "..", "a/b", "/etc", "../x", "a\0b", ".sandbox-sweep-trash"] {
///     assert!(validate_name(bad).is_err(), "{bad:?}");
/// }
/// assert!(validate_name(&"x".repeat(255)).is_ok());
/// assert!(validate_name(&"x".repeat(256)).is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > NAME_MAX
        || name.contains(['/', '\0'])
        || name.starts_with(RESERVED_PREFIX);
    if bad {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// A sandbox's name as a row stores it, for every path that acts on it
/// (reconcile, cleanup, the trash's recovery, `status`): TEXT, UTF-8 and
/// valid as a name, or [`Column::Name`] and the row is left alone. A name
/// stored as a BLOB or a number names no directory this crate may touch.
pub(crate) fn stored_name(value: ValueRef<'_>) -> std::result::Result<String, Column> {
    let name = text(value, Column::Name)?;
    validate_name(name).map_err(|_| Column::Name)?;
    Ok(name.to_owned())
}
