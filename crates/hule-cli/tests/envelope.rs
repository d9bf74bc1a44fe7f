//! `hule events`, `hule envelope check` and `hule check`: the registry, envelope validation (phase, path, reason) and the schema-evolution gate.

use hule_contracts::EVENTS;

mod common;
use common::hule;

#[test]
fn events_lists_all_71_with_their_topics() {
    let (code, out, _) = hule(&["events", "--json"], None);
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(rows.len(), 71);
    for (row, def) in rows.iter().zip(EVENTS) {
        assert_eq!(row["topic"], def.topic);
        assert_eq!(row["legacy_topic"], def.legacy_topic);
    }
}

#[test]
fn every_example_passes_check() {
    for def in EVENTS {
        for name in [def.name, def.legacy_topic] {
            let (code, example, err) = hule(&["envelope", "example", name], None);
            assert_eq!(code, 0, "{name}: {err}");
            let (code, out, err) = hule(&["envelope", "check", "-"], Some(example.as_bytes()));
            assert_eq!(code, 0, "{name}: {err}");
            assert!(out.starts_with("valid: "), "{out}");
        }
    }
}

#[test]
fn check_reports_phase_path_and_reason() {
    let (_, example, _) = hule(
        &["envelope", "example", "ASSESSMENT_RESULT_PUBLISHED"],
        None,
    );
    let broken = example.replacen("\"letter_grade\":\"B+\"", "\"letter_grade\":\"Z\"", 1);
    let (code, _, err) = hule(&["envelope", "check"], Some(broken.as_bytes()));
    assert_eq!(code, 1);
    assert!(
        err.contains("payload phase, at `data.essay_results[0].letter_grade`"),
        "{err}"
    );
    let (code, _, err) = hule(
        &[
            "envelope",
            "check",
            "--topic",
            "huleedu.cj_assessment.completed.v1",
        ],
        Some(example.as_bytes()),
    );
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = hule(&["envelope", "check", "/nonexistent/file.json"], None);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = hule(&["envelope", "check"], Some(b"\x00\xff not json"));
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = hule(&["envelope", "example", "NOPE"], None);
    assert_eq!(code, 2);
    assert!(err.contains("known events"), "{err}");
}

/// JSON Lines are checked one record per line, each verdict naming its line; `--topic` refuses an `event_type` that
/// names another event; `--json` gives one object per record.
#[test]
fn check_reads_json_lines_and_holds_event_type_to_the_topic() {
    let (_, one, _) = hule(&["envelope", "example", "BATCH_ESSAYS_REGISTERED"], None);
    let (_, two, _) = hule(&["envelope", "example", "BATCH_ESSAYS_REGISTERED"], None);
    let lines = format!(
        "{}\n\n{{\"not\": \"an envelope\"}}\n{}\n",
        one.trim(),
        two.trim()
    );
    let (code, out, err) = hule(&["envelope", "check"], Some(lines.as_bytes()));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("line 1: valid") && out.contains("line 4: valid"),
        "{out}"
    );
    assert!(err.contains("line 3: invalid: envelope phase"), "{err}");
    assert!(out.contains("3 record(s): 2 valid, 1 invalid"), "{out}");
    let (code, out, _) = hule(&["envelope", "check", "--json"], Some(lines.as_bytes()));
    assert_eq!(code, 1);
    let verdicts: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(verdicts.len(), 3, "{out}");
    assert_eq!(verdicts[1]["line"], 3);
    assert_eq!(verdicts[1]["valid"], false);
    assert_eq!(verdicts[2]["event"], "BATCH_ESSAYS_REGISTERED");

    // A pretty-printed document with one syntax mistake (a comma missing) is one record with one error that says
    // where, not one error per line.
    let pretty: serde_json::Value = serde_json::from_str(&one).expect("json");
    let pretty = serde_json::to_string_pretty(&pretty)
        .expect("pretty")
        .replacen("\",\n", "\"\n", 1);
    let (code, out, err) = hule(&["envelope", "check"], Some(pretty.as_bytes()));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("invalid")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("line 3"), "the position of the mistake: {err}");
    assert!(!out.contains("record(s)"), "{out}");

    let topic = "huleedu.batch.essays.registered.v1";
    let garbage = one.replacen(
        &format!("\"event_type\":\"{topic}\""),
        "\"event_type\":\"garbage!!\"",
        1,
    );
    assert_ne!(garbage, one);
    let (code, _, err) = hule(
        &["envelope", "check", "--topic", topic],
        Some(garbage.as_bytes()),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("at `event_type`") && err.contains("garbage!!"),
        "{err}"
    );
    let (code, out, err) = hule(
        &["envelope", "check", "--topic", topic],
        Some(one.as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("valid: BATCH_ESSAYS_REGISTERED"), "{out}");
}

/// A record nested 100,000 levels deep is an invalid envelope (exit 1), not a stack overflow that aborts the
/// process (exit 134 before the depth check).
#[test]
fn deeply_nested_input_is_invalid_not_fatal() {
    let deep = format!(
        "{{\"data\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (code, out, err) = hule(&["envelope", "check", "-"], Some(deep.as_bytes()));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains("nested deeper than 128"),
        "{out}\n{err}"
    );
}

#[test]
fn python_encoding_is_accepted() {
    let (code, example, _) = hule(
        &["envelope", "example", "--python", "STUDENT_CREATED"],
        None,
    );
    assert_eq!(code, 0);
    assert!(example.contains("\\u00c5sa"), "{example}");
    let (code, _, err) = hule(
        &[
            "envelope",
            "check",
            "--topic",
            "huleedu.class.student.created.v1",
        ],
        Some(example.as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn check_passes_on_the_registry_and_the_committed_baseline() {
    let baseline = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/schema-baseline.json"
    );
    let (code, out, err) = hule(&["check", "--baseline", baseline], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: 71 events"), "{out}");
    assert!(out.contains("ok: 71 payload schemas compatible"), "{out}");
}

#[test]
fn check_fails_on_each_breaking_change_naming_event_field_and_rule() {
    let dir = std::env::temp_dir().join(format!("hule-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("baseline.json");
    let p = path.to_str().expect("utf-8 path");
    let (code, out, _) = hule(&["check", "--update-baseline", "--baseline", p], None);
    assert_eq!(code, 0, "{out}");
    let mut b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    // Each edit makes the baseline say what the current schema no longer does.
    let slot = &mut b["events"]["ESSAY_SLOT_ASSIGNED"]["schema"];
    slot["properties"]["retired_field"] = serde_json::json!({"type": "string"});
    slot["properties"]["batch_id"] = serde_json::json!({"type": "integer"});
    let failed = &mut b["events"]["ESSAY_VALIDATION_FAILED"]["schema"];
    failed["definitions"]["FileValidationErrorCode"]["enum"]
        .as_array_mut()
        .expect("enum")
        .push(serde_json::json!("RETIRED_CODE"));
    failed["required"]
        .as_array_mut()
        .expect("required")
        .retain(|f| f != "file_size_bytes");
    b["events"]["CLIENT_BATCH_PIPELINE_REQUEST"]["schema"]["properties"]["batch_id"]["maxLength"] =
        serde_json::json!(1000);
    std::fs::write(&path, serde_json::to_string(&b).expect("encode")).expect("write");
    let (code, out, err) = hule(&["check", "--baseline", p], None);
    assert_eq!(code, 1, "{out}{err}");
    for line in [
        "FAIL ESSAY_SLOT_ASSIGNED field `retired_field`: removed field (was string)",
        "FAIL ESSAY_SLOT_ASSIGNED field `batch_id`: changed type (integer → string)",
        "FAIL ESSAY_VALIDATION_FAILED field `validation_error_code`: removed enum value (\"RETIRED_CODE\" removed)",
        "FAIL ESSAY_VALIDATION_FAILED field `file_size_bytes`: new required field (optional → required)",
        "FAIL CLIENT_BATCH_PIPELINE_REQUEST field `batch_id`: narrowed constraint (maxLength 1000 → 255)",
        "5 breaking change(s)",
    ] {
        assert!(out.contains(line), "missing `{line}` in\n{out}");
    }
    // Accepting the change rewrites the baseline, which then passes.
    let (code, _, _) = hule(&["check", "--update-baseline", "--baseline", p], None);
    assert_eq!(code, 0);
    let (code, out, _) = hule(&["check", "--baseline", p], None);
    assert_eq!(code, 0, "{out}");
    // Unreadable baselines are errors that say where, not findings.
    std::fs::write(
        &path,
        "{\"format\": \"hule-schema-baseline/1\", \"events\": [",
    )
    .expect("write");
    let (code, _, err) = hule(&["check", "--baseline", p], None);
    assert_eq!(code, 2);
    assert!(err.contains("line 1 column"), "{err}");
    let (code, _, err) = hule(&["check", "--baseline", "/nonexistent/baseline.json"], None);
    assert_eq!(code, 2);
    assert!(err.contains("--update-baseline"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
