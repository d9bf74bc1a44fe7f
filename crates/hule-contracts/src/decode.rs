//! Two-phase decode: bytes → envelope with raw `data` → the typed payload the topic implies.
//!
//! The fast path parses with `sonic-rs` (SIMD) into the same serde types; only when it fails is the input decoded
//! again with `serde_json` and path tracking, so the error names the field (`data.essay_results[0].normalized_score`)
//! without slowing valid records down. Both paths enforce the same types and constraints.

use serde_json::value::RawValue;

use crate::envelope::EventEnvelope;
use crate::error::{DecodeError, DecodePhase};
use crate::registry::{decode_payload_fast, decode_payload_tracked, Event, Payload, TypedEvent};

/// An envelope whose payload is still raw JSON (phase one).
pub type RawEnvelope<'a> = EventEnvelope<&'a RawValue>;

/// A fully decoded record.
pub type DecodedEnvelope = EventEnvelope<TypedEvent>;

/// Phase one: checks UTF-8 and the envelope's fields, leaving `data` unparsed.
pub fn decode_envelope(bytes: &[u8]) -> Result<RawEnvelope<'_>, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::new(
            DecodePhase::Envelope,
            ".",
            format!("not UTF-8: invalid byte at offset {}", e.valid_up_to()),
        )
    })?;
    match serde_json::from_str::<RawEnvelope<'_>>(text) {
        Ok(env) => Ok(env),
        Err(_) => {
            let mut de = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, RawEnvelope<'_>>(&mut de) {
                Ok(env) => Ok(env),
                Err(e) => Err(DecodeError::new(
                    DecodePhase::Envelope,
                    path_of(e.path()),
                    e.inner().to_string(),
                )),
            }
        }
    }
}

/// Chooses the event: from the Kafka topic when given (standard or legacy), else from `event_type`
/// (a topic, an event name or an enum value, all of which Python producers write).
pub fn route(topic: Option<&str>, event_type: &str) -> Result<Event, DecodeError> {
    match topic {
        Some(t) => Event::from_topic(t).map_err(|_| {
            DecodeError::new(
                DecodePhase::Routing,
                "topic",
                format!("topic `{t}` is not a registered event topic"),
            )
        }),
        None => Event::lookup(event_type).map_err(|_| {
            DecodeError::new(
                DecodePhase::Routing,
                "event_type",
                format!("`{event_type}` is neither a registered topic nor an event name or value"),
            )
        }),
    }
}

/// Phase two: decodes `data` as the payload of `event`.
pub fn decode_payload(event: Event, data: &RawValue) -> Result<TypedEvent, DecodeError> {
    decode_payload_str(event, data.get())
}

fn decode_payload_str(event: Event, json: &str) -> Result<TypedEvent, DecodeError> {
    check_depth(json.as_bytes())
        .map_err(|e| DecodeError::new(DecodePhase::Payload, "data", e.reason))?;
    decode_payload_fast(event, json).map(Ok).unwrap_or_else(|| {
        decode_payload_tracked(event, json).map_err(|e| {
            let inner = e.path().to_string();
            let path = if inner == "." {
                "data".to_owned()
            } else {
                format!("data.{inner}")
            };
            DecodeError::new(
                DecodePhase::Payload,
                path,
                format!("{} (payload {})", e.inner(), event.def().payload_type),
            )
        })
    })
}

/// The deepest nesting of arrays and objects a record may have (serde_json's own limit; pydantic's JSON parser
/// allows 200). No payload of the registry comes near it.
pub const MAX_DEPTH: usize = 128;

/// Refuses JSON nested deeper than [`MAX_DEPTH`] before any parser sees it. The fast path's parser (sonic-rs)
/// recurses without a limit: a record of 50,000 `[` overflowed the stack and aborted the process, so one poison
/// record would crash-loop a consumer. Counting `[` and `{` bytes first is a vectorised pass (well under a
/// microsecond for a 9 KB envelope); only documents with more than `MAX_DEPTH` of them are walked exactly, with
/// strings skipped.
pub fn check_depth(bytes: &[u8]) -> Result<(), DecodeError> {
    let opening = bytes.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opening <= MAX_DEPTH {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::new(
                        DecodePhase::Envelope,
                        ".",
                        format!("JSON nested deeper than {MAX_DEPTH} levels (at byte {at})"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a record completely: envelope, route, payload.
pub fn decode(topic: Option<&str>, bytes: &[u8]) -> Result<DecodedEnvelope, DecodeError> {
    check_depth(bytes)?;
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(env) = sonic_rs::from_str::<EventEnvelope<sonic_rs::LazyValue<'_>>>(text) {
            let event = route(topic, &env.event_type)?;
            let data = decode_payload_str(event, env.data.as_raw_str())?;
            return Ok(env.map_data(|_| data));
        }
    }
    let raw = decode_envelope(bytes)?;
    let event = route(topic, &raw.event_type)?;
    let data = decode_payload(event, raw.data)?;
    Ok(raw.map_data(|_| data))
}

/// Decodes a record whose payload type is known statically.
pub fn decode_as<P: Payload>(bytes: &[u8]) -> Result<EventEnvelope<P>, DecodeError> {
    check_depth(bytes)?;
    let raw = decode_envelope(bytes)?;
    match serde_json::from_str::<P>(raw.data.get()) {
        Ok(payload) => Ok(raw.map_data(|_| payload)),
        Err(plain) => Err(decode_payload(P::EVENT, raw.data)
            .err()
            .unwrap_or_else(|| DecodeError::new(DecodePhase::Payload, "data", plain.to_string()))),
    }
}

fn path_of(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p.is_empty() {
        ".".to_owned()
    } else {
        p
    }
}
