//! One connection to the console's store: a SQLite file, or PostgreSQL (then several console instances share the
//! index, the audit log, the archive and the session key). The index and the store write their SQL once, in the
//! dialect both accept (`?N` parameters, turned into `$N` for PostgreSQL; `ON CONFLICT`; `CASE` instead of boolean
//! sums), with values of two kinds only: 64-bit integers and text.
//!
//! A PostgreSQL connection lives on a thread of its own with its own small runtime (`tokio-postgres` through
//! `hule_pg`, so TLS and `sslmode` are as everywhere else); callers send it work and wait for the answer. The index
//! is read and written from blocking threads, so nothing here runs on the console's async threads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// An integer.
    I(i64),
    /// Text.
    T(String),
    /// A NULL integer.
    NullI,
    /// A NULL text (also what a NULL of any type reads as).
    NullT,
}

impl Val {
    /// The integer, if it is one.
    pub fn i(&self) -> Option<i64> {
        match self {
            Val::I(v) => Some(*v),
            _ => None,
        }
    }

    /// The text, if it is one.
    pub fn t(&self) -> Option<String> {
        match self {
            Val::T(v) => Some(v.clone()),
            _ => None,
        }
    }

    /// Optional text.
    pub fn opt_t(v: Option<&str>) -> Val {
        v.map_or(Val::NullT, |s| Val::T(s.to_owned()))
    }

    /// Optional integer.
    pub fn opt_i(v: Option<i64>) -> Val {
        v.map_or(Val::NullI, Val::I)
    }
}

/// A store error: which database, and why (never a password).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(e.to_string())
    }
}

type Job =
    Box<dyn FnOnce(&tokio::runtime::Runtime, &tokio_postgres::Client, &mut Statements) + Send>;
type Statements = HashMap<String, tokio_postgres::Statement>;

/// A PostgreSQL connection on its own thread.
pub struct PgConn {
    jobs: mpsc::Sender<Job>,
}

impl PgConn {
    /// Connects to `url` (through `hule_pg`: TLS per `sslmode`).
    pub fn open(url: &str) -> Result<Self, DbError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel::<Result<(), DbError>>();
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("console-pg".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(DbError(e.to_string())));
                        return;
                    }
                };
                let client = match rt.block_on(hule_pg::connect(&url)) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(DbError(format!(
                            "console store {}: {e}",
                            hule_pg::redact(&url)
                        ))));
                        return;
                    }
                };
                // Bounded statements: a query the console gave up on does not go on running on the server.
                if let Err(e) = rt.block_on(client.batch_execute("SET statement_timeout = 10000")) {
                    let _ = ready_tx.send(Err(DbError(hule_pg_error(&e))));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                let mut statements = Statements::new();
                while let Ok(job) = inbox.recv() {
                    job(&rt, &client, &mut statements);
                }
            })
            .map_err(|e| DbError(e.to_string()))?;
        ready
            .recv()
            .map_err(|_| DbError("the store's connection thread ended".into()))??;
        Ok(PgConn { jobs })
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(
                &tokio::runtime::Runtime,
                &tokio_postgres::Client,
                &mut Statements,
            ) -> Result<T, DbError>
            + Send
            + 'static,
    ) -> Result<T, DbError> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move |rt, c, s| {
                let _ = tx.send(f(rt, c, s));
            }))
            .map_err(|_| DbError("the store's connection is closed".into()))?;
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .map_err(|_| {
                DbError("the store did not answer within 20 s, or its connection ended".into())
            })?
    }
}

/// `?N` → `$N` (outside quoted text).
fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

fn pg_params(vals: &[Val]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> {
    vals.iter()
        .map(|v| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match v {
                Val::I(i) => Box::new(*i),
                // PostgreSQL text cannot hold NUL (SQLSTATE 22021); a key or header carrying one (Confluent's
                // wire format starts with 0x00) is stored with U+FFFD in its place, not refused forever.
                Val::T(t) => Box::new(t.replace('\0', "\u{FFFD}")),
                Val::NullI => Box::new(None::<i64>),
                Val::NullT => Box::new(None::<String>),
            }
        })
        .collect()
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Vec<Val>, DbError> {
    use tokio_postgres::types::Type;
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            let err = |e: tokio_postgres::Error| DbError(e.to_string());
            Ok(if *ty == Type::BOOL {
                row.try_get::<_, Option<bool>>(i)
                    .map_err(err)?
                    .map_or(Val::NullI, |b| Val::I(i64::from(b)))
            } else if *ty == Type::INT8 {
                row.try_get::<_, Option<i64>>(i)
                    .map_err(err)?
                    .map_or(Val::NullI, Val::I)
            } else if *ty == Type::INT4 {
                row.try_get::<_, Option<i32>>(i)
                    .map_err(err)?
                    .map_or(Val::NullI, |v| Val::I(i64::from(v)))
            } else if *ty == Type::BYTEA {
                row.try_get::<_, Option<Vec<u8>>>(i)
                    .map_err(err)?
                    .map_or(Val::NullT, |b| Val::T(hex(&b)))
            } else {
                row.try_get::<_, Option<String>>(i)
                    .map_err(err)?
                    .map_or(Val::NullT, Val::T)
            })
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A connection of either kind.
pub enum Conn {
    /// SQLite.
    Lite(rusqlite::Connection),
    /// PostgreSQL.
    Pg(PgConn),
}

impl Conn {
    /// Whether this is PostgreSQL.
    pub fn is_pg(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    /// Runs statements without parameters (DDL, `BEGIN`, `COMMIT`).
    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Conn::Lite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(p) => {
                let sql = sql.to_owned();
                p.run(move |rt, c, _| {
                    rt.block_on(c.batch_execute(&sql))
                        .map_err(|e| DbError(hule_pg_error(&e)))
                })
            }
        }
    }

    /// Sends one statement without waiting for it (PostgreSQL: queued on the connection's thread, so a later
    /// query on this connection sees it); a failure is logged. SQLite runs it at once.
    /// `failed` is set when the write fails (or cannot be queued).
    pub fn exec_later(
        &mut self,
        sql: &str,
        params: &[Val],
        failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let fail = move |e: &DbError| {
            tracing::error!(error = %e, "console store: a write failed");
            failed.store(true, std::sync::atomic::Ordering::SeqCst);
        };
        match self {
            Conn::Lite(_) => {
                if let Err(e) = self.exec(sql, params) {
                    fail(&e);
                }
            }
            Conn::Pg(p) => {
                let (sql, params) = (dollars(sql), pg_params(params));
                let fail_later = fail.clone();
                let queued = p.jobs.send(Box::new(move |rt, c, cache| {
                    let done: Result<u64, DbError> = rt.block_on(async {
                        let stmt = prepared(c, cache, &sql).await?;
                        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                            params.iter().map(|b| b.as_ref() as _).collect();
                        c.execute(&stmt, &refs)
                            .await
                            .map_err(|e| DbError(hule_pg_error(&e)))
                    });
                    if let Err(e) = done {
                        fail_later(&e);
                    }
                }));
                if queued.is_err() {
                    fail(&DbError("the store's connection is closed".into()));
                }
            }
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub fn exec(&mut self, sql: &str, params: &[Val]) -> Result<usize, DbError> {
        match self {
            Conn::Lite(c) => {
                let mut s = c.prepare_cached(sql)?;
                Ok(s.execute(rusqlite::params_from_iter(params.iter().map(lite)))?)
            }
            Conn::Pg(p) => {
                let (sql, params) = (dollars(sql), pg_params(params));
                p.run(move |rt, c, cache| {
                    rt.block_on(async {
                        let stmt = prepared(c, cache, &sql).await?;
                        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                            params.iter().map(|b| b.as_ref() as _).collect();
                        c.execute(&stmt, &refs)
                            .await
                            .map(|n| n as usize)
                            .map_err(|e| DbError(hule_pg_error(&e)))
                    })
                })
            }
        }
    }

    /// Runs one query; returns its rows.
    pub fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, DbError> {
        match self {
            Conn::Lite(c) => {
                let mut s = c.prepare_cached(sql)?;
                let n = s.column_count();
                let rows =
                    s.query_map(rusqlite::params_from_iter(params.iter().map(lite)), |r| {
                        (0..n)
                            .map(|i| {
                                Ok(match r.get_ref(i)? {
                                    rusqlite::types::ValueRef::Integer(v) => Val::I(v),
                                    rusqlite::types::ValueRef::Real(v) => Val::I(v as i64),
                                    rusqlite::types::ValueRef::Text(t) => {
                                        Val::T(String::from_utf8_lossy(t).into_owned())
                                    }
                                    rusqlite::types::ValueRef::Blob(b) => Val::T(hex(b)),
                                    rusqlite::types::ValueRef::Null => Val::NullT,
                                })
                            })
                            .collect::<rusqlite::Result<Vec<Val>>>()
                    })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            }
            Conn::Pg(p) => {
                let (sql, params) = (dollars(sql), pg_params(params));
                p.run(move |rt, c, cache| {
                    rt.block_on(async {
                        let stmt = prepared(c, cache, &sql).await?;
                        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                            params.iter().map(|b| b.as_ref() as _).collect();
                        let rows = c
                            .query(&stmt, &refs)
                            .await
                            .map_err(|e| DbError(hule_pg_error(&e)))?;
                        rows.iter().map(pg_row).collect()
                    })
                })
            }
        }
    }

    /// The first row's first value, if there is a row.
    pub fn one(&mut self, sql: &str, params: &[Val]) -> Result<Option<Val>, DbError> {
        Ok(self
            .query(sql, params)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next()))
    }
}

async fn prepared(
    c: &tokio_postgres::Client,
    cache: &mut Statements,
    sql: &str,
) -> Result<tokio_postgres::Statement, DbError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = c
        .prepare(sql)
        .await
        .map_err(|e| DbError(hule_pg_error(&e)))?;
    cache.insert(sql.to_owned(), s.clone());
    Ok(s)
}

/// A PostgreSQL error's text with its SQLSTATE, never DETAIL's row values.
fn hule_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

fn lite(v: &Val) -> rusqlite::types::Value {
    match v {
        Val::I(i) => rusqlite::types::Value::Integer(*i),
        Val::T(t) => rusqlite::types::Value::Text(t.clone()),
        Val::NullI | Val::NullT => rusqlite::types::Value::Null,
    }
}

/// Where the console keeps its store.
#[derive(Clone, PartialEq)]
pub enum Location {
    /// A SQLite file.
    File(std::path::PathBuf),
    /// A PostgreSQL database (URL with credentials: never shown).
    Postgres(String),
}

/// A PostgreSQL URL's password is not shown.
impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => f.debug_tuple("File").field(p).finish(),
            Location::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&hule_pg::redact(url))
                .finish(),
        }
    }
}

impl Location {
    /// A `postgres://` or `postgresql://` URL (any case) is PostgreSQL; a plain path is a SQLite file. Anything
    /// that looks like another kind of URL or a keyword connection string is refused (it would otherwise become a
    /// file named after it), and the refusal shows it redacted.
    pub fn parse(s: &str) -> Result<Location, String> {
        let lower = s.to_ascii_lowercase();
        for scheme in ["postgres://", "postgresql://"] {
            if lower.starts_with(scheme) {
                // The scheme in lower case: the client reads only that form as a URL.
                return Ok(Location::Postgres(format!(
                    "{scheme}{}",
                    &s[scheme.len()..]
                )));
            }
        }
        if s.contains("://") || (s.contains('=') && s.contains(' ')) {
            return Err(format!(
                "the store `{}` is neither a file path nor a postgres:// or postgresql:// URL",
                hule_pg::redact(s)
            ));
        }
        Ok(Location::File(Path::new(s).to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_a_file_or_a_postgres_url_and_nothing_else() {
        assert!(matches!(Location::parse("hule.db"), Ok(Location::File(_))));
        assert!(matches!(
            Location::parse("POSTGRESQL://u:pw@h/db"),
            Ok(Location::Postgres(_))
        ));
        let refused = Location::parse("mysql://u:hunter2@h/db").expect_err("another kind of URL");
        assert!(!refused.contains("hunter2"), "{refused}");
        assert!(Location::parse("host=h password=hunter2 dbname=x").is_err());
        let shown = format!(
            "{:?}",
            Location::parse("postgres://u:hunter2@h/db").expect("url")
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn parameters_become_dollars_outside_quotes() {
        assert_eq!(
            dollars("a = ?1 AND b = '?' AND c = ?12"),
            "a = $1 AND b = '?' AND c = $12"
        );
    }
}
