//! The consumer driver: an rdkafka consumer group feeding a `hule-consumer` stack, with manual commits.
//!
//! - One worker task per assigned partition processes its records in order; partitions run in parallel
//!   ([`worker`]).
//! - In-flight work is bounded: each partition's queue holds at most `queue_per_partition` records and
//!   `queue_bytes_per_partition` bytes; records received for a full queue are held beside it, in offset order
//!   ([`lane`]), so one busy partition never holds up the records of the others queued behind its own in
//!   librdkafka. When the held records of all partitions together exceed `held_bytes`, the driver pauses the
//!   partitions that hold records and goes on polling — librdkafka keeps serving heartbeats, rebalances and
//!   `max.poll.interval.ms`, and the other partitions keep flowing — and resumes each once its held records have
//!   gone into its queue (librdkafka's own prefetch is bounded by `queued.max.messages.kbytes`, 16 MiB). A
//!   rebalance clears the pauses of the partitions it moves (librdkafka keeps an application's pause across it).
//! - An offset is committed only after its record's outcome is durable: the stack returned an [`Outcome`]
//!   (handled with its dedup record, a duplicate, ignored, or dead-lettered with the broker's acknowledgement) and
//!   `Service::finish` completed it (a batched inbox run's commit; records whose run was rolled back are processed
//!   again, alone, first).
//!   A [`Failure`] reaching the driver (an unreachable dedup store or DLQ producer) is retried on the same record
//!   with backoff, so nothing behind it in the partition is committed; the health part `consumer:<group>` is
//!   unwell while any partition retries and well again when none does (the retry succeeded, or the partition was
//!   revoked, or the consumer stopped).
//! - On a rebalance ([`rebalance`]), revoked partitions stop taking new records, the record in flight gets
//!   `revoke_timeout` (100 ms) to finish, and the finished offsets are committed synchronously before the
//!   partitions are handed over (a batched inbox run's records count as finished only with its commit, so a revoke
//!   during a run hands back up to a run of records, which the new owner finds in the inbox as duplicates); a record still in flight and the queued ones are handed back uncommitted, for the
//!   new owner to read (the dedup layer makes that redelivery harmless). The wait is short because librdkafka
//!   runs the callback on the thread polling the consumer. A revoked partition's worker ends (nothing is claimed
//!   in a dedup store for it after the revoke), its lane is dropped, and its lag series is removed for good.
//! - On stop: workers finish the record in flight, offsets are committed synchronously and the consumer leaves
//!   the group.
//!
//! The driver needs a multi-threaded Tokio runtime: the rebalance callback briefly waits for workers on other
//! threads.
//!
//! [`Outcome`]: hule_consumer::Outcome
//! [`Failure`]: hule_consumer::Failure

mod config;
mod dead_letter;
mod group;
mod lane;
mod rebalance;
mod records;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use hule_consumer::{BoxService, ConsumerMetrics};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::ConsumerConfig;
pub use dead_letter::KafkaDeadLetterSink;
pub use group::{start_group_at_end, AssignSignal};
pub use records::{delivery_of, owned_headers, owned_headers_traced};

use lane::Lane;
use rebalance::{DriverContext, PartKey, PartState, Shared};
use worker::{partition_worker, Stalls, WorkerShared};

use crate::Error;

/// How long without a receive error before the consumer counts as connected again.
const BROKER_QUIET: Duration = Duration::from_secs(2);

/// Counts of one driver run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Records that reached an outcome.
    pub finished: u64,
    /// Times a record was retried because infrastructure was unavailable.
    pub stalls: u64,
    /// Times a partition was paused because the held records exceeded the budget.
    pub pauses: u64,
}

/// The librdkafka configuration of the driver's consumer.
fn client_config(config: &ConsumerConfig) -> ClientConfig {
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
        // minutes (tests/faults.rs). This driver polls continuously whatever its handlers do (over its budget it
        // pauses and still polls), so 30 s is ample; `extra` can set others.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("max.poll.interval.ms", "30000");
    for (k, v) in &config.extra {
        cc.set(k, v);
    }
    cc
}

/// Records taken from the stream in one turn of the driver's loop when they are already fetched.
const DRAIN: usize = 64;

/// The held-records budget: over it, the partitions holding a lot are paused (polling goes on).
struct Budget {
    /// Bytes held beside full queues, all partitions together, above which partitions are paused.
    limit: usize,
    /// A partition is paused over the budget only when it holds at least this much itself.
    floor: usize,
    /// Whether the last check found the budget crossed.
    over: bool,
    /// Lanes paused, so that the scans for resuming run only when needed.
    paused_lanes: usize,
    /// Pauses in the run.
    pauses: u64,
}

impl Budget {
    /// Pauses partitions when `held` is over the budget. All lanes are looked at when the budget is crossed, then
    /// only `offered` (the lane that just took a record): a partition stuck in a long retry behind its backlog stops
    /// itself, and the others keep flowing (one filling its queue now and then while catching up holds less than
    /// `floor` and is not paused and resumed on every fill, which would cost each time its prefetched records).
    /// Past twice the budget (many partitions each holding less than the floor: a store-wide outage with every
    /// partition retrying), every live partition holding anything is paused: held bytes stay within about twice
    /// the budget plus what one fetch brings.
    fn check(
        &mut self,
        consumer: &StreamConsumer<DriverContext>,
        lanes: &mut HashMap<PartKey, Lane>,
        held: usize,
        offered: Option<&PartKey>,
    ) {
        if held <= self.limit {
            self.over = false;
            return;
        }
        let hard = held > self.limit.saturating_mul(2);
        let floor = if hard { 1 } else { self.floor };
        let mut pause = |key: &PartKey, lane: &mut Lane| {
            if !lane.paused && lane.live() && lane.held_bytes() >= floor {
                tracing::debug!(topic = %key.0, partition = key.1, held_bytes = held, "held records over the budget; pausing the partition");
                pause_partition(consumer, key, true);
                lane.paused = true;
                self.paused_lanes += 1;
                self.pauses += 1;
            }
        };
        if !self.over || hard {
            for (key, lane) in lanes.iter_mut() {
                pause(key, lane);
            }
        } else if let Some((key, lane)) = offered.and_then(|k| lanes.get_mut(k).map(|l| (k, l))) {
            // Only the lane that just took a record: one look-up, not a scan of every lane per record.
            pause(key, lane);
        }
        self.over = true;
    }
}

/// Consumes `topics` with `stack` until `stop` is cancelled (the one stop signal of the library, as for the relay
/// and the builders), then finishes the records in flight, commits and leaves the group.
pub async fn run_consumer(
    config: &ConsumerConfig,
    topics: &[&str],
    stack: BoxService,
    metrics: ConsumerMetrics,
    stop: CancellationToken,
) -> Result<ConsumerStats, Error> {
    let shared = Arc::new(Shared::new(config.revoke_timeout));
    let consumer: Arc<StreamConsumer<DriverContext>> =
        Arc::new(client_config(config).create_with_context(DriverContext {
            shared: shared.clone(),
            group: config.group.clone(),
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
    let queue_bytes = config.queue_bytes_per_partition.max(1);
    let worker_shared = WorkerShared {
        room: room.clone(),
        low_water: capacity / 2,
        low_water_bytes: queue_bytes / 2,
        stack: stack.clone(),
        metrics: metrics.clone(),
        stopping: stopping.clone(),
        finished: finished.clone(),
        stalls_count: stalls.clone(),
        stalls: Stalls::new(metrics.clone()),
        fatal: fatal_tx,
    };
    let mut lanes: HashMap<PartKey, Lane> = HashMap::new();
    // Bytes of the records held beside full queues, all partitions together.
    let mut held_bytes = 0usize;
    // Over the budget, the partitions holding records are paused (polling goes on); each is resumed once its held
    // records have all gone into its queue.
    let mut budget = Budget {
        limit: config.held_bytes,
        floor: queue_bytes.min(config.held_bytes / 4).max(1),
        over: false,
        paused_lanes: 0,
        pauses: 0,
    };
    // One stream for the run (a stream per receive registers and drops a waker slot under a lock each time).
    let mut messages = consumer.stream();
    let mut workers = JoinSet::new();
    let mut commit_tick = tokio::time::interval(config.commit_interval);
    let mut lag_tick = tokio::time::interval(config.lag_interval.max(Duration::from_millis(10)));
    // One lag measurement at a time: during an outage each takes up to its timeouts, and they must not pile up.
    let lag_running = Arc::new(AtomicBool::new(false));
    // The last receive error: the group is well again after `BROKER_QUIET` without one (a record from another
    // broker while one is still down is no recovery).
    let mut last_broker_error: Option<Instant> = None;

    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(reason) = fatal_rx.recv() => {
                tracing::error!(error = %reason, "fatal error; the consumer stops");
                fatal = Some(reason);
                break;
            }
            Some(ended) = workers.join_next(), if !workers.is_empty() => {
                if let Err(e) = ended {
                    // A worker that died mid-partition would leave its records unprocessed while a new lane went
                    // past them: stop, uncommitted, for the group's next owner.
                    tracing::error!(error = %e, "a partition worker failed; the consumer stops");
                    fatal = Some(format!("a partition worker failed: {e}"));
                    break;
                }
            }
            _ = room.notified() => {
                for lane in lanes.values_mut() {
                    held_bytes -= lane.refill();
                }
                budget.paused_lanes -= resume_drained(&consumer, &mut lanes, budget.paused_lanes);
            }
            _ = commit_tick.tick() => {
                // Lanes of revoked partitions let go of what they held (no worker signals for them) and are dropped,
                // which ends their worker if it waits for records.
                for lane in lanes.values_mut() {
                    held_bytes -= lane.refill();
                }
                budget.paused_lanes -= resume_drained(&consumer, &mut lanes, budget.paused_lanes);
                lanes.retain(|_, lane| {
                    let keep = lane.live();
                    if !keep && lane.paused {
                        // Its pause was cleared by the rebalance that revoked it.
                        budget.paused_lanes -= 1;
                    }
                    keep
                });
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
                if !lag_running.swap(true, Ordering::SeqCst) {
                    let (c, shared, m, running) = (consumer.clone(), shared.clone(), metrics.clone(), lag_running.clone());
                    tokio::task::spawn_blocking(move || {
                        measure_lag(&c, &shared, &m);
                        running.store(false, Ordering::SeqCst);
                    });
                }
            }
            received = messages.next() => {
                // This record, then those already fetched (up to `DRAIN`) without going round the `select!`, whose
                // futures are made anew and polled on every turn.
                let mut received = received;
                let mut taken = 0;
                loop {
                    let m = match received {
                        Some(Ok(m)) => m,
                        Some(Err(e)) if crate::classify(&e) == hule_contracts::FailureKind::Fatal => {
                            tracing::error!(error = %e, "fatal consumer error; the consumer stops");
                            fatal = Some(e.to_string());
                            break;
                        }
                        Some(Err(e)) => {
                            // librdkafka retries by itself; the health board says once that the group is unwell,
                            // and once that it is well again.
                            tracing::debug!(error = %e, "consumer error");
                            metrics.broker(false, &e.to_string());
                            last_broker_error = Some(Instant::now());
                            break;
                        }
                        None => {
                            fatal = Some("the consumer's message stream ended".into());
                            break;
                        }
                    };
                    let delivery = delivery_of(&m);
                    drop(m);
                    let key = (delivery.topic.clone(), delivery.partition);
                    let lane = match lanes.get_mut(&key) {
                        Some(lane) if lane.live() => Some(lane),
                        // Its worker ended without a revoke (a fatal failure, which ends the run): no new worker may
                        // go on past the record it stopped at.
                        Some(lane) if !lane.st.revoked.load(Ordering::SeqCst) => None,
                        _ => {
                            if let Some(mut old) = lanes.remove(&key) {
                                held_bytes -= old.refill();
                                if old.paused {
                                    budget.paused_lanes -= 1;
                                }
                            }
                            let st = Arc::new(PartState::new());
                            shared.parts().insert(key.clone(), st.clone());
                            let (tx, rx) = mpsc::channel(capacity);
                            workers.spawn(partition_worker(key.clone(), rx, st.clone(), worker_shared.clone()));
                            Some(lanes.entry(key.clone()).or_insert(Lane::new(st, tx, queue_bytes)))
                        }
                    };
                    if let Some(lane) = lane {
                        held_bytes += lane.offer(delivery);
                        budget.check(&consumer, &mut lanes, held_bytes, Some(&key));
                    }
                    taken += 1;
                    // A stop or a worker's fatal report ends the turn, as it would have ended the one before.
                    if taken == DRAIN || stop.is_cancelled() || !fatal_rx.is_empty() {
                        break;
                    }
                    match messages.next().now_or_never() {
                        Some(next) => received = next,
                        None => break,
                    }
                }
                if fatal.is_some() {
                    break;
                }
                continue;
            }
        }
        budget.check(&consumer, &mut lanes, held_bytes, None);
    }
    drop(messages);

    // Stop: finish the records in flight, commit, leave the group.
    stopping.store(true, Ordering::SeqCst);
    lanes.clear();
    while let Some(ended) = workers.join_next().await {
        if let Err(e) = ended {
            tracing::error!(error = %e, "a partition worker failed");
        }
    }
    let tpl = shared.pending(None);
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync)?;
    }
    consumer.unsubscribe();
    if let Some(reason) = fatal {
        return Err(Error::Fatal(reason));
    }
    let stats = ConsumerStats {
        finished: finished.load(Ordering::SeqCst).max(0) as u64,
        stalls: stalls.load(Ordering::SeqCst).max(0) as u64,
        pauses: budget.pauses,
    };
    tracing::info!(target: "hule", group = %config.group, finished = stats.finished, stalls = stats.stalls, pauses = stats.pauses, "consumer stopped: offsets committed, group left");
    Ok(stats)
}

/// Pauses (or resumes) one partition; a failure is logged (a resume is tried again at the next refill).
fn pause_partition(consumer: &StreamConsumer<DriverContext>, key: &PartKey, on: bool) -> bool {
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&key.0, key.1);
    let result = if on {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    if let Err(e) = &result {
        tracing::warn!(topic = %key.0, partition = key.1, error = %e, pause = on, "cannot pause or resume a partition");
    }
    result.is_ok()
}

/// Resumes the paused lanes whose held records have all gone into their queues; returns how many.
fn resume_drained(
    consumer: &StreamConsumer<DriverContext>,
    lanes: &mut HashMap<PartKey, Lane>,
    paused_lanes: usize,
) -> usize {
    if paused_lanes == 0 {
        return 0;
    }
    let mut resumed = 0;
    for (key, lane) in lanes.iter_mut() {
        if lane.paused && !lane.holds() && pause_partition(consumer, key, false) {
            lane.paused = false;
            resumed += 1;
        }
    }
    resumed
}

/// Sets `consumer_lag` of every owned partition: its high watermark minus the next offset to commit. The series is
/// set under the partitions' lock and only for a partition still owned, so a revoke (which removes the series
/// under the same lock) is never undone by a measurement that started before it.
fn measure_lag(
    consumer: &StreamConsumer<DriverContext>,
    shared: &Shared,
    metrics: &ConsumerMetrics,
) {
    let owned: Vec<(PartKey, Arc<PartState>)> = shared
        .parts()
        .iter()
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    for ((topic, partition), st) in owned {
        let Ok((_, high)) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(1))
        else {
            continue;
        };
        let parts = shared.parts();
        let still_owned = parts
            .get(&(topic.clone(), partition))
            .is_some_and(|s| Arc::ptr_eq(s, &st));
        let done = st.done.load(Ordering::SeqCst);
        if still_owned && done >= 0 {
            metrics.set_lag(&topic, partition, high - done);
        }
    }
}
