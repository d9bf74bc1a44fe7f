//! The dedup layer and its store trait. A store answers "claim this event for processing": acquired, already
//! done, or in progress elsewhere. The layer claims, runs the inner service, then records completion (with a TTL
//! per event type) or releases the claim so that a retry or redelivery can run the handler again.
//!
//! Unlike the original decorator (reference section f) the handler runs at most once per delivery attempt, the
//! completion is recorded by the layer rather than left to the handler, a claim held by another consumer is
//! waited for instead of being skipped as a duplicate, and an unreachable store stops processing (fail-closed)
//! unless fail-open is chosen explicitly, in which case every unprotected delivery is logged and counted.
//!
//! A claim is a short lease (10 s by default) that the layer renews every third of it while the handler runs, so a
//! handler may take as long as it needs, and a consumer that dies mid-handler blocks the event's next owner for at
//! most one lease (the original's 300 s lock made that wait five minutes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::Event;
use tracing::Instrument;
use uuid::Uuid;

use crate::message::Message;
use crate::metrics::ConsumerMetrics;
use crate::service::{BoxService, Failure, Layer, Outcome, Processed, Service};

/// What identifies an event to a dedup store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupKey {
    /// The dedup namespace: the consumer group (the stacks of [`crate::standard_stack`] and the builder use the
    /// group, as the PostgreSQL inbox does, so two groups of one service each handle every event). It takes the
    /// place of the original's `service_name` in its Redis key.
    pub service: String,
    /// The event id.
    pub event_id: Uuid,
    /// The envelope's `event_type`.
    pub event_type: String,
    /// The envelope's correlation id and producer, stored with the claim for operators.
    pub correlation_id: Uuid,
    /// The producing service.
    pub source_service: String,
    /// The owner token of this claim: new for every claim the layer makes, stored with it, and compared by
    /// [`DedupStore::release`] and [`DedupStore::extend`], which act only on a claim that still holds it — so a
    /// consumer whose lease lapsed can neither delete nor renew the claim its successor made meanwhile.
    pub owner: Uuid,
}

/// A process-unique source of owner tokens: a random base and a counter (a fresh random UUID per record would cost
/// a system call each).
pub(crate) fn next_owner() -> Uuid {
    static BASE: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = *BASE.get_or_init(|| Uuid::new_v4().as_u128());
    Uuid::from_u128(base ^ u128::from(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}

/// A store's answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This consumer may process the event.
    Acquired,
    /// The event was completed before.
    AlreadyDone,
    /// Another consumer holds the claim now.
    InProgress,
}

/// A dedup store could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dedup store ({store}) unavailable: {reason}")]
pub struct StoreUnavailable {
    /// Which store.
    pub store: &'static str,
    /// Why.
    pub reason: String,
}

/// Where claims and completion markers live.
pub trait DedupStore: Send + Sync + 'static {
    /// The method name used in metrics (`redis`, `memory`).
    fn method(&self) -> &'static str;
    /// Claims the event for `lock_ttl`.
    fn claim<'a>(
        &'a self,
        key: &'a DedupKey,
        lock_ttl: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreUnavailable>>;
    /// Records the event as completed for `ttl`.
    fn complete<'a>(
        &'a self,
        key: &'a DedupKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreUnavailable>>;
    /// Drops the claim after a failed attempt — only while it is still `key.owner`'s, atomically.
    fn release<'a>(&'a self, key: &'a DedupKey) -> BoxFuture<'a, Result<(), StoreUnavailable>>;
    /// Renews a claim still in progress for another `lease` — only while it is still `key.owner`'s, atomically
    /// (nothing when it is completed, gone or another's).
    fn extend<'a>(
        &'a self,
        key: &'a DedupKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), StoreUnavailable>>;
    /// Records several events as completed, one answer per key in order; a store that can does it in one round
    /// trip (the default stores them one after the other).
    fn complete_many<'a>(
        &'a self,
        keys: &'a [(DedupKey, Duration)],
    ) -> BoxFuture<'a, Vec<Result<(), StoreUnavailable>>> {
        async move {
            let mut out = Vec::with_capacity(keys.len());
            for (key, ttl) in keys {
                out.push(self.complete(key, *ttl).await);
            }
            out
        }
        .boxed()
    }
    /// Claims several events, one answer per key in order; a store that can does it in one round trip (the
    /// default claims them one after the other).
    fn claim_many<'a>(
        &'a self,
        keys: &'a [DedupKey],
        lock_ttl: Duration,
    ) -> BoxFuture<'a, Vec<Result<Claim, StoreUnavailable>>> {
        claim_each(self, keys, lock_ttl).boxed()
    }
}

/// Claims the keys one after another (what [`DedupStore::claim_many`] does unless a store can do better).
pub async fn claim_each<S: DedupStore + ?Sized>(
    store: &S,
    keys: &[DedupKey],
    lock_ttl: Duration,
) -> Vec<Result<Claim, StoreUnavailable>> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        out.push(store.claim(key, lock_ttl).await);
    }
    out
}

/// A claim made ahead of its record's turn by [`Service::prepare`].
#[derive(Debug)]
pub(crate) struct Prepared {
    answer: Result<Claim, StoreUnavailable>,
    /// When the claim was sent (before the round trip: the lease may have started then).
    at: Instant,
    /// The key it was made with (its owner token).
    key: DedupKey,
}

/// How long completion markers live, per event; the defaults follow the original's table (reference section f)
/// keyed by the real topics, and entries given by a service are merged into it rather than replacing it.
#[derive(Debug, Clone)]
pub struct TtlTable {
    /// For events without an entry.
    pub default: Duration,
    /// Per event.
    pub per_event: HashMap<Event, Duration>,
}

impl Default for TtlTable {
    fn default() -> Self {
        use Event::*;
        let hour = Duration::from_secs(3600);
        let half_day = Duration::from_secs(43_200);
        let mut per_event = HashMap::new();
        for e in [
            EssaySpellcheckRequested,
            EssaySpellcheckCompleted,
            EssayContentProvisioned,
            EssayValidationFailed,
        ] {
            per_event.insert(e, hour);
        }
        for e in [
            BatchEssaysRegistered,
            BatchEssaysReady,
            ElsBatchPhaseOutcome,
        ] {
            per_event.insert(e, half_day);
        }
        TtlTable {
            default: Duration::from_secs(86_400),
            per_event,
        }
    }
}

impl TtlTable {
    /// The TTL of `event`'s completion markers.
    pub fn ttl(&self, event: Event) -> Duration {
        self.per_event.get(&event).copied().unwrap_or(self.default)
    }
    /// Adds or replaces one entry, keeping the rest.
    pub fn with(mut self, event: Event, ttl: Duration) -> Self {
        self.per_event.insert(event, ttl);
        self
    }
}

/// What to do when the store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Stop and retry later; nothing is processed unprotected (the default).
    #[default]
    FailClosed,
    /// Process without protection; logged and counted in `consumer_dedup_fail_open_total`.
    FailOpen,
}

/// The dedup layer.
#[derive(Clone)]
pub struct Dedup {
    store: Arc<dyn DedupStore>,
    service: String,
    ttls: TtlTable,
    lock_ttl: Duration,
    on_error: OnStoreError,
    metrics: ConsumerMetrics,
}

impl Dedup {
    /// The default claim lease: how long a claim left by a consumer that died mid-handler blocks the next owner.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

    /// A fail-closed dedup layer with the default TTLs and a 10 s claim lease renewed while the handler runs;
    /// `namespace` separates the events of one consumer from another's in a shared store: give the consumer group.
    pub fn new(store: Arc<dyn DedupStore>, namespace: &str, metrics: ConsumerMetrics) -> Self {
        Dedup {
            store,
            service: namespace.to_owned(),
            ttls: TtlTable::default(),
            lock_ttl: Self::DEFAULT_LEASE,
            on_error: OnStoreError::FailClosed,
            metrics,
        }
    }
    /// Sets the TTL table.
    pub fn ttls(mut self, ttls: TtlTable) -> Self {
        self.ttls = ttls;
        self
    }
    /// Sets the claim lease (renewed every third of it while the handler runs; at least 100 ms).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.max(Duration::from_millis(100));
        self
    }
    /// Chooses fail-open or fail-closed.
    pub fn on_store_error(mut self, on_error: OnStoreError) -> Self {
        self.on_error = on_error;
        self
    }
}

impl Layer for Dedup {
    fn layer(self, inner: BoxService) -> BoxService {
        Arc::new(DedupService { cfg: self, inner })
    }
}

struct DedupService {
    cfg: Dedup,
    inner: BoxService,
}

impl DedupService {
    fn key_of(&self, env: &hule_contracts::DecodedEnvelope) -> DedupKey {
        DedupKey {
            service: self.cfg.service.clone(),
            event_id: env.event_id,
            event_type: env.event_type.clone(),
            correlation_id: env.correlation_id,
            source_service: env.source_service.clone(),
            owner: next_owner(),
        }
    }

    /// The claim `prepare` made for this record, when it can still be trusted, else a claim made now; with the key
    /// (owner token) the claim holds. A prepared claim older than a third of the lease is renewed first (as the
    /// handler's lease would have been); one close to its end may have lapsed and been taken over, so it is not
    /// used and the event is claimed again.
    async fn take_claim(
        &self,
        prepared: Option<Prepared>,
        env: &hule_contracts::DecodedEnvelope,
    ) -> (Result<Claim, StoreUnavailable>, DedupKey) {
        let lease = self.cfg.lock_ttl;
        match prepared {
            Some(Prepared {
                answer: Ok(Claim::Acquired),
                at,
                key,
            }) if at.elapsed() < lease * 9 / 10 => {
                if at.elapsed() >= lease / 3 {
                    if let Err(e) = self.cfg.store.extend(&key, lease).await {
                        return (Err(e), key);
                    }
                }
                (Ok(Claim::Acquired), key)
            }
            Some(Prepared {
                answer: Ok(Claim::Acquired),
                ..
            })
            | None => {
                let key = self.key_of(env);
                (self.cfg.store.claim(&key, lease).await, key)
            }
            // A duplicate, a claim held elsewhere or an unreachable store: answered now as it was then (the
            // driver retries the last two with a fresh message, which claims again).
            Some(Prepared { answer, key, .. }) => (answer, key),
        }
    }
}

impl Service for DedupService {
    /// Claims the decoded records in one call to the store.
    fn prepare<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        async move {
            // An event the run holds twice is left to `call` alone: claimed in its turn and completed at once, so its
            // later copy finds it completed, not "in progress elsewhere" (the first copy's prepared claim).
            let mut copies: HashMap<Uuid, usize> = HashMap::new();
            for env in msgs.iter().filter_map(|m| m.decoded.as_ref()) {
                *copies.entry(env.event_id).or_default() += 1;
            }
            let once = |m: &Message| {
                m.decoded
                    .as_ref()
                    .is_none_or(|env| copies.get(&env.event_id) == Some(&1))
            };
            let (at, keys): (Vec<usize>, Vec<DedupKey>) = msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| once(m))
                .filter_map(|(i, m)| m.decoded.as_ref().map(|env| (i, self.key_of(env))))
                .unzip();
            for msg in msgs.iter_mut() {
                // Completions of the others wait for `finish`.
                msg.in_run = once(msg);
                msg.dedup_layer = true;
            }
            if keys.len() > 1 {
                // The leases may start as soon as the claims are sent: their age counts from before the round trip.
                let sent = Instant::now();
                let answers = self.cfg.store.claim_many(&keys, self.cfg.lock_ttl).await;
                for ((i, answer), key) in at.into_iter().zip(answers).zip(keys) {
                    msgs[i].claim = Some(Prepared {
                        answer,
                        at: sent,
                        key,
                    });
                }
            }
            self.inner.prepare(msgs).await
        }
        .boxed()
    }

    /// Stores the completion markers the run's handled records left, in one call to the store.
    fn finish<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, crate::service::Finished> {
        async move {
            let done: Vec<(DedupKey, Duration)> =
                msgs.iter_mut().filter_map(|m| m.completion.take()).collect();
            if !done.is_empty() {
                let answers = self.cfg.store.complete_many(&done).await;
                for ((key, _), answer) in done.iter().zip(answers) {
                    if let Err(e) = answer {
                        // As for one record: the effect is durable and the offset will be committed.
                        tracing::error!(event_id = %key.event_id, error = %e, "handled, but the completion marker was not stored");
                    }
                }
            }
            self.inner.finish(msgs).await
        }
        .boxed()
    }

    /// Releases the claims prepared for records that will not be handled here, so that the partition's next owner
    /// need not wait for their leases. A claim older than two thirds of its lease is left to expire: it may have
    /// lapsed and been taken over (the owner token makes its release harmless then too; this spares the round trip).
    fn abandon<'a>(&'a self, msgs: &'a mut [Message]) -> BoxFuture<'a, ()> {
        async move {
            for msg in msgs.iter_mut() {
                if let Some(Prepared {
                    answer: Ok(Claim::Acquired),
                    at,
                    key,
                }) = msg.claim.take()
                {
                    if at.elapsed() >= self.cfg.lock_ttl * 2 / 3 {
                        continue;
                    }
                    if let Err(e) = self.cfg.store.release(&key).await {
                        tracing::warn!(event_id = %key.event_id, error = %e, "claim not released; it expires with its lease");
                    }
                }
            }
            self.inner.abandon(msgs).await
        }
        .boxed()
    }

    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
        async move {
            let prepared = msg.claim.take();
            let Some(env) = msg.decoded.as_ref() else {
                return Err(Failure::Permanent(
                    "dedup reached without a decoded envelope (validate layer missing)".into(),
                ));
            };
            let event = env.data.event();
            let span = tracing::info_span!(target: "hule", "consumer.dedup", method = self.cfg.store.method(), claim = tracing::field::Empty, prepared = prepared.is_some());
            let (claim, key) = self.take_claim(prepared, env).instrument(span.clone()).await;
            span.record(
                "claim",
                match &claim {
                    Ok(Claim::Acquired) => "acquired",
                    Ok(Claim::AlreadyDone) => "duplicate",
                    Ok(Claim::InProgress) => "in_progress",
                    Err(_) => "store_error",
                },
            );
            drop(span);
            match claim {
                Ok(Claim::Acquired) => {}
                Ok(Claim::AlreadyDone) => {
                    self.cfg.metrics.duplicate(self.cfg.store.method());
                    return Ok(Outcome::Duplicate {
                        method: self.cfg.store.method(),
                    });
                }
                Ok(Claim::InProgress) => {
                    return Err(Failure::Unavailable(format!(
                        "event {} is being processed by another consumer of {}",
                        key.event_id, key.service
                    )))
                }
                Err(e) => {
                    return match self.cfg.on_error {
                        OnStoreError::FailClosed => Err(Failure::Unavailable(e.to_string())),
                        OnStoreError::FailOpen => {
                            tracing::warn!(at = %msg.delivery.position(), error = %e, "dedup store unavailable; processing WITHOUT dedup (fail-open)");
                            self.cfg.metrics.fail_open();
                            self.inner.call(msg).await
                        }
                    };
                }
            }
            let result = {
                // Renew the lease while the handler runs; a failed renewal is logged and tried again next tick.
                let inner = self.inner.call(msg);
                tokio::pin!(inner);
                let mut renew = tokio::time::interval_at(
                    tokio::time::Instant::now() + self.cfg.lock_ttl / 3,
                    self.cfg.lock_ttl / 3,
                );
                loop {
                    tokio::select! {
                        result = &mut inner => break result,
                        _ = renew.tick() => {
                            if let Err(e) = self.cfg.store.extend(&key, self.cfg.lock_ttl).await {
                                tracing::warn!(event_id = %key.event_id, error = %e, "claim lease not renewed");
                            }
                        }
                    }
                }
            };
            match &result {
                Ok(_) if msg.in_run => {
                    // Stored with the run's others by `finish`, before the driver may commit the offset.
                    msg.completion = Some((key, self.cfg.ttls.ttl(event)));
                    return result;
                }
                Ok(_) => {
                    let ttl = self.cfg.ttls.ttl(event);
                    if let Err(e) = self.cfg.store.complete(&key, ttl).await {
                        // The effect is durable and the offset will be committed, so no redelivery is expected;
                        // only a rewind within the lock's TTL could repeat it.
                        tracing::error!(event_id = %key.event_id, error = %e, "handled, but the completion marker was not stored");
                    }
                }
                Err(_) => {
                    if let Err(e) = self.cfg.store.release(&key).await {
                        tracing::warn!(event_id = %key.event_id, error = %e, "claim not released; it expires with its TTL");
                    }
                }
            }
            result
        }
        .boxed()
    }
}

/// Claims by (service, event id): completed?, valid until, owner token.
type Entries = HashMap<(String, Uuid), (bool, Instant, Uuid)>;

/// An in-process store: for tests, the demo's single process and tools. Expired entries are dropped lazily.
#[derive(Debug, Default)]
pub struct MemoryDedup {
    entries: Mutex<Entries>,
    unavailable: std::sync::atomic::AtomicBool,
}

impl MemoryDedup {
    /// An empty store.
    pub fn new() -> Self {
        MemoryDedup::default()
    }
    /// Makes every call fail (to test the layer's fail-closed and fail-open behaviour).
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }
    fn check(&self) -> Result<std::sync::MutexGuard<'_, Entries>, StoreUnavailable> {
        if self.unavailable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreUnavailable {
                store: "memory",
                reason: "marked unavailable".into(),
            });
        }
        Ok(self.entries.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl DedupStore for MemoryDedup {
    fn method(&self) -> &'static str {
        "memory"
    }
    fn claim<'a>(
        &'a self,
        key: &'a DedupKey,
        lock_ttl: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreUnavailable>> {
        async move {
            let mut map = self.check()?;
            let now = Instant::now();
            let k = (key.service.clone(), key.event_id);
            match map.get(&k) {
                Some((done, until, _)) if *until > now => Ok(if *done {
                    Claim::AlreadyDone
                } else {
                    Claim::InProgress
                }),
                _ => {
                    map.insert(k, (false, now + lock_ttl, key.owner));
                    Ok(Claim::Acquired)
                }
            }
        }
        .boxed()
    }
    fn complete<'a>(
        &'a self,
        key: &'a DedupKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreUnavailable>> {
        async move {
            self.check()?.insert(
                (key.service.clone(), key.event_id),
                (true, Instant::now() + ttl, key.owner),
            );
            Ok(())
        }
        .boxed()
    }
    fn release<'a>(&'a self, key: &'a DedupKey) -> BoxFuture<'a, Result<(), StoreUnavailable>> {
        async move {
            let mut map = self.check()?;
            let k = (key.service.clone(), key.event_id);
            if map
                .get(&k)
                .is_some_and(|(done, _, owner)| !*done && *owner == key.owner)
            {
                map.remove(&k);
            }
            Ok(())
        }
        .boxed()
    }
    fn extend<'a>(
        &'a self,
        key: &'a DedupKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), StoreUnavailable>> {
        async move {
            let mut map = self.check()?;
            let now = Instant::now();
            if let Some((false, until, owner)) = map.get_mut(&(key.service.clone(), key.event_id)) {
                if *until > now && *owner == key.owner {
                    *until = now + lease;
                }
            }
            Ok(())
        }
        .boxed()
    }
}
