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
