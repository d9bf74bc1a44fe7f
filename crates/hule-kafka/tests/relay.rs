//! The outbox relay end to end: SQLite and PostgreSQL outboxes into Kafka, read back by an independent consumer.
//! Each test runs twice, on librdkafka's mock cluster (`mock::…`) and on the real broker at `$HULE_TEST_KAFKA`
//! (`real::…`, see `hule_kafka::testkit`); the fault-injection test needs the mock cluster's controls and runs on it
//! only (its real-broker counterpart, a broker killed mid-drain, is `tests/broker_faults.rs`).
//! PostgreSQL must be running on 127.0.0.1:5432 (scripts/setup.sh starts it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hule_contracts::enums::ProcessingStatus;
use hule_contracts::headers::REQUIRED;
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_contracts::{decode, Event, EventEnvelope, Timestamp, TypedEvent};
use hule_kafka::testkit::{Backend, TestKafka};
use hule_kafka::{KafkaPublisher, ProducerConfig};
use hule_outbox::prepare::{prepare, EnqueueOptions, TopicMode};
use hule_outbox::relay::{relay_once, run_relay, RelayConfig, RelayStats};
use hule_outbox::store::{FailurePolicy, OutboxStore};
use hule_outbox::{PgOutbox, SqliteOutbox};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use uuid::Uuid;

const PARTITIONS: i32 = 12;

fn envelope(key: &str, n: i64, note: &str) -> EventEnvelope<SpellcheckPhaseCompletedV1> {
    let at = Timestamp::from_datetime(chrono::Utc::now());
    let payload = SpellcheckPhaseCompletedV1 {
        entity_id: format!("essay-{n}"),
        batch_id: key.to_owned(),
        correlation_id: "c".into(),
        status: ProcessingStatus::Completed,
        corrected_text_storage_id: None,
        error_code: Some(note.to_owned()),
        processing_duration_ms: n,
        timestamp: at,
    };
    EventEnvelope::new(
        Uuid::new_v4(),
        Event::SpellcheckPhaseCompleted.topic(),
        at,
        "test",
        Uuid::new_v4(),
        payload,
    )
}

/// A record read back: (topic, key, event id, counter, headers).
struct Read {
    topic: String,
    partition: i32,
    key: String,
    event_id: Uuid,
    counter: i64,
    headers: HashMap<String, String>,
}

fn read_all(brokers: &str, topics: &[&str], want: usize, settle: Duration) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "verify")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(t, p, Offset::Beginning)
                .expect("tpl");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                quiet_since = None;
                let value = m.payload().expect("value");
                let env = decode::decode(Some(m.topic()), value).expect("record decodes");
                let counter = match &env.data {
                    TypedEvent::SpellcheckPhaseCompleted(p) => p.processing_duration_ms,
                    _ => -1,
                };
                let mut headers = HashMap::new();
                if let Some(h) = m.headers() {
                    for hd in h.iter() {
                        headers.insert(
                            hd.key.to_owned(),
                            String::from_utf8_lossy(hd.value.unwrap_or_default()).into(),
                        );
                    }
                }
                out.push(Read {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    key: String::from_utf8_lossy(m.key().expect("key")).into(),
                    event_id: env.event_id,
                    counter,
                    headers,
                });
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {
                if out.len() >= want {
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= settle {
                        break;
                    }
                }
            }
        }
    }
    out
}

async fn cluster(backend: Backend) -> TestKafka {
    let c = TestKafka::start(backend, 3);
    let mut topics: Vec<(String, i32)> = Vec::new();
    for e in [
        Event::SpellcheckPhaseCompleted,
        Event::BatchSpellcheckInitiateCommand,
    ] {
        for t in [e.topic(), e.legacy_topic()] {
            if !topics.iter().any(|(have, _)| have == t) {
                topics.push((t.to_owned(), PARTITIONS));
            }
        }
    }
    c.create_topics(topics, 3).await.expect("topics");
    c
}

/// Leads `store` (the relay's steps require it).
async fn leader<S: OutboxStore>(store: &S) -> hule_outbox::relay::Leader {
    hule_outbox::relay::lead(
        store,
        Duration::from_millis(20),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("lead")
    .expect("leader")
}

async fn drain<S: OutboxStore>(
    store: &S,
    publisher: &KafkaPublisher,
    config: &RelayConfig,
) -> RelayStats {
    let mut stats = RelayStats::default();
    let leader = leader(store).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.depth().await.expect("depth") > 0 && Instant::now() < deadline {
        if relay_once(store, publisher, config, &mut stats, &leader)
            .await
            .expect("relay")
            == 0
        {
            store.wait_for_work(Duration::from_millis(50)).await;
        }
    }
    stats
}

async fn sqlite_commit_publishes_exactly_its_events_and_rollback_nothing(backend: Backend) {
    let cluster = cluster(backend).await;
    let brokers = cluster.bootstrap_servers();
    let dir = std::env::temp_dir().join(format!("hule-relay-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let outbox = SqliteOutbox::open(dir.join("outbox.db")).expect("open");
    let mut conn = hule_outbox::sqlite::open(outbox.path()).expect("conn");

    let rolled_back = envelope("batch-r", 1, "rolled back");
    let tx = conn.transaction().expect("tx");
    hule_outbox::sqlite::enqueue(
        &tx,
        &prepare(&rolled_back, &EnqueueOptions::default()).expect("prep"),
    )
    .expect("enq");
    tx.rollback().expect("rollback");

    let at = Timestamp::from_datetime(chrono::Utc::now());
    let example = hule_contracts::examples::example_envelope(
        Event::BatchSpellcheckInitiateCommand,
        Uuid::new_v4(),
        Uuid::new_v4(),
        at,
    )
    .expect("example");
    let a = example.map_data(|d| match d {
        TypedEvent::BatchSpellcheckInitiateCommand(p) => p,
        other => panic!("wrong example {:?}", other.event()),
    });
    let b = envelope("batch-b", 2, "b");
    let tx = conn.transaction().expect("tx");
    let both = EnqueueOptions {
        mode: TopicMode::Both,
        ..EnqueueOptions::default()
    };
    hule_outbox::sqlite::enqueue(&tx, &prepare(&a, &both).expect("prep")).expect("enq");
    hule_outbox::sqlite::enqueue(&tx, &prepare(&b, &EnqueueOptions::default()).expect("prep"))
        .expect("enq");
    tx.commit().expect("commit");
    outbox.notify();

    let publisher = KafkaPublisher::new(&ProducerConfig::new(&brokers)).expect("producer");
    let config = RelayConfig {
        poll_interval: Duration::from_millis(50),
        ..RelayConfig::default()
    };
    let stats = drain(&outbox, &publisher, &config).await;
    assert_eq!(stats.published, 3);

    let def = Event::BatchSpellcheckInitiateCommand.def();
    let topics = [
        def.topic,
        def.legacy_topic,
        Event::SpellcheckPhaseCompleted.topic(),
    ];
    let got = read_all(&brokers, &topics, 3, Duration::from_millis(800));
    assert_eq!(
        got.len(),
        3,
        "a on both topics, b on the standard one, nothing rolled back"
    );
    let ids: Vec<Uuid> = got.iter().map(|r| r.event_id).collect();
    assert!(!ids.contains(&rolled_back.event_id));
    assert_eq!(ids.iter().filter(|i| **i == a.event_id).count(), 2);
    assert_eq!(ids.iter().filter(|i| **i == b.event_id).count(), 1);
    for r in &got {
        for h in REQUIRED {
            assert!(r.headers.contains_key(*h), "header {h} missing");
        }
        assert_eq!(r.headers["event_id"], r.event_id.to_string());
        assert_eq!(
            r.headers["X-Idempotency-Key"],
            format!("{}:{}:{}", r.topic, r.key, r.event_id)
        );
        // The example envelope carries a traceparent in metadata; the hand-built one carries none.
        assert_eq!(
            r.headers.contains_key("traceparent"),
            r.event_id == a.event_id,
            "traceparent on {}",
            r.topic
        );
    }
    assert!(got.iter().any(|r| r.topic == def.legacy_topic));
    std::fs::remove_dir_all(&dir).ok();
}

async fn sqlite_refused_row_is_parked_without_delaying_other_keys(backend: Backend) {
    let cluster = cluster(backend).await;
    let brokers = cluster.bootstrap_servers();
    let dir = std::env::temp_dir().join(format!("hule-park-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let outbox = SqliteOutbox::open(dir.join("outbox.db")).expect("open");
    let mut conn = hule_outbox::sqlite::open(outbox.path()).expect("conn");
    let tx = conn.transaction().expect("tx");
    let big = envelope("batch-big", 1, &"x".repeat(5000));
    hule_outbox::sqlite::enqueue(
        &tx,
        &prepare(&big, &EnqueueOptions::default()).expect("prep"),
    )
    .expect("enq");
    for i in 0..20 {
        let e = envelope(&format!("batch-{i}"), i, "fine");
        hule_outbox::sqlite::enqueue(&tx, &prepare(&e, &EnqueueOptions::default()).expect("prep"))
            .expect("enq");
    }
    tx.commit().expect("commit");

    let mut pc = ProducerConfig::new(&brokers);
    pc.extra.push(("message.max.bytes".into(), "2000".into()));
    let publisher = KafkaPublisher::new(&pc).expect("producer");
    let failure = FailurePolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
    };
    let config = RelayConfig {
        failure,
        poll_interval: Duration::from_millis(20),
        ..RelayConfig::default()
    };
    let mut stats = RelayStats::default();
    let leader = leader(&outbox).await;
    let first = relay_once(&outbox, &publisher, &config, &mut stats, &leader)
        .await
        .expect("relay");
    assert_eq!(first, 21);
    assert_eq!(
        stats.published, 20,
        "other keys are not delayed by the refused row"
    );
    // Too large is permanent: the row is parked by its first failure, not after max_attempts rounds of backoff.
    assert_eq!(stats.failed, 1, "a permanent error is attempted once");
    let status = outbox.status().await.expect("status");
    assert_eq!(
        status.parked,
        vec![(Event::SpellcheckPhaseCompleted.topic().to_owned(), 1)]
    );
    assert!(
        status.last_errors[0].3.contains("permanent"),
        "{:?}",
        status.last_errors
    );
    let batches_before = stats.batches;
    for _ in 0..20 {
        relay_once(&outbox, &publisher, &config, &mut stats, &leader)
            .await
            .expect("relay");
    }
    assert_eq!(
        stats.batches, batches_before,
        "a parked row is never claimed again"
    );
    let released = outbox
        .retry(hule_outbox::store::RetryTarget::EventId(big.event_id))
        .await
        .expect("retry");
    assert_eq!(released, 1);
    assert_eq!(outbox.claim(10).await.expect("claim").len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

/// Asserts that each key's counters arrive in increasing order.
/// Returns the number of keys.
fn assert_key_order(got: &[Read]) -> usize {
    let mut last: HashMap<&str, i64> = HashMap::new();
    for r in got {
        if let Some(prev) = last.insert(&r.key, r.counter) {
            assert!(
                r.counter > prev,
                "key {} out of order: {} after {}",
                r.key,
                r.counter,
                prev
            );
        }
    }
    last.len()
}

fn pg_url(schema: &str) -> String {
    format!("host=127.0.0.1 port=5432 user=postgres dbname=test options='-c search_path={schema}'")
}

async fn fresh_schema() -> String {
    let schema = format!("hule_test_{}", Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=test",
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL must run on 127.0.0.1:5432 (run scripts/setup.sh)");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    schema
}

async fn pg_ten_thousand_events_over_200_keys_by_8_writers_arrive_complete_and_in_key_order(
    backend: Backend,
) {
    let cluster = cluster(backend).await;
    let brokers = cluster.bootstrap_servers();
    let schema = fresh_schema().await;
    let url = pg_url(&schema);
    let outbox = Arc::new(PgOutbox::connect(&url).await.expect("outbox"));
    outbox
        .acquire_leadership(Duration::from_millis(50))
        .await
        .expect("leader");
    let publisher =
        Arc::new(KafkaPublisher::new(&ProducerConfig::new(&brokers)).expect("producer"));
    let stop = tokio_util::sync::CancellationToken::new();
    let relay = {
        let (o, p, s) = (outbox.clone(), publisher.clone(), stop.clone());
        tokio::spawn(async move {
            let config = RelayConfig {
                poll_interval: Duration::from_millis(100),
                ..RelayConfig::default()
            };
            run_relay(&*o, &*p, &config, s).await
        })
    };
    let mut writers = Vec::new();
    for w in 0..8 {
        let url = url.clone();
        writers.push(tokio::spawn(async move {
            let (mut client, _) = hule_outbox::pg::connect(&url).await.expect("writer");
            for n in 0..1250i64 {
                let key = format!("batch-{}", (n % 25) * 8 + w);
                let env = envelope(&key, n, "x");
                let tx = client.transaction().await.expect("tx");
                hule_outbox::pg::enqueue(
                    &tx,
                    &prepare(&env, &EnqueueOptions::default()).expect("prep"),
                )
                .await
                .expect("enq");
                if n % 97 == 13 {
                    tx.rollback().await.expect("rollback");
                } else {
                    tx.commit().await.expect("commit");
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let committed = 8 * (1250 - (0..1250).filter(|n| n % 97 == 13).count());
    let deadline = Instant::now() + Duration::from_secs(120);
    while outbox.depth().await.expect("depth") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let stats = relay.await.expect("join").expect("relay");
    assert_eq!(stats.published as usize, committed);

    let got = read_all(
        &brokers,
        &[Event::SpellcheckPhaseCompleted.topic()],
        committed,
        Duration::from_millis(800),
    );
    assert_eq!(got.len(), committed, "every committed event, once");
    let keys = assert_key_order(&got);
    for r in &got {
        assert_ne!(r.counter % 97, 13, "a rolled-back event was published");
    }
    assert_eq!(keys, 200);
}

async fn pg_table_from_the_original_template_is_upgraded_and_drained(backend: Backend) {
    let cluster = cluster(backend).await;
    let brokers = cluster.bootstrap_servers();
    let schema = fresh_schema().await;
    let (client, _) = hule_outbox::pg::connect(&pg_url(&schema))
        .await
        .expect("connect");
    client
        .batch_execute(
            "CREATE TABLE event_outbox (id uuid PRIMARY KEY, aggregate_id varchar(255) NOT NULL,
             aggregate_type varchar(100) NOT NULL, event_type varchar(255) NOT NULL, event_data json NOT NULL,
             event_key varchar(255), topic varchar(255) NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
             published_at timestamptz, retry_count integer NOT NULL DEFAULT 0, last_error text);
             CREATE INDEX ix_event_outbox_unpublished ON event_outbox (published_at, created_at) WHERE published_at IS NULL;",
        )
        .await
        .expect("original DDL");
    let topic = Event::SpellcheckPhaseCompleted.legacy_topic();
    let mut ids = Vec::new();
    for n in 0..3i64 {
        let env = envelope("batch-py", n, "python");
        ids.push(env.event_id);
        let mut data: serde_json::Value =
            serde_json::from_slice(&env.to_python_json().expect("enc")).expect("json");
        data["topic"] = topic.into();
        if n == 0 {
            data["headers"] = serde_json::json!({"x-custom": "kept"});
        }
        client
            .execute(
                "INSERT INTO event_outbox (id, aggregate_id, aggregate_type, event_type, event_data, event_key, topic, created_at)
                 VALUES ($1, 'batch-py', 'batch', $2, $3::text::json, 'batch-py', $2, now() + make_interval(secs => $4))",
                &[&Uuid::new_v4(), &topic, &data.to_string(), &(n as f64)],
            )
            .await
            .expect("python row");
    }
    let outbox = PgOutbox::connect(&pg_url(&schema)).await.expect("upgrade");
    PgOutbox::connect(&pg_url(&schema))
        .await
        .expect("migration is idempotent");
    let publisher = KafkaPublisher::new(&ProducerConfig::new(&brokers)).expect("producer");
    let config = RelayConfig::default();
    let stats = drain(&outbox, &publisher, &config).await;
    assert_eq!(stats.published, 3);
    let got = read_all(&brokers, &[topic], 3, Duration::from_millis(800));
    assert_eq!(
        got.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        ids,
        "same ids, in created_at order"
    );
    assert_eq!(
        got[0].headers.get("x-custom").map(String::as_str),
        Some("kept")
    );
    for r in &got {
        assert_eq!(r.headers["event_id"], r.event_id.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_drain_survives_produce_errors_a_broker_outage_and_two_relays_at_once() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let kafka = cluster(Backend::Mock).await;
    let cluster = kafka.mock().expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let schema = fresh_schema().await;
    let url = pg_url(&schema);
    // 4,000 events over 100 keys, committed before the relays start.
    {
        let (mut client, _) = hule_outbox::pg::connect(&url).await.expect("writer");
        hule_outbox::pg::migrate(&client).await.expect("migrate");
        for chunk in 0..40i64 {
            let tx = client.transaction().await.expect("tx");
            let mut rows = Vec::new();
            for i in 0..100i64 {
                let n = chunk * 100 + i;
                rows.extend(
                    prepare(
                        &envelope(&format!("batch-{}", n % 100), n, "x"),
                        &EnqueueOptions::default(),
                    )
                    .expect("prep"),
                );
            }
            hule_outbox::pg::enqueue(&tx, &rows).await.expect("enq");
            tx.commit().await.expect("commit");
        }
    }
    let total = 4000usize;
    // Faults: produce errors the producer must retry, and broker 2 down while the drain starts.
    let errors: Vec<RDKafkaRespErr> = [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
    ]
    .iter()
    .cycle()
    .take(30)
    .copied()
    .collect();
    cluster.request_errors(RDKafkaApiKey::Produce, &errors);
    cluster.broker_down(2).expect("down");

    let registry = hule_metrics::Registry::new();
    let metrics = hule_outbox::metrics::OutboxMetrics::new(&registry, "test-svc");
    let stops = [
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    ];
    // Which instance took the lock first (the leader to stop).
    let first_leader = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let mut relays = Vec::new();
    for (i, stop) in stops.iter().cloned().enumerate() {
        let (url, brokers, metrics, first_leader) = (
            url.clone(),
            brokers.clone(),
            metrics.clone(),
            first_leader.clone(),
        );
        relays.push(tokio::spawn(async move {
            let outbox = PgOutbox::connect(&url).await.expect("outbox");
            // One request in flight per connection: librdkafka's mock cluster checks an idempotent producer's
            // sequence numbers only for a transactional one, so with requests pipelined it may append a later
            // request after refusing an earlier one (an injected error), and the client, seeing the later one
            // acknowledged, takes the earlier one as delivered too (an implicit acknowledgement a real broker would
            // have refused with OUT_OF_ORDER_SEQUENCE_NUMBER). Seen once under CI load: 3 of 4,000 records
            // acknowledged and never stored. The real-broker fault tests keep the default pipelining.
            let mut config = ProducerConfig::new(&brokers);
            config
                .extra
                .push(("max.in.flight.requests.per.connection".into(), "1".into()));
            let publisher = KafkaPublisher::new(&config).expect("producer");
            // Both instances run; the advisory lock lets one drain while the other stands by.
            tokio::select! {
                r = outbox.acquire_leadership(Duration::from_millis(20)) => r.expect("leader"),
                _ = stop.cancelled() => {
                    return RelayStats::default();
                }
            }
            let _ = first_leader.compare_exchange(
                usize::MAX,
                i,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            );
            let config = RelayConfig {
                poll_interval: Duration::from_millis(20),
                batch_size: 200,
                metrics: Some(metrics),
                ..RelayConfig::default()
            };
            run_relay(&outbox, &publisher, &config, stop)
                .await
                .expect("relay")
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.broker_up(2).expect("up");
    // Stop whichever instance leads after some progress; the other takes over the rest.
    let check = PgOutbox::connect(&url).await.expect("check");
    let deadline = Instant::now() + Duration::from_secs(60);
    while check.depth().await.expect("depth") > 2500 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = first_leader.load(std::sync::atomic::Ordering::SeqCst);
    assert!(leader < 2, "no relay led");
    stops[leader].cancel();
    let mut relays: Vec<Option<_>> = relays.into_iter().map(Some).collect();
    let first = relays[leader].take().expect("leader").await.expect("join");
    assert!(
        first.published > 0,
        "the leader published nothing before it stopped"
    );
    while check.depth().await.expect("depth") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stops[1 - leader].cancel();
    let second = relays[1 - leader]
        .take()
        .expect("standby")
        .await
        .expect("join");
    assert!(
        second.published > 0,
        "the standby never took over: {first:?} {second:?}"
    );
    assert_eq!(
        (first.published + second.published) as usize,
        total,
        "{first:?} {second:?}"
    );

    let got = read_all(
        &brokers,
        &[Event::SpellcheckPhaseCompleted.topic()],
        total,
        Duration::from_millis(800),
    );
    let ids: std::collections::HashSet<Uuid> = got.iter().map(|r| r.event_id).collect();
    if ids.len() != total {
        // What the topic holds, to tell records never stored from records not read.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("consumer");
        let stored: i64 = (0..PARTITIONS)
            .map(|p| {
                let (low, high) = consumer
                    .fetch_watermarks(
                        Event::SpellcheckPhaseCompleted.topic(),
                        p,
                        Duration::from_secs(5),
                    )
                    .expect("watermarks");
                high - low
            })
            .sum();
        panic!(
            "{} of {total} events read back; the topic holds {stored} records",
            ids.len()
        );
    }
    assert_eq!(got.len(), total, "no event arrived twice");
    assert_eq!(assert_key_order(&got), 100);
    // The metrics saw the same.
    assert_eq!(
        metrics.published_count(Event::SpellcheckPhaseCompleted.topic()),
        total as f64
    );
    let text = registry.render();
    assert!(
        text.contains("outbox_commit_to_publish_seconds_count{service=\"test-svc\"} 4000"),
        "{text}"
    );
    let batches: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("outbox_relay_batch_seconds_count{service=\"test-svc\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no batch count: {text}"));
    assert!(batches >= 20, "{batches} batches");
    assert_eq!(metrics.depth(), 0.0, "{text}");
}

/// The relay puts each key on the partition Kafka's own Java client chooses for it (and `partition_for` computes):
/// the Java producer (`tools/kafka/JavaProduce.java`, run on the broker's kafka-clients jar) writes the same keys to
/// the same topic, and every key's records share one partition. Real broker only: it needs the Java client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_relay_puts_each_key_where_the_java_client_does() {
    let cluster = cluster(Backend::Real).await;
    let brokers = cluster.bootstrap_servers();
    let topic = Event::SpellcheckPhaseCompleted.topic();
    let dir = std::env::temp_dir().join(format!("hule-java-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let outbox = SqliteOutbox::open(dir.join("outbox.db")).expect("open");
    let mut conn = hule_outbox::sqlite::open(outbox.path()).expect("conn");
    let keys: Vec<String> = (0..60)
        .map(|i| format!("batch-{i}-{}", Uuid::from_u128(i)))
        .collect();
    let tx = conn.transaction().expect("tx");
    for (n, key) in keys.iter().enumerate() {
        let rows =
            prepare(&envelope(key, n as i64, "x"), &EnqueueOptions::default()).expect("prep");
        hule_outbox::sqlite::enqueue(&tx, &rows).expect("enq");
    }
    tx.commit().expect("commit");
    let publisher = KafkaPublisher::new(&ProducerConfig::new(&brokers)).expect("producer");
    let stats = drain(&outbox, &publisher, &RelayConfig::default()).await;
    assert_eq!(stats.published as usize, keys.len());
    let got = read_all(&brokers, &[topic], keys.len(), Duration::from_millis(500));
    assert_eq!(got.len(), keys.len());

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let classpath = std::process::Command::new(format!("{root}/scripts/kafka.sh"))
        .arg("classpath")
        .output()
        .expect("scripts/kafka.sh classpath");
    assert!(
        classpath.status.success(),
        "{}",
        String::from_utf8_lossy(&classpath.stderr)
    );
    let classpath = String::from_utf8_lossy(&classpath.stdout).trim().to_owned();
    let java = std::process::Command::new("java")
        .args([
            "-cp",
            &classpath,
            &format!("{root}/tools/kafka/JavaProduce.java"),
            &brokers,
            topic,
        ])
        .args(&keys)
        .output()
        .expect("java (Java 17) must be installed");
    assert!(
        java.status.success(),
        "{}",
        String::from_utf8_lossy(&java.stderr)
    );
    let java_partition: HashMap<String, i32> = String::from_utf8_lossy(&java.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, p)| (k.to_owned(), p.parse().expect("partition")))
        .collect();
    assert_eq!(
        java_partition.len(),
        keys.len(),
        "the Java client produced every key"
    );

    let mut partitions_used = std::collections::HashSet::new();
    for r in &got {
        assert_eq!(
            r.partition, java_partition[&r.key],
            "key {} on partition {} by the relay, {} by the Java client",
            r.key, r.partition, java_partition[&r.key]
        );
        assert_eq!(
            r.partition as u32,
            hule_contracts::keys::partition_for(r.key.as_bytes(), PARTITIONS as u32)
        );
        partitions_used.insert(r.partition);
    }
    assert!(
        partitions_used.len() > 6,
        "keys spread over the partitions: {partitions_used:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The idempotent producer over a real three-node cluster (replication 3, `min.insync.replicas=2`, `acks=all`): the
/// broker leading partition 0 is SIGKILLed while the relay drains 20,000 events and started again while rows are
/// still pending. Every event arrives exactly once and each key's events in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_three_nodes_broker_killed_and_restarted_mid_drain_loses_duplicates_and_reorders_nothing(
) {
    use hule_kafka::testkit::ScriptCluster;
    let cluster = ScriptCluster::start(3, 29092);
    let brokers = cluster.bootstrap_servers();
    let topic = Event::SpellcheckPhaseCompleted.topic();
    cluster
        .create_topics([(topic.to_owned(), PARTITIONS)], 3)
        .await
        .expect("topic");
    let schema = fresh_schema().await;
    let url = pg_url(&schema);
    let total = 20_000usize;
    {
        let (mut client, _) = hule_outbox::pg::connect(&url).await.expect("writer");
        hule_outbox::pg::migrate(&client).await.expect("migrate");
        for chunk in 0..(total as i64 / 500) {
            let tx = client.transaction().await.expect("tx");
            let mut rows = Vec::new();
            for i in 0..500i64 {
                let n = chunk * 500 + i;
                rows.extend(
                    prepare(
                        &envelope(&format!("batch-{}", n % 200), n, "x"),
                        &EnqueueOptions::default(),
                    )
                    .expect("prep"),
                );
            }
            hule_outbox::pg::enqueue(&tx, &rows).await.expect("enq");
            tx.commit().await.expect("commit");
        }
    }
    let leader_of_0 = {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("client");
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        md.topics()[0].partitions()[0].leader() as u32
    };

    let outbox = Arc::new(PgOutbox::connect(&url).await.expect("outbox"));
    let publisher =
        Arc::new(KafkaPublisher::new(&ProducerConfig::new(&brokers)).expect("producer"));
    let stop = tokio_util::sync::CancellationToken::new();
    let relay = {
        let (o, p, s) = (outbox.clone(), publisher.clone(), stop.clone());
        tokio::spawn(async move {
            let config = RelayConfig {
                poll_interval: Duration::from_millis(20),
                batch_size: 200,
                ..RelayConfig::default()
            };
            run_relay(&*o, &*p, &config, s).await
        })
    };
    let check = PgOutbox::connect(&url).await.expect("check");
    let deadline = Instant::now() + Duration::from_secs(180);
    while check.depth().await.expect("depth") as usize > total - 3000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cluster.kill_node(leader_of_0);
    let pending_at_kill = check.depth().await.expect("depth");
    assert!(pending_at_kill > 0, "the broker died mid-drain");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending_at_restart = check.depth().await.expect("depth");
    cluster.start_node(leader_of_0);
    while check.depth().await.expect("depth") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let stats = relay.await.expect("join").expect("relay");
    assert!(
        pending_at_restart > 0,
        "the broker came back mid-drain ({pending_at_kill} pending at the kill)"
    );
    assert_eq!(stats.published as usize, total, "{stats:?}");

    eprintln!(
        "node {leader_of_0} killed with {pending_at_kill} rows pending, restarted with {pending_at_restart} pending"
    );
    let got = read_all(&brokers, &[topic], total, Duration::from_secs(2));
    let ids: std::collections::HashSet<Uuid> = got.iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), total, "0 lost");
    assert_eq!(got.len(), total, "0 duplicated");
    assert_eq!(assert_key_order(&got), 200, "0 out of order");
}

hule_kafka::on_both_backends!(
    sqlite_commit_publishes_exactly_its_events_and_rollback_nothing,
    sqlite_refused_row_is_parked_without_delaying_other_keys,
    pg_ten_thousand_events_over_200_keys_by_8_writers_arrive_complete_and_in_key_order,
    pg_table_from_the_original_template_is_upgraded_and_drained,
);
