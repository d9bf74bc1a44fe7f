//! The PostgreSQL inbox: exactly-once effects. The handler runs inside a transaction that first inserts
//! (consumer group, event id) into `hule_inbox`; the effect and the dedup record commit together or not at all, so
//! a redelivery after a crash either finds the row (duplicate, skipped) or finds neither row nor effect.
//!
//! A connection that the server closed (a restart, a failover, an idle timeout) is replaced on the next call: that
//! call's record gets `Unavailable` only if the server cannot be reached yet, and the driver tries it again.
//!
//! **Batched runs.** When the driver hands the records waiting in a partition's queue to `prepare` together, the
//! inbox handles them in one transaction on one connection ([`Run`]): per record its inbox insert and its handler,
//! and one commit for the run when the driver finishes the records that reached their outcomes — one durable commit
//! per run instead of one per record. A record's outcome (`Handled`) is therefore durable only once `finish` has
//! committed, which is when the driver counts its offset done. When anything inside the run fails (a handler's
//! error, a statement, the connection), the transaction is rolled back whole: the failing record gets
//! [`Failure::Undone`], `finish` names the run's records handled before it ([`crate::Finished::Redo`]), and the
//! driver processes those again, then the failing one, each alone in a transaction of its own, where its own
//! failure gets its own outcome (retried, dead-lettered). No savepoints: a subtransaction per record would cost two
//! round trips each and, past 64 per transaction, slow every snapshot on the server. A record routed elsewhere in
//! the middle of a run (a plain handler, another inbox) commits the run before it, so effects keep the partition's
//! order even when a commit fails. A record the driver abandons (its partition revoked) was never handled: nothing
//! of it is in the transaction. A handler may run more than once for one record (as with retries); its
//! transactional effect commits once.

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
use crate::router::{ErasedHandler, HandlerError, Router, TopicChoice};
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
        }))
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
struct InboxRow {
    event_id: Uuid,
    event_type: &'static str,
    topic: String,
    partition: i32,
    offset: i64,
}

impl InboxRow {
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
    /// A transaction holding handled records was rolled back and `finish` has not yet named them for redoing.
    unreported_loss: bool,
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
    /// run handled so far is committed or already named for processing again.
    pub(crate) async fn commit(&self) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Commit { reply }).is_ok() {
            let _ = answer.await;
        }
        !self.book().unreported_loss
    }

    /// Whether the record at `offset`, handled in this run, lost its effect to a rollback. Call after
    /// [`Run::commit`].
    pub(crate) fn lost(&self, offset: i64) -> bool {
        let book = self.book();
        book.handled
            .get(&offset)
            .is_some_and(|t| book.ended.get(t) != Some(&true))
    }

    /// The lost records have been named for processing again.
    pub(crate) fn reported(&self) {
        self.book().unreported_loss = false;
    }
}

impl PgInbox {
    /// A run of records handled in shared transactions, its task started.
    pub(crate) fn open_run(self: &Arc<Self>) -> Arc<Run> {
        let (commands, rx) = mpsc::unbounded_channel();
        let book = Arc::new(std::sync::Mutex::new(Book::default()));
        tokio::spawn(drive_run(self.clone(), rx, book.clone()));
        Arc::new(Run { commands, book })
    }
}

/// The run's task: a transaction opened by the first record after each commit, each record's row and handler in
/// it in turn, committed on [`Command::Commit`]; rolled back whole at the first failure (the failing record gets
/// [`Failure::Undone`]) or when the run is dropped.
async fn drive_run(
    inbox: Arc<PgInbox>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    book: Arc<std::sync::Mutex<Book>>,
) {
    let method = "postgres_inbox";
    let mut number = 0u64;
    'transactions: while let Some(command) = commands.recv().await {
        let (mut row, mut job, mut reply) = match command {
            Command::Commit { reply } => {
                let _ = reply.send(());
                continue;
            }
            Command::Handle { row, job, reply } => (row, job, reply),
        };
        number += 1;
        let mut conn = match inbox.acquire().await {
            Ok(conn) => conn,
            Err(failure) => {
                let _ = reply.send(Err(Failure::Undone(failure.to_string())));
                continue;
            }
        };
        let Conn {
            client,
            insert,
            probe,
        } = &mut *conn;
        let tx = match client.transaction().await {
            Ok(tx) => tx,
            Err(e) => {
                let _ = reply.send(Err(Failure::Undone(format!(
                    "PostgreSQL inbox: begin: {}",
                    hule_secrets::error_chain(&e)
                ))));
                continue;
            }
        };
        let mut members = 0usize;
        loop {
            let inserted = tx
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
                .await;
            let failed = match inserted {
                Ok(0) => {
                    let _ = reply.send(Ok(Outcome::Duplicate { method }));
                    None
                }
                Ok(_) => match job(&tx).await {
                    Ok(()) => {
                        members += 1;
                        lock(&book).handled.insert(row.offset, number);
                        let _ = reply.send(Ok(Outcome::Handled));
                        None
                    }
                    Err(e) => Some((e.to_string(), reply)),
                },
                Err(e) => Some((
                    format!(
                        "PostgreSQL inbox: insert: {}",
                        hule_secrets::error_chain(&e)
                    ),
                    reply,
                )),
            };
            if let Some((why, reply)) = failed {
                // The transaction may hold half of this record's effect: nothing of it is kept.
                let _ = tx.rollback().await;
                {
                    let mut b = lock(&book);
                    b.ended.insert(number, false);
                    b.unreported_loss |= members > 0;
                }
                let _ = reply.send(Err(Failure::Undone(why)));
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
                        commit_run(tx, probe, &inbox.group, members).await
                    };
                    {
                        let mut b = lock(&book);
                        b.ended.insert(number, committed);
                        b.unreported_loss |= !committed;
                    }
                    let _ = reply.send(());
                    continue 'transactions;
                }
            }
        }
    }
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
        tracing::warn!(group, members, error = %hule_secrets::error_chain(&e), "inbox run not committed: a statement of its transaction had failed; its records are processed again, alone");
        let _ = tx.rollback().await;
        return false;
    }
    match tx.commit().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(group, members, error = %hule_secrets::error_chain(&e), "inbox run's commit failed; its records are processed again, alone");
            false
        }
    }
}
