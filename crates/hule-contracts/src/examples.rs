//! A valid, realistic example payload for every event, and example envelopes built from them.
//!
//! The examples live in `examples.json` (one object per event name) and are decoded through the typed payloads,
//! so an example that breaks its contract fails the tests.

use uuid::Uuid;

use crate::decode::{decode_payload, DecodedEnvelope};
use crate::envelope::{EnvelopeMetadata, EventEnvelope};
use crate::error::DecodeError;
use crate::registry::{Event, TypedEvent};
use crate::time::Timestamp;

const EXAMPLES: &str = include_str!("examples.json");

/// The embedded examples, parsed once.
fn examples() -> &'static serde_json::Map<String, serde_json::Value> {
    static PARSED: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>> =
        std::sync::OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(EXAMPLES).unwrap_or_default())
}

/// The example payload of an event, as JSON text.
pub fn example_json(event: Event) -> Option<String> {
    examples().get(event.name()).map(|v| v.to_string())
}

/// The example payload of an event, decoded.
pub fn example_payload(event: Event) -> Result<TypedEvent, DecodeError> {
    let json = example_json(event).ok_or_else(|| DecodeError {
        phase: crate::error::DecodePhase::Payload,
        path: "data".into(),
        reason: format!("no example for {}", event.name()),
    })?;
    let raw: Box<serde_json::value::RawValue> = serde_json::value::RawValue::from_string(json)
        .map_err(|e| DecodeError {
            phase: crate::error::DecodePhase::Payload,
            path: "data".into(),
            reason: e.to_string(),
        })?;
    decode_payload(event, &raw)
}

/// An example envelope for an event on its standard topic; the caller supplies ids and time.
pub fn example_envelope(
    event: Event,
    event_id: Uuid,
    correlation_id: Uuid,
    at: Timestamp,
) -> Result<DecodedEnvelope, DecodeError> {
    let data = example_payload(event)?;
    let producer = event
        .def()
        .producers
        .first()
        .copied()
        .unwrap_or("hule_events");
    let mut env = EventEnvelope::new(event_id, event.topic(), at, producer, correlation_id, data);
    env.metadata = Some(EnvelopeMetadata {
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        ..EnvelopeMetadata::default()
    });
    Ok(env)
}
