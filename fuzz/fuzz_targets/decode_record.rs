//! The two-phase decode of a Kafka record, as a consumer runs it: any bytes, under any registered topic or none.
//! It must return (never panic, never overflow the stack), every path must agree with the tree path (`decode`'s and
//! `decode_as`'s alike), and whatever it accepts must encode and decode again.
#![no_main]

use hule_contracts::payloads::{AssessmentResultV1, SpellcheckPhaseCompletedV1};
use hule_contracts::{decode, decode_as, DecodeError, Payload, EVENTS};
use libfuzzer_sys::fuzz_target;

/// Whether a value's Debug text shows an infinite float (`inf` or `-inf` standing alone, not inside a word or a
/// string).
fn has_infinity(debug: &str) -> bool {
    debug.match_indices("inf").any(|(at, _)| {
        let before = debug[..at].chars().next_back();
        let after = debug[at + 3..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"')
    })
}

/// A decode (strict and streaming paths first) and its tree path alone, whose verdict is the record's: the same
/// value (by its Debug text: NaN is a value) or the same error.
fn paths_agree<T: std::fmt::Debug>(what: &str, fast: &Result<T, DecodeError>, tree: &Result<T, DecodeError>) {
    match (fast, tree) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}'s paths decode differently"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("{what}'s paths disagree: {:?} / {:?}", a.as_ref().map(|_| "ok"), b.as_ref().map(|_| "ok")),
    }
}

/// `decode_as` against its own tree path.
fn typed_paths_agree<P: Payload + std::fmt::Debug>(record: &[u8]) {
    paths_agree("decode_as", &decode_as::<P>(record), &hule_contracts::decode::decode_as_tree::<P>(record));
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, record)) = data.split_first() else {
        return;
    };
    let topic = EVENTS
        .get(usize::from(choice) % (EVENTS.len() + 1))
        .map(|e| e.topic);
    // Every path that may only accept (strict, streaming) agrees with the tree path.
    let decoded = decode(topic, record);
    paths_agree("decode", &decoded, &hule_contracts::decode::decode_tree(topic, record));
    if let Ok(env) = decoded {
        let bytes = env.to_json().expect("a decoded envelope encodes");
        // A float beyond f64's range is read as infinity and written as `null`, as pydantic writes it; a required
        // float then does not decode again, in pydantic either. Anything else must.
        match decode(topic, &bytes) {
            Ok(again) => assert_eq!(again.event_id, env.event_id),
            Err(e) => assert!(
                String::from_utf8_lossy(&bytes).contains("null") && has_infinity(&format!("{env:?}")),
                "an encoded envelope decodes: {e}"
            ),
        }
    }
    // The statically typed decode too, against its own tree path: a thin payload, and one with free-form dicts.
    typed_paths_agree::<SpellcheckPhaseCompletedV1>(record);
    typed_paths_agree::<AssessmentResultV1>(record);
    let _ = hule_contracts::decode::decode_envelope(record);
});
