//! How many sandboxes are in each status, reading as few rows as it can.
//!
//! A big catalog is nearly all one status (finished sandboxes pile up), so
//! `GROUP BY status` steps through a million rows to learn that most are
//! `Stopped`. Instead: count every row the cheap way (SQLite sums the cells
//! of each index page, with no step per row), count each range of the
//! status index up to a cap, and raise the cap only while more than one
//! range is still over it. The last range is the total less the others.
//! Where a round might read more than a quarter of the table, it is one
//! `GROUP BY` walk of the index after all: the rounds before read at most
//! about a quarter more than that walk alone. Without the status index it
//! is one pass of the table, tallied here (`GROUP BY` would sort it).
//!
//! Reads only, in one read transaction (a savepoint, so a host's own open
//! transaction is no obstacle), so the total and the ranges agree. Must not
//! scan or sort the table when the status index exists.

use rusqlite::{Connection, params};

use crate::catalog::Catalog;
use crate::catalog::sql::{
    ALL_STATUSES, COUNT_ALL, COUNT_BY_STATUS, COUNT_STATUS_ABOVE, COUNT_STATUS_BELOW,
    COUNT_STATUS_BETWEEN, COUNT_STATUS_IS, COUNT_STATUS_NULL,
};
use crate::error::Result;
use crate::sandboxes::lifecycle::SandboxStatus;

/// The cap of the first round: the rare statuses of a big catalog fit
/// under it, so one round usually settles everything.
pub(super) const FIRST_CAP: u64 = 1024;

/// Sandboxes per status, the catalog's statuses apart from the rest.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct StatusCounts {
    /// The catalog's statuses that have sandboxes, in the index's order.
    pub(super) by_status: Vec<(SandboxStatus, u64)>,
    /// Sandboxes whose status is none of the catalog's.
    pub(super) other: u64,
}

/// One range of the status index.
#[derive(Debug, Clone, Copy)]
enum Range {
    Null,
    Below(&'static str),
    Is(SandboxStatus),
    Between(&'static str, &'static str),
    Above(&'static str),
}

/// The status index cut at every status of the catalog: the gaps between
/// them hold everything else.
fn ranges() -> Vec<Range> {
    let mut known: Vec<SandboxStatus> = SandboxStatus::ALL.to_vec();
    // SQLite's BINARY collation is the bytes' order.
    known.sort_by_key(|s| s.as_str());
    let mut ranges = vec![Range::Null];
    let mut below = None;
    for status in known {
        ranges.push(match below {
            None => Range::Below(status.as_str()),
            Some(low) => Range::Between(low, status.as_str()),
        });
        ranges.push(Range::Is(status));
        below = Some(status.as_str());
    }
    if let Some(top) = below {
        ranges.push(Range::Above(top));
    }
    ranges
}

/// How many sandboxes `range` holds, up to `cap`.
fn probe(conn: &Connection, range: Range, cap: u64) -> Result<u64> {
    let cap = i64::try_from(cap).unwrap_or(i64::MAX);
    let n: i64 = match range {
        Range::Null => conn
            .prepare_cached(COUNT_STATUS_NULL)?
            .query_row([cap], |r| r.get(0))?,
        Range::Below(high) => conn
            .prepare_cached(COUNT_STATUS_BELOW)?
            .query_row(params![high, cap], |r| r.get(0))?,
        Range::Is(status) => conn
            .prepare_cached(COUNT_STATUS_IS)?
            .query_row(params![status.as_str(), cap], |r| r.get(0))?,
        Range::Between(low, high) => conn
            .prepare_cached(COUNT_STATUS_BETWEEN)?
            .query_row(params![low, high, cap], |r| r.get(0))?,
        Range::Above(low) => conn
            .prepare_cached(COUNT_STATUS_ABOVE)?
            .query_row(params![low, cap], |r| r.get(0))?,
    };
    Ok(super::sql_count(n))
}

impl Catalog {
    /// Sandboxes per status; see the module's docs for how. `missing` is
    /// what [`Catalog::missing_indexes`] says.
    pub(super) fn count_by_status(&self, first_cap: u64, missing: &[&str]) -> Result<StatusCounts> {
        let indexed = !missing.contains(&"idx_sandbox_status");
        self.conn.execute_batch("SAVEPOINT sandbox_sweep_count")?;
        let counted = if indexed {
            match self.count_ranges(first_cap.max(1)) {
                Ok(Some(counts)) => Ok(counts),
                Ok(None) => self.group_by_status(),
                Err(err) => Err(err),
            }
        } else {
            self.tally_statuses()
        };
        // Nothing was written: releasing only ends the read.
        let released = self.conn.execute_batch("RELEASE sandbox_sweep_count");
        let counts = counted?;
        released?;
        Ok(counts)
    }

    /// The counts range by range, or `None` when finishing them would read
    /// more than a `GROUP BY` does.
    fn count_ranges(&self, first_cap: u64) -> Result<Option<StatusCounts>> {
        let conn = &self.conn;
        let total = super::sql_count(conn.query_row(COUNT_ALL, [], |r| r.get(0))?);
        let ranges = ranges();
        let mut counts: Vec<Option<u64>> = vec![None; ranges.len()];
        let mut cap = first_cap;
        loop {
            for (range, count) in ranges.iter().zip(counts.iter_mut()) {
                if count.is_none() {
                    let n = probe(conn, *range, cap)?;
                    *count = (n < cap).then_some(n);
                }
            }
            let open: Vec<usize> = (0..counts.len()).filter(|&i| counts[i].is_none()).collect();
            let next = cap.saturating_mul(8);
            match open[..] {
                [] => break,
                [last] => {
                    let others: u64 = counts.iter().flatten().sum();
                    // In one read transaction the rest is at least the cap
                    // it reached; anything else and no count is trusted.
                    match total.checked_sub(others) {
                        Some(rest) if rest >= cap => counts[last] = Some(rest),
                        _ => return Ok(None),
                    }
                    break;
                }
                // A round that might read more than a quarter of the table
                // is not worth it: one walk reads it all, once.
                _ if (open.len() as u64).saturating_mul(next) > total / 4 => return Ok(None),
                _ => cap = next,
            }
        }
        let mut found = StatusCounts::default();
        for (range, count) in ranges.iter().zip(counts) {
            let n = count.unwrap_or(0);
            match range {
                Range::Is(status) if n > 0 => found.by_status.push((*status, n)),
                Range::Is(_) => {}
                _ => found.other += n,
            }
        }
        Ok(Some(found))
    }

    /// The counts from one pass of the table, without the status index
    /// (where `GROUP BY` would sort the whole table first).
    fn tally_statuses(&self) -> Result<StatusCounts> {
        let mut known: Vec<(SandboxStatus, u64)> =
            SandboxStatus::ALL.iter().map(|&s| (s, 0)).collect();
        // In the index's order, as the other ways report them.
        known.sort_by_key(|(s, _)| s.as_str());
        let mut found = StatusCounts::default();
        let mut stmt = self.conn.prepare_cached(ALL_STATUSES)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            match super::known_status(row.get_ref(0)?) {
                Some(status) => {
                    if let Some((_, n)) = known.iter_mut().find(|(s, _)| *s == status) {
                        *n += 1;
                    }
                }
                None => found.other += 1,
            }
        }
        found.by_status = known.into_iter().filter(|(_, n)| *n > 0).collect();
        Ok(found)
    }

    /// The counts from one walk of the whole status index.
    fn group_by_status(&self) -> Result<StatusCounts> {
        let mut found = StatusCounts::default();
        let mut stmt = self.conn.prepare_cached(COUNT_BY_STATUS)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let n = super::sql_count(row.get(1)?);
            match super::known_status(row.get_ref(0)?) {
                Some(status) => found.by_status.push((status, n)),
                None => found.other += n,
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;
    use SandboxStatus::{Crashed, Running, Stopped};

    /// `n` sandboxes whose status is the SQL expression `status`.
    fn add(f: &Fixture, n: u32, status: &str) -> Result<()> {
        f.conn().execute_batch(&format!(
            "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < {n})
             INSERT INTO sandbox (name, config, status)
                 SELECT 'sb-' || (SELECT count(*) FROM sandbox) || '-' || x, '{{}}', {status} FROM k;"
        ))?;
        Ok(())
    }

    #[test]
    fn every_cap_counts_what_group_by_counts() -> Result<()> {
        let f = Fixture::new()?;
        add(&f, 20_000, "'Stopped'")?;
        add(&f, 40, "'Running'")?;
        add(&f, 9, "'Crashed'")?;
        // Another program's statuses, in every gap of the index.
        add(&f, 3, "'Exploded'")?;
        add(&f, 2, "'7'")?;
        add(&f, 2, "'Zombie'")?;
        add(&f, 1, "CAST('Running' AS BLOB)")?;
        add(&f, 1, "'Runningx'")?;
        let expected = StatusCounts {
            by_status: vec![(Crashed, 9), (Running, 40), (Stopped, 20_000)],
            other: 9,
        };
        assert_eq!(f.catalog.group_by_status()?, expected);
        assert_eq!(f.catalog.tally_statuses()?, expected);
        for cap in [1, 2, 3, 8, 9, 40, 41, 1024, 20_000, 20_001] {
            assert_eq!(f.catalog.count_by_status(cap, &[])?, expected, "cap {cap}");
        }
        // From a cap of 2, three rounds (2, 16, 128), with no walk.
        assert_eq!(f.catalog.count_ranges(2)?, Some(expected));
        Ok(())
    }

    #[test]
    fn one_round_settles_a_catalog_that_is_nearly_all_one_status() -> Result<()> {
        let f = Fixture::new()?;
        add(&f, 5000, "'Stopped'")?;
        add(&f, 7, "'Running'")?;
        add(&f, 1, "'Exploded'")?;
        let counts = f.catalog.count_ranges(8)?;
        assert_eq!(
            counts,
            Some(StatusCounts {
                by_status: vec![(Running, 7), (Stopped, 5000)],
                other: 1,
            })
        );
        Ok(())
    }

    #[test]
    fn two_big_statuses_fall_back_to_one_walk() -> Result<()> {
        let f = Fixture::new()?;
        add(&f, 500, "'Stopped'")?;
        add(&f, 500, "'Crashed'")?;
        // Counting both past each other would read more than a quarter.
        assert_eq!(f.catalog.count_ranges(64)?, None);
        let both = vec![(Crashed, 500), (Stopped, 500)];
        assert_eq!(f.catalog.count_by_status(64, &[])?.by_status, both);
        Ok(())
    }

    #[test]
    fn without_the_status_index_it_walks_once_and_an_open_transaction_is_no_obstacle() -> Result<()>
    {
        let f = Fixture::new()?;
        add(&f, 20, "'Stopped'")?;
        add(&f, 1, "'Paused'")?;
        f.conn()
            .execute_batch("DROP INDEX idx_sandbox_status; BEGIN;")?;
        let expected = StatusCounts {
            by_status: vec![(SandboxStatus::Paused, 1), (Stopped, 20)],
            other: 0,
        };
        assert_eq!(
            f.catalog
                .count_by_status(1, &f.catalog.missing_indexes()?)?,
            expected
        );
        assert_eq!(f.catalog.group_by_status()?, expected);
        // The host's transaction is still open, and still its own.
        assert!(!f.conn().is_autocommit());
        f.conn().execute_batch("COMMIT")?;
        Ok(())
    }

    #[test]
    fn the_catalog_statuses_cut_the_index_into_sixteen_ranges() {
        let ranges = ranges();
        assert_eq!(ranges.len(), 16);
        assert!(matches!(ranges[1], Range::Below("Crashed")));
        assert!(matches!(ranges[3], Range::Between("Crashed", "Created")));
        assert!(matches!(ranges[15], Range::Above("Stopped")));
    }
}
