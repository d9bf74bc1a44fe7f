//! The console's own store (SQLite): the audit log, and the key that signs session cookies (made on first start,
//! so sessions outlive a restart).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

/// One audited login or action.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Who (or the name tried, for a failed login).
    pub user: String,
    /// What: `login`, `login_refused`, `replay`, `replay_dry_run`, `refused`, …
    pub action: String,
    /// On what (a fingerprint, a page).
    pub target: String,
    /// How many records.
    pub records: i64,
    /// The result.
    pub result: String,
}

/// The store.
pub struct Store {
    conn: Mutex<Connection>,
}

/// A store error.
#[derive(Debug, thiserror::Error)]
#[error("console store {path}: {source}")]
pub struct StoreError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

impl Store {
    /// Opens (and creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError {
            path: path.display().to_string(),
            source,
        };
        // The store holds the key that signs sessions: readable by its owner only.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000;
             CREATE TABLE IF NOT EXISTS console_audit (
                 id INTEGER PRIMARY KEY, at TEXT NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL,
                 target TEXT NOT NULL, records INTEGER NOT NULL, result TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS console_key (id INTEGER PRIMARY KEY CHECK (id = 1), key BLOB NOT NULL);",
        )
        .map_err(err)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session key: 64 random bytes made on first use and kept.
    pub fn session_key(&self) -> Result<Vec<u8>, rusqlite::Error> {
        let conn = self.conn();
        if let Some(key) = conn
            .query_row("SELECT key FROM console_key WHERE id = 1", [], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()?
        {
            return Ok(key);
        }
        let key: Vec<u8> = (0..4)
            .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
            .chain((0..4).flat_map(|_| uuid::Uuid::new_v4().into_bytes()))
            .collect();
        conn.execute(
            "INSERT INTO console_key (id, key) VALUES (1, ?1)",
            params![key],
        )?;
        Ok(key)
    }

    /// Records an entry; a failure is logged (the action itself already happened). The store is a file of its
    /// own (the index has another), WAL with `synchronous = NORMAL`: an insert costs well under a millisecond.
    pub fn audit(&self, user: &str, action: &str, target: &str, records: i64, result: &str) {
        if let Err(e) = self.audit_checked(user, action, target, records, result) {
            tracing::error!(error = %e, user, action, "cannot write the audit log");
        }
    }

    /// Records an entry, or says why it could not: for what may only happen audited (showing personal data).
    pub fn audit_checked(
        &self,
        user: &str,
        action: &str,
        target: &str,
        records: i64,
        result: &str,
    ) -> Result<(), rusqlite::Error> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.conn()
            .execute(
                "INSERT INTO console_audit (at, user, action, target, records, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![at, user, action, target, records, result],
            )
            .map(|_| ())
    }

    /// The latest `limit` entries, newest first, optionally only those whose user or action is `filter`.
    pub fn audit_log(
        &self,
        filter: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, rusqlite::Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, user, action, target, records, result FROM console_audit
             WHERE ?1 IS NULL OR user = ?1 OR action = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![filter, limit], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                user: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                records: r.get(4)?,
                result: r.get(5)?,
            })
        })?;
        rows.collect()
    }
}
