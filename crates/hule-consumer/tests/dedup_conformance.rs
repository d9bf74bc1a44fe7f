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
        ConsumerMetrics::detached(),
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

struct Inbox;
impl DedupHarness for Inbox {
    fn method(&self) -> &'static str {
        "postgres_inbox"
    }
    async fn stack(&self, effects: Effects) -> BoxService {
        let url = hule_outbox::testkit::pg_schema_url("hule_inbox_conf").await;
        let inbox = PgInbox::connect(&url, "grp", 4).await.expect("inbox");
        let handler: Arc<hule_consumer::inbox::TxHandler<BatchEssaysRegistered>> =
            Arc::new(move |tx, _ctx, _p| {
                let effects = effects.clone();
                Box::pin(async move {
                    // The effect lives in the transaction that also records the event: a failure rolls both back.
                    tx.execute("SELECT 1", &[])
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
    run_all(&Inbox).await;
}
