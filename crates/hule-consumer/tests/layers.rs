//! The layers, each on its own and in the standard stack. Redis and PostgreSQL tests talk to the local servers
//! (127.0.0.1:6379, 127.0.0.1:5432 database `test`) and fail when they are missing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hule_consumer::*;
use hule_contracts::examples::example_envelope;
use hule_contracts::headers::names;
use hule_contracts::payloads::{
    BatchEssaysRegistered, BatchServiceSpellcheckInitiateCommandDataV1,
};
use hule_contracts::{Event, Timestamp};
use uuid::Uuid;

fn delivery_on(event: Event, topic: &str, id: Uuid, offset: i64) -> Delivery {
    hule_consumer::conformance::example_delivery(event, topic, id, offset)
}

fn delivery(event: Event, id: Uuid) -> Delivery {
    delivery_on(event, event.topic(), id, 0)
}

fn counting_router(calls: Arc<AtomicU32>, fail_first: u32, permanent: bool) -> Router {
    Router::new().on(
        TopicChoice::Standard,
        move |_ctx: Context, _p: BatchEssaysRegistered| {
            let calls = calls.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n <= fail_first {
                    return Err(if permanent {
                        HandlerError::permanent("refused by rule")
                    } else {
                        HandlerError::transient(format!("timeout {n}"))
                    });
                }
                Ok(())
            }
        },
    )
}

struct Harness {
    stack: BoxService,
    sink: Arc<MemorySink>,
    metrics: ConsumerMetrics,
}

fn harness(router: Router, dedup: Option<Arc<dyn DedupStore>>) -> Harness {
    // A consumer group of its own: harnesses never share a dedup namespace unless a test says so.
    let group = format!("grp-{}", Uuid::new_v4().simple());
    harness_with(
        router,
        dedup,
        ConsumerMetrics::new(&hule_metrics::Registry::new(), "svc", &group),
    )
}

#[test]
fn a_shared_store_with_detached_metrics_is_refused() {
    let redis = Arc::new(RedisDedup::new("redis://127.0.0.1:6379").expect("url"));
    let refused = standard_stack(
        Router::new(),
        "svc",
        Some(redis),
        Arc::new(MemorySink::default()),
        ConsumerMetrics::detached(),
    );
    assert!(matches!(
        refused,
        Err(StackError::DetachedNamespace { method: "redis" })
    ));
    // A memory store lives in the process: its namespace needs no group.
    assert!(standard_stack(
        Router::new(),
        "svc",
        Some(Arc::new(MemoryDedup::new())),
        Arc::new(MemorySink::default()),
        ConsumerMetrics::detached(),
    )
    .is_ok());
}

/// A harness of the consumer group `metrics` names: harnesses of one group share a dedup namespace (as the
/// consumers of one group do), those of detached metrics each have their own.
fn harness_with(
    router: Router,
    dedup: Option<Arc<dyn DedupStore>>,
    metrics: ConsumerMetrics,
) -> Harness {
    let sink = Arc::new(MemorySink::default());
    let stack = standard_stack(router, "svc", dedup, sink.clone(), metrics.clone()).expect("stack");
    Harness {
        stack,
        sink,
        metrics,
    }
}

impl Harness {
    async fn run(&self, d: Delivery) -> Processed {
        process(&self.stack, &mut Message::new(d), &self.metrics).await
    }
    fn letters(&self) -> Vec<DeadLetter> {
        self.sink.letters.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn typed_handler_gets_payload_and_context() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let router = Router::new().on(
        TopicChoice::Standard,
        move |ctx: Context, p: BatchEssaysRegistered| {
            let s = s.clone();
            async move {
                s.lock().expect("lock").push((
                    ctx.event_id,
                    p.entity_id,
                    ctx.attempt,
                    ctx.traceparent,
                ));
                Ok(())
            }
        },
    );
    let h = harness(router, None);
    let id = Uuid::from_u128(1);
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, id)).await,
        Ok(Outcome::Handled)
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, id);
    assert!(!seen[0].1.is_empty());
    assert_eq!(seen[0].2, 1);
    assert!(seen[0].3.as_deref().is_some_and(|t| t.starts_with("00-")));
    // An event without a handler is ignored (and committed).
    assert_eq!(
        h.run(delivery(Event::ElsBatchPhaseOutcome, id)).await,
        Ok(Outcome::Ignored)
    );
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_backoff_then_succeed() {
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 2, false), None);
    let start = tokio::time::Instant::now();
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, Uuid::from_u128(2)))
            .await,
        Ok(Outcome::Handled)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Default backoff 1000 then 5000 ms (virtual time).
    assert_eq!(start.elapsed().as_millis(), 6000);
    assert!(h.letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_go_to_the_dlq_with_the_policy_from_headers() {
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 100, false), None);
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(3));
    d.headers.set(names::MAX_RETRIES, "2");
    d.headers.set(names::BACKOFF_MS, "10,20");
    let start = tokio::time::Instant::now();
    let out = h.run(d.clone()).await;
    assert_eq!(
        out,
        Ok(Outcome::DeadLettered {
            reason: "retries_exhausted".into()
        })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed().as_millis(), 30);
    let letters = h.letters();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.topic, "huleedu.batch.essays.registered.v1.dlq.v1");
    assert_eq!(l.key, d.key);
    assert_eq!(l.headers.get(names::RETRY_COUNT), Some("2"));
    assert_eq!(
        l.headers.get(names::EVENT_ID),
        d.headers.get(names::EVENT_ID)
    );
    assert!(l.headers.get(names::TRACEPARENT).is_some());
    let rec: DeadLetterRecord = serde_json::from_slice(&l.value).expect("record json");
    assert_eq!(rec.retry_count, 2);
    assert_eq!(rec.error_message, "timeout 3");
    assert_eq!(rec.original_event_encoding, "json");
    assert_eq!(
        rec.original_event.value()["event_id"],
        Uuid::from_u128(3).to_string()
    );
    assert_eq!(rec.failed_by_service, "svc");
    assert_eq!(h.metrics.dead_letters(&d.topic, "retries_exhausted"), 1.0);
}

#[tokio::test]
async fn permanent_errors_go_to_the_dlq_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 100, true), None);
    let out = h
        .run(delivery(Event::BatchEssaysRegistered, Uuid::from_u128(4)))
        .await;
    assert_eq!(
        out,
        Ok(Outcome::DeadLettered {
            reason: "permanent_error".into()
        })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn invalid_records_go_to_the_dlq_naming_the_failure() {
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 0, false), None);
    // Not JSON at all: kept as base64.
    let mut bad = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(5));
    bad.payload = Some(vec![0xff, 0x00, b'{']);
    assert_eq!(
        h.run(bad).await,
        Ok(Outcome::DeadLettered {
            reason: "invalid_envelope".into()
        })
    );
    // A payload field of the wrong type: the path is named.
    let mut wrong = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(6));
    let mut v: serde_json::Value =
        serde_json::from_slice(wrong.payload.as_deref().expect("p")).expect("json");
    v["data"]["expected_essay_count"] = serde_json::json!("many");
    wrong.payload = Some(serde_json::to_vec(&v).expect("vec"));
    assert_eq!(
        h.run(wrong).await,
        Ok(Outcome::DeadLettered {
            reason: "invalid_payload".into()
        })
    );
    // A topic no event uses.
    let mut unknown = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(8));
    unknown.topic = "huleedu.nobody.v1".into();
    assert_eq!(
        h.run(unknown).await,
        Ok(Outcome::DeadLettered {
            reason: "unknown_event".into()
        })
    );
    // A tombstone.
    let mut tomb = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(9));
    tomb.payload = None;
    assert_eq!(
        h.run(tomb).await,
        Ok(Outcome::DeadLettered {
            reason: "invalid_envelope".into()
        })
    );

    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let letters = h.letters();
    let first: DeadLetterRecord = serde_json::from_slice(&letters[0].value).expect("json");
    assert_eq!(first.original_event_encoding, "base64");
    assert_eq!(first.original_event, serde_json::json!("/wB7"));
    assert!(first
        .note
        .as_deref()
        .is_some_and(|n| n.contains("not JSON")));
    let second: DeadLetterRecord = serde_json::from_slice(&letters[1].value).expect("json");
    assert!(
        second.error_message.contains("data.expected_essay_count"),
        "{}",
        second.error_message
    );
    assert_eq!(
        second.event_id.as_deref(),
        Some(Uuid::from_u128(6).to_string().as_str())
    );
    assert_eq!(letters[2].topic, "huleedu.nobody.v1.dlq.v1");
}

#[tokio::test]
async fn memory_dedup_skips_repeats_and_releases_after_failure() {
    let calls = Arc::new(AtomicU32::new(0));
    let store = Arc::new(MemoryDedup::new());
    let h = harness(
        counting_router(calls.clone(), 0, false),
        Some(store.clone()),
    );
    let id = Uuid::from_u128(10);
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, id)).await,
        Ok(Outcome::Handled)
    );
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, id)).await,
        Ok(Outcome::Duplicate { method: "memory" })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(h.metrics.duplicates("memory"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_releases_its_claim_so_the_retry_runs_the_handler_once_more() {
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(
        counting_router(calls.clone(), 1, false),
        Some(Arc::new(MemoryDedup::new())),
    );
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, Uuid::from_u128(11)))
            .await,
        Ok(Outcome::Handled)
    );
    // The original decorator ran a failing handler twice per attempt; here: one failed call, one good call.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_store_stops_processing_unless_fail_open_is_chosen() {
    let calls = Arc::new(AtomicU32::new(0));
    let store = Arc::new(MemoryDedup::new());
    store.set_unavailable(true);
    let h = harness(
        counting_router(calls.clone(), 0, false),
        Some(store.clone()),
    );
    let out = h
        .run(delivery(Event::BatchEssaysRegistered, Uuid::from_u128(12)))
        .await;
    assert!(
        matches!(out, Err(Failure::Unavailable(ref m)) if m.contains("memory")),
        "{out:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(h.letters().is_empty());

    let metrics = ConsumerMetrics::detached();
    let open = Stack::new(counting_router(calls.clone(), 0, false))
        .layer(Dedup::new(store, "svc", metrics.clone()).on_store_error(OnStoreError::FailOpen))
        .layer(Validate::new(metrics.clone()))
        .build();
    let out = process(
        &open,
        &mut Message::new(delivery(Event::BatchEssaysRegistered, Uuid::from_u128(12))),
        &metrics,
    )
    .await;
    assert_eq!(out, Ok(Outcome::Handled));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(metrics.fail_opens(), 1.0);
}

/// A router reading `BatchSpellcheckInitiateCommand` from both topics; its handler holds each call until released.
fn dual_router(
    calls: Arc<AtomicU32>,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
) -> Router {
    Router::new().on(
        TopicChoice::Both,
        move |_ctx: Context, _p: BatchServiceSpellcheckInitiateCommandDataV1| {
            let (calls, entered, release) = (calls.clone(), entered.clone(), release.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                entered.notify_one();
                release.notified().await;
                Ok(())
            }
        },
    )
}

#[tokio::test]
async fn reading_both_topics_without_a_dedup_store_is_refused() {
    let ev = Event::BatchSpellcheckInitiateCommand;
    let router = dual_router(Default::default(), Default::default(), Default::default());
    assert_eq!(
        router.topics(),
        vec![ev.legacy_topic(), ev.topic()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(router.dual_routes_without_dedup(), vec![ev]);
    let refused = standard_stack(
        router,
        "svc",
        None,
        Arc::new(MemorySink::default()),
        ConsumerMetrics::detached(),
    );
    let err = refused
        .err()
        .expect("a dual subscription without dedup must be refused");
    assert_eq!(err, StackError::DualTopicWithoutDedup { events: vec![ev] });
    let text = err.to_string();
    assert!(
        text.contains(ev.value()) && text.contains("dedup store"),
        "{text}"
    );
}

#[tokio::test]
async fn both_copies_in_flight_at_once_are_handled_once_with_a_dedup_store() {
    let ev = Event::BatchSpellcheckInitiateCommand;
    let calls = Arc::new(AtomicU32::new(0));
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let h = Arc::new(harness(
        dual_router(calls.clone(), entered.clone(), release.clone()),
        Some(Arc::new(MemoryDedup::new())),
    ));
    let id = Uuid::from_u128(13);
    // The standard copy is inside its handler when the legacy copy (another partition, another worker) arrives.
    let first = tokio::spawn({
        let h = h.clone();
        async move { h.run(delivery_on(ev, ev.topic(), id, 0)).await }
    });
    entered.notified().await;
    let second = tokio::spawn({
        let h = h.clone();
        async move { h.run(delivery_on(ev, ev.legacy_topic(), id, 0)).await }
    });
    let second = second.await.expect("join");
    release.notify_one();
    let first = first.await.expect("join");
    assert_eq!(first, Ok(Outcome::Handled));
    // The legacy copy found the claim held: not committed, and the driver delivers it again.
    let second = match second {
        Err(Failure::Unavailable(m)) => {
            assert!(m.contains("being processed by another consumer"), "{m}");
            h.run(delivery_on(ev, ev.legacy_topic(), id, 0)).await
        }
        done => done,
    };
    assert_eq!(second, Ok(Outcome::Duplicate { method: "memory" }));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_standard_headers_are_counted() {
    let registry = hule_metrics::Registry::new();
    let metrics = ConsumerMetrics::new(&registry, "svc", "grp");
    let stack = Stack::new(counting_router(Arc::new(AtomicU32::new(0)), 0, false))
        .layer(Validate::new(metrics.clone()))
        .build();
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(15));
    d.headers = Default::default();
    assert_eq!(
        process(&stack, &mut Message::new(d), &metrics).await,
        Ok(Outcome::Handled)
    );
    assert!(registry
        .render()
        .contains("kafka_event_headers_missing_total{service=\"svc\",event_type=\"huleedu.batch.essays.registered.v1\"} 1"));
}

fn redis_url() -> String {
    std::env::var("HULE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn redis_dedup_against_the_local_server() {
    let store = Arc::new(RedisDedup::new(&redis_url()).expect("url"));
    store
        .ping()
        .await
        .expect("Redis must be running on 127.0.0.1:6379 (scripts/setup.sh starts it)");
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(
        counting_router(calls.clone(), 0, false),
        Some(store.clone()),
    );
    let id = Uuid::new_v4();
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, id)).await,
        Ok(Outcome::Handled)
    );
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, id)).await,
        Ok(Outcome::Duplicate { method: "redis" })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Another service consuming the same event is independent.
    let other = harness(counting_router(calls.clone(), 0, false), Some(store));
    let stack = standard_stack(
        counting_router(calls.clone(), 0, false),
        "other-svc",
        Some(Arc::new(RedisDedup::new(&redis_url()).expect("url"))),
        other.sink.clone(),
        other.metrics.clone(),
    )
    .expect("stack");
    let out = process(
        &stack,
        &mut Message::new(delivery(Event::BatchEssaysRegistered, id)),
        &other.metrics,
    )
    .await;
    assert_eq!(out, Ok(Outcome::Handled));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn redis_unreachable_is_fail_closed() {
    // Port 1 refuses connections: the store is unavailable and nothing is handled or dead-lettered.
    let store = Arc::new(RedisDedup::new("redis://127.0.0.1:1").expect("url"));
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 0, false), Some(store));
    let out = h
        .run(delivery(Event::BatchEssaysRegistered, Uuid::new_v4()))
        .await;
    assert!(
        matches!(out, Err(Failure::Unavailable(ref m)) if m.contains("redis")),
        "{out:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(h.letters().is_empty());
}

/// A schema of the test's own with an `effects (event_id, note)` table: an admin client, its name, and a URL whose
/// sessions use it.
async fn effects_schema() -> (tokio_postgres::Client, String, String) {
    let base = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("hule_test_{}", Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (scripts/setup.sh starts it)");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.effects (event_id uuid, note text)"
        ))
        .await
        .expect("schema");
    let url = format!("{base}?options=-csearch_path%3D{schema}");
    (admin, schema, url)
}

#[tokio::test]
async fn postgres_inbox_commits_effect_and_record_together() {
    let (admin, schema, url) = effects_schema().await;
    let inbox = PgInbox::connect(&url, "grp", 2).await.expect("inbox");
    let fail_next = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = fail_next.clone();
    let handler: Arc<hule_consumer::inbox::TxHandler<BatchEssaysRegistered>> =
        Arc::new(move |tx, ctx, p| {
            let f = f.clone();
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO effects VALUES ($1, $2)",
                    &[&ctx.event_id, &p.entity_id],
                )
                .await
                .map_err(HandlerError::transient)?;
                if f.swap(false, Ordering::SeqCst) {
                    return Err(HandlerError::transient("crash after the effect"));
                }
                Ok(())
            })
        });
    let router = inbox.route(Router::new(), TopicChoice::Standard, handler);
    let h = harness(router, None);
    let id = Uuid::new_v4();
    // First attempt fails after writing its effect: rolled back with its inbox row; the retry commits both.
    let mut first = delivery(Event::BatchEssaysRegistered, id);
    first.headers.set(names::BACKOFF_MS, "10");
    assert_eq!(h.run(first).await, Ok(Outcome::Handled));
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, id)).await,
        Ok(Outcome::Duplicate {
            method: "postgres_inbox"
        })
    );
    let effects: i64 = admin
        .query_one(
            &format!("SELECT count(*) FROM {schema}.effects WHERE event_id = $1"),
            &[&id],
        )
        .await
        .expect("count")
        .get(0);
    let inboxed: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {schema}.hule_inbox WHERE event_id = $1 AND consumer_group = 'grp'"), &[&id])
        .await
        .expect("count")
        .get(0);
    assert_eq!((effects, inboxed), (1, 1));
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
}

/// A plain `async fn` handler (`route_with`, no boxing) that swallows a failed statement and returns `Ok`:
/// PostgreSQL would answer its COMMIT with a rollback and no error, losing the effect while the record counted as
/// handled. The inbox finds it out before committing: the record fails (transient, so retried and then
/// dead-lettered), and neither the effect nor the inbox row exists.
#[tokio::test]
async fn a_handler_that_swallows_a_failed_statement_is_not_counted_as_handled() {
    async fn honest(
        _state: (),
        tx: &hule_consumer::inbox::Transaction<'_>,
        ctx: hule_consumer::Context,
        p: BatchEssaysRegistered,
    ) -> Result<(), HandlerError> {
        tx.execute(
            "INSERT INTO effects VALUES ($1, $2)",
            &[&ctx.event_id, &p.entity_id],
        )
        .await?;
        Ok(())
    }
    async fn swallowing(
        state: (),
        tx: &hule_consumer::inbox::Transaction<'_>,
        ctx: hule_consumer::Context,
        p: BatchEssaysRegistered,
    ) -> Result<(), HandlerError> {
        honest(state, tx, ctx, p).await?;
        // A statement that fails (no such table), its error dropped.
        let _ = tx
            .execute("INSERT INTO no_such_table VALUES (1)", &[])
            .await;
        Ok(())
    }
    let (admin, schema, url) = effects_schema().await;
    let inbox = PgInbox::connect(&url, "grp", 1).await.expect("inbox");
    let router = inbox.route_with(Router::new(), TopicChoice::Standard, (), swallowing);
    let h = harness(router, None);
    let id = Uuid::new_v4();
    let mut d = delivery(Event::BatchEssaysRegistered, id);
    d.headers.set(names::MAX_RETRIES, "0");
    let outcome = h.run(d).await;
    assert!(
        matches!(&outcome, Ok(Outcome::DeadLettered { .. })),
        "not handled: {outcome:?}"
    );
    let count = |table: &str| format!("SELECT count(*) FROM {schema}.{table} WHERE event_id = $1");
    let effects: i64 = admin
        .query_one(&count("effects"), &[&id])
        .await
        .expect("count")
        .get(0);
    let inboxed: i64 = admin
        .query_one(&count("hule_inbox"), &[&id])
        .await
        .expect("count")
        .get(0);
    assert_eq!((effects, inboxed), (0, 0), "nothing committed");
    // The connection is usable after it: the next event is handled and committed.
    let h = harness(
        inbox.route_with(Router::new(), TopicChoice::Standard, (), honest),
        None,
    );
    let next = Uuid::new_v4();
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, next)).await,
        Ok(Outcome::Handled)
    );
    let effects: i64 = admin
        .query_one(&count("effects"), &[&next])
        .await
        .expect("count")
        .get(0);
    assert_eq!(effects, 1);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
}

#[test]
fn dead_letters_replay_to_their_topic_with_key_headers_and_a_marker() {
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(21));
    let letter = DeadLetter::build(&d, &Failure::Permanent("rule".into()), "svc");
    let rec: DeadLetterRecord = serde_json::from_slice(&letter.value).expect("json");
    let hule_consumer::dlq::Replay {
        topic,
        key,
        headers,
        value,
    } = hule_consumer::dlq::replay_record(&rec, &letter.headers, &letter.topic, 0, 7)
        .expect("replay");
    assert_eq!(topic, d.topic);
    assert_eq!(key, d.key);
    assert_eq!(
        headers.get(names::REPLAYED_FROM),
        Some("huleedu.batch.essays.registered.v1.dlq.v1:0:7")
    );
    assert_eq!(headers.get(names::RETRY_COUNT), Some("0"));
    assert_eq!(headers.get(hule_consumer::dlq::DLQ_REASON_HEADER), None);
    assert_eq!(headers.get(names::EVENT_ID), d.headers.get(names::EVENT_ID));
    let original: serde_json::Value =
        serde_json::from_slice(d.payload.as_deref().expect("p")).expect("json");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&value).expect("json"),
        original
    );

    // Raw bytes come back byte for byte.
    d.payload = Some(vec![0xff, 1, 2]);
    let letter = DeadLetter::build(
        &d,
        &Failure::Invalid(hule_contracts::DecodeError::new(
            hule_contracts::DecodePhase::Envelope,
            ".",
            "x",
        )),
        "svc",
    );
    let rec: DeadLetterRecord = serde_json::from_slice(&letter.value).expect("json");
    let value = hule_consumer::dlq::replay_record(&rec, &letter.headers, &letter.topic, 0, 8)
        .expect("replay")
        .value;
    assert_eq!(value, vec![0xff, 1, 2]);

    {
        let mut d = d.clone();
        // Python-form JSON (spaces after separators, a decimal's trailing zero, an escaped non-ASCII letter) comes
        // back byte for byte, through the dead-letter record's own bytes; re-encoding is what a replay asks for.
        let python = br#"{"event_id": "e1", "event_type": "X", "data": {"score": 41.50, "name": "caf\u00e9"}}"#;
        d.payload = Some(python.to_vec());
        let letter = DeadLetter::build(&d, &Failure::Permanent("rule".into()), "svc");
        let rec: DeadLetterRecord = serde_json::from_slice(&letter.value).expect("json");
        assert_eq!(rec.original_event_encoding, "json");
        let value = hule_consumer::dlq::replay_record(&rec, &letter.headers, &letter.topic, 0, 9)
            .expect("replay")
            .value;
        assert_eq!(value, python.to_vec());
        assert_eq!(
            rec.original_event.field_str("event_type").as_deref(),
            Some("X")
        );

        // JSON with whitespace around it (a trailing newline) is embedded as JSON — an object the Python reader
        // reads, with the same fingerprint — and the whitespace kept beside it comes back in a replay.
        let padded = b" {\"event_id\": \"e1\", \"event_type\": \"X\"}\n".to_vec();
        d.payload = Some(padded.clone());
        let letter = DeadLetter::build(&d, &Failure::Permanent("rule".into()), "svc");
        let rec: DeadLetterRecord = serde_json::from_slice(&letter.value).expect("json");
        assert_eq!(rec.original_event_encoding, "json");
        assert!(rec.original_event.value().is_object());
        assert_eq!(
            rec.original_event.field_str("event_type").as_deref(),
            Some("X")
        );
        assert_eq!(rec.event_id.as_deref(), Some("e1"));
        let value = hule_consumer::dlq::replay_record(&rec, &letter.headers, &letter.topic, 0, 10)
            .expect("replay")
            .value;
        assert_eq!(value, padded);
    }

    // Filters.
    let f = hule_consumer::dlq::DlqFilter {
        reason: Some("invalid_envelope".into()),
        ..Default::default()
    };
    assert!(f.matches(&rec));
    let f = hule_consumer::dlq::DlqFilter {
        reason: Some("permanent_error".into()),
        ..Default::default()
    };
    assert!(!f.matches(&rec));
    let f = hule_consumer::dlq::DlqFilter {
        since: Some(Timestamp::from_datetime(
            chrono::Utc::now() + chrono::Duration::hours(1),
        )),
        ..Default::default()
    };
    assert!(!f.matches(&rec));
}

async fn dead_letter_reason(d: Delivery) -> (Processed, Vec<DeadLetter>) {
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 0, false), None);
    let out = h.run(d).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the handler must not see bad input"
    );
    (out, h.letters())
}

#[tokio::test]
async fn json_that_is_not_an_envelope_is_dead_lettered() {
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(30));
    d.payload = Some(br#"{"hello": "world"}"#.to_vec());
    let (out, letters) = dead_letter_reason(d).await;
    assert_eq!(
        out,
        Ok(Outcome::DeadLettered {
            reason: "invalid_envelope".into()
        })
    );
    let rec: DeadLetterRecord = serde_json::from_slice(&letters[0].value).expect("json");
    assert!(
        rec.error_message.contains("event_id"),
        "{}",
        rec.error_message
    );
    assert_eq!(rec.original_event_encoding, "json");
}

#[tokio::test]
async fn an_oversize_record_is_dead_lettered() {
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(31));
    let mut v: serde_json::Value =
        serde_json::from_slice(d.payload.as_deref().expect("p")).expect("json");
    v["data"]["user_id"] = serde_json::json!("x".repeat(1_100_000));
    d.payload = Some(serde_json::to_vec(&v).expect("vec"));
    let (out, letters) = dead_letter_reason(d).await;
    assert_eq!(
        out,
        Ok(Outcome::DeadLettered {
            reason: "oversize".into()
        })
    );
    let rec: DeadLetterRecord = serde_json::from_slice(&letters[0].value).expect("json");
    assert!(
        rec.error_message.contains("1048576"),
        "{}",
        rec.error_message
    );
}

#[tokio::test]
async fn non_utf8_headers_are_dead_lettered() {
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(32));
    d.invalid_headers = vec!["traceparent".into()];
    let (out, letters) = dead_letter_reason(d).await;
    assert_eq!(
        out,
        Ok(Outcome::DeadLettered {
            reason: "invalid_headers".into()
        })
    );
    let rec: DeadLetterRecord = serde_json::from_slice(&letters[0].value).expect("json");
    assert!(
        rec.error_message.contains("traceparent"),
        "{}",
        rec.error_message
    );
}

#[tokio::test]
async fn a_key_that_breaks_the_contract_is_dead_lettered_unless_the_envelope_names_it() {
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(33));
    d.key = Some(b"someone-else".to_vec());
    let (out, letters) = dead_letter_reason(d.clone()).await;
    assert_eq!(
        out,
        Ok(Outcome::DeadLettered {
            reason: "key_mismatch".into()
        })
    );
    let rec: DeadLetterRecord = serde_json::from_slice(&letters[0].value).expect("json");
    assert!(
        rec.error_message.contains("someone-else") && rec.error_message.contains("entity_id"),
        "{}",
        rec.error_message
    );

    // The original OutboxManager honours metadata.partition_key; such a key is accepted.
    let mut v: serde_json::Value =
        serde_json::from_slice(d.payload.as_deref().expect("p")).expect("json");
    v["metadata"]["partition_key"] = serde_json::json!("someone-else");
    d.payload = Some(serde_json::to_vec(&v).expect("vec"));
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 0, false), None);
    assert_eq!(h.run(d).await, Ok(Outcome::Handled));
}

#[tokio::test(start_paused = true)]
async fn a_partition_carries_on_after_bad_input_and_failures_in_order() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let router = Router::new().on(
        TopicChoice::Standard,
        move |ctx: Context, _p: BatchEssaysRegistered| {
            let s = s.clone();
            async move {
                let first_try_fails = ctx.offset == 2 && ctx.attempt == 1;
                s.lock().expect("lock").push((ctx.offset, ctx.attempt));
                if ctx.offset == 1 {
                    return Err(HandlerError::permanent("refused"));
                }
                if first_try_fails {
                    return Err(HandlerError::transient("timeout"));
                }
                Ok(())
            }
        },
    );
    let h = harness(router, None);
    let mut outcomes = Vec::new();
    for offset in 0..5 {
        let mut d = delivery_on(
            Event::BatchEssaysRegistered,
            Event::BatchEssaysRegistered.topic(),
            Uuid::from_u128(40 + offset as u128),
            offset,
        );
        if offset == 3 {
            d.payload = Some(b"not json".to_vec());
        }
        outcomes.push(h.run(d).await);
    }
    assert_eq!(outcomes[0], Ok(Outcome::Handled));
    assert_eq!(
        outcomes[1],
        Ok(Outcome::DeadLettered {
            reason: "permanent_error".into()
        })
    );
    assert_eq!(outcomes[2], Ok(Outcome::Handled));
    assert_eq!(
        outcomes[3],
        Ok(Outcome::DeadLettered {
            reason: "invalid_envelope".into()
        })
    );
    assert_eq!(outcomes[4], Ok(Outcome::Handled));
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![(0, 1), (1, 1), (2, 1), (2, 2), (4, 1)],
        "in order, the retry before the next record"
    );
}

/// An event written through the outbox with `key_override` passes the consumer's key check: `prepare` records the
/// override as `metadata.partition_key`. Before, every such record was dead-lettered as `key_mismatch`.
#[tokio::test]
async fn an_event_enqueued_with_a_key_override_is_handled_not_dead_lettered() {
    use hule_outbox::prepare::{prepare, EnqueueOptions};
    let env = example_envelope(
        Event::BatchEssaysRegistered,
        Uuid::from_u128(40),
        Uuid::from_u128(7),
        Timestamp::from_unix_micros(1_700_000_000_000_000).expect("ts"),
    )
    .expect("example")
    .map_data(|d| match d {
        hule_contracts::TypedEvent::BatchEssaysRegistered(p) => p,
        other => panic!("example of another event: {:?}", other.event()),
    });
    let opts = EnqueueOptions {
        key_override: Some("tenant-7".into()),
        ..EnqueueOptions::default()
    };
    let rows = prepare(&env, &opts).expect("prepare");
    assert_eq!(rows[0].event_key, "tenant-7");
    let mut d = delivery(Event::BatchEssaysRegistered, env.event_id);
    d.key = Some(rows[0].event_key.clone().into_bytes());
    d.payload = Some(rows[0].event_data.clone().into_bytes());
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 0, false), None);
    assert_eq!(h.run(d).await, Ok(Outcome::Handled));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A record cannot make its partition wait for hours: `X-Max-Retries: 50` with `X-Backoff-Ms: 3600000` (an hour per
/// retry) is bounded by the consumer's `RetryLimit` (10 retries, 60 s per delay, 5 min in all). Before, this record
/// took 51 attempts and 50 hours of the partition's time.
#[tokio::test(start_paused = true)]
async fn retry_headers_cannot_stall_a_partition_beyond_the_consumers_limit() {
    let calls = Arc::new(AtomicU32::new(0));
    let h = harness(counting_router(calls.clone(), 1_000, false), None);
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(41));
    d.headers.set(names::MAX_RETRIES, "50");
    d.headers.set(names::BACKOFF_MS, "3600000");
    let start = tokio::time::Instant::now();
    let out = h.run(d).await;
    assert_eq!(
        out,
        Ok(Outcome::DeadLettered {
            reason: "retries_exhausted".into()
        })
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        6,
        "5 retries of 60 s fit in the 5 minutes"
    );
    assert_eq!(start.elapsed().as_secs(), 300);
}

/// A stack with only the dedup layer (lease `lease`) over a router whose handler takes `busy`.
fn leased_stack(
    store: Arc<dyn DedupStore>,
    lease: std::time::Duration,
    busy: std::time::Duration,
    calls: Arc<AtomicU32>,
) -> BoxService {
    let router = Router::new().on(
        TopicChoice::Standard,
        move |_ctx: Context, _p: BatchEssaysRegistered| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(busy).await;
                Ok(())
            }
        },
    );
    Stack::new(router)
        .layer(Dedup::new(store, "lease-svc", ConsumerMetrics::detached()).lock_ttl(lease))
        .layer(Validate::new(ConsumerMetrics::detached()))
        .build()
}

#[tokio::test]
async fn a_handler_longer_than_the_lease_keeps_its_claim_on_both_stores() {
    let redis = Arc::new(RedisDedup::new(&redis_url()).expect("url"));
    redis
        .ping()
        .await
        .expect("Redis must be running on 127.0.0.1:6379 (scripts/setup.sh starts it)");
    let stores: [Arc<dyn DedupStore>; 2] = [Arc::new(MemoryDedup::new()), redis];
    for store in stores {
        let calls = Arc::new(AtomicU32::new(0));
        let lease = std::time::Duration::from_millis(300);
        let stack = leased_stack(
            store.clone(),
            lease,
            std::time::Duration::from_millis(1200),
            calls.clone(),
        );
        let id = Uuid::new_v4();
        let metrics = ConsumerMetrics::detached();
        let first = tokio::spawn({
            let (stack, metrics) = (stack.clone(), metrics.clone());
            async move {
                process(
                    &stack,
                    &mut Message::new(delivery(Event::BatchEssaysRegistered, id)),
                    &metrics,
                )
                .await
            }
        });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // A second owner keeps trying while the first handler runs four leases long: never acquired.
        let mut refused = 0;
        while !first.is_finished() {
            let out = process(
                &stack,
                &mut Message::new(delivery(Event::BatchEssaysRegistered, id)),
                &metrics,
            )
            .await;
            match out {
                Err(Failure::Unavailable(m)) if m.contains("being processed") => refused += 1,
                Ok(Outcome::Duplicate { .. }) => break,
                other => panic!(
                    "{}: the claim was lost while its handler ran: {other:?}",
                    store.method()
                ),
            }
            tokio::time::sleep(lease / 4).await;
        }
        assert_eq!(first.await.expect("join"), Ok(Outcome::Handled));
        assert!(refused >= 8, "{}: only {refused} refusals", store.method());
        assert!(matches!(
            process(
                &stack,
                &mut Message::new(delivery(Event::BatchEssaysRegistered, id)),
                &metrics
            )
            .await,
            Ok(Outcome::Duplicate { .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{}", store.method());
    }
}

#[tokio::test]
async fn a_claim_left_by_a_consumer_that_died_mid_handler_blocks_its_successor_for_one_lease() {
    let store = Arc::new(RedisDedup::new(&redis_url()).expect("url"));
    store
        .ping()
        .await
        .expect("Redis must be running on 127.0.0.1:6379 (scripts/setup.sh starts it)");
    let id = Uuid::new_v4();
    // Two consumers of one group (one dedup namespace).
    let group = format!("grp-{}", Uuid::new_v4().simple());
    let registry = hule_metrics::Registry::new();
    // The first consumer (default lease) dies inside its handler: its task ends without releasing anything.
    let entered = Arc::new(tokio::sync::Notify::new());
    let e = entered.clone();
    let dying = harness_with(
        Router::new().on(
            TopicChoice::Standard,
            move |_ctx: Context, _p: BatchEssaysRegistered| {
                let e = e.clone();
                async move {
                    e.notify_one();
                    std::future::pending::<()>().await;
                    Ok(())
                }
            },
        ),
        Some(store.clone()),
        ConsumerMetrics::new(&registry, "svc", &group),
    );
    let task =
        tokio::spawn(async move { dying.run(delivery(Event::BatchEssaysRegistered, id)).await });
    entered.notified().await;
    task.abort();
    let died = std::time::Instant::now();
    // Its successor retries as the driver does until the claim's lease runs out.
    let calls = Arc::new(AtomicU32::new(0));
    let next = harness_with(
        counting_router(calls.clone(), 0, false),
        Some(store),
        ConsumerMetrics::new(&registry, "svc", &group),
    );
    let bound = Dedup::DEFAULT_LEASE + std::time::Duration::from_secs(1);
    loop {
        match next.run(delivery(Event::BatchEssaysRegistered, id)).await {
            Ok(Outcome::Handled) => break,
            Err(Failure::Unavailable(m)) if m.contains("being processed") => {
                assert!(
                    died.elapsed() < bound,
                    "still blocked after {:?}",
                    died.elapsed()
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let stalled = died.elapsed();
    assert!(stalled < bound, "stalled {stalled:?}");
    // And not sooner: the claim was made just before `died`, so its lease ends about one lease after it.
    assert!(
        stalled >= Dedup::DEFAULT_LEASE - std::time::Duration::from_secs(1),
        "the successor took over after {stalled:?}, before the dead consumer's lease ran out"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    eprintln!(
        "successor took over after {stalled:?} (lease {:?})",
        Dedup::DEFAULT_LEASE
    );
}

#[tokio::test]
async fn the_inbox_reconnects_after_the_server_closes_its_connections() {
    let base = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (scripts/setup.sh starts it)");
    tokio::spawn(conn);
    let app = format!("inbox_reconnect_{}", Uuid::new_v4().simple());
    let sep = if base.contains('?') { '&' } else { '?' };
    let inbox = PgInbox::connect(&format!("{base}{sep}application_name={app}"), &app, 2)
        .await
        .expect("inbox");
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let handler: Arc<hule_consumer::inbox::TxHandler<BatchEssaysRegistered>> =
        Arc::new(move |_tx, _ctx, _p| {
            let c = c.clone();
            Box::pin(async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        });
    let h = harness(
        inbox.route(Router::new(), TopicChoice::Standard, handler),
        None,
    );
    assert_eq!(
        h.run(delivery(Event::BatchEssaysRegistered, Uuid::new_v4()))
            .await,
        Ok(Outcome::Handled)
    );
    // What a server restart does to the inbox: every connection it holds is closed by the server.
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("terminate")
        .get(0);
    assert_eq!(killed, 2);
    // Each pooled connection may fail once (the driver retries the record); then the inbox works again.
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let id = Uuid::new_v4();
        let mut attempts = 0;
        let out = loop {
            attempts += 1;
            match h.run(delivery(Event::BatchEssaysRegistered, id)).await {
                Err(Failure::Unavailable(m)) if attempts < 3 => {
                    eprintln!("attempt {attempts}: {m}")
                }
                other => break other,
            }
        };
        assert_eq!(out, Ok(Outcome::Handled));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    inbox
        .cleanup(std::time::Duration::ZERO, 1000)
        .await
        .expect("cleanup");
}

/// A DLQ sink that refuses every letter still carrying its original record with `kind`.
#[derive(Default)]
struct RefusingSink {
    kind: Option<hule_contracts::FailureKind>,
    accepted: std::sync::Mutex<Vec<DeadLetter>>,
}

impl DeadLetterSink for RefusingSink {
    fn send(
        &self,
        letter: DeadLetter,
    ) -> futures::future::BoxFuture<'_, Result<(), hule_contracts::DeliveryError>> {
        Box::pin(async move {
            if let Some(kind) = self.kind {
                if letter.record.original_event_encoding != "omitted" {
                    return Err(hule_contracts::DeliveryError {
                        kind,
                        message: "Broker: Message size too large".into(),
                    });
                }
            }
            self.accepted.lock().expect("lock").push(letter);
            Ok(())
        })
    }
}

fn poison_through(sink: Arc<RefusingSink>) -> (BoxService, ConsumerMetrics, Delivery) {
    let metrics = ConsumerMetrics::detached();
    let stack = standard_stack(
        counting_router(Arc::new(AtomicU32::new(0)), 0, false),
        "svc",
        None,
        sink,
        metrics.clone(),
    )
    .expect("stack");
    let mut d = delivery(Event::BatchEssaysRegistered, Uuid::from_u128(31));
    d.payload = Some(b"{\"not\": \"an envelope\"}".to_vec());
    (stack, metrics, d)
}

#[tokio::test]
async fn a_dead_letter_refused_for_good_is_sent_without_its_original_record() {
    let sink = Arc::new(RefusingSink {
        kind: Some(hule_contracts::FailureKind::Permanent),
        ..Default::default()
    });
    let (stack, metrics, d) = poison_through(sink.clone());
    let out = process(&stack, &mut Message::new(d), &metrics).await;
    assert!(matches!(out, Ok(Outcome::DeadLettered { .. })), "{out:?}");
    let letters = sink.accepted.lock().expect("lock").clone();
    assert_eq!(letters.len(), 1);
    let rec = &letters[0].record;
    assert_eq!(rec.original_event_encoding, "omitted");
    assert_eq!(rec.original_event, serde_json::Value::Null);
    let note = rec.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("Message size too large") && note.contains(":0:0"),
        "{note}"
    );
    let err = hule_consumer::dlq::replay_record(rec, &letters[0].headers, &letters[0].topic, 0, 1)
        .expect_err("nothing to replay");
    assert!(
        err.to_string()
            .contains("does not carry its original record"),
        "{err}"
    );
}

#[tokio::test]
async fn a_fatal_dead_letter_producer_is_a_fatal_failure_and_a_retriable_one_is_retried() {
    for (kind, fatal) in [
        (hule_contracts::FailureKind::Fatal, true),
        (hule_contracts::FailureKind::Retriable, false),
    ] {
        let sink = Arc::new(RefusingSink {
            kind: Some(kind),
            ..Default::default()
        });
        let (stack, metrics, d) = poison_through(sink.clone());
        let out = process(&stack, &mut Message::new(d), &metrics).await;
        if fatal {
            assert!(matches!(out, Err(Failure::Fatal(_))), "{out:?}");
        } else {
            assert!(matches!(out, Err(Failure::Unavailable(_))), "{out:?}");
        }
        assert!(sink.accepted.lock().expect("lock").is_empty());
    }
}

/// Service instances start together after a deploy: their inbox migrations race on an empty schema. Without the
/// migration's lock, concurrent `CREATE TABLE IF NOT EXISTS` fail on PostgreSQL's catalog ("duplicate key value
/// violates unique constraint") and an instance dies at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_migrations_of_instances_starting_together_all_succeed() {
    let base = std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (scripts/setup.sh starts it)");
    tokio::spawn(conn);
    for round in 0..5 {
        let schema = format!("hule_test_{}", Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema");
        let url = format!("{base}?options=-csearch_path%3D{schema}");
        let starts = (0..8).map(|_| PgInbox::connect(&url, "grp", 1));
        for (i, started) in futures::future::join_all(starts)
            .await
            .into_iter()
            .enumerate()
        {
            if let Err(e) = started {
                panic!("round {round}: instance {i} failed to start: {e}");
            }
        }
    }
}
