//! End-to-end tests of the `hule` binary.

use std::process::{Command, Stdio};

use hule_contracts::EVENTS;

mod common;
use common::{hule, unrelated_ca};

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

/// `hule relay --config FILE` (TOML) on the real broker: the database, service name, batch size and the `[kafka]`
/// table come from the file, a flag wins over it; SIGTERM ends the relay after the batch in flight. An unknown key
/// in the file is refused with the file's name and the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_reads_its_configuration_file_and_flags_win() {
    use hule_outbox::prepare::{prepare, EnqueueOptions};
    use hule_outbox::store::OutboxStore;
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    let topic = hule_contracts::Event::BatchEssaysRegistered.topic();
    cluster
        .create_topics([(topic.to_owned(), 3)], 1)
        .await
        .expect("topic");
    let dir = std::env::temp_dir().join(format!(
        "hule-relay-config-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("outbox.db");
    let outbox = hule_outbox::SqliteOutbox::open(&db).expect("outbox");
    {
        let mut conn = hule_outbox::sqlite::open(outbox.path()).expect("conn");
        let tx = conn.transaction().expect("tx");
        for i in 0..50u128 {
            let env = hule_contracts::examples::example_envelope(
                hule_contracts::Event::BatchEssaysRegistered,
                uuid::Uuid::from_u128(i + 1),
                uuid::Uuid::from_u128(7),
                hule_contracts::Timestamp::from_datetime(chrono::Utc::now()),
            )
            .expect("example")
            .map_data(|d| match d {
                hule_contracts::TypedEvent::BatchEssaysRegistered(p) => p,
                _ => unreachable!("the example of BATCH_ESSAYS_REGISTERED"),
            });
            hule_outbox::sqlite::enqueue(
                &tx,
                &prepare(&env, &EnqueueOptions::default()).expect("prep"),
            )
            .expect("enqueue");
        }
        tx.commit().expect("commit");
    }
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nservice = \"from-the-file\"\nbatch_size = 7\n\n[kafka]\nbrokers = \"{}\"\n\n[kafka.properties]\n\"client.id\" = \"hule-relay-config-test\"\n",
            db.display(),
            cluster.bootstrap_servers()
        ),
    )
    .expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_hule"))
        .args([
            "relay",
            "--config",
            config.to_str().expect("path"),
            "--service",
            "from-the-flag",
        ])
        .env_remove("HULE_BROKERS")
        .env_remove("HULE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hule relay");
    let started = std::time::Instant::now();
    while outbox.depth().await.expect("depth") > 0 {
        assert!(
            started.elapsed().as_secs() < 60,
            "the relay did not drain the outbox"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("relay exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("relay[from-the-flag]"),
        "the flag wins over the file: {err}"
    );
    assert!(
        err.contains("published 50 in 8 batches"),
        "batch_size 7 from the file: {err}"
    );

    std::fs::write(&config, "database_url = \"sqlite:///x\"\nbatchsize = 7\n").expect("write");
    let (code, _, err) = hule(&["relay", "--config", config.to_str().expect("path")], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("relay.toml") && err.contains("batchsize"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `hule outbox status` over TLS: `verify-full` against the CA `scripts/setup.sh` made works; a CA that signed
/// nothing fails with exit 2 and says it is the certificate; the password of the URL is never printed.
#[test]
fn outbox_status_over_tls_verifies_the_server_certificate() {
    let ca = std::env::var("HULE_TEST_PG_CA")
        .unwrap_or_else(|_| "/var/lib/postgresql/hule-tls/ca.pem".into());
    let schema = format!("hule_tls_{}", uuid::Uuid::new_v4().simple());
    let url = format!(
        "postgres://postgres:never-shown@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert={ca}&options=-csearch_path%3D{schema}"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let admin = hule_pg::connect("postgres://postgres@127.0.0.1:5432/test")
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (scripts/setup.sh)");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema");
        // An outbox to look at (`outbox status` only reads).
        hule_outbox::PgOutbox::connect(&format!(
            "postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        ))
        .await
        .expect("migrate");
    });
    let (code, out, err) = hule(&["outbox", "status", "--database-url", &url], None);
    assert_eq!(code, 0, "{out}\n{err}");
    let dir = std::env::temp_dir().join(format!("hule-wrong-ca-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let wrong_ca = unrelated_ca(&dir, "ca");
    let wrong = url.replace(&ca, &wrong_ca.display().to_string());
    let (code, out, err) = hule(&["outbox", "status", "--database-url", &wrong], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("sslmode verify-full") && err.contains("certificate verify failed"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains("never-shown"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
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
    assert!(out.contains("released 0 failed row(s)"), "{out}");
    let (code, _, _) = hule(&["outbox", "retry", "--database-url", &url], None);
    assert_eq!(code, 2);
    // A row parked for good (too large) holding back its key: discarded by seq with a reason, then the key goes on.
    let rows = hule_outbox::testkit::numbered_rows(0..3, 1).expect("rows");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let first = rt.block_on(async {
        use hule_outbox::store::OutboxStore;
        let mut conn = hule_outbox::sqlite::open(&db).expect("conn");
        let tx = conn.transaction().expect("tx");
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enqueue");
        tx.commit().expect("commit");
        let store = hule_outbox::SqliteOutbox::open(&db).expect("open");
        let batch = store.claim(10).await.expect("claim");
        let parks = hule_outbox::store::FailurePolicy {
            max_attempts: 1,
            ..Default::default()
        };
        store
            .failed(
                vec![(batch[0].seq, 1, "Broker: Message size too large".into())],
                parks,
            )
            .await
            .expect("failed");
        assert!(
            store.claim(10).await.expect("claim").is_empty(),
            "the key is held back"
        );
        batch[0].seq
    });
    let (code, _, err) = hule(
        &[
            "outbox",
            "discard",
            "--database-url",
            &url,
            "--seq",
            &first.to_string(),
        ],
        None,
    );
    assert_eq!(code, 2, "a discard without a reason is refused: {err}");
    let (code, out, err) = hule(
        &[
            "outbox",
            "discard",
            "--database-url",
            &url,
            "--seq",
            &first.to_string(),
            "--reason",
            "too large for the topic",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["discarded"][0]["seq"], first, "{out}");
    assert_eq!(
        report["discarded"][0]["last_error"],
        "Broker: Message size too large"
    );
    assert!(
        err.contains("outbox row discarded") && err.contains("too large for the topic"),
        "logged: {err}"
    );
    rt.block_on(async {
        use hule_outbox::store::OutboxStore;
        let store = hule_outbox::SqliteOutbox::open(&db).expect("open");
        assert_eq!(
            store.claim(10).await.expect("claim").len(),
            2,
            "the key goes on"
        );
    });
    let kept: i64 = hule_outbox::sqlite::open(&db)
        .expect("conn")
        .query_row(
            "SELECT count(*) FROM hule_outbox_discarded WHERE reason = 'too large for the topic'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(kept, 1, "the row is kept aside with its reason");
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

/// The demo on the real broker (PostgreSQL outboxes, duplicates and poison), twice in a row: the second run must not
/// see the first run's records (its groups start at the end of the topics), and `--broker-faults` is refused there.
#[test]
fn demo_reconciles_twice_on_the_real_broker() {
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    let brokers = cluster.bootstrap_servers();
    let url = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    for _ in 0..2 {
        let r = demo_report(&["--brokers", &brokers, "--database-url", &url]);
        assert_reconciled(&r);
        assert_eq!(r["outbox"], "postgres");
    }
    let (code, _, err) = hule(
        &[
            "demo",
            "--brokers",
            &brokers,
            "--broker-faults",
            "--no-progress",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--broker-faults needs the embedded cluster"),
        "{err}"
    );
}

/// `hule demo --redis-url` deduplicates in a password-protected Redis (an ACL user and database 3, on a server the
/// test starts); a wrong password fails at once with exit 2, saying so, without printing the password.
#[test]
fn demo_deduplicates_in_a_password_protected_redis() {
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let acl = format!(">{secret}");
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--user", "default", "off", "--user", "hule", "on", &acl, "~*", "&*", "+@all",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed().as_secs() < 10,
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = format!("redis://hule:{secret}@127.0.0.1:{port}/3");
    let r = demo_report(&["--redis-url", &url]);
    assert_reconciled(&r);
    assert_eq!(
        r["dedup"],
        format!("redis (redis://hule:***@127.0.0.1:{port}/3)")
    );
    let wrong = format!("redis://hule:wrong-{secret}@127.0.0.1:{port}/3");
    let (code, out, err) = hule(&["demo", "--redis-url", &wrong, "--no-progress"], None);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("--redis-url") && err.to_lowercase().contains("authentication failed"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains(&secret), "{err}");
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

/// On the mock cluster and on the real broker (`hule_kafka::testkit`): dead letters listed, shown, replayed to their
/// key's partition, and applied once by a deduplicating consumer when replayed twice.
async fn dlq_list_show_and_replay(backend: hule_kafka::testkit::Backend) {
    use hule_consumer::{DeadLetter, Delivery, Failure};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers as _, Message as _};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientConfig;

    let source = "huleedu.batch.essays.registered.v1";
    let dlq = format!("{source}.dlq.v1");
    let cluster = hule_kafka::testkit::TestKafka::start(backend, 1);
    cluster
        .create_topics([(source.to_owned(), 2), (dlq.clone(), 1)], 1)
        .await
        .expect("topics");
    let brokers = cluster.bootstrap_servers();

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let mut ids = Vec::new();
    for i in 0..6u128 {
        let id = uuid::Uuid::from_u128(1000 + i);
        ids.push(id);
        let (_, value) = {
            let (code, out, _) = hule(&["envelope", "example", "BATCH_ESSAYS_REGISTERED"], None);
            assert_eq!(code, 0);
            let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
            v["event_id"] = serde_json::json!(id.to_string());
            v["data"]["entity_id"] = serde_json::json!(format!("batch-{i}"));
            (code, serde_json::to_vec(&v).expect("vec"))
        };
        let delivery = Delivery {
            topic: source.into(),
            partition: 0,
            offset: i as i64,
            key: Some(format!("batch-{i}").into_bytes()),
            headers: hule_contracts::Headers(vec![("event_id".into(), id.to_string())]),
            invalid_headers: Vec::new(),
            payload: Some(value),
        };
        let failure = if i < 4 {
            Failure::Permanent("refused".into())
        } else {
            Failure::Exhausted {
                attempts: 4,
                last: "timeout".into(),
            }
        };
        let letter = DeadLetter::build(&delivery, &failure, "svc");
        let headers = hule_kafka::consumer::owned_headers(&letter.headers);
        producer
            .send(
                BaseRecord::to(&letter.topic)
                    .key(letter.key.as_deref().expect("key"))
                    .payload(&letter.value)
                    .headers(headers),
            )
            .expect("send");
    }
    producer
        .flush(std::time::Duration::from_secs(10))
        .expect("flush");

    let (code, out, err) = hule(&["dlq", "list", "--brokers", &brokers], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("permanent_error") && out.contains("retries_exhausted"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("permanent_error"))
        .expect("line");
    assert!(line.split_whitespace().any(|w| w == "4"), "{line}");

    let target = ids[2].to_string();
    let (code, out, err) = hule(
        &[
            "dlq",
            "show",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--event-id",
            &target,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(shown["record"]["event_id"], target.as_str());
    assert_eq!(shown["key"], "batch-2");

    let (code, out, _) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--reason",
            "retries_exhausted",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains("2 record(s) would be replayed"), "{out}");

    let (code, out, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--reason",
            "retries_exhausted",
            "--rate",
            "100",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replayed 2 record(s)"), "{out}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", cluster.group("verify-replay"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[source]).expect("subscribe");
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    while got.len() < 2 && start.elapsed() < std::time::Duration::from_secs(20) {
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(100)) {
            let replayed = m.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == "X-Replayed-From")
                    .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            });
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().expect("value")).expect("envelope");
            let key = m.key().expect("key");
            assert_eq!(
                m.partition() as u32,
                hule_contracts::keys::partition_for(key, 2),
                "a replayed record lands on its key's partition (murmur2, as the relay and Java clients)"
            );
            got.push((
                String::from_utf8_lossy(key).into_owned(),
                v["event_id"].as_str().expect("id").to_owned(),
                replayed,
            ));
        }
    }
    got.sort();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, "batch-4");
    assert_eq!(got[0].1, ids[4].to_string());
    assert!(
        got[0]
            .2
            .as_deref()
            .is_some_and(|r| r.starts_with(&format!("{dlq}:0:"))),
        "{:?}",
        got[0]
    );

    // Replaying the same dead letters again puts the same events on the topic twice; a deduplicating consumer
    // applies each once.
    let (code, _, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--reason",
            "retries_exhausted",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let applied = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let metrics = hule_consumer::ConsumerMetrics::detached();
    let a = applied.clone();
    let router = hule_consumer::Router::new().on(
        hule_consumer::TopicChoice::Standard,
        move |ctx: hule_consumer::Context, _p: hule_contracts::payloads::BatchEssaysRegistered| {
            let a = a.clone();
            async move {
                a.lock().expect("lock").push(ctx.event_id);
                Ok(())
            }
        },
    );
    let stack = hule_consumer::standard_stack(
        router,
        "replay-test",
        Some(std::sync::Arc::new(hule_consumer::MemoryDedup::new())),
        std::sync::Arc::new(hule_consumer::MemorySink::default()),
        metrics.clone(),
    )
    .expect("stack");
    {
        let stop_rx = tokio_util::sync::CancellationToken::new();
        let stop_tx = stop_rx.clone();
        let cfg =
            hule_kafka::consumer::ConsumerConfig::new(&brokers, &cluster.group("replay-consumer"));
        let m = metrics.clone();
        let driver = tokio::spawn(async move {
            hule_kafka::consumer::run_consumer(&cfg, &[source], stack, m, stop_rx).await
        });
        let start = std::time::Instant::now();
        while metrics.outcomes(source, "handled") + metrics.outcomes(source, "duplicate") < 4.0 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "replayed records not consumed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        stop_tx.cancel();
        driver.await.expect("join").expect("driver");
    }
    let mut applied = applied.lock().expect("lock").clone();
    applied.sort();
    assert_eq!(
        applied,
        vec![ids[4], ids[5]],
        "each replayed event applied exactly once"
    );
    assert_eq!(metrics.duplicates("memory"), 2.0);

    let (code, _, err) = hule(
        &[
            "dlq",
            "replay",
            "--brokers",
            &brokers,
            "--topic",
            &dlq,
            "--since",
            "yesterday",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("--since"), "{err}");
}

hule_kafka::on_both_backends!(dlq_list_show_and_replay);

/// `hule topics apply` on the real broker: a step the cluster refuses exits 1; every registered topic (standard,
/// legacy, dead-letter) is created with its class settings and a second plan finds nothing to do; a config drift and
/// a missing partition are found by `plan` and corrected by `apply`. The mock cluster has no admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_apply_creates_corrects_drift_and_fails_loudly_on_the_real_broker() {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    let brokers = cluster.bootstrap_servers();
    cluster
        .delete_topics_with_prefix("huleedu.")
        .await
        .expect("clean cluster");
    let want = [
        "--brokers",
        &brokers,
        "--partitions",
        "3",
        "--replication",
        "1",
        "--legacy",
        "--dlq",
    ];
    let with = |cmd: &str, extra: &[&str]| -> Vec<String> {
        let mut v = vec!["topics".to_owned(), cmd.to_owned()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        hule(&refs, None)
    };

    // Replication 3 on a one-broker cluster: every create is refused, and apply says so with exit 1.
    let (code, out, err) = run(with(
        "apply",
        &[
            "--brokers",
            &brokers,
            "--partitions",
            "3",
            "--replication",
            "3",
        ],
    ));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("failed") && err.contains("step(s) failed"),
        "{out}\n{err}"
    );

    let (code, out, err) = run(with("apply", &want));
    assert_eq!(code, 0, "{out}\n{err}");
    let created = out.lines().filter(|l| l.starts_with("created ")).count();
    assert!(
        created > 140,
        "standard, legacy and DLQ topics: {created}\n{out}"
    );
    let (code, out, err) = run(with("plan", &want));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("nothing to do"), "{out}");

    // Drift: a retention changed by hand and a topic with one partition too few.
    let topic = hule_contracts::Event::BatchEssaysRegistered.topic();
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(20)));
    let drift = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "1000");
    for r in admin.alter_configs([&drift], &opts).await.expect("alter") {
        r.expect("altered");
    }
    let dlq_topic = format!("{topic}.dlq.v1");
    admin
        .delete_topics(&[&dlq_topic], &opts)
        .await
        .expect("delete")
        .into_iter()
        .for_each(|r| {
            r.expect("deleted");
        });
    let start = std::time::Instant::now();
    let mut plan_out;
    loop {
        let (code, out, err) = run(with("plan", &want));
        assert_eq!(code, 0, "{err}");
        plan_out = out;
        if plan_out.contains(&format!("+ create {dlq_topic}")) || start.elapsed().as_secs() > 30 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        plan_out.contains(&format!("~ configure {topic}: retention.ms 1000 → ")),
        "{plan_out}"
    );
    assert!(
        plan_out.contains(&format!("+ create {dlq_topic}")),
        "{plan_out}"
    );
    assert!(plan_out.contains("2 change(s)"), "{plan_out}");
    let (code, out, err) = run(with("apply", &want));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("configured {topic}: retention.ms")),
        "{out}"
    );
    let start = std::time::Instant::now();
    loop {
        let (code, out, err) = run(with("plan", &want));
        assert_eq!(code, 0, "{err}");
        if out.starts_with("nothing to do") {
            break;
        }
        assert!(start.elapsed().as_secs() < 30, "drift not corrected: {out}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Kafka with SASL_SSL (SCRAM-SHA-256) and SASL_PLAINTEXT (PLAIN, SCRAM-SHA-512) listeners, a cluster of the test's
/// own (`scripts/kafka.sh start --secure`): topics apply/plan, dlq list and the demo work through `--kafka-config`
/// and `-X`; a wrong password and an untrusted CA each fail within seconds with exit 2 and a one-line error that
/// says which. No output of any of these runs contains the password.
#[test]
fn secure_listeners_work_and_bad_credentials_or_ca_fail_fast_without_leaking_the_password() {
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    // Ports 19092 (broker), 19192 (controller), 19292 (SASL_PLAINTEXT), 19392 (SASL_SSL): below Linux's ephemeral
    // range (32768–60999), where a client socket of another test could hold a port the broker needs (seen in CI).
    let cluster = hule_kafka::testkit::ScriptCluster::start_secure(1, 19092, &password);
    let ssl = cluster.sasl_ssl_bootstrap();
    let plain = cluster.sasl_plaintext_bootstrap();
    let ssl_file = cluster.dir().join("client-sasl-ssl.properties");
    let ssl_file = ssl_file.to_str().expect("path");
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let (code, out, err) = hule(args, None);
        outputs.push(format!("{out}\n{err}"));
        (code, out, err)
    };
    let want = ["--partitions", "2", "--replication", "1", "--dlq"];

    let mut apply = vec![
        "topics",
        "apply",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
    ];
    apply.extend_from_slice(&want);
    let (code, out, err) = run(&apply);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("created huleedu.batch.essays.registered.v1"),
        "{out}"
    );
    let mut plan = vec![
        "topics",
        "plan",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
    ];
    plan.extend_from_slice(&want);
    let (code, out, err) = run(&plan);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("nothing to do"), "{out}");

    // SASL_PLAINTEXT with PLAIN, entirely from -X.
    let pw = format!("sasl.password={password}");
    let x_plain = [
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=PLAIN",
        "-X",
        "sasl.username=hule",
        "-X",
        &pw,
    ];
    let mut list = vec!["dlq", "list", "--brokers", &plain];
    list.extend_from_slice(&x_plain);
    let (code, out, err) = run(&list);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("no dead letters"), "{out}");

    // The demo end to end over SASL_SSL, with poison in the DLQ.
    let (code, out, err) = run(&[
        "demo",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
        "--batches",
        "3",
        "--essays",
        "6",
        "--poison-rate",
        "0.2",
        "--no-progress",
        "--timeout",
        "90",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("all counts reconcile"), "{out}");

    // Wrong password: authentication, fast.
    let started = std::time::Instant::now();
    let (code, _, err) = run(&[
        "dlq",
        "list",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
        "-X",
        "sasl.password=not-the-password",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("authentication failed"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "fails fast"
    );
    // A CA that did not sign the brokers' certificate: TLS, fast.
    let other = unrelated_ca(cluster.dir(), "other-ca");
    let ca = format!("ssl.ca.location={}", other.display());
    let started = std::time::Instant::now();
    let (code, _, err) = run(&[
        "topics",
        "plan",
        "--brokers",
        &ssl,
        "--kafka-config",
        ssl_file,
        "-X",
        &ca,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("TLS handshake failed") && err.contains("certificate verify failed"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "fails fast"
    );
    // A malformed -X does not echo what might be a secret.
    let (code, _, err) = run(&[
        "dlq",
        "list",
        "--brokers",
        &ssl,
        "-X",
        &format!("sasl.password{password}"),
    ]);
    assert_eq!(code, 2, "{err}");

    // --help of every command that takes a URL, with URLs holding the password in the environment.
    for cmd in [
        &["relay", "--help"][..],
        &["outbox", "status", "--help"],
        &["demo", "--help"],
        &["bench", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hule"))
            .args(cmd)
            .env("HULE_DATABASE_URL", format!("postgres://u:{password}@h/db"))
            .env("HULE_REDIS_URL", format!("redis://:{password}@h:6379"))
            .output()
            .expect("help");
        assert!(out.status.success());
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    for o in &outputs {
        assert!(
            !o.contains(&password),
            "the password appeared in output:\n{o}"
        );
    }
}

#[test]
fn topics_plan_against_a_described_cluster() {
    let dir = std::env::temp_dir().join(format!("hule-topics-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("cluster.json");
    std::fs::write(
        &file,
        r#"{
          "huleedu.assessment.result.published.v1": {"partitions": 3, "replication": 3,
              "configs": {"cleanup.policy": "delete", "retention.ms": "604800000"}},
          "huleedu.batch.spellcheck.phase.completed.v1": {"partitions": 6, "replication": 3,
              "configs": {"cleanup.policy": "delete", "retention.ms": "86400000"}},
          "huleedu.els.essay.slot.assigned.v1": {"partitions": 6, "replication": 3,
              "configs": {"cleanup.policy": "delete", "retention.ms": "86400000"}},
          "huleedu.els.essay.slot.assigned.v1.dlq.v1": {"partitions": 1, "replication": 3,
              "configs": {"cleanup.policy": "compact", "retention.ms": "2592000000"}},
          "not.ours.v1": {"partitions": 1, "replication": 1}
        }"#,
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    let (code, out, err) = hule(&["topics", "plan", "--described", path, "--dlq"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("~ configure huleedu.assessment.result.published.v1: cleanup.policy delete → compact,delete"), "{out}");
    assert!(
        out.contains("~ partitions of huleedu.assessment.result.published.v1: 3 → 6"),
        "{out}"
    );
    assert!(
        out.contains(
            "+ create huleedu.assessment.result.published.v1.dlq.v1 (dead-letter, 1 partitions"
        ),
        "{out}"
    );
    // Every class: a standard topic's retention and a dead-letter topic's cleanup policy are corrected too.
    assert!(
        out.contains(
            "~ configure huleedu.els.essay.slot.assigned.v1: retention.ms 86400000 → 2592000000"
        ),
        "{out}"
    );
    assert!(
        out.contains("~ configure huleedu.els.essay.slot.assigned.v1.dlq.v1: cleanup.policy compact → delete"),
        "{out}"
    );
    assert!(
        !out.contains("+ create huleedu.batch.spellcheck.phase.completed.v1 "),
        "already as wanted: {out}"
    );
    assert!(!out.contains("not.ours"), "{out}");

    let (code, out, _) = hule(&["topics", "plan", "--described", path, "--json"], None);
    assert_eq!(code, 0);
    let changes: serde_json::Value = serde_json::from_str(&out).expect("json");
    let creates = changes
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["action"] == "create")
        .count();
    let distinct: std::collections::BTreeSet<&str> =
        hule_contracts::EVENTS.iter().map(|e| e.topic).collect();
    assert_eq!(
        creates,
        distinct.len() - 3,
        "every registry topic but the three described"
    );

    std::fs::write(&file, "{not json").expect("write");
    let (code, _, err) = hule(&["topics", "plan", "--described", path], None);
    assert_eq!(code, 2);
    assert!(err.contains("is not a cluster description"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
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

/// A fresh `topic` with `partitions` on the real broker, its bootstrap address and a producer for it.
async fn real_topic(
    topic: &str,
    partitions: i32,
) -> (
    hule_kafka::testkit::TestKafka,
    String,
    rdkafka::producer::BaseProducer,
) {
    let cluster = hule_kafka::testkit::TestKafka::start(hule_kafka::testkit::Backend::Real, 1);
    cluster
        .create_topics([(topic.to_owned(), partitions)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let producer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    (cluster, brokers, producer)
}

/// `hule lag` on the real broker: committed offset, end offset and lag per partition of a group, its total, a group
/// without offsets, and JSON. (The mock cluster answers no group listing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_reports_each_partition_and_the_group_total_on_the_real_broker() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::producer::{BaseRecord, Producer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let topic = "huleedu.batch.essays.registered.v1";
    let (cluster, brokers, producer) = real_topic(topic, 2).await;
    for p in [0, 0, 0, 0, 1, 1, 1, 1, 1, 1] {
        producer
            .send(BaseRecord::<(), [u8]>::to(topic).partition(p).payload(b"x"))
            .expect("send");
    }
    producer
        .flush(std::time::Duration::from_secs(10))
        .expect("flush");
    // The group has read 1 record of partition 0 and 2 of partition 1: lag 3 + 4.
    let group = cluster.group("lag");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(1))
        .expect("p0");
    tpl.add_partition_offset(topic, 1, Offset::Offset(2))
        .expect("p1");
    c.commit(&tpl, CommitMode::Sync).expect("commit");

    let (code, out, err) = hule(
        &["lag", "--brokers", &brokers, "--group", &group, "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows = v["partitions"].as_array().expect("partitions");
    assert_eq!(rows.len(), 2, "{v}");
    for (row, (p, committed, end, lag)) in rows.iter().zip([(0, 1, 4, 3), (1, 2, 6, 4)]) {
        assert_eq!(row["topic"], topic);
        assert_eq!(
            (
                row["partition"].as_i64(),
                row["committed"].as_i64(),
                row["end"].as_i64(),
                row["lag"].as_i64()
            ),
            (Some(p), Some(committed), Some(end), Some(lag)),
            "{row}"
        );
    }
    assert_eq!(v["groups"][0]["lag"], 7);

    let (code, out, err) = hule(&["lag", "--brokers", &brokers, "--group", &group], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("COMMITTED")
            && out.contains(&format!("group {group}: lag 7 over 2 partition(s)")),
        "{out}"
    );
    let none = cluster.group("never-committed");
    let (code, out, _) = hule(&["lag", "--brokers", &brokers, "--group", &none], None);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("group {none}: no committed offsets")),
        "{out}"
    );
    // Every group of the cluster, ours among them.
    let (code, out, err) = hule(&["lag", "--brokers", &brokers], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("group {group}: lag 7")), "{out}");
}

/// `hule tail` on the real broker: records decoded with their key, position and headers; an undecodable record is
/// shown with its error, not dropped; the event-id filter; the readable form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_decoded_and_undecodable_records_on_the_real_broker() {
    use rdkafka::producer::{BaseRecord, Producer};

    let topic = "huleedu.batch.essays.registered.v1";
    let (_cluster, brokers, producer) = real_topic(topic, 1).await;
    let ids = [uuid::Uuid::from_u128(0x7a11), uuid::Uuid::from_u128(0x7a12)];
    let mut values = Vec::new();
    for id in ids {
        let (code, out, _) = hule(&["envelope", "example", "BATCH_ESSAYS_REGISTERED"], None);
        assert_eq!(code, 0);
        let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["event_id"] = serde_json::json!(id.to_string());
        values.push(serde_json::to_vec(&v).expect("vec"));
    }
    values.insert(1, b"{\"not\": \"an envelope\"".to_vec());
    for v in &values {
        producer
            .send(BaseRecord::<str, [u8]>::to(topic).key("batch-1").payload(v))
            .expect("send");
    }
    producer
        .flush(std::time::Duration::from_secs(10))
        .expect("flush");

    let args = [
        "tail",
        "--brokers",
        &brokers,
        "BATCH_ESSAYS_REGISTERED",
        "--from-beginning",
    ];
    let (code, out, err) = hule(&[&args[..], &["--count", "3", "--json"]].concat(), None);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["envelope"]["event_id"], ids[0].to_string());
    assert_eq!(lines[0]["key"], "batch-1");
    assert_eq!(
        (lines[0]["partition"].as_i64(), lines[0]["offset"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(lines[1]["envelope"].is_null());
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid JSON")),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2]["envelope"]["event_id"], ids[1].to_string());

    let id = ids[1].to_string();
    let (code, out, _) = hule(
        &[&args[..], &["--count", "1", "--json", "--event-id", &id]].concat(),
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    assert!(out.contains(&id));

    let (code, out, _) = hule(&[&args[..], &["--count", "2"]].concat(), None);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("{topic}[0]@1 key=batch-1")) && out.contains("UNDECODABLE"),
        "{out}"
    );
}

/// `hule produce` on the real broker: a file with an invalid envelope sends nothing and says which line; valid
/// envelopes go out with the contract key and the standard headers (read back with `hule tail`); `--topic-mode
/// both` from standard input writes the standard and the legacy topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_validates_then_publishes_with_key_and_headers_on_the_real_broker() {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let event = hule_contracts::Event::BatchSpellcheckInitiateCommand;
    let (topic, legacy) = (event.topic(), event.def().legacy_topic);
    let (cluster, brokers, _producer) = real_topic(topic, 3).await;
    cluster
        .create_topics([(legacy.to_owned(), 1)], 1)
        .await
        .expect("legacy topic");
    let ids = [uuid::Uuid::from_u128(0x9001), uuid::Uuid::from_u128(0x9002)];
    let mut lines = Vec::new();
    for id in ids {
        let (code, out, _) = hule(&["envelope", "example", event.name()], None);
        assert_eq!(code, 0);
        let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["event_id"] = serde_json::json!(id.to_string());
        lines.push(v.to_string());
    }
    let dir = std::env::temp_dir().join(format!("hule-produce-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let end_of = |t: &str| -> i64 {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("consumer");
        let md = c
            .fetch_metadata(Some(t), std::time::Duration::from_secs(10))
            .expect("metadata");
        md.topics()[0]
            .partitions()
            .iter()
            .map(|p| {
                c.fetch_watermarks(t, p.id(), std::time::Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .sum()
    };

    // One invalid envelope: nothing sent, the line named.
    let bad_file = dir.join("bad.jsonl");
    let mut broken: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
    broken["data"]
        .as_object_mut()
        .expect("data")
        .remove("entity_id");
    std::fs::write(&bad_file, format!("{}\n{broken}\n", lines[0])).expect("write");
    let (code, _, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            bad_file.to_str().expect("path"),
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("line 2: ") && err.contains("entity_id") && err.contains("nothing was sent"),
        "{err}"
    );
    assert_eq!(end_of(topic), 0, "nothing may be sent");

    // Valid: both published, each line saying where.
    let good = dir.join("good.jsonl");
    std::fs::write(&good, lines.join("\n")).expect("write");
    let (code, out, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            good.to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines().all(|l| l.starts_with(&format!("{topic}["))),
        "{out}"
    );
    let (code, out, err) = hule(
        &[
            "tail",
            "--brokers",
            &brokers,
            topic,
            "--from-beginning",
            "--count",
            "2",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let mut seen = Vec::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let envelope = &v["envelope"];
        let decoded =
            hule_contracts::decode(Some(topic), envelope.to_string().as_bytes()).expect("decodes");
        let key = hule_contracts::keys::partition_key_of_typed(&decoded.data).expect("key");
        assert_eq!(v["key"], key, "the contract key: {v}");
        assert_eq!(v["headers"]["event_id"], envelope["event_id"], "{v}");
        assert_eq!(v["headers"]["event_type"], envelope["event_type"], "{v}");
        assert!(
            v["headers"][hule_contracts::headers::names::IDEMPOTENCY_KEY]
                .as_str()
                .is_some_and(|k| k.starts_with(topic)),
            "{v}"
        );
        seen.push(envelope["event_id"].as_str().expect("id").to_owned());
    }
    seen.sort();
    assert_eq!(seen, ids.map(|i| i.to_string()));

    // Both topics, from standard input.
    let (code, out, err) = hule(
        &[
            "produce",
            "--brokers",
            &brokers,
            "--topic-mode",
            "both",
            "-",
        ],
        Some(lines[0].as_bytes()),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{legacy}[0]@0")), "{out}");
    assert_eq!((end_of(topic), end_of(legacy)), (3, 1));
    std::fs::remove_dir_all(&dir).ok();
}
