//! Statements a sweep runs for every row, checked out of the connection's
//! statement cache once per sweep instead of once per use.
//!
//! Each trip through rusqlite's cache hashes the SQL text on the way out and
//! clears the bindings and re-inserts on the way back: about a tenth of the
//! cost of reconciling a row (callgrind). Holding the statements for the
//! length of a sweep keeps the cache's benefit across sweeps (they go back
//! when the sweep ends) without paying it per row.

use rusqlite::{CachedStatement, Connection};

/// Statements held for the length of one sweep, found by their SQL text.
pub(crate) struct Statements<'c> {
    conn: &'c Connection,
    held: Vec<(&'static str, CachedStatement<'c>)>,
}

impl<'c> Statements<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Statements<'c> {
        Statements {
            conn,
            held: Vec::new(),
        }
    }

    /// The statement for `sql`, prepared (or taken from the cache) on first use.
    pub(crate) fn get(&mut self, sql: &'static str) -> rusqlite::Result<&mut CachedStatement<'c>> {
        // A handful of entries: a scan beats hashing, and the same literal
        // is usually the same pointer.
        let found = self
            .held
            .iter()
            .position(|(text, _)| std::ptr::eq(*text, sql) || *text == sql);
        let at = match found {
            Some(at) => at,
            None => {
                self.held.push((sql, self.conn.prepare_cached(sql)?));
                self.held.len() - 1
            }
        };
        Ok(&mut self.held[at].1)
    }
}

impl<'c> Statements<'c> {
    /// Answers every later [`Statements::get`] of `key` with `sql`
    /// instead, so the per-row code reads another table unchanged.
    pub(crate) fn substitute(&mut self, key: &'static str, sql: &str) -> rusqlite::Result<()> {
        self.held.retain(|(text, _)| *text != key);
        self.held.push((key, self.conn.prepare_cached(sql)?));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_statement_is_prepared_once_and_reused() -> rusqlite::Result<()> {
        let conn = Connection::open_in_memory()?;
        let mut stmts = Statements::new(&conn);
        for n in 1..=3i64 {
            let got: i64 = stmts.get("SELECT ?1 + 1")?.query_row([n], |r| r.get(0))?;
            assert_eq!(got, n + 1);
            let other: i64 = stmts.get("SELECT ?1 * 2")?.query_row([n], |r| r.get(0))?;
            assert_eq!(other, n * 2);
        }
        assert_eq!(stmts.held.len(), 2);
        Ok(())
    }

    #[test]
    fn a_substituted_statement_answers_for_its_key() -> rusqlite::Result<()> {
        let conn = Connection::open_in_memory()?;
        let mut stmts = Statements::new(&conn);
        let key = "SELECT ?1 + 1";
        assert_eq!(stmts.get(key)?.query_row([2], |r| r.get::<_, i64>(0))?, 3);
        stmts.substitute(key, "SELECT ?1 * 10")?;
        assert_eq!(stmts.get(key)?.query_row([2], |r| r.get::<_, i64>(0))?, 20);
        assert_eq!(stmts.held.len(), 1);
        Ok(())
    }
}
