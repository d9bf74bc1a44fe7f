//! The I/O scenarios of `hule bench`: outbox write cost, relay drain, commit-to-publish latency, consumer
//! throughput and the demo pipeline. Kafka is the embedded mock cluster (kept on the main thread) or, with
//! `hule bench --brokers`, a real cluster; PostgreSQL is `--database-url` (default the local `test` database), each scenario in a schema of its own, dropped afterwards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hule_consumer::{
    standard_stack, ConsumerMetrics, Context, MemorySink, PgInbox, RedisDedup, Router, TopicChoice,
};
use hule_contracts::enums::ProcessingStatus;
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_contracts::{Event, EventEnvelope, Timestamp};
use hule_kafka::consumer::{run_consumer, ConsumerConfig};
use hule_kafka::KafkaSettings;
use hule_kafka::{KafkaPublisher, ProducerConfig};
use hule_outbox::model::Claimed;
use hule_outbox::prepare::{prepare, EnqueueOptions, NewRow};
use hule_outbox::relay::{run_relay, Publish, RelayConfig};
use hule_outbox::store::OutboxStore;
use hule_outbox::{PgOutbox, SqliteOutbox};
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::watch;
use uuid::Uuid;

use crate::bench::{peak_rss_mb, Group, ScenarioResult};
use hule_demo::report::Latency;

const TOPIC_PARTITIONS: i32 = 24;

/// Sizes of one run.
pub struct Sizes {
    pub drain_events: usize,
    pub write_seconds: f64,
    pub latency_seconds: f64,
    pub consumer_events: usize,
    pub pipeline_batches: usize,
}

impl Sizes {
    pub fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                drain_events: 5_000,
                write_seconds: 1.5,
                latency_seconds: 2.0,
                consumer_events: 5_000,
                pipeline_batches: 6,
            }
        } else {
            Sizes {
                drain_events: 100_000,
                write_seconds: 8.0,
                latency_seconds: 10.0,
                consumer_events: 50_000,
                pipeline_batches: 60,
            }
        }
    }
}

/// Resets the peak-RSS counter (Linux `clear_refs` 5), so the next reading covers one scenario.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A 1 KB event (the payload's `error_code` pads it) for key `key` with counter `n`.
fn event_1kb(key: &str, n: i64) -> EventEnvelope<SpellcheckPhaseCompletedV1> {
    let at = Timestamp::from_datetime(chrono::Utc::now());
    let payload = SpellcheckPhaseCompletedV1 {
        entity_id: format!("essay-{n}"),
        batch_id: key.to_owned(),
        correlation_id: "bench".into(),
        status: ProcessingStatus::Completed,
        corrected_text_storage_id: None,
        error_code: Some("x".repeat(640)),
        processing_duration_ms: n,
        timestamp: at,
    };
    EventEnvelope::new(
        Uuid::new_v4(),
        Event::SpellcheckPhaseCompleted.topic(),
        at,
        "bench",
        Uuid::new_v4(),
        payload,
    )
}

fn rows_1kb(n: usize, offset: usize) -> anyhow::Result<Vec<NewRow>> {
    let mut rows = Vec::with_capacity(n);
    for i in offset..offset + n {
        rows.extend(prepare(
            &event_1kb(&format!("batch-{}", i % 500), i as i64),
            &EnqueueOptions::default(),
        )?);
    }
    Ok(rows)
}

struct Schema {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl Schema {
    async fn new(base: &str) -> anyhow::Result<Schema> {
        let admin = hule_pg::connect(base)
            .await
            .context("is PostgreSQL running? (--database-url)")?;
        let name = format!("hule_bench_{}", &Uuid::new_v4().simple().to_string()[..12]);
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Ok(Schema { admin, name, url })
    }

    async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        Ok(hule_pg::connect(&self.url).await?)
    }

    async fn drop(self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await;
    }
}

async fn pg_fill(schema: &Schema, n: usize) -> anyhow::Result<()> {
    let mut c = schema.client().await?;
    hule_outbox::pg::migrate(&c).await?;
    for start in (0..n).step_by(500) {
        let rows = rows_1kb(500.min(n - start), start)?;
        let tx = c.transaction().await?;
        hule_outbox::pg::enqueue(&tx, &rows).await?;
        tx.commit().await?;
    }
    c.batch_execute("ANALYZE event_outbox").await?;
    Ok(())
}

/// 2. Business transactions with and without one outbox insert, 8 connections.
pub async fn write_cost(base: &str, seconds: f64) -> anyhow::Result<ScenarioResult> {
    let schema = Schema::new(base).await?;
    let c = schema.client().await?;
    hule_outbox::pg::migrate(&c).await?;
    c.batch_execute("CREATE TABLE business (id uuid PRIMARY KEY, payload text NOT NULL)")
        .await?;
    reset_peak();
    let mut rates = Vec::new();
    for with_outbox in [false, true] {
        let count = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::new();
        for w in 0..8 {
            let mut client = schema.client().await?;
            let count = count.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0i64;
                while Instant::now() < until {
                    let tx = client.transaction().await?;
                    tx.execute(
                        "INSERT INTO business VALUES ($1, $2)",
                        &[&Uuid::new_v4(), &"order 42: 3 essays"],
                    )
                    .await?;
                    if with_outbox {
                        let rows = prepare(
                            &event_1kb(&format!("batch-{w}-{}", n % 50), n),
                            &EnqueueOptions::default(),
                        )?;
                        hule_outbox::pg::enqueue(&tx, &rows).await?;
                    }
                    tx.commit().await?;
                    count.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                anyhow::Ok(())
            }));
        }
        let started = Instant::now();
        for t in tasks {
            t.await??;
        }
        rates.push(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64());
    }
    schema.drop().await;
    Ok(ScenarioResult {
        scenario: "outbox write cost".into(),
        figure: rates[1],
        unit: "tx/s".into(),
        baseline_name: "same tx without outbox".into(),
        baseline: rates[0],
        ratio: rates[1] / rates[0],
        peak_rss_mb: peak_rss_mb(),
        note: "PostgreSQL, 8 connections, one business insert per tx; the outbox adds one 1 KB event row and its NOTIFY".into(),
    })
}

/// Counts what the relay delivered, so the benchmark knows when it is done without asking the database.
struct CountingPublisher {
    inner: KafkaPublisher,
    delivered: Arc<AtomicU64>,
}

impl Publish for CountingPublisher {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        let out = self.inner.publish_batch(batch).await;
        let ok = out.iter().filter(|r| r.is_ok()).count() as u64;
        self.delivered.fetch_add(ok, Ordering::SeqCst);
        out
    }
}

/// Runs the relay over `store`'s `n` rows, configured as `hule relay` runs it (metrics on, so its status queries
/// run too); returns the relay's events per second.
///
/// The end is seen by counting deliveries, not by counting rows: a `COUNT` of the pending rows every 20 ms on the
/// relay's own connection (what this did before session 5) took that connection away from the claims and made the
/// figure a measure of the benchmark as much as of the relay. One `depth` at the end checks that nothing is left.
async fn drain_until_empty<S: OutboxStore>(
    store: &S,
    kafka: &KafkaSettings,
    n: usize,
) -> anyhow::Result<f64> {
    let delivered = Arc::new(AtomicU64::new(0));
    let publisher = CountingPublisher {
        inner: KafkaPublisher::new(&ProducerConfig::with_settings(kafka))?,
        delivered: delivered.clone(),
    };
    reset_peak();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let registry = hule_metrics::Registry::new();
    let config = RelayConfig {
        poll_interval: Duration::from_millis(50),
        metrics: Some(hule_outbox::metrics::OutboxMetrics::new(&registry, "bench")),
        ..RelayConfig::default()
    };
    let watcher = async {
        // Bounded: a relay that stops delivering (rows parked) ends the run, and the depth check reports it.
        while delivered.load(Ordering::SeqCst) < n as u64
            && started.elapsed() < Duration::from_secs(600)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::SeqCst);
    };
    let (stats, ()) = tokio::join!(run_relay(store, &publisher, &config, stop.clone()), watcher);
    let rate = stats?.published as f64 / started.elapsed().as_secs_f64();
    let left = store.depth().await?;
    anyhow::ensure!(left == 0, "the relay stopped with {left} rows left");
    Ok(rate)
}

/// 3. Relay drain from PostgreSQL, against a plain SQL claim-and-delete loop over the same rows.
pub async fn drain_pg(
    base: &str,
    kafka: &KafkaSettings,
    n: usize,
) -> anyhow::Result<ScenarioResult> {
    // Baseline first: the same rows, deleted in claims of 500 with no Kafka.
    let schema = Schema::new(base).await?;
    pg_fill(&schema, n).await?;
    let c = schema.client().await?;
    let started = Instant::now();
    loop {
        let rows = c
            .query(
                "DELETE FROM event_outbox WHERE seq IN (SELECT seq FROM event_outbox WHERE published_at IS NULL
                 ORDER BY seq LIMIT 500 FOR UPDATE SKIP LOCKED) RETURNING event_data::text, headers::text",
                &[],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
    }
    let baseline = n as f64 / started.elapsed().as_secs_f64();
    schema.drop().await;

    let schema = Schema::new(base).await?;
    pg_fill(&schema, n).await?;
    let outbox = PgOutbox::connect(&schema.url).await?;
    let figure = drain_until_empty(&outbox, kafka, n).await?;
    let rss = peak_rss_mb();
    schema.drop().await;
    Ok(ScenarioResult {
        scenario: "relay drain (PostgreSQL)".into(),
        figure,
        unit: "events/s".into(),
        baseline_name: "SQL claim+delete, no Kafka".into(),
        baseline,
        ratio: figure / baseline,
        peak_rss_mb: rss,
        note: format!("{n} events of 1 KB over 500 keys into Kafka ({TOPIC_PARTITIONS} partitions), batches of 500; target ratio ≥ 0.60, RSS ≤ 60 MB"),
    })
}

/// 3b. Relay drain from SQLite, against a plain select+delete loop.
pub async fn drain_sqlite(kafka: &KafkaSettings, n: usize) -> anyhow::Result<ScenarioResult> {
    let dir = std::env::temp_dir().join(format!("hule-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let fill = |path: &std::path::Path| -> anyhow::Result<()> {
        let mut conn = hule_outbox::sqlite::open(path)?;
        hule_outbox::sqlite::migrate(&conn)?;
        for start in (0..n).step_by(500) {
            let rows = rows_1kb(500.min(n - start), start)?;
            let tx = conn.transaction()?;
            hule_outbox::sqlite::enqueue(&tx, &rows)?;
            tx.commit()?;
        }
        Ok(())
    };
    let base_path = dir.join("baseline.db");
    fill(&base_path)?;
    let mut conn = hule_outbox::sqlite::open(&base_path)?;
    let started = Instant::now();
    loop {
        let tx = conn.transaction()?;
        let seqs: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT seq, event_data, headers FROM event_outbox WHERE published_at IS NULL ORDER BY seq LIMIT 500")?;
            let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if seqs.is_empty() {
            break;
        }
        for s in &seqs {
            tx.execute("DELETE FROM event_outbox WHERE seq = ?1", [s])?;
        }
        tx.commit()?;
    }
    let baseline = n as f64 / started.elapsed().as_secs_f64();

    let path = dir.join("outbox.db");
    fill(&path)?;
    let outbox = SqliteOutbox::open(&path)?;
    let figure = drain_until_empty(&outbox, kafka, n).await?;
    let rss = peak_rss_mb();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ScenarioResult {
        scenario: "relay drain (SQLite)".into(),
        figure,
        unit: "events/s".into(),
        baseline_name: "SQL select+delete, no Kafka".into(),
        baseline,
        ratio: figure / baseline,
        peak_rss_mb: rss,
        note: format!("{n} events of 1 KB over 500 keys into Kafka"),
    })
}

/// Measures commit → broker acknowledgement per record.
struct TimingPublisher {
    inner: KafkaPublisher,
    samples: Mutex<Vec<f64>>,
}

impl Publish for TimingPublisher {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        let out = self.inner.publish_batch(batch).await;
        let now = chrono::Utc::now().timestamp_micros();
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        for (row, r) in batch.iter().zip(&out) {
            if r.is_ok() {
                s.push((now - row.created_at_micros) as f64 / 1000.0);
            }
        }
        out
    }
}

async fn latency_run(
    base: &str,
    kafka: &KafkaSettings,
    listen: bool,
    seconds: f64,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let schema = Schema::new(base).await?;
    let outbox = PgOutbox::connect_with(&schema.url, listen).await?;
    let publisher = TimingPublisher {
        inner: KafkaPublisher::new(&ProducerConfig::with_settings(kafka))?,
        samples: Mutex::default(),
    };
    reset_peak();
    let stop = Arc::new(AtomicBool::new(false));
    // Polling-only uses the `testing` interval of the original (0.1 s); with LISTEN it is only a fallback.
    let config = RelayConfig {
        poll_interval: Duration::from_millis(100),
        ..RelayConfig::default()
    };
    let mut writer = schema.client().await?;
    let writes = async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let total = (seconds * 1000.0) as i64;
        for n in 0..total {
            tick.tick().await;
            let rows = prepare(
                &event_1kb(&format!("batch-{}", n % 100), n),
                &EnqueueOptions::default(),
            )?;
            let tx = writer.transaction().await?;
            hule_outbox::pg::enqueue(&tx, &rows).await?;
            tx.commit().await?;
        }
        // Let the last ones through, then stop.
        let deadline = Instant::now() + Duration::from_secs(5);
        while publisher.samples.lock().map(|s| s.len()).unwrap_or(0) < total as usize
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::SeqCst);
        anyhow::Ok(())
    };
    let (r, w) = tokio::join!(
        run_relay(&outbox, &publisher, &config, stop.clone()),
        writes
    );
    r?;
    w?;
    let rss = peak_rss_mb();
    schema.drop().await;
    Ok((publisher.samples.into_inner().unwrap_or_default(), rss))
}

/// 4. Commit-to-publish latency at 1,000 events/s, LISTEN/NOTIFY against polling only.
pub async fn latency(
    base: &str,
    kafka: &KafkaSettings,
    seconds: f64,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let (listen, rss) = latency_run(base, kafka, true, seconds).await?;
    let (poll, _) = latency_run(base, kafka, false, seconds).await?;
    let samples = listen.len();
    let (listen, poll) = (Latency::of(listen), Latency::of(poll));
    let mk = |name: &str, pick: fn(&Latency) -> f64| {
        ScenarioResult {
        scenario: format!("commit→publish {name}"),
        figure: pick(&listen),
        unit: "ms".into(),
        baseline_name: "polling only (0.1 s)".into(),
        baseline: pick(&poll),
        ratio: pick(&listen) / pick(&poll),
        peak_rss_mb: rss,
        note: format!(
            "1,000 events/s for {seconds} s, one event per tx, PostgreSQL → Kafka; LISTEN max {:.1} ms ({} samples), polling max {:.1} ms; targets p50 ≤ 10 ms, p99 ≤ 50 ms",
            listen.max_ms, samples, poll.max_ms
        ),
    }
    };
    Ok(vec![mk("p50", |l| l.p50_ms), mk("p99", |l| l.p99_ms)])
}

/// Produces `n` 1 KB envelopes to a fresh topic.
async fn produce_n(kafka: &KafkaSettings, topic: &str, n: usize) -> anyhow::Result<()> {
    let publisher = KafkaPublisher::new(&ProducerConfig::with_settings(kafka))?;
    for start in (0..n).step_by(1000) {
        let mut batch = Vec::new();
        for i in start..(start + 1000).min(n) {
            let env = event_1kb(&format!("batch-{}", i % 500), i as i64);
            let rows = prepare(&env, &EnqueueOptions::default())?;
            for r in rows {
                batch.push(Claimed {
                    seq: i as i64,
                    topic: topic.to_owned(),
                    key: Some(r.event_key),
                    value: r.event_data.into_bytes(),
                    headers: hule_contracts::Headers::from_json(&r.headers)?,
                    attempts: 0,
                    created_at_micros: 0,
                });
            }
        }
        for r in publisher.publish_batch(&batch).await {
            r.map_err(anyhow::Error::msg)?;
        }
    }
    Ok(())
}

/// Consumes the topic with a plain rdkafka loop (the baseline); returns records per second after the first.
async fn plain_consume(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
    n: usize,
) -> anyhow::Result<f64> {
    let c: StreamConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    c.subscribe(&[topic])?;
    let _first = c.recv().await?;
    let started = Instant::now();
    for _ in 1..n {
        let m = c.recv().await?;
        std::hint::black_box(&m);
    }
    Ok((n - 1) as f64 / started.elapsed().as_secs_f64())
}

enum Dedup {
    None,
    Redis,
    Inbox,
}

async fn runtime_consume(
    kafka: &KafkaSettings,
    service: String,
    topic: &str,
    n: usize,
    dedup: Dedup,
    base: &str,
) -> anyhow::Result<(f64, f64)> {
    let metrics = ConsumerMetrics::detached();
    let mut schema = None;
    let (router, store): (Router, Option<Arc<dyn hule_consumer::DedupStore>>) = match dedup {
        Dedup::None => (
            Router::new().on(
                TopicChoice::Standard,
                |_c: Context, p: SpellcheckPhaseCompletedV1| async move {
                    std::hint::black_box(p);
                    Ok(())
                },
            ),
            None,
        ),
        Dedup::Redis => {
            let r = RedisDedup::new("redis://127.0.0.1:6379")?;
            r.ping().await.context("Redis on 127.0.0.1:6379")?;
            (
                Router::new().on(
                    TopicChoice::Standard,
                    |_c: Context, p: SpellcheckPhaseCompletedV1| async move {
                        std::hint::black_box(p);
                        Ok(())
                    },
                ),
                Some(Arc::new(r)),
            )
        }
        Dedup::Inbox => {
            let s = Schema::new(base).await?;
            let inbox = PgInbox::connect(&s.url, &service, 8).await?;
            schema = Some(s);
            let handler: Arc<hule_consumer::inbox::TxHandler<SpellcheckPhaseCompletedV1>> =
                Arc::new(|_tx, _ctx, p| {
                    Box::pin(async move {
                        std::hint::black_box(p);
                        Ok(())
                    })
                });
            (
                inbox.route(Router::new(), TopicChoice::Standard, handler),
                None,
            )
        }
    };
    let stack = standard_stack(
        router,
        &service,
        store,
        Arc::new(MemorySink::default()),
        metrics.clone(),
    )?;
    let mut cfg = ConsumerConfig::with_settings(kafka, &service);
    let assigned = Arc::new(tokio::sync::Notify::new());
    cfg.on_assign = Some(assigned.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    reset_peak();
    let m = metrics.clone();
    let topic_owned = topic.to_owned();
    let driver =
        tokio::spawn(async move { run_consumer(&cfg, &[&topic_owned], stack, m, stop_rx).await });
    assigned.notified().await;
    let started = Instant::now();
    let done = || {
        ["handled", "duplicate"]
            .iter()
            .map(|o| metrics.outcomes(topic, o))
            .sum::<f64>() as usize
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    // Like the plain loop, the clock starts at the first record finished: the fetch start-up after the
    // assignment (offset lookups, first fetch) is not throughput.
    while done() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let first = started.elapsed();
    let (started, before) = (Instant::now(), done());
    while done() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = (done() - before) as f64 / started.elapsed().as_secs_f64();
    tracing::info!(?first, "first record finished after the assignment");
    let _ = stop_tx.send(true);
    driver.await??;
    let rss = peak_rss_mb();
    if let Some(s) = schema {
        s.drop().await;
    }
    Ok((rate, rss))
}

/// 5. Consumer runtime with no dedup, Redis and the PostgreSQL inbox, against a plain consume loop.
pub async fn consumer(
    base: &str,
    kafka: &KafkaSettings,
    n: usize,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let topic = Event::SpellcheckPhaseCompleted.topic();
    let plain = format!("bench-plain-{}", Uuid::new_v4().simple());
    let services: Vec<String> = (0..3)
        .map(|_| format!("bench-{}", Uuid::new_v4().simple()))
        .collect();
    // On a real cluster the topic may hold earlier records: every group of this run starts where they end.
    for group in services.iter().chain([&plain]) {
        hule_kafka::consumer::start_group_at_end(kafka, group, &[topic], Duration::from_secs(10))?;
    }
    produce_n(kafka, topic, n).await?;
    let baseline = plain_consume(kafka, &plain, topic, n).await?;
    let mut out = Vec::new();
    for ((name, dedup), service) in [
        ("no dedup", Dedup::None),
        ("Redis dedup", Dedup::Redis),
        ("PostgreSQL inbox", Dedup::Inbox),
    ]
    .into_iter()
    .zip(services)
    {
        let (rate, rss) = runtime_consume(kafka, service, topic, n, dedup, base).await?;
        out.push(ScenarioResult {
            scenario: format!("consumer, {name}"),
            figure: rate,
            unit: "events/s".into(),
            baseline_name: "plain rdkafka consume loop".into(),
            baseline,
            ratio: rate / baseline,
            peak_rss_mb: rss,
            note: format!("{n} events of 1 KB, {TOPIC_PARTITIONS} partitions; decode + validate + retry/DLQ layers + handler; commits every 500 ms; timed from the first record finished, as the plain loop"),
        });
    }
    Ok(out)
}

/// 6. The demo pipeline, on its embedded cluster or on the real one (`real`).
pub async fn pipeline(
    cluster: Option<&hule_demo::Embedded>,
    real: Option<&KafkaSettings>,
    batches: usize,
) -> anyhow::Result<ScenarioResult> {
    reset_peak();
    let config = hule_demo::DemoConfig {
        batches,
        progress: false,
        kafka: real.cloned(),
        ..hule_demo::DemoConfig::default()
    };
    let r = hule_demo::run(&config, cluster).await?;
    anyhow::ensure!(r.reconciled, "the pipeline's counts did not reconcile");
    let events: u64 = r.events_per_topic.values().map(|c| c.records).sum();
    Ok(ScenarioResult {
        scenario: "demo pipeline".into(),
        figure: r.relay_events_per_second,
        unit: "events/s".into(),
        baseline_name: "end-to-end p50 latency ms".into(),
        baseline: r.end_to_end_latency.p50_ms,
        ratio: f64::NAN,
        peak_rss_mb: peak_rss_mb(),
        note: format!(
            "{batches} batches × 24 essays, {events} events through 5 services; latency p50 {:.0} ms, p99 {:.0} ms; tau {:.2}",
            r.end_to_end_latency.p50_ms, r.end_to_end_latency.p99_ms, r.kendall_tau_mean
        ),
    })
}

/// Runs every I/O scenario on the embedded mock cluster, or on a real cluster when `real` is given (its
/// topic is created when missing; records of earlier runs are skipped by every consumer of the run).
pub fn run_all(
    quick: bool,
    base: &str,
    wanted: &dyn Fn(Group) -> bool,
    real: Option<&KafkaSettings>,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let sizes = Sizes::new(quick);
    let topic = (
        Event::SpellcheckPhaseCompleted.topic().to_owned(),
        TOPIC_PARTITIONS,
    );
    let mock = match real {
        None => {
            let cluster = rdkafka::mocking::MockCluster::new(1)?;
            hule_kafka::mock::create_topics(&cluster, [topic.clone()], 1)
                .map_err(anyhow::Error::msg)?;
            Some(cluster)
        }
        Some(_) => None,
    };
    let kafka = match (&mock, real) {
        (Some(c), _) => KafkaSettings::new(&c.bootstrap_servers()),
        (None, Some(k)) => k.clone(),
        (None, None) => anyhow::bail!("no Kafka to benchmark against"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut out = Vec::new();
    runtime.block_on(async {
        if real.is_some() {
            ensure_topic(&kafka, &topic.0, topic.1).await?;
        }
        // On a terminal a spinner names the scenario running; elsewhere a line each (for logs).
        let spinner = crate::progress::spinner("bench");
        let step = |name: &str| {
            if crate::progress::drawn() {
                spinner.set_message(format!("bench: {name}"));
            } else {
                eprintln!("bench: {name}…");
            }
        };
        if wanted(Group::Write) {
            step("outbox write cost");
            out.push(write_cost(base, sizes.write_seconds).await?);
        }
        if wanted(Group::Drain) {
            step("relay drain (PostgreSQL)");
            out.push(drain_pg(base, &kafka, sizes.drain_events).await?);
            step("relay drain (SQLite)");
            out.push(drain_sqlite(&kafka, sizes.drain_events).await?);
        }
        if wanted(Group::Latency) {
            step("commit-to-publish latency");
            out.extend(latency(base, &kafka, sizes.latency_seconds).await?);
        }
        if wanted(Group::Consumer) {
            step("consumer");
            out.extend(consumer(base, &kafka, sizes.consumer_events).await?);
        }
        spinner.finish_and_clear();
        anyhow::Ok(())
    })?;
    if wanted(Group::Pipeline) {
        eprintln!("bench: demo pipeline…");
        if real.is_some() {
            out.push(runtime.block_on(pipeline(None, Some(&kafka), sizes.pipeline_batches))?);
        } else {
            // On the mock, the pipeline has its own three-broker cluster with every topic.
            let demo_cluster = hule_demo::embedded_cluster(3, 6)?;
            out.push(runtime.block_on(pipeline(
                Some(&demo_cluster),
                None,
                sizes.pipeline_batches,
            ))?);
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(out)
}

/// Creates `topic` on a real cluster unless it exists (with whatever partitions it has).
async fn ensure_topic(kafka: &KafkaSettings, topic: &str, partitions: i32) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        kafka.client_config().create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in admin.create_topics([&new], &opts).await? {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => anyhow::bail!("cannot create {t} on {}: {code}", kafka.brokers),
        }
    }
    Ok(())
}
