//! Timestamp text, exactly as the catalog's other writers write it.
//!
//! The catalog stores UTC times as text: `YYYY-MM-DD HH:MM:SS`, then no
//! fraction when the sub-second part is zero, otherwise a dot and 3, 6 or 9
//! digits, the shortest that is exact (chrono's `%F %T%.f`). Compare-and-set
//! on a lease compares the exact text this process wrote, so formatting must
//! be deterministic and must not allocate on the hot path.

use std::fmt;
use std::ops::Deref;

use time::{Date, Month, PrimitiveDateTime, Time};

/// The longest text [`format_stamp`] produces: `-YYYY-MM-DD HH:MM:SS.fffffffff`.
const MAX_LEN: usize = 30;

/// A formatted timestamp held inline (no heap allocation), usable as a `&str`.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::__private::{format_stamp, parse_stamp};
///
/// let t = parse_stamp("2026-06-04 00:21:56.500").expect("valid stamp");
/// assert_eq!(&*format_stamp(t), "2026-06-04 00:21:56.500");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    buf: [u8; MAX_LEN],
    len: u8,
}

impl Deref for Stamp {
    type Target = str;

    fn deref(&self) -> &str {
        // Only ASCII digits and separators are ever written into `buf`.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl rusqlite::ToSql for Stamp {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(
            rusqlite::types::ValueRef::Text(&self.buf[..usize::from(self.len)]),
        ))
    }
}

impl Stamp {
    fn push_digits(&mut self, mut value: u32, width: usize) {
        let start = usize::from(self.len);
        for i in (0..width).rev() {
            // `value % 10` is below 10, so the cast cannot truncate.
            self.buf[start + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width as u8;
    }

    fn push(&mut self, byte: u8) {
        self.buf[usize::from(self.len)] = byte;
        self.len += 1;
    }
}

/// Formats a UTC time as catalog text: `YYYY-MM-DD HH:MM:SS[.fff|.ffffff|.fffffffff]`.
///
/// The fraction is left out when it is zero and otherwise has the fewest of
/// 3, 6 or 9 digits that represent it exactly.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::__private::{format_stamp, parse_stamp};
///
/// for text in ["2026-06-04 00:21:56", "2026-06-04 00:21:56.527967108"] {
///     let t = parse_stamp(text).expect("valid stamp");
///     assert_eq!(&*format_stamp(t), text);
/// }
/// ```
pub fn format_stamp(t: PrimitiveDateTime) -> Stamp {
    let mut s = Stamp {
        buf: [0; MAX_LEN],
        len: 0,
    };
    let year = t.year();
    if year < 0 {
        s.push(b'-');
    }
    s.push_digits(year.unsigned_abs(), 4);
    s.push(b'-');
    s.push_digits(u32::from(u8::from(t.month())), 2);
    s.push(b'-');
    s.push_digits(u32::from(t.day()), 2);
    s.push(b' ');
    s.push_digits(u32::from(t.hour()), 2);
    s.push(b':');
    s.push_digits(u32::from(t.minute()), 2);
    s.push(b':');
    s.push_digits(u32::from(t.second()), 2);
    let nanos = t.nanosecond();
    if nanos != 0 {
        s.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            s.push_digits(nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            s.push_digits(nanos / 1_000, 6);
        } else {
            s.push_digits(nanos, 9);
        }
    }
    s
}

/// Parses catalog timestamp text; `None` for anything that is not one.
///
/// Accepts `YYYY-MM-DD HH:MM:SS` with a space or `T` separator and an
/// optional fraction of 1 to 9 digits. Anything else (an offset, trailing
/// text, an impossible date) is unparseable; this never panics.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::__private::parse_stamp;
///
/// assert!(parse_stamp("2026-06-04T00:21:56.5").is_some());
/// assert!(parse_stamp("2026-02-30 00:00:00").is_none());
/// assert!(parse_stamp("yesterday").is_none());
/// ```
pub fn parse_stamp(text: &str) -> Option<PrimitiveDateTime> {
    parse_stamp_bytes(text.as_bytes())
}

/// [`parse_stamp`] on raw bytes, as SQLite hands text over.
pub fn parse_stamp_bytes(b: &[u8]) -> Option<PrimitiveDateTime> {
    if b.len() < 19 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let seps_ok = b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':'
        && b[16] == b':';
    if !seps_ok {
        return None;
    }
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let day = u8::try_from(num(8..10)?).ok()?;
    let hour = u8::try_from(num(11..13)?).ok()?;
    let minute = u8::try_from(num(14..16)?).ok()?;
    let second = u8::try_from(num(17..19)?).ok()?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let value = num(20..b.len())?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values_round_trip_exactly() {
        for text in [
            "2026-06-04 00:21:56",
            "2026-06-04 00:21:56.500",
            "2026-06-04 00:21:56.527967",
            "2026-06-04 00:21:56.527967108",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999999999",
        ] {
            let t = parse_stamp(text).expect(text);
            assert_eq!(&*format_stamp(t), text);
        }
    }

    #[test]
    fn fraction_uses_the_shortest_exact_width() {
        let base = parse_stamp("2026-06-04 00:21:56").expect("valid");
        let with = |nanos: u32| {
            let t = base.replace_nanosecond(nanos).expect("valid nanos");
            format_stamp(t).to_string()
        };
        assert_eq!(with(0), "2026-06-04 00:21:56");
        assert_eq!(with(500_000_000), "2026-06-04 00:21:56.500");
        assert_eq!(with(1_000), "2026-06-04 00:21:56.000001");
        assert_eq!(with(1), "2026-06-04 00:21:56.000000001");
        assert_eq!(with(120_000), "2026-06-04 00:21:56.000120");
    }

    #[test]
    fn reads_t_separator_and_any_fraction_width() {
        let t = parse_stamp("2026-06-04T00:21:56.5").expect("valid");
        assert_eq!(&*format_stamp(t), "2026-06-04 00:21:56.500");
        let t = parse_stamp("2026-06-04 00:21:56.12345678").expect("valid");
        assert_eq!(t.nanosecond(), 123_456_780);
    }

    #[test]
    fn garbage_is_unparseable_not_a_panic() {
        for text in [
            "",
            "garbage",
            "2026-06-04",
            "2026-06-04 00:21",
            "2026-06-04 00:21:56.",
            "2026-06-04 00:21:56.1234567890",
            "2026-06-04 00:21:56Z",
            "2026-06-04 00:21:56+00:00",
            "2026-13-04 00:21:56",
            "2026-02-30 00:21:56",
            "2026-06-04 24:00:00",
            "2026-06-04 00:60:00",
            "2026-06-04 00:21:61",
            "+026-06-04 00:21:56",
            "2026/06/04 00:21:56",
            "２０２６-06-04 00:21:56",
            "2026-06-04 00:21:56.-1",
        ] {
            assert_eq!(parse_stamp(text), None, "{text:?}");
        }
    }
}
