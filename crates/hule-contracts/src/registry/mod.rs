//! The registry: all 71 events with their topics, payload types, partition keys, topic classes, producers and
//! consumers, in one table that the compiler checks.
//!
//! Each row of `registry!` must name a standard topic, a legacy topic, a payload type, a key (its concept, field
//! path and extractor) and a topic class; a row missing any of them does not match the macro and fails to compile,
//! and a key extractor that names a field the payload lacks fails to type-check.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::LookupError;
use crate::keys::KeyConcept;
use crate::payloads::*;

/// A typed event payload: knows its event and where its partition key comes from.
pub trait Payload:
    Serialize + for<'de> Deserialize<'de> + Clone + fmt::Debug + Send + Sync + 'static
{
    /// The event this payload belongs to.
    const EVENT: Event;
    /// The partition key from the event's contract, or `None` when the (optional) field is absent.
    fn partition_key(&self) -> Option<Cow<'_, str>>;
    /// Wraps the payload into the enum over all events.
    fn into_typed(self) -> TypedEvent;
    /// Takes the payload out of the enum when it holds this event; otherwise says which event it holds.
    fn from_typed(typed: TypedEvent) -> Result<Self, Event>;
}

/// Retention and cleanup class of a topic (seed 002's topic configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicClass {
    /// Result topics: `compact,delete`, 7 days.
    Result,
    /// Phase-completion topics: `delete`, 24 hours.
    PhaseCompletion,
    /// Every other event topic: `delete`, 30 days.
    Standard,
    /// Dead-letter topics: `delete`, 30 days.
    DeadLetter,
}

impl TopicClass {
    /// Kafka `cleanup.policy`.
    pub fn cleanup_policy(&self) -> &'static str {
        match self {
            TopicClass::Result => "compact,delete",
            _ => "delete",
        }
    }

    /// Kafka `retention.ms`.
    pub fn retention_ms(&self) -> u64 {
        const DAY: u64 = 86_400_000;
        match self {
            TopicClass::Result => 7 * DAY,
            TopicClass::PhaseCompletion => DAY,
            TopicClass::Standard | TopicClass::DeadLetter => 30 * DAY,
        }
    }

    /// A short name for tables.
    pub fn as_str(&self) -> &'static str {
        match self {
            TopicClass::Result => "result",
            TopicClass::PhaseCompletion => "phase-completion",
            TopicClass::Standard => "standard",
            TopicClass::DeadLetter => "dead-letter",
        }
    }
}

/// Where an event's partition key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    /// What the key identifies.
    pub concept: KeyConcept,
    /// The payload field path it is read from.
    pub field: &'static str,
}

/// Everything the registry knows about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDef {
    /// The event.
    pub event: Event,
    /// Its name, e.g. `CJ_ASSESSMENT_COMPLETED`.
    pub name: &'static str,
    /// Its enum value, e.g. `cj_assessment.completed`.
    pub value: &'static str,
    /// Its standard topic.
    pub topic: &'static str,
    /// Its legacy topic (may equal the standard one).
    pub legacy_topic: &'static str,
    /// The name of its payload model in the original.
    pub payload_type: &'static str,
    /// Its partition key.
    pub key: KeyDef,
    /// Its topic class.
    pub class: TopicClass,
    /// Services that publish it.
    pub producers: &'static [&'static str],
    /// Services that consume it.
    pub consumers: &'static [&'static str],
}

impl EventDef {
    /// The topic for a topic mode: the standard one, or the legacy one.
    pub fn topic_for(&self, legacy: bool) -> &'static str {
        if legacy {
            self.legacy_topic
        } else {
            self.topic
        }
    }

    /// True when the legacy topic differs from the standard one.
    pub fn has_distinct_legacy_topic(&self) -> bool {
        self.legacy_topic != self.topic
    }

    /// True when the legacy and the standard topic are different names that Kafka treats as one: a broker refuses
    /// to create a topic whose name equals an existing one after `.` → `_` (they would share metric names), so
    /// `huleedu.cj_assessment.completed.v1` and `huleedu.cj.assessment.completed.v1` cannot both exist on a cluster
    /// and the event cannot be published to both during a transition (found against a real broker; 14 events).
    pub fn legacy_topic_collides(&self) -> bool {
        self.has_distinct_legacy_topic()
            && crate::naming::kafka_collision_name(self.legacy_topic)
                == crate::naming::kafka_collision_name(self.topic)
    }

    /// The domain: the second segment of the standard topic.
    pub fn domain(&self) -> &'static str {
        self.topic.split('.').nth(1).unwrap_or("")
    }

    /// The version from the last topic segment (`v2` → 2).
    pub fn version(&self) -> u32 {
        self.topic
            .rsplit('.')
            .next()
            .and_then(|v| v.strip_prefix('v'))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }
}

/// Declares the registry. See the module documentation.
macro_rules! registry {
    ($(
        $variant:ident {
            name: $name:literal, value: $value:literal,
            topic: $topic:literal, legacy: $legacy:literal,
            payload: $payload:ident = $payload_name:literal,
            key: $concept:ident $field:literal |$p:ident| $key:expr,
            class: $class:ident,
            producers: [$($producer:literal),*], consumers: [$($consumer:literal),*] $(,)?
        }
    ),+ $(,)?) => {
        /// Every registered event (the mapped members of the original `ProcessingEvent`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Event {
            $(
                #[doc = concat!("`", $name, "` (`", $value, "`) on `", $topic, "`")]
                $variant,
            )+
        }

        /// The registry table, in the order of `events.tsv`.
        pub static EVENTS: &[EventDef] = &[$(
            EventDef {
                event: Event::$variant,
                name: $name,
                value: $value,
                topic: $topic,
                legacy_topic: $legacy,
                payload_type: $payload_name,
                key: KeyDef { concept: KeyConcept::$concept, field: $field },
                class: TopicClass::$class,
                producers: &[$($producer),*],
                consumers: &[$($consumer),*],
            },
        )+];

        impl Event {
            /// Every event, in registry order.
            pub const ALL: &'static [Event] = &[$(Event::$variant),+];

            /// The registry row of this event.
            pub fn def(self) -> &'static EventDef {
                &EVENTS[self as usize]
            }
        }

        /// A decoded payload of any registered event.
        #[derive(Debug, Clone, PartialEq)]
        pub enum TypedEvent {
            $(
                #[doc = concat!("A `", $name, "` payload.")]
                $variant($payload),
            )+
        }

        impl TypedEvent {
            /// The event of this payload.
            pub fn event(&self) -> Event {
                match self { $(TypedEvent::$variant(_) => Event::$variant,)+ }
            }

            /// The partition key from the event's contract.
            pub fn partition_key(&self) -> Option<Cow<'_, str>> {
                match self { $(TypedEvent::$variant(p) => p.partition_key(),)+ }
            }

            /// Encodes the payload as compact JSON.
            pub fn to_json_value(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self { $(TypedEvent::$variant(p) => serde_json::to_value(p),)+ }
            }

            /// Encodes the payload as compact JSON bytes.
            pub fn to_json_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
                match self { $(TypedEvent::$variant(p) => serde_json::to_vec(p),)+ }
            }
        }

        impl Serialize for TypedEvent {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self { $(TypedEvent::$variant(p) => p.serialize(s),)+ }
            }
        }

        /// The JSON Schema of `event`'s payload as a root schema of `settings` (definitions included); the
        /// tooling crate's schemas start here.
        pub fn payload_root_schema(event: Event, settings: schemars::generate::SchemaSettings) -> schemars::Schema {
            match event { $(Event::$variant => settings.into_generator().into_root_schema_for::<$payload>(),)+ }
        }

        /// The JSON Schema of `event`'s payload inside `generator`: a `$ref` whose definitions the generator keeps.
        pub fn payload_subschema(event: Event, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
            match event { $(Event::$variant => generator.subschema_for::<$payload>(),)+ }
        }

        /// Decodes the parsed `data` of `event` with pydantic's lax rules (see [`crate::lax`]).
        pub(crate) fn decode_payload_lax(
            event: Event,
            data: &jiter::JsonValue<'_>,
        ) -> Result<TypedEvent, crate::lax::LaxError> {
            match event { $(Event::$variant => <$payload as serde::Deserialize>::deserialize(crate::lax::LaxDeserializer(data)).map(TypedEvent::$variant),)+ }
        }

        /// A whole record of `event` on the strict path ([`crate::strict`]); `None` when that path refuses it.
        pub(crate) fn decode_envelope_strict(
            event: Event,
            text: &str,
        ) -> Option<crate::envelope::EventEnvelope<TypedEvent>> {
            match event { $(Event::$variant => crate::strict::value::<crate::envelope::EventEnvelope<$payload>>(text).map(|e| e.map_data(TypedEvent::$variant)),)+ }
        }

        /// As [`decode_payload_lax`], on the streaming fast path ([`crate::fast`]).
        pub(crate) fn decode_payload_fast(
            event: Event,
            stream: &mut crate::fast::Stream<'_>,
        ) -> Result<TypedEvent, crate::lax::LaxError> {
            match event { $(Event::$variant => <$payload as serde::Deserialize>::deserialize(&mut *stream).map(TypedEvent::$variant),)+ }
        }

        /// As [`decode_payload_lax`], tracking the path of the failing field (run only after a failure).
        pub(crate) fn decode_payload_tracked(
            event: Event,
            data: &jiter::JsonValue<'_>,
        ) -> Result<TypedEvent, serde_path_to_error::Error<crate::lax::LaxError>> {
            match event {
                $(Event::$variant => {
                    serde_path_to_error::deserialize::<_, $payload>(crate::lax::LaxDeserializer(data)).map(TypedEvent::$variant)
                })+
            }
        }

        $(
            impl Payload for $payload {
                const EVENT: Event = Event::$variant;
                fn partition_key(&self) -> Option<Cow<'_, str>> {
                    let $p = self;
                    $key
                }
                fn into_typed(self) -> TypedEvent {
                    TypedEvent::$variant(self)
                }
                fn from_typed(typed: TypedEvent) -> Result<Self, Event> {
                    match typed {
                        TypedEvent::$variant(p) => Ok(p),
                        other => Err(other.event()),
                    }
                }
            }
        )+
    };
}

// The table itself, one row per event, is `table.rs`; the types it generates are re-exported here.
mod table;
pub use table::*;

impl Event {
    /// Its name, e.g. `CJ_ASSESSMENT_COMPLETED`.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// Its enum value, e.g. `cj_assessment.completed`.
    pub fn value(self) -> &'static str {
        self.def().value
    }

    /// Its standard topic.
    pub fn topic(self) -> &'static str {
        self.def().topic
    }

    /// Its legacy topic.
    pub fn legacy_topic(self) -> &'static str {
        self.def().legacy_topic
    }

    /// Looks an event up by name (`CJ_ASSESSMENT_COMPLETED`).
    pub fn from_name(name: &str) -> Result<Event, LookupError> {
        EVENTS
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.event)
            .ok_or_else(|| LookupError::unknown("name", name))
    }

    /// Looks an event up by enum value (`cj_assessment.completed`).
    pub fn from_value(value: &str) -> Result<Event, LookupError> {
        EVENTS
            .iter()
            .find(|d| d.value == value)
            .map(|d| d.event)
            .ok_or_else(|| LookupError::unknown("value", value))
    }

    /// Looks an event up by its standard or legacy topic.
    pub fn from_topic(topic: &str) -> Result<Event, LookupError> {
        // A map, not a scan of the 71 definitions' two topics: the consumer looks every record's topic up, and the
        // scan's string comparisons were a sixtieth of its samples.
        static BY_TOPIC: std::sync::LazyLock<std::collections::HashMap<&'static str, Event>> =
            std::sync::LazyLock::new(|| {
                let mut by = std::collections::HashMap::with_capacity(EVENTS.len() * 2);
                // In the definitions' order, the first to name a topic keeping it (as a scan would find it).
                for d in EVENTS {
                    by.entry(d.topic).or_insert(d.event);
                    by.entry(d.legacy_topic).or_insert(d.event);
                }
                by
            });
        BY_TOPIC
            .get(topic)
            .copied()
            .ok_or_else(|| LookupError::unknown("topic", topic))
    }

    /// Looks an event up by anything that names it: name, value, standard or legacy topic.
    pub fn lookup(any: &str) -> Result<Event, LookupError> {
        Event::from_topic(any)
            .or_else(|_| Event::from_name(any))
            .or_else(|_| Event::from_value(any))
            .map_err(|_| LookupError::unknown("name, value or topic", any))
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// In payloads (`event_name`) an event is written as its enum value, as pydantic writes `ProcessingEvent`.
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.value())
    }
}

/// The enum value of any registered event.
impl schemars::JsonSchema for Event {
    fn schema_name() -> Cow<'static, str> {
        "ProcessingEvent".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let values: Vec<&str> = EVENTS.iter().map(|d| d.value).collect();
        schemars::json_schema!({
            "description": "The enum value of a registered ProcessingEvent.",
            "type": "string",
            "enum": values,
        })
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Cow::<'de, str>::deserialize(d)?;
        Event::from_value(&value).map_err(|_| {
            serde::de::Error::custom(format_args!(
                "`{value}` is not the value of a registered ProcessingEvent"
            ))
        })
    }
}
