//! The exactly-once example, run as its binary on the real broker and PostgreSQL (a schema of its own): 20
//! spellcheck results, one of them delivered twice, a record that is not JSON and a failed spellcheck its handler
//! refuses. Each result's note and notification exist once; the refused one left neither (its transaction was
//! rolled back) and is a dead letter with the handler's reason, as is the broken record; SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hule_contracts::enums::ProcessingStatus;
use hule_contracts::naming::dlq_topic;
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_contracts::{Event, EventEnvelope, Headers, Timestamp};
use hule_kafka::testkit::{Backend, TestKafka};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

const RESULTS: usize = 20;

/// A spellcheck result of essay `n`, as the spellchecker publishes it: the envelope, its key and headers.
fn result(
    n: usize,
    status: ProcessingStatus,
) -> (
    EventEnvelope<SpellcheckPhaseCompletedV1>,
    String,
    Headers,
    Vec<u8>,
) {
    let correlation = Uuid::new_v4();
    let envelope = EventEnvelope::of(
        SpellcheckPhaseCompletedV1 {
            entity_id: format!("essay-{n:03}"),
            batch_id: format!("batch-{}", n % 3),
            correlation_id: correlation.to_string(),
            status,
            corrected_text_storage_id: Some(format!("corrected-{n}")),
            error_code: (status == ProcessingStatus::Failed)
                .then(|| "SPELLCHECK_TIMEOUT".to_owned()),
            processing_duration_ms: 100 + n as i64,
            timestamp: Timestamp::from_datetime(chrono_now()),
        },
        Uuid::new_v4(),
        Timestamp::from_datetime(chrono_now()),
        "spellchecker_service",
        correlation,
    );
    let rows = hule_outbox::prepare::prepare(&envelope, &Default::default()).expect("prepare");
    let row = &rows[0];
    let headers = Headers::from_json(&row.headers).expect("headers");
    (
        envelope,
        row.event_key.clone(),
        headers,
        row.event_data.clone().into_bytes(),
    )
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// Every record of `topic` from its start, read until `want` arrived (or 60 s passed) and then until nothing more
/// came for 2 s, so that an extra record (a duplicate) is seen too.
fn read_all(brokers: &str, topic: &str, want: usize) -> Vec<(Vec<u8>, Headers)> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("verify-{}", Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while (got.len() < want || quiet_since.elapsed() < Duration::from_secs(2))
        && Instant::now() < deadline
    {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            quiet_since = Instant::now();
            got.push((
                m.payload().unwrap_or_default().to_vec(),
                hule_kafka::consumer::delivery_of(&m).headers,
            ));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_result_gets_one_note_and_one_notification_and_refusals_leave_nothing() {
    let kafka = TestKafka::start(Backend::Real, 1);
    let brokers = kafka.bootstrap_servers();
    let source = Event::SpellcheckPhaseCompleted.topic();
    let notifications = Event::TeacherNotificationRequested.topic();
    kafka
        .create_topics(
            [
                (source.to_owned(), 3),
                (dlq_topic(source), 1),
                (notifications.to_owned(), 3),
            ],
            1,
        )
        .await
        .expect("topics");

    let schema = format!("hule_example_{}", Uuid::new_v4().simple());
    let base = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (scripts/setup.sh starts it)");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let url = format!("{base}?options=-csearch_path%3D{schema}");

    // The records: 20 results, the first sent twice, a broken record, a failed spellcheck.
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let send = |key: String, headers: Headers, value: Vec<u8>| {
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(source)
                        .key(&key)
                        .payload(&value)
                        .headers(hule_kafka::consumer::owned_headers(&headers)),
                    Duration::from_secs(10),
                )
                .await
                .expect("send");
        }
    };
    let mut correlations = std::collections::BTreeSet::new();
    let mut first = None;
    for n in 0..RESULTS {
        let (envelope, key, headers, value) = result(n, ProcessingStatus::Completed);
        correlations.insert(envelope.correlation_id.to_string());
        if n == 0 {
            first = Some((key.clone(), headers.clone(), value.clone()));
        }
        send(key, headers, value).await;
    }
    let (key, headers, value) = first.expect("the first record");
    send(key, headers, value).await;
    send(
        "essay-999".into(),
        Headers(Vec::new()),
        b"{not json".to_vec(),
    )
    .await;
    let (refused, key, headers, value) = result(RESULTS, ProcessingStatus::Failed);
    send(key, headers, value).await;

    let mut service = Command::new(env!("CARGO_BIN_EXE_hule-example-exactly-once"))
        .env("HULE_BROKERS", &brokers)
        .env("DATABASE_URL", &url)
        .env("GROUP", format!("feedback-{}", Uuid::new_v4().simple()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let stderr = service.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let lines = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().expect("lock").push(line);
        }
    });

    // Its notifications and dead letters, read from the topics while it runs.
    let relayed = read_all(&brokers, notifications, RESULTS);
    let dead = read_all(&brokers, &dlq_topic(source), 2);
    let killed = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = service.wait().expect("wait");
    reader.join().expect("reader");
    let log = log.lock().expect("lock").join("\n");
    assert!(
        status.success(),
        "the service did not stop cleanly ({status}):\n{log}"
    );
    assert!(log.contains("consumer ready"), "a ready line:\n{log}");
    assert!(log.contains("stopped after"), "a stop line:\n{log}");

    // One note per result, none for the refused one; one inbox row per handled event.
    let count = |sql: String| {
        let admin = &admin;
        async move {
            admin
                .query_one(&sql, &[])
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };
    assert_eq!(
        count(format!("SELECT count(*) FROM {schema}.feedback_notes")).await,
        RESULTS as i64,
        "{log}"
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM {schema}.feedback_notes WHERE essay_id = 'essay-{RESULTS:03}'"
        ))
        .await,
        0,
        "the refused result's note was rolled back"
    );
    assert_eq!(
        count(format!("SELECT count(*) FROM {schema}.hule_inbox")).await,
        RESULTS as i64
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM {schema}.event_outbox WHERE published_at IS NULL"
        ))
        .await,
        0,
        "everything committed was relayed"
    );

    // One notification per result, continuing its request; none for the refused one.
    assert_eq!(relayed.len(), RESULTS, "{log}");
    let continued: std::collections::BTreeSet<String> = relayed
        .iter()
        .map(|(value, _)| {
            let v: serde_json::Value = serde_json::from_slice(value).expect("envelope");
            assert_eq!(v["event_type"], notifications);
            assert_eq!(v["source_service"], "feedback_service");
            v["correlation_id"]
                .as_str()
                .expect("correlation")
                .to_owned()
        })
        .collect();
    assert_eq!(
        continued, correlations,
        "each notification carries its result's correlation id"
    );
    assert!(!continued.contains(&refused.correlation_id.to_string()));

    // The broken record and the refused one are dead letters, with their reasons.
    let reasons: std::collections::BTreeMap<String, String> = dead
        .iter()
        .map(|(value, _)| {
            let v: serde_json::Value = serde_json::from_slice(value).expect("dead letter");
            (
                v["error_type"].as_str().expect("type").to_owned(),
                v["error_message"].as_str().expect("message").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        dead.len(),
        2,
        "two dead letters, the duplicate not among them: {reasons:?}"
    );
    assert!(reasons.contains_key("invalid_envelope"), "{reasons:?}");
    assert!(
        reasons
            .get("permanent_error")
            .is_some_and(|m| m.contains("no feedback to give")),
        "{reasons:?}"
    );
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
}
