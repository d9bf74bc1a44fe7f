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
    // Secrets never show in Debug output: every key the input names that looks secret gets a known value, which no
    // Debug of the settings or of a consumer or producer config made from them may show.
    const SECRET: &str = "fuzz-s3cret-value";
    if text.contains(SECRET) {
        return;
    }
    let keys: Vec<String> = settings.properties.iter().map(|(k, _)| k.clone()).collect();
    for k in keys.iter().filter(|k| hule_kafka::settings::is_secret(k)) {
        settings.properties.push((k.clone(), SECRET.to_owned()));
    }
    settings.properties.push(("sasl.password".to_owned(), SECRET.to_owned()));
    let consumer = hule_kafka::consumer::ConsumerConfig::with_settings(&settings, "g");
    let producer = hule_kafka::ProducerConfig::with_settings(&settings);
    for shown in [format!("{settings:?}"), format!("{consumer:?}"), format!("{producer:?}")] {
        assert!(!shown.contains(SECRET), "a secret in Debug output: {shown}");
    }
    let _ = toml::from_str::<KafkaSection>(text);
    let _ = toml::from_str::<hule_kafka::consumer::ConsumerConfig>(text);
    let _ = toml::from_str::<hule_kafka::ProducerConfig>(text);
});
