//! The dedup conformance suite: what every way of deduplicating must guarantee, written once and run on the
//! memory store, Redis and the PostgreSQL inbox (`tests/dedup_conformance.rs`); a store of your own can run it.
//!
//! A [`DedupHarness`] makes a fresh consumer stack whose handler of `BATCH_ESSAYS_REGISTERED` applies an effect
//! (counted) and can be told to fail once, transiently, after applying it. The checks: a redelivered event is
//! applied once; a failed attempt leaves nothing recorded, so its retry applies it (once); two copies in flight at
//! the same time are applied once; distinct events are each applied; a run of records prepared together (as the
//! Kafka driver prepares the records waiting in a partition's queue) gets the same outcomes as one record at a
//! time, and its records left unprocessed hold nothing up. Each check panics with what went wrong.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use hule_contracts::examples::example_envelope;
use hule_contracts::headers::{names, standard_headers};
use hule_contracts::{Event, Timestamp};
use uuid::Uuid;

use crate::{
    process, BoxService, ConsumerMetrics, Delivery, Failure, Message, Outcome, Processed, Service,
};

/// What a harness's handler shares with the suite.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Effects applied and kept (a handler that fails after applying must not leave its effect counted here:
    /// count on success, or count inside the transaction that is rolled back).
    pub applied: Arc<AtomicU32>,
    /// When set, the next attempt fails transiently after doing its work (and clears this).
    pub fail_next: Arc<AtomicBool>,
    /// How long the handler works, in milliseconds (to hold two copies in flight together).
    pub work_ms: Arc<AtomicU32>,
}

/// One way of deduplicating under test.
pub trait DedupHarness {
    /// The dedup method the stack reports for a duplicate (`memory`, `redis`, `postgres_inbox`).
    fn method(&self) -> &'static str;
    /// A stack with an empty store whose `BATCH_ESSAYS_REGISTERED` handler applies `effects`.
    fn stack(&self, effects: Effects) -> impl Future<Output = BoxService>;
    /// The effects applied and kept by the stack made with `effects`. By default the handler's counter; a
    /// transactional harness counts what its transactions committed (the effect rows), and checks there that each
    /// committed effect has its dedup record and no dedup record lacks its effect.
    fn applied(&self, effects: &Effects) -> impl Future<Output = u32> {
        let n = effects.applied.load(Ordering::SeqCst);
        async move { n }
    }
}

/// A delivery of `event`'s example envelope with event id `id` on `topic` (partition 0, at `offset`): the
/// contract key and the standard headers, as the relay writes them. For tests of layers and stores.
pub fn example_delivery(event: Event, topic: &str, id: Uuid, offset: i64) -> Delivery {
    let at = Timestamp::from_unix_micros(1_700_000_000_000_000).expect("a valid time");
    let env = example_envelope(event, id, Uuid::from_u128(7), at).expect("the example envelope");
    let key = env
        .data
        .partition_key()
        .map(|k| k.into_owned())
        .unwrap_or_default();
    Delivery {
        topic: topic.to_owned(),
        partition: 0,
        offset,
        key: Some(key.clone().into_bytes()),
        headers: standard_headers(&env, topic, &key),
        invalid_headers: Vec::new(),
        payload: Some(env.to_json().expect("the example encodes")),
    }
}

/// A delivery of `BATCH_ESSAYS_REGISTERED` with event id `id`, retried after 10 ms when it fails transiently.
pub fn delivery(id: Uuid, offset: i64) -> Delivery {
    let event = Event::BatchEssaysRegistered;
    let mut d = example_delivery(event, event.topic(), id, offset);
    d.headers.set(names::BACKOFF_MS, "10");
    d
}

async fn run(stack: &BoxService, d: Delivery) -> Processed {
    process(stack, &mut Message::new(d), &ConsumerMetrics::detached()).await
}

/// Runs every check, each on a fresh stack.
pub async fn run_all<H: DedupHarness>(h: &H) {
    a_redelivered_event_is_applied_once(h).await;
    a_failed_attempt_is_not_recorded_and_its_retry_applies_once(h).await;
    two_copies_in_flight_together_are_applied_once(h).await;
    distinct_events_are_each_applied(h).await;
    a_prepared_run_gets_an_outcome_per_record(h).await;
}

/// The store-level guarantee behind the suite's "two copies in flight": a claim is released or renewed only by
/// its owner. Consumer A's lease lapses and B claims the event; A's late release must not delete B's claim (or a
/// third copy would be handled beside B's), nor may A's late renewal keep B's claim alive; B's own release and
/// renewal work. Run it on any [`DedupStore`](crate::dedup::DedupStore); each step panics with what went wrong.
pub async fn claims_are_released_and_renewed_only_by_their_owner(
    store: &dyn crate::dedup::DedupStore,
) {
    use crate::dedup::{Claim, DedupKey};
    use std::time::Duration;
    let method = store.method();
    let event_id = Uuid::new_v4();
    let key = |owner: u128| DedupKey {
        service: format!("conformance-{}", Uuid::new_v4().simple()),
        event_id,
        event_type: "huleedu.test.v1".into(),
        correlation_id: Uuid::nil(),
        source_service: "conformance".into(),
        owner: Uuid::from_u128(owner),
    };
    let a = key(1);
    let with = |owner: u128| DedupKey {
        owner: Uuid::from_u128(owner),
        ..a.clone()
    };
    let (b, c) = (with(2), with(3));
    let short = Duration::from_millis(300);
    assert_eq!(
        store.claim(&a, short).await.expect("claim A"),
        Claim::Acquired,
        "{method}"
    );
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    assert_eq!(
        store
            .claim(&b, Duration::from_secs(30))
            .await
            .expect("claim B"),
        Claim::Acquired,
        "{method}: A's lease lapsed"
    );
    store.release(&a).await.expect("A's late release");
    assert_eq!(
        store
            .claim(&c, Duration::from_secs(30))
            .await
            .expect("claim C"),
        Claim::InProgress,
        "{method}: A's late release deleted B's claim"
    );
    // B's claim, shortened by B, is not kept alive by A's renewal.
    store
        .extend(&b, short)
        .await
        .expect("B renews for a short lease");
    store
        .extend(&a, Duration::from_secs(30))
        .await
        .expect("A's late renewal");
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    assert_eq!(
        store
            .claim(&c, Duration::from_secs(30))
            .await
            .expect("claim C again"),
        Claim::Acquired,
        "{method}: A's renewal kept B's claim alive"
    );
    // The owner's own release works.
    store.release(&c).await.expect("C releases");
    assert_eq!(
        store
            .claim(&b, Duration::from_secs(30))
            .await
            .expect("claim after release"),
        Claim::Acquired,
        "{method}: C's own release did not release"
    );
    store.release(&b).await.expect("cleanup");
}

/// The same event delivered three times: applied once, then reported as a duplicate by the harness's method.
pub async fn a_redelivered_event_is_applied_once<H: DedupHarness>(h: &H) {
    let effects = Effects::default();
    let stack = h.stack(effects.clone()).await;
    let id = Uuid::new_v4();
    assert_eq!(run(&stack, delivery(id, 0)).await, Ok(Outcome::Handled));
    for offset in 1..3 {
        assert_eq!(
            run(&stack, delivery(id, offset)).await,
            Ok(Outcome::Duplicate { method: h.method() }),
            "{}: a redelivery must be a duplicate",
            h.method()
        );
    }
    assert_eq!(h.applied(&effects).await, 1, "{}", h.method());
}

/// An attempt that fails after doing its work records nothing; the retry (the retry layer's) applies the event,
/// once, and a later redelivery is a duplicate.
pub async fn a_failed_attempt_is_not_recorded_and_its_retry_applies_once<H: DedupHarness>(h: &H) {
    let effects = Effects::default();
    let stack = h.stack(effects.clone()).await;
    let id = Uuid::new_v4();
    effects.fail_next.store(true, Ordering::SeqCst);
    assert_eq!(
        run(&stack, delivery(id, 0)).await,
        Ok(Outcome::Handled),
        "{}",
        h.method()
    );
    assert_eq!(
        h.applied(&effects).await,
        1,
        "{}: applied once across the failure",
        h.method()
    );
    assert_eq!(
        run(&stack, delivery(id, 1)).await,
        Ok(Outcome::Duplicate { method: h.method() })
    );
}

/// Two copies of one event processed at the same time (two consumers, or the standard and the legacy topic):
/// applied once. A copy told "in progress elsewhere" (`Unavailable`) is retried by the driver; retried here, it
/// is a duplicate.
pub async fn two_copies_in_flight_together_are_applied_once<H: DedupHarness>(h: &H) {
    let effects = Effects::default();
    effects.work_ms.store(150, Ordering::SeqCst);
    let stack = h.stack(effects.clone()).await;
    let id = Uuid::new_v4();
    let (a, b) = tokio::join!(run(&stack, delivery(id, 0)), run(&stack, delivery(id, 1)));
    let mut handled = 0;
    for outcome in [a, b] {
        match outcome {
            Ok(Outcome::Handled) => handled += 1,
            Ok(Outcome::Duplicate { .. }) => {}
            Err(Failure::Unavailable(_)) => {
                // The driver retries it; by then the other copy has finished.
                effects.work_ms.store(0, Ordering::SeqCst);
                assert_eq!(
                    run(&stack, delivery(id, 2)).await,
                    Ok(Outcome::Duplicate { method: h.method() }),
                    "{}",
                    h.method()
                );
            }
            other => panic!("{}: unexpected outcome {other:?}", h.method()),
        }
    }
    assert_eq!(handled, 1, "{}: exactly one copy is handled", h.method());
    assert_eq!(h.applied(&effects).await, 1, "{}: applied once", h.method());
}

/// Different events are not mistaken for one another.
pub async fn distinct_events_are_each_applied<H: DedupHarness>(h: &H) {
    let effects = Effects::default();
    let stack = h.stack(effects.clone()).await;
    for n in 0..5 {
        assert_eq!(
            run(&stack, delivery(Uuid::new_v4(), n)).await,
            Ok(Outcome::Handled)
        );
    }
    assert_eq!(h.applied(&effects).await, 5, "{}", h.method());
}

/// A run prepared together (`Service::prepare`, as the Kafka driver does with the records waiting in a
/// partition's queue), then processed in order: new events handled, a second copy in the same run and an event
/// done before are duplicates; once finished (`Service::finish`), redeliveries of its events are duplicates; the
/// run's last record, abandoned instead (its partition revoked), is handled at once when it is delivered again: no
/// claim of the run is left behind to hold it up.
pub async fn a_prepared_run_gets_an_outcome_per_record<H: DedupHarness>(h: &H) {
    let effects = Effects::default();
    let stack = h.stack(effects.clone()).await;
    let [done, a, b, c] = [(); 4].map(|_| Uuid::new_v4());
    assert_eq!(run(&stack, delivery(done, 0)).await, Ok(Outcome::Handled));
    let mut msgs: Vec<Message> = [(a, 1), (b, 2), (a, 3), (done, 4), (c, 5)]
        .into_iter()
        .map(|(id, offset)| Message::new(delivery(id, offset)))
        .collect();
    stack.prepare(&mut msgs).await;
    let metrics = ConsumerMetrics::detached();
    let mut outcomes = Vec::new();
    for msg in &mut msgs[..4] {
        outcomes.push(process(&stack, msg, &metrics).await);
    }
    let dup = Ok(Outcome::Duplicate { method: h.method() });
    assert_eq!(
        outcomes,
        vec![Ok(Outcome::Handled), Ok(Outcome::Handled), dup.clone(), dup],
        "{}",
        h.method()
    );
    // What the driver does before it counts their offsets done: completes them. A redelivery is a duplicate.
    assert_eq!(
        stack.finish(&mut msgs[..4]).await,
        crate::Finished::All,
        "{}: nothing of the run to process again",
        h.method()
    );
    for (id, offset) in [(a, 7), (b, 8)] {
        assert_eq!(
            run(&stack, delivery(id, offset)).await,
            Ok(Outcome::Duplicate { method: h.method() }),
            "{}: a record of a finished run must be complete",
            h.method()
        );
    }
    stack.abandon(&mut msgs[4..]).await;
    assert_eq!(
        run(&stack, delivery(c, 6)).await,
        Ok(Outcome::Handled),
        "{}: an abandoned record must not be held up by its prepared claim",
        h.method()
    );
    assert_eq!(h.applied(&effects).await, 4, "{}", h.method());
}
