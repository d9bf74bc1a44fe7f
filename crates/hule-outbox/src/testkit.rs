//! Rows for tests and benchmarks of the relay: numbered `SpellcheckPhaseCompletedV1` events whose number travels in
//! `processing_duration_ms`, keyed over a few batches, so a test can check "each once, every key in order".

use hule_contracts::enums::ProcessingStatus;
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_contracts::{Event, EventEnvelope, Timestamp};
use uuid::Uuid;

use crate::prepare::{prepare, EnqueueOptions, NewRow};

/// Outbox rows for events numbered `range`, event `n` keyed `batch-{n % keys}`.
pub fn numbered_rows(range: std::ops::Range<i64>, keys: i64) -> crate::error::Result<Vec<NewRow>> {
    let mut rows = Vec::new();
    for n in range {
        let at = Timestamp::from_datetime(chrono::Utc::now());
        let payload = SpellcheckPhaseCompletedV1 {
            entity_id: format!("essay-{n}"),
            batch_id: format!("batch-{}", n % keys.max(1)),
            correlation_id: "c".into(),
            status: ProcessingStatus::Completed,
            corrected_text_storage_id: None,
            error_code: None,
            processing_duration_ms: n,
            timestamp: at,
        };
        let env = EventEnvelope::new(
            Uuid::new_v4(),
            Event::SpellcheckPhaseCompleted.topic(),
            at,
            "test",
            Uuid::new_v4(),
            payload,
        );
        rows.extend(prepare(&env, &EnqueueOptions::default())?);
    }
    Ok(rows)
}

/// The number of an event made by [`numbered_rows`], read from its envelope JSON.
pub fn number_of(value: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    v["data"]["processing_duration_ms"].as_i64()
}

/// The test database (`$HULE_TEST_DATABASE_URL`, else the `test` database `scripts/setup.sh` makes).
pub fn pg_test_url() -> String {
    std::env::var("HULE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A URL of the test database whose connections work in a new schema of their own (named `{prefix}_{random}`),
/// so each test has an empty outbox.
///
/// # Panics
/// When PostgreSQL does not answer: a test that needs it fails loudly without it.
#[cfg(feature = "postgres")]
pub async fn pg_schema_url(prefix: &str) -> String {
    let base = pg_test_url();
    let schema = format!("{prefix}_{}", Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL must answer at {base} (HULE_TEST_DATABASE_URL; scripts/setup.sh starts it): {e}")
        });
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}
