//! Registry, envelope and payload contracts checked over every event.

use hule_contracts::decode::{decode, decode_envelope};
use hule_contracts::examples::{example_envelope, example_payload};
use hule_contracts::keys::partition_key_of_typed;
use hule_contracts::{DecodePhase, Event, Timestamp, TypedEvent, EVENTS};
use uuid::Uuid;

const EVENTS_TSV: &str = include_str!("../../../contracts/events.tsv");

#[test]
fn registry_equals_events_tsv() {
    let rows: Vec<Vec<&str>> = EVENTS_TSV
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 71);
    assert_eq!(EVENTS.len(), 71);
    for (row, def) in rows.iter().zip(EVENTS) {
        assert_eq!(row[0], def.name);
        assert_eq!(row[1], def.value, "{}", def.name);
        assert_eq!(row[2], def.legacy_topic, "{}", def.name);
        assert_eq!(row[3], def.topic, "{}", def.name);
        assert_eq!(row[4], def.payload_type, "{}", def.name);
        let list = |s: &str| {
            if s == "-" {
                vec![]
            } else {
                s.split(',').map(str::to_owned).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(row[5]),
            def.producers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            list(row[6]),
            def.consumers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
    }
}

/// The topic map finds, for every standard and legacy topic, the event a scan of the definitions in order finds first.
#[test]
fn topic_lookups_agree_with_a_scan_of_the_definitions() {
    for d in EVENTS {
        for topic in [d.topic, d.legacy_topic] {
            let scanned = EVENTS
                .iter()
                .find(|e| e.topic == topic || e.legacy_topic == topic)
                .map(|e| e.event);
            assert_eq!(Event::from_topic(topic).ok(), scanned, "{topic}");
        }
    }
    assert!(Event::from_topic("huleedu.no.such.topic.v1").is_err());
}

#[test]
fn lookups_by_name_value_and_either_topic() {
    let e = Event::CjAssessmentCompleted;
    assert_eq!(Event::from_name("CJ_ASSESSMENT_COMPLETED"), Ok(e));
    assert_eq!(Event::from_value("cj_assessment.completed"), Ok(e));
    assert_eq!(
        Event::from_topic("huleedu.cj.assessment.completed.v1"),
        Ok(e)
    );
    assert_eq!(
        Event::from_topic("huleedu.cj_assessment.completed.v1"),
        Ok(e)
    );
    assert_ne!(
        Event::from_topic("huleedu.batch.nlp.initiate.command.v2"),
        Event::from_topic("huleedu.batch.nlp.initiate.command.v1")
    );
    let err = Event::from_name("ESSAY_AIFEEDBACK_COMPLETED").expect_err("unmapped");
    let msg = err.to_string();
    assert!(msg.contains("ESSAY_AIFEEDBACK_COMPLETED"), "{msg}");
    assert!(msg.contains("- CJ_ASSESSMENT_COMPLETED (cj_assessment.completed) ➜ 'huleedu.cj.assessment.completed.v1'"));
    assert_eq!(msg.lines().filter(|l| l.starts_with("- ")).count(), 71);
}

#[test]
fn every_event_has_a_valid_example_with_a_key() {
    for def in EVENTS {
        let payload = example_payload(def.event).unwrap_or_else(|e| panic!("{}: {e}", def.name));
        assert_eq!(payload.event(), def.event);
        let key = partition_key_of_typed(&payload).unwrap_or_else(|e| panic!("{e}"));
        assert!(!key.is_empty(), "{}", def.name);
    }
}

#[test]
fn every_example_round_trips_through_both_encodings() {
    let at = Timestamp::parse("2025-11-21T18:04:12.345678Z").expect("time");
    for def in EVENTS {
        let env = example_envelope(def.event, Uuid::from_u128(7), Uuid::from_u128(9), at)
            .expect("example");
        let compact = env.to_json().expect("encode");
        let back =
            decode(Some(def.topic), &compact).unwrap_or_else(|e| panic!("{}: {e}", def.name));
        assert_eq!(back, env, "{}", def.name);
        assert_eq!(
            back.to_json().expect("encode"),
            compact,
            "{}: compact bytes differ",
            def.name
        );
        let python = env.to_python_json().expect("encode");
        let back =
            decode(Some(def.legacy_topic), &python).unwrap_or_else(|e| panic!("{}: {e}", def.name));
        assert_eq!(
            back.to_json().expect("encode"),
            compact,
            "{}: python form differs",
            def.name
        );
    }
}

#[test]
fn pydantic_compact_output_is_reproduced_byte_for_byte() {
    let bytes = include_bytes!("fixtures/python_thin_compact.json");
    let env = decode(None, bytes.trim_ascii()).expect("decode");
    assert!(matches!(env.data, TypedEvent::SpellcheckPhaseCompleted(_)));
    assert_eq!(env.to_json().expect("encode"), bytes.trim_ascii());
}

#[test]
fn python_kafkabus_encoding_with_escapes_offsets_naive_times_and_extra_keys() {
    let bytes = include_bytes!("fixtures/python_kafkabus.json");
    let env = decode(None, bytes.trim_ascii()).expect("decode");
    let TypedEvent::StudentCreated(p) = &env.data else {
        panic!("wrong event {:?}", env.data.event())
    };
    assert_eq!(p.first_name, "Åsa");
    assert_eq!(p.last_name, "Lindqvist 😀");
    assert_eq!(p.timestamp.to_string(), "2025-11-21T18:04:12.345678Z");
    assert_eq!(env.event_timestamp.to_string(), "2025-11-21T18:04:12Z");
    assert_eq!(env.schema_version, 1);
    assert_eq!(
        env.metadata
            .as_ref()
            .and_then(|m| m.extra.get("org_id"))
            .and_then(|v| v.as_str()),
        Some("org-1")
    );
}

#[test]
fn legacy_topic_and_enum_value_in_event_type_route() {
    let at = Timestamp::parse("2025-11-21T18:04:12Z").expect("time");
    for event_type in [
        "huleedu.llm_provider.comparison_result.v1",
        "llm_provider.comparison_result",
        "LLM_COMPARISON_RESULT",
    ] {
        let mut env = example_envelope(
            Event::LlmComparisonResult,
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            at,
        )
        .expect("ex");
        env.event_type = event_type.into();
        let back = decode(None, &env.to_json().expect("enc")).expect(event_type);
        assert_eq!(back.data.event(), Event::LlmComparisonResult);
    }
}

fn mutate(event: Event, path: &[&str], value: serde_json::Value) -> Vec<u8> {
    let at = Timestamp::parse("2025-11-21T18:04:12Z").expect("time");
    let env = example_envelope(event, Uuid::from_u128(1), Uuid::from_u128(2), at).expect("ex");
    let mut json: serde_json::Value =
        serde_json::from_slice(&env.to_json().expect("enc")).expect("json");
    let mut slot = &mut json;
    for p in &path[..path.len() - 1] {
        slot = match p.parse::<usize>() {
            Ok(i) => &mut slot[i],
            Err(_) => &mut slot[*p],
        };
    }
    slot[path[path.len() - 1]] = value;
    serde_json::to_vec(&json).expect("enc")
}

#[test]
fn constraint_violations_name_the_field_path() {
    let cases: &[(Event, &[&str], serde_json::Value, &str)] = &[
        (
            Event::AssessmentResultPublished,
            &["data", "essay_results", "0", "normalized_score"],
            1.5.into(),
            "data.essay_results[0].normalized_score",
        ),
        (
            Event::AssessmentResultPublished,
            &["data", "essay_results", "1", "letter_grade"],
            "G".into(),
            "data.essay_results[1].letter_grade",
        ),
        (
            Event::AssessmentResultPublished,
            &["data", "essay_results", "0", "rank"],
            0.into(),
            "data.essay_results[0].rank",
        ),
        (
            Event::AssessmentResultPublished,
            &["data", "essay_results", "0", "confidence_label"],
            "MEDIUM".into(),
            "data.essay_results[0].confidence_label",
        ),
        (
            Event::CjAssessmentCompleted,
            &["data", "status"],
            "completed".into(),
            "data.status",
        ),
        (
            Event::IdentityUserRegistered,
            &["data", "email"],
            "not-an-email".into(),
            "data.email",
        ),
        (
            Event::ClientBatchPipelineRequest,
            &["data", "batch_id"],
            "".into(),
            "data.batch_id",
        ),
    ];
    for (event, path, value, want) in cases {
        let bytes = mutate(*event, path, value.clone());
        let err = decode(Some(event.topic()), &bytes).expect_err(want);
        assert_eq!(err.phase, DecodePhase::Payload, "{err}");
        assert_eq!(err.path, *want, "{err}");
    }
}

#[test]
fn envelope_rejects_bad_ids_and_missing_fields() {
    let cases: &[(&[&str], serde_json::Value, &str)] = &[
        (&["event_id"], "req-123".into(), "event_id"),
        (&["correlation_id"], "req-123".into(), "correlation_id"),
        (&["schema_version"], "1.0.0".into(), "schema_version"),
    ];
    for (path, value, want) in cases {
        let bytes = mutate(Event::BatchEssaysRegistered, path, value.clone());
        let err = decode(None, &bytes).expect_err(want);
        assert_eq!(
            (err.phase, err.path.as_str()),
            (DecodePhase::Envelope, *want),
            "{err}"
        );
    }
    let err = decode(
        None,
        br#"{"event_id":"3f6c1c2e-9a7b-4e1d-8c2a-5b9e0d4f7a11"}"#,
    )
    .expect_err("missing");
    assert_eq!(err.phase, DecodePhase::Envelope);
    assert!(err.reason.contains("missing field"), "{err}");
    let err = decode(None, b"\xff\xfe").expect_err("bytes");
    assert!(err.reason.contains("UTF-8"), "{err}");
    let err = decode(
        Some("huleedu.nope.v1"),
        &mutate(
            Event::BatchEssaysRegistered,
            &["source_service"],
            "x".into(),
        ),
    )
    .expect_err("routing");
    assert_eq!(err.phase, DecodePhase::Routing);
}

#[test]
fn data_null_fails_in_the_payload_phase() {
    let bytes = mutate(
        Event::BatchEssaysRegistered,
        &["data"],
        serde_json::Value::Null,
    );
    let env = decode_envelope(&bytes).expect("envelope phase accepts null data");
    assert_eq!(env.data.get(), "null");
    let err = decode(None, &bytes).expect_err("payload");
    assert_eq!(
        (err.phase, err.path.as_str()),
        (DecodePhase::Payload, "data")
    );
}

#[test]
fn versioned_events_are_distinct() {
    let v1 = Event::BatchNlpInitiateCommand.def();
    let v2 = Event::BatchNlpInitiateCommandV2.def();
    assert_ne!(v1.topic, v2.topic);
    assert_eq!((v1.version(), v2.version()), (1, 2));
    assert_ne!(v1.payload_type, v2.payload_type);
}

/// An object whose first key is `serde_json`'s private raw-value token is a dict like any other, as pydantic keeps
/// it: `serde_json::Value`'s own `Deserialize` reads it as the JSON text of its string (here `[1, 2]`, or an error
/// for text that is not JSON). As a member of a flattened map (`metadata`'s extras), deeper in one and in an array
/// there (`assessment_metadata`); through `decode` and `decode_as` (the strict path first), the same documents with
/// an escaped key the strict path refuses (so that another path reads them), and the tree path alone.
#[test]
fn an_object_keyed_by_serde_jsons_raw_value_token_stays_an_object() {
    use hule_contracts::payloads::AssessmentResultV1;
    const TOKEN: &str = "$serde_json::private::RawValue";
    let ts = Timestamp::from_unix_micros(1_763_748_252_345_678).expect("ts");
    let event = Event::AssessmentResultPublished;
    let env = example_envelope(event, Uuid::from_u128(1), Uuid::from_u128(2), ts).expect("example");
    let text = String::from_utf8(env.to_json().expect("json")).expect("utf8");
    for inner in ["[1, 2]", "not json"] {
        let raw = format!(
            "{{\"{TOKEN}\":{}}}",
            serde_json::to_string(inner).expect("str")
        );
        let doc = text
            .replacen("\"metadata\":{", &format!("\"metadata\":{{\"x\":{raw},"), 1)
            .replacen(
                "\"assessment_metadata\":{",
                &format!("\"assessment_metadata\":{{\"y\":{{\"z\":{raw},\"w\":[{raw}]}},"),
                1,
            );
        assert_ne!(doc, text, "the example has both maps");
        let escaped = doc.replacen('{', "{\"extr\\u0061\":1,", 1);
        let expected: serde_json::Value = serde_json::json!({ TOKEN: inner });
        let check =
            |how: &str, meta: &hule_contracts::EnvelopeMetadata, data: &AssessmentResultV1| {
                assert_eq!(
                    meta.extra.get("x"),
                    Some(&expected),
                    "{how}, {inner}: metadata"
                );
                let y = serde_json::to_value(&data.assessment_metadata).expect("value");
                assert_eq!(y["y"]["z"], expected, "{how}, {inner}: assessment_metadata");
                assert_eq!(y["y"]["w"][0], expected, "{how}, {inner}: in an array");
            };
        for (how, decoded) in [
            ("decode", decode(Some(event.topic()), doc.as_bytes())),
            (
                "decode, escaped key",
                decode(Some(event.topic()), escaped.as_bytes()),
            ),
            (
                "decode_tree",
                hule_contracts::decode::decode_tree(Some(event.topic()), doc.as_bytes()),
            ),
        ] {
            let env = decoded.unwrap_or_else(|e| panic!("{how}, {inner}: {e}"));
            let TypedEvent::AssessmentResultPublished(data) = &env.data else {
                panic!("{how}: another event")
            };
            check(how, env.metadata.as_ref().expect("metadata"), data);
        }
        for (how, doc) in [("decode_as", &doc), ("decode_as, escaped key", &escaped)] {
            let env = hule_contracts::decode_as::<AssessmentResultV1>(doc.as_bytes())
                .unwrap_or_else(|e| panic!("{how}, {inner}: {e}"));
            check(how, env.metadata.as_ref().expect("metadata"), &env.data);
        }
    }
}

/// A free-form dict given `null` is refused on every path, as pydantic refuses it ("Input should be an object"):
/// none of the decoder's deserializers offers a `null` to a map's visitor as a unit, which `serde_json`'s map would
/// take for an empty map.
#[test]
fn a_free_form_dict_given_null_is_refused() {
    let ts = Timestamp::from_unix_micros(1_763_748_252_345_678).expect("ts");
    let event = Event::TeacherNotificationRequested;
    let env = example_envelope(event, Uuid::from_u128(1), Uuid::from_u128(2), ts).expect("example");
    let text = String::from_utf8(env.to_json().expect("json")).expect("utf8");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert!(
        doc["data"]["payload"].is_object(),
        "the example has the dict"
    );
    doc["data"]["payload"] = serde_json::Value::Null;
    let doc = doc.to_string();
    for (how, decoded) in [
        (
            "decode",
            decode(Some(event.topic()), doc.as_bytes()).map(|_| ()),
        ),
        (
            "decode_tree",
            hule_contracts::decode::decode_tree(Some(event.topic()), doc.as_bytes()).map(|_| ()),
        ),
        (
            "decode_as",
            hule_contracts::decode_as::<hule_contracts::payloads::TeacherNotificationRequestedV1>(
                doc.as_bytes(),
            )
            .map(|_| ()),
        ),
    ] {
        let err = decoded.expect_err(how);
        assert!(err.to_string().contains("payload"), "{how}: {err}");
    }
}
