//! The connectivity parsers: a Java properties file (`--kafka-config`), `-X key=value` assignments, and the TOML
//! `[kafka]`, `[consumer]` and `[producer]` tables a service reads.
#![no_main]

use hule_kafka::settings::{parse_properties, KafkaSection, KafkaSettings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut settings = KafkaSettings::new("127.0.0.1:9092");
    if let Ok(props) = parse_properties(text) {
        for (_, key, value) in props {
            let _ = settings.add(&key, &value, "fuzz");
        }
    }
    for line in text.lines() {
        let _ = settings.add_assignment(line);
    }
    // Secrets never show in Debug output.
    let _ = format!("{settings:?}");
    let _ = toml::from_str::<KafkaSection>(text);
    let _ = toml::from_str::<hule_kafka::consumer::ConsumerConfig>(text);
    let _ = toml::from_str::<hule_kafka::ProducerConfig>(text);
});
