//! A service's own PostgreSQL connection that keeps the outbox's one-row insert prepared: [`WriterConnection`].
//!
//! [`crate::Outbox::begin`] on a plain `tokio_postgres::Client` sends its events through `hule_outbox_enqueue`, a
//! PL/pgSQL function whose plan the server keeps per session, but whose call (the rows as arrays, `unnest`, the
//! function's own statement through SPI) costs the server more than the row itself. A connection the outbox may
//! keep a statement on does better: [`crate::Outbox::begin_on`] prepares, once per connection, a plain
//! `INSERT … VALUES` of one row that also takes the wake lock (and notifies a sleeping relay) in its `RETURNING`,
//! and a transaction that publishes one event (most do) sends only its `Bind` and `Execute` with the `COMMIT`.
//! A transaction that publishes several events still makes one call of the function, which keeps their order.
//!
//! Measured with pgbench on this project's machine (8 clients, a business insert per transaction, the outbox
//! statement pipelined with the `COMMIT`, every statement prepared, four interleaved rounds): the function call
//! 0.69 of the transaction without the outbox, this statement 0.77–0.84.
//!
//! The wake protocol is the function's (see [`crate::pg`]): the lock is taken shared on the key of the outbox's
//! schema, and `NOTIFY hule_outbox` is sent only when that fails, that is while the relay sleeps.
//!
//! A connection is tied to one outbox: at its first [`crate::Outbox::begin_on`] it looks up the schema of the
//! `event_outbox` its `search_path` finds then (a table further down the path than the session's first schema
//! still gets its own schema), and both its statements name that schema — the prepared insert, and the function's
//! call for several events — with the wake lock's key of that schema. A `SET search_path` afterwards (or a
//! `SET LOCAL` in one transaction) does not move it, so its rows, one event or several, always go to the outbox
//! whose relay its wake-ups reach. To write to another outbox, wrap another connection.
//!
//! The statement is a named prepared statement of the session. A session that loses it (`DEALLOCATE ALL`,
//! `DISCARD ALL`) fails the next commit that uses it (SQLSTATE 26000; the transaction rolls back and `commit`
//! returns the error), and the connection prepares it again at its next `begin_on`, into the same outbox (a
//! commit cancelled before that error came back leaves one more commit to find it). Behind PgBouncer in
//! transaction mode, where a session's prepared statements do not follow it from one transaction to the next, use
//! [`crate::Outbox::begin`] on a plain client, or PgBouncer 1.21 or later with `max_prepared_statements` set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::error::{Result, StoreError};
use crate::prepare::NewRow;

/// The one-row insert, `{outbox}` replaced by the outbox's schema (quoted). Everything in it is named with its
/// schema, so nothing in the writer's `search_path` can stand in for any of it.
const INSERT_ONE: &str =
    "INSERT INTO {outbox}.event_outbox (id, aggregate_id, aggregate_type, event_type, event_data, \
    event_key, topic, event_id, headers) \
    VALUES ($1, $2, $3, $4, $5::pg_catalog.json, $6, $7, $8, $9::pg_catalog.json) \
    RETURNING CASE WHEN pg_catalog.pg_try_advisory_xact_lock_shared($10, $11) THEN NULL \
    ELSE pg_catalog.pg_notify('hule_outbox', '') END";

/// The schema of the `event_outbox` the session finds (quoted) and the wake lock's second key for it: the hash of the
/// schema's name, as the relay's (`hashtext(current_schema())` in its own session).
const OUTBOX_SCHEMA: &str =
    "SELECT pg_catalog.quote_ident(n.nspname), pg_catalog.hashtext(n.nspname::text) \
    FROM pg_catalog.pg_class c \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.oid = pg_catalog.to_regclass('event_outbox')";

/// The outbox a connection is tied to: its schema (quoted), the wake lock's key for it, and the function's call in
/// it for a transaction of several events. Found once, at the connection's first transaction.
struct Target {
    schema: String,
    wake_key: i32,
    enqueue: String,
}

impl Target {
    /// The outbox the session's `search_path` finds now.
    async fn find(client: &Client) -> Result<Self> {
        let row = client
            .query_opt(OUTBOX_SCHEMA, &[])
            .await
            .map_err(|e| StoreError::db("find the outbox", e))?
            .ok_or_else(|| {
                StoreError::Config(
                    "this connection's search_path finds no event_outbox table: the relay makes it on its first \
                     start (hule relay), in the schema of its own connection"
                        .into(),
                )
            })?;
        let schema: String = row
            .try_get(0)
            .map_err(|e| StoreError::db("find the outbox", e))?;
        Ok(Target {
            wake_key: row
                .try_get(1)
                .map_err(|e| StoreError::db("find the outbox", e))?,
            enqueue: crate::pg::enqueue_in(&schema),
            schema,
        })
    }
}

/// The prepared insert into its connection's outbox.
#[derive(Clone)]
pub(crate) struct PreparedInsert {
    statement: Statement,
    target: Arc<Target>,
    /// Set when the server no longer knows the statement (SQLSTATE 26000): the connection prepares it again.
    lost: Arc<AtomicBool>,
}

impl PreparedInsert {
    /// Prepares the insert into `target` on `client`: one round trip.
    async fn prepare(client: &Client, target: Arc<Target>) -> Result<Self> {
        let text = Type::TEXT;
        let statement = client
            .prepare_typed(
                &INSERT_ONE.replace("{outbox}", &target.schema),
                &[
                    Type::UUID,
                    text.clone(),
                    text.clone(),
                    text.clone(),
                    text.clone(),
                    text.clone(),
                    text.clone(),
                    Type::UUID,
                    text,
                    Type::INT4,
                    Type::INT4,
                ],
            )
            .await
            .map_err(|e| StoreError::db("prepare the outbox insert", e))?;
        Ok(PreparedInsert {
            statement,
            target,
            lost: Arc::default(),
        })
    }

    /// The call of `hule_outbox_enqueue` in the same outbox, for a transaction of several events.
    pub(crate) fn enqueue(&self) -> &str {
        &self.target.enqueue
    }

    /// Inserts `row`. Its first poll sends the statement (nothing before it awaits), as
    /// [`crate::pg::enqueue_on`]'s does. A server that no longer knows the statement marks it lost.
    pub(crate) async fn insert(
        &self,
        client: &Client,
        row: &NewRow,
    ) -> std::result::Result<(), tokio_postgres::Error> {
        client
            .execute(
                &self.statement,
                &[
                    &row.id,
                    &row.aggregate_id,
                    &row.aggregate_type,
                    &row.event_type,
                    &row.event_data,
                    &row.event_key,
                    &row.topic,
                    &row.event_id,
                    &row.headers,
                    &crate::pg::WAKE_LOCK,
                    &self.target.wake_key,
                ],
            )
            .await
            .map(drop)
            .inspect_err(|e| {
                if e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME) {
                    self.lost.store(true, Ordering::Relaxed);
                }
            })
    }
}

/// A service's own connection, on which [`crate::Outbox::begin_on`] keeps the outbox's insert prepared (see the
/// module's docs). It dereferences to the `tokio_postgres::Client` for the service's other statements.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// # let payload: hule_contracts::payloads::SpellcheckPhaseCompletedV1 = todo!();
/// let client = hule_pg::connect("postgres://spellchecker@db/app").await?;
/// let mut conn = hule_outbox::WriterConnection::new(client);
/// let outbox = hule_outbox::Outbox::new("spellchecker_service");
/// let mut tx = outbox.begin_on(&mut conn).await?; // prepares on the connection's first use
/// tx.execute("UPDATE essays SET state = 'checked' WHERE id = $1", &[&"essay-1"]).await?;
/// tx.publish(payload, uuid::Uuid::new_v4())?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct WriterConnection {
    client: Client,
    /// The outbox, found at the first transaction and kept (a statement prepared again goes to the same one).
    target: Option<Arc<Target>>,
    insert: Option<PreparedInsert>,
}

impl WriterConnection {
    /// Wraps `client`; nothing is prepared before its first [`crate::Outbox::begin_on`].
    pub fn new(client: Client) -> Self {
        WriterConnection {
            client,
            target: None,
            insert: None,
        }
    }

    /// The client back (its prepared statement is closed when the last handle on it drops).
    pub fn into_inner(self) -> Client {
        self.client
    }

    /// The client and the prepared insert, preparing it first when this connection has not yet (finding its
    /// outbox then), or when the server lost it (into the outbox found before, whatever the path says now).
    pub(crate) async fn prepared(&mut self) -> Result<(&mut Client, PreparedInsert)> {
        let insert = match &self.insert {
            Some(insert) if !insert.lost.load(Ordering::Relaxed) => insert.clone(),
            _ => {
                let target = match &self.target {
                    Some(target) => target.clone(),
                    None => {
                        let target = Arc::new(Target::find(&self.client).await?);
                        self.target = Some(target.clone());
                        target
                    }
                };
                let insert = PreparedInsert::prepare(&self.client, target).await?;
                self.insert = Some(insert.clone());
                insert
            }
        };
        Ok((&mut self.client, insert))
    }
}

impl std::ops::Deref for WriterConnection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for WriterConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}
