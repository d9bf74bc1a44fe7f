//! The schema-evolution gate: each breaking-change rule fails on a deliberately broken schema, naming the event,
//! the field and the rule; additive changes pass; version changes are skipped.

use hule_contracts::Event;
use hule_tooling::evolution::{compare, compare_schemas, Baseline, Rule};
use hule_tooling::schema::payload_schema;
use serde_json::{json, Value};

/// Compares the current schema of `event` (as baseline) with a copy changed by `edit` (as current).
fn changed(event: Event, edit: impl FnOnce(&mut Value)) -> Vec<(String, Rule, String)> {
    let old = payload_schema(event);
    let mut new = old.clone();
    edit(&mut new);
    compare_schemas(&old, &new)
}

fn only(findings: Vec<(String, Rule, String)>) -> (String, Rule, String) {
    assert_eq!(findings.len(), 1, "{findings:?}");
    findings.into_iter().next().expect("one finding")
}

fn remove_required(schema: &mut Value, field: &str) {
    if let Some(r) = schema["required"].as_array_mut() {
        r.retain(|v| v != field);
    }
}

#[test]
fn the_current_schemas_pass_against_themselves() {
    let report = compare(&Baseline::current(), &Baseline::current());
    assert_eq!(report.compared, 71);
    assert!(report.breaking.is_empty(), "{:?}", report.breaking);
}

#[test]
fn a_removed_field_fails() {
    let (field, rule, detail) = only(changed(Event::EssaySlotAssigned, |s| {
        s["properties"]
            .as_object_mut()
            .expect("props")
            .remove("essay_id");
        remove_required(s, "essay_id");
    }));
    assert_eq!((field.as_str(), rule), ("essay_id", Rule::RemovedField));
    assert_eq!(detail, "was string");
}

#[test]
fn a_changed_type_fails() {
    let (field, rule, detail) = only(changed(Event::EssayValidationFailed, |s| {
        s["properties"]["file_size_bytes"] = json!({"type": "string"});
    }));
    assert_eq!(
        (field.as_str(), rule),
        ("file_size_bytes", Rule::ChangedType)
    );
    assert_eq!(detail, "integer → string");
    // A field that stops admitting null changed type too.
    let (field, rule, _) = only(changed(Event::ClientBatchPipelineRequest, |s| {
        s["properties"]["retry_reason"]["type"] = json!("string");
    }));
    assert_eq!((field.as_str(), rule), ("retry_reason", Rule::ChangedType));
}

#[test]
fn a_new_required_field_fails() {
    let (field, rule, _) = only(changed(Event::EssaySlotAssigned, |s| {
        s["properties"]["course_code"] = json!({"type": "string"});
        s["required"]
            .as_array_mut()
            .expect("required")
            .push(json!("course_code"));
    }));
    assert_eq!(
        (field.as_str(), rule),
        ("course_code", Rule::NewRequiredField)
    );
    // An optional field that becomes required is the same rule.
    let (field, rule, detail) = only(changed(Event::ClientBatchPipelineRequest, |s| {
        s["required"]
            .as_array_mut()
            .expect("required")
            .push(json!("retry_reason"));
    }));
    assert_eq!(
        (field.as_str(), rule),
        ("retry_reason", Rule::NewRequiredField)
    );
    assert_eq!(detail, "optional → required");
}

#[test]
fn a_narrowed_constraint_fails() {
    let (field, rule, detail) = only(changed(Event::ClientBatchPipelineRequest, |s| {
        s["properties"]["batch_id"]["maxLength"] = json!(100);
    }));
    assert_eq!(
        (field.as_str(), rule),
        ("batch_id", Rule::NarrowedConstraint)
    );
    assert_eq!(detail, "maxLength 255 → 100");
    // Deep inside a shared definition, reported at the path that reaches it.
    let (field, rule, _) = only(changed(Event::AssessmentResultPublished, |s| {
        s["definitions"]["EssayResultV1"]["properties"]["normalized_score"]["minimum"] = json!(0.5);
    }));
    assert_eq!(
        (field.as_str(), rule),
        ("essay_results[].normalized_score", Rule::NarrowedConstraint)
    );
    // A widened constraint passes.
    assert!(changed(Event::ClientBatchPipelineRequest, |s| {
        s["properties"]["batch_id"]["maxLength"] = json!(1000);
    })
    .is_empty());
}

#[test]
fn a_removed_enum_value_fails() {
    let (field, rule, detail) = only(changed(Event::EssayValidationFailed, |s| {
        s["definitions"]["FileValidationErrorCode"]["enum"]
            .as_array_mut()
            .expect("enum")
            .retain(|v| v != "EMPTY_CONTENT");
    }));
    assert_eq!(
        (field.as_str(), rule),
        ("validation_error_code", Rule::RemovedEnumValue)
    );
    assert_eq!(detail, "\"EMPTY_CONTENT\" removed");
    // An added enum value passes.
    assert!(changed(Event::EssayValidationFailed, |s| {
        s["definitions"]["FileValidationErrorCode"]["enum"]
            .as_array_mut()
            .expect("enum")
            .push(json!("NEW_CODE"));
    })
    .is_empty());
}

#[test]
fn an_added_optional_field_passes() {
    let findings = changed(Event::EssaySlotAssigned, |s| {
        s["properties"]["course_code"] = json!({"type": ["string", "null"], "default": null});
    });
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn a_new_version_is_not_compared_and_a_removed_event_is_reported() {
    let current = Baseline::current();
    let mut baseline = current.clone();
    let slot = baseline
        .events
        .get_mut("ESSAY_SLOT_ASSIGNED")
        .expect("entry");
    slot.version = 0;
    slot.schema["properties"]["gone"] = json!({"type": "string"});
    baseline.events.insert(
        "RETIRED_EVENT".into(),
        baseline.events["ESSAY_SLOT_ASSIGNED"].clone(),
    );
    let report = compare(&baseline, &current);
    assert_eq!(
        report.version_changed,
        vec![("ESSAY_SLOT_ASSIGNED".to_owned(), 0, 1)]
    );
    let breaking: Vec<_> = report
        .breaking
        .iter()
        .map(|b| (b.event.as_str(), b.rule))
        .collect();
    assert_eq!(breaking, vec![("RETIRED_EVENT", Rule::RemovedEvent)]);
}

#[test]
fn a_baseline_round_trips_and_bad_files_say_where() {
    let current = Baseline::current();
    assert_eq!(
        Baseline::from_json(&current.to_json()).expect("reads"),
        current
    );
    let err = Baseline::from_json("{\n  \"format\": ").expect_err("truncated");
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = Baseline::from_json(r#"{"format": "other/9", "events": {}}"#).expect_err("format");
    assert!(err.to_string().contains("other/9"), "{err}");
    let err = Baseline::from_json(
        r#"{"format": "hule-schema-baseline/1", "events": {"X": {"version": 1, "payload": "P"}}}"#,
    )
    .expect_err("no schema");
    assert!(
        err.to_string().contains("events.X") && err.to_string().contains("schema"),
        "{err}"
    );
}
