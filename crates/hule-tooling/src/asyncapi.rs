//! The event catalog as an AsyncAPI 3.0 document, generated from the registry and the payload schemas.
//!
//! - **channels**: one per standard topic (and per distinct legacy topic), with Kafka channel bindings 0.5.0:
//!   partitions, replicas and the topic class's `cleanup.policy` and `retention.ms`.
//! - **messages** (`components.messages`, one per event, named by its payload model): the wire payload is the
//!   [`hule_contracts::EventEnvelope`] whose `data` is the event's payload schema; the headers schema lists the standard
//!   headers; the Kafka message binding describes the partition key; one example envelope with its headers.
//! - **operations**: `send` for each producing service, `receive` for each consuming service (with its consumer
//!   group in the Kafka operation binding).
//! - **components.schemas**: the payload models and every type they share, the envelope and the headers.
//!
//! `docs/asyncapi.json` is this output; a test validates it against the official AsyncAPI 3.0.0 JSON Schema
//! (npm `@asyncapi/specs`) and every example against its message's schemas.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::schema::{payload_subschema, pretty, shared_generator};
use crate::topics::TopicOptions;
use hule_contracts::envelope::EventEnvelope;
use hule_contracts::examples::example_json;
use hule_contracts::headers::{names, standard_headers};
use hule_contracts::registry::{EventDef, EVENTS};
use hule_contracts::time::Timestamp;

/// Version of the Kafka bindings written.
const KAFKA_BINDING: &str = "0.5.0";

/// The standard headers with what they carry.
const HEADERS: &[(&str, &str)] = &[
    (names::EVENT_ID, "The envelope's event_id (UUID)."),
    (
        names::EVENT_TYPE,
        "The envelope's event_type (normally the topic).",
    ),
    (
        names::TRACE_ID,
        "The correlation id, under the original's name.",
    ),
    (names::SCHEMA_VERSION, "The envelope's schema_version."),
    (
        names::OCCURRED_AT,
        "The envelope's event_timestamp (ISO-8601).",
    ),
    (names::CONTENT_TYPE, "Always application/json."),
    (names::SOURCE_SERVICE, "The producing service."),
    (names::CORRELATION_ID, "The correlation id (UUID)."),
    (names::IDEMPOTENCY_KEY, "topic:partition_key:event_id."),
    (names::RETRY_COUNT, "Failed deliveries so far (decimal)."),
    (names::MAX_RETRIES, "Retries a consumer may make (decimal)."),
    (
        names::BACKOFF_MS,
        "Comma-separated retry delays in milliseconds.",
    ),
    (
        names::ORIGINAL_TIMESTAMP,
        "When the event was first produced.",
    ),
    (names::TRACEPARENT, "W3C trace context."),
    (names::TRACESTATE, "W3C trace state."),
    (
        names::REPLAYED_FROM,
        "Set on records republished from a dead-letter topic.",
    ),
];

/// The message id of an event: its payload model's name.
pub fn message_id(def: &EventDef) -> &'static str {
    def.payload_type
}

fn headers_schema() -> Value {
    let props: Map<String, Value> = HEADERS
        .iter()
        .map(|(name, doc)| {
            (
                (*name).to_owned(),
                json!({"type": "string", "description": doc}),
            )
        })
        .collect();
    json!({
        "type": "object",
        "description": "Kafka record headers (UTF-8 strings). The hule relay writes all but traceparent, tracestate \
                        (when the envelope carries them) and X-Replayed-From (on replay); Python producers write a \
                        subset, so none is required.",
        "properties": props,
    })
}

fn channel(def: &EventDef, address: &str, legacy: bool, opts: &TopicOptions) -> Value {
    let id = message_id(def);
    let policy: Vec<&str> = def.class.cleanup_policy().split(',').collect();
    let description = if legacy {
        format!(
            "Legacy topic of {} (dual mode during the transition).",
            def.name
        )
    } else {
        format!(
            "{} ({}); {} topic, partition key `{}` ({:?}).",
            def.name,
            def.value,
            def.class.as_str(),
            def.key.field,
            def.key.concept
        )
    };
    json!({
        "address": address,
        "title": address,
        "description": description,
        "messages": {id: {"$ref": format!("#/components/messages/{id}")}},
        "bindings": {"kafka": {
            "topic": address,
            "partitions": opts.partitions,
            "replicas": opts.replication,
            "topicConfiguration": {
                "cleanup.policy": policy,
                "retention.ms": def.class.retention_ms(),
            },
            "bindingVersion": KAFKA_BINDING,
        }},
    })
}

fn example(def: &EventDef, n: usize) -> Value {
    let data: Value = example_json(def.event)
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let at = Timestamp::parse("2025-11-21T18:04:12.345678Z").unwrap_or(Timestamp::EPOCH);
    let id = Uuid::from_u128(0x4855_4c45_0000_0000_0000_0000_0000_0000 | n as u128);
    let producer = def.producers.first().copied().unwrap_or("unknown_service");
    let envelope = EventEnvelope::new(id, def.topic, at, producer, id, data);
    let key = hule_contracts::examples::example_payload(def.event)
        .ok()
        .and_then(|p| p.partition_key().map(|k| k.into_owned()))
        .unwrap_or_default();
    let headers: Map<String, Value> = standard_headers(&envelope, def.topic, &key)
        .iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    json!({
        "name": "example",
        "summary": format!("A {} as the relay publishes it.", def.name),
        "headers": headers,
        "payload": serde_json::to_value(&envelope).unwrap_or(Value::Null),
    })
}

fn message(def: &EventDef, n: usize, payload_ref: Value) -> Value {
    let producers = if def.producers.is_empty() {
        "no producer yet".to_owned()
    } else {
        def.producers.join(", ")
    };
    json!({
        "name": def.name,
        "title": def.payload_type,
        "summary": format!("{} on {}", def.value, def.topic),
        "description": format!(
            "Payload model `{}` (version {}); producers: {producers}; consumers: {}.",
            def.payload_type,
            def.version(),
            if def.consumers.is_empty() { "none yet".to_owned() } else { def.consumers.join(", ") }
        ),
        "contentType": "application/json",
        "tags": [{"name": def.domain()}, {"name": def.class.as_str()}],
        "headers": {"$ref": "#/components/schemas/StandardHeaders"},
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/EventEnvelope"},
                {"type": "object", "properties": {"data": payload_ref}},
            ],
        },
        "bindings": {"kafka": {
            "key": {
                "type": "string",
                "description": format!("The partition key: payload field `{}` ({:?}).", def.key.field, def.key.concept),
            },
            "bindingVersion": KAFKA_BINDING,
        }},
        "examples": [example(def, n)],
    })
}

fn operation(def: &EventDef, service: &str, send: bool) -> Value {
    let channel = def.topic;
    let id = message_id(def);
    let mut op = json!({
        "action": if send { "send" } else { "receive" },
        "channel": {"$ref": format!("#/channels/{channel}")},
        "title": format!("{service} {} {}", if send { "publishes" } else { "consumes" }, def.name),
        "messages": [{"$ref": format!("#/channels/{channel}/messages/{id}")}],
    });
    if !send {
        op["bindings"] = json!({"kafka": {
            "groupId": {"type": "string", "enum": [service]},
            "bindingVersion": KAFKA_BINDING,
        }});
    }
    op
}

/// The AsyncAPI 3.0 document.
pub fn document() -> Value {
    let opts = TopicOptions::default();
    let mut generator = shared_generator("/components/schemas");
    generator.subschema_for::<EventEnvelope<Value>>();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for (n, def) in EVENTS.iter().enumerate() {
        let payload_ref = payload_subschema(def.event, &mut generator);
        messages.insert(message_id(def).to_owned(), message(def, n, payload_ref));
        channels.insert(def.topic.to_owned(), channel(def, def.topic, false, &opts));
        if def.has_distinct_legacy_topic() {
            let legacy = channel(def, def.legacy_topic, true, &opts);
            channels.insert(def.legacy_topic.to_owned(), legacy);
        }
        for service in def.producers {
            operations.insert(
                format!("{service}.send.{}", def.name),
                operation(def, service, true),
            );
        }
        for service in def.consumers {
            operations.insert(
                format!("{service}.receive.{}", def.name),
                operation(def, service, false),
            );
        }
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("StandardHeaders".into(), headers_schema());
    json!({
        "asyncapi": "3.0.0",
        "id": "urn:huleedu:events",
        "info": {
            "title": "HuleEdu events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The {} events of the HuleEdu platform: topics, payloads, keys, producers and consumers. Generated \
                 by `hule catalog --format asyncapi` from the registry; do not edit by hand.",
                EVENTS.len()
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {
            "host": "127.0.0.1:9092",
            "protocol": "kafka",
            "description": "A local broker (`hule broker` starts one); replace with the cluster's bootstrap servers.",
        }},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    })
}

/// The AsyncAPI document as pretty JSON (what `hule catalog --format asyncapi` writes).
pub fn document_json() -> String {
    pretty(&document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_channel_message_and_resolvable_references() {
        let doc = document();
        assert_eq!(
            doc["components"]["messages"].as_object().map(Map::len),
            Some(EVENTS.len())
        );
        let text = doc.to_string();
        // Every local reference points at something in the document.
        for part in text.split("\"$ref\":\"#/").skip(1) {
            let pointer = &part[..part.find('"').unwrap_or(0)];
            let resolved = pointer.split('/').try_fold(&doc, |v, seg| {
                v.get(seg.replace("~1", "/").replace("~0", "~"))
            });
            assert!(resolved.is_some(), "dangling $ref #/{pointer}");
        }
    }
}
