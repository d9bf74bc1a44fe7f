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
//! The wake protocol is the function's (see [`crate::pg`]): the lock is taken shared on the key of the schema the
//! row went into, and `NOTIFY hule_outbox` is sent only when that fails, that is while the relay sleeps. The key is
//! looked up once, with the statement, from the `event_outbox` this connection's `search_path` finds then (a table
//! further down the path than the session's first schema still gets its own schema's key). A connection whose
//! `search_path` is changed afterwards to reach another outbox should be wrapped anew.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::error::{Result, StoreError};
use crate::prepare::NewRow;

/// The one-row insert. Everything it calls is named with its schema, so nothing earlier in the writer's
/// `search_path` can stand in for it; only `event_outbox` is found through the path, as the function is.
const INSERT_ONE: &str =
    "INSERT INTO event_outbox (id, aggregate_id, aggregate_type, event_type, event_data, \
    event_key, topic, event_id, headers) \
    VALUES ($1, $2, $3, $4, $5::pg_catalog.json, $6, $7, $8, $9::pg_catalog.json) \
    RETURNING CASE WHEN pg_catalog.pg_try_advisory_xact_lock_shared($10, $11) THEN NULL \
    ELSE pg_catalog.pg_notify('hule_outbox', '') END";

/// The wake lock's second key for the `event_outbox` the session finds: the hash of its schema's name, as the
/// relay's (`hashtext(current_schema())` in its own session).
const WAKE_KEY: &str = "SELECT pg_catalog.hashtext(n.nspname::text) FROM pg_catalog.pg_class c \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.oid = pg_catalog.to_regclass('event_outbox')";

/// The prepared insert and the wake lock's key of the table it fills.
#[derive(Clone)]
pub(crate) struct PreparedInsert {
    statement: Statement,
    wake_key: i32,
}

impl PreparedInsert {
    /// Prepares the insert on `client` and looks up its wake key: two round trips, once per connection.
    async fn prepare(client: &Client) -> Result<Self> {
        let wake_key: i32 = match client
            .query_opt(WAKE_KEY, &[])
            .await
            .map_err(|e| StoreError::db("outbox wake key", e))?
        {
            Some(row) => row
                .try_get(0)
                .map_err(|e| StoreError::db("outbox wake key", e))?,
            None => {
                return Err(StoreError::Config(
                    "this connection's search_path finds no event_outbox table: the relay makes it on its first \
                     start (hule relay), in the schema of its own connection"
                        .into(),
                ))
            }
        };
        let text = Type::TEXT;
        let statement = client
            .prepare_typed(
                INSERT_ONE,
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
            wake_key,
        })
    }

    /// Inserts `row`. Its first poll sends the statement (nothing before it awaits), as
    /// [`crate::pg::enqueue_on`]'s does.
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
                    &self.wake_key,
                ],
            )
            .await
            .map(drop)
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
    insert: Option<PreparedInsert>,
}

impl WriterConnection {
    /// Wraps `client`; nothing is prepared before its first [`crate::Outbox::begin_on`].
    pub fn new(client: Client) -> Self {
        WriterConnection {
            client,
            insert: None,
        }
    }

    /// The client back (its prepared statement is closed when the last handle on it drops).
    pub fn into_inner(self) -> Client {
        self.client
    }

    /// Whether the outbox's insert is prepared on this connection.
    pub fn is_prepared(&self) -> bool {
        self.insert.is_some()
    }

    /// The client and the prepared insert, preparing it first when this connection has not yet.
    pub(crate) async fn prepared(&mut self) -> Result<(&mut Client, PreparedInsert)> {
        let insert = match &self.insert {
            Some(insert) => insert.clone(),
            None => {
                let insert = PreparedInsert::prepare(&self.client).await?;
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
