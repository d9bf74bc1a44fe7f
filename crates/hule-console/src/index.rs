//! The index behind the Trace, Events and Dead-letter pages: per record of every registered topic, dead-letter
//! topic and the replay ledger, where it is (topic, partition, offset, time, size) and what identifies it (event id,
//! correlation id, key, event type; for a dead letter its fingerprint, reason, service and where it failed). Never
//! the payload: a page that shows one fetches it from Kafka by its offset. Pages query the index; none scans a topic.
//!
//! The index is a SQLite file (WAL: pages read while the indexer writes), or tables in PostgreSQL that several
//! consoles share (one writes them, holding an advisory lock; see [`crate::db`]). The indexer keeps its read positions
//! in the same transaction as the rows they produced, so a crash neither loses nor doubles a record; it commits them
//! to its consumer group as well, for `hule lag`. Retention is bounded by age and by rows.
//!
//! [`extract`] is the pure part (bytes → a row), tested without Kafka or SQLite.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::{Conn, DbError, Location, PgConn, Val};
use hule_consumer::{Delivery, Fingerprint};
use hule_contracts::headers::names;
use hule_kafka::follow::{Followed, Follower, Start};
use hule_kafka::replay::{LedgerEntry, LEDGER_TOPIC};
use hule_kafka::KafkaSettings;
use tokio_util::sync::CancellationToken;

/// The index's file beside the console's store `store`: `<store>-index`.
pub fn path_beside(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push("-index");
    PathBuf::from(name)
}

/// The consumer group the indexer commits its positions to.
pub const INDEX_GROUP: &str = "hule-console-index";

/// What kind of record a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An event on a registered topic.
    Event = 0,
    /// A dead letter.
    DeadLetter = 1,
}

/// What a dead letter adds to its row.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterFacts {
    /// Its failure fingerprint.
    pub fingerprint: Fingerprint,
    /// Where the failed record was: `topic:partition:offset`.
    pub original: String,
    /// Retries before it was given up.
    pub retries: i64,
    /// The error as written (not normalised).
    pub error: String,
    /// When the consumer gave up, as the record says (with the position, what identifies a dead letter).
    pub failed_at: Option<String>,
}

/// One indexed record.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Broker timestamp, milliseconds since the epoch.
    pub ts_ms: i64,
    /// The key, as text.
    pub key: Option<String>,
    /// The event id (a dead letter's: the failed event's).
    pub event_id: Option<String>,
    /// The correlation id.
    pub correlation_id: Option<String>,
    /// The event type (`event_type` of the envelope).
    pub event_type: Option<String>,
    /// The record's size in bytes (key, value and headers).
    pub size: i64,
    /// Event or dead letter.
    pub kind: Kind,
    /// The dead letter it was replayed from (`X-Replayed-From`).
    pub replayed_from: Option<String>,
    /// A dead letter's facts.
    pub dead_letter: Option<DeadLetterFacts>,
}

/// The envelope fields the index keeps, read from the top level only (the rest is skipped, not parsed).
#[derive(serde::Deserialize, Default)]
struct Ids<'a> {
    #[serde(default, borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    correlation_id: Option<Cow<'a, str>>,
}

/// A dead-letter record's fields the index keeps.
#[derive(serde::Deserialize)]
struct Letter<'a> {
    original_topic: Cow<'a, str>,
    original_partition: i32,
    original_offset: i64,
    #[serde(default, borrow)]
    original_event: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error_message: Cow<'a, str>,
    #[serde(borrow)]
    error_type: Cow<'a, str>,
    #[serde(default)]
    retry_count: i64,
    #[serde(borrow)]
    failed_by_service: Cow<'a, str>,
    #[serde(default, borrow)]
    failed_at: Option<Cow<'a, str>>,
}

/// The reason a dead letter that is not a dead-letter record is grouped under.
pub const UNREADABLE: &str = "unreadable_dead_letter";

/// The row of `d` (read at `ts_ms`).
pub fn extract(d: &Delivery, ts_ms: i64) -> Row {
    let header = |name: &str| d.headers.get(name).map(str::to_owned);
    let size = d.key.as_ref().map_or(0, Vec::len)
        + d.payload.as_ref().map_or(0, Vec::len)
        + d.headers.byte_len();
    let mut row = Row {
        topic: d.topic.clone(),
        partition: d.partition,
        offset: d.offset,
        ts_ms,
        key: d
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        event_id: header(names::EVENT_ID),
        correlation_id: header(names::CORRELATION_ID),
        event_type: header(names::EVENT_TYPE),
        size: size as i64,
        kind: Kind::Event,
        replayed_from: header(names::REPLAYED_FROM),
        dead_letter: None,
    };
    let payload = d.payload.as_deref().unwrap_or_default();
    if d.topic.ends_with(".dlq.v1") {
        row.kind = Kind::DeadLetter;
        row.replayed_from = None;
        match serde_json::from_slice::<Letter<'_>>(payload) {
            Ok(l) => {
                let inner: Ids<'_> = l
                    .original_event
                    .and_then(|raw| serde_json::from_str(raw.get()).ok())
                    .unwrap_or_default();
                let event_type = inner.event_type.as_deref().unwrap_or("-");
                row.event_id = l
                    .event_id
                    .or(inner.event_id)
                    .map(Cow::into_owned)
                    .or(row.event_id);
                row.correlation_id = inner.correlation_id.map(Cow::into_owned);
                row.event_type = inner.event_type.as_deref().map(str::to_owned);
                row.dead_letter = Some(DeadLetterFacts {
                    fingerprint: Fingerprint::of(
                        event_type,
                        &l.failed_by_service,
                        &l.error_type,
                        &l.error_message,
                    ),
                    original: format!(
                        "{}:{}:{}",
                        l.original_topic, l.original_partition, l.original_offset
                    ),
                    retries: l.retry_count,
                    error: l.error_message.into_owned(),
                    failed_at: l.failed_at.map(Cow::into_owned),
                });
            }
            Err(e) => {
                let error = format!("not a dead-letter record: {e}");
                row.dead_letter = Some(DeadLetterFacts {
                    fingerprint: Fingerprint::of("-", "-", UNREADABLE, &error),
                    original: "-".into(),
                    retries: 0,
                    error,
                    failed_at: None,
                });
            }
        }
        return row;
    }
    if row.event_id.is_none() || row.correlation_id.is_none() || row.event_type.is_none() {
        // No standard headers (a producer that does not set them): the envelope's top level.
        if let Ok(ids) = serde_json::from_slice::<Ids<'_>>(payload) {
            row.event_id = row.event_id.or(ids.event_id.map(Cow::into_owned));
            row.correlation_id = row
                .correlation_id
                .or(ids.correlation_id.map(Cow::into_owned));
            row.event_type = row.event_type.or(ids.event_type.map(Cow::into_owned));
        }
    }
    row
}

/// Whether the indexer reads `topic`: a registered event topic (standard or legacy), a dead-letter topic, or the
/// replay ledger.
pub fn indexed_topic(topic: &str) -> bool {
    topic == LEDGER_TOPIC
        || topic.ends_with(".dlq.v1")
        || hule_contracts::EVENTS
            .iter()
            .any(|d| d.topic == topic || d.legacy_topic == topic)
}

/// `topic:partition:offset` split (the topic may itself hold `:`).
fn split_id(id: &str) -> Option<(&str, i32, i64)> {
    let (rest, off) = id.rsplit_once(':')?;
    let (topic, part) = rest.rsplit_once(':')?;
    Some((topic, part.parse().ok()?, off.parse().ok()?))
}

/// An index error.
#[derive(Debug, thiserror::Error)]
#[error("console index {path}: {source}")]
pub struct IndexError {
    path: String,
    #[source]
    source: DbError,
}

/// How much the index keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Rows older than this are deleted.
    pub max_age: Duration,
    /// At most this many rows (the oldest go first).
    pub max_rows: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_rows: 5_000_000,
        }
    }
}

/// A record as a page lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Milliseconds since the epoch.
    pub ts_ms: i64,
    /// Key.
    pub key: Option<String>,
    /// Event id.
    pub event_id: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// Size in bytes.
    pub size: i64,
    /// A dead letter?
    pub dead_letter: bool,
    /// Replayed from this dead letter.
    pub replayed_from: Option<String>,
    /// A dead letter's fingerprint.
    pub fingerprint: Option<String>,
    /// A dead letter's reason.
    pub reason: Option<String>,
    /// Where a dead letter's record failed.
    pub original: Option<String>,
    /// A dead letter's retries.
    pub retries: Option<i64>,
    /// A dead letter's error.
    pub error: Option<String>,
}

impl Hit {
    /// `topic:partition:offset`.
    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.topic, self.partition, self.offset)
    }
}

/// A failure group as the dead-letter pages list it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Group {
    /// The fingerprint's parts.
    pub fingerprint: Fingerprint,
    /// Dead letters.
    pub count: i64,
    /// Of them replayed (the ledger has them).
    pub replayed: i64,
    /// Of them archived.
    pub archived: i64,
    /// First seen, ms.
    pub first_ms: i64,
    /// Last seen, ms.
    pub last_ms: i64,
}

/// What the ledger and the archive say about one dead letter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Disposition {
    /// The ledger's entry, when it was replayed.
    pub replayed: Option<LedgerEntry>,
    /// Archived: (when, by, reason).
    pub archived: Option<(String, String, String)>,
}

/// Per event type: records in a window, and dead letters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EventCounts {
    /// Records in the window.
    pub recent: i64,
    /// All records indexed.
    pub total: i64,
    /// Dead letters of this event.
    pub dead_letters: i64,
    /// Newest record: (topic, partition, offset).
    pub newest: Option<(String, i32, i64)>,
}

const SCHEMA_SQLITE: &str = "
CREATE TABLE IF NOT EXISTS idx_records (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL, ts INTEGER NOT NULL,
    key TEXT, event_id TEXT, correlation_id TEXT, event_type TEXT, size INTEGER NOT NULL,
    kind INTEGER NOT NULL, replayed_from TEXT,
    fingerprint TEXT, reason TEXT, original TEXT, retries INTEGER, error TEXT, failed_at TEXT);
";

const SCHEMA_POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS idx_records (
    id BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL, part BIGINT NOT NULL, off BIGINT NOT NULL, ts BIGINT NOT NULL,
    key TEXT, event_id TEXT, correlation_id TEXT, event_type TEXT, size BIGINT NOT NULL,
    kind BIGINT NOT NULL, replayed_from TEXT,
    fingerprint TEXT, reason TEXT, original TEXT, retries BIGINT, error TEXT, failed_at TEXT);
";

/// The tables and indexes both stores share (integers are BIGINT on PostgreSQL, INTEGER on SQLite: both 64-bit).
const SCHEMA_COMMON: &str = "
-- Dead letters by position (for the ledger's and the archive's matching), a small partial index.
CREATE INDEX IF NOT EXISTS idx_records_dlq_pos ON idx_records (topic, part, off) WHERE kind = 1;
CREATE INDEX IF NOT EXISTS idx_records_event ON idx_records (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_records_corr ON idx_records (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_records_key ON idx_records (key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_records_type ON idx_records (event_type, kind, ts);
CREATE INDEX IF NOT EXISTS idx_records_fp ON idx_records (fingerprint, ts) WHERE fingerprint IS NOT NULL;
CREATE TABLE IF NOT EXISTS idx_fingerprints (
    id TEXT PRIMARY KEY, event_type TEXT NOT NULL, service TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idx_positions (
    topic TEXT NOT NULL, part BIGINT NOT NULL, next BIGINT NOT NULL, PRIMARY KEY (topic, part));
CREATE TABLE IF NOT EXISTS idx_ledger (dead_letter TEXT PRIMARY KEY, fingerprint TEXT, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_ledger_fp ON idx_ledger (fingerprint);
CREATE TABLE IF NOT EXISTS idx_archived (
    dead_letter TEXT PRIMARY KEY, fingerprint TEXT, at TEXT NOT NULL, by TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_archived_fp ON idx_archived (fingerprint);
";

const HIT_COLUMNS: &str =
    "topic, part, off, ts, key, event_id, correlation_id, event_type, size, kind, \
                           replayed_from, fingerprint, reason, original, retries, error";

fn hit(r: &[Val]) -> Hit {
    let i = |n: usize| r.get(n).and_then(Val::i).unwrap_or(0);
    let t = |n: usize| r.get(n).and_then(Val::t);
    Hit {
        topic: t(0).unwrap_or_default(),
        partition: i(1) as i32,
        offset: i(2),
        ts_ms: i(3),
        key: t(4),
        event_id: t(5),
        correlation_id: t(6),
        event_type: t(7),
        size: i(8),
        dead_letter: i(9) == Kind::DeadLetter as i64,
        replayed_from: t(10),
        fingerprint: t(11),
        reason: t(12),
        original: t(13),
        retries: r.get(14).and_then(Val::i),
        error: t(15),
    }
}

/// The index: one writer (the indexer), readers from a small pool; a SQLite file or a PostgreSQL database.
pub struct Index {
    location: Location,
    writer: Mutex<Conn>,
    readers: Mutex<Vec<Conn>>,
}

impl Index {
    /// Opens (and creates) the index in a SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        Self::open_at(&Location::File(path.to_owned()))
    }

    /// Opens (and creates) the index at `location`: a SQLite file, or PostgreSQL (several consoles then share it).
    pub fn open_at(location: &Location) -> Result<Self, IndexError> {
        let mut conn = Self::connect(location)?;
        let schema = if conn.is_pg() {
            SCHEMA_POSTGRES
        } else {
            SCHEMA_SQLITE
        };
        // Consoles starting together on one PostgreSQL database make the tables one at a time (concurrent
        // CREATE ... IF NOT EXISTS can fail on the catalog's unique indexes).
        let ddl = if conn.is_pg() {
            format!(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext('hule-console-ddl')); {schema}{SCHEMA_COMMON} COMMIT;"
            )
        } else {
            format!("{schema}{SCHEMA_COMMON}")
        };
        conn.batch(&ddl).map_err(|e| Self::err(location, e))?;
        Ok(Index {
            location: location.clone(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn err(location: &Location, source: DbError) -> IndexError {
        IndexError {
            path: match location {
                Location::File(p) => p.display().to_string(),
                Location::Postgres(url) => hule_pg::redact(url),
            },
            source,
        }
    }

    fn connect(location: &Location) -> Result<Conn, IndexError> {
        match location {
            Location::Postgres(url) => PgConn::open(url)
                .map(Conn::Pg)
                .map_err(|e| Self::err(location, e)),
            Location::File(path) => {
                let conn =
                    rusqlite::Connection::open(path).map_err(|e| Self::err(location, e.into()))?;
                // WAL: readers never wait for the writer. NORMAL: a power loss may lose the last batches, which
                // the positions (written with them) then read again; nothing is indexed twice or skipped. A
                // checkpoint every 64 MB of WAL instead of 4 MB: measured with `hule bench --only console`, ingest
                // went from 46k to 66k records/s (the default checkpointed, with its fsync, every few batches).
                conn.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
                     PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY;
                     PRAGMA wal_autocheckpoint = 16384;",
                )
                .map_err(|e| Self::err(location, e.into()))?;
                Ok(Conn::Lite(conn))
            }
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, DbError>) -> Result<T, IndexError> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| Self::err(&self.location, e))
    }

    /// Runs `f` in one transaction of the writer (on SQLite `BEGIN IMMEDIATE`: the write lock is taken at BEGIN,
    /// where the busy timeout applies, never upgraded later); rolled back when `f` fails.
    fn transaction<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, DbError>,
    ) -> Result<T, IndexError> {
        self.write(|c| {
            c.batch(if c.is_pg() {
                "BEGIN"
            } else {
                "BEGIN IMMEDIATE"
            })?;
            match f(c) {
                Ok(v) => {
                    c.batch("COMMIT")?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = c.batch("ROLLBACK");
                    Err(e)
                }
            }
        })
    }

    /// Runs `f` on a reader connection (pages run it in `spawn_blocking`).
    fn read<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, DbError>) -> Result<T, IndexError> {
        let popped = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match popped {
            Some(c) => c,
            None => Self::connect(&self.location)?,
        };
        let out = f(&mut conn).map_err(|e| Self::err(&self.location, e));
        // A connection that failed is not kept (it may be the one that broke).
        if out.is_ok() {
            let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < 8 {
                pool.push(conn);
            }
        }
        out
    }

    /// Whether this console writes the index: always for a SQLite file (one console's); on PostgreSQL the one
    /// console holding a session-level advisory lock on its writer connection, so that consoles sharing the index
    /// do not index the same records each (the others serve pages from it and try again now and then).
    pub fn try_lead(&self) -> Result<bool, IndexError> {
        self.write(|c| {
            if !c.is_pg() {
                return Ok(true);
            }
            // The key names the schema: deployments in other schemas of one database do not share it.
            Ok(c.one(
                "SELECT pg_try_advisory_lock(hashtext('hule-console-index:' || current_schema()))",
                &[],
            )?
            .and_then(|v| v.i())
                == Some(1))
        })
    }

    /// Whether this console still holds the lead (its writer connection answers and holds the lock).
    pub fn still_leads(&self) -> bool {
        self.write(|c| {
            if !c.is_pg() {
                return Ok(true);
            }
            Ok(c.one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                   AND objid = (hashtext('hule-console-index:' || current_schema()))::oid
                   AND granted",
                &[],
            )?
            .and_then(|v| v.i())
                == Some(1))
        })
        .unwrap_or(false)
    }

    /// Gives the lead up (when the console stops), so another console takes over at once.
    pub fn release_lead(&self) {
        let _ = self.write(|c| {
            if c.is_pg() {
                c.one(
                    "SELECT pg_advisory_unlock(hashtext('hule-console-index:' || current_schema()))",
                    &[],
                )?;
            }
            Ok(())
        });
    }

    /// Opens the writer's connection again (after it failed: PostgreSQL restarted, a failover).
    pub fn reconnect_writer(&self) -> Result<(), IndexError> {
        if !matches!(self.location, Location::Postgres(_)) {
            return Ok(());
        }
        let fresh = Self::connect(&self.location)?;
        *self.writer.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Forgets what was indexed of one partition (its topic was made again): its rows, its position, and the
    /// archive entries of its dead letters.
    pub fn forget_partition(&self, topic: &str, partition: i32) -> Result<(), IndexError> {
        self.transaction(|c| {
            let (t, p) = (Val::T(topic.to_owned()), Val::I(i64::from(partition)));
            c.exec(
                "DELETE FROM idx_records WHERE topic = ?1 AND part = ?2",
                &[t.clone(), p.clone()],
            )?;
            c.exec(
                "DELETE FROM idx_positions WHERE topic = ?1 AND part = ?2",
                &[t, p],
            )?;
            c.exec(
                "DELETE FROM idx_archived WHERE substr(dead_letter, 1, length(?1)) = ?1",
                &[Val::T(format!("{topic}:{partition}:"))],
            )?;
            Ok(())
        })
    }

    /// The positions kept: the next offset of each partition read.
    pub fn positions(&self) -> Result<HashMap<(String, i32), i64>, IndexError> {
        self.read(positions_of)
    }

    /// Writes `records` and the positions after them in one transaction. Ledger records update the ledger table.
    /// The positions are what keeps a record from being indexed twice (so the table needs no unique index on the
    /// position: one index fewer to maintain per row); a record below its partition's kept position means the
    /// partition was reset (below).
    pub fn ingest(&self, records: &[Followed]) -> Result<usize, IndexError> {
        self.transaction(|conn| {
            let kept = positions_of(conn)?;
            let mut positions: HashMap<(&str, i32), i64> = HashMap::new();
            let mut seen_fp: std::collections::HashSet<String> = Default::default();
            let mut n = 0;
            for f in records {
                let d = &f.delivery;
                let part_key = (d.topic.clone(), d.partition);
                if kept.get(&part_key).is_some_and(|next| d.offset < *next) {
                    // Indexed already (a retry after a commit whose answer was lost): skipped. A partition made
                    // again is noticed at assignment, where its end is below its kept position.
                    continue;
                }
                positions.insert((d.topic.as_str(), d.partition), d.offset + 1);
                if d.topic == LEDGER_TOPIC {
                    // A compacted topic of JSON entries; an entry that does not parse is not one.
                    if let Some(e) = d
                        .payload
                        .as_deref()
                        .and_then(|p| serde_json::from_slice::<LedgerEntry>(p).ok())
                    {
                        let text = serde_json::to_string(&e).unwrap_or_default();
                        conn.exec(
                            "INSERT INTO idx_ledger (dead_letter, fingerprint, entry) VALUES (?1, ?2, ?3)
                             ON CONFLICT (dead_letter) DO UPDATE
                                 SET fingerprint = excluded.fingerprint, entry = excluded.entry",
                            &[Val::T(e.dead_letter), Val::T(e.fingerprint), Val::T(text)],
                        )?;
                    }
                    continue;
                }
                let row = extract(d, f.timestamp_ms.unwrap_or(0));
                let dl = row.dead_letter.as_ref();
                if let Some(dl) = dl {
                    if seen_fp.insert(dl.fingerprint.id.clone()) {
                        let fp = &dl.fingerprint;
                        conn.exec(
                            "INSERT INTO idx_fingerprints (id, event_type, service, reason, message)
                             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                            &[
                                Val::T(fp.id.clone()),
                                Val::T(fp.event_type.clone()),
                                Val::T(fp.service.clone()),
                                Val::T(fp.reason.clone()),
                                Val::T(fp.message.clone()),
                            ],
                        )?;
                    }
                }
                n += conn.exec(
                    "INSERT INTO idx_records (topic, part, off, ts, key, event_id, correlation_id,
                         event_type, size, kind, replayed_from, fingerprint, reason, original, retries, error,
                         failed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                    &[
                        Val::T(row.topic.clone()),
                        Val::I(i64::from(row.partition)),
                        Val::I(row.offset),
                        Val::I(row.ts_ms),
                        Val::opt_t(row.key.as_deref()),
                        Val::opt_t(row.event_id.as_deref()),
                        Val::opt_t(row.correlation_id.as_deref()),
                        Val::opt_t(row.event_type.as_deref()),
                        Val::I(row.size),
                        Val::I(row.kind as i64),
                        Val::opt_t(row.replayed_from.as_deref()),
                        Val::opt_t(dl.map(|d| d.fingerprint.id.as_str())),
                        Val::opt_t(dl.map(|d| d.fingerprint.reason.as_str())),
                        Val::opt_t(dl.map(|d| d.original.as_str())),
                        Val::opt_i(dl.map(|d| d.retries)),
                        Val::opt_t(dl.map(|d| d.error.as_str())),
                        Val::opt_t(dl.and_then(|d| d.failed_at.as_deref())),
                    ],
                )?;
            }
            // A partition forgotten above starts again at its new position.
            for ((topic, part), next) in &positions {
                conn.exec(
                    "INSERT INTO idx_positions (topic, part, next) VALUES (?1, ?2, ?3)
                     ON CONFLICT (topic, part) DO UPDATE SET next = excluded.next",
                    &[Val::T((*topic).to_owned()), Val::I(i64::from(*part)), Val::I(*next)],
                )?;
            }
            Ok(n)
        })
    }

    /// Deletes what `retention` no longer keeps; returns the rows deleted. By age it walks the table from its
    /// oldest rows (by id, which follows ingestion) in chunks, so no pass scans the whole table.
    pub fn enforce(&self, retention: Retention, now_ms: i64) -> Result<usize, IndexError> {
        let oldest = now_ms - retention.max_age.as_millis() as i64;
        self.write(|c| {
            let mut deleted = 0;
            let mut after = 0i64;
            for _ in 0..100 {
                let row = c.query(
                    "SELECT max(id), sum(CASE WHEN ts < ?2 THEN 1 ELSE 0 END) FROM
                         (SELECT id, ts FROM idx_records WHERE id > ?1 ORDER BY id LIMIT 5000) chunk",
                    &[Val::I(after), Val::I(oldest)],
                )?;
                let row = row.into_iter().next().unwrap_or_default();
                let Some(last) = row.first().and_then(Val::i) else { break };
                if row.get(1).and_then(Val::i).unwrap_or(0) == 0 {
                    break;
                }
                deleted += c.exec(
                    "DELETE FROM idx_records WHERE id > ?1 AND id <= ?2 AND ts < ?3",
                    &[Val::I(after), Val::I(last), Val::I(oldest)],
                )?;
                after = last;
            }
            // By rows: the oldest first, in chunks (each within the statement timeout).
            let count = c.one("SELECT count(*) FROM idx_records", &[])?.and_then(|v| v.i()).unwrap_or(0);
            let mut excess = count - retention.max_rows;
            while excess > 0 {
                let n = c.exec(
                    "DELETE FROM idx_records WHERE id IN (SELECT id FROM idx_records ORDER BY id LIMIT ?1)",
                    &[Val::I(excess.min(10_000))],
                )?;
                if n == 0 {
                    break;
                }
                deleted += n;
                excess -= n as i64;
            }
            Ok(deleted)
        })
    }

    /// Rows indexed.
    pub fn count(&self) -> Result<i64, IndexError> {
        self.read(|c| {
            Ok(c.one("SELECT count(*) FROM idx_records", &[])?
                .and_then(|v| v.i())
                .unwrap_or(0))
        })
    }

    /// Every record whose event id, correlation id or key is `q`, oldest first (at most `limit`).
    pub fn trace(&self, q: &str, limit: i64) -> Result<Vec<Hit>, IndexError> {
        self.read(|c| {
            Ok(c.query(
                &format!(
                    "SELECT {HIT_COLUMNS} FROM idx_records WHERE id IN (
                         SELECT id FROM idx_records WHERE event_id = ?1
                         UNION SELECT id FROM idx_records WHERE correlation_id = ?1
                         UNION SELECT id FROM idx_records WHERE key = ?1)
                     ORDER BY ts, topic, part, off LIMIT ?2"
                ),
                &[Val::T(q.to_owned()), Val::I(limit)],
            )?
            .iter()
            .map(|r| hit(r))
            .collect())
        })
    }

    /// Every failure group, the largest first.
    pub fn groups(&self) -> Result<Vec<Group>, IndexError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT f.id, f.event_type, f.service, f.reason, f.message, g.n, g.first, g.last,
                        (SELECT count(*) FROM idx_ledger l WHERE l.fingerprint = f.id),
                        (SELECT count(*) FROM idx_archived a WHERE a.fingerprint = f.id)
                 FROM (SELECT fingerprint, count(*) AS n, min(ts) AS first, max(ts) AS last
                       FROM idx_records WHERE fingerprint IS NOT NULL GROUP BY fingerprint) g
                 JOIN idx_fingerprints f ON f.id = g.fingerprint
                 ORDER BY g.n DESC, f.id",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    let t = |n: usize| r[n].t().unwrap_or_default();
                    let i = |n: usize| r[n].i().unwrap_or(0);
                    Group {
                        fingerprint: Fingerprint {
                            id: t(0),
                            event_type: t(1),
                            service: t(2),
                            reason: t(3),
                            message: t(4),
                        },
                        count: i(5),
                        first_ms: i(6),
                        last_ms: i(7),
                        replayed: i(8),
                        archived: i(9),
                    }
                })
                .collect())
        })
    }

    /// Dead letters by reason: (reason, in the last hour, in the last day, all).
    pub fn reasons(&self, now_ms: i64) -> Result<Vec<(String, i64, i64, i64)>, IndexError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT reason, sum(CASE WHEN ts >= ?1 THEN 1 ELSE 0 END),
                        sum(CASE WHEN ts >= ?2 THEN 1 ELSE 0 END), count(*) FROM idx_records
                 WHERE fingerprint IS NOT NULL GROUP BY reason ORDER BY reason",
                &[Val::I(now_ms - 3_600_000), Val::I(now_ms - 86_400_000)],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r[0].t().unwrap_or_default(),
                        r[1].i().unwrap_or(0),
                        r[2].i().unwrap_or(0),
                        r[3].i().unwrap_or(0),
                    )
                })
                .collect())
        })
    }

    /// The dead letters of fingerprint `id`, newest first, `limit` from `skip`.
    pub fn group_records(&self, id: &str, skip: i64, limit: i64) -> Result<Vec<Hit>, IndexError> {
        self.read(|c| {
            Ok(c.query(
                &format!(
                    "SELECT {HIT_COLUMNS} FROM idx_records WHERE fingerprint = ?1 ORDER BY ts DESC, id DESC
                     LIMIT ?2 OFFSET ?3"
                ),
                &[Val::T(id.to_owned()), Val::I(limit), Val::I(skip)],
            )?
            .iter()
            .map(|r| hit(r))
            .collect())
        })
    }

    /// The fingerprint `id`'s group, when there is one.
    pub fn group(&self, id: &str) -> Result<Option<Group>, IndexError> {
        Ok(self.groups()?.into_iter().find(|g| g.fingerprint.id == id))
    }

    /// What the ledger and the archive say about each of `dead_letters`.
    pub fn dispositions(
        &self,
        dead_letters: &[String],
    ) -> Result<HashMap<String, Disposition>, IndexError> {
        self.read(|c| {
            let mut out = HashMap::new();
            for id in dead_letters {
                let mut replayed = c
                    .one(
                        "SELECT entry FROM idx_ledger WHERE dead_letter = ?1",
                        &[Val::T(id.clone())],
                    )?
                    .and_then(|v| v.t())
                    .and_then(|t| serde_json::from_str::<LedgerEntry>(&t).ok());
                // The ledger's entry is this dead letter's only when it failed at the same time (a topic made
                // again reuses positions); a row aged out of the index cannot be checked and keeps its entry.
                if let (Some(entry), Some((topic, part, off))) = (&replayed, split_id(id)) {
                    let failed_at = c
                        .one(
                            "SELECT failed_at FROM idx_records
                             WHERE topic = ?1 AND part = ?2 AND off = ?3 AND kind = 1",
                            &[
                                Val::T(topic.to_owned()),
                                Val::I(i64::from(part)),
                                Val::I(off),
                            ],
                        )?
                        .and_then(|v| v.t());
                    if let Some(at) = failed_at {
                        let same = serde_json::from_value::<hule_contracts::Timestamp>(at.into())
                            .is_ok_and(|t| t == entry.failed_at);
                        if !same {
                            replayed = None;
                        }
                    }
                }
                let archived = c
                    .query(
                        "SELECT at, by, reason FROM idx_archived WHERE dead_letter = ?1",
                        &[Val::T(id.clone())],
                    )?
                    .into_iter()
                    .next()
                    .map(|r| {
                        (
                            r[0].t().unwrap_or_default(),
                            r[1].t().unwrap_or_default(),
                            r[2].t().unwrap_or_default(),
                        )
                    });
                if replayed.is_some() || archived.is_some() {
                    out.insert(id.clone(), Disposition { replayed, archived });
                }
            }
            Ok(out)
        })
    }

    /// The ledger entries of a replay run or of dead letters whose event id is `q`.
    pub fn ledger_for(&self, dead_letters: &[String]) -> Result<Vec<LedgerEntry>, IndexError> {
        Ok(self
            .dispositions(dead_letters)?
            .into_values()
            .filter_map(|d| d.replayed)
            .collect())
    }

    /// Marks `dead_letters` (id, fingerprint) archived by `by` for `reason`; returns how many were not already.
    pub fn archive(
        &self,
        dead_letters: &[(String, String)],
        by: &str,
        reason: &str,
    ) -> Result<usize, IndexError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.transaction(|c| {
            let mut n = 0;
            for (id, fp) in dead_letters {
                n += c.exec(
                    "INSERT INTO idx_archived (dead_letter, fingerprint, at, by, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (dead_letter) DO NOTHING",
                    &[
                        Val::T(id.clone()),
                        Val::T(fp.clone()),
                        Val::T(at.clone()),
                        Val::T(by.to_owned()),
                        Val::T(reason.to_owned()),
                    ],
                )?;
            }
            Ok(n)
        })
    }

    /// Per event type: records since `since_ms`, all, dead letters, and the newest record.
    pub fn event_counts(&self, since_ms: i64) -> Result<HashMap<String, EventCounts>, IndexError> {
        self.read(|c| {
            let rows = c.query(
                "SELECT event_type, kind, sum(CASE WHEN ts >= ?1 THEN 1 ELSE 0 END), count(*) FROM idx_records
                 WHERE event_type IS NOT NULL GROUP BY event_type, kind",
                &[Val::I(since_ms)],
            )?;
            let mut out: HashMap<String, EventCounts> = HashMap::new();
            for r in &rows {
                let e = out.entry(r[0].t().unwrap_or_default()).or_default();
                let (recent, all) = (r[2].i().unwrap_or(0), r[3].i().unwrap_or(0));
                if r[1].i() == Some(Kind::DeadLetter as i64) {
                    e.dead_letters += all;
                } else {
                    e.recent += recent;
                    e.total += all;
                }
            }
            for (event_type, counts) in out.iter_mut() {
                counts.newest = c
                    .query(
                        "SELECT topic, part, off FROM idx_records WHERE event_type = ?1 AND kind = 0
                         ORDER BY ts DESC LIMIT 1",
                        &[Val::T(event_type.clone())],
                    )?
                    .into_iter()
                    .next()
                    .map(|r| {
                        (
                            r[0].t().unwrap_or_default(),
                            r[1].i().unwrap_or(0) as i32,
                            r[2].i().unwrap_or(0),
                        )
                    });
            }
            Ok(out)
        })
    }

    /// The newest `limit` records of `event_type` (events, not dead letters).
    pub fn recent_of(&self, event_type: &str, limit: i64) -> Result<Vec<Hit>, IndexError> {
        self.read(|c| {
            Ok(c.query(
                &format!(
                    "SELECT {HIT_COLUMNS} FROM idx_records WHERE event_type = ?1 AND kind = 0
                     ORDER BY ts DESC LIMIT ?2"
                ),
                &[Val::T(event_type.to_owned()), Val::I(limit)],
            )?
            .iter()
            .map(|r| hit(r))
            .collect())
        })
    }
}

fn positions_of(c: &mut Conn) -> Result<HashMap<(String, i32), i64>, DbError> {
    Ok(c.query("SELECT topic, part, next FROM idx_positions", &[])?
        .iter()
        .map(|r| {
            (
                (r[0].t().unwrap_or_default(), r[1].i().unwrap_or(0) as i32),
                r[2].i().unwrap_or(0),
            )
        })
        .collect())
}

/// How the indexer is doing, for the pages' banners and the overview.
#[derive(Debug, Default)]
pub struct IndexerStatus {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
struct StatusInner {
    error: Option<String>,
    last_record: Option<Instant>,
    indexed: u64,
    partitions: usize,
    /// Another console writes the shared index.
    standby: bool,
}

impl IndexerStatus {
    fn set(&self, f: impl FnOnce(&mut StatusInner)) {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Why the indexer cannot read Kafka now, if it cannot.
    pub fn error(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .error
            .clone()
    }

    /// Records indexed since the console started, and partitions followed.
    pub fn progress(&self) -> (u64, usize) {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (s.indexed, s.partitions)
    }

    /// Whether another console writes the shared index (this one serves pages from it).
    pub fn standby(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).standby
    }

    /// Seconds since the last record was indexed.
    pub fn idle_for(&self) -> Option<Duration> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_record
            .map(|t| t.elapsed())
    }
}

/// Reads every indexed topic into `index` until `stop` (a blocking loop: run it on its own thread). Kafka being
/// down is shown in `status` and waited out; an index that cannot be written stops the loop with that error.
pub fn run_indexer(
    kafka: &KafkaSettings,
    index: &Index,
    status: &IndexerStatus,
    retention: Retention,
    stop: &CancellationToken,
) -> Result<(), IndexError> {
    // Leading: consoles sharing a PostgreSQL index take turns; losing the writer's connection (and with it the
    // lock) sends this one back to waiting for its turn, on a new connection.
    let mut led = false;
    while !stop.is_cancelled() {
        let leads = index.try_lead().unwrap_or_else(|e| {
            status.set(|s| s.error = Some(e.to_string()));
            let _ = index.reconnect_writer();
            false
        });
        if !leads {
            status.set(|s| s.standby = true);
            pause(stop, Duration::from_secs(5));
            continue;
        }
        status.set(|s| s.standby = false);
        led = true;
        follow_while_leading(kafka, index, status, retention, stop);
    }
    if led {
        index.release_lead();
    }
    Ok(())
}

/// Sleeps `d`, or less when `stop` fires.
fn pause(stop: &CancellationToken, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.is_cancelled() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Indexes until `stop`, or until the index cannot be written and this console no longer holds the lead.
fn follow_while_leading(
    kafka: &KafkaSettings,
    index: &Index,
    status: &IndexerStatus,
    retention: Retention,
    stop: &CancellationToken,
) {
    let timeout = Duration::from_secs(10);
    let mut positions = loop {
        match index.positions() {
            Ok(p) => break p,
            Err(e) => {
                status.set(|s| s.error = Some(e.to_string()));
                if stop.is_cancelled() || !index.still_leads() {
                    let _ = index.reconnect_writer();
                    return;
                }
                pause(stop, Duration::from_secs(2));
            }
        }
    };
    let mut follower: Option<Follower> = None;
    let mut assigned: Vec<(String, i32)> = Vec::new();
    let mut next_refresh = Instant::now();
    let mut next_retention = Instant::now();
    while !stop.is_cancelled() {
        let f = match &follower {
            Some(f) => f,
            None => match Follower::new(kafka, INDEX_GROUP) {
                Ok(f) => follower.insert(f),
                Err(e) => {
                    status.set(|s| s.error = Some(e.to_string()));
                    pause(stop, Duration::from_secs(1));
                    continue;
                }
            },
        };
        if Instant::now() >= next_refresh {
            match f.topics(indexed_topic, timeout) {
                Ok(topics) => {
                    let wanted: Vec<(String, i32)> = topics
                        .iter()
                        .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
                        .collect();
                    if wanted != assigned {
                        // A partition whose end is now below the position kept for it was made again (its topic
                        // deleted and created): what the index has of it describes records that are gone.
                        let kept: Vec<(String, i32)> = wanted
                            .iter()
                            .filter(|p| positions.contains_key(*p))
                            .cloned()
                            .collect();
                        let ends = match f.end_offsets(&kept, timeout) {
                            Ok(ends) => ends,
                            Err(e) => {
                                // Not assigned without the check: tried again at the next refresh.
                                status.set(|s| s.error = Some(e.to_string()));
                                next_refresh = Instant::now() + Duration::from_secs(2);
                                continue;
                            }
                        };
                        {
                            for (part, end) in ends {
                                if positions.get(&part).is_some_and(|next| end < *next) {
                                    tracing::warn!(
                                        topic = %part.0,
                                        partition = part.1,
                                        end,
                                        "console index: a partition ends below its kept position (topic made \
                                         again?); forgetting what was indexed of it"
                                    );
                                    if index.forget_partition(&part.0, part.1).is_ok() {
                                        positions.remove(&part);
                                    }
                                }
                            }
                        }
                        // Re-assigning keeps every partition's place: the positions read so far are passed in.
                        if let Some(f) = follower.as_mut() {
                            if let Err(e) = f.assign(&wanted, &positions, Start::Beginning) {
                                status.set(|s| s.error = Some(e.to_string()));
                            } else {
                                assigned = wanted;
                            }
                        }
                    }
                    status.set(|s| {
                        s.error = None;
                        s.partitions = assigned.len();
                    });
                    next_refresh = Instant::now() + Duration::from_secs(5);
                }
                Err(e) => {
                    status.set(|s| s.error = Some(e.to_string()));
                    next_refresh = Instant::now() + Duration::from_secs(2);
                }
            }
        }
        let Some(f) = follower.as_ref() else { continue };
        let (batch, error) = f.poll(5_000, Duration::from_millis(200));
        if !batch.is_empty() {
            // A partition delivering below the position it was assigned at was reset: its topic was deleted and
            // made again (librdkafka restarted it from its beginning). What the index has of it is forgotten, so
            // the new records are indexed instead of skipped as "already indexed".
            let mut first: HashMap<(String, i32), i64> = HashMap::new();
            for r in &batch {
                first
                    .entry((r.delivery.topic.clone(), r.delivery.partition))
                    .or_insert(r.delivery.offset);
            }
            for (part, offset) in first {
                if positions.get(&part).is_some_and(|next| offset < *next) {
                    tracing::warn!(topic = %part.0, partition = part.1, offset,
                        "console index: a partition starts again below its position (topic made again?); \
                         forgetting what was indexed of it");
                    if index.forget_partition(&part.0, part.1).is_ok() {
                        positions.remove(&part);
                    }
                }
            }
            // The batch is written or the loop waits: the follower has moved past it, so it is never dropped. A
            // retry after a commit whose answer was lost writes nothing twice (rows below the kept positions are
            // skipped). A writer that lost its connection reconnects; if the lead went with it, this console stops
            // indexing and waits for its turn (the new leader reads from the positions kept).
            let mut delay = Duration::from_millis(200);
            while let Err(e) = index.ingest(&batch) {
                tracing::warn!(error = %e, "console index: a batch could not be written; trying again");
                status.set(|s| s.error = Some(format!("the index cannot be written: {e}")));
                if stop.is_cancelled() {
                    return;
                }
                pause(stop, delay);
                delay = (delay * 2).min(Duration::from_secs(10));
                if !index.still_leads() {
                    let _ = index.reconnect_writer();
                    return;
                }
            }
            let mut moved: HashMap<(String, i32), i64> = HashMap::new();
            for r in &batch {
                moved.insert(
                    (r.delivery.topic.clone(), r.delivery.partition),
                    r.delivery.offset + 1,
                );
            }
            let commit: Vec<_> = moved.iter().map(|(k, v)| (k.clone(), *v)).collect();
            // Best effort: the index's own positions are the truth; the group's are for `hule lag`.
            let _ = f.commit(&commit);
            positions.extend(moved);
            let n = batch.len() as u64;
            status.set(|s| {
                s.indexed += n;
                s.last_record = Some(Instant::now());
                s.error = None;
            });
        }
        if let Some(e) = error {
            status.set(|s| s.error = Some(e.to_string()));
            // Ask the cluster again soon: the banner clears once it answers.
            next_refresh = next_refresh.min(Instant::now() + Duration::from_secs(2));
        }
        if Instant::now() >= next_retention {
            let now = chrono::Utc::now().timestamp_millis();
            if let Err(e) = index.enforce(retention, now) {
                tracing::warn!(error = %e, "console index: retention failed");
            }
            next_retention = Instant::now() + Duration::from_secs(60);
        }
    }
}

/// Starts [`run_indexer`] on its own thread.
pub fn spawn_indexer(
    kafka: KafkaSettings,
    index: Arc<Index>,
    status: Arc<IndexerStatus>,
    retention: Retention,
    stop: CancellationToken,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("console-index".into())
        .spawn(move || {
            if let Err(e) = run_indexer(&kafka, &index, &status, retention, &stop) {
                tracing::error!(error = %e, "console index: stopped");
                status.set(|s| s.error = Some(format!("the index cannot be written: {e}")));
            }
        })
        .expect("spawn the indexer thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hule_consumer::{DeadLetter, Failure};
    use hule_contracts::Headers;

    fn delivery(topic: &str, headers: Headers, payload: &[u8]) -> Delivery {
        Delivery {
            topic: topic.into(),
            partition: 1,
            offset: 7,
            key: Some(b"batch-1".to_vec()),
            headers,
            invalid_headers: Vec::new(),
            payload: Some(payload.to_vec()),
        }
    }

    const ENVELOPE: &str = r#"{"event_id":"e-1","event_type":"huleedu.x.v1","correlation_id":"c-1","data":{"a":[1,2,{"b":"c"}]}}"#;

    #[test]
    fn an_event_without_headers_is_identified_from_its_envelope() {
        let row = extract(
            &delivery("huleedu.x.v1", Headers::default(), ENVELOPE.as_bytes()),
            5,
        );
        assert_eq!(row.event_id.as_deref(), Some("e-1"));
        assert_eq!(row.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(row.event_type.as_deref(), Some("huleedu.x.v1"));
        assert_eq!(row.key.as_deref(), Some("batch-1"));
        assert_eq!(row.kind, Kind::Event);
        assert_eq!(row.size, 7 + ENVELOPE.len() as i64);
    }

    #[test]
    fn headers_win_and_a_replay_names_its_dead_letter() {
        let h = Headers::from(vec![
            (names::EVENT_ID.into(), "from-header".into()),
            (names::REPLAYED_FROM.into(), "t.dlq.v1:0:3".into()),
        ]);
        let row = extract(&delivery("huleedu.x.v1", h, ENVELOPE.as_bytes()), 5);
        assert_eq!(row.event_id.as_deref(), Some("from-header"));
        assert_eq!(row.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(row.replayed_from.as_deref(), Some("t.dlq.v1:0:3"));
    }

    #[test]
    fn bad_bytes_are_a_row_without_ids() {
        let row = extract(&delivery("huleedu.x.v1", Headers::default(), b"\xff{"), 5);
        assert_eq!((row.event_id, row.correlation_id), (None, None));
    }

    #[test]
    fn a_dead_letter_carries_its_fingerprint_and_original_ids() {
        let d = delivery("huleedu.x.v1", Headers::default(), ENVELOPE.as_bytes());
        let letter = DeadLetter::build(&d, &Failure::Permanent("store refused 42".into()), "svc");
        let dl = delivery(&letter.topic, letter.headers.clone(), &letter.value);
        let row = extract(&dl, 9);
        assert_eq!(row.kind, Kind::DeadLetter);
        assert_eq!(row.event_id.as_deref(), Some("e-1"));
        assert_eq!(row.correlation_id.as_deref(), Some("c-1"));
        let facts = row.dead_letter.expect("facts");
        assert_eq!(facts.original, "huleedu.x.v1:1:7");
        assert_eq!(facts.fingerprint.service, "svc");
        assert_eq!(facts.fingerprint.event_type, "huleedu.x.v1");
        assert_eq!(facts.fingerprint.message, "store refused <n>");
        // Not a dead-letter record: grouped as unreadable, with why.
        let bad = extract(&delivery("x.dlq.v1", Headers::default(), b"{\"trunc"), 9);
        let facts = bad.dead_letter.expect("facts");
        assert_eq!(facts.fingerprint.reason, UNREADABLE);
        assert!(facts.error.contains("not a dead-letter record"));
    }

    #[test]
    fn the_index_finds_by_any_id_keeps_positions_and_drops_by_age_and_rows() {
        on_both(finds_keeps_drops);
    }

    /// Runs `test` on a SQLite index and on a PostgreSQL one (a schema of its own in the test database).
    fn on_both(test: fn(Index)) {
        let dir =
            std::env::temp_dir().join(format!("hule-index-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        test(Index::open(&dir.join("i.db")).expect("open"));
        let _ = std::fs::remove_dir_all(&dir);
        let url = tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(hule_outbox::testkit::pg_schema_url("console_index"));
        test(Index::open_at(&Location::Postgres(url)).expect("open on PostgreSQL"));
    }

    fn finds_keeps_drops(index: Index) {
        let followed: Vec<Followed> = (0..10)
            .map(|i| {
                let mut d = delivery("huleedu.x.v1", Headers::default(), ENVELOPE.as_bytes());
                d.offset = i;
                Followed {
                    delivery: d,
                    timestamp_ms: Some(1_000 + i),
                }
            })
            .collect();
        assert_eq!(index.ingest(&followed).expect("ingest"), 10);
        assert_eq!(index.count().expect("count"), 10);
        assert_eq!(
            index.positions().expect("positions")[&("huleedu.x.v1".to_owned(), 1)],
            10
        );
        // Read again (a retry after a commit whose answer was lost): nothing written twice.
        assert_eq!(index.ingest(&followed[..3]).expect("ingest"), 0);
        assert_eq!(index.count().expect("count"), 10);
        // The topic made again: the partition forgotten, then indexed anew.
        index.forget_partition("huleedu.x.v1", 1).expect("forget");
        assert_eq!(index.count().expect("count"), 0);
        assert!(index.positions().expect("positions").is_empty());
        assert_eq!(index.ingest(&followed).expect("ingest"), 10);
        // A key with a NUL byte (Confluent's wire format starts with one): indexed, never refused forever.
        let mut nul = followed[0].clone();
        nul.delivery.partition = 2;
        nul.delivery.key = Some(b"\0schema-1".to_vec());
        assert_eq!(index.ingest(&[nul]).expect("a NUL in a key"), 1);
        index.forget_partition("huleedu.x.v1", 2).expect("forget");
        for q in ["e-1", "c-1", "batch-1"] {
            assert_eq!(index.trace(q, 100).expect("trace").len(), 10, "{q}");
        }
        assert!(index.trace("nothing", 100).expect("trace").is_empty());
        let counts = index.event_counts(1_005).expect("counts");
        assert_eq!(
            (counts["huleedu.x.v1"].recent, counts["huleedu.x.v1"].total),
            (5, 10)
        );
        let retention = Retention {
            max_age: Duration::from_millis(10),
            max_rows: 4,
        };
        index.enforce(retention, 1_012).expect("enforce");
        // Age keeps ts >= 1002 (8 rows), rows keep the newest 4.
        assert_eq!(index.count().expect("count"), 4);
    }

    #[test]
    fn a_ledger_entry_counts_only_for_the_dead_letter_that_failed_when_it_says() {
        on_both(ledger_matches_failed_at);
    }

    fn ledger_matches_failed_at(index: Index) {
        let d = delivery("huleedu.x.v1", Headers::default(), ENVELOPE.as_bytes());
        let letter = DeadLetter::build(&d, &Failure::Permanent("no".into()), "svc");
        let record: hule_consumer::DeadLetterRecord =
            serde_json::from_slice(&letter.value).expect("record");
        let at_dlq = |offset: i64, payload: Vec<u8>, topic: &str| Followed {
            delivery: Delivery {
                topic: topic.into(),
                partition: 0,
                offset,
                key: None,
                headers: Headers::default(),
                invalid_headers: Vec::new(),
                payload: Some(payload),
            },
            timestamp_ms: Some(1),
        };
        let entry = |failed_at: hule_contracts::Timestamp| LedgerEntry {
            dead_letter: format!("{}:0:0", letter.topic),
            failed_at,
            original: "huleedu.x.v1:1:7".into(),
            event_id: None,
            fingerprint: "f".into(),
            to_topic: "huleedu.x.v1".into(),
            replays: 1,
            replay_id: "r".into(),
            replayed_at: record.failed_at,
            by: "olga".into(),
            note: None,
        };
        let id = format!("{}:0:0", letter.topic);
        let other = hule_contracts::Timestamp::from_datetime(
            chrono::Utc::now() - chrono::Duration::days(3),
        );
        index
            .ingest(&[
                at_dlq(0, letter.value.clone(), &letter.topic),
                at_dlq(
                    0,
                    serde_json::to_vec(&entry(other)).expect("json"),
                    LEDGER_TOPIC,
                ),
            ])
            .expect("ingest");
        let got = index
            .dispositions(std::slice::from_ref(&id))
            .expect("dispositions");
        assert!(
            got.get(&id).is_none_or(|d| d.replayed.is_none()),
            "another dead letter's entry"
        );
        index
            .ingest(&[at_dlq(
                1,
                serde_json::to_vec(&entry(record.failed_at)).expect("json"),
                LEDGER_TOPIC,
            )])
            .expect("ingest");
        let got = index
            .dispositions(std::slice::from_ref(&id))
            .expect("dispositions");
        assert!(got[&id].replayed.is_some(), "its own entry");
    }
}
