//! The dedup conformance suite (`hule_consumer::conformance`) on the memory store, Redis (127.0.0.1:6379 or
//! `$HULE_TEST_REDIS`) and the PostgreSQL inbox (the `test` database or `$HULE_TEST_DATABASE_URL`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hule_consumer::conformance::{run_all, DedupHarness, Effects};
use hule_consumer::*;
use hule_contracts::payloads::BatchEssaysRegistered;
use uuid::Uuid;

/// The handler every harness shares: works `work_ms`, fails once when told, counts an applied effect on success.
async fn apply(effects: &Effects) -> Result<(), HandlerError> {
    let ms = effects.work_ms.load(Ordering::SeqCst);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
    }
    if effects.fail_next.swap(false, Ordering::SeqCst) {
        return Err(HandlerError::transient("crashed after doing its work"));
    }
    effects.applied.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn stack_with(router: Router, store: Option<Arc<dyn DedupStore>>) -> BoxService {
    standard_stack(
        router,
        &format!("svc-{}", Uuid::new_v4().simple()),
        store,
        Arc::new(MemorySink::default()),
        ConsumerMetrics::new(
            &hule_metrics::Registry::new(),
            "svc",
            &format!("grp-{}", Uuid::new_v4().simple()),
        ),
    )
    .expect("stack")
}

fn counting(effects: Effects) -> Router {
    Router::new().on(
        TopicChoice::Standard,
        move |_ctx: Context, _p: BatchEssaysRegistered| {
            let effects = effects.clone();
            async move { apply(&effects).await }
        },
    )
}

struct Memory;
impl DedupHarness for Memory {
    fn method(&self) -> &'static str {
        "memory"
    }
    async fn stack(&self, effects: Effects) -> BoxService {
        stack_with(counting(effects), Some(Arc::new(MemoryDedup::default())))
    }
}

struct Redis;
impl DedupHarness for Redis {
    fn method(&self) -> &'static str {
        "redis"
    }
    async fn stack(&self, effects: Effects) -> BoxService {
        let url =
            std::env::var("HULE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        // A service name of its own (in stack_with) gives each stack an empty key space.
        stack_with(
            counting(effects),
            Some(Arc::new(RedisDedup::new(&url).expect("redis url"))),
        )
    }
}

/// The inbox, with the handler's effect a row written in the transaction that records the event: the suite counts
/// committed effect rows, so a failure that rolled back must leave neither the effect nor the inbox row.
#[derive(Default)]
struct Inbox {
    /// The schema URL of the stack made with each `Effects` (by the address of its counter).
    urls: std::sync::Mutex<std::collections::HashMap<usize, String>>,
}

impl DedupHarness for Inbox {
    fn method(&self) -> &'static str {
        "postgres_inbox"
    }
    async fn stack(&self, effects: Effects) -> BoxService {
        let url = hule_outbox::testkit::pg_schema_url("hule_inbox_conf").await;
        let inbox = PgInbox::connect(&url, "grp", 4).await.expect("inbox");
        let (client, _) = hule_outbox::pg::connect(&url).await.expect("connect");
        client
            .batch_execute("CREATE TABLE conformance_effects (event_id uuid NOT NULL)")
            .await
            .expect("effects table");
        self.urls
            .lock()
            .expect("lock")
            .insert(Arc::as_ptr(&effects.applied) as usize, url);
        let handler: Arc<hule_consumer::inbox::TxHandler<BatchEssaysRegistered>> =
            Arc::new(move |tx, ctx, _p| {
                let effects = effects.clone();
                Box::pin(async move {
                    // The effect, in the transaction that also records the event: a failure rolls both back.
                    tx.execute(
                        "INSERT INTO conformance_effects (event_id) VALUES ($1)",
                        &[&ctx.event_id],
                    )
                    .await
                    .map_err(HandlerError::transient)?;
                    apply(&effects).await
                })
            });
        stack_with(
            inbox.route(Router::new(), TopicChoice::Standard, handler),
            None,
        )
    }
    async fn applied(&self, effects: &Effects) -> u32 {
        let url = self
            .urls
            .lock()
            .expect("lock")
            .get(&(Arc::as_ptr(&effects.applied) as usize))
            .cloned()
            .expect("a stack made with these effects");
        let (client, _) = hule_outbox::pg::connect(&url).await.expect("connect");
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM conformance_effects),
                        (SELECT count(DISTINCT event_id) FROM conformance_effects),
                        (SELECT count(*) FROM hule_inbox)",
                &[],
            )
            .await
            .expect("count effects");
        let (effects_n, distinct, inbox_n): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(effects_n, distinct, "an event's effect committed twice");
        assert_eq!(
            effects_n, inbox_n,
            "effects and inbox rows committed apart: {effects_n} effects, {inbox_n} inbox rows"
        );
        u32::try_from(effects_n).expect("a small count")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_conforms() {
    run_all(&Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_conforms() {
    run_all(&Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inbox_conforms() {
    run_all(&Inbox::default()).await;
}

#[tokio::test]
async fn memory_claims_belong_to_their_owner() {
    hule_consumer::conformance::claims_are_released_and_renewed_only_by_their_owner(
        &MemoryDedup::default(),
    )
    .await;
}

#[tokio::test]
async fn redis_claims_belong_to_their_owner() {
    let url = std::env::var("HULE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = RedisDedup::new(&url).expect("redis url");
    store
        .ping()
        .await
        .expect("Redis must be running on 127.0.0.1:6379 (scripts/setup.sh starts it)");
    hule_consumer::conformance::claims_are_released_and_renewed_only_by_their_owner(&store).await;
}

/// Two consumer groups of one service on one Redis each handle every event (deduplicated per group, as the inbox
/// is); each group still handles it once. (Keyed by the service, the second group skipped the event as a
/// duplicate of the first's.)
#[tokio::test]
async fn two_groups_of_one_service_on_one_redis_each_handle_every_event() {
    let url = std::env::var("HULE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store: Arc<dyn DedupStore> = Arc::new(RedisDedup::new(&url).expect("redis url"));
    let run = Uuid::new_v4().simple().to_string();
    let registry = hule_metrics::Registry::new();
    let effects = Effects::default();
    let stacks: Vec<BoxService> = ["a", "b"]
        .iter()
        .map(|g| {
            standard_stack(
                counting(effects.clone()),
                "one-service",
                Some(store.clone()),
                Arc::new(MemorySink::default()),
                ConsumerMetrics::new(&registry, "one-service", &format!("group-{g}-{run}")),
            )
            .expect("stack")
        })
        .collect();
    let id = Uuid::new_v4();
    for stack in &stacks {
        for offset in 0..2 {
            let d = hule_consumer::conformance::delivery(id, offset);
            let outcome = process(stack, &mut Message::new(d), &ConsumerMetrics::detached()).await;
            assert!(outcome.is_ok(), "{outcome:?}");
        }
    }
    assert_eq!(effects.applied.load(Ordering::SeqCst), 2, "once per group");
}

/// An explicit namespace (an upgrade from a release that kept Redis dedup under the service's name) is shared by
/// whoever names it: a second group reading it sees the first's completion.
#[tokio::test]
async fn an_explicit_dedup_namespace_is_the_one_used() {
    let url = std::env::var("HULE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store: Arc<dyn DedupStore> = Arc::new(RedisDedup::new(&url).expect("redis url"));
    let namespace = format!("old-service-{}", Uuid::new_v4().simple());
    let registry = hule_metrics::Registry::new();
    let effects = Effects::default();
    let stacks: Vec<BoxService> = ["a", "b"]
        .iter()
        .map(|g| {
            hule_consumer::standard_stack_in(
                counting(effects.clone()),
                "one-service",
                &namespace,
                Some(store.clone()),
                Retry::default(),
                Arc::new(MemorySink::default()),
                ConsumerMetrics::new(&registry, "one-service", &format!("group-{g}-{namespace}")),
            )
            .expect("stack")
        })
        .collect();
    let id = Uuid::new_v4();
    for stack in &stacks {
        let d = hule_consumer::conformance::delivery(id, 0);
        let outcome = process(stack, &mut Message::new(d), &ConsumerMetrics::detached()).await;
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    assert_eq!(
        effects.applied.load(Ordering::SeqCst),
        1,
        "one namespace, one application"
    );
}
