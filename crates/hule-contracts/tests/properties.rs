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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

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
