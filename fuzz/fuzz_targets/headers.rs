//! Header parsing: the outbox's JSON headers column, raw Kafka headers (any bytes), and the retry policy and times
//! read from them.
#![no_main]

use hule_contracts::headers::{occurred_at, Headers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(h) = Headers::from_json(text) {
            inspect(&h);
        }
    }
    // Raw headers: split the input into name/value pairs at 0xff bytes.
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let pairs: Vec<(&str, Option<&[u8]>)> = parts
        .chunks(2)
        .filter_map(|c| {
            let name = std::str::from_utf8(c[0]).ok()?;
            Some((name, c.get(1).copied()))
        })
        .collect();
    if let Ok(h) = Headers::from_raw(pairs) {
        inspect(&h);
    }
});

fn inspect(h: &Headers) {
    if let Ok(policy) = h.retry_policy() {
        for n in 0..4 {
            let _ = policy.delay_before_retry(n);
        }
    }
    let _ = h.retry_count();
    let _ = occurred_at(h);
    let _ = Headers::from_json(&h.to_json()).expect("headers we wrote read back");
}
