//! Reading `/proc`: a process's stat record and this boot's id.
//!
//! On Linux a process's start time (field 22 of `/proc/<pid>/stat`, clock
//! ticks since boot) and the boot id tell a live runtime from a pid that was
//! reused, or from a record written before a reboot. Elsewhere these reads
//! report "unknown" and liveness falls back to the kill probe alone. Reads
//! only; judging what a record means is `liveness`'s job.

/// The fields of `/proc/<pid>/stat` liveness needs.
///
/// # Examples
///
/// ```
/// let line = b"4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
/// let stat = sandbox_sweep::__private::parse_proc_stat(line).expect("well-formed");
/// assert_eq!(stat.state, b'S');
/// assert_eq!(stat.start_time, 987654);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter (field 3): `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    pub state: u8,
    /// The start time (field 22), in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// Whether the process has exited and only its table entry remains.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses a `/proc/<pid>/stat` line; `None` when it is not one.
///
/// The command name (field 2) may hold spaces, parentheses and newlines, so
/// the fields are split after the *last* `)`.
///
/// # Examples
///
/// ```
/// use sandbox_sweep::__private::parse_proc_stat;
///
/// let hostile = b"7 (a) Z 1 2 (b)) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0";
/// assert_eq!(parse_proc_stat(hostile).map(|s| (s.state, s.start_time)), Some((b'R', 55)));
/// assert_eq!(parse_proc_stat(b"garbage"), None);
/// ```
pub fn parse_proc_stat(line: &[u8]) -> Option<ProcStat> {
    let close = line.iter().rposition(|&b| b == b')')?;
    let mut fields = line[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let state = match fields.next()? {
        [letter] if letter.is_ascii_alphabetic() => *letter,
        _ => return None,
    };
    // Field 3 was the state; field 22 is 19 further on.
    let start = fields.nth(18)?;
    let start = start.strip_suffix(b"\n").unwrap_or(start);
    if start.is_empty() || start.len() > 20 {
        return None;
    }
    let start_time = start.iter().try_fold(0u64, |acc, &c| {
        if c.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })?;
    Some(ProcStat { state, start_time })
}

/// What reading a process's stat file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatRead {
    /// The record, parsed.
    Found(ProcStat),
    /// No such process (the file is gone).
    Gone,
    /// No way to tell: not Linux, `/proc` not mounted, unreadable or unparseable.
    Unknown,
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io::Read;

    use super::{StatRead, parse_proc_stat};

    /// Reads `/proc/<pid>/stat` without touching the heap: the path and the
    /// record both live in stack buffers (the probe runs once per row).
    pub(crate) fn read_stat(pid: i32) -> StatRead {
        let mut path = [0u8; 32];
        let Some(path) = stat_path(pid, &mut path) else {
            return StatRead::Unknown;
        };
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return StatRead::Gone,
            Err(_) => return StatRead::Unknown,
        };
        let mut buf = [0u8; 1024];
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                // ESRCH: the process went away between open and read.
                Err(err) if err.raw_os_error() == Some(nix::libc::ESRCH) => return StatRead::Gone,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return StatRead::Unknown,
            }
        }
        match parse_proc_stat(&buf[..len]) {
            Some(stat) => StatRead::Found(stat),
            None => StatRead::Unknown,
        }
    }

    fn stat_path(pid: i32, buf: &mut [u8; 32]) -> Option<&str> {
        let mut digits = [0u8; 10];
        let mut n = u32::try_from(pid).ok()?;
        let mut i = digits.len();
        loop {
            i -= 1;
            // `n % 10` is below 10, so the cast cannot truncate.
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let parts: [&[u8]; 3] = [b"/proc/", &digits[i..], b"/stat"];
        let mut len = 0;
        for part in parts {
            buf[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        std::str::from_utf8(&buf[..len]).ok()
    }

    /// This boot's id, trimmed; `None` when the kernel does not expose it.
    pub(crate) fn boot_id() -> Option<String> {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = text.trim();
        (!id.is_empty()).then(|| id.to_owned())
    }

    #[cfg(test)]
    #[test]
    fn stat_path_is_the_proc_path() {
        let mut buf = [0u8; 32];
        assert_eq!(stat_path(1, &mut buf), Some("/proc/1/stat"));
        assert_eq!(stat_path(i32::MAX, &mut buf), Some("/proc/2147483647/stat"));
        assert_eq!(stat_path(-5, &mut buf), None);
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::StatRead;

    pub(crate) fn read_stat(_pid: i32) -> StatRead {
        StatRead::Unknown
    }

    pub(crate) fn boot_id() -> Option<String> {
        None
    }
}

pub(crate) use imp::{boot_id, read_stat};

#[cfg(test)]
mod tests {
    use super::*;

    fn line_with_comm(comm: &[u8], state: &[u8], start: &[u8]) -> Vec<u8> {
        let mut line = b"123 (".to_vec();
        line.extend_from_slice(comm);
        line.extend_from_slice(b") ");
        line.extend_from_slice(state);
        line.extend_from_slice(b" 1 123 123 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 ");
        line.extend_from_slice(start);
        line.extend_from_slice(b" 1000 200 18446744073709551615\n");
        line
    }

    #[test]
    fn hostile_command_names_parse() {
        for comm in [
            &b"bash"[..],
            b"a b c",
            b")",
            b"((",
            b") R 1 2 3",
            b"x) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
            b"new\nline",
            b"",
            "\u{1F600}".as_bytes(),
        ] {
            let line = line_with_comm(comm, b"S", b"987654321");
            let stat = parse_proc_stat(&line).unwrap_or_else(|| panic!("{comm:?}"));
            assert_eq!(
                stat,
                ProcStat {
                    state: b'S',
                    start_time: 987_654_321
                },
                "{comm:?}"
            );
        }
    }

    #[test]
    fn zombie_state_is_reported() {
        let stat = parse_proc_stat(&line_with_comm(b"sh", b"Z", b"5")).expect("parses");
        assert!(stat.is_zombie());
        let stat = parse_proc_stat(&line_with_comm(b"sh", b"R", b"5")).expect("parses");
        assert!(!stat.is_zombie());
    }

    #[test]
    fn malformed_lines_are_rejected() {
        assert_eq!(parse_proc_stat(b""), None);
        assert_eq!(parse_proc_stat(b"123 (sh"), None);
        assert_eq!(parse_proc_stat(b"123 (sh) S 1 2"), None);
        assert_eq!(parse_proc_stat(&line_with_comm(b"sh", b"SS", b"5")), None);
        assert_eq!(parse_proc_stat(&line_with_comm(b"sh", b"S", b"-5")), None);
        assert_eq!(
            parse_proc_stat(&line_with_comm(b"sh", b"S", b"99999999999999999999")),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_stat_is_found_and_running() {
        let pid = i32::try_from(std::process::id()).expect("pid fits");
        match read_stat(pid) {
            StatRead::Found(stat) => {
                assert!(!stat.is_zombie());
                assert!(stat.start_time > 0);
            }
            other => panic!("expected own stat, got {other:?}"),
        }
        assert!(boot_id().is_some_and(|id| id.len() == 36));
    }
}
