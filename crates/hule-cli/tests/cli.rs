//! End-to-end tests of the `hule` binary.

use std::io::Write;
use std::process::{Command, Stdio};

use hule_contracts::EVENTS;

fn hule(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hule"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hule");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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
fn outbox_commands_fail_fast_on_misconfiguration() {
    let (code, _, err) = hule(&["outbox", "status", "--database-url", "mysql://x"], None);
    assert_eq!(code, 2);
    assert!(err.contains("unsupported database URL"), "{err}");
    let (code, _, err) = hule(
        &[
            "outbox",
            "status",
            "--database-url",
            "sqlite:///nonexistent/dir/outbox.db",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("no outbox database"), "{err}");
    let (code, _, err) = hule(
        &[
            "outbox",
            "status",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/test",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
}

#[test]
fn outbox_status_and_retry_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("hule-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");
    hule_outbox::SqliteOutbox::open(&db).expect("create");
    let url = format!("sqlite://{}", db.display());
    let (code, out, err) = hule(
        &["outbox", "status", "--database-url", &url, "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["pending"], serde_json::json!([]));
    let (code, out, err) = hule(
        &["outbox", "retry", "--database-url", &url, "--all-parked"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("released 0 row(s)"), "{out}");
    let (code, _, _) = hule(&["outbox", "retry", "--database-url", &url], None);
    assert_eq!(code, 2);
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs a small demo with every fault on and reads the JSON report.
fn demo_report(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "demo",
        "--batches",
        "4",
        "--essays",
        "8",
        "--duplicate-rate",
        "0.2",
        "--poison-rate",
        "0.25",
        "--json",
        "-",
        "--no-progress",
        "--timeout",
        "90",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = hule(&args, None);
    assert_eq!(code, 0, "demo failed:\n{out}\n{err}");
    serde_json::from_str(&out).expect("JSON report")
}

fn assert_reconciled(r: &serde_json::Value) {
    assert_eq!(r["batches_completed"], 4, "{r:#}");
    assert_eq!(
        r["essays_with_results"], 32,
        "every registered essay has a result"
    );
    assert_eq!(
        r["essays_with_multiple_results"], 0,
        "no result applied twice"
    );
    assert_eq!(r["poison_injected"], 8);
    let dlq: u64 = r["dlq_by_reason"]
        .as_object()
        .expect("dlq")
        .values()
        .map(|v| v.as_u64().expect("n"))
        .sum();
    assert_eq!(dlq, 8, "every poison record is in the DLQ");
    assert!(
        r["duplicates_injected"].as_u64().expect("n") > 0,
        "duplicates were injected"
    );
    assert_eq!(
        r["duplicates_suppressed"], r["duplicates_expected"],
        "every duplicate suppressed"
    );
    assert!(
        r["kendall_tau_mean"].as_f64().expect("tau") > 0.3,
        "{}",
        r["kendall_tau_mean"]
    );
    assert_eq!(r["reconciled"], true);
    for c in r["checks"].as_array().expect("checks") {
        assert_eq!(c["ok"], true, "{c}");
    }
}

#[test]
fn demo_with_every_fault_reconciles_on_sqlite_and_the_embedded_cluster() {
    let r = demo_report(&["--broker-faults"]);
    assert_reconciled(&r);
    assert_eq!(r["outbox"], "sqlite");
    assert!(!r["broker_faults"].as_array().expect("faults").is_empty());
}

#[test]
fn demo_reconciles_with_postgresql_outboxes() {
    let url = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let r = demo_report(&["--database-url", &url]);
    assert_reconciled(&r);
    assert_eq!(r["outbox"], "postgres");
}

#[test]
fn demo_refuses_bad_settings() {
    let (code, _, err) = hule(&["demo", "--duplicate-rate", "1.5", "--no-progress"], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("--duplicate-rate must be between 0 and 1"),
        "{err}"
    );
    let (code, _, err) = hule(&["demo", "--batches", "0", "--no-progress"], None);
    assert_eq!(code, 2);
    assert!(err.contains("at least 1"), "{err}");
}
