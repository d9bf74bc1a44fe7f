//! What the fetch loop, the workers, the committer and librdkafka's rebalance callback share about each owned
//! partition, and the callback itself: a revoke stops the partition's worker taking records, waits briefly for the
//! record in flight, commits what finished and hands the partition over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hule_consumer::ConsumerMetrics;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// A partition: topic and number.
pub(super) type PartKey = (String, i32);

/// Progress of one partition, shared by its worker, the committer and the rebalance callback.
#[derive(Debug)]
pub(super) struct PartState {
    /// Next offset to commit (last finished + 1); -1 when nothing finished yet.
    pub done: AtomicI64,
    /// Last committed value of `done`.
    pub committed: AtomicI64,
    /// The worker is preparing or processing records.
    pub busy: AtomicBool,
    /// The partition was revoked: its worker takes no more records.
    pub revoked: AtomicBool,
    /// Records are held beside the queue; the worker signals when the queue has drained to half.
    pub holding: AtomicBool,
    /// Bytes of the records in the worker's queue (see [`super::lane::held_size`]).
    pub queued_bytes: AtomicUsize,
}

impl PartState {
    pub fn new() -> Self {
        PartState {
            done: AtomicI64::new(-1),
            committed: AtomicI64::new(-1),
            busy: AtomicBool::new(false),
            revoked: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
        }
    }
}

/// The partitions this consumer owns.
#[derive(Default)]
pub(super) struct Shared {
    parts: Mutex<HashMap<PartKey, Arc<PartState>>>,
    pub revoke_timeout: Duration,
}

impl Shared {
    pub fn new(revoke_timeout: Duration) -> Self {
        Shared {
            parts: Mutex::default(),
            revoke_timeout,
        }
    }

    /// The owned partitions. A revoke removes a partition (and forgets its lag) under this lock, so whoever holds
    /// it sees only partitions still owned.
    pub fn parts(&self) -> MutexGuard<'_, HashMap<PartKey, Arc<PartState>>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The offsets finished since the last commit, marked as committed.
    pub fn pending(&self, only: Option<&[PartKey]>) -> TopicPartitionList {
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

/// The rdkafka context of the driver's consumer: commits on revoke, reports assignments.
pub(super) struct DriverContext {
    pub shared: Arc<Shared>,
    pub group: String,
    pub on_assign: Option<Arc<tokio::sync::Notify>>,
    pub metrics: ConsumerMetrics,
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

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // librdkafka keeps an application's pause on a partition across unassign and assign: a partition paused
            // here before a rebalance would come back paused, and nothing would resume it.
            if let Err(e) = consumer.resume(tpl) {
                tracing::warn!(error = %e, "cannot clear pauses of newly assigned partitions");
            }
            self.metrics.broker(
                true,
                &format!("in the group, {} partitions assigned", tpl.count()),
            );
            // The ready line: a service says when it has work, and which.
            let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
            for el in tpl.elements() {
                by_topic
                    .entry(el.topic().to_owned())
                    .or_default()
                    .push(el.partition());
            }
            let which: Vec<String> = by_topic
                .iter()
                .map(|(t, ps)| format!("{t}{ps:?}"))
                .collect();
            tracing::info!(target: "hule", group = %self.group, partitions = tpl.count(), "consumer ready: {}", which.join(" "));
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
        // Leave no pause behind on partitions that go (see `post_rebalance`).
        let _ = consumer.resume(tpl);
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
