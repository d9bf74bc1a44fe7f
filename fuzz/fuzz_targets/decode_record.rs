//! The two-phase decode of a Kafka record, as a consumer runs it: any bytes, under any registered topic or none.
//! It must return (never panic, never overflow the stack), and whatever it accepts must encode and decode again.
#![no_main]

use hule_contracts::{decode, decode_as, payloads::SpellcheckPhaseCompletedV1, EVENTS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, record)) = data.split_first() else {
        return;
    };
    let topic = EVENTS
        .get(usize::from(choice) % (EVENTS.len() + 1))
        .map(|e| e.topic);
    if let Ok(env) = decode(topic, record) {
        let bytes = env.to_json().expect("a decoded envelope encodes");
        let again = decode(topic, &bytes).expect("an encoded envelope decodes");
        assert_eq!(again.event_id, env.event_id);
    }
    let _ = decode_as::<SpellcheckPhaseCompletedV1>(record);
    let _ = hule_contracts::decode::decode_envelope(record);
});
