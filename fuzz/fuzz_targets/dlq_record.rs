//! Dead letters both ways: building one from any record value (what the consumer does with poison) and reading
//! one back from a DLQ topic's value for `hule dlq show/replay`.
#![no_main]

use hule_consumer::dlq::{replay_record, DeadLetter, DeadLetterRecord};
use hule_consumer::{Delivery, Failure};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let delivery = Delivery {
        topic: "huleedu.batch.essays.registered.v1".into(),
        partition: 0,
        offset: 7,
        key: Some(data.iter().take(8).copied().collect()),
        headers: Default::default(),
        invalid_headers: Vec::new(),
        payload: (!data.is_empty()).then(|| data.to_vec()),
    };
    let letter = DeadLetter::build(&delivery, &Failure::Permanent("fuzz".into()), "fuzz-svc");
    let record: DeadLetterRecord =
        serde_json::from_slice(&letter.value).expect("a dead letter we built reads back");
    let replay = replay_record(&record, &letter.headers, &letter.topic, 0, 1)
        .expect("a dead letter we built replays");
    if delivery
        .payload
        .as_deref()
        .is_some_and(|p| serde_json::from_slice::<serde_json::Value>(p).is_err())
    {
        assert_eq!(replay.value, data, "raw bytes come back byte for byte");
    }
    let _ = letter.without_original("fuzz");
    // Reading: any value found on a DLQ topic.
    if let Ok(rec) = serde_json::from_slice::<DeadLetterRecord>(data) {
        let _ = replay_record(&rec, &Default::default(), "t.dlq.v1", 0, 0);
    }
});
