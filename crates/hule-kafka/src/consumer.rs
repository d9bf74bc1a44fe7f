//! The consumer driver: an rdkafka consumer group feeding a `hule-consumer` stack, with manual commits.
//!
//! - One worker task per assigned partition processes its records in order; partitions run in parallel.
//! - In-flight work is bounded: each partition's queue holds at most `queue_per_partition` records; records
//!   received for a full queue are held beside it (in offset order) and the fetch loop keeps receiving, so one
//!   busy partition never holds up the records of the others queued behind its own in librdkafka. The fetch loop
//!   waits only when the held records of all partitions together exceed `held_bytes` (librdkafka's own
//!   prefetch is bounded by `queued.max.messages.kbytes`, 16 MiB).
//! - An offset is committed only after its record's outcome is durable: the stack returned an [`Outcome`]
//!   (handled with its dedup record, a duplicate, ignored, or dead-lettered with the broker's acknowledgement).
//!   A [`Failure`] reaching the driver (an unreachable dedup store or DLQ producer) is retried on the same record
//!   with backoff, so nothing behind it in the partition is committed.
//! - On a rebalance, revoked partitions stop taking new records, the record in flight gets `revoke_timeout`
//!   (100 ms) to finish, and the finished offsets are committed synchronously before the partitions are handed
//!   over; a record still in flight and the queued ones are handed back uncommitted, for the new owner to read
//!   (the dedup layer makes that redelivery harmless). The wait is short because librdkafka runs the callback on
//!   the thread polling the consumer.
//! - On stop (SIGTERM in `hule`): workers finish the record in flight, offsets are committed synchronously and
//!   the consumer leaves the group.
//!
//! The driver needs a multi-threaded Tokio runtime: the rebalance callback briefly waits for workers on other
//! threads.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_consumer::{
    process, BoxService, ConsumerMetrics, DeadLetter, DeadLetterSink, Delivery, Message, Service,
};
use hule_contracts::DeliveryError;
use hule_contracts::Headers;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::settings::KafkaSettings;
use crate::Error;

/// Consumer settings.
///
/// It deserializes from a service's configuration file (every field optional, durations in milliseconds,
/// properties as a table): `[consumer]` with `group = "els"`, `commit_interval_ms = 500`,
/// `[consumer.properties]` `"session.timeout.ms" = "10000"`; connection settings usually come from a
/// [`KafkaSection`](crate::settings::KafkaSection) applied with [`ConsumerConfig::with_settings`].
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Consumer group.
    pub group: String,
    /// `auto.offset.reset` for a group without offsets (`earliest` by default, as the original's consumers).
    pub auto_offset_reset: String,
    /// Records queued per partition; more are held beside the queue (see `held_bytes`).
    pub queue_per_partition: usize,
    /// Bytes of records (payload, key and 256 of overhead each) held beside full partition queues, all partitions
    /// together, before the fetch loop waits for workers (32 MiB).
    pub held_bytes: usize,
    /// How often processed offsets are committed (asynchronously; synchronously on revoke and stop).
    #[serde(
        rename = "commit_interval_ms",
        deserialize_with = "crate::settings::millis"
    )]
    pub commit_interval: Duration,
    /// How long a revoke waits for the record in flight before handing it back uncommitted. The wait blocks the
    /// thread that polls the consumer (librdkafka calls the rebalance callback there), so keep it short.
    #[serde(
        rename = "revoke_timeout_ms",
        deserialize_with = "crate::settings::millis"
    )]
    pub revoke_timeout: Duration,
    /// How often the lag of each owned partition (`consumer_lag`) is measured: its high watermark minus the next
    /// offset to commit.
    #[serde(
        rename = "lag_interval_ms",
        deserialize_with = "crate::settings::millis"
    )]
    pub lag_interval: Duration,
    /// Extra librdkafka properties.
    #[serde(
        rename = "properties",
        deserialize_with = "crate::settings::property_map"
    )]
    pub extra: Vec<(String, String)>,
    /// Notified after every partition assignment (tools wait on it before producing, to measure latency).
    #[serde(skip)]
    pub on_assign: Option<Arc<tokio::sync::Notify>>,
}

/// Every field, with the values of secret properties (`sasl.password`, …) masked.
impl std::fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("brokers", &self.brokers)
            .field("group", &self.group)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("queue_per_partition", &self.queue_per_partition)
            .field("held_bytes", &self.held_bytes)
            .field("commit_interval", &self.commit_interval)
            .field("revoke_timeout", &self.revoke_timeout)
            .field("lag_interval", &self.lag_interval)
            .field("extra", &hule_secrets::PropertyList(&self.extra))
            .finish_non_exhaustive()
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig::new("", "")
    }
}

impl ConsumerConfig {
    /// A consumer of `group` with the connection `kafka` (its properties become [`ConsumerConfig::extra`]).
    pub fn with_settings(kafka: &KafkaSettings, group: &str) -> Self {
        let mut c = ConsumerConfig::new("", group);
        c.apply_settings(kafka);
        c
    }

    /// Takes the connection from `kafka`: its brokers when this config names none, its properties before this
    /// config's own (which therefore win), for a config read from a file's `[consumer]` table.
    pub fn apply_settings(&mut self, kafka: &KafkaSettings) {
        if self.brokers.trim().is_empty() {
            self.brokers = kafka.brokers.clone();
        }
        let own = std::mem::take(&mut self.extra);
        self.extra = kafka.properties.clone();
        self.extra.extend(own);
    }

    /// Defaults: earliest, 256 queued per partition, 32 MiB held beyond full queues, commit every 500 ms,
    /// 100 ms revoke wait, lag every 5 s.
    pub fn new(brokers: &str, group: &str) -> Self {
        ConsumerConfig {
            brokers: brokers.to_owned(),
            group: group.to_owned(),
            auto_offset_reset: "earliest".into(),
            queue_per_partition: 256,
            held_bytes: 32 << 20,
            commit_interval: Duration::from_millis(500),
            revoke_timeout: Duration::from_millis(100),
            lag_interval: Duration::from_secs(5),
            extra: Vec::new(),
            on_assign: None,
        }
    }
}

/// Progress of one partition, shared by its worker, the committer and the rebalance callback.
#[derive(Debug)]
struct PartState {
    /// Next offset to commit (last finished + 1); -1 when nothing finished yet.
    done: AtomicI64,
    /// Last committed value of `done`.
    committed: AtomicI64,
    busy: AtomicBool,
    revoked: AtomicBool,
    /// Records are held for the queue; the worker signals when it has drained to half.
    holding: AtomicBool,
}

impl PartState {
    fn new() -> Self {
        PartState {
            done: AtomicI64::new(-1),
            committed: AtomicI64::new(-1),
            busy: AtomicBool::new(false),
            revoked: AtomicBool::new(false),
            holding: AtomicBool::new(false),
        }
    }
}

type PartKey = (String, i32);

#[derive(Default)]
struct Shared {
    parts: Mutex<HashMap<PartKey, Arc<PartState>>>,
    revoke_timeout: Duration,
}

impl Shared {
    fn parts(&self) -> std::sync::MutexGuard<'_, HashMap<PartKey, Arc<PartState>>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The offsets finished since the last commit, marked as committed.
    fn pending(&self, only: Option<&[PartKey]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), st) in self.parts().iter() {
            if only.is_some_and(|o| !o.contains(&(topic.clone(), *partition))) {
                continue;
            }
            let done = st.done.load(Ordering::SeqCst);
            if done >= 0
                && done > st.committed.load(Ordering::SeqCst)
                && tpl
                    .add_partition_offset(topic, *partition, Offset::Offset(done))
                    .is_ok()
            {
                st.committed.store(done, Ordering::SeqCst);
            }
        }
        tpl
    }
}

/// The rdkafka context: handles revocation.
struct DriverContext {
    shared: Arc<Shared>,
    on_assign: Option<Arc<tokio::sync::Notify>>,
    metrics: ConsumerMetrics,
}

impl ClientContext for DriverContext {}

impl ConsumerContext for DriverContext {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            // Forget what was marked committed, so the next commit (or the one on stop) sends these offsets again.
            tracing::warn!(error = %e, "offset commit failed; it will be retried");
            let parts = self.shared.parts();
            for el in offsets.elements() {
                if let Some(st) = parts.get(&(el.topic().to_owned(), el.partition())) {
                    st.committed.store(-1, Ordering::SeqCst);
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.metrics.broker(
                true,
                &format!("in the group, {} partitions assigned", tpl.count()),
            );
            if let Some(n) = &self.on_assign {
                n.notify_one();
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let keys: Vec<PartKey> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let states: Vec<Arc<PartState>> = {
            let parts = self.shared.parts();
            keys.iter().filter_map(|k| parts.get(k).cloned()).collect()
        };
        for st in &states {
            st.revoked.store(true, Ordering::SeqCst);
        }
        let deadline = Instant::now() + self.shared.revoke_timeout;
        while states.iter().any(|s| s.busy.load(Ordering::SeqCst)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let pending = self.shared.pending(Some(&keys));
        if pending.count() > 0 {
            if let Err(e) = consumer.commit(&pending, CommitMode::Sync) {
                tracing::warn!(error = %e, "commit on revoke failed; the new owner may redeliver (dedup covers it)");
            }
        }
        let mut parts = self.shared.parts();
        for k in &keys {
            parts.remove(k);
            self.metrics.forget_lag(&k.0, k.1);
        }
        tracing::info!(
            partitions = keys.len(),
            "partitions revoked and handed over"
        );
    }
}

/// How long without a receive error before the consumer counts as connected again.
const BROKER_QUIET: Duration = Duration::from_secs(2);

/// Counts of one driver run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Records that reached an outcome.
    pub finished: u64,
    /// Times a record was retried because infrastructure was unavailable.
    pub stalls: u64,
}

/// Converts an rdkafka message into a [`Delivery`].
pub fn delivery_of(m: &impl rdkafka::Message) -> Delivery {
    let mut headers = Headers::default();
    let mut invalid_headers = Vec::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            let bytes = h.value.unwrap_or_default();
            if std::str::from_utf8(bytes).is_err() {
                invalid_headers.push(h.key.to_owned());
            }
            headers.0.push((
                h.key.to_owned(),
                String::from_utf8_lossy(bytes).into_owned(),
            ));
        }
    }
    Delivery {
        invalid_headers,
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        headers,
        payload: m.payload().map(<[u8]>::to_vec),
    }
}

/// Consumes `topics` with `stack` until `stop` turns true.
pub async fn run_consumer(
    config: &ConsumerConfig,
    topics: &[&str],
    stack: BoxService,
    metrics: ConsumerMetrics,
    mut stop: watch::Receiver<bool>,
) -> Result<ConsumerStats, Error> {
    let shared = Arc::new(Shared {
        parts: Mutex::default(),
        revoke_timeout: config.revoke_timeout,
    });
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &config.auto_offset_reset)
        .set("enable.partition.eof", "false")
        // librdkafka prefetches up to 64 MB per consumer by default; our own per-partition queues bound the rest.
        .set("queued.max.messages.kbytes", "16384")
        // When that prefetch is full, librdkafka postpones the partition's next fetch by this much (1 s by
        // default), which starved the workers: 21k → 75k events/s in `hule bench` once it was 10 ms.
        .set("fetch.queue.backoff.ms", "10")
        // How long a dead member can hold its partitions (and the whole group) up. librdkafka's defaults are 45 s
        // of session and 300 s of rebalance timeout (`max.poll.interval.ms`, sent as the JoinGroup's rebalance
        // timeout): a member SIGKILLed while the group was rebalancing after a broker restart stalled the rest for
        // minutes (tests/faults.rs). This driver polls continuously whatever its handlers do, so 30 s is ample;
        // `extra` can set others.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("max.poll.interval.ms", "30000");
    for (k, v) in &config.extra {
        cc.set(k, v);
    }
    let consumer: Arc<StreamConsumer<DriverContext>> =
        Arc::new(cc.create_with_context(DriverContext {
            shared: shared.clone(),
            on_assign: config.on_assign.clone(),
            metrics: metrics.clone(),
        })?);
    metrics.broker(false, "joining the group");
    consumer.subscribe(topics)?;

    let finished = Arc::new(AtomicI64::new(0));
    let stalls = Arc::new(AtomicI64::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    // A fatal failure (the consumer's own, or one a worker met) ends the run with an error.
    let (fatal_tx, mut fatal_rx) = mpsc::channel::<String>(1);
    let mut fatal: Option<String> = None;
    // Workers say here that the queue of a partition with held records has drained to half.
    let room = Arc::new(tokio::sync::Notify::new());
    let capacity = config.queue_per_partition.max(1);
    let worker_shared = WorkerShared {
        room: room.clone(),
        low_water: capacity / 2,
        stack: stack.clone(),
        metrics: metrics.clone(),
        stopping: stopping.clone(),
        finished: finished.clone(),
        stalls: stalls.clone(),
        fatal: fatal_tx,
    };
    let mut lanes: HashMap<PartKey, Lane> = HashMap::new();
    // Bytes of the records held beside full queues, all partitions together.
    let mut held_bytes = 0usize;
    let mut workers = Vec::new();
    let mut commit_tick = tokio::time::interval(config.commit_interval);
    let mut lag_tick = tokio::time::interval(config.lag_interval.max(Duration::from_millis(10)));
    // The last receive error: the group is well again after `BROKER_QUIET` without one (a record from another
    // broker while one is still down is no recovery).
    let mut last_broker_error: Option<Instant> = None;

    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => {
                if *stop.borrow() { break; }
            }
            Some(reason) = fatal_rx.recv() => {
                tracing::error!(error = %reason, "fatal error; the consumer stops");
                fatal = Some(reason);
                break;
            }
            _ = room.notified() => {
                for lane in lanes.values_mut() {
                    held_bytes -= lane.refill();
                }
            }
            _ = commit_tick.tick() => {
                // Lanes of revoked partitions let go of what they held (no worker signals for them).
                for lane in lanes.values_mut() {
                    held_bytes -= lane.refill();
                }
                if last_broker_error.is_some_and(|t| t.elapsed() >= BROKER_QUIET) {
                    metrics.broker(true, "receiving; no errors for 2 s");
                    last_broker_error = None;
                }
                let tpl = shared.pending(None);
                if tpl.count() > 0 {
                    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                        tracing::warn!(error = %e, "asynchronous commit failed; retried with the next one");
                    }
                }
            }
            _ = lag_tick.tick() => {
                let c = consumer.clone();
                let parts: Vec<(PartKey, i64)> = shared.parts().iter().map(|(k, s)| (k.clone(), s.done.load(Ordering::SeqCst))).collect();
                let m = metrics.clone();
                tokio::task::spawn_blocking(move || {
                    for ((topic, partition), done) in parts {
                        if let Ok((_, high)) = c.fetch_watermarks(&topic, partition, Duration::from_secs(1)) {
                            if done >= 0 { m.set_lag(&topic, partition, high - done); }
                        }
                    }
                });
            }
            // Over the budget, the loop only refills queues until workers have made room.
            received = consumer.recv(), if held_bytes <= config.held_bytes => {
                let m = match received {
                    Ok(m) => m,
                    Err(e) if crate::classify(&e) == hule_contracts::FailureKind::Fatal => {
                        tracing::error!(error = %e, "fatal consumer error; the consumer stops");
                        fatal = Some(e.to_string());
                        break;
                    }
                    Err(e) => {
                        // librdkafka retries by itself; the health board says once that the group is unwell,
                        // and once that it is well again.
                        tracing::debug!(error = %e, "consumer error");
                        metrics.broker(false, &e.to_string());
                        last_broker_error = Some(Instant::now());
                        continue;
                    }
                };
                let delivery = delivery_of(&m);
                drop(m);
                let key = (delivery.topic.clone(), delivery.partition);
                if !lanes.get(&key).is_some_and(Lane::live) {
                    if let Some(mut old) = lanes.remove(&key) {
                        held_bytes -= old.refill();
                    }
                    let st = Arc::new(PartState::new());
                    shared.parts().insert(key.clone(), st.clone());
                    let (tx, rx) = mpsc::channel(capacity);
                    workers.push(tokio::spawn(partition_worker(rx, st.clone(), worker_shared.clone())));
                    lanes.insert(key.clone(), Lane { st, tx, next: -1, held: VecDeque::new() });
                }
                if let Some(lane) = lanes.get_mut(&key) {
                    held_bytes += lane.offer(delivery);
                }
            }
        }
    }

    // Stop: finish the records in flight, commit, leave the group.
    stopping.store(true, Ordering::SeqCst);
    lanes.clear();
    for w in workers {
        let _ = w.await;
    }
    let tpl = shared.pending(None);
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync)?;
    }
    consumer.unsubscribe();
    if let Some(reason) = fatal {
        return Err(Error::Fatal(reason));
    }
    Ok(ConsumerStats {
        finished: finished.load(Ordering::SeqCst).max(0) as u64,
        stalls: stalls.load(Ordering::SeqCst).max(0) as u64,
    })
}

/// The fetch loop's side of one partition: its worker's queue, and the records held beside it while it is full.
struct Lane {
    st: Arc<PartState>,
    tx: mpsc::Sender<Delivery>,
    /// The offset after the last record accepted.
    next: i64,
    /// Received while the queue was full, in offset order.
    held: VecDeque<Delivery>,
}

/// What holding a record costs against [`ConsumerConfig::held_bytes`].
fn held_size(d: &Delivery) -> usize {
    d.payload.as_ref().map_or(0, Vec::len) + d.key.as_ref().map_or(0, Vec::len) + 256
}

impl Lane {
    /// Whether the lane still feeds a running worker of a partition this consumer owns.
    fn live(&self) -> bool {
        !self.st.revoked.load(Ordering::SeqCst) && !self.tx.is_closed()
    }

    /// Accepts a record in offset order, into the queue or held behind it; returns the bytes newly held.
    fn offer(&mut self, delivery: Delivery) -> usize {
        if delivery.offset < self.next {
            // Before a record already accepted: librdkafka is not expected to send one, but none is queued twice.
            return 0;
        }
        self.next = delivery.offset + 1;
        let delivery = if self.held.is_empty() {
            match self.tx.try_send(delivery) {
                Ok(()) => return 0,
                Err(mpsc::error::TrySendError::Full(d)) => d,
                // The worker has ended (revoked, stopping, or failed fatally): the record stays uncommitted.
                Err(mpsc::error::TrySendError::Closed(_)) => return 0,
            }
        } else {
            delivery
        };
        let size = held_size(&delivery);
        self.held.push_back(delivery);
        self.st.holding.store(true, Ordering::SeqCst);
        size
    }

    /// Moves held records into the queue as far as it has room; returns the bytes no longer held.
    fn refill(&mut self) -> usize {
        let mut freed = 0;
        if !self.live() {
            // Revoked or ended: the held records go back uncommitted with the partition.
            freed = self.held.iter().map(held_size).sum();
            self.held.clear();
        }
        while let Some(d) = self.held.pop_front() {
            let size = held_size(&d);
            match self.tx.try_send(d) {
                Ok(()) => freed += size,
                Err(mpsc::error::TrySendError::Full(d)) => {
                    self.held.push_front(d);
                    return freed;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    freed += size + self.held.iter().map(held_size).sum::<usize>();
                    self.held.clear();
                }
            }
        }
        self.st.holding.store(false, Ordering::SeqCst);
        freed
    }
}

/// What every partition worker of one run shares.
#[derive(Clone)]
struct WorkerShared {
    /// Signalled when the queue of a partition with held records has drained to `low_water`.
    room: Arc<tokio::sync::Notify>,
    low_water: usize,
    stack: BoxService,
    metrics: ConsumerMetrics,
    stopping: Arc<AtomicBool>,
    finished: Arc<AtomicI64>,
    stalls: Arc<AtomicI64>,
    /// Where a worker reports a fatal failure (ends the run).
    fatal: mpsc::Sender<String>,
}

/// The most records a worker takes from its queue into one run for [`Service::prepare`].
const RUN: usize = 64;

async fn partition_worker(mut rx: mpsc::Receiver<Delivery>, st: Arc<PartState>, w: WorkerShared) {
    let WorkerShared {
        room,
        low_water,
        stack,
        metrics,
        stopping,
        finished,
        stalls,
        fatal,
    } = w;
    let mut run: VecDeque<Message> = VecDeque::with_capacity(RUN);
    while let Some(first) = rx.recv().await {
        // The records already waiting form a run, prepared together (decoded, claimed in one round trip); each is
        // then processed in order with an outcome of its own. Nothing waits for a run to fill.
        run.push_back(Message::new(first));
        while run.len() < RUN {
            match rx.try_recv() {
                Ok(d) => run.push_back(Message::new(d)),
                Err(_) => break,
            }
        }
        if st.holding.load(Ordering::SeqCst) && rx.len() <= low_water {
            room.notify_one();
        }
        st.busy.store(true, Ordering::SeqCst);
        stack.prepare(run.make_contiguous()).await;
        // Records that reached their outcomes; their offsets count as done once `finish` has completed them.
        let mut ended: Vec<Message> = Vec::with_capacity(run.len());
        let mut go_on = true;
        while let Some(mut msg) = run.pop_front() {
            if st.revoked.load(Ordering::SeqCst) || stopping.load(Ordering::SeqCst) {
                run.push_front(msg);
                go_on = false;
                break;
            }
            st.busy.store(true, Ordering::SeqCst);
            let mut backoff = Duration::from_millis(100);
            let ended_ok = loop {
                let outcome =
                    process_flushing(&stack, &mut msg, &metrics, &mut ended, &st, &finished).await;
                match outcome {
                    Ok(_) => {
                        if backoff > Duration::from_millis(100) {
                            metrics.progressing(true, "records reach their outcomes");
                        }
                        break true;
                    }
                    Err(hule_consumer::Failure::Fatal(reason)) => {
                        // Not committed; the run ends and the record is redelivered to whoever runs next.
                        let _ = fatal.try_send(format!("{}: {reason}", msg.delivery.position()));
                        break false;
                    }
                    Err(failure) => {
                        stalls.fetch_add(1, Ordering::SeqCst);
                        metrics.progressing(
                            false,
                            &format!("retrying {}: {failure}", msg.delivery.position()),
                        );
                        tracing::warn!(at = %msg.delivery.position(), error = %failure, ?backoff, "not committed; retrying the record");
                        if st.revoked.load(Ordering::SeqCst) || stopping.load(Ordering::SeqCst) {
                            break false;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        msg = Message::new(msg.delivery);
                    }
                }
            };
            if !ended_ok {
                go_on = false;
                break;
            }
            ended.push(msg);
        }
        finish_ended(&stack, &mut ended, &st, &finished).await;
        if !go_on {
            stack.abandon(run.make_contiguous()).await;
            st.busy.store(false, Ordering::SeqCst);
            return;
        }
        st.busy.store(false, Ordering::SeqCst);
    }
}

/// How long a record may take before the records of its run that ended before it are completed and marked done.
const FLUSH_AFTER: Duration = Duration::from_millis(10);

/// Processes `msg`; if that takes over [`FLUSH_AFTER`], the run's records that `ended` before it are finished and
/// counted as done meanwhile, so a slow or stuck handler holds back only its own offset.
async fn process_flushing(
    stack: &BoxService,
    msg: &mut Message,
    metrics: &ConsumerMetrics,
    ended: &mut Vec<Message>,
    st: &PartState,
    finished: &AtomicI64,
) -> hule_consumer::Processed {
    let processing = process(stack, msg, metrics);
    tokio::pin!(processing);
    let flush = tokio::time::sleep(FLUSH_AFTER);
    tokio::pin!(flush);
    loop {
        tokio::select! {
            outcome = &mut processing => return outcome,
            _ = &mut flush, if !ended.is_empty() => finish_ended(stack, ended, st, finished).await,
        }
    }
}

/// Completes the records that reached their outcomes ([`Service::finish`]) and marks their offsets done.
async fn finish_ended(
    stack: &BoxService,
    ended: &mut Vec<Message>,
    st: &PartState,
    finished: &AtomicI64,
) {
    if ended.is_empty() {
        return;
    }
    stack.finish(ended).await;
    if let Some(last) = ended.last() {
        st.done.store(last.delivery.offset + 1, Ordering::SeqCst);
    }
    finished.fetch_add(ended.len() as i64, Ordering::SeqCst);
    ended.clear();
}

/// A consumer context that only signals assignments (for plain rdkafka consumers in tools).
pub struct AssignSignal(pub Arc<tokio::sync::Notify>);

impl ClientContext for AssignSignal {}

impl ConsumerContext for AssignSignal {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.0.notify_one();
        }
    }
}

/// Makes a new consumer group start at the current end of `topics`: commits each partition's high watermark for
/// `group` (a group nobody has joined yet accepts such commits). For a run on a shared cluster that must only see
/// what it produces itself, like `hule demo --brokers`; `auto.offset.reset` would either replay the topics' history
/// (`earliest`) or race the first records (`latest`). Topics the cluster does not have are skipped (a topic created
/// later holds only new records). Returns the number of partitions positioned.
pub fn start_group_at_end(
    kafka: &KafkaSettings,
    group: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<usize, Error> {
    let brokers = &kafka.brokers;
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = crate::metadata(consumer.client(), Some(topic), brokers, timeout)?;
        for t in md.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                // A topic created a moment ago may not have settled its leaders yet: retry until the timeout.
                let deadline = Instant::now() + timeout;
                let high = loop {
                    match consumer.fetch_watermarks(t.name(), p.id(), timeout) {
                        Ok((_, high)) => break high,
                        Err(e) if Instant::now() < deadline => {
                            tracing::debug!(topic = t.name(), partition = p.id(), error = %e, "watermarks, retrying");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                tpl.add_partition_offset(t.name(), p.id(), Offset::Offset(high))?;
            }
        }
    }
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync)?;
    }
    Ok(tpl.count())
}

/// Sends dead letters with an idempotent producer and waits for the broker's acknowledgement.
pub struct KafkaDeadLetterSink {
    producer: FutureProducer,
    timeout: Duration,
}

impl KafkaDeadLetterSink {
    /// A sink on `brokers` (plaintext).
    pub fn new(brokers: &str) -> Result<Self, Error> {
        Self::with_settings(&KafkaSettings::new(brokers))
    }

    /// A sink with the connection `kafka`.
    pub fn with_settings(kafka: &KafkaSettings) -> Result<Self, Error> {
        let mut config = crate::ProducerConfig::with_settings(kafka);
        config.message_timeout_ms = 10_000;
        let producer = config.future_producer()?;
        Ok(KafkaDeadLetterSink {
            producer,
            timeout: Duration::from_secs(10),
        })
    }
}

/// Builds rdkafka headers from ours.
pub fn owned_headers(headers: &Headers) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(headers.0.len());
    for (k, v) in headers.iter() {
        out = out.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    out
}

/// Builds rdkafka headers from ours with `trace` (when given) as the `traceparent` / `tracestate`.
pub fn owned_headers_traced(
    headers: &Headers,
    trace: Option<&hule_trace::WireContext>,
) -> OwnedHeaders {
    let Some(trace) = trace else {
        return owned_headers(headers);
    };
    let mut out = OwnedHeaders::new_with_capacity(headers.0.len() + 1);
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| *k != hule_trace::TRACEPARENT && *k != hule_trace::TRACESTATE)
    {
        out = out.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    out = out.insert(Header {
        key: hule_trace::TRACEPARENT,
        value: Some(trace.traceparent.as_bytes()),
    });
    if let Some(ts) = &trace.tracestate {
        out = out.insert(Header {
            key: hule_trace::TRACESTATE,
            value: Some(ts.as_bytes()),
        });
    }
    out
}

impl DeadLetterSink for KafkaDeadLetterSink {
    fn send(&self, letter: DeadLetter) -> BoxFuture<'_, Result<(), DeliveryError>> {
        async move {
            let mut record = FutureRecord::to(&letter.topic)
                .payload(&letter.value)
                .headers(owned_headers(&letter.headers));
            if let Some(k) = &letter.key {
                record = record.key(k);
            }
            self.producer
                .send(record, self.timeout)
                .await
                .map(|_| ())
                .map_err(|(e, _)| crate::delivery_error(&e))
        }
        .boxed()
    }
}
