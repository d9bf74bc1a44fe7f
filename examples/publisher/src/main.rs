//! A minimal publisher service (the spellchecker): for each essay it writes its own result row and publishes
//! `SPELLCHECK_PHASE_COMPLETED` in the same PostgreSQL transaction, then relays the outbox to Kafka and exits when
//! every event is acknowledged. In production `hule relay` (or [`hule_kafka::Relay`] in the service) runs
//! continuously beside it.
//!
//! ```sh
//! HULE_BROKERS=127.0.0.1:9092 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run -p hule-example-publisher -- 5
//! ```

use std::time::Duration;

use hule_contracts::enums::ProcessingStatus;
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_contracts::{CorrelationId, Timestamp};
use hule_kafka::{KafkaSettings, Relay};
use hule_outbox::store::OutboxStore;
use hule_outbox::{Outbox, PgOutbox, WriterConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let count: i64 = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|e| format!("the count `{n}`: {e}"))?,
        None => 3,
    };
    let database_url = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test");
    let kafka = KafkaSettings::new(&env("HULE_BROKERS", "127.0.0.1:9092"));

    // The outbox table is migrated by the store; the service's own table is its business.
    let store = PgOutbox::connect(&database_url).await?;
    let (client, _wake) = hule_outbox::pg::connect(&database_url).await?;
    // The service's own connection, on which the outbox keeps its insert prepared.
    let mut conn = WriterConnection::new(client);
    conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS example_spellcheck_results (essay_id text PRIMARY KEY, duration_ms bigint)",
        )
        .await?;

    let outbox = Outbox::new("spellchecker_service");
    for n in 0..count {
        let essay = format!("essay-{}", Uuid::new_v4().simple());
        let event = SpellcheckPhaseCompletedV1 {
            entity_id: essay.clone(),
            batch_id: "batch-example".into(),
            correlation_id: "example".into(),
            status: ProcessingStatus::Completed,
            corrected_text_storage_id: None,
            error_code: None,
            processing_duration_ms: 40 + n,
            timestamp: Timestamp::from_datetime(chrono::Utc::now()),
        };
        let mut tx = outbox.begin_on(&mut conn).await?;
        tx.execute(
            "INSERT INTO example_spellcheck_results VALUES ($1, $2)",
            &[&essay, &event.processing_duration_ms],
        )
        .await?;
        let event_id = tx.publish(event, CorrelationId::new())?;
        tx.commit().await?;
        println!("committed {essay} with event {event_id}");
    }

    // Relay until the outbox is empty, then stop the relay.
    let watch = PgOutbox::connect_with(&database_url, false).await?;
    let relay = Relay::builder(store, &kafka)
        .service("spellchecker_service")
        .build()?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while watch.depth().await? > 0 {
        if tokio::time::Instant::now() > deadline {
            return Err(
                "events still in the outbox after 60 s: is Kafka reachable at HULE_BROKERS?".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    let stats = running.await??;
    println!("relayed {} event(s) to Kafka", stats.published);
    Ok(())
}
