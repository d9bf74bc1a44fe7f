//! Header parsing: the outbox's JSON headers column, raw Kafka headers (any bytes), and the retry policy and times
//! read from them; and the header list's edits (`push`, `set`, `remove`, `retain`) checked against a plain list of
//! pairs, the input choosing the edits, names and values.
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
    edits(data);
});

/// Names and values from a small alphabet (so that they repeat), some of them not ASCII.
const WORDS: [&str; 8] = ["", "a", "b", "ab", "é", "event_id", "ü€", "a longer value"];

/// Applies the edits the bytes spell to a `Headers` and to a `Vec` of pairs, comparing them after each.
fn edits(data: &[u8]) {
    let mut h = Headers::default();
    let mut model: Vec<(String, String)> = Vec::new();
    let mut snapshot = (h.clone(), model.clone());
    for op in data.chunks(3) {
        let word = |i: usize| WORDS[usize::from(op.get(i).copied().unwrap_or(0)) % WORDS.len()];
        let (name, value) = (word(1), word(2));
        match op[0] % 5 {
            0 => {
                h.push(name, value);
                model.push((name.to_owned(), value.to_owned()));
            }
            1 => {
                h.set(name, value);
                match model.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = value.to_owned(),
                    None => model.push((name.to_owned(), value.to_owned())),
                }
            }
            2 => {
                h.remove(name);
                model.retain(|(n, _)| n != name);
            }
            3 => {
                // Keeps a header when its value is not `value`; counts the calls.
                let mut calls = 0;
                h.retain(|_, v| {
                    calls += 1;
                    v != value
                });
                assert_eq!(calls, model.len(), "retain asks once per header");
                model.retain(|(_, v)| v != value);
            }
            _ => snapshot = (h.clone(), model.clone()),
        }
        let pairs: Vec<(&str, &str)> = model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(h.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(h.len(), model.len());
        assert_eq!(h.byte_len(), model.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
        for w in WORDS {
            let first = model.iter().find(|(n, _)| n == w).map(|(_, v)| v.as_str());
            assert_eq!(h.get(w), first);
        }
        assert!(h == Headers::from(model.clone()));
        // A clone taken earlier is not changed by the edits after it.
        assert_eq!(snapshot.0.to_vec(), snapshot.1);
        assert_eq!(snapshot.0 == h, snapshot.1 == model);
    }
}

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
