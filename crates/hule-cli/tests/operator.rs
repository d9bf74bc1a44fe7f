//! The operator tools as someone on call meets them: a read-only command writes nothing and says when there is
//! nothing to read; a numeric flag out of range is refused with its range, never a panic.

mod common;
use common::hule;

#[test]
fn outbox_status_writes_nothing_and_names_a_missing_table() {
    // PostgreSQL: a schema of its own without an outbox.
    let base = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("hule_ro_{}", uuid::Uuid::new_v4().simple());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let admin = rt.block_on(async {
        let admin = hule_pg::connect(&base)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 (scripts/setup.sh starts it)");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema");
        admin
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let (code, out, err) = hule(&["outbox", "status", "--database-url", &url], None);
    assert_ne!(code, 0, "a false all-clear: {out}");
    assert!(
        err.contains("no event_outbox table") && err.contains(&schema),
        "{err}"
    );
    let created: i64 = rt.block_on(async {
        admin
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
                &[&schema],
            )
            .await
            .expect("count")
            .get(0)
    });
    assert_eq!(created, 0, "outbox status created tables");
    rt.block_on(async {
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop")
    });

    // SQLite: a database file that is not an outbox.
    let dir = std::env::temp_dir().join(format!("hule-ro-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("other.db");
    rusqlite::Connection::open(&db)
        .expect("create")
        .execute_batch("CREATE TABLE unrelated (x INTEGER)")
        .expect("table");
    let url = format!("sqlite://{}", db.display());
    let (code, _, err) = hule(&["outbox", "status", "--database-url", &url], None);
    assert_ne!(code, 0);
    assert!(err.contains("no event_outbox table"), "{err}");
    let tables: i64 = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(tables, 1, "outbox status created tables");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_replay_rate_out_of_range_is_refused_not_a_panic() {
    for rate in ["1e-300", "0", "-5", "NaN", "1e9"] {
        let flag = format!("--rate={rate}");
        let (code, _, err) = hule(
            &[
                "dlq",
                "replay",
                "--brokers",
                "127.0.0.1:1",
                "--topic",
                "t.dlq.v1",
                &flag,
            ],
            None,
        );
        assert_eq!(code, 2, "--rate {rate}: {err}");
        assert!(err.contains("records per second"), "--rate {rate}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `hule produce` to a topic the cluster does not have — here the legacy topic of an event whose legacy name
/// Kafka treats as its standard topic's — refuses at once and sends nothing (it used to wait 30 s for
/// `MessageTimedOut`).
#[test]
fn produce_to_a_topic_the_cluster_lacks_is_refused_at_once() {
    let brokers = hule_kafka::testkit::real_bootstrap();
    let (code, example, err) = hule(&["envelope", "example", "CJ_ASSESSMENT_COMPLETED"], None);
    assert_eq!(code, 0, "{err}");
    let started = std::time::Instant::now();
    let (code, out, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            "--topic-mode",
            "legacy",
            "-",
        ],
        Some(example.as_bytes()),
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("not on the cluster") && err.contains("huleedu.cj_assessment.completed.v1"),
        "{err}"
    );
    assert!(err.contains("--topic-mode standard"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

/// A broker that refuses the connection or a name that does not resolve fails at once (exit 3, librdkafka's reason
/// in the message); a broker that accepts the connection and never answers costs `--timeout`, not more.
#[test]
fn an_unreachable_cluster_fails_fast_and_a_silent_one_after_the_timeout() {
    // Port 1 (tcpmux), below the ephemeral range: nothing listens there, and no test's socket can take it.
    for brokers in ["127.0.0.1:1", "no-such-broker.invalid:9092"] {
        let started = std::time::Instant::now();
        // A 30 s timeout: the refusal must end the wait long before it.
        let (code, _, err) = hule(&["lag", "--brokers", brokers, "--timeout", "30s"], None);
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains("cannot reach Kafka brokers")
                && (err.contains("Connection refused") || err.contains("resolve")),
            "{err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(12),
            "{brokers}: {:?}",
            started.elapsed()
        );
    }
    // A listener that never accepts: the connection completes in the kernel, the request is never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let started = std::time::Instant::now();
    let (code, _, err) = hule(&["lag", "--brokers", &addr, "--timeout", "1500ms"], None);
    let took = started.elapsed();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("within 1.5s"), "{err}");
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    let (code, _, err) = hule(&["lag", "--brokers", &addr, "--timeout", "10"], None);
    assert_eq!(code, 2, "a duration without a unit is refused: {err}");
    assert!(err.contains("500ms, 10s or 2m"), "{err}");
    drop(silent);
}

/// The exit statuses `hule --help` documents: 2 when a command cannot run (a flag out of range), 3 when a server
/// cannot be reached (a broker nothing listens for).
#[test]
fn exit_statuses_tell_could_not_run_from_could_not_reach() {
    let (code, _, err) = hule(&["lag", "--brokers", "127.0.0.1:1"], None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot reach Kafka brokers"), "{err}");
    let (code, _, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            "127.0.0.1:1",
            "--topic",
            "t.dlq.v1",
            "--rate=0",
        ],
        None,
    );
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = hule(&["--help"], None);
    assert_eq!(code, 0);
    assert!(
        out.contains("Exit status: 0 done; 1 done, and found a problem"),
        "{out}"
    );
}

/// Logs written to a pipe or a file carry no colour codes (here every tracing line of a failing `outbox status`,
/// with `HULE_LOG=debug` so that there are some).
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hule"))
        .args([
            "outbox",
            "status",
            "--database-url",
            "postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dno_such_schema_here",
        ])
        .env("HULE_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .expect("run hule");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEBUG"), "tracing lines to look at: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in a piped log: {err:?}"
    );
}
