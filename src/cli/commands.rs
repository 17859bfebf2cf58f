//! The commands and what each takes: their names, their flags, and the
//! values a flag may hold. One table that parsing and the help both read;
//! no parsing of a command line here.

use super::CliError;

/// The command a word names, if it names one.
pub(super) fn command_named(word: &str) -> Result<&'static str, CliError> {
    ["init", "sweep", "status", "orphans", "demo"]
        .into_iter()
        .find(|c| *c == word)
        .ok_or_else(|| CliError::Usage(format!("unknown command `{word}`")))
}

/// Every flag a command accepts, and whether it takes a value.
pub(super) fn flags(command: &str) -> &'static [(&'static str, bool)] {
    match command {
        "init" => &[("--db", true), ("--home", true)],
        "sweep" => &[
            ("--db", true),
            ("--home", true),
            ("--sandboxes-dir", true),
            ("--run-dir", true),
            ("--force", false),
            ("--dry-run", false),
            ("--max-active", true),
            ("--max-ephemeral", true),
            ("--budget-ms", true),
            ("--metrics", true),
            ("--json", false),
        ],
        "status" => &[
            ("--db", true),
            ("--home", true),
            ("--sandboxes-dir", true),
            ("--run-dir", true),
            ("--json", false),
            ("--all", false),
        ],
        "orphans" => &[
            ("--db", true),
            ("--home", true),
            ("--sandboxes-dir", true),
            ("--run-dir", true),
            ("--budget-ms", true),
            ("--json", false),
            ("--remove", false),
            ("--older-than", true),
            ("--all", false),
        ],
        "demo" => &[("--keep", true)],
        _ => &[],
    }
}

/// `30s`, `15m`, `1h`, `2d`: a whole number and one unit.
pub(super) fn duration(text: &str) -> Option<std::time::Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(unit).map(std::time::Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_are_a_number_and_one_unit() {
        assert_eq!(duration("0s"), Some(Duration::ZERO));
        assert_eq!(duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(duration("2d"), Some(Duration::from_secs(172_800)));
        for bad in [
            "",
            "h",
            "1",
            "1.5h",
            "1 h",
            "-1h",
            "1w",
            "99999999999999999999d",
        ] {
            assert_eq!(duration(bad), None, "{bad:?}");
        }
    }
}
