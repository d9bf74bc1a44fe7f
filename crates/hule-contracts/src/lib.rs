/*!
The contracts of the HuleEdu event backbone: pure, synchronous, no I/O, no clock, no randomness.

- [`registry`]: the 71 events ([`Event`], [`EventDef`], [`EVENTS`]) with standard and legacy topics, payload type,
  partition key, topic class, producers and consumers. Lookups by name, value or topic fail with a
  [`LookupError`] that lists every known event.
- [`payloads`]: one typed struct per event, field for field the original pydantic models, constraints enforced
  while decoding; [`TypedEvent`] is the enum over all of them, and each implements [`Payload`].
- [`envelope`]: [`EventEnvelope<T>`], byte-compatible with pydantic's `model_dump_json()` and accepting what the
  Python services put on Kafka.
- [`decode`](mod@decode): two-phase decoding, topic + bytes → [`TypedEvent`] or a [`DecodeError`] naming phase, path and reason.
- [`headers`]: the standard headers and the retry policy they carry; [`keys`]: partition-key contracts and
  Kafka's murmur2 partitioner; [`naming`]: topic naming rules; [`size`]: size limits and [`size::ArtifactRef`].
- [`examples`]: a valid, realistic payload for every event.

The operator's tooling built on these contracts — JSON Schemas, the schema-evolution gate, the catalog (Markdown,
HTML, AsyncAPI), the contract checks and the topics plan — lives in `hule-tooling`, so a service that links the
runtime does not link it.

```
use hule_contracts::{decode, Event, EventEnvelope, Timestamp, TypedEvent};
use hule_contracts::payloads::SpellcheckPhaseCompletedV1;
use hule_contracts::enums::ProcessingStatus;
use uuid::Uuid;

let at = Timestamp::parse("2025-11-21T18:04:12.345678Z").unwrap();
let payload = SpellcheckPhaseCompletedV1 {
    entity_id: "essay-1".into(), batch_id: "batch-1".into(), correlation_id: "c-1".into(),
    status: ProcessingStatus::Completed, corrected_text_storage_id: None, error_code: None,
    processing_duration_ms: 842, timestamp: at,
};
let topic = Event::SpellcheckPhaseCompleted.topic();
let envelope = EventEnvelope::new(Uuid::nil(), topic, at, "spellchecker_service", Uuid::nil(), payload);
let bytes = envelope.to_json().unwrap();
let decoded = decode::decode(Some(topic), &bytes).unwrap();
assert!(matches!(decoded.data, TypedEvent::SpellcheckPhaseCompleted(_)));
assert_eq!(decoded.data.partition_key().as_deref(), Some("batch-1"));
```
*/
#![warn(missing_docs)]

pub mod constrained;
pub mod decode;
pub mod delivery;
pub mod enums;
pub mod envelope;
pub mod error;
pub mod examples;
mod fast;
pub mod headers;
pub mod keys;
pub mod lax;
pub mod naming;
pub mod payloads;
mod pyjson;
pub mod registry;
pub mod sensitive;
pub mod size;
mod strict;
pub mod time;

pub use decode::{decode, decode_as, DecodedEnvelope};
pub use delivery::{DeliveryError, FailureKind};
pub use envelope::{CorrelationId, EnvelopeMetadata, EventEnvelope};
pub use error::{DecodeError, DecodePhase, KeyError, LookupError, SizeError};
pub use headers::{Headers, RetryPolicy};
pub use keys::{murmur2, partition_for, KeyConcept};
pub use pyjson::PythonFormatter;
pub use registry::{Event, EventDef, KeyDef, Payload, TopicClass, TypedEvent, EVENTS};
pub use time::Timestamp;
