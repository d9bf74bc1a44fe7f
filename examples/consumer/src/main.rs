//! A minimal consumer service: handles `SPELLCHECK_PHASE_COMPLETED` with shared state, deduplicates with Redis,
//! dead-letters what it cannot handle, and on Ctrl-C or SIGTERM (or after `--count N` records) finishes the records in
//! flight, commits and leaves its group. It links the consumer runtime only: `cargo tree -p
//! hule-example-consumer` shows neither rusqlite nor tokio-postgres.
//!
//! ```sh
//! HULE_BROKERS=127.0.0.1:9092 REDIS_URL=redis://127.0.0.1:6379 cargo run -p hule-example-consumer -- --count 5
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hule_consumer::{Context, HandlerError, RedisDedup};
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_kafka::{EventConsumer, KafkaSettings};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The handler: a typed, validated payload, its context (ids, topic, partition, offset, attempt, trace) and the
/// consumer's state. A permanent error dead-letters the record; a transient one is retried.
async fn on_spellchecked(
    handled: Arc<AtomicU64>,
    ctx: Context,
    done: SpellcheckPhaseCompletedV1,
) -> Result<(), HandlerError> {
    if done.entity_id.is_empty() {
        return Err(HandlerError::permanent("no essay id"));
    }
    let n = handled.fetch_add(1, Ordering::SeqCst) + 1;
    println!(
        "#{n} {} spellchecked in {} ms (event {})",
        done.entity_id, done.processing_duration_ms, ctx.event_id
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let stop_after = match args.iter().position(|a| a == "--count") {
        Some(i) => Some(
            args.get(i + 1)
                .ok_or("--count needs a number")?
                .parse::<u64>()?,
        ),
        None => None,
    };
    let kafka = KafkaSettings::new(&env("HULE_BROKERS", "127.0.0.1:9092"));
    let handled = Arc::new(AtomicU64::new(0));

    let redis_url = env("REDIS_URL", "redis://127.0.0.1:6379");
    let consumer = EventConsumer::builder(&kafka, "example-consumer", "example_consumer_service")
        .state(handled.clone())
        .handle(on_spellchecked)
        .dedup(RedisDedup::new(&redis_url)?)
        .build()?;

    // Cancelled on Ctrl-C or SIGTERM.
    let shutdown = hule_kafka::shutdown_token();
    if let Some(n) = stop_after {
        let (token, handled) = (shutdown.clone(), handled.clone());
        tokio::spawn(async move {
            while handled.load(Ordering::SeqCst) < n {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            token.cancel();
        });
    }
    let stats = consumer.run(shutdown).await?;
    eprintln!("stopped after {} record(s), all committed", stats.finished);
    Ok(())
}
