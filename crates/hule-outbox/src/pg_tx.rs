//! A PostgreSQL transaction that writes its events with its `COMMIT`: [`Outbox::begin`] opens it, the service runs
//! its own statements on it as on any `tokio_postgres::Transaction` (it dereferences to one), each
//! [`publish`](PublishingTransaction::publish) prepares its event's rows without I/O, and
//! [`commit`](PublishingTransaction::commit) sends the outbox statement (on a plain client every staged row in one
//! call of `hule_outbox_enqueue`) and the `COMMIT` together, before reading either answer. The outbox then costs the
//! transaction no round trip of its own, however many events it publishes; [`Outbox::publish`] on a transaction of
//! the caller's costs one per call. [`Outbox::begin_on`] opens the same transaction on a
//! [`WriterConnection`], which keeps a plain one-row insert prepared: a commit that writes one event sends that
//! instead of the function's call, and costs the server less (see [`crate::pg_writer`]).
//!
//! The guarantee is unchanged: the events are stored if and only if the service's writes are. When the outbox
//! statement fails, PostgreSQL answers the `COMMIT` that follows it by rolling the whole transaction back, and
//! `commit` returns the statement's error. An error found before the statement is sent (a value that cannot be
//! encoded) returns before the `COMMIT` is sent, and the transaction is rolled back as it is dropped. A connection
//! lost once both are sent is [`StoreError::CommitOutcomeUnknown`]: as after any `COMMIT` whose answer never came,
//! the transaction may have committed. A `commit` cancelled (its future dropped) once both are sent leaves them to
//! the server, which commits or rolls back as it would have.
//!
//! A statement of yours that failed, its error ignored, has already aborted the transaction: `commit` then fails on
//! the outbox statement (SQLSTATE 25P02, "current transaction is aborted"), and nothing is stored; with no event
//! staged, the server answers the `COMMIT` by rolling back and tokio-postgres reports success, as its own
//! `Transaction::commit` does.
//!
//! It begins with the session's defaults; another isolation level or a read-only transaction is set by the first
//! statement (`tx.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")`).
//!
//! Why a transaction of the outbox's own rather than the caller's `tokio_postgres::Transaction`: a savepoint has
//! the same type, and a `COMMIT` sent on one would end the outer transaction. This one is always begun here, at the
//! top level.
//!
//! ```no_run
//! # async fn f(client: &mut tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
//! # let payload: SpellcheckPhaseCompletedV1 = todo!();
//! let outbox = hule_outbox::Outbox::new("spellchecker_service");
//! let mut tx = outbox.begin(client).await?;
//! tx.execute("UPDATE essays SET state = 'checked' WHERE id = $1", &[&"essay-1"]).await?;
//! let event_id = tx.publish(payload, uuid::Uuid::new_v4())?;
//! tx.commit().await?; // the row above, the event and the COMMIT: one round trip for the last two
//! # Ok(()) }
//! ```

use std::future::Future;
use std::task::Poll;

use hule_contracts::{CorrelationId, Payload};
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::pg_writer::{PreparedInsert, WriterConnection};
use crate::prepare::NewRow;
use crate::publish::{Outbox, PublishOptions};
use futures::future::Either;

/// Whether PostgreSQL refused a statement with an error that ended the transaction without committing it (severity
/// ERROR; a PANIC or FATAL may come after the commit was written, and a lost connection says nothing).
fn refused(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|d| d.parsed_severity() == Some(tokio_postgres::error::Severity::Error))
}

/// A `COMMIT`'s error: refused by the server (nothing committed), or anything else (outcome unknown).
fn commit_error(e: tokio_postgres::Error) -> StoreError {
    if refused(&e) {
        StoreError::db("commit", e)
    } else {
        StoreError::CommitOutcomeUnknown {
            source: Box::new(e),
        }
    }
}

/// The outcome of the outbox statement and the `COMMIT` sent together.
fn outcome(
    enqueued: std::result::Result<(), tokio_postgres::Error>,
    committed: std::result::Result<(), tokio_postgres::Error>,
) -> Result<()> {
    match (enqueued, committed) {
        (Ok(()), Ok(())) => Ok(()),
        // The server refused the statement, so it answered the COMMIT by rolling back.
        (Err(e), _) if refused(&e) => Err(StoreError::db("enqueue", e)),
        (_, Err(e)) => Err(commit_error(e)),
        // The statement's answer was lost or unreadable, and the COMMIT's was not an error: the transaction may
        // have committed.
        (Err(e), Ok(())) => Err(StoreError::CommitOutcomeUnknown {
            source: Box::new(e),
        }),
    }
}

/// Holds the transaction while `commit` runs. Until the `COMMIT` is queued, dropping it (an error, a panic, the
/// future cancelled) drops the transaction, which rolls back. Once it is queued, the transaction is over whatever
/// happens next, and its drop would queue a second ROLLBACK (a warning in the server's log): it is forgotten instead.
/// It holds nothing else (a top-level transaction, begun by `Outbox::begin`).
struct Committing<'c> {
    tx: Option<Transaction<'c>>,
    sent: std::cell::Cell<bool>,
}

impl<'c> Committing<'c> {
    fn transaction(&self) -> &Transaction<'c> {
        self.tx
            .as_ref()
            .expect("the transaction is held until into_transaction or drop")
    }

    /// The transaction back, before the `COMMIT` was sent.
    fn into_transaction(mut self) -> Transaction<'c> {
        self.tx
            .take()
            .expect("the transaction is held until into_transaction or drop")
    }
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        if self.sent.get() {
            if let Some(tx) = self.tx.take() {
                std::mem::forget(tx);
            }
        }
    }
}

/// A top-level transaction whose published events are written with its `COMMIT` (see the module's docs). Dropped
/// without [`commit`](Self::commit), it rolls back and nothing is published.
pub struct PublishingTransaction<'c> {
    tx: Transaction<'c>,
    outbox: Outbox,
    rows: Vec<NewRow>,
    /// The connection's prepared one-row insert, when begun on a [`WriterConnection`].
    insert: Option<PreparedInsert>,
}

impl Outbox {
    /// Begins a transaction on `client` whose events this handle publishes with its `COMMIT`, in the same round
    /// trip (see [`PublishingTransaction`]).
    pub async fn begin<'c>(&self, client: &'c mut Client) -> Result<PublishingTransaction<'c>> {
        let tx = client
            .transaction()
            .await
            .map_err(|e| StoreError::db("begin", e))?;
        Ok(PublishingTransaction {
            tx,
            outbox: self.clone(),
            rows: Vec::new(),
            insert: None,
        })
    }

    /// [`begin`](Self::begin) on a [`WriterConnection`]: a commit that writes one event sends the connection's
    /// prepared insert with the `COMMIT` (prepared on the connection's first use: two round trips, once), several
    /// events one call of the function as `begin`'s do. Fails, and begins nothing, when the insert cannot be
    /// prepared (no `event_outbox` on the connection's `search_path`).
    pub async fn begin_on<'c>(
        &self,
        conn: &'c mut WriterConnection,
    ) -> Result<PublishingTransaction<'c>> {
        let (client, insert) = conn.prepared().await?;
        let mut tx = self.begin(client).await?;
        tx.insert = Some(insert);
        Ok(tx)
    }
}

impl<'c> std::ops::Deref for PublishingTransaction<'c> {
    type Target = Transaction<'c>;

    /// The transaction, for the service's own statements.
    fn deref(&self) -> &Transaction<'c> {
        &self.tx
    }
}

impl PublishingTransaction<'_> {
    /// Publishes `payload` under `correlation_id` when this transaction commits (as [`Outbox::publish`]: a new
    /// event id, the payload's topic and key, the standard headers, the size check, now); returns the event's id.
    /// Nothing is sent before [`commit`](Self::commit).
    pub fn publish<P: Payload>(
        &mut self,
        payload: P,
        correlation_id: impl Into<CorrelationId>,
    ) -> Result<Uuid> {
        self.publish_with(payload, correlation_id, &PublishOptions::default())
    }

    /// [`publish`](Self::publish) with options.
    pub fn publish_with<P: Payload>(
        &mut self,
        payload: P,
        correlation_id: impl Into<CorrelationId>,
        opts: &PublishOptions,
    ) -> Result<Uuid> {
        let (id, rows) = self.outbox.rows(payload, correlation_id.into(), opts)?;
        self.rows.extend(rows);
        Ok(id)
    }

    /// Adds rows prepared elsewhere ([`crate::prepare::prepare_decoded`] for envelopes decoded at run time), to be
    /// written with the commit after those staged before them.
    pub fn stage(&mut self, rows: impl IntoIterator<Item = NewRow>) {
        self.rows.extend(rows);
    }

    /// How many outbox rows the commit will write.
    pub fn staged(&self) -> usize {
        self.rows.len()
    }

    /// Writes the staged rows and commits, the outbox statement and the `COMMIT` sent together. On
    /// [`StoreError::Database`] nothing was committed (the outbox statement or the `COMMIT` failed, and the server
    /// rolled the transaction back); on [`StoreError::CommitOutcomeUnknown`] the connection was lost after the
    /// `COMMIT` was sent, and (as for any commit) the transaction may have committed. It waits as long as any
    /// statement on the client does: with [`hule_pg::connect`]'s keepalives and TCP user timeout, a half-open
    /// connection ends in about 20 s (a client made without them may wait for the operating system's TCP
    /// timeouts); a live server that is slow to commit (a lock, a synchronous standby) is waited for.
    pub async fn commit(self) -> Result<()> {
        let PublishingTransaction {
            tx, rows, insert, ..
        } = self;
        if rows.is_empty() {
            return tx.commit().await.map_err(commit_error);
        }
        let guard = Committing {
            tx: Some(tx),
            sent: std::cell::Cell::new(false),
        };
        let first = {
            let client = guard.transaction().client();
            let mut enqueue = std::pin::pin!(match (&insert, rows.as_slice()) {
                (Some(insert), [row]) => Either::Left(insert.insert(client, row)),
                (Some(insert), _) =>
                    Either::Right(crate::pg::enqueue_on(client, insert.enqueue(), &rows)),
                (None, _) =>
                    Either::Right(crate::pg::enqueue_on(client, crate::pg::ENQUEUE, &rows)),
            });
            // The first poll sends the statement: tokio-postgres queues a request's messages on the connection
            // before it awaits the answer (`tests/publishing_tx.rs` fails if it did not). Only once it is queued is
            // the COMMIT queued behind it, in the same poll, so the server runs them in that order.
            match std::future::poll_fn(|cx| Poll::Ready(enqueue.as_mut().poll(cx))).await {
                Poll::Ready(done) => done,
                Poll::Pending => {
                    guard.sent.set(true);
                    let (enqueued, committed) =
                        tokio::join!(enqueue, client.batch_execute("COMMIT"));
                    return outcome(enqueued, committed);
                }
            }
        };
        // Ended before the COMMIT was sent (an error before the statement was, or an answer within the first
        // poll): the transaction is still open, and rolls back as it drops.
        let tx = guard.into_transaction();
        match first {
            Err(e) => Err(StoreError::db("enqueue", e)),
            Ok(()) => tx.commit().await.map_err(commit_error),
        }
    }

    /// Rolls back: nothing of the transaction is stored and nothing is published.
    pub async fn rollback(self) -> Result<()> {
        self.tx
            .rollback()
            .await
            .map_err(|e| StoreError::db("rollback", e))
    }
}
