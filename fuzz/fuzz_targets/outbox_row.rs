//! The relay's translation of a stored outbox row into a record, for rows of either writer: hule's (a headers
//! column) and the Python `OutboxManager`'s (envelope with `topic`/`headers` keys inside `event_data`).
#![no_main]

use hule_outbox::model::from_row;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // First line: the headers column (absent when empty); the rest: event_data.
    let (headers, event_data) = match text.split_once('\n') {
        Some((h, rest)) => ((!h.is_empty()).then(|| h.to_owned()), rest.to_owned()),
        None => (None, text.to_string()),
    };
    let key = event_data.get(..8).map(str::to_owned);
    let claimed = from_row(1, "huleedu.test.v1".into(), key, event_data, headers, 0, 0);
    assert_eq!(claimed.seq, 1);
});
