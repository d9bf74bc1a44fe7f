//! The dead-letter layer and the record it writes to `<topic>.dlq.v1`.
//!
//! The record's value is JSON with the seed's fields (`original_topic`, `original_event`, `error_message`,
//! `error_type`, `retry_count`, `failed_at`, `failed_by_service`) plus the source partition, offset and key; it
//! keeps the original key and headers and adds `X-Retry-Count`, `X-DLQ-Reason` and the trace context. The
//! original envelope is embedded as JSON when it parses, byte for byte as it arrived (see [`OriginalEvent`]);
//! otherwise its bytes are kept in base64 with a note.

use std::sync::Arc;

use base64::Engine as _;
use futures::future::BoxFuture;
use futures::FutureExt;
use hule_contracts::headers::names;
use hule_contracts::naming::dlq_topic;
use hule_contracts::{DecodePhase, Headers, Timestamp};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::message::{Delivery, Message};
use crate::metrics::ConsumerMetrics;
use crate::service::{BoxService, Failure, Layer, Outcome, Processed, Service};
use hule_contracts::{DeliveryError, FailureKind};

/// Header naming the DLQ reason.
pub const DLQ_REASON_HEADER: &str = "X-DLQ-Reason";

/// The JSON value of a dead-letter record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// Where the record was read.
    pub original_topic: String,
    /// Its partition there.
    pub original_partition: i32,
    /// Its offset there.
    pub original_offset: i64,
    /// Its key, as text (lossy).
    pub original_key: Option<String>,
    /// The original envelope as JSON, or a base64 string of the raw bytes (see `original_event_encoding`).
    pub original_event: OriginalEvent,
    /// `json` or `base64`.
    pub original_event_encoding: String,
    /// Why the bytes are in base64, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The whitespace around a JSON record's value (before, after), when it had any (a trailing newline, say):
    /// embedding keeps the value only, and a replay puts this back so that it sends the bytes the producer sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_event_padding: Option<(String, String)>,
    /// The event id, when the envelope parsed far enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The error.
    pub error_message: String,
    /// The reason class: `invalid_envelope`, `unknown_event`, `invalid_payload`, `oversize`, `invalid_headers`,
    /// `key_mismatch`, `permanent_error`, `retries_exhausted`.
    pub error_type: String,
    /// Retries made before giving up.
    pub retry_count: u32,
    /// When the consumer gave up.
    pub failed_at: Timestamp,
    /// The consuming service.
    pub failed_by_service: String,
}

/// The original record inside a dead letter, kept as the exact JSON text it was embedded with.
///
/// A consumer embeds a JSON record's bytes unchanged (a `serde_json::Value` would turn `41.50` into `41.5` and
/// `caf\u00e9` into `café`), and reading a dead letter keeps the text as the dead-letter record holds it, so a
/// replay sends the bytes the producer sent. [`OriginalEvent::value`] parses it when a field is wanted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OriginalEvent(Box<serde_json::value::RawValue>);

impl OriginalEvent {
    /// `bytes` embedded as they are when they are one JSON value, with the whitespace around it (which embedding
    /// drops) returned beside it as (before, after); `None` when they are not JSON.
    pub fn verbatim(bytes: &[u8]) -> Option<(OriginalEvent, Option<(String, String)>)> {
        let text = std::str::from_utf8(bytes).ok()?;
        let is_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
        let value = text.trim_matches(is_ws);
        let raw = serde_json::value::RawValue::from_string(value.to_owned()).ok()?;
        let start = text.len() - text.trim_start_matches(is_ws).len();
        let padding = (value.len() != text.len()).then(|| {
            (
                text[..start].to_owned(),
                text[start + value.len()..].to_owned(),
            )
        });
        Some((OriginalEvent(raw), padding))
    }

    /// The embedding of a JSON value (for base64 strings and `null`).
    pub fn of(value: &serde_json::Value) -> OriginalEvent {
        // A `Value` always serializes; the fallback is `null`, never reached.
        let raw = serde_json::value::to_raw_value(value)
            .unwrap_or_else(|_| serde_json::value::to_raw_value(&()).expect("null serializes"));
        OriginalEvent(raw)
    }

    /// The JSON text as embedded.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The text parsed (numbers as `serde_json` holds them; use [`OriginalEvent::text`] for the exact bytes).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }

    /// A top-level string field of the embedded object, e.g. `event_type`.
    pub fn field_str(&self, name: &str) -> Option<String> {
        // The top level only, its values left as borrowed raw text: grouping and searching many dead letters reads
        // one field of each, not the whole envelope into a `Value`.
        let fields: std::collections::HashMap<String, &serde_json::value::RawValue> =
            serde_json::from_str(self.0.get()).ok()?;
        serde_json::from_str(fields.get(name)?.get()).ok()
    }
}

impl PartialEq for OriginalEvent {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl PartialEq<serde_json::Value> for OriginalEvent {
    fn eq(&self, other: &serde_json::Value) -> bool {
        self.value() == *other
    }
}

/// A record ready for the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// `<original topic>.dlq.v1`.
    pub topic: String,
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original headers plus the DLQ ones.
    pub headers: Headers,
    /// The JSON record.
    pub value: Vec<u8>,
    /// The record, for metrics and logs.
    pub record: DeadLetterRecord,
}

impl DeadLetter {
    /// Builds the dead letter of `delivery` failing with `failure`.
    pub fn build(delivery: &Delivery, failure: &Failure, service: &str) -> DeadLetter {
        let (error_type, retry_count) = match failure {
            Failure::Invalid(e) => (
                match e.phase {
                    DecodePhase::Envelope => "invalid_envelope",
                    DecodePhase::Routing => "unknown_event",
                    DecodePhase::Payload => "invalid_payload",
                },
                0,
            ),
            Failure::Rejected { reason, .. } => (*reason, 0),
            Failure::Permanent(_) => ("permanent_error", 0),
            Failure::Exhausted { attempts, .. } => {
                ("retries_exhausted", attempts.saturating_sub(1))
            }
            Failure::Transient(_) => ("transient_error", 0),
            Failure::Unavailable(_) => ("unavailable", 0),
            Failure::Fatal(_) => ("fatal", 0),
            Failure::Undone(_) => ("undone", 0),
        };
        let error_message = match failure {
            Failure::Invalid(e) => e.to_string(),
            Failure::Rejected { message, .. } => message.clone(),
            Failure::Permanent(m)
            | Failure::Transient(m)
            | Failure::Unavailable(m)
            | Failure::Fatal(m)
            | Failure::Undone(m) => m.clone(),
            Failure::Exhausted { last, .. } => last.clone(),
        };
        let bytes = delivery.payload.as_deref().unwrap_or_default();
        let parsed = serde_json::from_slice::<serde_json::Value>(bytes);
        let base64 = |note: String| {
            (
                OriginalEvent::of(&serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                )),
                "base64",
                Some(note),
            )
        };
        let event_id = parsed.as_ref().ok().and_then(|v| {
            v.get("event_id")
                .and_then(|i| i.as_str())
                .map(str::to_owned)
        });
        let mut padding = None;
        let (original_event, encoding, note) = match (&parsed, OriginalEvent::verbatim(bytes)) {
            _ if delivery.payload.is_none() => (
                OriginalEvent::of(&serde_json::Value::String(String::new())),
                "base64",
                Some("the record had no value (a tombstone)".to_owned()),
            ),
            (Ok(_), Some((raw, around))) => {
                padding = around;
                (raw, "json", None)
            }
            // JSON that is not UTF-8 text (serde_json reads bytes; an embedding must be a string).
            (Ok(_), None) => {
                base64("the value is JSON but not UTF-8; its bytes are base64-encoded".to_owned())
            }
            (Err(e), _) => base64(format!(
                "the value is not JSON ({e}); its bytes are base64-encoded"
            )),
        };
        let record = DeadLetterRecord {
            original_topic: delivery.topic.clone(),
            original_partition: delivery.partition,
            original_offset: delivery.offset,
            original_key: delivery.key_text(),
            original_event,
            original_event_encoding: encoding.into(),
            note,
            original_event_padding: padding,
            event_id,
            error_message,
            error_type: error_type.into(),
            retry_count,
            failed_at: Timestamp::from_datetime(chrono::Utc::now()),
            failed_by_service: service.to_owned(),
        };
        let mut headers = delivery.headers.clone();
        headers.set(names::RETRY_COUNT, retry_count.to_string());
        headers.set(DLQ_REASON_HEADER, error_type);
        headers.set("X-Original-Topic", delivery.topic.clone());
        DeadLetter {
            topic: dlq_topic(&delivery.topic),
            key: delivery.key.clone(),
            headers,
            value: record_bytes(&record),
            record,
        }
    }

    /// The same dead letter without the original record, for when the broker refuses the full one for good
    /// (larger than the DLQ topic accepts): the note says why and where the original still is.
    pub fn without_original(&self, why: &str) -> DeadLetter {
        let mut record = self.record.clone();
        record.original_event = OriginalEvent::of(&serde_json::Value::Null);
        record.original_event_encoding = "omitted".into();
        record.note = Some(format!(
            "the original record is not included ({why}); it remains at {}:{}:{} until that topic's retention ends",
            record.original_topic, record.original_partition, record.original_offset
        ));
        DeadLetter {
            topic: self.topic.clone(),
            key: self.key.clone(),
            headers: self.headers.clone(),
            value: record_bytes(&record),
            record,
        }
    }
}

/// A record's JSON. Serializing these types cannot fail (string keys, no floats); were it ever to, the letter
/// says so instead of going out empty.
fn record_bytes(record: &DeadLetterRecord) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_else(|e| {
        format!(
            "{{\"original_topic\":{},\"original_partition\":{},\"original_offset\":{},\"error_type\":\"unserializable\",\"error_message\":{}}}",
            serde_json::Value::from(record.original_topic.as_str()),
            record.original_partition,
            record.original_offset,
            serde_json::Value::from(e.to_string())
        )
        .into_bytes()
    })
}

/// Where dead letters are sent; `hule-kafka` implements it with an acknowledged produce.
pub trait DeadLetterSink: Send + Sync + 'static {
    /// Sends one record and resolves once the broker acknowledged it; the error's kind says whether a retry can
    /// help.
    fn send(&self, letter: DeadLetter) -> BoxFuture<'_, Result<(), DeliveryError>>;
}

/// The dead-letter layer (outermost).
#[derive(Clone)]
pub struct DeadLetterLayer {
    sink: Arc<dyn DeadLetterSink>,
    service: String,
    metrics: ConsumerMetrics,
}

impl DeadLetterLayer {
    /// Sends failed records to `sink` in the name of `service`.
    pub fn new(sink: Arc<dyn DeadLetterSink>, service: &str, metrics: ConsumerMetrics) -> Self {
        DeadLetterLayer {
            sink,
            service: service.to_owned(),
            metrics,
        }
    }
}

impl Layer for DeadLetterLayer {
    fn layer(self, inner: BoxService) -> BoxService {
        Arc::new(DeadLetterService { cfg: self, inner })
    }
}

struct DeadLetterService {
    cfg: DeadLetterLayer,
    inner: BoxService,
}

impl Service for DeadLetterService {
    fn call<'a>(&'a self, msg: &'a mut Message) -> BoxFuture<'a, Processed> {
        async move {
            match self.inner.call(msg).await {
                Err(
                    failure @ (Failure::Invalid(_)
                    | Failure::Rejected { .. }
                    | Failure::Permanent(_)
                    | Failure::Exhausted { .. }),
                ) => {
                    let mut letter = DeadLetter::build(&msg.delivery, &failure, &self.cfg.service);
                    let reason = letter.record.error_type.clone();
                    tracing::warn!(at = %msg.delivery.position(), event_id = msg.delivery.headers.get(names::EVENT_ID).unwrap_or("-"), %reason, error = %failure, "dead-lettering");
                    // The dead letter continues the record's trace: its traceparent names this span.
                    let span = tracing::info_span!(target: "hule", "consumer.dead_letter", reason = %reason, topic = %letter.topic);
                    if let Some(trace) = hule_trace::wire_context(&span) {
                        letter.headers.set(hule_trace::TRACEPARENT, trace.traceparent);
                        match trace.tracestate {
                            Some(ts) => letter.headers.set(hule_trace::TRACESTATE, ts),
                            None => letter.headers.remove(hule_trace::TRACESTATE),
                        }
                    }
                    let position = msg.delivery.position();
                    async {
                        match self.cfg.sink.send(letter.clone()).await {
                            Ok(()) => Ok(()),
                            Err(e) if e.kind == FailureKind::Permanent => {
                                // The full letter will never be accepted: send it without the original record.
                                tracing::error!(at = %position, error = %e, "dead letter refused; sending it without the original record");
                                self.cfg
                                    .sink
                                    .send(letter.without_original(&e.to_string()))
                                    .await
                                    .map_err(|e| sink_failure(&e))
                            }
                            Err(e) => Err(sink_failure(&e)),
                        }
                    }
                    .instrument(span)
                    .await?;
                    self.cfg.metrics.dead_lettered(&msg.delivery.topic, &reason);
                    Ok(Outcome::DeadLettered { reason })
                }
                other => other,
            }
        }
        .boxed()
    }
    crate::service::forward_to_inner!(prepare, abandon, finish);
}

/// What a failed dead-letter produce means for the record: retry it later, or stop the consumer.
fn sink_failure(e: &DeliveryError) -> Failure {
    match e.kind {
        FailureKind::Fatal => Failure::Fatal(format!("dead-letter producer: {e}")),
        _ => Failure::Unavailable(format!("dead-letter produce failed: {e}")),
    }
}

/// A sink that keeps dead letters in memory (tests and the demo's accounting).
#[derive(Debug, Default)]
pub struct MemorySink {
    /// The letters sent.
    pub letters: std::sync::Mutex<Vec<DeadLetter>>,
}

impl DeadLetterSink for MemorySink {
    fn send(&self, letter: DeadLetter) -> BoxFuture<'_, Result<(), DeliveryError>> {
        async move {
            self.letters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(letter);
            Ok(())
        }
        .boxed()
    }
}

/// Which dead letters a tool acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DlqFilter {
    /// Only this `error_type`.
    pub reason: Option<String>,
    /// Only this event id.
    pub event_id: Option<String>,
    /// Only records that failed at or after this time.
    pub since: Option<Timestamp>,
    /// Only records of this original key.
    pub key: Option<String>,
    /// Only records dead-lettered by this service.
    pub service: Option<String>,
    /// Only records of this failure fingerprint ([`crate::Fingerprint`]'s id).
    pub fingerprint: Option<String>,
}

impl DlqFilter {
    /// Whether `record` passes.
    pub fn matches(&self, record: &DeadLetterRecord) -> bool {
        self.reason
            .as_deref()
            .is_none_or(|r| r == record.error_type)
            && self
                .event_id
                .as_deref()
                .is_none_or(|id| record.event_id.as_deref() == Some(id))
            && self.since.is_none_or(|t| record.failed_at >= t)
            && self
                .key
                .as_deref()
                .is_none_or(|k| record.original_key.as_deref() == Some(k))
            && self
                .service
                .as_deref()
                .is_none_or(|s| s == record.failed_by_service)
            && self
                .fingerprint
                .as_deref()
                .is_none_or(|f| crate::Fingerprint::of_record(record).id == f)
    }
}

/// Why a dead letter cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot replay: {0}")]
pub struct ReplayError(pub String);

/// A record to republish.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The original topic.
    pub topic: String,
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original headers, with the replay marker.
    pub headers: Headers,
    /// The original value.
    pub value: Vec<u8>,
}

impl Replay {
    /// Opens the replay's `dlq.replay` span — a new trace, linked to the one the record failed in (its dead
    /// letter's `traceparent`) — and makes the record's `traceparent` name it, so its next consumption is traced
    /// from the replay. Produce the record inside the returned span. Without an OpenTelemetry layer the headers
    /// are left as they are.
    pub fn traced(&mut self) -> tracing::Span {
        let span =
            tracing::info_span!(target: "hule", parent: None, "dlq.replay", topic = %self.topic);
        if let Some(original) = self.headers.get(hule_trace::TRACEPARENT) {
            hule_trace::link(&span, original, self.headers.get(hule_trace::TRACESTATE));
        }
        if let Some(trace) = hule_trace::wire_context(&span) {
            self.headers.set(hule_trace::TRACEPARENT, trace.traceparent);
            match trace.tracestate {
                Some(ts) => self.headers.set(hule_trace::TRACESTATE, ts),
                None => self.headers.remove(hule_trace::TRACESTATE),
            }
        }
        span
    }
}

/// The record to republish for a dead letter read at `dlq_topic[partition]@offset`: the original value (the JSON
/// envelope's text as the dead letter holds it, or the decoded base64 bytes), the original key, the original headers without the DLQ ones, with
/// `X-Retry-Count` reset and `X-Replayed-From` naming where it came from.
pub fn replay_record(
    record: &DeadLetterRecord,
    dlq_headers: &Headers,
    dlq_topic: &str,
    partition: i32,
    offset: i64,
) -> Result<Replay, ReplayError> {
    let value = match record.original_event_encoding.as_str() {
        "json" => match &record.original_event_padding {
            None => record.original_event.text().as_bytes().to_vec(),
            Some((before, after)) => {
                format!("{before}{}{after}", record.original_event.text()).into_bytes()
            }
        },
        "base64" => {
            let serde_json::Value::String(text) = record.original_event.value() else {
                return Err(ReplayError("base64 original_event is not a string".into()));
            };
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| ReplayError(format!("original_event is not valid base64: {e}")))?
        }
        "omitted" => {
            return Err(ReplayError(format!(
                "this dead letter does not carry its original record ({}); replay it from {}:{}:{}",
                record.note.as_deref().unwrap_or("omitted"),
                record.original_topic,
                record.original_partition,
                record.original_offset
            )))
        }
        other => {
            return Err(ReplayError(format!(
                "unknown original_event_encoding `{other}`"
            )))
        }
    };
    let mut headers: Headers = dlq_headers
        .iter()
        .filter(|(k, _)| *k != DLQ_REASON_HEADER && *k != "X-Original-Topic")
        .collect();
    headers.set(names::RETRY_COUNT, "0");
    headers.set(
        names::REPLAYED_FROM,
        format!("{dlq_topic}:{partition}:{offset}"),
    );
    Ok(Replay {
        topic: record.original_topic.clone(),
        key: record.original_key.as_ref().map(|k| k.as_bytes().to_vec()),
        headers,
        value,
    })
}
