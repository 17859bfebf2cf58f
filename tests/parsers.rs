//! The fuzz target's property (`fuzz/fuzz_targets/parsers.rs`) under
//! proptest, so CI runs it: the parsers of text other programs wrote never
//! panic on any bytes, and a parsed timestamp formats back to itself.

use proptest::prelude::*;
use sandbox_sweep::__private::{format_stamp, parse_proc_stat, parse_stamp, parse_stamp_bytes};

/// Bytes near what the parsers expect (so parsing often succeeds), and
/// anything at all.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?"
            .prop_map(String::into_bytes),
        "[0-9]{1,7} \\([ -~]{0,20}\\) [A-Z]( -?[0-9]{1,20}){0,25}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #[test]
    fn parsers_never_panic_and_stamps_round_trip(data in input()) {
        if let Some(stat) = parse_proc_stat(&data) {
            prop_assert!(stat.state.is_ascii_alphabetic());
        }
        if let Some(t) = parse_stamp_bytes(&data) {
            prop_assert_eq!(parse_stamp(&format_stamp(t)), Some(t));
        }
    }
}

#[test]
fn the_strategy_reaches_both_parsers() {
    assert!(parse_stamp_bytes(b"2026-06-04 12:00:00.5").is_some());
    assert!(
        parse_proc_stat(b"42 (sh) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777").is_some()
    );
    assert!(parse_stamp_bytes(b"2026-06-04 12:00:00\xff").is_none());
}
