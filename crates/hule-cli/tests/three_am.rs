//! The scripted on-call session (`scripts/three-am.sh`) with this build of `hule`: poison and duplicates, what failed,
//! one request's dead letters, a broker restart under the operator, a dry run, a replay and the same replay again,
//! and the replayed records on their topic. The script checks each answer; this test runs it and shows its
//! transcript when it fails. It starts a one-node Kafka of its own (scripts/kafka.sh, ports 24092/24192) and needs
//! the PostgreSQL of scripts/setup.sh.

#[test]
fn the_three_am_session_reads_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!("hule-3am-{}", uuid::Uuid::new_v4().simple()));
    // Bounded: a step that hangs fails the test after 10 minutes instead of holding the suite.
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=10", "600", "bash"])
        .arg(root.join("scripts/three-am.sh"))
        .arg(env!("CARGO_BIN_EXE_hule"))
        .env("HULE_3AM_DIR", &dir)
        .output()
        .expect("run scripts/three-am.sh");
    let transcript = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "the session failed:\n{transcript}");
    assert!(
        transcript.contains("the second replay sent none"),
        "{transcript}"
    );
    assert!(!transcript.contains("panicked"), "{transcript}");
}
