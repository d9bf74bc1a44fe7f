//! `EventEnvelope<T>`: the nine fields of the original, in its order, encoded as pydantic's `model_dump_json()`.
//!
//! Decoding accepts what Python services put on Kafka: compact JSON or `json.dumps` output (`", "`, `": "`, `\uXXXX`
//! escapes), `+00:00` offsets and naive timestamps, a `schema_version` written as a digit string, and unknown extra
//! keys, which are ignored as pydantic ignores them. `event_id`, `event_timestamp` and `correlation_id` must be
//! present: the original fills them from a clock and a random source when absent, which would give a consumer an
//! event that cannot be deduplicated; every Python producer writes them.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::payloads::JsonMap;
use crate::time::Timestamp;

/// The envelope every event travels in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "EventEnvelope")]
pub struct EventEnvelope<T> {
    /// The event's identity; kept from the outbox to the consumer, never regenerated.
    pub event_id: Uuid,
    /// Normally the topic; Python producers sometimes write the enum value or another string.
    pub event_type: String,
    /// When the event happened.
    pub event_timestamp: Timestamp,
    /// The producing service.
    pub source_service: String,
    /// Envelope structure version (not the payload version); always 1 so far.
    #[serde(default = "one", deserialize_with = "lax_u32")]
    #[schemars(schema_with = "schema_version_schema")]
    pub schema_version: u32,
    /// The request this event belongs to.
    pub correlation_id: Uuid,
    /// Unused by the original; always null.
    #[serde(default)]
    pub data_schema_uri: Option<String>,
    /// The payload.
    pub data: T,
    /// Trace context, the partition key hint and ad-hoc extras.
    #[serde(default)]
    pub metadata: Option<EnvelopeMetadata>,
}

/// `EventEnvelope.metadata`: the keys the original writes, and any others kept as given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvelopeMetadata {
    /// W3C trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// W3C trace state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// W3C baggage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baggage: Option<String>,
    /// The key the original `OutboxManager` honours over its own choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// Other keys (BOS's `batch_id`, the gateway's `org_id`, ...).
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `schema_version` as read: an integer, or its digits as a string (some Python producers write `"1"`).
fn schema_version_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}],
        "default": 1,
    })
}

impl<P: crate::Payload> EventEnvelope<P> {
    /// An envelope for `payload` whose `event_type` is its own event's topic (no topic string to get wrong).
    pub fn of(
        payload: P,
        event_id: Uuid,
        event_timestamp: Timestamp,
        source_service: impl Into<String>,
        correlation_id: Uuid,
    ) -> Self {
        EventEnvelope::new(
            event_id,
            P::EVENT.topic(),
            event_timestamp,
            source_service,
            correlation_id,
            payload,
        )
    }
}

impl<T> EventEnvelope<T> {
    /// Builds an envelope with the defaults of the original (`schema_version` 1, no schema URI, no metadata).
    pub fn new(
        event_id: Uuid,
        event_type: impl Into<String>,
        event_timestamp: Timestamp,
        source_service: impl Into<String>,
        correlation_id: Uuid,
        data: T,
    ) -> Self {
        EventEnvelope {
            event_id,
            event_type: event_type.into(),
            event_timestamp,
            source_service: source_service.into(),
            schema_version: 1,
            correlation_id,
            data_schema_uri: None,
            data,
            metadata: None,
        }
    }

    /// The W3C `traceparent` carried in metadata, if any.
    pub fn traceparent(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.traceparent.as_deref())
    }

    /// Replaces the payload, keeping every envelope field.
    pub fn map_data<U>(self, f: impl FnOnce(T) -> U) -> EventEnvelope<U> {
        EventEnvelope {
            event_id: self.event_id,
            event_type: self.event_type,
            event_timestamp: self.event_timestamp,
            source_service: self.source_service,
            schema_version: self.schema_version,
            correlation_id: self.correlation_id,
            data_schema_uri: self.data_schema_uri,
            data: f(self.data),
            metadata: self.metadata,
        }
    }
}

impl<T: Serialize> EventEnvelope<T> {
    /// Encodes as pydantic's `model_dump_json()`: compact, UTF-8, fields in order.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Encodes as the Python `KafkaBus` does (`json.dumps(model_dump(mode="json"))`): `", "` and `": "`
    /// separators and non-ASCII escaped as `\uXXXX`.
    pub fn to_python_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(512);
        let mut ser =
            serde_json::Serializer::with_formatter(&mut out, crate::pyjson::PythonFormatter);
        self.serialize(&mut ser)?;
        Ok(out)
    }
}

fn one() -> u32 {
    1
}

/// pydantic's lax int: `2` and `"2"` are 2; `"1.0.0"` is rejected.
fn lax_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::custom(format_args!("{v} is too large")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
            u32::try_from(v)
                .map_err(|_| E::custom(format_args!("{v} is not a non-negative integer")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
            crate::lax::int_from_str(v)
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| E::custom(format_args!("`{v}` is not a non-negative integer")))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<u32, E> {
            Ok(u32::from(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u32, E> {
            // 2.0 is 2 (pydantic's int_from_float); 2.5 is not an integer.
            if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
                Ok(v as u32)
            } else {
                Err(E::custom(format_args!("{v} is not a non-negative integer")))
            }
        }
    }
    d.deserialize_any(V)
}

/// The id that ties together every event of one request (the envelope's `correlation_id`), named so that a bare
/// `Uuid` argument says what it is: `CorrelationId::new()` starts a request, `CorrelationId::from(uuid)` continues one
/// known by its id, and a consumer's `&Context` converts into the id of the event being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CorrelationId(pub Uuid);

impl CorrelationId {
    /// A new request's id.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CorrelationId(Uuid::new_v4())
    }
}

impl From<Uuid> for CorrelationId {
    fn from(id: Uuid) -> Self {
        CorrelationId(id)
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
