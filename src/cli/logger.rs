//! The library's log records, to stderr: those that say something was
//! left in place because a call failed (`LOG_KEPT`: the path and the
//! error, what a person must act on) always, as `warning:` lines, and with
//! `-v` every record down to debug.

use std::io::Write;

struct Stderr {
    verbose: bool,
}

impl log::Log for Stderr {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        self.verbose || meta.target() == sandbox_sweep::LOG_KEPT
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // One write per line, so lines from processes sharing a stderr file
        // never interleave.
        let line = if self.verbose {
            format!(
                "[{} {}] {}\n",
                record.level(),
                record.target(),
                record.args()
            )
        } else {
            format!("warning: {}\n", record.args())
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static QUIET: Stderr = Stderr { verbose: false };
static VERBOSE: Stderr = Stderr { verbose: true };

/// Sends `LOG_KEPT` records to stderr, and with `verbose` every record at
/// debug level and above.
pub fn install(verbose: bool) {
    let (logger, level) = if verbose {
        (&VERBOSE, log::LevelFilter::Debug)
    } else {
        (&QUIET, log::LevelFilter::Warn)
    };
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
