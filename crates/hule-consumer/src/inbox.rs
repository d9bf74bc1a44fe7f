//! The PostgreSQL inbox: exactly-once effects. The handler runs inside a transaction that first inserts
//! (consumer group, event id) into `hule_inbox`; the effect and the dedup record commit together or not at all, so
//! a redelivery after a crash either finds the row (duplicate, skipped) or finds neither row nor effect.
//!
//! A connection that the server closed (a restart, a failover, an idle timeout) is replaced on the next call: that
//! call's record gets `Unavailable` only if the server cannot be reached yet, and the driver tries it again.
//!
//! **Batched runs.** When the driver hands the records waiting in a partition's queue to `prepare` together, the
//! inbox handles them in one transaction on one connection ([`Run`]): the inbox rows of all of them in one
//! statement (a record whose row was there already is a duplicate), each record's handler in turn, and one commit
//! when the driver finishes the records that reached their outcomes, after deleting the rows of those not handled
//! by then — one statement and one durable commit per run instead of three round trips and a commit per record.
//! A record's outcome (`Handled`) is therefore durable only once `finish` has committed, which is when the driver
//! counts its offset done (and the driver does not finish the records before a run's record in flight while it
//! works: they commit with it). When anything inside the run's open transaction fails (a handler's error, a
//! statement, the connection, the commit), that transaction is rolled back whole: the failing record gets
//! [`Failure::Undone`], `finish` names the records whose outcome it held ([`crate::Finished::Redo`]), and the
//! driver processes those again, then the failing one, each alone in a transaction of its own, where its own
//! failure gets its own outcome (retried, dead-lettered); the run's later records are handed back too and
//! processed alone (a failure before anything was handled costs only the failing record). No savepoints: a
//! subtransaction per record would cost two round trips each and, past 64 per transaction, slow every snapshot on
//! the server. A record routed elsewhere in the middle of a run (a plain handler, another inbox) commits the run
//! before it, so effects keep the partition's order even when a commit fails. A record the driver abandons (its
//! partition revoked) was never handled: its row is deleted before the commit or rolled back with the run. A
//! handler may run more than once for one record (as with retries); its transactional effect commits once.
//!
//! What sharing a transaction asks of the handlers: all their database work goes through the transaction they are
//! given (a write through another connection to a row an earlier record of the run wrote waits for the run's
//! commit, which waits for that handler: the run's session is ended after [`RUN_IDLE_TIMEOUT`] idle, the run lost
//! and its records processed alone); and transaction-scoped state they set (`SET LOCAL`, `set_config(…, true)` for
//! row-level security, an advisory transaction lock) is still set for the next record's handler. Handlers that
//! cannot live with that turn runs off ([`PgInbox::batched_runs`], the consumer builder's `inbox_runs(false)`).
//!
//! A run holds its connection from its first record after a commit to the next commit or rollback; with more
//! partitions than connections, runs wait for one in turn. Runs are not made when a dedup store is in the stack too
//! (its completion marker must not precede the commit): each record then has its own transaction, as a record that
//! is alone in its partition's queue always has.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::{Payload, TypedEvent};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedMutexGuard};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::message::Context;
use crate::router::{pg_message, ErasedHandler, HandlerError, Router, TopicChoice};
use crate::service::{Failure, Outcome, Processed};

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
    clients: Vec<Arc<Mutex<Conn>>>,
    next: AtomicUsize,
    /// Batched runs allowed ([`PgInbox::batched_runs`]).
    runs: std::sync::atomic::AtomicBool,
}

/// The inbox's insert, prepared once per connection: a record's transaction is then three round trips (begin,
/// insert, commit) rather than four (tokio-postgres prepares a statement given as text on every call).
const INSERT: &str =
    "INSERT INTO hule_inbox (consumer_group, event_id, event_type, topic, partition, kafka_offset)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";

/// A batched run's inserts: the rows of every record of the run not handled yet, in one statement; the event ids
/// it inserted are returned (a duplicate's row is not). Inserted in event-id order, so that two runs holding copies
/// of the same events (the standard and the legacy topic) take their locks in one order and do not deadlock.
const INSERT_RUN: &str =
    "INSERT INTO hule_inbox (consumer_group, event_id, event_type, topic, partition, kafka_offset)
     SELECT $1, r.e, r.t, r.tp, r.p, r.o
       FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int4[], $6::int8[]) AS r(e, t, tp, p, o)
      ORDER BY r.e
     ON CONFLICT DO NOTHING
     RETURNING event_id";

/// The rows a batched run inserted for records it did not handle before committing, deleted before the commit.
const DELETE_UNHANDLED: &str =
    "DELETE FROM hule_inbox WHERE consumer_group = $1 AND event_id = ANY($2::uuid[])";

/// One pooled connection, its prepared statements, and the probe run before a commit.
struct Conn {
    client: Client,
    insert: tokio_postgres::Statement,
    insert_run: tokio_postgres::Statement,
    delete_unhandled: tokio_postgres::Statement,
    probe: tokio_postgres::Statement,
}

impl Conn {
    async fn open(url: &str) -> Result<Self, InboxError> {
        let client = hule_pg::connect(url).await?;
        let prepare = |sql: &'static str, what: &'static str| {
            let client = &client;
            async move {
                client
                    .prepare(sql)
                    .await
                    .map_err(|source| InboxError::Database {
                        context: format!("prepare the inbox {what}"),
                        source,
                    })
            }
        };
        Ok(Conn {
            insert: prepare(INSERT, "insert").await?,
            insert_run: prepare(INSERT_RUN, "run insert").await?,
            delete_unhandled: prepare(DELETE_UNHANDLED, "run delete").await?,
            probe: prepare("SELECT 1", "probe").await?,
            client,
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
    let handler = Arc::new(handler);
    let alone: ErasedHandler = {
        let (slot, handler, state) = (slot.clone(), handler.clone(), state.clone());
        Arc::new(move |ctx: Context, typed: TypedEvent| {
            let slot = slot.clone();
            let handler = handler.clone();
            let state = state.clone();
            async move {
                let inbox = slot.get().cloned().ok_or_else(|| {
                    Failure::Unavailable("the PostgreSQL inbox is not connected yet".into())
                })?;
                let payload = payload_of::<P>(typed)?;
                let c = ctx.clone();
                inbox
                    .run(&ctx, move |tx| handler.call(state, tx, c, payload).boxed())
                    .await
            }
            .boxed()
        })
    };
    let in_run: RunHandler = Arc::new(move |ctx: Context, typed: TypedEvent, run: Arc<Run>| {
        let handler = handler.clone();
        let state = state.clone();
        async move {
            let payload = payload_of::<P>(typed)?;
            let row = InboxRow::of(&ctx);
            run.handle(
                row,
                Box::new(move |tx| handler.call(state, tx, ctx, payload).boxed()),
            )
            .await
        }
        .boxed()
    });
    router.on_inbox(P::EVENT, choice, alone, slot.clone(), in_run)
}

fn payload_of<P: Payload>(typed: TypedEvent) -> Result<P, Failure> {
    P::from_typed(typed).map_err(|other| {
        Failure::Permanent(format!("inbox handler of {:?} got {:?}", P::EVENT, other))
    })
}

/// A boxed [`TxHandler`] called as a [`TxHandlerFn`] whose state is the handler.
fn call_boxed<'t, P>(
    handler: Arc<TxHandler<P>>,
    tx: &'t Transaction<'t>,
    ctx: Context,
    payload: P,
) -> BoxFuture<'t, Result<(), HandlerError>> {
    handler(tx, ctx, payload)
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
            clients.push(Arc::new(Mutex::new(Conn::open(url).await?)));
        }
        Ok(Arc::new(PgInbox {
            url: url.to_owned(),
            group: group.to_owned(),
            clients,
            next: AtomicUsize::new(0),
            runs: std::sync::atomic::AtomicBool::new(true),
        }))
    }

    /// Whether the records waiting in a partition's queue share one transaction (on by default; see the module
    /// docs). Turn it off when a handler must see the effects of the records before it from another connection,
    /// writes rows through another connection that a record before it wrote in the run, or sets transaction-scoped
    /// state (`SET LOCAL`, `set_config(…, true)` for row-level security, an advisory transaction lock) that the
    /// next record's handler must not inherit: each record then has a transaction of its own.
    pub fn batched_runs(&self, on: bool) {
        self.runs.store(on, Ordering::Relaxed);
    }

    /// Whether batched runs are on.
    pub fn runs_batched(&self) -> bool {
        self.runs.load(Ordering::Relaxed)
    }

    /// A pooled connection, open: a free one if there is one, else the next in turn (reconnected if the server
    /// closed it).
    async fn acquire(&self) -> Result<OwnedMutexGuard<Conn>, Failure> {
        let mut conn = match self
            .clients
            .iter()
            .find_map(|c| c.clone().try_lock_owned().ok())
        {
            Some(free) => free,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
                self.clients[i].clone().lock_owned().await
            }
        };
        if conn.client.is_closed() {
            tracing::warn!(group = %self.group, "PostgreSQL inbox connection closed; reconnecting");
            *conn = Conn::open(&self.url)
                .await
                .map_err(|e| Failure::Unavailable(format!("PostgreSQL inbox: reconnect: {e}")))?;
        }
        Ok(conn)
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
        let mut conn = self.acquire().await?;
        let Conn {
            client,
            insert,
            probe,
            ..
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
        self.route_with(router, choice, handler, call_boxed::<P>)
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

/// The inbox handler of a record in a batched run: handles it in the run's transaction.
pub(crate) type RunHandler =
    Arc<dyn Fn(Context, TypedEvent, Arc<Run>) -> BoxFuture<'static, Processed> + Send + Sync>;

/// A record's tie to an inbox run, left in its [`crate::Message`] by the router's `prepare`.
#[derive(Clone)]
pub(crate) struct RunRef {
    pub run: Arc<Run>,
    /// Handled in the run's transaction; else a record after the run's first member that commits the run before
    /// it is handled elsewhere.
    pub member: bool,
}

/// The most records one run's transaction handles: runs are the driver's (64 at most); this bounds what one
/// rollback sends back for processing alone.
pub(crate) const RUN_MEMBERS: usize = 64;

/// What a record writes into the inbox.
pub(crate) struct InboxRow {
    event_id: Uuid,
    event_type: &'static str,
    topic: String,
    partition: i32,
    offset: i64,
}

impl InboxRow {
    /// The row of a decoded record.
    pub(crate) fn of_message(msg: &crate::Message) -> Option<Self> {
        let env = msg.decoded.as_ref()?;
        Some(InboxRow {
            event_id: env.event_id,
            event_type: env.data.event().value(),
            topic: msg.delivery.topic.clone(),
            partition: msg.delivery.partition,
            offset: msg.delivery.offset,
        })
    }

    fn of(ctx: &Context) -> Self {
        InboxRow {
            event_id: ctx.event_id,
            event_type: ctx.event.value(),
            topic: ctx.topic.clone(),
            partition: ctx.partition,
            offset: ctx.offset,
        }
    }
}

/// A handler's work in a transaction, boxed to be sent to the run's task.
type Job =
    Box<dyn for<'t> FnOnce(&'t Transaction<'t>) -> BoxFuture<'t, Result<(), HandlerError>> + Send>;

enum Command {
    Handle {
        row: InboxRow,
        job: Job,
        reply: oneshot::Sender<Processed>,
    },
    Commit {
        reply: oneshot::Sender<()>,
    },
}

/// Which transaction each handled record's effect is in, and how those that ended, ended.
#[derive(Default)]
struct Book {
    /// Offset of a record handled in the run → the transaction (its number in the run) that holds its effect.
    handled: HashMap<i64, u64>,
    /// Transaction → committed.
    ended: HashMap<u64, bool>,
    /// Offsets `finish` has named for processing again.
    named: std::collections::HashSet<i64>,
}

impl Book {
    /// Whether the record at `offset` lost its effect (or its judgement as a duplicate) to a transaction that did
    /// not commit (a transaction still open counts as not committed).
    fn lost(&self, offset: i64) -> bool {
        self.handled
            .get(&offset)
            .is_some_and(|t| self.ended.get(t) != Some(&true))
    }
}

/// One partition run's transaction on one pooled connection, driven by a task of its own (the transaction borrows
/// its connection, and `finish` must be able to commit it while a handler of the run is in flight). The connection
/// is held only while a transaction holds handled records: from the first record after a commit to the next commit
/// or rollback. Dropping the run (the driver drops its records) rolls back what is not committed.
pub(crate) struct Run {
    commands: mpsc::UnboundedSender<Command>,
    book: Arc<std::sync::Mutex<Book>>,
}

impl std::fmt::Debug for RunRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRef")
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

/// The book, even if a panic poisoned its lock (it holds only maps and a flag).
fn lock(book: &std::sync::Mutex<Book>) -> std::sync::MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|p| p.into_inner())
}

impl Run {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        lock(&self.book)
    }

    /// Handles one record in the run's transaction: its inbox row, then `job`. `Handled` is durable only once the
    /// run has committed ([`Run::commit`]).
    async fn handle(&self, row: InboxRow, job: Job) -> Processed {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Handle { row, job, reply })
            .map_err(|_| Failure::Undone("the inbox run has ended".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(Failure::Undone("the inbox run has ended".into())))
    }

    /// Commits what the run's transaction holds (after the record in flight, if any); true when every record the
    /// run handled so far is committed or already named for processing again (a record handled in a transaction
    /// that failed while the driver was finishing the records before it is not named yet).
    pub(crate) async fn commit(&self) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Commit { reply }).is_ok() {
            let _ = answer.await;
        }
        let book = self.book();
        book.handled
            .keys()
            .all(|o| book.named.contains(o) || !book.lost(*o))
    }

    /// Whether the record at `offset`, handled in this run, lost its effect to a rollback; it counts as named for
    /// processing again from now on. Call after [`Run::commit`].
    pub(crate) fn name_if_lost(&self, offset: i64) -> bool {
        let mut book = self.book();
        let lost = book.lost(offset);
        if lost {
            book.named.insert(offset);
        }
        lost
    }
}

impl PgInbox {
    /// A run of `members`' records (in order) handled in shared transactions, its task started.
    pub(crate) fn open_run(self: &Arc<Self>, members: Vec<InboxRow>) -> Arc<Run> {
        let (commands, rx) = mpsc::unbounded_channel();
        let book = Arc::new(std::sync::Mutex::new(Book::default()));
        tokio::spawn(drive_run(self.clone(), members, rx, book.clone()));
        Arc::new(Run { commands, book })
    }
}

/// The run's task: a transaction opened by the first record after each commit, which inserts the inbox rows of
/// every member not handled yet in one statement; each record's handler in it in turn (a member whose row was not
/// inserted is a duplicate); committed on [`Command::Commit`] after deleting the rows of members not handled by
/// then (the next transaction inserts them again); rolled back whole at the first failure (the failing record gets
/// [`Failure::Undone`]) or when the run is dropped.
async fn drive_run(
    inbox: Arc<PgInbox>,
    mut pending: Vec<InboxRow>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    book: Arc<std::sync::Mutex<Book>>,
) {
    let method = "postgres_inbox";
    let mut number = 0u64;
    // Once a transaction holding handled records is lost, the rest of the run is processed alone: the driver
    // processes the lost records again while a record of the run may be in flight (a flush's commit failed), and a
    // new transaction for that record could hold row locks the records processed again wait for, until a commit
    // the driver would never reach.
    let mut poisoned = false;
    let undone = |reply: oneshot::Sender<Processed>, why: String| {
        let _ = reply.send(Err(Failure::Undone(why)));
    };
    'transactions: while let Some(command) = commands.recv().await {
        let (mut row, mut job, mut reply) = match command {
            Command::Commit { reply } => {
                let _ = reply.send(());
                continue;
            }
            Command::Handle { reply, row, .. } if poisoned => {
                pending.retain(|p| p.offset != row.offset);
                undone(
                    reply,
                    "an earlier transaction of its run was rolled back; the rest of the run is processed alone"
                        .into(),
                );
                continue;
            }
            Command::Handle { row, job, reply } => (row, job, reply),
        };
        number += 1;
        let mut conn = match inbox.acquire().await {
            Ok(conn) => conn,
            Err(failure) => {
                pending.retain(|p| p.offset != row.offset);
                undone(reply, failure.to_string());
                continue;
            }
        };
        let Conn {
            client,
            insert,
            insert_run,
            delete_unhandled,
            probe,
        } = &mut *conn;
        let opened = async {
            let tx = client.transaction().await?;
            let fresh = open_run_transaction(&tx, insert_run, &inbox.group, &pending).await?;
            Ok::<_, tokio_postgres::Error>((tx, fresh))
        };
        let (tx, mut fresh) = match opened.await {
            Ok(opened) => opened,
            Err(e) => {
                pending.retain(|p| p.offset != row.offset);
                undone(
                    reply,
                    format!(
                        "PostgreSQL inbox: begin the run's transaction and insert its rows: {}",
                        pg_message(&e)
                    ),
                );
                continue;
            }
        };
        // The rows this transaction inserted: a record whose row is among them but taken is a copy of an event
        // handled earlier in it, a duplicate only if the transaction commits.
        let mut inserted = fresh.clone();
        let mut members = 0usize;
        loop {
            let fresh_row = match pending.iter().position(|p| p.offset == row.offset) {
                Some(at) => {
                    pending.remove(at);
                    Ok(fresh.remove(&row.event_id))
                }
                // Not a member named when the run was opened: its row on its own.
                None => tx
                    .execute(
                        &*insert,
                        &[
                            &inbox.group,
                            &row.event_id,
                            &row.event_type,
                            &row.topic,
                            &row.partition,
                            &row.offset,
                        ],
                    )
                    .await
                    .map(|n| {
                        if n == 1 {
                            inserted.insert(row.event_id);
                        }
                        n == 1
                    }),
            };
            let failed = match fresh_row {
                Ok(false) => {
                    if inserted.contains(&row.event_id) {
                        lock(&book).handled.insert(row.offset, number);
                    }
                    let _ = reply.send(Ok(Outcome::Duplicate { method }));
                    None
                }
                Ok(true) => match job(&tx).await {
                    Ok(()) => {
                        members += 1;
                        lock(&book).handled.insert(row.offset, number);
                        let _ = reply.send(Ok(Outcome::Handled));
                        None
                    }
                    Err(e) => Some((e.to_string(), reply)),
                },
                Err(e) => Some((
                    format!("PostgreSQL inbox: insert: {}", pg_message(&e)),
                    reply,
                )),
            };
            if let Some((why, reply)) = failed {
                // The transaction may hold half of this record's effect: nothing of it is kept.
                let _ = tx.rollback().await;
                lock(&book).ended.insert(number, false);
                poisoned |= members > 0;
                // The connection back in the pool before the answer: the driver may need one at once.
                drop(conn);
                undone(reply, why);
                continue 'transactions;
            }
            // The next record of the run, or the commit.
            match commands.recv().await {
                None => {
                    let _ = tx.rollback().await;
                    return;
                }
                Some(Command::Handle {
                    row: r,
                    job: j,
                    reply: a,
                }) => (row, job, reply) = (r, j, a),
                Some(Command::Commit { reply }) => {
                    let committed = if members == 0 {
                        let _ = tx.rollback().await;
                        true
                    } else {
                        // The rows of the members not handled yet are not theirs to keep: only a handled record's
                        // row may commit.
                        let unhandled: Vec<Uuid> = fresh.drain().collect();
                        let deleted = unhandled.is_empty()
                            || tx
                                .execute(&*delete_unhandled, &[&inbox.group, &unhandled])
                                .await
                                .is_ok();
                        if deleted {
                            commit_run(tx, probe, &inbox.group, members).await
                        } else {
                            let _ = tx.rollback().await;
                            false
                        }
                    };
                    lock(&book).ended.insert(number, committed);
                    poisoned |= !committed;
                    drop(conn);
                    let _ = reply.send(());
                    continue 'transactions;
                }
            }
        }
    }
}

/// How long a run's transaction may sit idle (between its handlers, or while one of them works outside it) before
/// the server ends its session: a handler that waits on another connection for a row lock the run holds would wait
/// forever otherwise. The run is then lost and its records processed again, alone.
pub const RUN_IDLE_TIMEOUT: &str = "60s";

/// Bounds the run's idle time ([`RUN_IDLE_TIMEOUT`]) and inserts the inbox rows of `rows` in one statement; returns
/// the event ids it inserted.
async fn open_run_transaction(
    tx: &Transaction<'_>,
    statement: &tokio_postgres::Statement,
    group: &str,
    rows: &[InboxRow],
) -> Result<std::collections::HashSet<Uuid>, tokio_postgres::Error> {
    tx.batch_execute(&format!(
        "SET LOCAL idle_in_transaction_session_timeout = '{RUN_IDLE_TIMEOUT}'"
    ))
    .await?;
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
    let types: Vec<&str> = rows.iter().map(|r| r.event_type).collect();
    let topics: Vec<&str> = rows.iter().map(|r| r.topic.as_str()).collect();
    let partitions: Vec<i32> = rows.iter().map(|r| r.partition).collect();
    let offsets: Vec<i64> = rows.iter().map(|r| r.offset).collect();
    Ok(tx
        .query(
            statement,
            &[&group, &ids, &types, &topics, &partitions, &offsets],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Commits a run's transaction, checking first that no statement in it failed: PostgreSQL answers the COMMIT of an
/// aborted transaction with a rollback and no error, and a handler that swallowed a failed statement would lose the
/// run's effects while they counted as handled. False when nothing was committed (or the connection was lost at the
/// commit, when it may have been: the records processed again then find their inbox rows).
async fn commit_run(
    tx: Transaction<'_>,
    probe: &tokio_postgres::Statement,
    group: &str,
    members: usize,
) -> bool {
    if let Err(e) = tx.query(probe, &[]).await {
        tracing::warn!(group, members, error = %pg_message(&e), "inbox run not committed: a statement of its transaction had failed; its records are processed again, alone");
        let _ = tx.rollback().await;
        return false;
    }
    match tx.commit().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(group, members, error = %pg_message(&e), "inbox run's commit failed; its records are processed again, alone");
            false
        }
    }
}
