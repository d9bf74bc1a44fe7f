/*!
The consumer runtime, without Kafka: a typed [`Router`] and the layers a delivery passes through, composed in the
tower style ([`Stack`], [`Layer`], [`Service`]). The Kafka driver that feeds it lives in `hule-kafka`.

The standard stack, outermost first:

| layer | does |
|---|---|
| [`DeadLetterLayer`] | sends invalid, permanent and exhausted failures to `<topic>.dlq.v1`, acknowledged before the commit |
| [`Validate`] | two-phase decode; a failure is final at once |
| [`Retry`] | blocking retries of transient errors, policy from `X-Max-Retries` / `X-Backoff-Ms` bounded by [`RetryLimit`] (10 retries, 60 s per delay, 5 min in all) |
| [`Dedup`] | claim → handle → complete (Redis, memory), fail-closed by default |
| [`Router`] | event → typed handler; the PostgreSQL [`inbox`] dedups inside the handler's transaction |

Every [`Outcome`] lets the driver commit the offset; a [`Failure`] that reaches the driver (only
[`Failure::Unavailable`] in the standard stack) means "do not commit, try again later".

```
use std::sync::Arc;
use hule_consumer::*;
use hule_contracts::payloads::BatchEssaysRegistered;

let metrics = ConsumerMetrics::detached();
let router = Router::new().on(TopicChoice::Standard, |ctx: Context, p: BatchEssaysRegistered| async move {
    println!("batch {} from {}", p.entity_id, ctx.source_service);
    Ok(())
});
let stack = standard_stack(router, "demo-service", Some(Arc::new(MemoryDedup::new())), Arc::new(MemorySink::default()), metrics)
    .expect("a valid stack");
# let _ = stack;
```
*/
#![warn(missing_docs)]

#[cfg(any(test, feature = "testkit"))]
pub mod conformance;
pub mod dedup;
pub mod dlq;
pub mod fingerprint;
#[cfg(feature = "postgres")]
pub mod inbox;
pub mod message;
pub mod metrics;
#[cfg(feature = "redis")]
pub mod redis;
pub mod retry;
pub mod router;
pub mod service;
pub mod validate;

use std::sync::Arc;

use tracing::Instrument;

pub use dedup::{Dedup, DedupStore, MemoryDedup, OnStoreError, TtlTable};
pub use dlq::{DeadLetter, DeadLetterLayer, DeadLetterRecord, DeadLetterSink, MemorySink};
pub use fingerprint::Fingerprint;
#[cfg(feature = "postgres")]
pub use inbox::PgInbox;
pub use message::{Context, Delivery, Message};
pub use metrics::{ConsumerMetrics, TopicOutcomes};
#[cfg(feature = "redis")]
pub use redis::RedisDedup;
pub use retry::{Retry, RetryLimit};
pub use router::{HandlerError, Router, TopicChoice};
pub use service::{BoxService, Failure, Finished, Layer, Outcome, Processed, Service, Stack};
pub use validate::Validate;

/// A stack that cannot keep its promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    /// Events read from both their standard and legacy topics with nothing to deduplicate the two copies.
    #[error(
        "{} read from both the standard and the legacy topic (TopicChoice::Both) without a dedup store: the two \
         copies of one event can run concurrently on different partitions and both be handled; give standard_stack \
         a dedup store (Redis) or route them through the PostgreSQL inbox",
        events.iter().map(|e| e.value()).collect::<Vec<_>>().join(", ")
    )]
    DualTopicWithoutDedup {
        /// The events concerned.
        events: Vec<hule_contracts::Event>,
    },
    /// A shared dedup store (Redis) with metrics of no consumer group ([`ConsumerMetrics::detached`]): the
    /// namespace would be a name of this process alone, and the group's members and restarts would never see each
    /// other's claims and markers.
    #[error(
        "a {method} dedup store needs the consumer group as its namespace: build the metrics with \
         ConsumerMetrics::new(registry, service, group) (not detached), or pass the namespace to standard_stack_in"
    )]
    DetachedNamespace {
        /// The store's method.
        method: &'static str,
    },
}

/// The standard stack: dead-letter → validate → retry → dedup (when a store is given) → router.
///
/// Refuses a router that reads an event from two topics when neither a store nor the handler itself
/// deduplicates ([`StackError::DualTopicWithoutDedup`]).
pub fn standard_stack(
    router: Router,
    service: &str,
    dedup: Option<Arc<dyn DedupStore>>,
    dlq: Arc<dyn DeadLetterSink>,
    metrics: ConsumerMetrics,
) -> Result<BoxService, StackError> {
    standard_stack_with_retry(router, service, dedup, Retry::default(), dlq, metrics)
}

/// [`standard_stack`] with a retry policy of the caller's.
pub fn standard_stack_with_retry(
    router: Router,
    service: &str,
    dedup: Option<Arc<dyn DedupStore>>,
    retry: Retry,
    dlq: Arc<dyn DeadLetterSink>,
    metrics: ConsumerMetrics,
) -> Result<BoxService, StackError> {
    if let Some(store) = &dedup {
        // A memory store lives in this process only; any other is shared between processes.
        if metrics.is_detached() && store.method() != "memory" {
            return Err(StackError::DetachedNamespace {
                method: store.method(),
            });
        }
    }
    let namespace = metrics.group().to_owned();
    standard_stack_in(router, service, &namespace, dedup, retry, dlq, metrics)
}

/// [`standard_stack_with_retry`] with a dedup namespace of the caller's instead of the consumer group (to keep
/// reading the completion markers an earlier release wrote under the service's name, for one TTL after an upgrade).
pub fn standard_stack_in(
    router: Router,
    service: &str,
    namespace: &str,
    dedup: Option<Arc<dyn DedupStore>>,
    retry: Retry,
    dlq: Arc<dyn DeadLetterSink>,
    metrics: ConsumerMetrics,
) -> Result<BoxService, StackError> {
    if dedup.is_none() {
        let events = router.dual_routes_without_dedup();
        if !events.is_empty() {
            return Err(StackError::DualTopicWithoutDedup { events });
        }
    }
    let mut stack = Stack::new(router);
    if let Some(store) = dedup {
        // Deduplicated per consumer group (by default), as the inbox is: two groups of one service each handle every
        // event.
        stack = stack.layer(Dedup::new(store, namespace, metrics.clone()));
    }
    Ok(stack
        .layer(retry)
        .layer(Validate::new(metrics.clone()))
        .layer(DeadLetterLayer::new(dlq, service, metrics))
        .build())
}

/// Runs `msg` through `stack` and counts its outcome; what a driver calls for each record.
pub async fn process(
    stack: &BoxService,
    msg: &mut Message,
    metrics: &ConsumerMetrics,
) -> Processed {
    process_recorded(stack, msg, Record::Family(metrics)).await
}

/// [`process`] with the topic's outcome series already resolved ([`ConsumerMetrics::for_topic`]): the driver's
/// partition workers call this for every record.
pub async fn process_counted(
    stack: &BoxService,
    msg: &mut Message,
    outcomes: &metrics::TopicOutcomes,
) -> Processed {
    process_recorded(stack, msg, Record::Series(outcomes)).await
}

/// Where [`process`] records a record's outcome: looked up in the families, or in series resolved beforehand.
enum Record<'a> {
    Family(&'a ConsumerMetrics),
    Series(&'a metrics::TopicOutcomes),
}

async fn process_recorded(stack: &BoxService, msg: &mut Message, record: Record<'_>) -> Processed {
    let started = std::time::Instant::now();
    // The record's span continues the producer's trace (the relay's publish span, from the `traceparent` header).
    let span = tracing::info_span!(target: "hule", "consumer.receive", topic = %msg.delivery.topic, partition = msg.delivery.partition, offset = msg.delivery.offset, outcome = tracing::field::Empty);
    hule_trace::set_remote_parent(
        &span,
        msg.delivery.headers.get(hule_trace::TRACEPARENT),
        msg.delivery.headers.get(hule_trace::TRACESTATE),
    );
    let result = stack.call(msg).instrument(span.clone()).await;
    let label = match &result {
        Ok(Outcome::Handled) => "handled",
        Ok(Outcome::Duplicate { .. }) => "duplicate",
        Ok(Outcome::Ignored) => "ignored",
        Ok(Outcome::DeadLettered { .. }) => "dead_lettered",
        Err(_) => "not_committed",
    };
    span.record("outcome", label);
    let seconds = started.elapsed().as_secs_f64();
    match record {
        Record::Family(metrics) => metrics.outcome(&msg.delivery.topic, label, seconds),
        Record::Series(outcomes) => outcomes.record(label, seconds),
    }
    if let Ok(Outcome::Duplicate { method }) = &result {
        tracing::debug!(target: "hule", topic = %msg.delivery.topic, partition = msg.delivery.partition, offset = msg.delivery.offset, event_id = msg.delivery.headers.get(hule_contracts::headers::names::EVENT_ID).unwrap_or("-"), method, "duplicate skipped");
    }
    result
}
