//! The PostgreSQL backend. Writers enqueue inside their own `tokio_postgres::Transaction`, and send
//! `NOTIFY hule_outbox` (delivered on commit) only while the relay sleeps; the relay LISTENs and polls only as a
//! fallback. The wake protocol is [`ENQUEUE`]'s and [`PgOutbox`]'s `idle`.
//!
//! Exclusivity: one relay at a time holds a session advisory lock keyed by the outbox's schema, taken by
//! [`crate::relay::run_relay`] itself ([`OutboxStore::try_lead`]); other instances wait as hot standbys and take
//! over when the leader's connection ends (the server releases the lock with the session). That lock is the only
//! guard: the claim is a plain `SELECT` outside any transaction, so it locks nothing, and every claim runs on the
//! connection that holds the lock — a leader whose connection is gone can no longer claim anything. Completions
//! (deleting or marking what was delivered) run on a second session while the next claim runs; a leader deposed
//! meanwhile may still complete the rows it delivered itself, which loses nothing and sends nothing twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Row, Statement, Transaction};

use crate::error::{Result, StoreError};
use crate::model::{from_row, Claimed, Gauges, Status};
use crate::prepare::NewRow;
use crate::store::{
    Completion, FailedAttempt, FailurePolicy, OutboxStore, RetryTarget, CLAIM_BYTES,
};

/// The LISTEN/NOTIFY channel.
pub const CHANNEL: &str = "hule_outbox";
/// First key of the leadership lock ("hule"); the second is a hash of the outbox's schema, so the outboxes of
/// several services in one database each have their own relay.
const LEADER_LOCK: i32 = 0x6875_6c65;

/// Creates the original's `event_outbox` table when absent, then adds what the relay needs. Idempotent, and
/// safe to run concurrently. Rows already in a table made by the original are numbered in `created_at` order.
pub const MIGRATION: &str = "
SELECT pg_advisory_xact_lock(7236284817);
CREATE TABLE IF NOT EXISTS event_outbox (
    id uuid PRIMARY KEY,
    aggregate_id varchar(255) NOT NULL,
    aggregate_type varchar(100) NOT NULL,
    event_type varchar(255) NOT NULL,
    event_data json NOT NULL,
    event_key varchar(255),
    topic varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    retry_count integer NOT NULL DEFAULT 0,
    last_error text
);
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'event_outbox' AND column_name = 'seq') THEN
        ALTER TABLE event_outbox ADD COLUMN seq bigint;
        CREATE SEQUENCE IF NOT EXISTS event_outbox_seq_seq OWNED BY event_outbox.seq;
        WITH o AS (SELECT id, row_number() OVER (ORDER BY created_at, id) AS rn FROM event_outbox)
        UPDATE event_outbox e SET seq = o.rn FROM o WHERE e.id = o.id;
        PERFORM setval('event_outbox_seq_seq', COALESCE((SELECT max(seq) FROM event_outbox), 0) + 1, false);
        ALTER TABLE event_outbox ALTER COLUMN seq SET DEFAULT nextval('event_outbox_seq_seq');
        ALTER TABLE event_outbox ALTER COLUMN seq SET NOT NULL;
    END IF;
END $$;
ALTER TABLE event_outbox ADD COLUMN IF NOT EXISTS event_id uuid;
ALTER TABLE event_outbox ADD COLUMN IF NOT EXISTS headers json;
ALTER TABLE event_outbox ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz NOT NULL DEFAULT '-infinity';
ALTER TABLE event_outbox ADD COLUMN IF NOT EXISTS parked_at timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS hule_outbox_seq ON event_outbox (seq);
CREATE INDEX IF NOT EXISTS hule_outbox_pending ON event_outbox (seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS hule_outbox_key_pending ON event_outbox (event_key, seq) WHERE published_at IS NULL;
-- Only rows that failed can hold back later rows of their key; this small index makes that check cheap.
CREATE INDEX IF NOT EXISTS hule_outbox_key_failed ON event_outbox (event_key, seq) WHERE published_at IS NULL AND retry_count > 0;
CREATE TABLE IF NOT EXISTS hule_outbox_discarded (
    seq bigint NOT NULL,
    id uuid NOT NULL,
    event_id uuid,
    topic text NOT NULL,
    event_key text,
    event_data text NOT NULL,
    headers text,
    retry_count integer NOT NULL,
    last_error text,
    reason text NOT NULL,
    discarded_at timestamptz NOT NULL DEFAULT now()
);
ANALYZE event_outbox;
-- The writers' insert (see ENQUEUE); PL/pgSQL keeps its plan per session, so each call is planned once per
-- connection (an INSERT from unnest planned on every call cost a third of the writers' throughput). Made with this
-- schema written into it: the table it fills and the wake lock's key are the relay's, whatever the calling
-- writer's search_path says, and its own search_path is pg_catalog only, so nothing earlier in a caller's path can
-- stand in for what it calls.
DO $do$
BEGIN
    EXECUTE format($fmt$
        CREATE OR REPLACE FUNCTION %1$I.hule_outbox_enqueue(ids uuid[], aggregate_ids text[],
            aggregate_types text[], event_types text[], data text[], keys text[], topics text[], event_ids uuid[],
            headers text[], wake integer)
        RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
        BEGIN
            INSERT INTO %1$I.event_outbox (id, aggregate_id, aggregate_type, event_type, event_data, event_key,
                                           topic, event_id, headers)
            SELECT t.id, t.aggregate_id, t.aggregate_type, t.event_type, t.event_data::json, t.event_key, t.topic,
                   t.event_id, t.headers::json
            FROM unnest(ids, aggregate_ids, aggregate_types, event_types, data, keys, topics, event_ids, headers)
                 WITH ORDINALITY AS t(id, aggregate_id, aggregate_type, event_type, event_data, event_key, topic,
                                      event_id, headers, n)
            ORDER BY t.n;
            IF NOT pg_try_advisory_xact_lock_shared(wake, %2$s) THEN
                PERFORM pg_notify('hule_outbox', '');
            END IF;
        END $fn$$fmt$, current_schema(), hashtext(current_schema()));
    EXECUTE format('GRANT EXECUTE ON FUNCTION %I.hule_outbox_enqueue(uuid[], text[], text[], text[], text[], '
                   'text[], text[], uuid[], text[], integer) TO PUBLIC', current_schema());
    EXECUTE format('COMMENT ON FUNCTION %I.hule_outbox_enqueue(uuid[], text[], text[], text[], text[], text[], '
                   'text[], uuid[], text[], integer) IS %L', current_schema(), 'hule outbox schema 3');
END $do$;
";

/// Whether this schema (the session's own, not one further down its search_path) has `event_outbox` and the last
/// object [`MIGRATION`] makes, with a version at least this one's: then [`migrate`] changes nothing. Its `ALTER TABLE`s would otherwise wait for an exclusive lock on
/// `event_outbox` behind every open writer transaction, and every new writer would queue behind them: a relay
/// restarted during one long transaction stalled all writes. Version 3 is version 2's function with its schema
/// written in (an earlier build labelled 2 a function that found its table through the caller's `search_path`).
const MIGRATED: &str = "SELECT COALESCE(substring(obj_description(to_regprocedure(quote_ident(current_schema()) \
    || '.hule_outbox_enqueue(uuid[], text[], text[], text[], text[], text[], text[], uuid[], text[], integer)'), \
    'pg_proc') FROM 'hule outbox schema ([0-9]+)')::int, 0) >= 3 \
    AND to_regclass(quote_ident(current_schema()) || '.event_outbox') IS NOT NULL";

/// A low-level connection for the relay's own store: the client, and the `Notify` its `LISTEN` notifications wake
/// (a relay waits on it for new rows). A service writing its own rows does not need this: connect its client with
/// `hule_pg::connect(url)` (TLS, keepalives and clear errors included) and give its transactions to
/// [`crate::Outbox::publish`]; the relay's store is [`PgOutbox::connect`]. Fails with a message that says which
/// server and how to fix it.
pub async fn connect(url: &str) -> Result<(Client, Arc<Notify>)> {
    let notify = Arc::new(Notify::new());
    let client = connect_waking(url, notify.clone()).await?;
    Ok((client, notify))
}

/// [`connect`], notifications waking `wake` (a reconnection keeps the relay's waker).
async fn connect_waking(url: &str, wake: Arc<Notify>) -> Result<Client> {
    let client = hule_pg::connect_with(url, move |m| {
        if let AsyncMessage::Notification(_) = m {
            wake.notify_one();
        }
    })
    .await
    .map_err(|e| {
        StoreError::Config(format!(
            "{e}; is the server running (scripts/setup.sh starts it) and the URL right \
             (postgres://user@host:port/db[?sslmode=…&sslrootcert=…])?"
        ))
    })?;
    Ok(client)
}

/// The relay session's settings, and its LISTEN when `listen`.
async fn prepare_session(client: &Client, listen: bool) -> Result<()> {
    // The claim must walk `hule_outbox_pending` in `seq` order and stop at its LIMIT, whatever the table's
    // statistics say. With the statistics of an empty table (ANALYZE at migration, and no auto-analyze when
    // autovacuum is off) the planner instead bitmap-scans every pending row and sorts them: 272 ms instead of
    // 1.7 ms per claim of 500 on a 100,000-row backlog (EXPLAIN ANALYZE), so the drain slowed as the backlog
    // grew. This connection only runs the relay's own statements, which never need a sort or a bitmap scan.
    client
        .batch_execute("SET enable_bitmapscan = off; SET enable_sort = off")
        .await
        .map_err(|e| StoreError::db("session settings", e))?;
    if listen {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| StoreError::db("listen", e))?;
    }
    Ok(())
}

/// The URL with any password replaced by `***`, for logs and errors.
pub use hule_pg::redact;

/// Runs the migration.
pub async fn migrate(client: &Client) -> Result<()> {
    let current: bool = client
        .query_one(MIGRATED, &[])
        .await
        .map_err(|e| StoreError::db("migrate", e))
        .and_then(|r| col(&r, 0, "migrate"))?;
    if current {
        return Ok(());
    }
    client
        .batch_execute(&format!("BEGIN; {MIGRATION} COMMIT;"))
        .await
        .map_err(|e| StoreError::db("migrate", e))
}

/// First key of the wake lock ("wake"); the second is the schema's hash, as for [`LEADER_LOCK`]. The relay holds it
/// (exclusively, on its session) while it sleeps; writers take it shared for their transaction.
pub(crate) const WAKE_LOCK: i32 = 0x7761_6b65;

/// The writers' statement: every row in one call of `hule_outbox_enqueue` (made by [`MIGRATION`]), which inserts
/// them in the order given (so `seq` follows it) and sends a `NOTIFY` only when the relay sleeps.
///
/// Why not a `NOTIFY` per transaction: PostgreSQL serialises the commits of notifying transactions on one global
/// lock. Measured with pgbench, 8 clients, one business insert per transaction: 8,030 tx/s alone, 5,930 with a
/// 1 KB outbox row, 4,080 with the row and a `NOTIFY` — the wake-up cost more than the row. So a writer notifies
/// only when it cannot take the wake lock shared, that is while the relay holds it, that is while the relay
/// sleeps. A writer that takes it shared keeps it until its transaction ends, and the relay cannot go to sleep
/// (take it exclusively) until every such writer has committed or rolled back: it looks again instead
/// ([`PgOutbox`]'s `idle`). Lock state is not subject to snapshots, so this holds under every isolation level and
/// however long the writer's transaction runs after the insert.
pub(crate) const ENQUEUE: &str =
    "SELECT hule_outbox_enqueue($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Inserts prepared rows inside the caller's transaction, in one statement and one round trip, and wakes the relay
/// on commit if it sleeps (see [`ENQUEUE`]).
pub async fn enqueue(tx: &Transaction<'_>, rows: &[NewRow]) -> Result<()> {
    enqueue_on(tx.client(), ENQUEUE, rows)
        .await
        .map_err(|e| StoreError::db("enqueue", e))
}

/// [`ENQUEUE`] with the function named in `schema` (quoted), for a connection tied to one outbox
/// ([`crate::WriterConnection`]).
pub(crate) fn enqueue_in(schema: &str) -> String {
    ENQUEUE.replace(
        "SELECT hule_outbox_enqueue(",
        &format!("SELECT {schema}.hule_outbox_enqueue("),
    )
}

/// [`enqueue`] on the client of an open transaction, with `statement` ([`ENQUEUE`], or [`enqueue_in`]'s). Its first
/// poll sends the statement (nothing before it awaits), which [`crate::PublishingTransaction::commit`] relies on to
/// queue the `COMMIT` behind it.
pub(crate) async fn enqueue_on(
    client: &Client,
    statement: &str,
    rows: &[NewRow],
) -> std::result::Result<(), tokio_postgres::Error> {
    use tokio_postgres::types::{ToSql, Type};
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let column = |f: fn(&NewRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let aggregate_ids = column(|r| &r.aggregate_id);
    let aggregate_types = column(|r| &r.aggregate_type);
    let event_types = column(|r| &r.event_type);
    let data = column(|r| &r.event_data);
    let keys = column(|r| &r.event_key);
    let topics = column(|r| &r.topic);
    let event_ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.event_id).collect();
    let headers = column(|r| &r.headers);
    let params: [(&(dyn ToSql + Sync), Type); 10] = [
        (&ids, Type::UUID_ARRAY),
        (&aggregate_ids, Type::TEXT_ARRAY),
        (&aggregate_types, Type::TEXT_ARRAY),
        (&event_types, Type::TEXT_ARRAY),
        (&data, Type::TEXT_ARRAY),
        (&keys, Type::TEXT_ARRAY),
        (&topics, Type::TEXT_ARRAY),
        (&event_ids, Type::UUID_ARRAY),
        (&headers, Type::TEXT_ARRAY),
        (&WAKE_LOCK, Type::INT4),
    ];
    // `query_typed`: parse, bind and execute in one round trip (preparing would cost a second one per transaction,
    // as a plain client of the writer's is not ours to keep a statement on — a `WriterConnection` is, and keeps its
    // one-row insert prepared; the function's own plan is cached).
    client.query_typed(statement, &params).await.map(drop)
}

/// Column `i` of `row`: a type other than the relay expects (a table altered by hand) is an error, not a panic.
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
    op: &'static str,
) -> Result<T> {
    row.try_get(i).map_err(|e| StoreError::db(op, e))
}

/// The relay's completion session, and when one was last tried.
#[derive(Default)]
struct Completer {
    session: Mutex<Option<Client>>,
    tried: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long opening the completion session may take before the relay gives up on it for a minute.
const COMPLETER_CONNECT: Duration = Duration::from_secs(10);

/// The PostgreSQL outbox as the relay sees it.
pub struct PgOutbox {
    url: String,
    client: Mutex<Client>,
    wake: Arc<Notify>,
    leading: std::sync::atomic::AtomicBool,
    /// The most rows the next claim asks for: lowered after a claim the byte budget cut, so that a backlog of large
    /// events is not read (and turned into text) 2,000 rows at a time to send a dozen; doubled back after a claim
    /// the budget did not cut.
    claim_rows: std::sync::atomic::AtomicUsize,
    /// Whether this session holds the wake lock (the relay sleeps; writers notify).
    sleeping: std::sync::atomic::AtomicBool,
    /// Whether the session LISTENs (again after a reconnection).
    listen: bool,
    /// The claim, prepared on the session at its first claim (again after a reconnection, or after the session
    /// lost it): parsed once rather than at every claim.
    claim_statement: std::sync::Mutex<Option<Statement>>,
    /// A second session for completing delivered rows, opened in the background when this relay takes the lead: a
    /// drain completes batch n there while its own session claims batch n+2, the two statements running at once on
    /// two server processes instead of one after the other. Dropped on any error, and then the leading session
    /// completes (one statement after the other, as before) until a new one opens: at the next leadership, or a
    /// minute later. Behind an `Arc`: the background open fills it, and a store held in an enum beside SQLite's
    /// stays small.
    completer: Arc<Completer>,
    /// Whether the session was found reset (its prepared claim gone): the next `try_lead` connects again.
    stale: std::sync::atomic::AtomicBool,
}

impl PgOutbox {
    /// Connects, migrates, and LISTENs.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, true).await
    }

    /// Connects and migrates; with `listen` false the relay only polls (the benchmark's baseline).
    pub async fn connect_with(url: &str, listen: bool) -> Result<Self> {
        let (client, wake) = connect(url).await?;
        migrate(&client).await?;
        prepare_session(&client, listen).await?;
        Ok(Self::over(url, client, wake, listen))
    }

    /// The store over a connected and prepared session.
    fn over(url: &str, client: Client, wake: Arc<Notify>, listen: bool) -> Self {
        PgOutbox {
            url: url.to_owned(),
            client: Mutex::new(client),
            wake,
            leading: std::sync::atomic::AtomicBool::new(false),
            claim_rows: std::sync::atomic::AtomicUsize::new(usize::MAX),
            sleeping: std::sync::atomic::AtomicBool::new(false),
            listen,
            claim_statement: std::sync::Mutex::new(None),
            completer: Arc::default(),
            stale: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Opens the completion session in the background when there is none and none was tried in the last minute
    /// (`now`: whatever the last try) — never in the relay's way: until it is open, and when the server refuses a
    /// second session (a role's connection limit, `max_connections`), the leading session completes. The connect
    /// is bounded by [`COMPLETER_CONNECT`].
    fn open_completer(&self, now: bool) {
        {
            let mut tried = self
                .completer
                .tried
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !now && tried.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
                return;
            }
            *tried = Some(std::time::Instant::now());
        }
        let (completer, url) = (self.completer.clone(), self.url.clone());
        tokio::spawn(async move {
            if completer
                .session
                .lock()
                .await
                .as_ref()
                .is_some_and(|c| !c.is_closed())
            {
                return;
            }
            let connected = tokio::time::timeout(
                COMPLETER_CONNECT,
                connect_waking(&url, Arc::new(Notify::new())),
            )
            .await;
            match connected {
                Ok(Ok(client)) => *completer.session.lock().await = Some(client),
                Ok(Err(e)) => tracing::warn!(error = %e, "relay: no second PostgreSQL session for completions; the leading session completes"),
                Err(_) => tracing::warn!("relay: no second PostgreSQL session for completions within {COMPLETER_CONNECT:?}; the leading session completes"),
            }
        });
    }

    /// Tries to take the session advisory lock `(first, hash of the schema)` on the relay's session.
    async fn try_session_lock(&self, first: i32, op: &'static str) -> Result<bool> {
        self.client
            .lock()
            .await
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                &[&first],
            )
            .await
            .map_err(|e| StoreError::db(op, e))
            .and_then(|r| col(&r, 0, op))
    }

    /// A new session in place of a closed one (the server restarted, failed over, or ended it), waking the same
    /// relay; the session lock went with the old one.
    async fn reconnect(&self) -> Result<()> {
        let client = connect_waking(&self.url, self.wake.clone()).await?;
        prepare_session(&client, self.listen).await?;
        let mut session = self.client.lock().await;
        *session = client;
        // The prepared claim and the wake lock went with the old session.
        *self
            .claim_statement
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        drop(session);
        // A new leadership opens a new completion session.
        *self.completer.session.lock().await = None;
        self.sleeping
            .store(false, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(url = %redact(&self.url), "relay: reconnected to PostgreSQL");
        Ok(())
    }

    // The claim must walk `hule_outbox_pending` in `seq` order and stop at its LIMIT, whatever the table's
    // statistics say. With the statistics of an empty table (ANALYZE at migration, and no auto-analyze when
    // autovacuum is off) the planner instead bitmap-scans every pending row and sorts them: 272 ms instead of
    // 1.7 ms per claim of 500 on a 100,000-row backlog (EXPLAIN ANALYZE), so the drain slowed as the backlog
    // grew. This connection only runs the relay's own statements, which never need a sort or a bitmap scan.

    /// Connects without migrating or listening, for commands that only look (`hule outbox status`): nothing is
    /// written, so a read-only role works, and a schema without `event_outbox` is an error that says so.
    pub async fn open_existing(url: &str) -> Result<Self> {
        let (client, wake) = connect(url).await?;
        let row = client
            .query_one(
                "SELECT to_regclass('event_outbox') IS NOT NULL, current_schema()::text",
                &[],
            )
            .await
            .map_err(|e| StoreError::db("look for event_outbox", e))?;
        let exists: bool = col(&row, 0, "look for event_outbox")?;
        if !exists {
            let schema: Option<String> = col(&row, 1, "look for event_outbox")?;
            return Err(StoreError::Config(format!(
                "no event_outbox table in schema {} of {}: is the URL (and its search_path) right? `hule relay` \
                 creates the table",
                schema.as_deref().unwrap_or("(none)"),
                redact(url)
            )));
        }
        Ok(Self::over(url, client, wake, false))
    }

    /// Unpublished rows, oldest first: parked ones (`parked`), or those still to be published. At most `limit`.
    pub async fn list(&self, parked: bool, limit: i64) -> Result<Vec<crate::model::Listed>> {
        self.listed(
            &format!(
                "published_at IS NULL AND parked_at IS {} NULL ORDER BY seq LIMIT $1",
                if parked { "NOT" } else { "" }
            ),
            &[&limit],
        )
        .await
    }

    /// Unpublished rows whose event id, key or correlation id is `q` (the console's trace), oldest first.
    pub async fn find(&self, q: &str, limit: i64) -> Result<Vec<crate::model::Listed>> {
        self.listed(
            "published_at IS NULL AND (event_id::text = $2 OR event_key = $2
                 OR (event_data::jsonb ->> 'correlation_id') = $2)
             ORDER BY seq LIMIT $1",
            &[&limit, &q.to_owned()],
        )
        .await
    }

    async fn listed(
        &self,
        filter: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<crate::model::Listed>> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT seq, COALESCE(event_id::text, event_data::jsonb ->> 'event_id'), event_type::text,
                            topic::text, event_key::text, retry_count, last_error,
                            (extract(epoch FROM created_at) * 1000)::int8, parked_at IS NOT NULL,
                            (event_data::jsonb ->> 'correlation_id')
                     FROM event_outbox WHERE {filter}"
                ),
                params,
            )
            .await
            .map_err(|e| StoreError::db("list", e))?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::Listed {
                    seq: col(r, 0, "list")?,
                    event_id: col(r, 1, "list")?,
                    event_type: col(r, 2, "list")?,
                    topic: col(r, 3, "list")?,
                    key: col(r, 4, "list")?,
                    attempts: col(r, 5, "list")?,
                    last_error: col(r, 6, "list")?,
                    created_ms: col(r, 7, "list")?,
                    parked: col(r, 8, "list")?,
                    correlation_id: col(r, 9, "list")?,
                })
            })
            .collect()
    }

    /// The URL it connected with (credentials included: never print it; `hule_pg::redact` it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits until this instance holds the relay leadership lock (released when its connection closes).
    /// [`crate::relay::run_relay`] does this itself; for tools that call the relay's steps directly.
    pub async fn acquire_leadership(&self, retry_every: Duration) -> Result<()> {
        while !self.try_lead().await? {
            tokio::time::sleep(retry_every).await;
        }
        Ok(())
    }
}

/// The claim: the oldest claimable rows in `seq` order, skipping keys held back by an earlier failed row and the
/// rows the caller excludes (`$2`), at most `$1`, and only while the rows before hold fewer than
/// `$3` bytes of `event_data` (so always the first). The window runs over the limited rows only, and rows past the
/// budget are not sent; the last column counts the rows the limit let through, so the caller knows the budget cut
/// the claim. It locks nothing (no transaction): the leadership lock is what keeps a second relay away.
///
/// The exclusion (`$2`, the batch in flight) is a `NOT IN` subquery, run as a hashed subplan whatever the plan.
/// As `NOT (seq = ANY($2))` it is hashed only when the array is a constant: planning it then estimates every
/// element (2.4–3.4 ms a claim excluding 4,000 rows, against 0.2–0.3 ms for the subquery, measured with EXPLAIN
/// ANALYZE on a 100,000-row backlog), and a generic plan — what PostgreSQL may choose for a statement prepared once
/// and run more than five times — tests the array element by element for every row it walks (88–92 ms a claim
/// excluding 4,000, against 12–16 ms with the subquery). The hash table must fit `hash_mem_multiplier × work_mem`
/// (8 MB by default), some hundreds of thousands of rows: far above any batch a relay should claim.
const CLAIM_SQL: &str = "SELECT seq, topic, event_key, data, headers, retry_count, created_us, considered FROM (
  SELECT *, sum(octet_length(data)) OVER (ORDER BY seq) AS upto, count(*) OVER () AS considered FROM (
    SELECT seq, topic::text AS topic, event_key::text AS event_key, event_data::text AS data, headers::text AS headers, retry_count::int4 AS retry_count,
        (extract(epoch FROM created_at) * 1000000)::bigint AS created_us
    FROM event_outbox o
    WHERE published_at IS NULL AND parked_at IS NULL AND next_attempt_at <= now()
    AND NOT EXISTS (SELECT 1 FROM event_outbox b WHERE b.event_key = o.event_key AND b.seq < o.seq
        AND b.published_at IS NULL AND b.retry_count > 0 AND (b.parked_at IS NOT NULL OR b.next_attempt_at > now()))
    AND seq NOT IN (SELECT unnest($2::bigint[]))
    ORDER BY seq LIMIT $1) limited) budgeted
 WHERE upto - octet_length(data) < $3
 ORDER BY seq";

/// The cap on the claims' row limit after a claim made under `cap` that asked for `asked` rows, let `considered`
/// through its limit and returned `returned` (pure). Cut by the byte budget: twice what fitted (the rows around it
/// are probably as large); full and not cut: the cap doubles (back to no cap, `usize::MAX`); otherwise unchanged.
fn next_claim_rows(cap: usize, asked: usize, considered: usize, returned: usize) -> usize {
    if returned < considered {
        (returned * 2).max(1)
    } else if returned == asked {
        cap.saturating_mul(2)
    } else {
        cap
    }
}

impl PgOutbox {
    /// The session's prepared claim, prepared now if it has none (`client` is the session, locked).
    async fn claim_statement(&self, client: &Client) -> Result<Statement> {
        if let Some(s) = &*self
            .claim_statement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            return Ok(s.clone());
        }
        use tokio_postgres::types::Type;
        let s = client
            .prepare_typed(CLAIM_SQL, &[Type::INT8, Type::INT8_ARRAY, Type::INT8])
            .await
            .map_err(|e| StoreError::db("prepare claim", e))?;
        *self
            .claim_statement
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
        Ok(s)
    }

    /// The plan PostgreSQL uses for this relay's claim of `limit` rows (`EXPLAIN`), for diagnosing a slow drain:
    /// it should be an index scan of `hule_outbox_pending` stopped by the limit, with no sort. With `generic`, the
    /// plan made without the parameters' values: the claim is prepared once per session, and PostgreSQL may run a
    /// prepared statement with that plan from its sixth execution on, so it must be as good.
    pub async fn claim_plan(&self, limit: usize, generic: bool) -> Result<String> {
        let client = self.client.lock().await;
        let op = "explain claim";
        let rows = if generic {
            // A statement of its own, prepared and explained inside one transaction whose `SET LOCAL` forces the
            // generic plan and ends with it.
            let explained = match client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; \
                     PREPARE hule_claim_plan(bigint, bigint[], bigint) AS {CLAIM_SQL}"
                ))
                .await
            {
                Ok(()) => {
                    client
                        .simple_query(&format!(
                            "EXPLAIN EXECUTE hule_claim_plan({limit}, '{{}}', {CLAIM_BYTES})"
                        ))
                        .await
                }
                Err(e) => Err(e),
            };
            // Whatever happened, the transaction ends (a failed one would refuse the relay's every statement until
            // it did), and the statement is dropped outside it: a PREPARE outlives the ROLLBACK of its transaction.
            let ended = client.batch_execute("ROLLBACK").await;
            let _ = client.batch_execute("DEALLOCATE hule_claim_plan").await;
            let lines = explained
                .map_err(|e| StoreError::db(op, e))?
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect::<Vec<_>>();
            ended.map_err(|e| StoreError::db(op, e))?;
            lines
        } else {
            let none: Vec<i64> = Vec::new();
            client
                .query(
                    &format!("EXPLAIN {CLAIM_SQL}"),
                    &[&(limit as i64), &none, &(CLAIM_BYTES as i64)],
                )
                .await
                .map_err(|e| StoreError::db(op, e))?
                .iter()
                .map(|r| col::<String>(r, 0, op))
                .collect::<Result<Vec<_>>>()?
        };
        Ok(rows.join("\n"))
    }
}

/// The row filter of a target and its one parameter (`$1`, as text: the comparisons cast it).
fn pg_target(target: &RetryTarget) -> (&'static str, String) {
    match target {
        RetryTarget::AllParked => ("parked_at IS NOT NULL AND $1::text = ''", String::new()),
        RetryTarget::EventId(id) => ("event_id = $1::text::uuid", id.to_string()),
        RetryTarget::Seq(seq) => ("seq = $1::text::bigint", seq.to_string()),
        RetryTarget::Key(key) => ("event_key = $1::text", key.clone()),
    }
}

impl OutboxStore for PgOutbox {
    async fn claim(&self, limit: usize) -> Result<Vec<Claimed>> {
        self.claim_excluding(limit, &[]).await
    }

    async fn claim_excluding(&self, limit: usize, exclude: &[i64]) -> Result<Vec<Claimed>> {
        use futures::TryStreamExt as _;
        use std::sync::atomic::Ordering::Relaxed;
        let cap = self.claim_rows.load(Relaxed);
        let asked = limit.min(cap).max(1);
        let client = self.client.lock().await;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&(asked as i64), &exclude, &(CLAIM_BYTES as i64)];
        let forget = |e: tokio_postgres::Error| {
            // Prepared again at the next claim, whatever went wrong.
            *self
                .claim_statement
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
            StoreError::db("claim", e)
        };
        // A claim whose result type changed under it (0A000: an application altered a column it reads) is prepared
        // again and run once more. A statement the session no longer has (26000) means the session was reset
        // (`DISCARD ALL`, a pooler handing it to another client): its advisory locks, LISTEN and settings went with
        // its statements, so this relay no longer leads, and leads again only on a new session.
        let mut again = true;
        let rows = loop {
            let statement = self.claim_statement(&client).await?;
            match client.query_raw(&statement, params).await {
                Ok(rows) => break rows,
                Err(e) if e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME) => {
                    tracing::warn!(error = %e, "relay: the session lost its prepared claim (reset?); connecting again");
                    self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
                    self.leading
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    drop(forget(e));
                    return Err(StoreError::LeadershipLost);
                }
                Err(e) if again && e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED) => {
                    again = false;
                    drop(forget(e));
                }
                Err(e) => return Err(forget(e)),
            }
        };
        // Each row is turned into a `Claimed` as it arrives, while the server is still sending the next ones.
        futures::pin_mut!(rows);
        let mut claimed = Vec::with_capacity(asked);
        let mut considered = 0;
        while let Some(r) = rows.try_next().await.map_err(forget)? {
            if claimed.is_empty() {
                considered = col::<i64>(&r, 7, "claim")? as usize;
            }
            claimed.push(from_row(
                col(&r, 0, "claim")?,
                col(&r, 1, "claim")?,
                col(&r, 2, "claim")?,
                col(&r, 3, "claim")?,
                col(&r, 4, "claim")?,
                col(&r, 5, "claim")?,
                col(&r, 6, "claim")?,
            ));
        }
        self.claim_rows.store(
            next_claim_rows(cap, asked, considered, claimed.len()),
            Relaxed,
        );
        Ok(claimed)
    }

    async fn delivered(&self, seqs: Vec<i64>, completion: Completion) -> Result<()> {
        use tokio_postgres::types::Type;
        let sql = match completion {
            Completion::Delete => "DELETE FROM event_outbox WHERE seq = ANY($1)",
            Completion::Mark { .. } => {
                "UPDATE event_outbox SET published_at = now() WHERE seq = ANY($1)"
            }
        };
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
            [(&seqs, Type::INT8_ARRAY)];
        // On the completion session, the claim's session staying free for the next claim; parsed, bound and run
        // in one round trip. A completion session that fails is dropped, and the completion (which may be made
        // twice) is made on the leading session, which completes until a new completion session opens.
        let mut completer = self.completer.session.lock().await;
        if let Some(client) = completer.take().filter(|c| !c.is_closed()) {
            match client.query_typed(sql, &params).await {
                Ok(_) => {
                    *completer = Some(client);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay: the completion session failed; completing on the leading session")
                }
            }
        }
        drop(completer);
        self.open_completer(false);
        self.client
            .lock()
            .await
            .query_typed(sql, &params)
            .await
            .map_err(|e| StoreError::db("complete", e))?;
        Ok(())
    }

    async fn failed(&self, failures: Vec<FailedAttempt>, policy: FailurePolicy) -> Result<()> {
        let client = self.client.lock().await;
        for f in failures {
            let (seq, attempts) = (f.seq, f.attempts);
            let backoff_secs = policy.backoff(attempts).as_secs_f64();
            let parked = f.permanent || policy.parks(attempts);
            let error: String = f.error.chars().take(1000).collect();
            client
                .execute(
                    "UPDATE event_outbox SET retry_count = $2, last_error = $3,
                     next_attempt_at = now() + make_interval(secs => $4::float8),
                     parked_at = CASE WHEN $5 THEN now() END WHERE seq = $1",
                    &[&seq, &attempts, &error, &backoff_secs, &parked],
                )
                .await
                .map_err(|e| StoreError::db("fail", e))?;
        }
        Ok(())
    }

    async fn idle(&self) -> Result<crate::store::Idle> {
        use crate::store::Idle;
        use std::sync::atomic::Ordering;
        if !self.listen || self.sleeping.load(Ordering::SeqCst) {
            return Ok(Idle::Asleep);
        }
        let got = self.try_session_lock(WAKE_LOCK, "wake lock").await?;
        if got {
            self.sleeping.store(true, Ordering::SeqCst);
            Ok(Idle::FellAsleep)
        } else {
            Ok(Idle::WritersInFlight)
        }
    }

    async fn awake(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if !self.sleeping.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Marked awake only once the lock is let go: a failed unlock is tried again at the next call, rather than
        // the lock taken a second time (session locks stack) and then held for good.
        self.client
            .lock()
            .await
            .query_one(
                "SELECT pg_advisory_unlock($1, hashtext(current_schema()))",
                &[&WAKE_LOCK],
            )
            .await
            .map_err(|e| StoreError::db("wake unlock", e))?;
        self.sleeping.store(false, Ordering::SeqCst);
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    async fn cleanup(&self, retention: Duration, limit: usize) -> Result<u64> {
        let client = self.client.lock().await;
        client
            .execute(
                "DELETE FROM event_outbox WHERE seq IN (SELECT seq FROM event_outbox
                 WHERE published_at < now() - make_interval(secs => $1) LIMIT $2)",
                &[&retention.as_secs_f64(), &(limit as i64)],
            )
            .await
            .map_err(|e| StoreError::db("cleanup", e))
    }

    async fn status(&self) -> Result<Status> {
        let client = self.client.lock().await;
        let group = |parked: bool| {
            format!(
                "SELECT topic::text, count(*) FROM event_outbox WHERE published_at IS NULL AND parked_at IS {} NULL
                 GROUP BY topic ORDER BY topic",
                if parked { "NOT" } else { "" }
            )
        };
        let pending = client
            .query(&group(false), &[])
            .await
            .map_err(|e| StoreError::db("status", e))?;
        let parked = client
            .query(&group(true), &[])
            .await
            .map_err(|e| StoreError::db("status", e))?;
        let oldest: Option<f64> = client
            .query_one(
                "SELECT extract(epoch FROM now() - min(created_at))::float8 FROM event_outbox
                 WHERE published_at IS NULL AND parked_at IS NULL",
                &[],
            )
            .await
            .map_err(|e| StoreError::db("status", e))
            .and_then(|r| col(&r, 0, "status"))?;
        let errors = client
            .query(
                "SELECT seq, topic::text, retry_count, last_error FROM event_outbox
                 WHERE published_at IS NULL AND last_error IS NOT NULL ORDER BY seq DESC LIMIT 10",
                &[],
            )
            .await
            .map_err(|e| StoreError::db("status", e))?;
        let counts = |rows: &[Row]| -> Result<Vec<(String, i64)>> {
            rows.iter()
                .map(|r| Ok((col(r, 0, "status")?, col(r, 1, "status")?)))
                .collect()
        };
        Ok(Status {
            pending: counts(&pending)?,
            parked: counts(&parked)?,
            oldest_pending_age_seconds: oldest,
            last_errors: errors
                .iter()
                .map(|r| {
                    Ok((
                        col(r, 0, "status")?,
                        col(r, 1, "status")?,
                        col(r, 2, "status")?,
                        col(r, 3, "status")?,
                    ))
                })
                .collect::<Result<_>>()?,
        })
    }

    async fn retry(&self, target: RetryTarget) -> Result<u64> {
        let client = self.client.lock().await;
        let (filter, param) = pg_target(&target);
        let n = client
            .execute(
                &format!(
                    "UPDATE event_outbox SET parked_at = NULL, retry_count = 0, next_attempt_at = '-infinity'
                     WHERE published_at IS NULL AND retry_count > 0 AND {filter}"
                ),
                &[&param],
            )
            .await
            .map_err(|e| StoreError::db("retry", e))?;
        client
            .batch_execute(&format!("NOTIFY {CHANNEL}"))
            .await
            .map_err(|e| StoreError::db("notify", e))?;
        Ok(n)
    }

    async fn discard(
        &self,
        target: RetryTarget,
        reason: &str,
    ) -> Result<Vec<crate::model::Discarded>> {
        let mut client = self.client.lock().await;
        let (filter, param) = pg_target(&target);
        let tx = client
            .transaction()
            .await
            .map_err(|e| StoreError::db("discard", e))?;
        let rows = tx
            .query(
                &format!(
                    "WITH gone AS (DELETE FROM event_outbox
                         WHERE published_at IS NULL AND retry_count > 0
                           AND (parked_at IS NOT NULL OR next_attempt_at > now()) AND {filter}
                         RETURNING seq, id, event_id, topic, event_key, event_data::text AS data, headers::text AS h,
                                   retry_count, last_error)
                     INSERT INTO hule_outbox_discarded (seq, id, event_id, topic, event_key, event_data, headers,
                                                        retry_count, last_error, reason)
                     SELECT seq, id, event_id, topic, event_key, data, h, retry_count, last_error, $2::text FROM gone
                     RETURNING seq, event_id::text, topic, event_key, retry_count, last_error"
                ),
                &[&param, &reason.to_owned()],
            )
            .await
            .map_err(|e| StoreError::db("discard", e))?;
        tx.batch_execute(&format!("NOTIFY {CHANNEL}"))
            .await
            .map_err(|e| StoreError::db("notify", e))?;
        tx.commit()
            .await
            .map_err(|e| StoreError::db("discard", e))?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(crate::model::Discarded {
                    seq: col(r, 0, "discard")?,
                    event_id: col(r, 1, "discard")?,
                    topic: col(r, 2, "discard")?,
                    key: col(r, 3, "discard")?,
                    attempts: col(r, 4, "discard")?,
                    last_error: col(r, 5, "discard")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|d| d.seq);
        Ok(out)
    }

    async fn depth(&self) -> Result<i64> {
        let client = self.client.lock().await;
        client
            .query_one(
                "SELECT count(*) FROM event_outbox WHERE published_at IS NULL",
                &[],
            )
            .await
            .map_err(|e| StoreError::db("depth", e))
            .and_then(|r| col(&r, 0, "depth"))
    }

    async fn gauges(&self) -> Result<Gauges> {
        let client = self.client.lock().await;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL),
                        extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL))::float8
                 FROM event_outbox WHERE published_at IS NULL",
                &[],
            )
            .await
            .map_err(|e| StoreError::db("gauges", e))?;
        Ok(Gauges {
            pending: col(&row, 0, "gauges")?,
            parked: col(&row, 1, "gauges")?,
            oldest_pending_age_seconds: col(&row, 2, "gauges")?,
        })
    }

    async fn try_lead(&self) -> Result<bool> {
        if self.leading.load(std::sync::atomic::Ordering::SeqCst) {
            // Leading again after an error: a completion session lost meanwhile is tried again, once a minute.
            self.open_completer(false);
            return Ok(true);
        }
        let stale = self.stale.swap(false, std::sync::atomic::Ordering::SeqCst);
        if stale || self.client.lock().await.is_closed() {
            // A standby (or a leader that lost its session) connects again rather than ending: with every relay's
            // session cut at once (a failover), one of them must lead afterwards. A session found reset is replaced
            // the same way.
            if let Err(e) = self.reconnect().await {
                if stale {
                    self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                tracing::warn!(error = %e, "relay: cannot reconnect to PostgreSQL yet; standing by");
                return Ok(false);
            }
        }
        let got = self.try_session_lock(LEADER_LOCK, "leader lock").await?;
        self.leading.store(got, std::sync::atomic::Ordering::SeqCst);
        if got {
            self.open_completer(true);
        }
        Ok(got)
    }

    async fn renew_leadership(&self) -> Result<bool> {
        // The session lock lasts as long as the connection; a closed connection has lost it.
        let held = self.leading.load(std::sync::atomic::Ordering::SeqCst)
            && !self.client.lock().await.is_closed();
        if !held {
            self.leading
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(held)
    }
}

#[cfg(test)]
mod claim_rows_tests {
    use super::next_claim_rows;

    #[test]
    fn the_claim_shrinks_after_a_cut_and_grows_back() {
        let none = usize::MAX;
        let cut = next_claim_rows(none, 2000, 2000, 17);
        assert_eq!(cut, 34, "cut by bytes: twice what fitted");
        let grown = next_claim_rows(34, 34, 34, 34);
        assert_eq!(grown, 68, "full and not cut: the cap doubles");
        let small = next_claim_rows(none, 5, 5, 5);
        assert_eq!(small, none, "a small full claim sets no cap");
        let fewer = next_claim_rows(34, 34, 20, 20);
        assert_eq!(fewer, 34, "fewer rows there: unchanged");
        assert_eq!(next_claim_rows(1, 1, 5, 0), 1, "never below one");
    }
}
