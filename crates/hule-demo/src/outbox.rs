//! Each demo service's outbox: SQLite in a temporary directory by default, or a PostgreSQL schema of its own.
//! A [`Writer`] commits a service's events in one transaction; a relay moves them to Kafka.

use std::path::Path;
use std::sync::{Arc, Mutex};

use hule_consumer::HandlerError;
use hule_contracts::{EventEnvelope, Payload, Timestamp};
use hule_outbox::prepare::{prepare, EnqueueOptions, NewRow};
use hule_outbox::relay::{run_relay, Publish, RelayConfig, RelayStats};
use hule_outbox::{PgOutbox, SqliteOutbox};
use uuid::Uuid;

/// Builds the outbox rows of one event from `service`.
pub fn rows<P: Payload>(
    service: &str,
    correlation_id: Uuid,
    data: P,
) -> Result<Vec<NewRow>, HandlerError> {
    let env = EventEnvelope::new(
        Uuid::new_v4(),
        P::EVENT.topic(),
        Timestamp::from_datetime(chrono::Utc::now()),
        service,
        correlation_id,
        data,
    );
    prepare(&env, &EnqueueOptions::default()).map_err(HandlerError::permanent)
}

/// Where a service's outbox lives.
pub enum Writer {
    /// A SQLite file with its own writer connection.
    Sqlite {
        /// The writer connection.
        conn: Arc<Mutex<rusqlite::Connection>>,
        /// The relay's view (for waking it).
        outbox: SqliteOutbox,
    },
    /// A PostgreSQL schema.
    Pg {
        /// The writer connection.
        client: tokio::sync::Mutex<tokio_postgres::Client>,
    },
}

impl Writer {
    /// A SQLite outbox at `path`.
    pub fn sqlite(path: &Path) -> Result<(Writer, SqliteOutbox), String> {
        let outbox = SqliteOutbox::open(path).map_err(|e| e.to_string())?;
        let conn = hule_outbox::sqlite::open(path).map_err(|e| e.to_string())?;
        Ok((
            Writer::Sqlite {
                conn: Arc::new(Mutex::new(conn)),
                outbox: outbox.clone(),
            },
            outbox,
        ))
    }

    /// A PostgreSQL outbox in `schema` (created when missing) of the database at `url`.
    pub async fn postgres(url: &str, schema: &str) -> Result<(Writer, PgOutbox), String> {
        let admin = hule_pg::connect(url).await.map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(|e| format!("create schema {schema}: {e}"))?;
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
        let outbox = PgOutbox::connect(&scoped)
            .await
            .map_err(|e| e.to_string())?;
        let client = hule_pg::connect(&scoped).await.map_err(|e| e.to_string())?;
        Ok((
            Writer::Pg {
                client: tokio::sync::Mutex::new(client),
            },
            outbox,
        ))
    }

    /// Commits `rows` in one transaction and wakes the relay.
    pub async fn write(&self, rows: Vec<NewRow>) -> Result<(), HandlerError> {
        match self {
            Writer::Sqlite { conn, outbox } => {
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || {
                    let mut c = conn
                        .lock()
                        .map_err(|_| HandlerError::permanent("writer poisoned"))?;
                    let tx = c.transaction().map_err(HandlerError::transient)?;
                    hule_outbox::sqlite::enqueue(&tx, &rows).map_err(HandlerError::transient)?;
                    tx.commit().map_err(HandlerError::transient)
                })
                .await
                .map_err(HandlerError::transient)??;
                outbox.notify();
                Ok(())
            }
            Writer::Pg { client } => {
                let mut c = client.lock().await;
                let tx = c.transaction().await.map_err(HandlerError::transient)?;
                hule_outbox::pg::enqueue(&tx, &rows)
                    .await
                    .map_err(HandlerError::transient)?;
                tx.commit().await.map_err(HandlerError::transient)
            }
        }
    }
}

/// Drops the demo's schemas.
pub async fn drop_schemas(url: &str, schemas: &[String]) -> Result<(), String> {
    let admin = hule_pg::connect(url).await.map_err(|e| e.to_string())?;
    // A lock another session holds on a table of the schema fails the drop after 10 s instead of hanging it.
    admin
        .batch_execute("SET lock_timeout = '10s'")
        .await
        .map_err(|e| e.to_string())?;
    for s in schemas {
        admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
            .await
            .map_err(|e| format!("drop schema {s}: {e}"))?;
    }
    Ok(())
}

/// A relay over either outbox kind.
pub enum Relay {
    /// SQLite.
    Sqlite(SqliteOutbox),
    /// PostgreSQL.
    Pg(PgOutbox),
}

impl Relay {
    /// Runs until `stop`.
    pub async fn run<P: Publish>(
        &self,
        publisher: &P,
        config: &RelayConfig,
        stop: tokio_util::sync::CancellationToken,
    ) -> Result<RelayStats, String> {
        match self {
            Relay::Sqlite(s) => run_relay(s, publisher, config, stop).await,
            Relay::Pg(p) => run_relay(p, publisher, config, stop).await,
        }
        .map_err(|e| e.to_string())
    }
}
