//! The two parsers that read text other programs wrote: catalog timestamps
//! and `/proc/<pid>/stat` lines, both as the bytes production hands them
//! (SQLite's text is not always UTF-8). Neither may panic; a parsed
//! timestamp must format back to text that parses to the same instant.
//! `tests/parsers.rs` runs the same property under proptest in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(stat) = sandbox_sweep::__private::parse_proc_stat(data) {
        assert!(stat.state.is_ascii_alphabetic());
    }
    if let Some(t) = sandbox_sweep::__private::parse_stamp_bytes(data) {
        let again = sandbox_sweep::__private::parse_stamp(&sandbox_sweep::__private::format_stamp(t));
        assert_eq!(again, Some(t), "{data:?}");
    }
});
