//! The I/O scenarios of `hule bench`: outbox write cost, relay drain, commit-to-publish latency, consumer
//! throughput, the relay against the Python original's, and the demo pipeline. Kafka is the embedded mock cluster (kept on the main thread) or, with
//! `hule bench --brokers`, a real cluster; PostgreSQL is `--database-url` (default the local `test` database), each scenario in a schema of its own, dropped afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
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
use rdkafka::producer::FutureRecord;
use uuid::Uuid;

use crate::bench::{peak_rss_mb, Group, ScenarioResult};
use hule_demo::report::Latency;

mod consumer;
mod outbox;
mod python;

use consumer::{consumer, pipeline};
use outbox::{drain_pg, drain_sqlite, latency, write_cost};

const TOPIC_PARTITIONS: i32 = 24;

/// Sizes of one run.
pub struct Sizes {
    pub drain_events: usize,
    pub write_seconds: f64,
    pub latency_seconds: f64,
    pub consumer_events: usize,
    pub pipeline_batches: usize,
    pub python_rows: usize,
    /// Rows per relay batch in the drain scenarios (and their SQL and produce loops).
    pub relay_batch: usize,
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
                python_rows: 1_000,
                relay_batch: RelayConfig::default().batch_size,
            }
        } else {
            Sizes {
                drain_events: 100_000,
                write_seconds: 8.0,
                latency_seconds: 10.0,
                consumer_events: 200_000,
                pipeline_batches: 60,
                python_rows: 50_000,
                relay_batch: RelayConfig::default().batch_size,
            }
        }
    }
}

/// The machine's CPU time over a stretch of a scenario (every process on it: the database's, the broker's, this
/// one's), per event; `None` where it cannot be read.
#[derive(Clone, Copy)]
pub(super) struct CpuUse {
    busy_at_start: Option<f64>,
    started: Instant,
    /// Core-microseconds per event.
    pub(super) per_event_us: Option<f64>,
    /// Cores busy on average.
    pub(super) cores_busy: Option<f64>,
}

impl CpuUse {
    pub(super) fn start() -> Self {
        CpuUse {
            busy_at_start: crate::bench::machine_busy_seconds(),
            started: Instant::now(),
            per_event_us: None,
            cores_busy: None,
        }
    }

    pub(super) fn stop(self, events: usize) -> Self {
        let busy = match (self.busy_at_start, crate::bench::machine_busy_seconds()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        // The machine's counters tick every 10 ms on each core: under a tenth of a second measured, the figure
        // would be mostly rounding (the quick sizes), and is not given.
        let busy = busy.filter(|&b| b >= 0.1);
        CpuUse {
            per_event_us: busy.map(|b| b * 1e6 / events.max(1) as f64),
            cores_busy: busy.map(|b| b / self.started.elapsed().as_secs_f64()),
            ..self
        }
    }

    pub(super) fn us(&self) -> String {
        self.per_event_us.map_or("?".into(), |u| format!("{u:.1}"))
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

/// Runs every I/O scenario on the embedded mock cluster, or on a real cluster when `real` is given (its
/// topic is created when missing; records of earlier runs are skipped by every consumer of the run).
pub fn run_all(
    quick: bool,
    relay_batch: Option<usize>,
    base: &str,
    wanted: &dyn Fn(Group) -> bool,
    real: Option<&KafkaSettings>,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let mut sizes = Sizes::new(quick);
    if let Some(b) = relay_batch {
        sizes.relay_batch = b;
    }
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
            out.extend(drain_pg(base, &kafka, sizes.drain_events, sizes.relay_batch).await?);
            step("relay drain (SQLite)");
            out.push(drain_sqlite(&kafka, sizes.drain_events, sizes.relay_batch).await?);
        }
        if wanted(Group::Python) {
            step("relay vs the Python original");
            out.extend(
                python::versus_python(base, &kafka, sizes.python_rows, sizes.relay_batch).await?,
            );
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
    // The pipeline has its own cluster: the one above goes, so that its threads are not in the pipeline's CPU.
    drop(mock);
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
