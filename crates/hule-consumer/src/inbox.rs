//! The PostgreSQL inbox: exactly-once effects. The handler runs inside a transaction that first inserts
//! (consumer group, event id) into `hule_inbox`; the effect and the dedup record commit together or not at all, so
//! a redelivery after a crash either finds the row (duplicate, skipped) or finds neither row nor effect.
//!
//! A connection that the server closed (a restart, a failover, an idle timeout) is replaced on the next call: that
//! call's record gets `Unavailable` only if the server cannot be reached yet, and the driver tries it again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::{Payload, TypedEvent};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::message::Context;
use crate::router::{ErasedHandler, HandlerError, Router, TopicChoice};
use crate::service::{Failure, Outcome};

/// The inbox table; idempotent, and safe to run from many instances at once: the first statement serialises
/// concurrent migrations (two `CREATE TABLE IF NOT EXISTS` racing each other fail on PostgreSQL's catalog with a
/// duplicate key). Run it in one transaction (`PgInbox::connect` wraps it in `BEGIN … COMMIT`; a multi-statement
/// simple query is one implicit transaction too), so the lock is held to the end.
pub const MIGRATION: &str = "
SELECT pg_advisory_xact_lock(7236284818);
CREATE TABLE IF NOT EXISTS hule_inbox (
    consumer_group TEXT NOT NULL,
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);
CREATE INDEX IF NOT EXISTS hule_inbox_processed_at ON hule_inbox (processed_at);
";

/// Inbox errors.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Connecting or migrating failed.
    #[error("PostgreSQL inbox: {context}: {}", hule_secrets::error_chain(source))]
    Database {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The connection could not be made (address, TLS, login).
    #[error("PostgreSQL inbox: {0}")]
    Connect(#[from] hule_pg::ConnectError),
}

/// A consumer group's inbox on a small pool of connections.
pub struct PgInbox {
    url: String,
    group: String,
    clients: Vec<Mutex<Conn>>,
    next: AtomicUsize,
}

/// The inbox's insert, prepared once per connection: a record's transaction is then three round trips (begin,
/// insert, commit) rather than four (tokio-postgres prepares a statement given as text on every call).
const INSERT: &str =
    "INSERT INTO hule_inbox (consumer_group, event_id, event_type, topic, partition, kafka_offset)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";

/// One pooled connection, its prepared insert, and the probe run before a commit.
struct Conn {
    client: Client,
    insert: tokio_postgres::Statement,
    probe: tokio_postgres::Statement,
}

impl Conn {
    async fn open(url: &str) -> Result<Self, InboxError> {
        let client = hule_pg::connect(url).await?;
        let insert = client
            .prepare(INSERT)
            .await
            .map_err(|source| InboxError::Database {
                context: "prepare the inbox insert".into(),
                source,
            })?;
        let probe = client
            .prepare("SELECT 1")
            .await
            .map_err(|source| InboxError::Database {
                context: "prepare the inbox probe".into(),
                source,
            })?;
        Ok(Conn {
            client,
            insert,
            probe,
        })
    }
}

/// The transaction a transactional handler writes its effect in (and publishes through the outbox in).
pub use tokio_postgres::Transaction;

/// A transactional handler: any `async fn(state, &Transaction<'_>, Context, payload) -> Result<(), HandlerError>`
/// (or a function returning such a future). It is implemented for them; you never name it, only write the
/// function. (It exists because a closure bound cannot say "a future borrowing the transaction".)
pub trait TxHandlerFn<'t, S, P>: Send + Sync + 'static {
    /// The handler's future, which may borrow the transaction.
    type Future: std::future::Future<Output = Result<(), HandlerError>> + Send + 't;
    /// Calls the handler.
    fn call(&self, state: S, tx: &'t Transaction<'t>, ctx: Context, payload: P) -> Self::Future;
}

impl<'t, S, P, F, Fut> TxHandlerFn<'t, S, P> for F
where
    F: Fn(S, &'t Transaction<'t>, Context, P) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send + 't,
{
    type Future = Fut;
    fn call(&self, state: S, tx: &'t Transaction<'t>, ctx: Context, payload: P) -> Fut {
        self(state, tx, ctx, payload)
    }
}

/// Where a consumer's inbox will be once it has connected: handlers are registered before the consumer runs, the
/// inbox connects when it starts (so a wrong URL fails the start, not the first record).
pub type InboxSlot = Arc<std::sync::OnceLock<Arc<PgInbox>>>;

/// Registers `handler` for `P`'s event on `router`, running it with `state` inside the transaction of the inbox
/// that `slot` will hold (a record arriving before it does is `Unavailable`, tried again).
pub fn route_in_slot<S, P, F>(
    slot: &InboxSlot,
    router: Router,
    choice: TopicChoice,
    state: S,
    handler: F,
) -> Router
where
    S: Clone + Send + Sync + 'static,
    P: Payload,
    F: for<'t> TxHandlerFn<'t, S, P>,
{
    let slot = slot.clone();
    let handler = Arc::new(handler);
    let erased: ErasedHandler = Arc::new(move |ctx: Context, typed: TypedEvent| {
        let slot = slot.clone();
        let handler = handler.clone();
        let state = state.clone();
        async move {
            let inbox = slot.get().cloned().ok_or_else(|| {
                Failure::Unavailable("the PostgreSQL inbox is not connected yet".into())
            })?;
            let payload = P::from_typed(typed).map_err(|other| {
                Failure::Permanent(format!("inbox handler of {:?} got {:?}", P::EVENT, other))
            })?;
            let c = ctx.clone();
            inbox
                .run(&ctx, move |tx| handler.call(state, tx, c, payload).boxed())
                .await
        }
        .boxed()
    });
    router.on_erased_deduplicating(P::EVENT, choice, erased)
}

/// A handler that writes its effect in the inbox's transaction (the boxed form [`PgInbox::route`] takes; prefer a
/// plain `async fn` with [`PgInbox::route_with`] or the consumer builder's `handle_tx`).
pub type TxHandler<P> = dyn for<'t> Fn(&'t Transaction<'t>, Context, P) -> BoxFuture<'t, Result<(), HandlerError>>
    + Send
    + Sync;

impl PgInbox {
    /// Connects `pool` clients to `url`, migrates, and serves consumer group `group`. `search_path` may be set
    /// with the URL's `options=-csearch_path%3D…`.
    pub async fn connect(url: &str, group: &str, pool: usize) -> Result<Arc<Self>, InboxError> {
        // Migrated first: the pooled connections prepare their insert against the table. A table and index that
        // are there already are left alone: `CREATE INDEX IF NOT EXISTS` would take its lock on a busy table (every
        // inbox transaction of every group) before finding the index, and a role without DDL rights may start.
        let admin = hule_pg::connect(url).await?;
        let present: bool = admin
            .query_one(
                "SELECT to_regclass('hule_inbox') IS NOT NULL AND to_regclass('hule_inbox_processed_at') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|source| InboxError::Database {
                context: "look for hule_inbox".into(),
                source,
            })?
            .get(0);
        if !present {
            admin
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL lock_timeout = '10s'; {MIGRATION} COMMIT;"
                ))
                .await
                .map_err(|source| InboxError::Database {
                    context: "migrate hule_inbox".into(),
                    source,
                })?;
        }
        let mut clients = Vec::new();
        for _ in 0..pool.max(1) {
            clients.push(Mutex::new(Conn::open(url).await?));
        }
        Ok(Arc::new(PgInbox {
            url: url.to_owned(),
            group: group.to_owned(),
            clients,
            next: AtomicUsize::new(0),
        }))
    }

    /// Runs `f` in a transaction that records the event in the inbox first; a recorded event is a duplicate.
    pub async fn run<F>(&self, ctx: &Context, f: F) -> Result<Outcome, Failure>
    where
        F: for<'t> FnOnce(&'t Transaction<'t>) -> BoxFuture<'t, Result<(), HandlerError>>,
    {
        let unavailable = |what: &str, e: tokio_postgres::Error| {
            Failure::Unavailable(format!(
                "PostgreSQL inbox: {what}: {}",
                hule_secrets::error_chain(&e)
            ))
        };
        // A free connection if there is one, else the next in turn.
        let mut conn = match self.clients.iter().find_map(|c| c.try_lock().ok()) {
            Some(free) => free,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
                self.clients[i].lock().await
            }
        };
        if conn.client.is_closed() {
            tracing::warn!(group = %self.group, "PostgreSQL inbox connection closed; reconnecting");
            *conn = Conn::open(&self.url)
                .await
                .map_err(|e| Failure::Unavailable(format!("PostgreSQL inbox: reconnect: {e}")))?;
        }
        let Conn {
            client,
            insert,
            probe,
        } = &mut *conn;
        let tx = client
            .transaction()
            .await
            .map_err(|e| unavailable("begin", e))?;
        let inserted = tx
            .execute(
                &*insert,
                &[
                    &self.group,
                    &ctx.event_id,
                    &ctx.event.value(),
                    &ctx.topic,
                    &ctx.partition,
                    &ctx.offset,
                ],
            )
            .await
            .map_err(|e| unavailable("insert", e))?;
        if inserted == 0 {
            tx.rollback()
                .await
                .map_err(|e| unavailable("rollback", e))?;
            return Ok(Outcome::Duplicate {
                method: "postgres_inbox",
            });
        }
        match f(&tx).await {
            Ok(()) => {
                // PostgreSQL answers COMMIT of a transaction in which a statement failed with a rollback, and no
                // error: a handler that swallowed a failed statement would see its effect, its outbox rows and the
                // inbox row vanish while the record counted as handled. One statement first finds that out.
                if let Err(e) = tx.query(&*probe, &[]).await {
                    let aborted = e.code()
                        == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION);
                    let _ = tx.rollback().await;
                    return Err(if aborted {
                        Failure::Transient(
                            "the handler returned Ok after a statement of its transaction failed; nothing was \
                             committed (return the statement's error, with `?`)"
                                .into(),
                        )
                    } else {
                        HandlerError::from(e).into()
                    });
                }
                // A commit refused with a code (a deferred constraint) is classified like any statement; one
                // without (the connection lost) may or may not have committed: unavailable, and the redelivery
                // finds the inbox row if it did.
                tx.commit().await.map_err(|e| match e.code() {
                    Some(_) => HandlerError::from(e).into(),
                    None => unavailable("commit", e),
                })?;
                Ok(Outcome::Handled)
            }
            Err(e) => {
                // Dropping the transaction rolls it back; an explicit rollback reports a broken connection.
                tx.rollback()
                    .await
                    .map_err(|e| unavailable("rollback", e))?;
                Err(e.into())
            }
        }
    }

    /// Registers `handler` for `P`'s event on `router`, running it inside the inbox transaction.
    pub fn route<P: Payload>(
        self: &Arc<Self>,
        router: Router,
        choice: TopicChoice,
        handler: Arc<TxHandler<P>>,
    ) -> Router {
        let inbox = self.clone();
        let erased: ErasedHandler = Arc::new(move |ctx: Context, typed: TypedEvent| {
            let inbox = inbox.clone();
            let handler = handler.clone();
            async move {
                let payload = P::from_typed(typed).map_err(|other| {
                    Failure::Permanent(format!("inbox handler of {:?} got {:?}", P::EVENT, other))
                })?;
                let c = ctx.clone();
                inbox.run(&ctx, move |tx| handler(tx, c, payload)).await
            }
            .boxed()
        });
        router.on_erased_deduplicating(P::EVENT, choice, erased)
    }

    /// Registers `handler` — an `async fn(state, &Transaction<'_>, Context, payload)` — for `P`'s event on
    /// `router`, running it with `state` inside the inbox transaction.
    pub fn route_with<S, P, F>(
        self: &Arc<Self>,
        router: Router,
        choice: TopicChoice,
        state: S,
        handler: F,
    ) -> Router
    where
        S: Clone + Send + Sync + 'static,
        P: Payload,
        F: for<'t> TxHandlerFn<'t, S, P>,
    {
        let slot: InboxSlot = Arc::new(std::sync::OnceLock::from(self.clone()));
        route_in_slot(&slot, router, choice, state, handler)
    }

    /// Deletes inbox rows older than `older_than`, at most `limit` at a time; returns how many went.
    pub async fn cleanup(
        &self,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<u64, InboxError> {
        let conn = self.clients[0].lock().await;
        let secs = older_than.as_secs_f64();
        conn.client
            .execute(
                "DELETE FROM hule_inbox WHERE ctid IN (SELECT ctid FROM hule_inbox
                 WHERE consumer_group = $1 AND processed_at < now() - make_interval(secs => $2) LIMIT $3)",
                &[&self.group, &secs, &limit],
            )
            .await
            .map_err(|source| InboxError::Database {
                context: "cleanup".into(),
                source,
            })
    }
}
