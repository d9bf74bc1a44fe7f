//! The SQLite backend: the embedded default. The relay owns one connection on blocking threads; writers enqueue
//! inside their own `rusqlite::Transaction` and wake the relay in-process after commit.
//!
//! Exclusivity: the leader holds a lease row in `hule_relay_lease` (owner id, expiry), renewed before every batch
//! and at least every third of the lease while idle; a second relay on the same file (another process, or another
//! `SqliteOutbox` in this one) stands by until the lease runs out, so a dead leader is replaced within one lease
//! (15 s by default, [`SqliteOutbox::with_lease`]). A leader stalled past its lease notices before its next batch.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::Notify;

use crate::error::{Result, StoreError};
use crate::model::{from_row, Claimed, Gauges, Status};
use crate::prepare::NewRow;
use crate::store::{
    Completion, FailedAttempt, FailurePolicy, OutboxStore, RetryTarget, CLAIM_BYTES,
};

const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS event_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    aggregate_id TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_data TEXT NOT NULL,
    event_key TEXT,
    topic TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER,
    retry_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    event_id TEXT,
    headers TEXT,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    parked_at INTEGER
);
CREATE INDEX IF NOT EXISTS hule_outbox_key_pending ON event_outbox (event_key, seq) WHERE published_at IS NULL;
-- Only rows that failed can hold back later rows of their key; this small index makes that check cheap.
CREATE INDEX IF NOT EXISTS hule_outbox_key_failed ON event_outbox (event_key, seq) WHERE published_at IS NULL AND retry_count > 0;
CREATE INDEX IF NOT EXISTS hule_outbox_pending ON event_outbox (seq) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS hule_outbox_discarded (
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    event_id TEXT,
    topic TEXT NOT NULL,
    event_key TEXT,
    event_data TEXT NOT NULL,
    headers TEXT,
    retry_count INTEGER NOT NULL,
    last_error TEXT,
    reason TEXT NOT NULL,
    discarded_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS hule_relay_lease (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
";

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Opens a connection with the settings the outbox relies on (WAL, NORMAL sync, busy timeout).
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| StoreError::db("open sqlite", e))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
    )
    .map_err(|e| StoreError::db("configure sqlite", e))?;
    Ok(conn)
}

/// Creates or upgrades the outbox table; idempotent.
pub fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(MIGRATION)
        .map_err(|e| StoreError::db("migrate", e))
}

/// Inserts prepared rows inside the caller's transaction. Nothing is visible to the relay until it commits.
pub fn enqueue(tx: &Transaction<'_>, rows: &[NewRow]) -> Result<()> {
    let now = now_micros();
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO event_outbox (id, aggregate_id, aggregate_type, event_type, event_data, event_key, topic,
             created_at, event_id, headers, next_attempt_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?8)",
        )
        .map_err(|e| StoreError::db("enqueue", e))?;
    for r in rows {
        stmt.execute(params![
            r.id.to_string(),
            r.aggregate_id,
            r.aggregate_type,
            r.event_type,
            r.event_data,
            r.event_key,
            r.topic,
            now,
            r.event_id.to_string(),
            r.headers
        ])
        .map_err(|e| StoreError::db("enqueue", e))?;
    }
    Ok(())
}

/// The SQLite outbox as the relay sees it.
#[derive(Clone)]
pub struct SqliteOutbox {
    conn: Arc<Mutex<Connection>>,
    /// A second connection for completing delivered rows, opened at the first completion: in WAL mode its write
    /// and the next claim's read run at once, on two threads, instead of one after the other on one connection.
    completer: Arc<Mutex<Option<Connection>>>,
    /// Whether the database is in memory (SQLite names no file for it): then it completes on `conn`.
    in_memory: bool,
    wake: Arc<Notify>,
    path: PathBuf,
    owner: Arc<str>,
    lease: Duration,
}

/// The default relay lease on SQLite.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

impl SqliteOutbox {
    /// The outbox on an open connection, with an owner id of its own for the relay lease.
    fn on(conn: Connection, path: PathBuf) -> Self {
        let in_memory = conn.path().is_none_or(str::is_empty);
        SqliteOutbox {
            in_memory,
            conn: Arc::new(Mutex::new(conn)),
            completer: Arc::new(Mutex::new(None)),
            wake: Arc::new(Notify::new()),
            path,
            owner: uuid::Uuid::new_v4().to_string().into(),
            lease: DEFAULT_LEASE,
        }
    }

    /// Opens (and migrates) the outbox database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = open(&path)?;
        migrate(&conn)?;
        Ok(Self::on(conn, path))
    }

    /// Opens an existing outbox read-only, without migrating, for commands that only look (`hule outbox status`):
    /// a wrong path or a file without `event_outbox` is an error that says so, not an empty outbox made on the spot.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self> {
        use rusqlite::OpenFlags;
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            StoreError::Config(format!("cannot open the outbox {}: {e}", path.display()))
        })?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| StoreError::db("configure sqlite", e))?;
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'event_outbox'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| {
                StoreError::Config(format!("{} is not a SQLite outbox: {e}", path.display()))
            })?;
        if tables == 0 {
            return Err(StoreError::Config(format!(
                "{} has no event_outbox table (not an outbox, or no relay has run on it yet)",
                path.display()
            )));
        }
        Ok(Self::on(conn, path))
    }

    /// Sets the relay lease: how long a dead leader keeps the standbys waiting (at least 300 ms).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wakes the relay; call after committing a transaction that enqueued events.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// A handle writers keep to wake the relay.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    async fn with<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Config("sqlite connection lock poisoned".into()))?;
            f(&mut guard).map_err(|e| StoreError::db(op, e))
        })
        .await
        .map_err(|e| StoreError::db(op, e))?
    }

    /// [`Self::with`] on the completion connection, opened first if this is the first completion.
    async fn with_completer<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        // An in-memory database (`:memory:`, `file:…?mode=memory`) exists on its one connection only: a second
        // would open another, empty one.
        if self.in_memory {
            return self.with(op, f).await;
        }
        let (completer, path) = (self.completer.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let mut guard = completer
                .lock()
                .map_err(|_| StoreError::Config("sqlite connection lock poisoned".into()))?;
            let conn = match &mut *guard {
                Some(conn) => conn,
                empty => empty.insert(open(&path)?),
            };
            f(conn).map_err(|e| StoreError::db(op, e))
        })
        .await
        .map_err(|e| StoreError::db(op, e))?
    }
}

/// Whether no other relay holds the lease: the owner check of `delivered` and `failed`, inside their transaction.
/// With no lease row at all (no relay has led: a tool or a test completing rows by hand) nobody else can be
/// publishing them.
fn still_owner(tx: &rusqlite::Transaction<'_>, owner: &str) -> rusqlite::Result<bool> {
    let holder: Option<String> = tx
        .query_row(
            "SELECT owner FROM hule_relay_lease WHERE name = 'relay'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(holder.is_none_or(|h| h == owner))
}

impl SqliteOutbox {
    /// Runs a completion that first checks the lease's owner; `false` from it is [`StoreError::LeadershipLost`].
    async fn with_owner(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<bool> + Send + 'static,
    ) -> Result<()> {
        if self.with(op, f).await? {
            Ok(())
        } else {
            Err(StoreError::LeadershipLost)
        }
    }
}

/// The row filter of a target and its one parameter (`?1`).
fn sqlite_target(target: &RetryTarget) -> (&'static str, rusqlite::types::Value) {
    use rusqlite::types::Value;
    match target {
        RetryTarget::AllParked => ("parked_at IS NOT NULL AND ?1 IS NULL", Value::Null),
        RetryTarget::EventId(id) => ("event_id = ?1", Value::Text(id.to_string())),
        RetryTarget::Seq(seq) => ("seq = ?1", Value::Integer(*seq)),
        RetryTarget::Key(key) => ("event_key = ?1", Value::Text(key.clone())),
    }
}

impl OutboxStore for SqliteOutbox {
    async fn claim_excluding(&self, limit: usize, exclude: &[i64]) -> Result<Vec<Claimed>> {
        let exclude: std::collections::HashSet<i64> = exclude.iter().copied().collect();
        self.with("claim", move |conn| {
            let now = now_micros();
            let mut stmt = conn.prepare_cached(
                "SELECT seq, topic, event_key, event_data, headers, retry_count, created_at FROM event_outbox o
                 WHERE published_at IS NULL AND parked_at IS NULL AND next_attempt_at <= ?1
                 AND NOT EXISTS (SELECT 1 FROM event_outbox b WHERE b.event_key = o.event_key AND b.seq < o.seq
                     AND b.published_at IS NULL AND b.retry_count > 0 AND (b.parked_at IS NOT NULL OR b.next_attempt_at > ?1))
                 ORDER BY seq LIMIT ?2",
            )?;
            // The excluded rows (the batch in flight) come first in `seq` order: read past them, and count neither
            // them nor their bytes.
            let mut rows = stmt.query(params![now, (limit + exclude.len()) as i64])?;
            let (mut claimed, mut bytes) = (Vec::new(), 0usize);
            while claimed.len() < limit && bytes < CLAIM_BYTES {
                let Some(r) = rows.next()? else { break };
                let seq: i64 = r.get(0)?;
                if exclude.contains(&seq) {
                    continue;
                }
                let data: String = r.get(3)?;
                bytes += data.len();
                claimed.push(from_row(seq, r.get(1)?, r.get(2)?, data, r.get(4)?, r.get(5)?, r.get(6)?));
            }
            Ok(claimed)
        })
        .await
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Claimed>> {
        self.claim_excluding(limit, &[]).await
    }

    async fn delivered(&self, seqs: Vec<i64>, completion: Completion) -> Result<()> {
        let owner = self.owner.clone();
        let done = self
            .with_completer("complete", move |conn| {
                // Immediate: the owner check reads before the writes, and a deferred transaction whose snapshot another
                // connection changed meanwhile could not then write (SQLITE_BUSY_SNAPSHOT).
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                if !still_owner(&tx, &owner)? {
                    return Ok(false);
                }
                {
                    let sql = match completion {
                        Completion::Delete => "DELETE FROM event_outbox WHERE seq = ?1",
                        Completion::Mark { .. } => {
                            "UPDATE event_outbox SET published_at = ?2 WHERE seq = ?1"
                        }
                    };
                    let mut stmt = tx.prepare_cached(sql)?;
                    let now = now_micros();
                    for s in seqs {
                        match completion {
                            Completion::Delete => stmt.execute(params![s])?,
                            Completion::Mark { .. } => stmt.execute(params![s, now])?,
                        };
                    }
                }
                tx.commit().map(|()| true)
            })
            .await?;
        if done {
            Ok(())
        } else {
            Err(StoreError::LeadershipLost)
        }
    }

    async fn failed(&self, failures: Vec<FailedAttempt>, policy: FailurePolicy) -> Result<()> {
        let owner = self.owner.clone();
        self.with_owner("fail", move |conn| {
            // Immediate: the owner check reads before the writes, and a deferred transaction whose snapshot another
            // connection changed meanwhile could not then write (SQLITE_BUSY_SNAPSHOT).
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if !still_owner(&tx, &owner)? {
                return Ok(false);
            }
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE event_outbox SET retry_count = ?2, last_error = ?3, next_attempt_at = ?4, parked_at = ?5
                     WHERE seq = ?1",
                )?;
                let now = now_micros();
                for f in failures {
                    let next = now + policy.backoff(f.attempts).as_micros() as i64;
                    let parked = (f.permanent || policy.parks(f.attempts)).then_some(now);
                    let error: String = f.error.chars().take(1000).collect();
                    stmt.execute(params![f.seq, f.attempts, error, next, parked])?;
                }
            }
            tx.commit().map(|()| true)
        })
        .await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    async fn cleanup(&self, retention: Duration, limit: usize) -> Result<u64> {
        self.with("cleanup", move |conn| {
            let cutoff = now_micros() - retention.as_micros() as i64;
            let n = conn.execute(
                "DELETE FROM event_outbox WHERE seq IN (SELECT seq FROM event_outbox
                 WHERE published_at IS NOT NULL AND published_at < ?1 LIMIT ?2)",
                params![cutoff, limit as i64],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn status(&self) -> Result<Status> {
        self.with("status", |conn| {
            let group = |conn: &Connection, parked: bool| -> rusqlite::Result<Vec<(String, i64)>> {
                let sql = format!(
                    "SELECT topic, count(*) FROM event_outbox WHERE published_at IS NULL AND parked_at IS {} NULL
                     GROUP BY topic ORDER BY topic",
                    if parked { "NOT" } else { "" }
                );
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            };
            let oldest: Option<i64> = conn
                .query_row(
                    "SELECT min(created_at) FROM event_outbox WHERE published_at IS NULL AND parked_at IS NULL",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let mut stmt = conn.prepare(
                "SELECT seq, topic, retry_count, last_error FROM event_outbox
                 WHERE published_at IS NULL AND last_error IS NOT NULL ORDER BY seq DESC LIMIT 10",
            )?;
            let last_errors = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Status {
                pending: group(conn, false)?,
                parked: group(conn, true)?,
                oldest_pending_age_seconds: oldest.map(|t| (now_micros() - t) as f64 / 1e6),
                last_errors,
            })
        })
        .await
    }

    async fn retry(&self, target: RetryTarget) -> Result<u64> {
        let n = self
            .with("retry", move |conn| {
                let (filter, param) = sqlite_target(&target);
                let n = conn.execute(
                    &format!(
                        "UPDATE event_outbox SET parked_at = NULL, retry_count = 0, next_attempt_at = 0
                         WHERE published_at IS NULL AND retry_count > 0 AND {filter}"
                    ),
                    params![param],
                )?;
                Ok(n as u64)
            })
            .await?;
        self.notify();
        Ok(n)
    }

    async fn discard(
        &self,
        target: RetryTarget,
        reason: &str,
    ) -> Result<Vec<crate::model::Discarded>> {
        let reason = reason.to_owned();
        let out = self
            .with("discard", move |conn| {
                let (filter, param) = sqlite_target(&target);
                let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let now = now_micros();
                tx.execute(
                    &format!(
                        "INSERT INTO hule_outbox_discarded (seq, id, event_id, topic, event_key, event_data, headers,
                                                            retry_count, last_error, reason, discarded_at)
                         SELECT seq, id, event_id, topic, event_key, event_data, headers, retry_count, last_error, ?2, ?3
                         FROM event_outbox WHERE published_at IS NULL AND retry_count > 0
                           AND (parked_at IS NOT NULL OR next_attempt_at > ?3) AND {filter}"
                    ),
                    params![param, reason, now],
                )?;
                let gone = {
                    let mut stmt = tx.prepare(&format!(
                        "DELETE FROM event_outbox WHERE published_at IS NULL AND retry_count > 0
                           AND (parked_at IS NOT NULL OR next_attempt_at > ?2) AND {filter}
                         RETURNING seq, event_id, topic, event_key, retry_count, last_error"
                    ))?;
                    let rows = stmt.query_map(params![param, now], |r| {
                        Ok(crate::model::Discarded {
                            seq: r.get(0)?,
                            event_id: r.get(1)?,
                            topic: r.get(2)?,
                            key: r.get(3)?,
                            attempts: r.get(4)?,
                            last_error: r.get(5)?,
                        })
                    })?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()?
                };
                tx.commit()?;
                Ok(gone)
            })
            .await?;
        self.notify();
        let mut out = out;
        out.sort_by_key(|d| d.seq);
        Ok(out)
    }

    async fn depth(&self) -> Result<i64> {
        self.with("depth", |conn| {
            conn.query_row(
                "SELECT count(*) FROM event_outbox WHERE published_at IS NULL",
                [],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn gauges(&self) -> Result<Gauges> {
        self.with("gauges", |conn| {
            let now = now_micros();
            conn.query_row(
                "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL),
                        min(created_at) FILTER (WHERE parked_at IS NULL)
                 FROM event_outbox WHERE published_at IS NULL",
                [],
                |r| {
                    let oldest: Option<i64> = r.get(2)?;
                    Ok(Gauges {
                        pending: r.get(0)?,
                        parked: r.get(1)?,
                        oldest_pending_age_seconds: oldest.map(|t| (now - t) as f64 / 1e6),
                    })
                },
            )
        })
        .await
    }

    async fn try_lead(&self) -> Result<bool> {
        let (owner, lease) = (self.owner.clone(), self.lease.as_micros() as i64);
        self.with("relay lease", move |conn| {
            let now = now_micros();
            // Taken when free, expired, or already ours; one statement, so two relays cannot both win.
            conn.execute(
                "INSERT INTO hule_relay_lease (name, owner, expires_at) VALUES ('relay', ?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
                 WHERE hule_relay_lease.owner = excluded.owner OR hule_relay_lease.expires_at < ?3",
                params![&*owner, now + lease, now],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn renew_leadership(&self) -> Result<bool> {
        let (owner, lease) = (self.owner.clone(), self.lease.as_micros() as i64);
        self.with("relay lease", move |conn| {
            let now = now_micros();
            conn.execute(
                "UPDATE hule_relay_lease SET expires_at = ?2 WHERE name = 'relay' AND owner = ?1 AND expires_at >= ?3",
                params![&*owner, now + lease, now],
            )
            .map(|n| n == 1)
        })
        .await
    }

    fn renew_every(&self) -> Duration {
        self.lease / 3
    }
}
