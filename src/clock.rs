//! Where "now" comes from, and the saturating arithmetic on it.
//!
//! Owns the [`Clock`] trait, the real [`SystemClock`], and the adding and
//! subtracting of durations that leases and sweeps do on catalog times. It
//! must not read or write the catalog: core logic takes a clock as a
//! parameter so tests can move time, and only the outermost conveniences
//! read the real one.

use std::time::Duration;

use time::PrimitiveDateTime;

/// A source of the current UTC time, so tests can move time.
///
/// Closures returning a [`PrimitiveDateTime`] are clocks too.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::{Clock, SystemClock, time::{Date, Month}};
///
/// let noon = Date::from_calendar_date(2026, Month::June, 4)?.with_hms(12, 0, 0)?;
/// let fixed = move || noon;
/// assert_eq!(fixed.now().year(), 2026);
/// assert!(SystemClock::now().year() >= 2024);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Clock {
    /// The current time, UTC.
    fn now(&self) -> PrimitiveDateTime;
}

/// The real clock: UTC from the operating system.
///
/// [`SystemClock::now`] reads it without the [`Clock`] trait in scope.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The current UTC time, as the catalog stores it (no offset).
    ///
    /// # Examples
    ///
    /// ```
    /// let now = sandbox_sweep::SystemClock::now();
    /// assert!(now.year() >= 2024);
    /// ```
    pub fn now() -> PrimitiveDateTime {
        let now = time::OffsetDateTime::now_utc();
        PrimitiveDateTime::new(now.date(), now.time())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> PrimitiveDateTime {
        SystemClock::now()
    }
}

impl<F: Fn() -> PrimitiveDateTime> Clock for F {
    fn now(&self) -> PrimitiveDateTime {
        self()
    }
}

/// `t + d`, or `t` itself when the sum would leave the calendar: a lease
/// far in the future is judged as skewed, never as a panic.
pub(crate) fn plus(t: PrimitiveDateTime, d: Duration) -> PrimitiveDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .unwrap_or(t)
}

/// `t - d`, or `t` itself when the difference would leave the calendar.
pub(crate) fn minus(t: PrimitiveDateTime, d: Duration) -> PrimitiveDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_at_the_ends_of_the_calendar() {
        let max = PrimitiveDateTime::MAX;
        let min = PrimitiveDateTime::MIN;
        assert_eq!(plus(max, Duration::from_secs(1)), max);
        assert_eq!(minus(min, Duration::from_secs(1)), min);
        assert_eq!(plus(min, Duration::MAX), min);
        let noon = crate::catalog::stamp::parse_stamp("2026-06-04 12:00:00").expect("valid");
        assert_eq!(
            plus(noon, Duration::from_secs(10)),
            crate::catalog::stamp::parse_stamp("2026-06-04 12:00:10").expect("valid")
        );
        assert_eq!(
            minus(noon, Duration::from_secs(30)),
            crate::catalog::stamp::parse_stamp("2026-06-04 11:59:30").expect("valid")
        );
    }
}
