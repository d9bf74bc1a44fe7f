//! `hule relay`, `hule outbox status` and `hule outbox retry`.

use std::time::Duration;

use crate::kafka_args::KafkaArgs;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hule_kafka::{KafkaPublisher, ProducerConfig};
use hule_outbox::relay::{run_relay, RelayConfig};
use hule_outbox::store::{Completion, OutboxStore, RetryTarget};
use hule_outbox::{PgOutbox, SqliteOutbox};

/// Where the outbox lives.
pub enum Database {
    /// A PostgreSQL connection URL.
    Postgres(String),
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
}

/// The database URL: `--database-url`, else `HULE_DATABASE_URL`, else `DATABASE_URL` (what the Python services set).
fn resolve_database_url(given: &Option<String>) -> anyhow::Result<String> {
    given
        .clone()
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .ok_or_else(|| {
            anyhow::anyhow!("no outbox database: give --database-url (or HULE_DATABASE_URL)")
        })
}

/// Which outbox database a command opens.
#[derive(Args, Clone)]
pub struct DbArgs {
    /// The outbox database: postgres://… or sqlite:///path.
    #[arg(long, env = "HULE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The PostgreSQL schema holding `event_outbox` (sets the session's search_path) [env: HULE_DATABASE_SCHEMA].
    #[arg(long, env = "HULE_DATABASE_SCHEMA")]
    schema: Option<String>,
}

impl DbArgs {
    /// The database, with `--schema` applied.
    fn database(&self) -> anyhow::Result<Database> {
        with_schema(
            parse_database_url(&resolve_database_url(&self.database_url)?)?,
            self.schema.as_deref(),
        )
    }
}

/// `db` with its PostgreSQL session's search_path set to `schema` (a plain identifier); refused for SQLite and for
/// a URL that already sets `options`.
fn with_schema(db: Database, schema: Option<&str>) -> anyhow::Result<Database> {
    let Some(schema) = schema else {
        return Ok(db);
    };
    // Lower case only: PostgreSQL folds an unquoted name to lower case, so `Orders` would silently mean `orders`.
    let plain = schema
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain || schema.len() > 63 {
        bail!("--schema `{schema}` is not a plain schema name (lower-case letters, digits and _, at most 63)");
    }
    // The query's keys, as the PostgreSQL client reads them (the first `?` starts the query).
    let sets_options = |url: &str| {
        url.split_once('?').is_some_and(|(_, q)| {
            q.split('&').any(|pair| {
                hule_secrets::percent_decode(pair.split('=').next().unwrap_or("")) == "options"
            })
        })
    };
    match db {
        Database::Sqlite(_) => bail!("--schema applies to PostgreSQL; an SQLite outbox has no schemas"),
        Database::Postgres(url) if !url.contains("://") || sets_options(&url) => bail!(
            "--schema cannot be combined with a URL that sets `options` or a keyword-form URL; set search_path \
             in one place"
        ),
        Database::Postgres(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            Ok(Database::Postgres(format!(
                "{url}{sep}options=-csearch_path%3D{schema}"
            )))
        }
    }
}

/// Parses `postgres://…`, `postgresql://…`, `sqlite://PATH`, `sqlite:PATH`.
pub fn parse_database_url(url: &str) -> anyhow::Result<Database> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") || url.contains("host=") {
        return Ok(Database::Postgres(url.to_owned()));
    }
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            bail!("database URL `{url}` has no file path; use sqlite:///path/to/outbox.db");
        }
        return Ok(Database::Sqlite(path.into()));
    }
    bail!(
        "unsupported database URL `{}`; use postgres://user@host:port/db or sqlite:///path/to/outbox.db",
        hule_secrets::redact_url(url)
    )
}

/// Options of `hule relay`. Each may also come from `--config FILE` (TOML, the same names with `_`); a flag or
/// environment variable wins over the file, the file over the default.
#[derive(Args)]
pub struct RelayArgs {
    /// A TOML configuration file: database_url, service, metrics_addr, batch_size, keep_published_secs,
    /// compression, linger_ms, and a [kafka] table (brokers, config_file, [kafka.properties]).
    #[arg(long, env = "HULE_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// The outbox database: postgres://… or sqlite:///path.
    #[arg(long, env = "HULE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The PostgreSQL schema holding `event_outbox` (sets the session's search_path).
    #[arg(long, env = "HULE_DATABASE_SCHEMA")]
    schema: Option<String>,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The service whose outbox this is (the `service` label of the metrics, and logs) [default: hule-relay].
    #[arg(long)]
    service: Option<String>,
    /// Serve Prometheus metrics on this address (for example 0.0.0.0:9464) at /metrics.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Rows claimed per batch [default: 2000; a claim also stops at 16 MiB of events].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Keep delivered rows this many seconds (marked published) instead of deleting them at once.
    #[arg(long)]
    keep_published_secs: Option<u64>,
    /// Producer compression: none, lz4, gzip, snappy [default: lz4].
    #[arg(long)]
    compression: Option<String>,
    /// Producer linger in milliseconds [default: 1].
    #[arg(long)]
    linger_ms: Option<u32>,
}

/// `hule relay --config FILE`.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayFile {
    database_url: Option<String>,
    schema: Option<String>,
    service: Option<String>,
    metrics_addr: Option<std::net::SocketAddr>,
    batch_size: Option<usize>,
    keep_published_secs: Option<u64>,
    compression: Option<String>,
    linger_ms: Option<u32>,
    #[serde(default)]
    kafka: hule_kafka::KafkaSection,
}

impl RelayFile {
    fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        // toml's errors name the line, column and key; they quote the offending line only for syntax errors.
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
    }
}

/// `hule outbox` subcommands.
#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Pending and parked counts by topic, the oldest pending age, and the last errors.
    Status {
        #[command(flatten)]
        db: DbArgs,
        /// One service's outbox, NAME=URL (NAME letters, digits, `_`, `-`, `.`; URL postgres://… or sqlite:…);
        /// repeatable, for one view across services (instead of --database-url and HULE_DATABASE_URL).
        #[arg(long, value_name = "NAME=URL")]
        service: Vec<String>,
        /// Print JSON (with --service: an array of {service, status}).
        #[arg(long)]
        json: bool,
    },
    /// Release failed rows (parked, or waiting for their next attempt) for another round of attempts.
    Retry {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON: {"released": N}.
        #[arg(long)]
        json: bool,
    },
    /// Remove failed rows for good, with a reason: each is moved to hule_outbox_discarded (kept with the reason and
    /// time) and logged, and the rows of its key behind it go on. For a row that can never be published (too large
    /// for its topic, say) and holds back its key.
    Discard {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Why (kept with each row and logged).
        #[arg(long)]
        reason: String,
        /// Print JSON: {"discarded": [{seq, event_id, topic, key, attempts, last_error}, …], "reason": …}.
        #[arg(long)]
        json: bool,
    },
}

/// Which failed rows a command acts on (exactly one).
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// The row with this sequence number (`#seq` in `hule outbox status`).
    #[arg(long)]
    seq: Option<i64>,
    /// The rows of this event id.
    #[arg(long)]
    event_id: Option<uuid::Uuid>,
    /// The failed rows of this partition key.
    #[arg(long)]
    key: Option<String>,
    /// Every parked row.
    #[arg(long)]
    all_parked: bool,
}

impl TargetArgs {
    fn target(&self) -> RetryTarget {
        match (self.seq, self.event_id, &self.key) {
            (Some(seq), _, _) => RetryTarget::Seq(seq),
            (_, Some(id), _) => RetryTarget::EventId(id),
            (_, _, Some(key)) => RetryTarget::Key(key.clone()),
            _ => RetryTarget::AllParked,
        }
    }
}

pub fn relay(args: &RelayArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => RelayFile::read(path)?,
        None => RelayFile::default(),
    };
    let url = resolve_database_url(&args.database_url.clone().or(file.database_url.clone()))?;
    let db = with_schema(
        parse_database_url(&url)?,
        args.schema.as_deref().or(file.schema.as_deref()),
    )?;
    let service = args
        .service
        .clone()
        .or(file.service.clone())
        .unwrap_or_else(|| "hule-relay".into());
    let batch_size = args
        .batch_size
        .or(file.batch_size)
        .unwrap_or(hule_outbox::relay::DEFAULT_BATCH_SIZE);
    if batch_size == 0 {
        anyhow::bail!("batch_size must be at least 1");
    }
    let metrics_addr = args.metrics_addr.or(file.metrics_addr);
    let metrics =
        hule_outbox::metrics::OutboxMetrics::new(hule_metrics::Registry::global(), &service);
    let rt = tokio::runtime::Runtime::new()?;
    // Metrics and /healthz first, so that a relay waiting for Kafka says so to its probes (503, `kafka` unwell),
    // and the database next, so that a wrong URL is reported before any wait.
    let _server = match metrics_addr {
        Some(addr) => {
            let (bound, task) = rt
                .block_on(hule_metrics::serve(
                    hule_metrics::Registry::global().clone(),
                    addr,
                ))
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            eprintln!("relay: metrics on http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };
    enum Store {
        Pg(PgOutbox),
        Sqlite(SqliteOutbox),
    }
    let store = rt.block_on(async {
        anyhow::Ok(match &db {
            Database::Postgres(url) => Store::Pg(PgOutbox::connect(url).await?),
            Database::Sqlite(path) => Store::Sqlite(SqliteOutbox::open(path)?),
        })
    })?;
    metrics.broker(false, "waiting for Kafka at start");
    let kafka = args
        .kafka
        .connect_with_file_waiting(&file.kafka, "the relay")?;
    let mut pc = ProducerConfig::with_settings(&kafka);
    pc.compression = args
        .compression
        .clone()
        .or(file.compression)
        .unwrap_or_else(|| "lz4".into());
    pc.linger_ms = args.linger_ms.or(file.linger_ms).unwrap_or(1);
    let publisher = KafkaPublisher::new(&pc).context("cannot create the Kafka producer")?;
    let config = RelayConfig {
        batch_size,
        completion: match args.keep_published_secs.or(file.keep_published_secs) {
            Some(s) => Completion::Mark {
                retention: Duration::from_secs(s),
            },
            None => Completion::Delete,
        },
        metrics: Some(metrics),
        ..RelayConfig::default()
    };
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let flag = stop.clone();
        tokio::spawn(async move {
            hule_kafka::shutdown_signal().await;
            eprintln!("relay: stopping after the batch in flight");
            flag.cancel();
        });
        eprintln!(
            "relay[{}]: {} → {}",
            service,
            hule_outbox::pg::redact(&url),
            kafka.brokers
        );
        // In a task of its own: the future `block_on` drives runs on this (the main) thread, and every wake of it
        // by the database connection's task (on a worker) would cross threads — 10–15 % of the drain's rate on two
        // cores (`hule bench --only drain`).
        let relay = tokio::spawn(async move {
            match &store {
                Store::Pg(store) => run_relay(store, &publisher, &config, stop).await,
                Store::Sqlite(store) => run_relay(store, &publisher, &config, stop).await,
            }
        });
        let stats = relay.await.context("the relay's task failed")??;
        eprintln!(
            "relay: stopped; published {} in {} batches, {} failed attempts",
            stats.published, stats.batches, stats.failed
        );
        anyhow::Ok(())
    })
}

pub fn outbox(cmd: &OutboxCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        match cmd {
            OutboxCommand::Status { db, service, json } => {
                if service.is_empty() {
                    let status = read_status(db.database()?).await?;
                    if *json {
                        crate::out(serde_json::to_string_pretty(&status)?);
                    } else {
                        print_status(&status);
                    }
                } else {
                    let mut all = Vec::new();
                    for s in service {
                        let (name, url) = service_arg(s)?;
                        let database = with_schema(parse_database_url(url)?, db.schema.as_deref())?;
                        let status = read_status(database)
                            .await
                            .with_context(|| format!("service {name}"))?;
                        all.push((name.to_owned(), status));
                    }
                    if *json {
                        let rows: Vec<serde_json::Value> = all
                            .iter()
                            .map(|(name, status)| serde_json::json!({"service": name, "status": status}))
                            .collect();
                        crate::out(serde_json::to_string_pretty(&rows)?);
                    } else {
                        print_services(&all);
                    }
                }
            }
            OutboxCommand::Retry { db, target, json } => {
                let target = target.target();
                let n = match db.database()? {
                    Database::Postgres(url) => PgOutbox::connect(&url).await?.retry(target).await?,
                    Database::Sqlite(path) => open_sqlite(&path)?.retry(target).await?,
                };
                if *json {
                    crate::out(serde_json::json!({ "released": n }));
                } else {
                    crate::out(format_args!(
                        "released {n} failed row(s) for another round of attempts"
                    ));
                }
            }
            OutboxCommand::Discard {
                db,
                target,
                reason,
                json,
            } => {
                if reason.trim().is_empty() {
                    bail!("--reason must say why the rows are discarded");
                }
                let target = target.target();
                let gone = match db.database()? {
                    Database::Postgres(url) => {
                        PgOutbox::connect(&url).await?.discard(target, reason).await?
                    }
                    Database::Sqlite(path) => open_sqlite(&path)?.discard(target, reason).await?,
                };
                for d in &gone {
                    tracing::warn!(seq = d.seq, event_id = ?d.event_id, topic = %d.topic, key = ?d.key, attempts = d.attempts, reason = %reason, "outbox row discarded");
                }
                if *json {
                    crate::out(serde_json::to_string_pretty(&serde_json::json!({
                        "discarded": gone,
                        "reason": reason,
                    }))?);
                } else {
                    for d in &gone {
                        crate::out(format_args!(
                            "  #{} {} key {} after {} attempt(s): {}",
                            d.seq,
                            d.topic,
                            d.key.as_deref().unwrap_or("-"),
                            d.attempts,
                            d.last_error.as_deref().unwrap_or("-")
                        ));
                    }
                    crate::out(format_args!(
                        "discarded {} row(s) (kept in hule_outbox_discarded)",
                        gone.len()
                    ));
                }
            }
        }
        anyhow::Ok(())
    })
}

/// `NAME=URL` of `outbox status --service`: a plain name and a URL with a scheme the outbox knows. A wrong one is
/// refused with the whole argument redacted as a URL (a password may hold `=`, so the split point proves nothing).
fn service_arg(arg: &str) -> anyhow::Result<(&str, &str)> {
    let plain = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let known = |u: &str| {
        ["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|p| u.starts_with(p))
    };
    match arg.split_once('=') {
        Some((name, url)) if plain(name) && known(url) => Ok((name, url)),
        _ => bail!(
            "--service {}: write it as NAME=postgres://… or NAME=sqlite:… (NAME of letters, digits, _, - and .)",
            hule_secrets::redact_url(arg)
        ),
    }
}

/// An outbox's status, read without writing anything (a wrong schema is an error, not "pending 0").
async fn read_status(db: Database) -> anyhow::Result<hule_outbox::model::Status> {
    Ok(match db {
        Database::Postgres(url) => PgOutbox::open_existing(&url).await?.status().await?,
        Database::Sqlite(path) => {
            if !path.exists() {
                bail!("no outbox database at {}", path.display());
            }
            SqliteOutbox::open_existing(&path)?.status().await?
        }
    })
}

/// One line per service: pending, parked, oldest pending; then the totals.
fn print_services(all: &[(String, hule_outbox::model::Status)]) {
    let total = |v: &[(String, i64)]| v.iter().map(|(_, n)| n).sum::<i64>();
    let w = all.iter().map(|(n, _)| n.len()).max().unwrap_or(7).max(7);
    crate::out(format_args!(
        "{:<w$}  {:>9}  {:>7}  {:>15}  LAST ERROR",
        "SERVICE", "PENDING", "PARKED", "OLDEST PENDING"
    ));
    for (name, s) in all {
        crate::out(format_args!(
            "{:<w$}  {:>9}  {:>7}  {:>15}  {}",
            name,
            total(&s.pending),
            total(&s.parked),
            s.oldest_pending_age_seconds
                .map_or("-".to_owned(), |a| format!("{a:.1} s")),
            s.last_errors
                .first()
                .map_or("-".to_owned(), |(seq, _, n, e)| format!(
                    "#{seq} after {n} attempt(s): {e}"
                ))
        ));
    }
    crate::out(format_args!(
        "{} service(s): pending {}, parked {}",
        all.len(),
        all.iter().map(|(_, s)| total(&s.pending)).sum::<i64>(),
        all.iter().map(|(_, s)| total(&s.parked)).sum::<i64>()
    ));
}

fn open_sqlite(path: &std::path::Path) -> anyhow::Result<SqliteOutbox> {
    if !path.exists() {
        bail!("no outbox database at {}", path.display());
    }
    Ok(SqliteOutbox::open(path)?)
}

fn print_status(s: &hule_outbox::model::Status) {
    let total = |v: &[(String, i64)]| v.iter().map(|(_, n)| n).sum::<i64>();
    crate::out(format_args!(
        "pending: {}   parked: {}",
        total(&s.pending),
        total(&s.parked)
    ));
    if let Some(age) = s.oldest_pending_age_seconds {
        crate::out(format_args!("oldest pending: {age:.1} s"));
    }
    for (topic, n) in &s.pending {
        crate::out(format_args!("  pending {n:>8}  {topic}"));
    }
    for (topic, n) in &s.parked {
        crate::out(format_args!("  parked  {n:>8}  {topic}"));
    }
    if !s.last_errors.is_empty() {
        crate::out("last errors:");
        for (seq, topic, attempts, err) in &s.last_errors {
            crate::out(format_args!(
                "  #{seq} {topic} after {attempts} attempt(s): {err}"
            ));
        }
    }
}
