//! Property tests: no input panics the decoder, and payloads round-trip unchanged.

use hule_contracts::decode::decode;
use hule_contracts::examples::example_envelope;
use hule_contracts::{Timestamp, EVENTS};
use proptest::prelude::*;
use uuid::Uuid;

/// Replaces every free-text string leaf (ids, names, reasons) with `s`.
fn replace_strings(v: &mut serde_json::Value, s: &str) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let free = (k.ends_with("_id") && !k.contains("correlation"))
                    || k.ends_with("name") && k != "phase_name"
                    || k == "reason"
                    || k == "message"
                    || k == "filename";
                if free && child.is_string() {
                    *child = serde_json::Value::String(s.to_owned());
                } else {
                    replace_strings(child, s);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|c| replace_strings(c, s)),
        _ => {}
    }
}

/// An example envelope of `EVENTS[idx]`, with `edits` applied: each overwrites, inserts or deletes one byte (chosen
/// among the JSON punctuation, quotes, digits, letters and escapes that change what a record means).
fn mutated(idx: usize, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    const BYTES: &[u8] = b"{}[]\",:\\0123456789eE.-+ntfaluNIxyz \t\n";
    let at = Timestamp::parse("2025-11-21T18:04:12.345678Z").expect("ts");
    let env = example_envelope(
        EVENTS[idx].event,
        Uuid::from_u128(1),
        Uuid::from_u128(2),
        at,
    )
    .expect("example");
    let mut bytes = env.to_json().expect("json");
    for &(pos, op, b) in edits {
        let pos = pos % (bytes.len() + 1);
        let b = BYTES[usize::from(b) % BYTES.len()];
        match op % 3 {
            0 if pos < bytes.len() => bytes[pos] = b,
            1 => bytes.insert(pos, b),
            _ if pos < bytes.len() => {
                bytes.remove(pos);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The streaming fast path may only accept what the tree path accepts, with the same value: `decode` (fast
    /// path first) and `decode_tree` agree on every near-valid record.
    #[test]
    fn the_fast_path_never_disagrees_with_the_tree_path(
        idx in 0usize..71,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
    ) {
        let bytes = mutated(idx, &edits);
        let topic = Some(EVENTS[idx].topic);
        let fast = decode(topic, &bytes);
        let tree = hule_contracts::decode::decode_tree(topic, &bytes);
        match (&fast, &tree) {
            (Ok(a), Ok(b)) => prop_assert_eq!(format!("{a:?}"), format!("{b:?}")),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            _ => prop_assert!(false, "fast {:?}, tree {:?}, record {}", fast.is_ok(), tree.is_ok(), String::from_utf8_lossy(&bytes)),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), idx in 0usize..71) {
        let _ = decode(None, &bytes);
        let _ = decode(Some(EVENTS[idx].topic), &bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(text in "\\{(\"[a-z_]{1,12}\":(null|1|\"x\"|\\[\\]|\\{\\}),?){0,8}\\}", idx in 0usize..71) {
        let _ = decode(Some(EVENTS[idx].topic), text.as_bytes());
    }

    #[test]
    fn payloads_round_trip_unchanged(idx in 0usize..71, s in "\\PC{0,40}", micros in 0i64..4_000_000_000_000_000) {
        let def = &EVENTS[idx];
        let at = Timestamp::from_unix_micros(micros).expect("in range");
        let env = example_envelope(def.event, Uuid::from_u128(idx as u128), Uuid::from_u128(3), at).expect("example");
        let mut json: serde_json::Value = serde_json::from_slice(&env.to_json().expect("encode")).expect("json");
        replace_strings(&mut json, &s);
        let bytes = serde_json::to_vec(&json).expect("encode");
        if let Ok(decoded) = decode(Some(def.topic), &bytes) {
            let again = decoded.to_json().expect("encode");
            let twice = decode(Some(def.topic), &again).expect("re-decode");
            prop_assert_eq!(&twice, &decoded);
            prop_assert_eq!(twice.to_json().expect("encode"), again);
            let python = decoded.to_python_json().expect("encode");
            prop_assert_eq!(decode(Some(def.topic), &python).expect("python form"), decoded);
        }
    }
}

/// Deep nesting anywhere in a record is refused with an error, never a stack overflow (which aborts the process:
/// a consumer would crash-loop on one poison record). Without `decode::check_depth`, the first shape aborted the
/// test process. Run on a thread with a small stack so that a recursive parser would overflow even at depths a
/// larger stack survives.
#[test]
fn deeply_nested_records_are_refused_not_fatal() {
    let envelope = |data: &str, metadata: &str| {
        format!(
            "{{\"event_id\":\"6e4e0b1c-2f8e-4c53-9d57-0c2f7f1a0f11\",\"event_type\":\"huleedu.batch.essays.registered.v1\",\
             \"event_timestamp\":\"2025-01-01T00:00:00Z\",\"source_service\":\"x\",\"schema_version\":1,\
             \"correlation_id\":\"6e4e0b1c-2f8e-4c53-9d57-0c2f7f1a0f12\",\"data\":{data},\"metadata\":{metadata}}}"
        )
    };
    let n = 100_000;
    let shapes = [
        envelope(&format!("{}{}", "[".repeat(n), "]".repeat(n)), "null"),
        envelope(
            &format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)),
            "null",
        ),
        envelope("{}", &format!("{}{}", "[".repeat(n), "]".repeat(n))),
        // Brackets inside a string first, then the real nesting: the exact walk must skip strings.
        envelope(
            &format!(
                "{{\"note\":\"{}\\\"]]]\",\"x\":{}{}}}",
                "]".repeat(500),
                "[".repeat(n),
                "]".repeat(n)
            ),
            "null",
        ),
        // Unterminated: only opening brackets.
        "[".repeat(n),
    ];
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            for (i, bytes) in shapes.iter().enumerate() {
                let err = hule_contracts::decode::decode(None, bytes.as_bytes())
                    .expect_err("nesting beyond the limit is refused");
                assert!(
                    err.reason.contains("nested deeper than 128"),
                    "shape {i}: {err}"
                );
                let typed = hule_contracts::decode::decode_as::<
                    hule_contracts::payloads::BatchEssaysRegistered,
                >(bytes.as_bytes());
                assert!(typed.is_err(), "shape {i}");
            }
        })
        .expect("thread");
    handle.join().expect("no stack overflow");
    // Many brackets but shallow: still decodes (the exact walk runs and lets it through).
    let at = hule_contracts::Timestamp::from_datetime(chrono::Utc::now());
    let mut env = hule_contracts::examples::example_envelope(
        hule_contracts::Event::BatchEssaysRegistered,
        uuid::Uuid::from_u128(1),
        uuid::Uuid::from_u128(2),
        at,
    )
    .expect("example");
    if let hule_contracts::TypedEvent::BatchEssaysRegistered(p) = &mut env.data {
        p.essay_ids = (0..300).map(|i| format!("essay-[{{{i}")).collect();
    }
    let bytes = env.to_json().expect("json");
    hule_contracts::decode::decode(None, &bytes)
        .expect("shallow documents with many brackets decode");
}
