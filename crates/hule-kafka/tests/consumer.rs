//! The consumer driver: every event handled once and in key order, duplicates suppressed, poison dead-lettered (and
//! acknowledged) before commit, offsets committed to the high watermark, a second consumer joining mid-stream
//! without loss or double application, and committed offsets surviving a restart. Each test runs on librdkafka's
//! mock cluster (`mock::…`) and on the real broker at `$HULE_TEST_KAFKA` (`real::…`; see `hule_kafka::testkit`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hule_consumer::{
    standard_stack, ConsumerMetrics, Context, DeadLetterRecord, MemoryDedup, Router, TopicChoice,
};
use hule_contracts::payloads::BatchEssaysRegistered;
use hule_kafka::consumer::{run_consumer, ConsumerConfig, KafkaDeadLetterSink};
use hule_kafka::testkit::{essays_registered, produce_all, Backend, TestKafka};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use tokio::sync::watch;
use uuid::Uuid;

const PARTITIONS: i32 = 4;
const TOPIC: &str = "huleedu.batch.essays.registered.v1";

/// Record n: key `batch-{n % keys}`, event id n.
fn record(n: u128, keys: u128) -> (String, Vec<u8>, hule_contracts::Headers) {
    essays_registered(TOPIC, n, &format!("batch-{}", n % keys))
}

async fn produce(brokers: &str, records: Vec<(String, Vec<u8>, hule_contracts::Headers)>) {
    produce_all(brokers, TOPIC, &records).await;
}

type Seen = Arc<Mutex<Vec<(String, u128)>>>;

fn router(seen: Seen, count: Arc<AtomicU64>) -> Router {
    Router::new().on(
        TopicChoice::Standard,
        move |ctx: Context, p: BatchEssaysRegistered| {
            let seen = seen.clone();
            let count = count.clone();
            async move {
                seen.lock()
                    .expect("lock")
                    .push((p.entity_id, ctx.event_id.as_u128()));
                count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
    )
}

fn config(brokers: &str, group: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(brokers, group);
    c.commit_interval = Duration::from_millis(100);
    c.extra.push(("session.timeout.ms".into(), "6000".into()));
    c
}

/// The standard stack without dedup, dead-lettering to `brokers`.
fn undeduplicated_stack(
    router: Router,
    brokers: &str,
    metrics: &ConsumerMetrics,
) -> hule_consumer::BoxService {
    standard_stack(
        router,
        "svc",
        None,
        Arc::new(KafkaDeadLetterSink::new(brokers).expect("dlq")),
        metrics.clone(),
    )
    .expect("stack")
}

/// A key (`batch-<n>`) that lands on `partition` of `partitions`.
fn key_on(partition: u32, partitions: u32) -> String {
    (0..)
        .map(|i| format!("batch-{i}"))
        .find(|k| hule_contracts::partition_for(k.as_bytes(), partitions) == partition)
        .expect("some key lands on each partition")
}

async fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn committed_total(brokers: &str, group: &str) -> i64 {
    committed_total_of(brokers, group, PARTITIONS)
}

fn read_dlq(brokers: &str, want: usize) -> Vec<(Option<Vec<u8>>, DeadLetterRecord)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("dlq-reader-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    c.subscribe(&[&format!("{TOPIC}.dlq.v1")])
        .expect("subscribe");
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < want && start.elapsed() < Duration::from_secs(20) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let rec: DeadLetterRecord =
                serde_json::from_slice(m.payload().expect("value")).expect("dlq json");
            out.push((m.key().map(<[u8]>::to_vec), rec));
        }
    }
    out
}

async fn each_event_once_in_key_order_duplicates_suppressed_poison_dead_lettered(backend: Backend) {
    let cluster = TestKafka::start(backend, 1);
    cluster
        .create_topics(
            [
                (TOPIC.to_owned(), PARTITIONS),
                (format!("{TOPIC}.dlq.v1"), 1),
            ],
            1,
        )
        .await
        .expect("topics");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("grp-a");

    const N: u128 = 1500;
    let mut records: Vec<_> = (0..N).map(|n| record(n, 40)).collect();
    // 100 redeliveries of earlier events and 5 poison records.
    records.extend((0..100).map(|n| record(n * 7, 40)));
    for i in 0..5 {
        records.push((
            format!("batch-{i}"),
            b"\xffnot json".to_vec(),
            Default::default(),
        ));
    }
    produce(&brokers, records).await;
    let total = N as u64 + 105;

    let seen: Seen = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let metrics = ConsumerMetrics::detached();
    let stack = standard_stack(
        router(seen.clone(), count.clone()),
        "test-svc",
        Some(Arc::new(MemoryDedup::new())),
        Arc::new(KafkaDeadLetterSink::new(&brokers).expect("sink")),
        metrics.clone(),
    )
    .expect("stack");
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let cfg = config(&brokers, &group);
    let m = metrics.clone();
    let driver = tokio::spawn(async move { run_consumer(&cfg, &[TOPIC], stack, m, stop_rx).await });

    let outcomes = |m: &ConsumerMetrics| {
        ["handled", "duplicate", "dead_lettered"]
            .iter()
            .map(|o| m.outcomes(TOPIC, o))
            .sum::<f64>()
    };
    wait_until("all records", Duration::from_secs(60), || {
        outcomes(&metrics) as u64 >= total
    })
    .await;
    stop_tx.cancel();
    let stats = driver.await.expect("join").expect("driver");
    assert_eq!(stats.finished, total);

    let seen = seen.lock().expect("lock").clone();
    let ids: HashSet<u128> = seen.iter().map(|s| s.1).collect();
    assert_eq!(seen.len() as u128, N, "each event handled exactly once");
    assert_eq!(ids.len() as u128, N);
    let mut last: HashMap<&str, u128> = HashMap::new();
    for (key, id) in &seen {
        if let Some(prev) = last.insert(key, *id) {
            assert!(*id > prev, "key {key}: event {id} handled after {prev}");
        }
    }
    assert_eq!(metrics.duplicates("memory"), 100.0);
    assert_eq!(metrics.dead_letters(TOPIC, "invalid_envelope"), 5.0);

    let dlq = read_dlq(&brokers, 5);
    assert_eq!(dlq.len(), 5);
    for (key, rec) in &dlq {
        assert!(key.as_deref().is_some_and(|k| k.starts_with(b"batch-")));
        assert_eq!(rec.original_topic, TOPIC);
        assert_eq!(rec.original_event_encoding, "base64");
        assert_eq!(rec.error_type, "invalid_envelope");
    }
    assert_eq!(
        committed_total(&brokers, &group),
        total as i64,
        "committed offsets reach the high watermarks"
    );
}

async fn a_second_consumer_joining_mid_stream_loses_nothing(backend: Backend) {
    let cluster = TestKafka::start(backend, 1);
    cluster
        .create_topics([(TOPIC.to_owned(), PARTITIONS)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("grp-b");
    const N: u128 = 2000;
    produce(&brokers, (0..N).map(|n| record(n, 64)).collect()).await;

    // Both members share a dedup store, as consumers of one service share Redis.
    let dedup = Arc::new(MemoryDedup::new());
    let seen: Seen = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let mut drivers = Vec::new();
    let mut all_metrics = Vec::new();
    for member in 0..2 {
        // Members of one group: one dedup namespace.
        let metrics = ConsumerMetrics::new(&hule_metrics::Registry::new(), "svc", &group);
        all_metrics.push(metrics.clone());
        let slow = Router::new().on(TopicChoice::Standard, {
            let seen = seen.clone();
            let count = count.clone();
            move |ctx: Context, p: BatchEssaysRegistered| {
                let seen = seen.clone();
                let count = count.clone();
                async move {
                    // Slow enough that work remains when the second member has joined (a group join takes ~3 s
                    // on the mock cluster): 4 partitions × 450 records × 10 ms ≈ 4.5 s for one member alone.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    seen.lock()
                        .expect("lock")
                        .push((p.entity_id, ctx.event_id.as_u128()));
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }
        });
        let stack = standard_stack(
            slow,
            "svc",
            Some(dedup.clone()),
            Arc::new(hule_consumer::MemorySink::default()),
            metrics.clone(),
        )
        .expect("stack");
        let cfg = config(&brokers, &group);
        let rx = stop_rx.clone();
        drivers.push(tokio::spawn(async move {
            run_consumer(&cfg, &[TOPIC], stack, metrics, rx).await
        }));
        if member == 0 {
            let c = count.clone();
            wait_until("first member to start", Duration::from_secs(30), || {
                c.load(Ordering::SeqCst) > 200
            })
            .await;
        }
    }
    let finished = || {
        all_metrics
            .iter()
            .map(|m| m.outcomes(TOPIC, "handled") + m.outcomes(TOPIC, "duplicate"))
            .sum::<f64>()
    };
    wait_until("all records", Duration::from_secs(90), || {
        count.load(Ordering::SeqCst) as u128 >= N && committed_total(&brokers, &group) == N as i64
    })
    .await;
    stop_tx.cancel();
    for d in drivers {
        d.await.expect("join").expect("driver");
    }
    let seen = seen.lock().expect("lock").clone();
    let ids: HashSet<u128> = seen.iter().map(|s| s.1).collect();
    assert_eq!(ids.len() as u128, N, "no event lost");
    assert_eq!(
        seen.len() as u128,
        N,
        "no event handled twice (dedup covers redelivery after the hand-over)"
    );
    assert!(finished() >= N as f64);
    assert!(
        all_metrics[1].outcomes(TOPIC, "handled") > 0.0,
        "the second member took over partitions"
    );
}

/// A consumer stopped part-way commits what it finished; a new consumer of the same group starts after it. No dedup
/// store: only the committed offsets keep the second run from applying an event again.
async fn committed_offsets_survive_a_consumer_restart(backend: Backend) {
    let cluster = TestKafka::start(backend, 1);
    cluster
        .create_topics([(TOPIC.to_owned(), PARTITIONS)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("grp-restart");
    const N: u128 = 1200;
    produce(&brokers, (0..N).map(|n| record(n, 32)).collect()).await;

    let seen: Seen = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    // The first run handles the first 75 records of each partition, then waits at a gate that opens with the stop:
    // the stop comes with records in flight, queued and held, whatever the consumer's speed.
    const FIRST: i64 = 75;
    let (gate_tx, gate_rx) = watch::channel(false);
    let run = |stop_rx: tokio_util::sync::CancellationToken| {
        let (seen, count, gate) = (seen.clone(), count.clone(), gate_rx.clone());
        let router = Router::new().on(
            TopicChoice::Standard,
            move |ctx: Context, p: BatchEssaysRegistered| {
                let (seen, count, mut gate) = (seen.clone(), count.clone(), gate.clone());
                async move {
                    if ctx.offset >= FIRST {
                        let _ = gate.wait_for(|open| *open).await;
                    }
                    seen.lock()
                        .expect("lock")
                        .push((p.entity_id, ctx.event_id.as_u128()));
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            },
        );
        let stack = standard_stack(
            router,
            "svc",
            None,
            Arc::new(hule_consumer::MemorySink::default()),
            ConsumerMetrics::detached(),
        )
        .expect("stack");
        let cfg = config(&brokers, &group);
        tokio::spawn(async move {
            run_consumer(&cfg, &[TOPIC], stack, ConsumerMetrics::detached(), stop_rx).await
        })
    };
    let mut per_partition = [0i64; PARTITIONS as usize];
    for n in 0..N {
        let key = format!("batch-{}", n % 32);
        per_partition[hule_contracts::partition_for(key.as_bytes(), PARTITIONS as u32) as usize] +=
            1;
    }
    let before_gate: i64 = per_partition.iter().map(|&c| c.min(FIRST)).sum();

    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let first = run(stop_rx);
    let c = count.clone();
    wait_until(
        "the first run to reach the gate in every partition",
        Duration::from_secs(60),
        || c.load(Ordering::SeqCst) as i64 >= before_gate,
    )
    .await;
    stop_tx.cancel();
    gate_tx.send(true).expect("open the gate");
    first.await.expect("join").expect("first run");
    let handled_first = count.load(Ordering::SeqCst);
    assert!(
        (handled_first as u128) < N,
        "the first run was stopped part-way"
    );
    assert_eq!(
        committed_total(&brokers, &group),
        handled_first as i64,
        "on stop, exactly what was handled is committed"
    );

    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let second = run(stop_rx);
    wait_until("the rest", Duration::from_secs(60), || {
        count.load(Ordering::SeqCst) as u128 >= N
    })
    .await;
    wait_until("the final commit", Duration::from_secs(30), || {
        committed_total(&brokers, &group) == N as i64
    })
    .await;
    stop_tx.cancel();
    second.await.expect("join").expect("second run");

    let seen = seen.lock().expect("lock").clone();
    let ids: HashSet<u128> = seen.iter().map(|s| s.1).collect();
    assert_eq!(ids.len() as u128, N, "no event lost across the restart");
    assert_eq!(
        seen.len() as u128,
        N,
        "no event applied twice across the restart"
    );
}

/// A dead-letter producer that is unusable (as a fenced or unauthenticated producer is).
struct FatalSink;

impl hule_consumer::DeadLetterSink for FatalSink {
    fn send(
        &self,
        _letter: hule_consumer::DeadLetter,
    ) -> futures::future::BoxFuture<'_, Result<(), hule_contracts::DeliveryError>> {
        Box::pin(async { Err(hule_contracts::DeliveryError::fatal("Local: Fatal error")) })
    }
}

async fn a_fatal_error_stops_the_consumer_without_committing_its_record(backend: Backend) {
    let cluster = TestKafka::start(backend, 1);
    cluster
        .create_topics([(TOPIC.to_owned(), 1)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("fatal");
    // Three good records, a poison one, one more good one, all on the one partition.
    let mut records: Vec<_> = (0..3).map(|n| record(n, 1)).collect();
    records.push(("batch-0".into(), b"not json".to_vec(), Default::default()));
    records.push(record(3, 1));
    produce(&brokers, records).await;
    let seen: Seen = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let stack = standard_stack(
        router(seen.clone(), count.clone()),
        "svc",
        None,
        Arc::new(FatalSink),
        ConsumerMetrics::detached(),
    )
    .expect("stack");
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let _stop_tx = stop_rx.clone();
    let cfg = config(&brokers, &group);
    // No stop is ever sent: the run must end by itself, with the error.
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        run_consumer(&cfg, &[TOPIC], stack, ConsumerMetrics::detached(), stop_rx),
    )
    .await
    .expect("a fatal error must end the run, not retry forever");
    let err = result.expect_err("fatal");
    assert!(
        matches!(&err, hule_kafka::Error::Fatal(m) if m.contains("Fatal error") && m.contains("[0]@3")),
        "{err}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "nothing past the poison record"
    );
    assert_eq!(
        committed_total(&brokers, &group),
        3,
        "the poison record is not committed"
    );
}

/// `consumer_lag{consumer_group,topic,partition}` follows a partition whose handler is held up, and `/healthz`'s
/// board says the consumer is in its group.
async fn lag_per_partition_and_health_are_reported(backend: Backend) {
    let cluster = TestKafka::start(backend, 1);
    cluster
        .create_topics([(TOPIC.to_owned(), 1)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("lag");
    produce(&brokers, (0..10).map(|n| record(n, 1)).collect()).await;
    // The first record is handled; the rest wait for the gate.
    let (gate_tx, gate_rx) = watch::channel(false);
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let router = Router::new().on(
        TopicChoice::Standard,
        move |_ctx: Context, _p: BatchEssaysRegistered| {
            let (count, mut gate) = (counter.clone(), gate_rx.clone());
            async move {
                if count.load(Ordering::SeqCst) >= 1 {
                    let _ = gate.wait_for(|open| *open).await;
                }
                count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
    );
    let registry = hule_metrics::Registry::new();
    let metrics = ConsumerMetrics::new(&registry, "svc", &group);
    let stack = undeduplicated_stack(router, &brokers, &metrics);
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let mut cfg = config(&brokers, &group);
    cfg.lag_interval = Duration::from_millis(100);
    let run = tokio::spawn({
        let metrics = metrics.clone();
        async move { run_consumer(&cfg, &[TOPIC], stack, metrics, stop_rx).await }
    });
    wait_until("a lag of 9 on partition 0", Duration::from_secs(30), || {
        metrics.lag(TOPIC, 0) == 9.0
    })
    .await;
    let text = registry.render();
    assert!(
        text.contains(&format!(
            "consumer_lag{{consumer_group=\"{group}\",topic=\"{TOPIC}\",partition=\"0\"}} 9.0"
        )),
        "{text}"
    );
    let health = registry.health().report();
    assert!(health.ok, "{health:?}");
    assert!(
        health
            .parts
            .iter()
            .any(|(part, ok, detail)| part == &format!("kafka:{group}")
                && *ok
                && detail.contains("1 partitions assigned")),
        "{health:?}"
    );
    gate_tx.send(true).expect("open the gate");
    wait_until("the lag to drop to 0", Duration::from_secs(30), || {
        metrics.lag(TOPIC, 0) == 0.0
    })
    .await;
    assert_eq!(count.load(Ordering::SeqCst), 10);
    stop_tx.cancel();
    run.await.expect("join").expect("run");
}

/// A partition whose handler is held up does not hold up the others: with its queue full, the records of another
/// partition that librdkafka queued behind its own still reach their worker (the driver used to wait for the full
/// queue, so here the other partition's records never arrived and the gate never opened). The held-up partition's
/// records are handled in offset order once it goes on.
async fn a_held_up_partition_does_not_hold_up_the_others(backend: Backend) {
    let cluster = TestKafka::start(backend, 1);
    cluster
        .create_topics([(TOPIC.to_owned(), 2)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("held-up");
    let (slow_key, other_key) = (key_on(0, 2), key_on(1, 2));
    let slow: Vec<_> = (0..300)
        .map(|n| essays_registered(TOPIC, n, &slow_key))
        .collect();
    produce(&brokers, slow).await;

    // Partition 0's handler waits until all 10 records of partition 1 are handled.
    let (gate_tx, gate_rx) = watch::channel(false);
    let gate_tx = Arc::new(gate_tx);
    let (waiting, others) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let seen: Seen = Arc::default();
    let router = Router::new().on(TopicChoice::Standard, {
        let (waiting, others, seen) = (waiting.clone(), others.clone(), seen.clone());
        move |ctx: Context, p: BatchEssaysRegistered| {
            let (waiting, others, seen) = (waiting.clone(), others.clone(), seen.clone());
            let (mut gate, gate_tx) = (gate_rx.clone(), gate_tx.clone());
            async move {
                if ctx.partition == 0 {
                    waiting.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                } else if others.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
                    gate_tx.send_replace(true);
                }
                seen.lock()
                    .expect("lock")
                    .push((p.entity_id, ctx.event_id.as_u128()));
                Ok(())
            }
        }
    });
    let metrics = ConsumerMetrics::detached();
    let stack = undeduplicated_stack(router, &brokers, &metrics);
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let mut cfg = config(&brokers, &group);
    cfg.queue_per_partition = 4;
    let run =
        tokio::spawn(async move { run_consumer(&cfg, &[TOPIC], stack, metrics, stop_rx).await });
    wait_until(
        "partition 0's handler to be held up",
        Duration::from_secs(30),
        || waiting.load(Ordering::SeqCst) >= 1,
    )
    .await;
    // Produced now, these are queued behind partition 0's prefetched records.
    let other: Vec<_> = (1000..1010)
        .map(|n| essays_registered(TOPIC, n, &other_key))
        .collect();
    produce(&brokers, other).await;
    wait_until("all 310 records handled", Duration::from_secs(60), || {
        seen.lock().expect("lock").len() == 310
    })
    .await;
    stop_tx.cancel();
    run.await.expect("join").expect("run");
    let seen = seen.lock().expect("lock").clone();
    let slow_ids: Vec<u128> = seen
        .iter()
        .filter(|(k, _)| *k == slow_key)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(
        slow_ids,
        (0..300).collect::<Vec<_>>(),
        "partition 0 in offset order, each once"
    );
    assert_eq!(others.load(Ordering::SeqCst), 10);
}

/// The metric names the seeds and ARCHITECTURE.md list, exactly: renaming one breaks dashboards.
#[test]
fn metric_names_are_the_documented_ones() {
    let registry = hule_metrics::Registry::new();
    let outbox = hule_outbox::metrics::OutboxMetrics::new(&registry, "svc");
    let consumer = ConsumerMetrics::new(&registry, "svc", "group");
    let mut expected = vec![
        "consumer_dedup_fail_open_total",
        "consumer_handler_seconds",
        "consumer_lag",
        "consumer_messages_total",
        "dlq_messages_total",
        "kafka_duplicate_events_total",
        "kafka_event_headers_missing_total",
        "outbox_commit_to_publish_seconds",
        "outbox_events_added_total",
        "outbox_events_failed_total",
        "outbox_events_parked",
        "outbox_events_published_total",
        "outbox_oldest_pending_age_seconds",
        "outbox_queue_depth",
        "outbox_relay_batch_seconds",
        "partition_key_resolution_seconds",
    ];
    expected.sort_unstable();
    assert_eq!(registry.names(), expected);
    // And as exposed once each has a series: counters keep their `_total`, every family has its TYPE line.
    outbox.added(1, 0.000_01);
    outbox.published(TOPIC, 0.01);
    outbox.failed(1);
    outbox.batch(0.01);
    outbox.gauges(&hule_outbox::model::Gauges::default());
    consumer.duplicate("redis");
    consumer.headers_missing("x");
    consumer.outcome(TOPIC, "handled", 0.01);
    consumer.dead_lettered(TOPIC, "validation");
    consumer.set_lag(TOPIC, 0, 3);
    consumer.fail_open();
    let text = registry.render();
    assert_eq!(text.matches("# TYPE ").count(), expected.len(), "{text}");
    for name in expected {
        let base = name.strip_suffix("_total").unwrap_or(name);
        assert!(text.contains(&format!("# TYPE {base} ")), "{name}: {text}");
    }
}

/// The builder: handlers with shared state, the topics from the handlers, a dedup store; `run` returns when the
/// token is cancelled, with every finished record committed.
async fn the_builder_consumes_until_cancelled_and_commits(backend: Backend) {
    let cluster = TestKafka::start(backend, 1);
    cluster
        .create_topics([(TOPIC.to_owned(), PARTITIONS)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("builder");
    produce(&brokers, (0..40).map(|n| record(n, 4)).collect()).await;
    let seen: Seen = Arc::default();
    let registry = hule_metrics::Registry::new();
    let consumer = hule_kafka::EventConsumer::builder(
        &hule_kafka::KafkaSettings::new(&brokers),
        &group,
        "svc",
    )
    .state(seen.clone())
    .handle(
        |seen: Seen, ctx: Context, p: BatchEssaysRegistered| async move {
            seen.lock()
                .expect("lock")
                .push((p.entity_id, ctx.event_id.as_u128()));
            Ok(())
        },
    )
    .dedup(MemoryDedup::default())
    .metrics(&registry)
    .configure(|c| c.commit_interval = Duration::from_millis(100))
    .build()
    .expect("consumer");
    assert_eq!(consumer.topics(), &[TOPIC]);
    let token = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(consumer.run(token.clone()));
    wait_until("40 handled", Duration::from_secs(30), || {
        seen.lock().expect("lock").len() >= 40
    })
    .await;
    token.cancel();
    let stats = run.await.expect("join").expect("run");
    assert_eq!(stats.finished, 40);
    assert_eq!(committed_total(&brokers, &group), 40);
    let mut ids: Vec<u128> = seen.lock().expect("lock").iter().map(|s| s.1).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
}

#[test]
fn the_builder_refuses_a_consumer_without_handlers_or_with_unprotected_dual_topics() {
    let kafka = hule_kafka::KafkaSettings::new("127.0.0.1:1");
    let none = hule_kafka::EventConsumer::builder(&kafka, "g", "svc").build();
    assert!(matches!(none, Err(hule_kafka::BuildError::NoHandlers(_))));
    let dual = hule_kafka::EventConsumer::builder(&kafka, "g", "svc")
        .handle_from(
            TopicChoice::Both,
            |_: (), _ctx: Context, _p: hule_contracts::payloads::BatchServiceSpellcheckInitiateCommandDataV1| async {
                Ok(())
            },
        )
        .build();
    assert!(
        matches!(dual, Err(hule_kafka::BuildError::Stack(_))),
        "TopicChoice::Both without dedup must be refused"
    );
}

hule_kafka::on_both_backends!(
    a_held_up_partition_does_not_hold_up_the_others,
    the_builder_consumes_until_cancelled_and_commits,
    lag_per_partition_and_health_are_reported,
    each_event_once_in_key_order_duplicates_suppressed_poison_dead_lettered,
    a_second_consumer_joining_mid_stream_loses_nothing,
    committed_offsets_survive_a_consumer_restart,
    a_fatal_error_stops_the_consumer_without_committing_its_record,
);

/// Held records over the budget for longer than `max.poll.interval.ms`: the driver pauses the partition holding
/// them and goes on polling, so it stays in its group — one assignment, every record handled once, in order — and
/// the other partition's records flow meanwhile. (When it stopped polling instead, librdkafka left the group after
/// the poll interval, the partition was assigned again and the records after the last commit were handled a
/// second time; when it paused the whole assignment, the other partition waited for the stuck one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_a_held_budget_overrun_keeps_the_consumer_in_its_group() {
    let cluster = TestKafka::start(Backend::Real, 1);
    cluster
        .create_topics([(TOPIC.to_owned(), 2)], 1)
        .await
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("overrun");
    let (stuck_key, other_key) = (key_on(0, 2), key_on(1, 2));
    const N: u128 = 300;
    produce(
        &brokers,
        (0..N)
            .map(|n| essays_registered(TOPIC, n, &stuck_key))
            .collect(),
    )
    .await;
    // Record 5 (partition 0) takes 9 s (a long retry), with the records behind it held over the budget all that
    // time, against a 6 s poll interval.
    let seen: Seen = Arc::default();
    let stuck = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let router = Router::new().on(TopicChoice::Standard, {
        let (seen, stuck) = (seen.clone(), stuck.clone());
        move |ctx: Context, p: BatchEssaysRegistered| {
            let (seen, stuck) = (seen.clone(), stuck.clone());
            async move {
                let first_time = !seen.lock().expect("lock").iter().any(|s| s.1 == 5);
                if ctx.event_id.as_u128() == 5 && first_time {
                    stuck.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(9)).await;
                }
                seen.lock()
                    .expect("lock")
                    .push((p.entity_id, ctx.event_id.as_u128()));
                Ok(())
            }
        }
    });
    let metrics = ConsumerMetrics::detached();
    let stack = undeduplicated_stack(router, &brokers, &metrics);
    let mut cfg = config(&brokers, &group);
    cfg.queue_per_partition = 2;
    cfg.held_bytes = 4096;
    cfg.extra = vec![
        ("session.timeout.ms".into(), "6000".into()),
        ("heartbeat.interval.ms".into(), "1000".into()),
        ("max.poll.interval.ms".into(), "6000".into()),
    ];
    let assigned = Arc::new(tokio::sync::Notify::new());
    cfg.on_assign = Some(assigned.clone());
    let assignments = Arc::new(AtomicU64::new(0));
    let counter = tokio::spawn({
        let assignments = assignments.clone();
        async move {
            loop {
                assigned.notified().await;
                assignments.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let run = tokio::spawn({
        let metrics = metrics.clone();
        async move { run_consumer(&cfg, &[TOPIC], stack, metrics, stop_rx).await }
    });
    wait_until("record 5 to be stuck", Duration::from_secs(30), || {
        stuck.load(Ordering::SeqCst)
    })
    .await;
    // Partition 1's records flow while partition 0 is paused over the budget: all handled before record 5 ends.
    tokio::time::sleep(Duration::from_secs(1)).await;
    produce(
        &brokers,
        (1000..1020)
            .map(|n| essays_registered(TOPIC, n, &other_key))
            .collect(),
    )
    .await;
    wait_until("partition 1's 20 records", Duration::from_secs(6), || {
        seen.lock()
            .expect("lock")
            .iter()
            .filter(|s| s.1 >= 1000)
            .count()
            == 20
    })
    .await;
    assert!(
        !seen.lock().expect("lock").iter().any(|s| s.1 == 5),
        "partition 1 waited for partition 0's stuck record"
    );
    wait_until("320 handled", Duration::from_secs(60), || {
        seen.lock().expect("lock").len() >= N as usize + 20
    })
    .await;
    // Past another poll interval: a consumer that had left the group would have rejoined and redelivered by now.
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop_tx.cancel();
    let stats = run.await.expect("join").expect("run");
    counter.abort();
    let ids: Vec<u128> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.1)
        .filter(|id| *id < 1000)
        .collect();
    assert_eq!(
        ids,
        (0..N).collect::<Vec<_>>(),
        "each record once, in offset order"
    );
    assert_eq!(
        assignments.load(Ordering::SeqCst),
        1,
        "the consumer left and rejoined its group"
    );
    assert!(
        stats.pauses >= 1,
        "the budget was never exceeded: the test tests nothing ({stats:?})"
    );
    assert_eq!(committed_total_of(&brokers, &group, 2), N as i64 + 20);
}

/// The committed offsets of `partitions` partitions of [`TOPIC`], summed.
fn committed_total_of(brokers: &str, group: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(TOPIC, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed")
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

/// A dead-letter producer that takes one dead letter and then goes down (a DLQ cluster's outage).
#[derive(Default)]
struct DownAfterOne(AtomicU64);

impl hule_consumer::DeadLetterSink for DownAfterOne {
    fn send(
        &self,
        _letter: hule_consumer::DeadLetter,
    ) -> futures::future::BoxFuture<'_, Result<(), hule_contracts::DeliveryError>> {
        let first = self.0.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if first {
                Ok(())
            } else {
                Err(hule_contracts::DeliveryError::retriable(
                    "Local: Broker transport failure",
                ))
            }
        })
    }
}

/// An outage overlapping a rebalance: a record stalls (its dead letter cannot be sent; the one before it went) and
/// `/healthz` turns 503;
/// then its partition is revoked (its topic deleted) while it still stalls. The stall ended with the revoke, so
/// once healthy records flow the health board is well again — and the revoked partition's lag series is gone and
/// stays gone. (The stall used to be cleared only by the same retry loop succeeding later, so here `/healthz`
/// stayed 503 for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_a_stall_ended_by_a_revoke_leaves_health_well() {
    let cluster = TestKafka::start(Backend::Real, 1);
    let stall_topic = format!("hule-test-stall-{:x}", Uuid::new_v4().as_u128() as u64);
    cluster
        .create_topics([(TOPIC.to_owned(), 1), (stall_topic.clone(), 1)], 1)
        .await
        .expect("topics");
    let brokers = cluster.bootstrap_servers();
    let group = cluster.group("stall-revoke");
    produce_all(
        &brokers,
        &stall_topic,
        &[
            ("k".to_owned(), b"not json".to_vec(), Default::default()),
            (
                "k".to_owned(),
                b"not json either".to_vec(),
                Default::default(),
            ),
        ],
    )
    .await;
    let seen: Seen = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let registry = hule_metrics::Registry::new();
    let metrics = ConsumerMetrics::new(&registry, "svc", &group);
    let stack = standard_stack(
        router(seen.clone(), count.clone()),
        "svc",
        None,
        Arc::new(DownAfterOne::default()),
        metrics.clone(),
    )
    .expect("stack");
    let mut cfg = config(&brokers, &group);
    cfg.lag_interval = Duration::from_millis(50);
    // The group notices the deleted topic at its next metadata refresh (5 minutes by default).
    cfg.extra
        .push(("topic.metadata.refresh.interval.ms".into(), "500".into()));
    let stop_rx = tokio_util::sync::CancellationToken::new();
    let stop_tx = stop_rx.clone();
    let run = tokio::spawn({
        let (metrics, stall_topic) = (metrics.clone(), stall_topic.clone());
        async move { run_consumer(&cfg, &[TOPIC, &stall_topic], stack, metrics, stop_rx).await }
    });
    let part = format!("consumer:{group}");
    let unwell = || {
        registry
            .health()
            .report()
            .parts
            .iter()
            .any(|(p, ok, _)| *p == part && !*ok)
    };
    wait_until(
        "the stall to make the consumer unwell",
        Duration::from_secs(30),
        unwell,
    )
    .await;
    assert!(!registry.health().report().ok);
    let lag_series = || {
        registry
            .render()
            .lines()
            .any(|l| l.starts_with("consumer_lag{") && l.contains(&stall_topic))
    };
    wait_until(
        "the stalled partition's lag series",
        Duration::from_secs(30),
        lag_series,
    )
    .await;
    cluster
        .delete_topics_with_prefix(&stall_topic)
        .await
        .expect("delete the stalled topic");
    produce(&brokers, (0..5).map(|n| record(n, 1)).collect()).await;
    wait_until("5 healthy records handled", Duration::from_secs(60), || {
        count.load(Ordering::SeqCst) >= 5
    })
    .await;
    let well = tokio::time::timeout(Duration::from_secs(20), async {
        while !registry.health().report().ok {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        well.is_ok(),
        "still unwell: {:?}",
        registry.health().report()
    );
    // Twenty lag intervals: no measurement brings the revoked partition's series back.
    for _ in 0..20 {
        assert!(
            !lag_series(),
            "the revoked partition's lag series came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.cancel();
    run.await.expect("join").expect("run");
}
