//! "Relay vs the Python original": the same rows of the original's own `event_outbox` table drained by a model of
//! the Python `EventRelayWorker` (`tools/python-relay/relay.py`, embedded in the binary and run with `python3`) and
//! by this relay, which upgrades that table in place, each into the same cluster.

use std::process::Stdio;

use super::outbox::drain_until_empty;
use super::*;

/// The Python relay, written to a temporary file when the scenario runs.
const PYTHON_RELAY: &str = include_str!("../../../../tools/python-relay/relay.py");

/// The original's table and indexes, as its shared SQLAlchemy model and Alembic template make them.
const ORIGINAL_DDL: &str = "
CREATE TABLE event_outbox (
    id uuid PRIMARY KEY, aggregate_id varchar(255) NOT NULL, aggregate_type varchar(100) NOT NULL,
    event_type varchar(255) NOT NULL, event_data json NOT NULL, event_key varchar(255), topic varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz,
    retry_count integer NOT NULL DEFAULT 0, last_error text);
CREATE INDEX ix_event_outbox_unpublished ON event_outbox (published_at, created_at) WHERE published_at IS NULL;
CREATE INDEX ix_event_outbox_aggregate ON event_outbox (aggregate_type, aggregate_id);
CREATE INDEX ix_event_outbox_event_type ON event_outbox (event_type);";

/// Makes the original's table in `schema` and writes `n` 1 KB events into it as the Python `OutboxManager` does:
/// the envelope's `json.dumps` form plus its `topic`, the key in `event_key`, 100 rows per transaction.
async fn original_fill(schema: &Schema, n: usize) -> anyhow::Result<()> {
    let mut c = schema.client().await?;
    c.batch_execute(ORIGINAL_DDL).await?;
    let topic = Event::SpellcheckPhaseCompleted.topic();
    let insert = c
        .prepare(
            "INSERT INTO event_outbox (id, aggregate_id, aggregate_type, event_type, event_data, event_key, topic)
             VALUES ($1, $2, 'batch', $3, $4::text::json, $2, $3)",
        )
        .await?;
    for start in (0..n).step_by(100) {
        let tx = c.transaction().await?;
        for i in start..(start + 100).min(n) {
            let key = format!("batch-{}", i % 500);
            let mut data: serde_json::Value =
                serde_json::from_slice(&event_1kb(&key, i as i64).to_python_json()?)?;
            data["topic"] = topic.into();
            tx.execute(&insert, &[&Uuid::new_v4(), &key, &topic, &data.to_string()])
                .await?;
        }
        tx.commit().await?;
    }
    c.batch_execute("ANALYZE event_outbox").await?;
    Ok(())
}

/// `text` (the Python relay's output) with the database password masked wherever it appears, in a URL or on its
/// own (a driver's error may quote it).
fn masked(base: &str, text: &str) -> String {
    let password = base
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|c| {
            c.get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
        })
        .filter(|p| !p.is_empty());
    text.lines()
        .map(|l| {
            let l = hule_secrets::redact_url(l);
            match &password {
                Some(p) => l.replace(p.as_str(), "***"),
                None => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the Python relay over `schema`'s table until it finds nothing to publish; returns its events per second.
async fn python_drain(
    schema: &Schema,
    base: &str,
    kafka: &KafkaSettings,
    n: usize,
) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("hule-bench-py-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("relay.py");
    std::fs::write(&script, PYTHON_RELAY)?;
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--schema", &schema.name, "--brokers", &kafka.brokers])
        // The URL may hold a password: the environment, never the command line.
        .env("HULE_PY_DSN", base)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(1800), out).await;
    let _ = std::fs::remove_dir_all(&dir);
    let out = out
        .map_err(|_| anyhow::anyhow!("the Python relay did not finish within 30 minutes"))?
        .context(
            "cannot run python3 (scripts/setup.sh installs it and the Python relay's packages)",
        )?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        anyhow::bail!(
            "the Python relay failed ({}): {}",
            out.status,
            masked(base, &tail.join("\n"))
        );
    }
    #[derive(serde::Deserialize)]
    struct Report {
        published: usize,
        seconds: f64,
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Report =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).with_context(|| {
            format!(
                "the Python relay's report is not JSON: {:?}",
                masked(base, &stdout)
            )
        })?;
    anyhow::ensure!(
        report.published == n,
        "the Python relay published {} of {n} rows",
        report.published
    );
    Ok(n as f64 / report.seconds)
}

/// Whether `python3` can import what the Python relay needs; `Err` says what is missing and how to install it.
async fn python_ready() -> Result<(), String> {
    let probe = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import aiokafka, asyncpg, pydantic, sqlalchemy.ext.asyncio",
        ])
        .stdin(Stdio::null())
        .output()
        .await;
    match probe {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "python3 lacks the Python relay's packages ({}); scripts/setup.sh installs them",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("import failed")
        )),
        Err(e) => Err(format!(
            "cannot run python3 ({e}); scripts/setup.sh installs it"
        )),
    }
}

/// The scenario: the Python relay over `n` rows of the original's table, then this relay (batches of `batch`) over
/// a fresh copy. `None`, said on standard error, when `python3` or its packages are missing: the other scenarios
/// still run.
pub async fn versus_python(
    base: &str,
    kafka: &KafkaSettings,
    n: usize,
    batch: usize,
) -> anyhow::Result<Option<ScenarioResult>> {
    if let Err(why) = python_ready().await {
        eprintln!("bench: relay vs the Python original skipped: {why}");
        return Ok(None);
    }
    let schema = Schema::new(base).await?;
    original_fill(&schema, n).await?;
    let python = python_drain(&schema, base, kafka, n).await;
    schema.drop().await;
    let python = python?;

    let schema = Schema::new(base).await?;
    original_fill(&schema, n).await?;
    let ours = async {
        // Connecting upgrades the original's table in place, as `hule relay` does on a Python service's database.
        let outbox = PgOutbox::connect(&schema.url).await?;
        drain_until_empty(outbox, kafka, n, batch).await
    }
    .await;
    let rss = peak_rss_mb();
    schema.drop().await;
    let figure = ours?;
    Ok(Some(ScenarioResult {
        scenario: "relay vs the Python original".into(),
        figure,
        unit: "events/s".into(),
        baseline_name: "Python EventRelayWorker".into(),
        baseline: python,
        ratio: figure / python,
        peak_rss_mb: rss,
        note: format!("{n} rows of 1 KB in the original's own event_outbox table (its DDL, 100 rows per transaction as OutboxManager writes them), drained by a model of the Python relay (tools/python-relay/relay.py: SQLAlchemy sessions, 100 per fetch, one send_and_wait and one UPDATE per row) and by this relay upgrading the table in place, batches of {batch}; target ratio ≥ 100"),
    }))
}
