//! The exactly-once example, run as its binary on the real broker and PostgreSQL (a schema of its own): 200
//! spellcheck results, one of them delivered twice, a record that is not JSON and a failed spellcheck its handler
//! refuses; the service is killed (SIGKILL) part-way and started again. Each result's note and inbox row exist
//! once (the notes table has no key of its own: only the inbox keeps a redelivery from applying twice), and one
//! notification per result; the refused one left nothing (its transaction was rolled back) and is a dead letter
//! with the handler's reason, as is the broken record; SIGTERM stops it cleanly.

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

const RESULTS: usize = 200;

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

/// The example's stderr, collected while it runs.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Log {
    fn text(&self) -> String {
        self.0.lock().expect("lock").join("\n")
    }
}

/// Starts the example on `group`.
fn start(brokers: &str, url: &str, group: &str) -> (std::process::Child, Log) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hule-example-exactly-once"))
        .env("HULE_BROKERS", brokers)
        .env("DATABASE_URL", url)
        .env("GROUP", group)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let stderr = child.stderr.take().expect("stderr");
    let log = Log::default();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.0.lock().expect("lock").push(line);
        }
    });
    (child, log)
}

/// SIGTERM, and the exit within 60 s (else SIGKILL and a failure).
fn stop(child: &mut std::process::Child, log: &Log) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("poll") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit 60 s after SIGTERM:\n{}", log.text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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

    // The records: 200 results, the first sent twice, a broken record, a failed spellcheck.
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
        Headers::default(),
        b"{not json".to_vec(),
    )
    .await;
    let (refused, key, headers, value) = result(RESULTS, ProcessingStatus::Failed);
    send(key, headers, value).await;

    let group = format!("feedback-{}", Uuid::new_v4().simple());
    // A count, 0 while the service has not created its table yet.
    let count = |sql: String| {
        let admin = &admin;
        async move {
            match admin.query_one(&sql, &[]).await {
                Ok(row) => row.get::<_, i64>(0),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
                Err(e) => panic!("count: {e}"),
            }
        }
    };
    let notes = || count(format!("SELECT count(*) FROM {schema}.feedback_notes"));

    // The first run is killed (SIGKILL: no drain, no offset commit) once a third of the results is applied; the
    // records it handled without committing their offsets are delivered again to the second run.
    let (mut first_run, first_log) = start(&brokers, &url, &group);
    let deadline = Instant::now() + Duration::from_secs(60);
    while notes().await < (RESULTS / 3) as i64 {
        assert!(
            Instant::now() < deadline,
            "the first run applied too little:\n{}",
            first_log.text()
        );
        assert!(
            first_run.try_wait().expect("poll").is_none(),
            "the first run ended:\n{}",
            first_log.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first_run.kill().expect("SIGKILL");
    first_run.wait().expect("reap");
    assert!(
        notes().await < RESULTS as i64,
        "the first run had finished before the kill: nothing left to redeliver"
    );

    let (mut second_run, log) = start(&brokers, &url, &group);
    let pending = || {
        count(format!(
            "SELECT count(*) FROM {schema}.event_outbox WHERE published_at IS NULL"
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while notes().await < RESULTS as i64 || pending().await > 0 {
        assert!(Instant::now() < deadline, "too few notes:\n{}", log.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every note's notification relayed: its notifications and dead letters, read from the topics (copies
    // included), while it still runs.
    let relayed = read_all(&brokers, notifications, RESULTS);
    let dead = read_all(&brokers, &dlq_topic(source), 2);
    let status = stop(&mut second_run, &log);
    let log = log.text();
    assert!(
        status.success(),
        "the service did not stop cleanly ({status}):\n{log}"
    );
    assert!(log.contains("consumer ready"), "a ready line:\n{log}");
    assert!(log.contains("stopped after"), "a stop line:\n{log}");

    // One note and one inbox row per result (none for the refused one): the redeliveries were skipped.
    assert_eq!(
        count(format!("SELECT count(*) FROM {schema}.feedback_notes")).await,
        RESULTS as i64,
        "{log}"
    );
    assert_eq!(
        count(format!(
            "SELECT count(DISTINCT event_id) FROM {schema}.feedback_notes"
        ))
        .await,
        RESULTS as i64
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

    // One notification per result, continuing its request, none for the refused one. The relay publishes at
    // least once (the kill may land between a publish and the deletion of its row): counted by event id.
    let mut events = std::collections::BTreeSet::new();
    let continued: std::collections::BTreeSet<String> = relayed
        .iter()
        .map(|(value, _)| {
            let v: serde_json::Value = serde_json::from_slice(value).expect("envelope");
            assert_eq!(v["event_type"], notifications);
            assert_eq!(v["source_service"], "feedback_service");
            events.insert(v["event_id"].as_str().expect("id").to_owned());
            v["correlation_id"]
                .as_str()
                .expect("correlation")
                .to_owned()
        })
        .collect();
    assert_eq!(events.len(), RESULTS, "one notification per result");
    assert_eq!(
        continued, correlations,
        "each notification carries its result's correlation id"
    );
    assert!(!continued.contains(&refused.correlation_id.to_string()));

    // The broken record and the refused one are dead letters, with their reasons; a dead letter is written at
    // least once too (a kill before the offset commit writes it again): counted by original record.
    let mut originals = std::collections::BTreeSet::new();
    let reasons: std::collections::BTreeMap<String, String> = dead
        .iter()
        .map(|(value, _)| {
            let v: serde_json::Value = serde_json::from_slice(value).expect("dead letter");
            originals.insert((
                v["original_partition"].to_string(),
                v["original_offset"].to_string(),
            ));
            (
                v["error_type"].as_str().expect("type").to_owned(),
                v["error_message"].as_str().expect("message").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        originals.len(),
        2,
        "two records dead-lettered, the duplicate not among them: {reasons:?}"
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
