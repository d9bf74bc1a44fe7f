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

/// The store: a SQLite file, or PostgreSQL (shared by several consoles).
pub struct Store {
    backend: Backend,
    /// A queued audit write failed: the next is written and waited for (and reopens the connection).
    broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

enum Backend {
    Lite(Mutex<Connection>),
    /// The connection, and the URL to open it again with after it failed.
    Pg(Mutex<crate::db::Conn>, String),
}

/// One audit entry into the PostgreSQL store.
const PG_AUDIT_INSERT: &str =
    "INSERT INTO console_audit_log (at, who, action, target, records, result)
                               VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// The values of [`PG_AUDIT_INSERT`], stamped now.
fn pg_audit_row(
    user: &str,
    action: &str,
    target: &str,
    records: i64,
    result: &str,
) -> [crate::db::Val; 6] {
    use crate::db::Val;
    [
        Val::T(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        Val::T(user.to_owned()),
        Val::T(action.to_owned()),
        Val::T(target.to_owned()),
        Val::I(records),
        Val::T(result.to_owned()),
    ]
}

/// The PostgreSQL store's tables (`who`: `user` is a reserved word there).
const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS console_audit_log (
    id BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, records BIGINT NOT NULL, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_session_key (id BIGINT PRIMARY KEY CHECK (id = 1), key_hex TEXT NOT NULL);
";

/// A store error.
#[derive(Debug, thiserror::Error)]
#[error("console store {path}: {source}")]
pub struct StoreError {
    path: String,
    #[source]
    source: crate::db::DbError,
}

impl Store {
    /// Opens (and creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source: rusqlite::Error| StoreError {
            path: path.display().to_string(),
            source: source.into(),
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
            backend: Backend::Lite(Mutex::new(conn)),
            broken: Default::default(),
        })
    }

    /// Opens (and creates the tables of) the store in the PostgreSQL database at `url`.
    pub fn open_pg(url: &str) -> Result<Self, StoreError> {
        let err = |source| StoreError {
            path: hule_pg::redact(url),
            source,
        };
        let mut conn = crate::db::Conn::Pg(crate::db::PgConn::open(url).map_err(err)?);
        conn.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('hule-console-ddl')); {PG_SCHEMA} COMMIT;"
        ))
        .map_err(err)?;
        Ok(Store {
            backend: Backend::Pg(Mutex::new(conn), url.to_owned()),
            broken: Default::default(),
        })
    }

    /// Opens the store at `location`.
    pub fn open_at(location: &crate::db::Location) -> Result<Self, StoreError> {
        match location {
            crate::db::Location::File(p) => Self::open(p),
            crate::db::Location::Postgres(url) => Self::open_pg(url),
        }
    }

    /// The session key: 64 random bytes made on first use and kept (on PostgreSQL, the first console to start
    /// makes it and every other reads the same one, so a session works on each).
    pub fn session_key(&self) -> Result<Vec<u8>, crate::db::DbError> {
        let made: Vec<u8> = (0..4)
            .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
            .chain((0..4).flat_map(|_| uuid::Uuid::new_v4().into_bytes()))
            .collect();
        match &self.backend {
            Backend::Lite(conn) => {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(key) = conn
                    .query_row("SELECT key FROM console_key WHERE id = 1", [], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })
                    .optional()?
                {
                    return Ok(key);
                }
                conn.execute(
                    "INSERT INTO console_key (id, key) VALUES (1, ?1)",
                    params![made],
                )?;
                Ok(made)
            }
            Backend::Pg(conn, _) => {
                use crate::db::Val;
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let hex: String = made.iter().map(|b| format!("{b:02x}")).collect();
                conn.exec(
                    "INSERT INTO console_session_key (id, key_hex) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
                    &[Val::T(hex)],
                )?;
                let kept = conn
                    .one("SELECT key_hex FROM console_session_key WHERE id = 1", &[])?
                    .and_then(|v| v.t())
                    .ok_or_else(|| crate::db::DbError("the session key is missing".into()))?;
                (0..kept.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&kept[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|e| crate::db::DbError(format!("the session key is not hex: {e}")))
            }
        }
    }

    /// Records an entry; a failure is logged (the action itself already happened). The SQLite store is a file of
    /// its own (the index has another), WAL with `synchronous = NORMAL`: an insert costs well under a millisecond.
    /// On PostgreSQL the entry is queued on the store's connection and not waited for (handlers call this on
    /// the async threads); the audit page, reading on the same connection, sees it.
    pub fn audit(&self, user: &str, action: &str, target: &str, records: i64, result: &str) {
        // After a queued write failed (PostgreSQL restarted), the next one is written and waited for, which opens
        // the connection again when it fails too.
        if self.broken.swap(false, std::sync::atomic::Ordering::SeqCst) {
            if let Err(e) = self.audit_checked(user, action, target, records, result) {
                self.broken.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(error = %e, user, action, "cannot write the audit log");
            }
            return;
        }
        if let Backend::Pg(conn, _) = &self.backend {
            let broken = self.broken.clone();
            conn.lock().unwrap_or_else(|p| p.into_inner()).exec_later(
                PG_AUDIT_INSERT,
                &pg_audit_row(user, action, target, records, result),
                broken,
            );
            return;
        }
        if let Err(e) = self.audit_checked(user, action, target, records, result) {
            tracing::error!(error = %e, user, action, "cannot write the audit log");
        }
    }

    /// Opens a failed PostgreSQL connection again (PostgreSQL restarted, a failover); the caller's error stands.
    fn reopen(&self) {
        if let Backend::Pg(conn, url) = &self.backend {
            if let Ok(fresh) = crate::db::PgConn::open(url) {
                *conn.lock().unwrap_or_else(|p| p.into_inner()) = crate::db::Conn::Pg(fresh);
            }
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
    ) -> Result<(), crate::db::DbError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match &self.backend {
            Backend::Lite(conn) => {
                conn.lock().unwrap_or_else(|p| p.into_inner()).execute(
                    "INSERT INTO console_audit (at, user, action, target, records, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![at, user, action, target, records, result],
                )?;
                Ok(())
            }
            Backend::Pg(conn, _) => {
                let done = conn.lock().unwrap_or_else(|p| p.into_inner()).exec(
                    PG_AUDIT_INSERT,
                    &pg_audit_row(user, action, target, records, result),
                );
                if done.is_err() {
                    self.reopen();
                }
                done.map(|_| ())
            }
        }
    }

    /// The latest `limit` entries, newest first, optionally only those whose user or action is `filter`.
    pub fn audit_log(
        &self,
        filter: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, crate::db::DbError> {
        match &self.backend {
            Backend::Lite(conn) => {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
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
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
            Backend::Pg(conn, _) => {
                use crate::db::Val;
                let rows = conn.lock().unwrap_or_else(|p| p.into_inner()).query(
                    "SELECT at, who, action, target, records, result FROM console_audit_log
                     WHERE CAST(?1 AS TEXT) IS NULL OR who = ?1 OR action = ?1 ORDER BY id DESC LIMIT ?2",
                    &[Val::opt_t(filter), Val::I(limit)],
                );
                let rows = match rows {
                    Ok(r) => r,
                    Err(e) => {
                        self.reopen();
                        return Err(e);
                    }
                };
                Ok(rows
                    .iter()
                    .map(|r| AuditEntry {
                        at: r[0].t().unwrap_or_default(),
                        user: r[1].t().unwrap_or_default(),
                        action: r[2].t().unwrap_or_default(),
                        target: r[3].t().unwrap_or_default(),
                        records: r[4].i().unwrap_or(0),
                        result: r[5].t().unwrap_or_default(),
                    })
                    .collect())
            }
        }
    }
}
