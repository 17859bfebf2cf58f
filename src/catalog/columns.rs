//! The columns the sweep's rules read, each read by its storage class.
//!
//! SQLite stores any value in any column, and a catalog shared by many
//! programs holds rows another program wrote. A rule acts on a row only
//! when every column it reads has the class it declares; anything else is
//! [`Column`]'s to name, and the row is left as it is. No decisions here
//! beyond "is this value of that class".

use std::fmt;

use rusqlite::types::ValueRef;

/// A column a rule reads, named when its value has the wrong storage class
/// (or is out of its range) and the row is therefore left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// `sandbox.name`: TEXT, UTF-8, and valid as a name.
    Name,
    /// `sandbox.status`: TEXT.
    Status,
    /// `sandbox.ephemeral`: INTEGER 0 or 1.
    Ephemeral,
    /// `run.pid`: INTEGER or NULL.
    Pid,
    /// `run.started_at`: TEXT in the catalog's format, or NULL.
    StartedAt,
}

impl Column {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Status => "status",
            Column::Ephemeral => "ephemeral",
            Column::Pid => "pid",
            Column::StartedAt => "started_at",
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TEXT value as UTF-8; anything else is `column` of the wrong class.
pub(crate) fn text(value: ValueRef<'_>, column: Column) -> Result<&str, Column> {
    match value {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).map_err(|_| column),
        _ => Err(column),
    }
}

/// `sandbox.ephemeral`: INTEGER 0 or 1 (how SQLite stores a boolean).
pub(crate) fn ephemeral(value: ValueRef<'_>) -> Result<bool, Column> {
    match value {
        ValueRef::Integer(0) => Ok(false),
        ValueRef::Integer(1) => Ok(true),
        _ => Err(Column::Ephemeral),
    }
}

/// `run.pid`: NULL (no process recorded) or an INTEGER, whatever its value
/// (a value no process can have is the liveness rules' to judge).
pub(crate) fn pid(value: ValueRef<'_>) -> Result<Option<i64>, Column> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(pid) => Ok(Some(pid)),
        _ => Err(Column::Pid),
    }
}

/// `run.started_at`: NULL, or TEXT in the catalog's timestamp format
/// (what orders a sandbox's runs; another value orders nothing).
pub(crate) fn started_at(value: ValueRef<'_>) -> Result<(), Column> {
    match value {
        ValueRef::Null => Ok(()),
        ValueRef::Text(text) if crate::catalog::stamp::parse_stamp_bytes(text).is_some() => Ok(()),
        _ => Err(Column::StartedAt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_class_is_read_by_its_class() {
        let values = [
            ValueRef::Null,
            ValueRef::Integer(1),
            ValueRef::Real(1.0),
            ValueRef::Text(b"1"),
            ValueRef::Blob(b"1"),
        ];
        let texts: Vec<_> = values.iter().map(|&v| text(v, Column::Status)).collect();
        assert_eq!(
            texts,
            [
                Err(Column::Status),
                Err(Column::Status),
                Err(Column::Status),
                Ok("1"),
                Err(Column::Status)
            ]
        );
        let flags: Vec<_> = values.iter().map(|&v| ephemeral(v)).collect();
        assert_eq!(
            flags,
            [
                Err(Column::Ephemeral),
                Ok(true),
                Err(Column::Ephemeral),
                Err(Column::Ephemeral),
                Err(Column::Ephemeral)
            ]
        );
        let pids: Vec<_> = values.iter().map(|&v| pid(v)).collect();
        assert_eq!(
            pids,
            [
                Ok(None),
                Ok(Some(1)),
                Err(Column::Pid),
                Err(Column::Pid),
                Err(Column::Pid)
            ]
        );
        assert_eq!(ephemeral(ValueRef::Integer(2)), Err(Column::Ephemeral));
        assert_eq!(started_at(ValueRef::Null), Ok(()));
        assert_eq!(
            started_at(ValueRef::Text(b"2026-06-01 00:00:00.123456789")),
            Ok(())
        );
        for bad in [
            ValueRef::Text(b"garbage"),
            ValueRef::Integer(1),
            ValueRef::Blob(b"x"),
        ] {
            assert_eq!(started_at(bad), Err(Column::StartedAt));
        }
        assert_eq!(
            text(ValueRef::Text(b"\xff"), Column::Name),
            Err(Column::Name)
        );
    }
}
