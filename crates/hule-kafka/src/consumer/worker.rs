//! One worker task per owned partition: takes runs of queued records, prepares them together, processes each in
//! order to its outcome (retrying one whose infrastructure is unavailable), and marks finished offsets done.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hule_consumer::{
    process_counted, BoxService, ConsumerMetrics, Delivery, Finished, Message, Service,
    TopicOutcomes,
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
    let outcomes = w.metrics.for_topic(&key.0 .0);
    let mut p = Partition {
        key,
        st,
        stack: &w.stack,
        outcomes: &outcomes,
        finished: &w.finished,
        stalls_count: &w.stalls_count,
        stalls: &w.stalls,
        fatal: &w.fatal,
        stopping: &w.stopping,
        halted: false,
    };
    let mut run: VecDeque<Message> = VecDeque::with_capacity(RUN);
    while let Some(first) = rx.recv().await {
        // The records already waiting form a run, prepared together (decoded, claimed in one round trip, handled in
        // one inbox transaction); each is then processed in order with an outcome of its own. Nothing waits for a
        // run to fill.
        run.push_back(take(st, first));
        while run.len() < RUN {
            match rx.try_recv() {
                Ok(d) => run.push_back(take(st, d)),
                Err(_) => break,
            }
        }
        if st.holding.load(Ordering::SeqCst)
            && rx.len() <= w.low_water
            && st.queued_bytes.load(Ordering::SeqCst) <= w.low_water_bytes
        {
            w.room.notify_one();
        }
        // A revoked partition's records belong to its next owner: claim nothing for them. Busy is set before the
        // check (the revoke sets `revoked`, then reads `busy`), so either the revoke waits for this run or the run
        // sees the revoke.
        st.busy.store(true, Ordering::SeqCst);
        if p.gone() {
            return;
        }
        w.stack.prepare(run.make_contiguous()).await;
        // Records that reached their outcomes; their offsets count as done once `finish` has completed them.
        let mut ended: Vec<Message> = Vec::with_capacity(run.len());
        let mut go_on = true;
        while let Some(mut msg) = run.pop_front() {
            if p.gone() || !p.settle(&mut msg, Some(&mut ended)).await {
                // Not done: a fatal failure (the run ends; the record is redelivered to whoever runs next), or the
                // partition revoked or the consumer stopping while the record waited.
                run.push_front(msg);
                go_on = false;
                break;
            }
            ended.push(msg);
        }
        if !p.finish_ended(&mut ended).await || !go_on {
            w.stack.abandon(run.make_contiguous()).await;
            return;
        }
        st.busy.store(false, Ordering::SeqCst);
    }
}

/// One partition's worker while it runs: what it processes with, and whether it may still mark offsets done.
struct Partition<'a> {
    key: &'a (PartKey, usize),
    st: &'a PartState,
    stack: &'a BoxService,
    outcomes: &'a TopicOutcomes,
    finished: &'a AtomicI64,
    stalls_count: &'a AtomicI64,
    stalls: &'a Stalls,
    fatal: &'a mpsc::Sender<String>,
    stopping: &'a AtomicBool,
    /// A record named for processing again could not be (the partition went, or a fatal failure): no offset after
    /// it may count as done any more.
    halted: bool,
}

impl Partition<'_> {
    fn gone(&self) -> bool {
        self.halted
            || self.st.revoked.load(Ordering::SeqCst)
            || self.stopping.load(Ordering::SeqCst)
    }

    /// Processes `msg` until it reaches an outcome: a record whose infrastructure is unavailable is tried again with
    /// a backoff (the partition stalled meanwhile), one whose batched transaction was undone is tried again alone at
    /// once. With `ended` (the run's records that reached their outcomes before it), those are completed while it
    /// takes long and before it is tried again. False when it has no outcome: a fatal failure (reported), or the
    /// partition revoked or the consumer stopping.
    async fn settle(&mut self, msg: &mut Message, mut ended: Option<&mut Vec<Message>>) -> bool {
        let mut backoff = Duration::from_millis(100);
        let mut stalled = false;
        loop {
            let outcome = match ended.as_deref_mut() {
                Some(ended) => self.process_flushing(msg, ended).await,
                None => process_counted(self.stack, msg, self.outcomes).await,
            };
            let failure = match outcome {
                Ok(_) => {
                    if stalled {
                        self.stalls.clear(self.key);
                    }
                    return true;
                }
                Err(hule_consumer::Failure::Fatal(reason)) => {
                    let _ = self
                        .fatal
                        .try_send(format!("{}: {reason}", msg.delivery.position()));
                    return false;
                }
                Err(failure) => failure,
            };
            // Undone: the record's run transaction was rolled back; processed again alone, where its own failure (if
            // any) gets its own outcome. A fresh message belongs to no run, so this happens once per record.
            let undone = matches!(failure, hule_consumer::Failure::Undone(_));
            if undone {
                tracing::debug!(at = %msg.delivery.position(), error = %failure, "processing the record again, alone");
            } else {
                self.stalls_count.fetch_add(1, Ordering::SeqCst);
                stalled = true;
                self.stalls.stall(
                    self.key,
                    format!("retrying {}: {failure}", msg.delivery.position()),
                );
                tracing::warn!(at = %msg.delivery.position(), error = %failure, ?backoff, "not committed; retrying the record");
            }
            if self.gone() {
                return false;
            }
            // The run's records that ended before this one count as done while it waits (and, when its run was
            // undone, those of them in the same transaction are processed again first, keeping the order).
            if let Some(ended) = ended.as_deref_mut() {
                if !self.finish_ended(ended).await {
                    return false;
                }
            }
            if !undone {
                tokio::time::sleep(backoff).await;
                if self.gone() {
                    return false;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            *msg = Message::new(msg.delivery.clone());
        }
    }

    /// Processes `msg`; if that takes over [`FLUSH_AFTER`], the run's records that `ended` before it are finished
    /// and counted as done meanwhile, so a slow or stuck handler holds back only its own offset — except in a batched
    /// inbox run, whose records before it commit with it.
    ///
    /// The timer is armed only for a record that does not finish at its first poll (a handler that awaits I/O): most
    /// records finish there, and a timer per record cost a clock read and a timer-wheel entry each.
    async fn process_flushing(
        &mut self,
        msg: &mut Message,
        ended: &mut Vec<Message>,
    ) -> hule_consumer::Processed {
        let (stack, outcomes) = (self.stack, self.outcomes);
        // A record of a batched inbox run holds the run's commit: completing the records before it would wait for it.
        let may_flush = !msg.in_batched_run();
        let processing = process_counted(stack, msg, outcomes);
        tokio::pin!(processing);
        if let std::task::Poll::Ready(outcome) = futures::poll!(&mut processing) {
            return outcome;
        }
        let flush = tokio::time::sleep(FLUSH_AFTER);
        tokio::pin!(flush);
        let mut flushed = false;
        loop {
            tokio::select! {
                outcome = &mut processing => return outcome,
                _ = &mut flush, if may_flush && !flushed && !ended.is_empty() => {
                    flushed = true;
                    if !self.finish_ended(ended).await {
                        // Records before this one that had to be processed again were not (the partition went, or
                        // a fatal failure): this one must not go ahead of them. Dropping it is safe — it is not a
                        // run's record, and one waiting to commit its run first has not got past that yet.
                        return Err(hule_consumer::Failure::Undone(
                            "records before it could not be processed again".into(),
                        ));
                    }
                }
            }
        }
    }

    /// Completes the records that reached their outcomes ([`Service::finish`]) and marks their offsets done;
    /// processes again, alone and in order, those whose outcome `finish` says was undone. False when one of those
    /// could not be (the partition went, or a fatal failure): the records before it are done, it and the rest are
    /// not, and nothing more will be.
    async fn finish_ended(&mut self, ended: &mut Vec<Message>) -> bool {
        if ended.is_empty() {
            return true;
        }
        if self.halted {
            return false;
        }
        let answer = self.stack.finish(ended).await;
        if let Some(tied) = ended.iter().find(|m| m.awaits_finish()) {
            // Its run's transaction was never committed: counting it done would lose its effect.
            let _ = self.fatal.try_send(format!(
                "{}: a layer of the stack passes `prepare` on to its inner service but not `finish`; \
                 records of a batched run cannot complete (forward all three hooks)",
                tied.delivery.position()
            ));
            self.halted = true;
            return false;
        }
        if let Finished::Redo(again) = answer {
            let len = ended.len();
            for i in again.into_iter().filter(|&i| i < len) {
                // Alone it is in no run: nothing is left for `finish`, and it cannot be undone again. Not after the
                // partition went: its next owner processes it.
                let mut fresh = Message::new(ended[i].delivery.clone());
                if self.gone() || !Box::pin(self.settle(&mut fresh, None)).await {
                    self.mark_done(&ended[..i]);
                    ended.drain(..i);
                    self.halted = true;
                    return false;
                }
                ended[i] = fresh;
            }
        }
        self.mark_done(ended);
        ended.clear();
        true
    }

    fn mark_done(&self, complete: &[Message]) {
        if let Some(last) = complete.last() {
            self.st
                .done
                .store(last.delivery.offset + 1, Ordering::SeqCst);
        }
        self.finished
            .fetch_add(complete.len() as i64, Ordering::SeqCst);
    }
}

/// How long a record may take before the records of its run that ended before it are completed and marked done.
const FLUSH_AFTER: Duration = Duration::from_millis(10);

#[cfg(test)]
mod tests {
    //! The worker's handling of `Undone` and `Finished::Redo`, with stacks that say so on cue.

    use super::*;
    use futures::future::BoxFuture;
    use futures::FutureExt;
    use hule_consumer::{Failure, Outcome, Processed};
    use std::collections::HashSet;

    /// A stack whose records are handled "in a run" when prepared; the record at `undo_at` is undone the first time,
    /// and the run's records handled before it are lost (named by `finish`).
    #[derive(Default)]
    struct Scripted {
        undo_at: i64,
        /// Set the consumer stopping when `finish` names records to redo.
        stop_on_redo: Option<Arc<AtomicBool>>,
        prepared: Mutex<HashSet<i64>>,
        in_run: Mutex<Vec<i64>>,
        lost: Mutex<HashSet<i64>>,
        /// (offset, called as part of its prepared run).
        log: Mutex<Vec<(i64, bool)>>,
    }

    fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().expect("lock")
    }

    impl Service for Scripted {
        fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
            let offset = msg.delivery.offset;
            let in_run = locked(&self.prepared).remove(&offset);
            locked(&self.log).push((offset, in_run));
            let answer = if in_run && offset == self.undo_at {
                let handled: Vec<i64> = locked(&self.in_run).drain(..).collect();
                locked(&self.lost).extend(handled);
                Err(Failure::Undone("scripted".into()))
            } else {
                if in_run {
                    locked(&self.in_run).push(offset);
                }
                Ok(Outcome::Handled)
            };
            std::future::ready(answer).boxed()
        }
        fn prepare<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
            locked(&self.prepared).extend(msgs.iter().map(|m| m.delivery.offset));
            std::future::ready(()).boxed()
        }
        fn finish<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, Finished> {
            let mut lost = locked(&self.lost);
            let again: Vec<usize> = msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| lost.remove(&m.delivery.offset))
                .map(|(i, _)| i)
                .collect();
            if again.is_empty() {
                return std::future::ready(Finished::All).boxed();
            }
            if let Some(stop) = &self.stop_on_redo {
                stop.store(true, Ordering::SeqCst);
            }
            std::future::ready(Finished::Redo(again)).boxed()
        }
    }

    /// The standard stack around an inbox of one connection on a schema of its own at `url`, whose
    /// `BatchEssaysRegistered` handler is `handler`; dead letters kept in memory.
    async fn inbox_stack<F>(url: &str, handler: F) -> BoxService
    where
        F: for<'t> hule_consumer::inbox::TxHandlerFn<
            't,
            (),
            hule_contracts::payloads::BatchEssaysRegistered,
        >,
    {
        let inbox = hule_consumer::PgInbox::connect(url, "grp", 1)
            .await
            .expect("inbox");
        let router = inbox.route_with(
            hule_consumer::Router::new(),
            hule_consumer::TopicChoice::Standard,
            (),
            handler,
        );
        hule_consumer::standard_stack(
            router,
            "svc",
            None,
            Arc::new(hule_consumer::MemorySink::default()),
            ConsumerMetrics::detached(),
        )
        .expect("stack")
    }

    /// Runs one partition's worker over `n` records queued before it starts (so they form one run); returns the
    /// partition's done offset and the fatal reports.
    async fn work_through(
        stack: BoxService,
        n: i64,
        stopping: Arc<AtomicBool>,
    ) -> (i64, Vec<String>) {
        let (tx, rx) = mpsc::channel(64);
        let st = Arc::new(PartState::new());
        for offset in 0..n {
            let event = hule_contracts::Event::BatchEssaysRegistered;
            let d = hule_consumer::conformance::example_delivery(
                event,
                event.topic(),
                uuid::Uuid::new_v4(),
                offset,
            );
            st.queued_bytes.fetch_add(held_size(&d), Ordering::SeqCst);
            tx.send(d).await.expect("queued");
        }
        drop(tx);
        let metrics = ConsumerMetrics::detached();
        let (fatal, mut reports) = mpsc::channel(8);
        let shared = WorkerShared {
            room: Arc::default(),
            low_water: 0,
            low_water_bytes: 0,
            stack,
            metrics: metrics.clone(),
            stopping,
            finished: Arc::default(),
            stalls_count: Arc::default(),
            stalls: Stalls::new(metrics),
            fatal,
        };
        let key: PartKey = ("huleedu.batch.essays.registered.v1".into(), 0);
        partition_worker(key, rx, st.clone(), shared).await;
        let mut fatal = Vec::new();
        while let Ok(r) = reports.try_recv() {
            fatal.push(r);
        }
        (st.done.load(Ordering::SeqCst), fatal)
    }

    /// An undone record: the run's records handled before it are processed again alone, in order, then it, then
    /// the run goes on; every offset counts as done at the end.
    #[tokio::test]
    async fn an_undone_record_has_the_records_before_it_redone_alone_first() {
        let stack = Arc::new(Scripted {
            undo_at: 2,
            ..Default::default()
        });
        let (done, fatal) = work_through(stack.clone(), 5, Arc::default()).await;
        assert_eq!(
            *locked(&stack.log),
            vec![
                (0, true),
                (1, true),
                (2, true),
                (0, false),
                (1, false),
                (2, false),
                (3, true),
                (4, true)
            ]
        );
        assert_eq!((done, fatal), (5, vec![]));
    }

    /// The partition goes while records wait to be redone: none is redone, and no offset counts as done past them.
    #[tokio::test]
    async fn nothing_is_redone_or_counted_done_after_the_partition_went() {
        let stopping = Arc::new(AtomicBool::new(false));
        let stack = Arc::new(Scripted {
            undo_at: 2,
            stop_on_redo: Some(stopping.clone()),
            ..Default::default()
        });
        let (done, _) = work_through(stack.clone(), 5, stopping).await;
        assert_eq!(*locked(&stack.log), vec![(0, true), (1, true), (2, true)]);
        assert_eq!(done, -1, "no offset done");
    }

    /// A layer that passes `prepare` on but not `finish` leaves a batched inbox run uncommitted: the worker stops
    /// with a fatal report instead of counting the run's offsets done (its effects would roll back with the run).
    #[tokio::test]
    async fn a_layer_that_drops_finish_stops_the_worker_before_an_offset_counts() {
        struct PrepareOnly(BoxService);
        impl Service for PrepareOnly {
            fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
                self.0.call(msg)
            }
            fn prepare<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
                self.0.prepare(msgs)
            }
        }
        async fn nothing(
            _: (),
            _tx: &hule_consumer::inbox::Transaction<'_>,
            _ctx: hule_consumer::Context,
            _p: hule_contracts::payloads::BatchEssaysRegistered,
        ) -> Result<(), hule_consumer::HandlerError> {
            Ok(())
        }
        let url = hule_outbox::testkit::pg_schema_url("hule_worker_runs").await;
        let stack = inbox_stack(&url, nothing).await;
        let (done, fatal) = work_through(Arc::new(PrepareOnly(stack)), 3, Arc::default()).await;
        assert_eq!(done, -1, "no offset done");
        assert!(
            fatal.len() == 1 && fatal[0].contains("not `finish`"),
            "{fatal:?}"
        );
    }

    /// A run's record whose handler takes longer than the flush delay: the records before it are not finished
    /// while it works (they commit with it), so the whole run commits in one transaction.
    #[tokio::test]
    async fn a_slow_record_of_an_inbox_run_does_not_split_its_transaction() {
        async fn effect(
            _: (),
            tx: &hule_consumer::inbox::Transaction<'_>,
            ctx: hule_consumer::Context,
            _p: hule_contracts::payloads::BatchEssaysRegistered,
        ) -> Result<(), hule_consumer::HandlerError> {
            tx.execute("INSERT INTO effects VALUES ($1)", &[&ctx.event_id])
                .await?;
            if ctx.offset == 2 {
                tokio::time::sleep(FLUSH_AFTER * 5).await;
            }
            Ok(())
        }
        let url = hule_outbox::testkit::pg_schema_url("hule_worker_runs").await;
        let admin = hule_pg::connect(&url).await.expect("connect");
        admin
            .batch_execute("CREATE TABLE effects (event_id uuid NOT NULL)")
            .await
            .expect("effects");
        let stack = inbox_stack(&url, effect).await;
        let (done, fatal) = work_through(stack, 5, Arc::default()).await;
        assert_eq!((done, fatal), (5, vec![]));
        let row = admin
            .query_one(
                "SELECT count(*), count(DISTINCT xmin::text) FROM effects",
                &[],
            )
            .await
            .expect("count");
        let (effects, transactions): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            (effects, transactions),
            (5, 1),
            "one transaction for the run"
        );
    }
}
