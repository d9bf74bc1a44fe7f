//! The outbox scenarios: write cost (`Outbox::begin_on` a `WriterConnection`, and `Outbox::begin` on a plain
//! client), relay drain (PostgreSQL, SQLite), commit-to-publish latency.

use super::*;

/// How the write-cost scenario's transactions publish.
#[derive(Clone, Copy, PartialEq)]
enum WriteMode {
    /// Not at all: the limit.
    Without,
    /// `Outbox::begin` on a plain client: one call of `hule_outbox_enqueue` sent with the `COMMIT`.
    PlainClient,
    /// `Outbox::begin_on` a `WriterConnection`: the outbox's prepared insert sent with the `COMMIT`.
    WithCommit,
}

/// The write-cost scenario's business statement (prepared on every call, as `execute` with a text statement does).
async fn business_write(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO business VALUES ($1, $2)",
        &[&Uuid::new_v4(), &"order 42: 3 essays"],
    )
    .await
}

/// Scenario 2, business transactions with and without one outbox insert on 8 connections: each way of publishing
/// runs for `seconds` in all, over six rounds, one per order of the three ways (the machine's speed drifts, and a
/// phase leaves WAL and dirty pages to the next: each way follows each other way equally often), and the tables are
/// emptied before each phase (so no way runs on a larger table or index than another).
pub async fn write_cost(base: &str, seconds: f64) -> anyhow::Result<ScenarioResult> {
    const MODES: [WriteMode; 3] = [
        WriteMode::Without,
        WriteMode::PlainClient,
        WriteMode::WithCommit,
    ];
    /// Every order of the three ways.
    const ORDERS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let schema = Schema::new(base).await?;
    let admin = schema.client().await?;
    hule_outbox::pg::migrate(&admin).await?;
    admin
        .batch_execute("CREATE TABLE business (id uuid PRIMARY KEY, payload text NOT NULL)")
        .await?;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(hule_outbox::WriterConnection::new(schema.client().await?));
    }
    reset_peak();
    let outbox = hule_outbox::Outbox::new("bench");
    let phase = Duration::from_secs_f64(seconds / ORDERS.len() as f64);
    let (mut done, mut took) = ([0u64; 3], [0f64; 3]);
    for order in ORDERS {
        for m in order {
            let mode = MODES[m];
            admin
                .batch_execute("TRUNCATE business, event_outbox")
                .await?;
            let started = Instant::now();
            let until = started + phase;
            let tasks: Vec<_> = clients
                .drain(..)
                .enumerate()
                .map(|(w, mut client)| {
                    let outbox = outbox.clone();
                    tokio::spawn(async move {
                        let mut n = 0i64;
                        while Instant::now() < until {
                            let rows = || {
                                prepare(
                                    &event_1kb(&format!("batch-{w}-{}", n % 50), n),
                                    &EnqueueOptions::default(),
                                )
                            };
                            match mode {
                                WriteMode::Without => {
                                    let tx = client.transaction().await?;
                                    business_write(&tx).await?;
                                    tx.commit().await?;
                                }
                                WriteMode::PlainClient => {
                                    let mut tx = outbox.begin(&mut client).await?;
                                    business_write(&tx).await?;
                                    tx.stage(rows()?);
                                    tx.commit().await?;
                                }
                                WriteMode::WithCommit => {
                                    let mut tx = outbox.begin_on(&mut client).await?;
                                    business_write(&tx).await?;
                                    tx.stage(rows()?);
                                    tx.commit().await?;
                                }
                            }
                            n += 1;
                        }
                        anyhow::Ok((client, n as u64))
                    })
                })
                .collect();
            for t in tasks {
                let (client, n) = t.await??;
                clients.push(client);
                done[m] += n;
            }
            took[m] += started.elapsed().as_secs_f64();
        }
    }
    let rates: Vec<f64> = done.iter().zip(took).map(|(&n, s)| n as f64 / s).collect();
    drop(clients);
    schema.drop().await;
    Ok(ScenarioResult {
        scenario: "outbox write cost".into(),
        figure: rates[2],
        unit: "tx/s".into(),
        baseline_name: "same tx without outbox".into(),
        baseline: rates[0],
        ratio: rates[2] / rates[0],
        peak_rss_mb: peak_rss_mb(),
        note: format!(
            "PostgreSQL, 8 connections, one business insert per tx; the outbox adds one 1 KB event row (the \
             connection's prepared insert, Outbox::begin_on a WriterConnection; no NOTIFY, as no relay sleeps) sent \
             with the COMMIT; six rounds, one per order of the three ways, the tables emptied before each phase; \
             Outbox::begin on a plain client (one call of hule_outbox_enqueue sent with the COMMIT): {:.0} tx/s = \
             {:.2}",
            rates[1],
            rates[1] / rates[0]
        ),
    })
}

/// Counts the records its inner publisher delivered: how the drain scenarios see their end.
struct CountingPublisher<P> {
    inner: P,
    delivered: Arc<AtomicU64>,
}

impl<P: Publish> Publish for CountingPublisher<P> {
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

/// A publisher that takes every record as delivered at once: the relay with it runs at its database side's own
/// speed, what the drain scenario's note reports beside the figure.
struct InstantPublisher;

impl Publish for InstantPublisher {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        batch.iter().map(|_| Ok(())).collect()
    }
}

/// Runs the relay over `store`'s `n` rows, configured as `hule relay` runs it (metrics on, so its status queries
/// run too, and in a task of its own on the runtime); returns the relay's events per second.
///
/// The end is seen by counting deliveries, not by counting rows: a `COUNT` of the pending rows every 20 ms on the
/// relay's own connection (what an earlier version of this scenario did) took that connection away from the claims and made the
/// figure a measure of the benchmark as much as of the relay. One `depth` at the end checks that nothing is left.
pub(super) async fn drain_until_empty<S: OutboxStore + Send + Sync + 'static>(
    store: S,
    kafka: &KafkaSettings,
    n: usize,
    batch: usize,
) -> anyhow::Result<f64> {
    let publisher = KafkaPublisher::new(&ProducerConfig::with_settings(kafka))?;
    drain_with(store, publisher, n, batch).await
}

/// [`drain_until_empty`] with any publisher.
async fn drain_with<S, P>(store: S, publisher: P, n: usize, batch: usize) -> anyhow::Result<f64>
where
    S: OutboxStore + Send + Sync + 'static,
    P: Publish + Send + Sync + 'static,
{
    let delivered = Arc::new(AtomicU64::new(0));
    let publisher = CountingPublisher {
        inner: publisher,
        delivered: delivered.clone(),
    };
    reset_peak();
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let registry = hule_metrics::Registry::new();
    let config = RelayConfig {
        poll_interval: Duration::from_millis(50),
        metrics: Some(hule_outbox::metrics::OutboxMetrics::new(&registry, "bench")),
        batch_size: batch,
        ..RelayConfig::default()
    };
    // In a task of its own, as `hule relay` runs it: a future the runtime's `block_on` drives runs on the calling
    // thread, and every wake of it by its database connection's task (on a worker) crossed threads.
    let relay = tokio::spawn({
        let stop = stop.clone();
        async move {
            let stats = run_relay(&store, &publisher, &config, stop).await;
            (stats, store)
        }
    });
    // Bounded: a relay that stops delivering (rows parked) ends the run, and the depth check reports it.
    while delivered.load(Ordering::SeqCst) < n as u64
        && started.elapsed() < Duration::from_secs(600)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    let (stats, store) = relay.await?;
    let rate = stats?.published as f64 / started.elapsed().as_secs_f64();
    let left = store.depth().await?;
    anyhow::ensure!(left == 0, "the relay stopped with {left} rows left");
    Ok(rate)
}

/// Hands every record of `records` to `producer` at once and waits for all their acknowledgements.
async fn produce_all(
    producer: &rdkafka::producer::FutureProducer,
    records: &[Claimed],
    what: &str,
) -> anyhow::Result<()> {
    let sends: Vec<_> = records
        .iter()
        .map(|r| {
            let mut record = FutureRecord::to(&r.topic)
                .payload(&r.value)
                .headers(hule_kafka::consumer::owned_headers(&r.headers));
            if let Some(k) = &r.key {
                record = record.key(k);
            }
            producer.send(record, Duration::from_secs(30))
        })
        .collect();
    for s in futures::future::join_all(sends).await {
        s.map_err(|(e, _)| anyhow::anyhow!("{what}: {e}"))?;
    }
    Ok(())
}

/// Produces the drain's `n` records with the relay's producer configuration and no database, in batches of `batch`
/// whose acknowledgements are awaited before the next (as the relay does); returns records per second.
async fn plain_produce(kafka: &KafkaSettings, n: usize, batch: usize) -> anyhow::Result<f64> {
    let producer = ProducerConfig::with_settings(kafka).future_producer()?;
    let topic = Event::SpellcheckPhaseCompleted.topic();
    let started = Instant::now();
    for start in (0..n).step_by(batch) {
        let batch = super::consumer::bench_records(topic, start, (start + batch).min(n))?;
        produce_all(&producer, &batch, "plain produce").await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Produces the drain's `n` records with the relay's producer configuration and no database, every record handed
/// to librdkafka at once (no batch awaited before the next: librdkafka bounds what is in flight by its own queue
/// and `max.in.flight`); returns records per second. The producer half of the relay's limit.
async fn unbounded_produce(kafka: &KafkaSettings, n: usize) -> anyhow::Result<(f64, CpuUse)> {
    let producer = ProducerConfig::with_settings(kafka).future_producer()?;
    let topic = Event::SpellcheckPhaseCompleted.topic();
    let records = super::consumer::bench_records(topic, 0, n)?;
    let cpu = CpuUse::start();
    let started = Instant::now();
    produce_all(&producer, &records, "unbounded produce").await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    Ok((rate, cpu.stop(n)))
}

/// What the relay's two halves together need of the machine: at most this many events a second fit on its cores
/// when the relay's database side takes `db` and its producer `produce` (core-microseconds per event, each
/// measured alone).
fn cpu_bound(db: &CpuUse, produce: &CpuUse) -> Option<f64> {
    let per_event = db.per_event_us? + produce.per_event_us?;
    Some(crate::bench::machine_cores() * 1e6 / per_event)
}

/// The note's sentence on the machine's CPU during a drain scenario.
fn cpu_note(sql: &CpuUse, relay: &CpuUse, db: &CpuUse, produce: &CpuUse) -> String {
    format!(
        "machine CPU per event (core-µs, every process): SQL loop {}, relay {} ({} of {} cores busy), the relay's \
         database side alone {}, producer alone {}; those two halves together fit {} events/s on these cores",
        sql.us(),
        relay.us(),
        relay.cores_busy.map_or("?".into(), |c| format!("{c:.2}")),
        crate::bench::machine_cores(),
        db.us(),
        produce.us(),
        cpu_bound(db, produce).map_or("?".into(), |b| format!("{b:.0}")),
    )
}

/// The relay's limit: the smaller of its SQL loop alone and its producer alone with unbounded batches in flight.
fn relay_limit(sql_name: &str, sql: f64, produce: f64) -> (String, f64) {
    if sql <= produce {
        (format!("limit: {sql_name}"), sql)
    } else {
        ("limit: unbounded produce".into(), produce)
    }
}

/// Scenario 3, relay drain from PostgreSQL: against a plain SQL claim-and-delete loop over the same rows, and a
/// plain produce loop of the same records (no database).
pub async fn drain_pg(
    base: &str,
    kafka: &KafkaSettings,
    n: usize,
    batch: usize,
) -> anyhow::Result<Vec<ScenarioResult>> {
    // Baseline first: the same rows, deleted in claims of the relay's batch size with no Kafka.
    let schema = Schema::new(base).await?;
    pg_fill(&schema, n).await?;
    let c = schema.client().await?;
    let sql_cpu = CpuUse::start();
    let started = Instant::now();
    loop {
        let rows = c
            .query(
                "DELETE FROM event_outbox WHERE seq IN (SELECT seq FROM event_outbox WHERE published_at IS NULL
                 ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING event_data::text, headers::text",
                &[&(batch as i64)],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
    }
    let baseline = n as f64 / started.elapsed().as_secs_f64();
    let sql_cpu = sql_cpu.stop(n);
    schema.drop().await;

    let schema = Schema::new(base).await?;
    pg_fill(&schema, n).await?;
    let outbox = PgOutbox::connect(&schema.url).await?;
    let relay_cpu = CpuUse::start();
    let figure = drain_until_empty(outbox, kafka, n, batch).await?;
    let relay_cpu = relay_cpu.stop(n);
    let rss = peak_rss_mb();
    schema.drop().await;
    // The relay's database side alone: the same drain with a publisher that acknowledges at once.
    let schema = Schema::new(base).await?;
    pg_fill(&schema, n).await?;
    let outbox = PgOutbox::connect(&schema.url).await?;
    let db_cpu = CpuUse::start();
    let instant = drain_with(outbox, InstantPublisher, n, batch).await?;
    let db_cpu = db_cpu.stop(n);
    schema.drop().await;
    let produce = plain_produce(kafka, n, batch).await?;
    let (unbounded, produce_cpu) = unbounded_produce(kafka, n).await?;
    let cpu = cpu_note(&sql_cpu, &relay_cpu, &db_cpu, &produce_cpu);
    let (limit_name, limit) = relay_limit("SQL claim+delete", baseline, unbounded);
    let vs_produce = ScenarioResult {
        scenario: "relay drain vs awaited produce".into(),
        figure,
        unit: "events/s".into(),
        baseline_name: format!("produce, {batch} per awaited batch"),
        baseline: produce,
        ratio: figure / produce,
        peak_rss_mb: rss,
        note: format!("the PostgreSQL drain against the same {n} records produced with the relay's producer settings (idempotent, acks=all, lz4, linger 1 ms), {batch} per awaited batch: the relay's own publish pattern without the database"),
    };
    Ok(vec![ScenarioResult {
        scenario: "relay drain (PostgreSQL)".into(),
        figure,
        unit: "events/s".into(),
        baseline_name: limit_name,
        baseline: limit,
        ratio: figure / limit,
        peak_rss_mb: rss,
        note: format!("{n} events of 1 KB over 500 keys into Kafka ({TOPIC_PARTITIONS} partitions), batches of {batch}; the relay's limit is the smaller of its SQL loop alone (claim+delete {baseline:.0}/s) and its producer alone with every record in flight ({unbounded:.0}/s); the relay with a publisher that acknowledges at once (its database side alone): {instant:.0}/s; {cpu}; target ratio ≥ 0.8 and ≥ 60,000/s"),
    }, vs_produce])
}

/// 3b. Relay drain from SQLite, against a plain select+delete loop.
pub async fn drain_sqlite(
    kafka: &KafkaSettings,
    n: usize,
    batch: usize,
) -> anyhow::Result<ScenarioResult> {
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
            let mut stmt = tx.prepare("SELECT seq, event_data, headers FROM event_outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?1")?;
            let rows = stmt.query_map([batch as i64], |r| r.get::<_, i64>(0))?;
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
    let figure = drain_until_empty(outbox, kafka, n, batch).await?;
    let rss = peak_rss_mb();
    let _ = std::fs::remove_dir_all(&dir);
    let (unbounded, _) = unbounded_produce(kafka, n).await?;
    let (limit_name, limit) = relay_limit("SQL select+delete", baseline, unbounded);
    Ok(ScenarioResult {
        scenario: "relay drain (SQLite)".into(),
        figure,
        unit: "events/s".into(),
        baseline_name: limit_name,
        baseline: limit,
        ratio: figure / limit,
        peak_rss_mb: rss,
        note: format!("{n} events of 1 KB over 500 keys into Kafka, batches of {batch}; the relay's limit is the smaller of its SQL loop alone (select+delete {baseline:.0}/s) and its producer alone with every record in flight ({unbounded:.0}/s); target ratio ≥ 0.8 and ≥ 60,000/s"),
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
    let stop = tokio_util::sync::CancellationToken::new();
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
        stop.cancel();
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
