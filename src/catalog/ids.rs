//! The catalog's row ids as types: [`SandboxId`] (`sandbox.id`) and
//! [`RunId`] (`run.id`), so a sandbox's id passed where a run's is meant
//! does not compile.
//!
//! Owns the two newtypes and how they cross into and out of SQLite; no
//! statement and no rule here. Pids are not ids: they stay `i64` (see
//! [`process`](crate::process)).

use std::fmt;

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// Defines an id newtype over the catalog's `INTEGER PRIMARY KEY`.
macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            /// The id of a row read with the host's own SQL (its rowid).
            pub const fn new(id: i64) -> $name {
                $name(id)
            }

            /// The rowid, for the host's own SQL (it also binds directly:
            /// this type is [`ToSql`] and [`FromSql`]).
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        /// The same as [`new`](Self::new).
        impl From<i64> for $name {
            fn from(id: i64) -> $name {
                $name(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        /// The number alone, as SQLite stores it.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<$name> {
                i64::column_result(value).map($name)
            }
        }
    };
}

row_id! {
    /// `sandbox.id`: which sandbox, as [`Catalog::insert_sandbox`] returns
    /// it and every call about one sandbox takes it.
    ///
    /// [`Catalog::insert_sandbox`]: crate::Catalog::insert_sandbox
    ///
    /// # Examples
    ///
    /// A host that reads ids with its own SQL binds and reads them as they
    /// are:
    ///
    /// ```
    /// use sandbox_sweep::{Catalog, Lifetime, SandboxId, SandboxStatus, SystemClock};
    ///
    /// let conn = sandbox_sweep::rusqlite::Connection::open_in_memory()?;
    /// sandbox_sweep::migrate(&conn)?;
    /// let catalog = Catalog::from_connection(conn)?;
    /// let web = catalog.insert_sandbox("web", SandboxStatus::Running, Lifetime::Persistent, SystemClock::now())?;
    /// let found: SandboxId = catalog
    ///     .connection()
    ///     .query_row("SELECT id FROM sandbox WHERE name = 'web'", [], |row| row.get(0))?;
    /// assert_eq!(found, web);
    /// assert_eq!((web.get(), web.to_string()), (1, "1".to_owned()));
    /// assert_eq!(SandboxId::new(1), web);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A sandbox's id is not a run's:
    ///
    /// ```compile_fail,E0308
    /// use sandbox_sweep::process::ProcessIdentity;
    /// use sandbox_sweep::{Catalog, Lifetime, RunEnd, SandboxStatus, SystemClock, TerminationReason};
    ///
    /// let catalog = Catalog::from_connection(sandbox_sweep::rusqlite::Connection::open_in_memory()?)?;
    /// let now = SystemClock::now();
    /// let job = catalog.insert_sandbox("job", SandboxStatus::Running, Lifetime::Ephemeral, now)?;
    /// catalog.insert_running_run(job, &ProcessIdentity::current()?, now)?;
    /// // error[E0308]: expected `RunId`, found `SandboxId`
    /// catalog.finish_run(job, RunEnd::stopped(TerminationReason::Completed), now)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    SandboxId
}

row_id! {
    /// `run.id`: which run of a sandbox, as
    /// [`Catalog::insert_running_run`] returns it and
    /// [`Catalog::finish_run`] takes it.
    ///
    /// [`Catalog::insert_running_run`]: crate::Catalog::insert_running_run
    /// [`Catalog::finish_run`]: crate::Catalog::finish_run
    ///
    /// # Examples
    ///
    /// ```
    /// use sandbox_sweep::RunId;
    ///
    /// let run = RunId::from(7);
    /// assert_eq!((run.get(), i64::from(run), run.to_string()), (7, 7, "7".to_owned()));
    /// ```
    RunId
}
