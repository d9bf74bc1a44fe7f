//! One worker task per owned partition: takes runs of queued records, prepares them together, processes each in
//! order to its outcome (retrying one whose infrastructure is unavailable), and marks finished offsets done.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hule_consumer::{
    process_counted, BoxService, ConsumerMetrics, Delivery, Message, Service, TopicOutcomes,
};
use tokio::sync::mpsc;

use super::lane::held_size;
use super::rebalance::{PartKey, PartState};

/// The partitions whose worker is retrying a record (its infrastructure unavailable), with why. The consumer's
/// health part (`consumer:<group>`) is unwell while any is, and well again once none is — whether the retry
/// succeeded or the partition was revoked or the consumer stopped meanwhile.
#[derive(Clone)]
pub(super) struct Stalls {
    /// By worker: its partition and the address of its `PartState` (a partition revoked and assigned again has a
    /// new worker beside the old one for a moment; one must not clear the other's stall).
    stalled: Arc<Mutex<HashMap<(PartKey, usize), String>>>,
    metrics: ConsumerMetrics,
}

/// A worker's identity in [`Stalls`].
pub(super) fn worker_id(key: &PartKey, st: &Arc<PartState>) -> (PartKey, usize) {
    (key.clone(), Arc::as_ptr(st) as usize)
}

impl Stalls {
    pub fn new(metrics: ConsumerMetrics) -> Self {
        Stalls {
            stalled: Arc::default(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(PartKey, usize), String>> {
        self.stalled.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stall(&self, key: &(PartKey, usize), why: String) {
        let mut stalled = self.lock();
        self.metrics.progressing(false, &why);
        stalled.insert(key.clone(), why);
    }

    /// The worker is no longer stalled (its record went on, or it ended).
    pub fn clear(&self, key: &(PartKey, usize)) {
        let mut stalled = self.lock();
        if stalled.remove(key).is_some() {
            match stalled.values().next() {
                None => self
                    .metrics
                    .progressing(true, "records reach their outcomes"),
                Some(other) => self.metrics.progressing(false, other),
            }
        }
    }
}

/// What every partition worker of one run shares.
#[derive(Clone)]
pub(super) struct WorkerShared {
    /// Signalled when the queue of a partition with held records has drained to half (records and bytes).
    pub room: Arc<tokio::sync::Notify>,
    pub low_water: usize,
    pub low_water_bytes: usize,
    pub stack: BoxService,
    pub metrics: ConsumerMetrics,
    pub stopping: Arc<AtomicBool>,
    pub finished: Arc<AtomicI64>,
    pub stalls_count: Arc<AtomicI64>,
    pub stalls: Stalls,
    /// Where a worker reports a fatal failure (ends the run).
    pub fatal: mpsc::Sender<String>,
}

/// The most records a worker takes from its queue into one run for [`Service::prepare`].
const RUN: usize = 64;

/// Runs one partition's worker until its queue closes (the lane dropped), its partition is revoked, the consumer
/// stops, or a fatal failure; its stall, if any, is cleared however it ends.
pub(super) async fn partition_worker(
    key: PartKey,
    rx: mpsc::Receiver<Delivery>,
    st: Arc<PartState>,
    w: WorkerShared,
) {
    let stalls = w.stalls.clone();
    let id = worker_id(&key, &st);
    work(&id, rx, &st, w).await;
    st.busy.store(false, Ordering::SeqCst);
    stalls.clear(&id);
}

fn take(st: &PartState, d: Delivery) -> Message {
    st.queued_bytes.fetch_sub(held_size(&d), Ordering::SeqCst);
    Message::new(d)
}

async fn work(
    key: &(PartKey, usize),
    mut rx: mpsc::Receiver<Delivery>,
    st: &PartState,
    w: WorkerShared,
) {
    let WorkerShared {
        room,
        low_water,
        low_water_bytes,
        stack,
        metrics,
        stopping,
        finished,
        stalls_count,
        stalls,
        fatal,
    } = w;
    let gone = || st.revoked.load(Ordering::SeqCst) || stopping.load(Ordering::SeqCst);
    let outcomes = metrics.for_topic(&key.0 .0);
    let mut run: VecDeque<Message> = VecDeque::with_capacity(RUN);
    while let Some(first) = rx.recv().await {
        // The records already waiting form a run, prepared together (decoded, claimed in one round trip); each is
        // then processed in order with an outcome of its own. Nothing waits for a run to fill.
        run.push_back(take(st, first));
        while run.len() < RUN {
            match rx.try_recv() {
                Ok(d) => run.push_back(take(st, d)),
                Err(_) => break,
            }
        }
        if st.holding.load(Ordering::SeqCst)
            && rx.len() <= low_water
            && st.queued_bytes.load(Ordering::SeqCst) <= low_water_bytes
        {
            room.notify_one();
        }
        // A revoked partition's records belong to its next owner: claim nothing for them. Busy is set before the
        // check (the revoke sets `revoked`, then reads `busy`), so either the revoke waits for this run or the run
        // sees the revoke.
        st.busy.store(true, Ordering::SeqCst);
        if gone() {
            return;
        }
        stack.prepare(run.make_contiguous()).await;
        // Records that reached their outcomes; their offsets count as done once `finish` has completed them.
        let mut ended: Vec<Message> = Vec::with_capacity(run.len());
        let mut go_on = true;
        while let Some(mut msg) = run.pop_front() {
            if gone() {
                run.push_front(msg);
                go_on = false;
                break;
            }
            let mut backoff = Duration::from_millis(100);
            let mut stalled = false;
            let ended_ok = loop {
                let outcome =
                    process_flushing(&stack, &mut msg, &outcomes, &mut ended, st, &finished).await;
                match outcome {
                    Ok(_) => {
                        if stalled {
                            stalls.clear(key);
                        }
                        break true;
                    }
                    Err(hule_consumer::Failure::Fatal(reason)) => {
                        // Not committed; the run ends and the record is redelivered to whoever runs next.
                        let _ = fatal.try_send(format!("{}: {reason}", msg.delivery.position()));
                        break false;
                    }
                    Err(failure) => {
                        stalls_count.fetch_add(1, Ordering::SeqCst);
                        stalled = true;
                        stalls.stall(
                            key,
                            format!("retrying {}: {failure}", msg.delivery.position()),
                        );
                        tracing::warn!(at = %msg.delivery.position(), error = %failure, ?backoff, "not committed; retrying the record");
                        if gone() {
                            break false;
                        }
                        // The run's records that ended before this one count as done while it waits.
                        finish_ended(&stack, &mut ended, st, &finished).await;
                        tokio::time::sleep(backoff).await;
                        if gone() {
                            break false;
                        }
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
        finish_ended(&stack, &mut ended, st, &finished).await;
        if !go_on {
            stack.abandon(run.make_contiguous()).await;
            return;
        }
        st.busy.store(false, Ordering::SeqCst);
    }
}

/// How long a record may take before the records of its run that ended before it are completed and marked done.
const FLUSH_AFTER: Duration = Duration::from_millis(10);

/// Processes `msg`; if that takes over [`FLUSH_AFTER`], the run's records that `ended` before it are finished and
/// counted as done meanwhile, so a slow or stuck handler holds back only its own offset.
///
/// The timer is armed only for a record that does not finish at its first poll (a handler that awaits I/O): most
/// records finish there, and a timer per record cost a clock read and a timer-wheel entry each.
async fn process_flushing(
    stack: &BoxService,
    msg: &mut Message,
    outcomes: &TopicOutcomes,
    ended: &mut Vec<Message>,
    st: &PartState,
    finished: &AtomicI64,
) -> hule_consumer::Processed {
    let processing = process_counted(stack, msg, outcomes);
    tokio::pin!(processing);
    if let std::task::Poll::Ready(outcome) = futures::poll!(&mut processing) {
        return outcome;
    }
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
