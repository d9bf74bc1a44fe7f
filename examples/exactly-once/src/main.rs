//! An exactly-once service, `feedback_service`: for each `SPELLCHECK_PHASE_COMPLETED` it writes a feedback note (its
//! effect) and publishes `TEACHER_NOTIFICATION_REQUESTED` through its outbox, both in the transaction that also
//! records the event in its inbox; the same process relays its outbox to Kafka. A redelivered event finds its inbox
//! row and is skipped; a handler error rolls the note, the notification and the inbox row back together. SIGTERM or
//! Ctrl-C stops it cleanly: records in flight finish, offsets are committed, the relay publishes what was committed.
//!
//! ```sh
//! HULE_BROKERS=127.0.0.1:9092 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run -p hule-example-exactly-once
//! ```

use hule_consumer::{Context, HandlerError};
use hule_contracts::enums::{NotificationPriority, ProcessingStatus, WebSocketEventCategory};
use hule_contracts::payloads::{SpellcheckPhaseCompletedV1, TeacherNotificationRequestedV1};
use hule_contracts::Timestamp;
use hule_kafka::{EventConsumer, KafkaSettings, Relay, Transaction};
use hule_outbox::{Outbox, PgOutbox};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The service's name: the envelopes' `source_service`, the dead letters' `failed_by_service`, the metrics' label.
const SERVICE: &str = "feedback_service";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// What every handler call gets: the service's outbox handle (cheap to clone, holds no connection).
#[derive(Clone)]
struct App {
    outbox: Outbox,
}

/// The handler: a plain `async fn` with the state, the inbox's transaction, the context and the typed payload. Its
/// writes and its publish commit with the inbox row when it returns `Ok`; `?` turns database and outbox errors
/// into retried, dead-lettered or waited-out failures by their kind.
async fn on_spellchecked(
    app: App,
    tx: &Transaction<'_>,
    ctx: Context,
    done: SpellcheckPhaseCompletedV1,
) -> Result<(), HandlerError> {
    tx.execute(
        "INSERT INTO feedback_notes (essay_id, batch_id, event_id, duration_ms) VALUES ($1, $2, $3, $4)",
        &[&done.entity_id, &done.batch_id, &ctx.event_id.to_string(), &done.processing_duration_ms],
    )
    .await?;
    let notification = TeacherNotificationRequestedV1 {
        teacher_id: format!("teacher-of-{}", done.batch_id),
        notification_type: "spellcheck_feedback_ready".into(),
        category: WebSocketEventCategory::ProcessingResults,
        priority: NotificationPriority::Standard,
        payload: [("essay_id".to_owned(), done.entity_id.clone().into())]
            .into_iter()
            .collect(),
        action_required: false,
        deadline_timestamp: None,
        correlation_id: ctx.correlation_id.to_string(),
        batch_id: Some(done.batch_id.clone()),
        class_id: None,
        timestamp: Timestamp::from_datetime(chrono::Utc::now()),
    };
    app.outbox.publish(tx, notification, &ctx).await?;
    if done.status == ProcessingStatus::Failed {
        // A business rule: no feedback for a failed spellcheck. The note and the notification above are rolled
        // back with the inbox row, and the record is dead-lettered with this reason.
        return Err(HandlerError::permanent(format!(
            "spellcheck of {} failed ({}); no feedback to give",
            done.entity_id,
            done.error_code.as_deref().unwrap_or("no error code")
        )));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(env("RUST_LOG", "info")))
        .with_writer(std::io::stderr)
        .init();
    let kafka = KafkaSettings::new(&env("HULE_BROKERS", "127.0.0.1:9092"));
    let database_url = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test");
    let group = env("GROUP", "feedback-service");

    // The service's own table, and its outbox (`event_outbox`, created if missing).
    hule_pg::connect(&database_url)
        .await?
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS feedback_notes (
                 essay_id TEXT NOT NULL, batch_id TEXT NOT NULL, event_id TEXT NOT NULL, duration_ms BIGINT NOT NULL)",
        )
        .await?;
    let outbox = PgOutbox::connect(&database_url).await?;

    let shutdown = hule_kafka::shutdown_token();
    // The relay stops after the consumer, so that what the last records committed is published too.
    let relay_stop = shutdown.child_token();
    let relay = Relay::builder(outbox, &kafka).service(SERVICE).build()?;
    let relaying = tokio::spawn(relay.run(relay_stop.clone()));

    let consumer = EventConsumer::builder(&kafka, &group, SERVICE)
        .state(App {
            outbox: Outbox::new(SERVICE),
        })
        .inbox(&database_url)
        .handle_tx(on_spellchecked)
        .build()?;
    let consumed = consumer.run(shutdown.clone()).await;
    // The consumer stopped (a signal, or a fatal error): the relay publishes what was committed, then stops.
    relay_stop.cancel();
    let relayed = relaying.await?;
    let (stats, relayed) = (consumed?, relayed?);
    eprintln!(
        "{SERVICE}: stopped after {} record(s); {} event(s) relayed",
        stats.finished, relayed.published
    );
    Ok(())
}
