/*!
The reference HuleEdu pipeline that `hule demo` runs: five services, each with its own outbox (SQLite in a
temporary directory, or a PostgreSQL schema), relay and consumer group, on an embedded Kafka (librdkafka's mock
cluster) or a real one.

```text
batch orchestrator ──BATCH_ESSAYS_REGISTERED, BATCH_SPELLCHECK_INITIATE_COMMAND──▶ essay lifecycle
essay lifecycle ──ESSAY_SPELLCHECK_REQUESTED──▶ spellchecker ──SPELLCHECK_PHASE_COMPLETED (thin)──▶ essay lifecycle
                                                             └─SPELLCHECK_RESULTS (rich)─────────▶ result aggregator
essay lifecycle ──ELS_BATCH_PHASE_OUTCOME, ELS_CJ_ASSESSMENT_REQUESTED──▶ cj assessment
cj assessment ──CJ_ASSESSMENT_COMPLETED (thin)──▶ essay lifecycle ──ELS_BATCH_PHASE_OUTCOME──▶ result aggregator
              └─ASSESSMENT_RESULT_PUBLISHED (rich), RESOURCE_CONSUMPTION_REPORTED──▶ result aggregator
result aggregator ──BATCH_RESULTS_READY──▶ (observer)
```

Pure parts: [`essays`] (generation), [`spell`] (checker), [`cj`] (judge, Bradley-Terry, Kendall's tau),
[`report`]. I/O: [`outbox`], [`services`] and [`run`] here.
*/
#![warn(missing_docs)]

pub mod cj;
pub mod cpu;
pub mod essays;
pub mod hops;
pub mod outbox;
pub mod report;
pub mod services;
pub mod spell;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hule_consumer::dedup::DedupStore;
use hule_consumer::{DeadLetterRecord, MemoryDedup, RedisDedup, Router};
use hule_contracts::headers::names;
use hule_contracts::Event;
use hule_kafka::consumer::AssignSignal;
use hule_kafka::consumer::KafkaDeadLetterSink;
use hule_kafka::EventConsumer;
use hule_kafka::KafkaSettings;
use hule_kafka::{KafkaPublisher, ProducerConfig};
use hule_outbox::model::Claimed;
use hule_outbox::relay::{Publish, RelayConfig};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::Message as _;

use crate::essays::Rng;
use crate::outbox::{Relay, Writer};
use crate::report::{Check, Latency, RankRow, Report, TopicCount};
use crate::services::{lock, RasState, Shared};

/// The events the pipeline publishes.
pub const PIPELINE_EVENTS: &[Event] = &[
    Event::BatchEssaysRegistered,
    Event::BatchSpellcheckInitiateCommand,
    Event::EssaySpellcheckRequested,
    Event::SpellcheckPhaseCompleted,
    Event::SpellcheckResults,
    Event::ElsBatchPhaseOutcome,
    Event::ElsCjAssessmentRequested,
    Event::CjAssessmentCompleted,
    Event::CjAssessmentFailed,
    Event::AssessmentResultPublished,
    Event::ResourceConsumptionReported,
    Event::BatchResultsReady,
];

/// `fetch.wait.max.ms` of the demo's consumers. The embedded mock cluster answers a fetch only when its wait
/// expires, so the wait is paid at every hop: 4 ms there (`hule demo`, three runs each: p50 127–153 ms against
/// 141–218 ms with 10 ms). A real broker answers as soon as a record arrives, and a short wait there only sends
/// the broker empty fetches (its JVM's CPU on a small machine: 0.62–0.65 s of the machine's CPU over a run with
/// 10 ms, 0.46–0.51 s with librdkafka's default of 500 ms, which it keeps; a partition assigned or resumed while
/// a fetch waits may wait that long for its first records, which the demo's hops do not meet once running).
fn fetch_wait_ms(embedded: bool) -> &'static str {
    if embedded {
        "4"
    } else {
        "500"
    }
}

/// Demo settings. `Debug` masks the passwords of the database and Redis URLs.
#[derive(Clone)]
pub struct DemoConfig {
    /// Batches to register.
    pub batches: usize,
    /// Essays per batch.
    pub essays: usize,
    /// Seed of the essays and the judge.
    pub seed: u64,
    /// Fraction of relayed records published twice.
    pub duplicate_rate: f64,
    /// Poison records injected, as a fraction of the essays.
    pub poison_rate: f64,
    /// Inject produce errors and a broker outage (embedded cluster only).
    pub broker_faults: bool,
    /// PostgreSQL for the outboxes instead of SQLite.
    pub database_url: Option<String>,
    /// Redis for the consumers' deduplication instead of memory (`redis://user:pass@host:port/db`, `rediss://…`).
    pub redis_url: Option<String>,
    /// A real cluster (brokers and client properties) instead of the embedded one.
    pub kafka: Option<hule_kafka::KafkaSettings>,
    /// Partitions per topic on the embedded cluster.
    pub partitions: i32,
    /// Give up after this long.
    pub timeout: Duration,
    /// Draw progress on stderr.
    pub progress: bool,
    /// After the pipeline has finished, keep the services, relays and the observer running until Ctrl-C or
    /// SIGTERM (the console looks at a live system: a replay is consumed again). The report is of the run as it
    /// finished; its relay count includes what was published while held.
    pub hold_after_run: bool,
}

impl std::fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = |u: &Option<String>| u.as_deref().map(hule_secrets::redact_url);
        f.debug_struct("DemoConfig")
            .field("batches", &self.batches)
            .field("essays", &self.essays)
            .field("seed", &self.seed)
            .field("duplicate_rate", &self.duplicate_rate)
            .field("poison_rate", &self.poison_rate)
            .field("broker_faults", &self.broker_faults)
            .field("database_url", &masked(&self.database_url))
            .field("redis_url", &masked(&self.redis_url))
            .field("kafka", &self.kafka)
            .field("partitions", &self.partitions)
            .field("timeout", &self.timeout)
            .field("progress", &self.progress)
            .field("hold_after_run", &self.hold_after_run)
            .finish()
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            batches: 12,
            essays: 24,
            seed: 42,
            duplicate_rate: 0.0,
            poison_rate: 0.0,
            broker_faults: false,
            database_url: None,
            redis_url: None,
            kafka: None,
            partitions: 6,
            hold_after_run: false,
            timeout: Duration::from_secs(120),
            progress: true,
        }
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Bad settings.
    #[error("invalid demo setting: {0}")]
    Config(String),
    /// An outbox could not be set up.
    #[error("outbox: {0}")]
    Outbox(String),
    /// Kafka could not be set up.
    #[error("kafka: {0}")]
    Kafka(String),
    /// Ctrl-C or SIGTERM before the pipeline ran; what the run had made is removed.
    #[error("interrupted before the pipeline ran; what it had made was removed")]
    Interrupted,
}

/// The embedded cluster type.
pub type Embedded = MockCluster<'static, DefaultProducerContext>;

/// Starts the embedded cluster with every registered topic (standard, legacy and dead-letter).
pub fn embedded_cluster(brokers: i32, partitions: i32) -> Result<Embedded, DemoError> {
    let cluster = MockCluster::new(brokers).map_err(|e| DemoError::Kafka(e.to_string()))?;
    let mut made = HashSet::new();
    let mut topics = Vec::new();
    for def in hule_contracts::EVENTS {
        for t in [
            def.topic.to_owned(),
            def.legacy_topic.to_owned(),
            hule_contracts::naming::dlq_topic(def.topic),
            hule_contracts::naming::dlq_topic(def.legacy_topic),
        ] {
            if made.insert(t.clone()) {
                let p = if t.ends_with(".dlq.v1") {
                    1
                } else {
                    partitions
                };
                topics.push((t, p));
            }
        }
    }
    hule_kafka::mock::create_topics(&cluster, topics, brokers.min(3)).map_err(DemoError::Kafka)?;
    Ok(cluster)
}

/// Publishes through Kafka, sending a share of the records twice (the duplicates an at-least-once relay makes).
struct DuplicatingPublisher {
    inner: KafkaPublisher,
    rate: f64,
    rng: Mutex<Rng>,
    duplicated: Arc<Mutex<HashMap<String, u64>>>,
    hops: Arc<hops::Hops>,
}

impl Publish for DuplicatingPublisher {
    async fn publish_batch(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        let claimed_at = self.hops.claiming(batch);
        let out = self.duplicating(batch).await;
        self.hops
            .published(claimed_at, out.iter().map(Result::is_ok));
        out
    }
}

impl DuplicatingPublisher {
    async fn duplicating(
        &self,
        batch: &[Claimed],
    ) -> Vec<Result<(), hule_contracts::DeliveryError>> {
        if self.rate <= 0.0 {
            return self.inner.publish_batch(batch).await;
        }
        let mut extended = Vec::with_capacity(batch.len() * 2);
        let mut origin = Vec::with_capacity(batch.len() * 2);
        {
            let mut rng = lock(&self.rng);
            for (i, row) in batch.iter().enumerate() {
                extended.push(row.clone());
                origin.push(i);
                if rng.unit() < self.rate {
                    extended.push(row.clone());
                    origin.push(usize::MAX);
                }
            }
        }
        let results = self.inner.publish_batch(&extended).await;
        let mut out = vec![Ok(()); batch.len()];
        let mut dups = lock(&self.duplicated);
        for ((o, r), row) in origin.iter().zip(results).zip(&extended) {
            if *o == usize::MAX {
                if r.is_ok() {
                    *dups.entry(row.topic.clone()).or_default() += 1;
                }
            } else {
                out[*o] = r;
            }
        }
        out
    }
}

/// What the observer group has seen.
#[derive(Debug, Default, Clone)]
struct Observed {
    topics: BTreeMap<String, (u64, HashSet<String>)>,
    ready_ms: HashMap<String, f64>,
    dlq: BTreeMap<String, u64>,
}

fn observe(
    msg: &rdkafka::message::BorrowedMessage<'_>,
    registered: &Mutex<HashMap<String, Instant>>,
    seen: &Mutex<Observed>,
    progress: &AtomicU64,
) {
    use rdkafka::message::Headers as _;
    let topic = msg.topic().to_owned();
    let mut st = lock(seen);
    if topic.ends_with(".dlq.v1") {
        let reason = msg
            .payload()
            .and_then(|p| serde_json::from_slice::<DeadLetterRecord>(p).ok())
            .map(|r| r.error_type)
            .unwrap_or_else(|| "unreadable".into());
        *st.dlq.entry(reason).or_default() += 1;
        return;
    }
    let id = msg
        .headers()
        .and_then(|h| {
            h.iter()
                .find(|h| h.key == names::EVENT_ID)
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        })
        .unwrap_or_default();
    let entry = st.topics.entry(topic.clone()).or_default();
    entry.0 += 1;
    let fresh = entry.1.insert(id);
    if fresh && topic == Event::BatchResultsReady.topic() {
        if let Some(v) = msg
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
        {
            let batch = v
                .pointer("/data/batch_id")
                .and_then(|b| b.as_str())
                .unwrap_or_default()
                .to_owned();
            if let Some(at) = lock(registered).get(&batch) {
                st.ready_ms
                    .insert(batch, at.elapsed().as_secs_f64() * 1000.0);
                progress.store(st.ready_ms.len() as u64, Ordering::SeqCst);
            }
        }
    }
}

/// Positions a group of this run at the end of its topics (see `hule_kafka::consumer::start_group_at_end`).
/// On the blocking pool: it waits on librdkafka's synchronous calls, each bounded by 10 s (the offsets' commit
/// by librdkafka's own request timeout), and retries a partition's watermarks with a sleep.
async fn start_at_end(
    kafka: &KafkaSettings,
    group: &str,
    topics: &[&str],
) -> Result<(), DemoError> {
    let (kafka, owned_group) = (kafka.clone(), group.to_owned());
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        hule_kafka::consumer::start_group_at_end(
            &kafka,
            &owned_group,
            &topics,
            Duration::from_secs(10),
        )
    })
    .await
    .map_err(|e| DemoError::Kafka(format!("position group {group}: {e}")))?
    .map(|_| ())
    .map_err(|e| {
        DemoError::Kafka(format!(
            "position group {group} at the end of its topics: {e}"
        ))
    })
}

/// Injects poison: half not JSON at all, half a valid envelope whose payload breaks its schema.
async fn inject_poison(kafka: &KafkaSettings, count: u64) -> Result<(), DemoError> {
    if count == 0 {
        return Ok(());
    }
    let producer: FutureProducer = hule_kafka::ProducerConfig::with_settings(kafka)
        .future_producer()
        .map_err(|e| DemoError::Kafka(e.to_string()))?;
    let topic = Event::EssaySpellcheckRequested.topic();
    for i in 0..count {
        let value = if i % 2 == 0 {
            format!("\u{fffd}poison {i}: not an envelope").into_bytes()
        } else {
            let mut env = serde_json::json!({
                "event_id": uuid::Uuid::new_v4(), "event_type": topic, "event_timestamp": "2025-11-21T18:04:12Z",
                "source_service": "poison", "schema_version": 1, "correlation_id": uuid::Uuid::new_v4(),
                "data": {"entity_id": format!("poison-{i}"), "text_storage_id": 42}, "metadata": null
            });
            env["data"]["language"] = serde_json::json!(["not", "a", "string"]);
            env.to_string().into_bytes()
        };
        let key = format!("poison-{i}");
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| DemoError::Kafka(format!("poison produce: {e}")))?;
    }
    Ok(())
}

fn bar(done: u64, total: u64) -> String {
    let width = 12;
    let filled = (done * width as u64)
        .checked_div(total)
        .map_or(width, |f| f as usize);
    format!(
        "{}{} {done}/{total}",
        "█".repeat(filled.min(width)),
        "░".repeat(width - filled.min(width))
    )
}

struct Service {
    name: &'static str,
    writer: Arc<Writer>,
    relay: Relay,
}

/// Kendall's tau of each batch: the essays' hidden quality against the scores of the CJ ranking.
fn kendall_taus(
    essays_by_batch: &BTreeMap<String, Vec<essays::Essay>>,
    ras: &services::RasState,
) -> Vec<f64> {
    let mut taus = Vec::new();
    for (batch, essays) in essays_by_batch {
        if let Some(results) = ras.results.get(batch) {
            let by_id: HashMap<&str, f64> = results
                .iter()
                .map(|r| (r.essay_id.as_str(), r.bt_score))
                .collect();
            let (q, s): (Vec<f64>, Vec<f64>) = essays
                .iter()
                .filter_map(|e| by_id.get(e.id.as_str()).map(|s| (e.quality, *s)))
                .unzip();
            if let Some(t) = cj::kendall_tau(&q, &s) {
                taus.push(t);
            }
        }
    }
    taus
}

/// The first batch's ranking, each row beside the hidden quality the judge saw.
fn first_ranking(
    essays_by_batch: &BTreeMap<String, Vec<essays::Essay>>,
    ras: &services::RasState,
) -> (String, Vec<RankRow>) {
    essays_by_batch
        .iter()
        .next()
        .map(|(batch, essays)| {
            let mut rows: Vec<RankRow> = ras
                .results
                .get(batch)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    let q = essays
                        .iter()
                        .find(|e| e.id == r.essay_id)
                        .map(|e| e.quality)
                        .unwrap_or(f64::NAN);
                    RankRow {
                        result: r,
                        hidden_quality: q,
                    }
                })
                .collect();
            rows.sort_by_key(|r| r.result.rank);
            (batch.clone(), rows)
        })
        .unwrap_or_default()
}

/// The demo's observer: an independent group reading every pipeline topic and the dead-letter topics, recording
/// when each batch completes and what reached each topic.
struct Observer {
    registered: Arc<Mutex<HashMap<String, Instant>>>,
    observed: Arc<Mutex<Observed>>,
    joined: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the observer at the end of the topics (a real cluster's earlier records are not this run's; see the
/// consumers' groups for the embedded cluster).
async fn start_observer(
    kafka: &KafkaSettings,
    fetch_wait_ms: &str,
    run_id: &str,
    subscribers: &HashMap<String, u64>,
    shared: &Arc<Shared>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<Observer, DemoError> {
    let registered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let observed: Arc<Mutex<Observed>> = Arc::default();
    let joined = Arc::new(tokio::sync::Notify::new());
    let observer: StreamConsumer<AssignSignal> = kafka
        .client_config()
        .set("group.id", format!("hule-demo-observer-{run_id}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms)
        .create_with_context(AssignSignal(joined.clone()))
        .map_err(|e| DemoError::Kafka(e.to_string()))?;
    let mut watched: Vec<String> = PIPELINE_EVENTS
        .iter()
        .map(|e| e.topic().to_owned())
        .collect();
    watched.extend(
        subscribers
            .keys()
            .map(|t| hule_contracts::naming::dlq_topic(t)),
    );
    let watched_refs: Vec<&str> = watched.iter().map(String::as_str).collect();
    start_at_end(
        kafka,
        &format!("hule-demo-observer-{run_id}"),
        &watched_refs,
    )
    .await?;
    observer
        .subscribe(&watched_refs)
        .map_err(|e| DemoError::Kafka(e.to_string()))?;
    let task = {
        let (registered, observed, shared, stop) = (
            registered.clone(),
            observed.clone(),
            shared.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    m = observer.recv() => if let Ok(m) = m { observe(&m, &registered, &observed, &shared.progress.ready) },
                }
            }
        })
    };

    Ok(Observer {
        registered,
        observed,
        joined,
        task,
    })
}

/// Refuses a configuration the demo cannot run.
fn check(config: &DemoConfig, embedded: Option<&Embedded>) -> Result<(), DemoError> {
    if config.batches == 0 || config.essays == 0 {
        return Err(DemoError::Config(
            "--batches and --essays must be at least 1".into(),
        ));
    }
    for (name, v) in [
        ("--duplicate-rate", config.duplicate_rate),
        ("--poison-rate", config.poison_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(DemoError::Config(format!(
                "{name} must be between 0 and 1, got {v}"
            )));
        }
    }
    if config.broker_faults && embedded.is_none() {
        return Err(DemoError::Config(
            "--broker-faults needs the embedded cluster: it injects faults through the mock cluster's controls \
             (on a real cluster, kill a broker yourself; scripts/kafka.sh kill-node does that for a local one)"
                .into(),
        ));
    }
    Ok(())
}

/// One outbox per service: SQLite files under `tmp`, or a PostgreSQL schema each (returned, to drop at the end).
async fn open_outboxes(
    config: &DemoConfig,
    run_id: &str,
    tmp: &std::path::Path,
) -> Result<Vec<Service>, DemoError> {
    let mut services = Vec::new();
    for name in SERVICES {
        let (writer, relay) = match &config.database_url {
            None => {
                std::fs::create_dir_all(tmp)
                    .map_err(|e| DemoError::Outbox(format!("{}: {e}", tmp.display())))?;
                let (w, o) =
                    Writer::sqlite(&tmp.join(format!("{name}.db"))).map_err(DemoError::Outbox)?;
                (w, Relay::Sqlite(o))
            }
            Some(url) => {
                let schema = schema_name(run_id, name);
                let (w, o) = Writer::postgres(url, &schema)
                    .await
                    .map_err(DemoError::Outbox)?;
                (w, Relay::Pg(o))
            }
        };
        services.push(Service {
            name,
            writer: Arc::new(writer),
            relay,
        });
    }

    Ok(services)
}

/// Runs the pipeline to completion (or `timeout`) and reports. `embedded` is the mock cluster when no brokers
/// were given; broker faults are injected through it.
pub async fn run(config: &DemoConfig, embedded: Option<&Embedded>) -> Result<Report, DemoError> {
    check(config, embedded)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let left = Leftovers::default();
    // Ctrl-C or SIGTERM ends the run early, through the same stop and clean-up as the end of a run.
    let interrupted = tokio_util::sync::CancellationToken::new();
    let listener = {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            hule_kafka::shutdown_signal().await;
            interrupted.cancel();
        })
    };
    let result = run_inner(config, embedded, &run_id, &left, &interrupted).await;
    listener.abort();
    left.clean(config, embedded.is_none(), &run_id).await;
    result
}

/// What a run leaves behind and must remove on every way out (done, timed out, interrupted, failed): its consumer
/// groups on a real cluster, its PostgreSQL schemas or its SQLite directory.
#[derive(Default)]
struct Leftovers {
    groups: Mutex<Vec<String>>,
    /// The tokens that stop the run's consumers, observer and relays.
    stops: Mutex<Vec<tokio_util::sync::CancellationToken>>,
    /// The run's tasks, to wait for before removing what they use.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Leftovers {
    fn group(&self, name: &str) {
        lock(&self.groups).push(name.to_owned());
    }

    fn stop_with(&self, token: &tokio_util::sync::CancellationToken) {
        lock(&self.stops).push(token.clone());
    }

    fn task<T>(&self, handle: &tokio::task::JoinHandle<T>) {
        lock(&self.tasks).push(handle.abort_handle());
    }

    async fn clean(&self, config: &DemoConfig, real_cluster: bool, run_id: &str) {
        // Whatever is still running (a run that failed part-way) stops first, within 15 s, and is then aborted:
        // no relay writes while its schema is dropped, no consumer is a member while its group is deleted.
        for token in lock(&self.stops).iter() {
            token.cancel();
        }
        let tasks = lock(&self.tasks).clone();
        let deadline = Instant::now() + Duration::from_secs(15);
        while tasks.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in &tasks {
            t.abort();
        }
        match &config.database_url {
            None => {
                let _ = std::fs::remove_dir_all(demo_dir(run_id));
            }
            Some(url) => {
                if let Err(e) = outbox::drop_schemas(url, &schema_names(run_id)).await {
                    tracing::warn!(error = %e, "the demo's schemas were not dropped");
                }
            }
        }
        let mut groups = lock(&self.groups).clone();
        let Some(kafka) = config.kafka.as_ref().filter(|_| real_cluster) else {
            return;
        };
        // A member that just left may still count for a moment (NonEmptyGroup): asked again, up to 3 times.
        for attempt in 1..=3 {
            let results =
                match hule_kafka::admin::delete_groups(kafka, &groups, Duration::from_secs(10))
                    .await
                {
                    Ok(results) => results,
                    Err(e) => {
                        tracing::warn!(error = %e, "the demo's consumer groups were not deleted");
                        return;
                    }
                };
            let left: Vec<(String, String)> = results
                .into_iter()
                .filter_map(|(g, why)| why.map(|w| (g, w)))
                .filter(|(_, w)| w != "GroupIdNotFound")
                .collect();
            if left.is_empty() {
                tracing::info!("the demo's consumer groups deleted");
                return;
            }
            if attempt == 3 || left.iter().any(|(_, w)| w != "NonEmptyGroup") {
                for (g, why) in &left {
                    tracing::warn!(group = %g, reason = %why, "a demo consumer group was not deleted");
                }
                return;
            }
            groups = left.into_iter().map(|(g, _)| g).collect();
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// The SQLite outboxes' directory of a run.
fn demo_dir(run_id: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hule-demo-{run_id}"))
}

/// The PostgreSQL schema of one service's outbox in a run.
fn schema_name(run_id: &str, service: &str) -> String {
    format!(
        "hule_demo_{run_id}_{}",
        &service[..service.find('_').unwrap_or(service.len())]
    )
}

/// Every schema a run may create.
fn schema_names(run_id: &str) -> Vec<String> {
    SERVICES.iter().map(|s| schema_name(run_id, s)).collect()
}

/// The demo's services, each with an outbox.
const SERVICES: [&str; 5] = [
    services::BOS,
    services::ELS,
    services::SPELL,
    services::CJ,
    services::RAS,
];

async fn run_inner(
    config: &DemoConfig,
    embedded: Option<&Embedded>,
    run_id: &str,
    left: &Leftovers,
    interrupted: &tokio_util::sync::CancellationToken,
) -> Result<Report, DemoError> {
    let started = Instant::now();
    let kafka = match (embedded, &config.kafka) {
        (_, Some(k)) => k.clone(),
        (Some(c), None) => KafkaSettings::new(&c.bootstrap_servers()),
        (None, None) => {
            return Err(DemoError::Config(
                "no brokers and no embedded cluster".into(),
            ))
        }
    };

    // Outboxes, one per service.
    let tmp = demo_dir(run_id);
    let services = open_outboxes(config, run_id, &tmp).await?;

    let shared = Arc::new(Shared {
        content: Default::default(),
        progress: Default::default(),
    });
    let ras_state: Arc<Mutex<RasState>> = Arc::default();
    let writer_of = |n: &str| {
        services
            .iter()
            .find(|s| s.name == n)
            .map(|s| s.writer.clone())
    };
    let (Some(els_w), Some(spell_w), Some(cj_w), Some(ras_w), Some(bos_w)) = (
        writer_of(services::ELS),
        writer_of(services::SPELL),
        writer_of(services::CJ),
        writer_of(services::RAS),
        writer_of(services::BOS),
    ) else {
        return Err(DemoError::Config("service missing".into()));
    };
    let routers: Vec<(&'static str, Router)> = vec![
        (services::ELS, services::els(els_w)),
        (
            services::SPELL,
            services::spellchecker(spell_w, shared.clone()),
        ),
        (
            services::CJ,
            services::cj_assessment(cj_w, shared.clone(), config.seed),
        ),
        (
            services::RAS,
            services::result_aggregator(ras_w, ras_state.clone()),
        ),
    ];
    let mut subscribers: HashMap<String, u64> = HashMap::new();
    for (_, r) in &routers {
        for t in r.topics() {
            *subscribers.entry(t.to_owned()).or_default() += 1;
        }
    }
    if embedded.is_none() {
        // A consumer subscribed to a topic that does not exist yet sees it only at its next metadata refresh
        // (minutes), so the topics this run produces to and consumes from are created first when missing.
        let mut wanted: Vec<(String, i32)> = Vec::new();
        for e in PIPELINE_EVENTS {
            wanted.push((e.topic().to_owned(), config.partitions));
        }
        for t in subscribers.keys() {
            wanted.push((t.clone(), config.partitions));
            wanted.push((hule_contracts::naming::dlq_topic(t), 1));
        }
        wanted.sort();
        wanted.dedup_by(|a, b| a.0 == b.0);
        let created = hule_kafka::admin::ensure_topics(&kafka, &wanted, 3, Duration::from_secs(30))
            .await
            .map_err(|e| DemoError::Kafka(format!("create the demo's topics: {e}")))?;
        if !created.is_empty() && config.progress {
            eprintln!(
                "created {} missing topic(s) on {}",
                created.len(),
                kafka.brokers
            );
        }
    }

    // Relays.
    let registry = hule_metrics::Registry::new();
    let relay_stop = tokio_util::sync::CancellationToken::new();
    left.stop_with(&relay_stop);
    let duplicated: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let hops: Arc<hops::Hops> = Arc::default();
    let mut relays = Vec::new();
    // One producer for the five relays and one for the four consumers' dead letters, as one process hosting these
    // services would have: each Kafka client keeps threads, connections and polls of its own, and fourteen of them
    // took a good part of the run's CPU on two cores.
    let producer = KafkaPublisher::new(&ProducerConfig::with_settings(&kafka))
        .map_err(|e| DemoError::Kafka(e.to_string()))?;
    for (i, s) in services.into_iter().enumerate() {
        let publisher = DuplicatingPublisher {
            inner: producer.clone(),
            rate: config.duplicate_rate,
            rng: Mutex::new(Rng::new(config.seed ^ ((i as u64 + 1) * 0x5851_F42D))),
            duplicated: duplicated.clone(),
            hops: hops.clone(),
        };
        let relay_config = RelayConfig {
            poll_interval: Duration::from_millis(200),
            metrics: Some(hule_outbox::metrics::OutboxMetrics::new(&registry, s.name)),
            // The demo's faults are transient (injected produce errors, a broker down for seconds): a row is tried
            // again soon and never parked for them, or its batch would wait for an operator the demo has not got
            // (seen once on two loaded cores: one spellcheck outcome never published, the run timed out).
            failure: hule_outbox::store::FailurePolicy {
                max_attempts: 1_000,
                base_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(2),
            },
            ..RelayConfig::default()
        };
        let stop = relay_stop.clone();
        let relay = tokio::spawn(async move {
            let result = s.relay.run(&publisher, &relay_config, stop).await;
            (s.name, result)
        });
        left.task(&relay);
        relays.push(relay);
    }

    // Consumers, one per service, each built once with the library's builder.
    let shutdown = tokio_util::sync::CancellationToken::new();
    left.stop_with(&shutdown);
    let dedup: Arc<dyn DedupStore> = match &config.redis_url {
        None => Arc::new(MemoryDedup::new()),
        Some(url) => {
            let store = RedisDedup::new(url).map_err(|e| DemoError::Config(e.to_string()))?;
            store
                .ping()
                .await
                .map_err(|e| DemoError::Config(format!("--redis-url: {e}")))?;
            Arc::new(store)
        }
    };
    let dedup_method = dedup.method();
    let mut consumers = Vec::new();
    let mut all_metrics = Vec::new();
    let mut joined = Vec::new();
    let fetch_wait = fetch_wait_ms(embedded.is_some());
    let dead_letters =
        KafkaDeadLetterSink::with_settings(&kafka).map_err(|e| DemoError::Kafka(e.to_string()))?;
    for (name, router) in routers {
        let group = format!("hule-demo-{name}-{run_id}");
        left.group(&group);
        let assigned = Arc::new(tokio::sync::Notify::new());
        joined.push(assigned.clone());
        let consumer = EventConsumer::builder(&kafka, &group, name)
            .router(router)
            .dedup_shared(dedup.clone())
            .dead_letters(dead_letters.clone())
            .metrics(&registry)
            .layer(hops.layer())
            .configure(|c| {
                c.commit_interval = Duration::from_millis(200);
                c.extra
                    .push(("fetch.wait.max.ms".into(), fetch_wait.into()));
                c.on_assign = Some(assigned);
            })
            .build()
            .map_err(|e| DemoError::Config(e.to_string()))?;
        // This run's groups start at the end of the topics, committed before they join: a real cluster may hold
        // earlier runs' records, and a group without a committed offset waits before it fetches at all (librdkafka
        // 2.12 queries the reset offset 100 ms after finding none, `rdkafka_offset.c`), which the first hop of every
        // run paid on the embedded cluster (80–120 ms of a 180–240 ms run of one batch).
        start_at_end(&kafka, consumer.group(), consumer.topics()).await?;
        all_metrics.push(consumer.metrics().clone());
        let task = tokio::spawn(consumer.run(shutdown.clone()));
        left.task(&task);
        consumers.push(task);
    }

    // Observer.
    left.group(&format!("hule-demo-observer-{run_id}"));
    let Observer {
        registered,
        observed,
        joined: observer_joined,
        task: observer_task,
    } = start_observer(&kafka, fetch_wait, run_id, &subscribers, &shared, &shutdown).await?;
    joined.push(observer_joined);
    left.task(&observer_task);

    // Wait until every group has its partitions, so that latency measures the pipeline, not the group joins.
    let join_for = config.timeout.min(Duration::from_secs(30));
    for j in &joined {
        tokio::select! {
            _ = interrupted.cancelled() => return Err(DemoError::Interrupted),
            r = tokio::time::timeout(join_for, j.notified()) => if r.is_err() {
                return Err(DemoError::Kafka(format!(
                    "consumer groups did not get their partitions within {} s",
                    join_for.as_secs()
                )));
            }
        }
    }
    let joined_after = started.elapsed();

    // Register the batches.
    let cpu_clock = cpu::CpuClock::start();
    let mut pipeline_cpu = None;
    tracing::info!(batches = config.batches, "registering batches");
    let mut essays_by_batch = BTreeMap::new();
    for b in 0..config.batches {
        let batch_id = format!("batch-{b:04}");
        let essays = essays::generate_batch(config.seed, b, config.essays);
        lock(&registered).insert(batch_id.clone(), Instant::now());
        services::register_batch(&bos_w, &shared, &batch_id, &essays)
            .await
            .map_err(|e| DemoError::Outbox(e.to_string()))?;
        essays_by_batch.insert(batch_id, essays);
    }
    let poison = (config.poison_rate * (config.batches * config.essays) as f64).round() as u64;
    inject_poison(&kafka, poison).await?;

    // Faults.
    let mut faults = Vec::new();
    let mut broker_back_at = None;
    // Without the embedded cluster, --broker-faults was refused at the start.
    if let (true, Some(cluster)) = (config.broker_faults, embedded) {
        let errors = [
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ];
        let list: Vec<RDKafkaRespErr> = errors.iter().cycle().take(12).copied().collect();
        cluster.request_errors(RDKafkaApiKey::Produce, &list);
        faults.push(format!(
            "{} produce errors (not leader, timed out, not enough replicas)",
            list.len()
        ));
        cluster
            .broker_down(2)
            .map_err(|e| DemoError::Kafka(e.to_string()))?;
        faults.push("broker 2 down for 2 s, then up".into());
        broker_back_at = Some(Instant::now() + Duration::from_secs(2));
    }

    // Wait for completion, drawing progress.
    let total_batches = config.batches as u64;
    let total_essays = (config.batches * config.essays) as u64;
    // An indicatif line redrawn in place on a terminal; nothing when stderr is not one.
    let drawn = config.progress && std::io::stderr().is_terminal();
    let progress = indicatif::ProgressBar::with_draw_target(
        None,
        if drawn {
            indicatif::ProgressDrawTarget::stderr_with_hz(4)
        } else {
            indicatif::ProgressDrawTarget::hidden()
        },
    )
    .with_style(
        indicatif::ProgressStyle::with_template("{msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let expected_suppressed = |dup: &HashMap<String, u64>| {
        dup.iter()
            .map(|(t, n)| n * subscribers.get(t).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let suppressed = || {
        all_metrics
            .iter()
            .map(|m| m.duplicates(dedup_method))
            .sum::<f64>() as u64
    };
    let mut timed_out = false;
    let mut was_interrupted = false;
    loop {
        if let Some(at) = broker_back_at {
            if Instant::now() >= at {
                if let Some(c) = embedded {
                    c.broker_up(2)
                        .map_err(|e| DemoError::Kafka(e.to_string()))?;
                }
                broker_back_at = None;
            }
        }
        let p = &shared.progress;
        let ready = p.ready.load(Ordering::SeqCst);
        if ready >= total_batches && pipeline_cpu.is_none() {
            pipeline_cpu = cpu_clock.used();
        }
        let dlq_total: u64 = lock(&observed).dlq.values().sum();
        let done = ready >= total_batches
            && dlq_total >= poison
            && broker_back_at.is_none()
            // Every consumer and relay well again after injected faults (the health board says so once).
            && registry.health().report().ok
            && suppressed() >= expected_suppressed(&lock(&duplicated));
        if drawn {
            progress.set_message(format!(
                "[{:>5.1}s] registered {}  spellchecked {}  assessed {}  results ready {}  dlq {}",
                started.elapsed().as_secs_f64(),
                bar(p.registered.load(Ordering::SeqCst), total_batches),
                bar(p.spellchecked.load(Ordering::SeqCst), total_essays),
                bar(p.assessed.load(Ordering::SeqCst), total_batches),
                bar(ready, total_batches),
                bar(dlq_total, poison),
            ));
        }
        if done {
            break;
        }
        // A relay or consumer that ended on its own (a fatal error: the relays share one producer, the consumers
        // one dead-letter producer) would leave the run waiting for its timeout; its error is logged below.
        if relays.iter().any(tokio::task::JoinHandle::is_finished)
            || consumers.iter().any(tokio::task::JoinHandle::is_finished)
        {
            tracing::warn!("a relay or consumer stopped before the run finished: ending the run");
            break;
        }
        if started.elapsed() > config.timeout {
            timed_out = true;
            break;
        }
        if interrupted.is_cancelled() {
            tracing::warn!("interrupted: stopping the run and removing what it made");
            was_interrupted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    progress.finish();
    // Held: the report's figures are taken now, as the run finished; the services keep running until Ctrl-C.
    // A timed-out run is held too: that is when the console is most wanted.
    let held = if config.hold_after_run && !was_interrupted {
        let snapshot = (
            lock(&ras_state).clone(),
            lock(&observed).clone(),
            lock(&duplicated).clone(),
            suppressed(),
            started.elapsed(),
        );
        eprintln!(
            "demo: the run is done; its services keep running (a replay from the console is consumed again) \
             until Ctrl-C, then the report"
        );
        interrupted.cancelled().await;
        Some(snapshot)
    } else {
        None
    };

    // Stop everything.
    tracing::info!("stopping consumers");
    shutdown.cancel();
    for c in consumers {
        if let Ok(Err(e)) = c.await {
            tracing::warn!(error = %e, "consumer ended with an error");
        }
    }
    tracing::info!("stopping relays");
    relay_stop.cancel();
    let mut relay_events = 0;
    for r in relays {
        match r.await {
            Ok((_, Ok(stats))) => relay_events += stats.published,
            Ok((name, Err(e))) => {
                tracing::warn!(service = name, error = %e, "relay ended with an error")
            }
            Err(e) => tracing::warn!(error = %e, "relay task failed"),
        }
    }
    tracing::info!("stopping the observer");
    let _ = observer_task.await;
    tracing::info!("stopped");
    // The schemas or the SQLite directory and the groups are removed by `run`, on every way out.
    // Report: of the run as it finished (taken before the hold, when held).
    let (ras, observed, duplicated, duplicates_suppressed, wall) = match held {
        Some(s) => s,
        None => (
            lock(&ras_state).clone(),
            lock(&observed).clone(),
            lock(&duplicated).clone(),
            suppressed(),
            started.elapsed(),
        ),
    };
    let wall = wall.as_secs_f64();
    let duplicates_injected: u64 = duplicated.values().sum();
    let duplicates_expected = expected_suppressed(&duplicated);
    let essays_with_results = ras.applied.len() as u64;
    let multiples = ras.applied.values().filter(|n| **n > 1).count() as u64;
    let taus = kendall_taus(&essays_by_batch, &ras);
    let (ranking_batch, ranking) = first_ranking(&essays_by_batch, &ras);
    let dlq_total: u64 = observed.dlq.values().sum();
    let ready = observed.ready_ms.len() as u64;
    let checks = vec![
        Check {
            name: "every batch completed".into(),
            ok: ready == total_batches,
            detail: format!("{ready}/{total_batches}"),
        },
        Check {
            name: "every essay has exactly one result".into(),
            ok: essays_with_results == total_essays && multiples == 0,
            detail: format!("{essays_with_results}/{total_essays}, {multiples} applied twice"),
        },
        Check {
            name: "every poison record is in the DLQ".into(),
            ok: dlq_total == poison,
            detail: format!("{dlq_total} dead letters for {poison} poison records"),
        },
        Check {
            name: "every injected duplicate was suppressed".into(),
            ok: duplicates_suppressed == duplicates_expected,
            detail: format!("{duplicates_suppressed} suppressed of {duplicates_expected} expected"),
        },
        Check {
            name: "not interrupted".into(),
            ok: !was_interrupted,
            detail: if was_interrupted {
                "stopped by Ctrl-C or SIGTERM".into()
            } else {
                "ran to its end".into()
            },
        },
        Check {
            name: "finished before the timeout".into(),
            ok: !timed_out,
            detail: format!("{:.1} s of {} s", wall, config.timeout.as_secs()),
        },
    ];
    let reconciled = checks.iter().all(|c| c.ok);
    Ok(Report {
        run_id: run_id.to_owned(),
        outbox: if config.database_url.is_some() {
            "postgres".into()
        } else {
            "sqlite".into()
        },
        dedup: match &config.redis_url {
            Some(url) => format!("redis ({})", hule_consumer::redis::redact(url)),
            None => "memory".into(),
        },
        brokers: if config.kafka.is_some() {
            kafka.brokers.clone()
        } else {
            format!("embedded mock cluster ({})", kafka.brokers)
        },
        batches_registered: total_batches,
        batches_completed: ready,
        essays_registered: total_essays,
        essays_with_results,
        essays_with_multiple_results: multiples,
        events_per_topic: observed
            .topics
            .iter()
            .map(|(t, (n, ids))| {
                (
                    t.clone(),
                    TopicCount {
                        records: *n,
                        unique_events: ids.len() as u64,
                    },
                )
            })
            .collect(),
        end_to_end_latency: Latency::of(observed.ready_ms.values().copied().collect()),
        hops: hops.breakdown(),
        hops_by_topic: hops.by_topic(),
        relay_events,
        relay_events_per_second: relay_events as f64
            / (wall - joined_after.as_secs_f64()).max(1e-9),
        startup_seconds: joined_after.as_secs_f64(),
        pipeline_cpu,
        duplicates_injected,
        duplicates_expected,
        duplicates_suppressed,
        poison_injected: poison,
        dlq_by_reason: observed.dlq.clone(),
        broker_faults: faults,
        ranking,
        ranking_batch,
        kendall_tau_mean: if taus.is_empty() {
            0.0
        } else {
            taus.iter().sum::<f64>() / taus.len() as f64
        },
        kendall_tau_min: taus.iter().copied().fold(f64::INFINITY, f64::min).min(1.0),
        checks,
        reconciled,
        wall_seconds: wall,
    })
}

#[cfg(test)]
mod debug_tests {
    #[test]
    fn debug_masks_the_urls_passwords() {
        let config = super::DemoConfig {
            database_url: Some("postgres://relay:hunter2-a@db/app".into()),
            redis_url: Some("redis://:hunter2-b@cache:6379".into()),
            ..super::DemoConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            shown.contains("relay") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
