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

registry! {
    BatchEssaysRegistered {
        name: "BATCH_ESSAYS_REGISTERED", value: "batch.essays.registered",
        topic: "huleedu.batch.essays.registered.v1", legacy: "huleedu.batch.essays.registered.v1",
        payload: BatchEssaysRegistered = "BatchEssaysRegistered",
        key: BatchId "entity_id" |p| Some(Cow::Borrowed(p.entity_id.as_str())),
        class: Standard,
        producers: ["batch_orchestrator_service"], consumers: ["essay_lifecycle_service", "result_aggregator_service"],
    },
    BatchEssaysReady {
        name: "BATCH_ESSAYS_READY", value: "batch.essays.ready",
        topic: "huleedu.els.batch.essays.ready.v1", legacy: "huleedu.els.batch.essays.ready.v1",
        payload: BatchEssaysReady = "BatchEssaysReady",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: ["batch_orchestrator_service"],
    },
    BatchPipelineCompleted {
        name: "BATCH_PIPELINE_COMPLETED", value: "batch.pipeline.completed",
        topic: "huleedu.batch.pipeline.completed.v1", legacy: "huleedu.batch.pipeline.completed.v1",
        payload: BatchPipelineCompletedV1 = "BatchPipelineCompletedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["batch_orchestrator_service"], consumers: ["result_aggregator_service"],
    },
    BatchPhaseSkipped {
        name: "BATCH_PHASE_SKIPPED", value: "batch.phase.skipped",
        topic: "huleedu.batch.phase.skipped.v1", legacy: "huleedu.batch.phase.skipped.v1",
        payload: PhaseSkippedV1 = "PhaseSkippedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: PhaseCompletion,
        producers: ["batch_conductor_service"], consumers: [],
    },
    EssaySlotAssigned {
        name: "ESSAY_SLOT_ASSIGNED", value: "essay.slot.assigned",
        topic: "huleedu.els.essay.slot.assigned.v1", legacy: "huleedu.els.essay.slot.assigned.v1",
        payload: EssaySlotAssignedV1 = "EssaySlotAssignedV1",
        key: EssayId "essay_id" |p| Some(Cow::Borrowed(p.essay_id.as_str())),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: ["result_aggregator_service"],
    },
    EssayContentProvisioned {
        name: "ESSAY_CONTENT_PROVISIONED", value: "essay.content.provisioned",
        topic: "huleedu.file.essay.content.provisioned.v1", legacy: "huleedu.file.essay.content.provisioned.v1",
        payload: EssayContentProvisionedV1 = "EssayContentProvisionedV1",
        key: BatchId "entity_id" |p| Some(Cow::Borrowed(p.entity_id.as_str())),
        class: Standard,
        producers: ["file_service"], consumers: ["essay_lifecycle_service"],
    },
    ExcessContentProvisioned {
        name: "EXCESS_CONTENT_PROVISIONED", value: "excess.content.provisioned",
        topic: "huleedu.els.excess.content.provisioned.v1", legacy: "huleedu.els.excess.content.provisioned.v1",
        payload: ExcessContentProvisionedV1 = "ExcessContentProvisionedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: [],
    },
    EssayValidationFailed {
        name: "ESSAY_VALIDATION_FAILED", value: "essay.validation.failed",
        topic: "huleedu.file.essay.validation.failed.v1", legacy: "huleedu.file.essay.validation.failed.v1",
        payload: EssayValidationFailedV1 = "EssayValidationFailedV1",
        key: BatchId "entity_id" |p| Some(Cow::Borrowed(p.entity_id.as_str())),
        class: Standard,
        producers: ["file_service"], consumers: ["essay_lifecycle_service"],
    },
    BatchContentProvisioningCompleted {
        name: "BATCH_CONTENT_PROVISIONING_COMPLETED", value: "batch.content.provisioning.completed",
        topic: "huleedu.batch.content.provisioning.completed.v1", legacy: "huleedu.batch.content.provisioning.completed.v1",
        payload: BatchContentProvisioningCompletedV1 = "BatchContentProvisioningCompletedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: ["batch_orchestrator_service"],
    },
    BatchStudentMatchingInitiateCommand {
        name: "BATCH_STUDENT_MATCHING_INITIATE_COMMAND", value: "batch.student.matching.initiate.command",
        topic: "huleedu.batch.student.matching.initiate.command.v1", legacy: "huleedu.batch.student.matching.initiate.command.v1",
        payload: BatchServiceStudentMatchingInitiateCommandDataV1 = "BatchServiceStudentMatchingInitiateCommandDataV1",
        key: BatchId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: Standard,
        producers: ["batch_orchestrator_service"], consumers: ["essay_lifecycle_service"],
    },
    BatchStudentMatchingRequested {
        name: "BATCH_STUDENT_MATCHING_REQUESTED", value: "batch.student.matching.requested",
        topic: "huleedu.batch.student.matching.requested.v1", legacy: "huleedu.batch.student.matching.requested.v1",
        payload: BatchStudentMatchingRequestedV1 = "BatchStudentMatchingRequestedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: ["nlp_service"],
    },
    BatchSpellcheckInitiateCommand {
        name: "BATCH_SPELLCHECK_INITIATE_COMMAND", value: "batch.spellcheck.initiate.command",
        topic: "huleedu.batch.spellcheck.initiate.command.v1", legacy: "huleedu.els.spellcheck.initiate.command.v1",
        payload: BatchServiceSpellcheckInitiateCommandDataV1 = "BatchServiceSpellcheckInitiateCommandDataV1",
        key: BatchId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: Standard,
        producers: ["batch_orchestrator_service"], consumers: ["essay_lifecycle_service"],
    },
    BatchCjAssessmentInitiateCommand {
        name: "BATCH_CJ_ASSESSMENT_INITIATE_COMMAND", value: "batch.cj_assessment.initiate.command",
        topic: "huleedu.batch.cj.assessment.initiate.command.v1", legacy: "huleedu.batch.cj_assessment.initiate.command.v1",
        payload: BatchServiceCjAssessmentInitiateCommandDataV1 = "BatchServiceCJAssessmentInitiateCommandDataV1",
        key: BatchId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: Standard,
        producers: ["batch_orchestrator_service"], consumers: ["essay_lifecycle_service"],
    },
    BatchAiFeedbackInitiateCommand {
        name: "BATCH_AI_FEEDBACK_INITIATE_COMMAND", value: "batch.ai_feedback.initiate.command",
        topic: "huleedu.batch.ai.feedback.initiate.command.v1", legacy: "huleedu.batch.ai_feedback.initiate.command.v1",
        payload: BatchServiceAiFeedbackInitiateCommandDataV1 = "BatchServiceAIFeedbackInitiateCommandDataV1",
        key: BatchId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: Standard,
        producers: ["batch_orchestrator_service"], consumers: [],
    },
    BatchNlpInitiateCommand {
        name: "BATCH_NLP_INITIATE_COMMAND", value: "batch.nlp.initiate.command",
        topic: "huleedu.batch.nlp.initiate.command.v1", legacy: "huleedu.batch.nlp.initiate.command.v1",
        payload: BatchServiceNlpInitiateCommandDataV1 = "BatchServiceNLPInitiateCommandDataV1",
        key: BatchId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: Standard,
        producers: [], consumers: [],
    },
    BatchNlpInitiateCommandV2 {
        name: "BATCH_NLP_INITIATE_COMMAND_V2", value: "batch.nlp.initiate.command.v2",
        topic: "huleedu.batch.nlp.initiate.command.v2", legacy: "huleedu.batch.nlp.initiate.command.v2",
        payload: BatchServiceNlpInitiateCommandDataV2 = "BatchServiceNLPInitiateCommandDataV2",
        key: BatchId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: Standard,
        producers: ["batch_orchestrator_service"], consumers: ["essay_lifecycle_service"],
    },
    ElsBatchPhaseOutcome {
        name: "ELS_BATCH_PHASE_OUTCOME", value: "els.batch.phase.outcome",
        topic: "huleedu.els.batch.phase.outcome.v1", legacy: "huleedu.els.batch.phase.outcome.v1",
        payload: ElsBatchPhaseOutcomeV1 = "ELSBatchPhaseOutcomeV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: PhaseCompletion,
        producers: ["essay_lifecycle_service"], consumers: ["batch_orchestrator_service", "batch_conductor_service", "result_aggregator_service"],
    },
    BatchValidationErrors {
        name: "BATCH_VALIDATION_ERRORS", value: "batch.validation.errors",
        topic: "huleedu.els.batch.validation.errors.v1", legacy: "huleedu.els.batch.validation.errors.v1",
        payload: BatchValidationErrorsV1 = "BatchValidationErrorsV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: ["batch_orchestrator_service"],
    },
    ClientBatchPipelineRequest {
        name: "CLIENT_BATCH_PIPELINE_REQUEST", value: "client.batch.pipeline.request",
        topic: "huleedu.batch.pipeline.initiate.command.v1", legacy: "huleedu.commands.batch.pipeline.v1",
        payload: ClientBatchPipelineRequestV1 = "ClientBatchPipelineRequestV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["api_gateway_service"], consumers: ["batch_orchestrator_service"],
    },
    PipelineDenied {
        name: "PIPELINE_DENIED", value: "pipeline.denied",
        topic: "huleedu.pipeline.denied.v1", legacy: "huleedu.pipeline.denied.v1",
        payload: PipelineDeniedV1 = "PipelineDeniedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["batch_orchestrator_service"], consumers: [],
    },
    EssaySpellcheckCompleted {
        name: "ESSAY_SPELLCHECK_COMPLETED", value: "essay.spellcheck.completed",
        topic: "huleedu.essay.spellcheck.completed.v1", legacy: "huleedu.essay.spellcheck.completed.v1",
        payload: SpellcheckResultDataV1 = "SpellcheckResultDataV1",
        key: EssayId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: PhaseCompletion,
        producers: [], consumers: [],
    },
    EssaySpellcheckRequested {
        name: "ESSAY_SPELLCHECK_REQUESTED", value: "essay.spellcheck.requested",
        topic: "huleedu.essay.spellcheck.requested.v1", legacy: "huleedu.essay.spellcheck.requested.v1",
        payload: EssayLifecycleSpellcheckRequestV1 = "EssayLifecycleSpellcheckRequestV1",
        key: EssayId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: ["spellchecker_service"],
    },
    SpellcheckPhaseCompleted {
        name: "SPELLCHECK_PHASE_COMPLETED", value: "spellcheck.phase.completed",
        topic: "huleedu.batch.spellcheck.phase.completed.v1", legacy: "huleedu.batch.spellcheck.phase.completed.v1",
        payload: SpellcheckPhaseCompletedV1 = "SpellcheckPhaseCompletedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: PhaseCompletion,
        producers: ["spellchecker_service"], consumers: ["essay_lifecycle_service", "batch_conductor_service"],
    },
    SpellcheckResults {
        name: "SPELLCHECK_RESULTS", value: "spellcheck.results",
        topic: "huleedu.essay.spellcheck.results.v1", legacy: "huleedu.essay.spellcheck.results.v1",
        payload: SpellcheckResultV1 = "SpellcheckResultV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Result,
        producers: ["spellchecker_service"], consumers: ["result_aggregator_service"],
    },
    BatchNlpProcessingRequested {
        name: "BATCH_NLP_PROCESSING_REQUESTED", value: "batch.nlp.processing.requested",
        topic: "huleedu.batch.nlp.processing.requested.v1", legacy: "huleedu.batch.nlp.processing.requested.v1",
        payload: BatchNlpProcessingRequestedV1 = "BatchNlpProcessingRequestedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
    BatchNlpProcessingRequestedV2 {
        name: "BATCH_NLP_PROCESSING_REQUESTED_V2", value: "batch.nlp.processing.requested.v2",
        topic: "huleedu.batch.nlp.processing.requested.v2", legacy: "huleedu.batch.nlp.processing.requested.v2",
        payload: BatchNlpProcessingRequestedV2 = "BatchNlpProcessingRequestedV2",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: ["nlp_service"],
    },
    ElsCjAssessmentRequested {
        name: "ELS_CJ_ASSESSMENT_REQUESTED", value: "els.cj_assessment.requested",
        topic: "huleedu.els.cj.assessment.requested.v1", legacy: "huleedu.els.cj_assessment.requested.v1",
        payload: ElsCjAssessmentRequestV1 = "ELS_CJAssessmentRequestV1",
        key: BatchId "entity_id" |p| p.entity_id.as_deref().map(Cow::Borrowed),
        class: Standard,
        producers: ["essay_lifecycle_service"], consumers: ["cj_assessment_service"],
    },
    CjAssessmentCompleted {
        name: "CJ_ASSESSMENT_COMPLETED", value: "cj_assessment.completed",
        topic: "huleedu.cj.assessment.completed.v1", legacy: "huleedu.cj_assessment.completed.v1",
        payload: CjAssessmentCompletedV1 = "CJAssessmentCompletedV1",
        key: CjJobId "cj_assessment_job_id" |p| Some(Cow::Borrowed(p.cj_assessment_job_id.as_str())),
        class: PhaseCompletion,
        producers: ["cj_assessment_service"], consumers: ["essay_lifecycle_service", "batch_conductor_service"],
    },
    CjAssessmentFailed {
        name: "CJ_ASSESSMENT_FAILED", value: "cj_assessment.failed",
        topic: "huleedu.cj.assessment.failed.v1", legacy: "huleedu.cj_assessment.failed.v1",
        payload: CjAssessmentFailedV1 = "CJAssessmentFailedV1",
        key: CjJobId "cj_assessment_job_id" |p| Some(Cow::Borrowed(p.cj_assessment_job_id.as_str())),
        class: PhaseCompletion,
        producers: ["cj_assessment_service"], consumers: [],
    },
    EssayNlpCompleted {
        name: "ESSAY_NLP_COMPLETED", value: "essay.nlp.completed",
        topic: "huleedu.essay.nlp.completed.v1", legacy: "huleedu.essay.nlp.completed.v1",
        payload: EssayNlpCompletedV1 = "EssayNlpCompletedV1",
        key: EssayId "essay_id" |p| Some(Cow::Borrowed(p.essay_id.as_str())),
        class: Result,
        producers: ["nlp_service"], consumers: [],
    },
    BatchNlpAnalysisCompleted {
        name: "BATCH_NLP_ANALYSIS_COMPLETED", value: "batch.nlp.analysis.completed",
        topic: "huleedu.batch.nlp.analysis.completed.v1", legacy: "huleedu.batch.nlp.analysis.completed.v1",
        payload: BatchNlpAnalysisCompletedV1 = "BatchNlpAnalysisCompletedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: PhaseCompletion,
        producers: ["nlp_service"], consumers: ["essay_lifecycle_service"],
    },
    BatchAuthorMatchesSuggested {
        name: "BATCH_AUTHOR_MATCHES_SUGGESTED", value: "batch.author.matches.suggested",
        topic: "huleedu.batch.author.matches.suggested.v1", legacy: "huleedu.batch.author.matches.suggested.v1",
        payload: BatchAuthorMatchesSuggestedV1 = "BatchAuthorMatchesSuggestedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["nlp_service"], consumers: ["class_management_service"],
    },
    EssayStudentAssociationUpdated {
        name: "ESSAY_STUDENT_ASSOCIATION_UPDATED", value: "essay.student.association.updated",
        topic: "huleedu.class.essay.association.updated.v1", legacy: "huleedu.class.essay.association.updated.v1",
        payload: EssayStudentAssociationUpdatedV1 = "EssayStudentAssociationUpdatedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
    BatchFileAdded {
        name: "BATCH_FILE_ADDED", value: "batch.file.added",
        topic: "huleedu.file.batch.file.added.v1", legacy: "huleedu.file.batch.file.added.v1",
        payload: BatchFileAddedV1 = "BatchFileAddedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["file_service"], consumers: [],
    },
    BatchFileRemoved {
        name: "BATCH_FILE_REMOVED", value: "batch.file.removed",
        topic: "huleedu.file.batch.file.removed.v1", legacy: "huleedu.file.batch.file.removed.v1",
        payload: BatchFileRemovedV1 = "BatchFileRemovedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["file_service"], consumers: [],
    },
    ClassCreated {
        name: "CLASS_CREATED", value: "class.created",
        topic: "huleedu.class.created.v1", legacy: "huleedu.class.created.v1",
        payload: ClassCreatedV1 = "ClassCreatedV1",
        key: ClassId "class_id" |p| Some(Cow::Borrowed(p.class_id.as_str())),
        class: Standard,
        producers: ["class_management_service"], consumers: [],
    },
    ClassUpdated {
        name: "CLASS_UPDATED", value: "class.updated",
        topic: "huleedu.class.updated.v1", legacy: "huleedu.class.updated.v1",
        payload: ClassUpdatedV1 = "ClassUpdatedV1",
        key: ClassId "class_id" |p| Some(Cow::Borrowed(p.class_id.as_str())),
        class: Standard,
        producers: ["class_management_service"], consumers: [],
    },
    StudentCreated {
        name: "STUDENT_CREATED", value: "student.created",
        topic: "huleedu.class.student.created.v1", legacy: "huleedu.class.student.created.v1",
        payload: StudentCreatedV1 = "StudentCreatedV1",
        key: StudentId "student_id" |p| Some(Cow::Borrowed(p.student_id.as_str())),
        class: Standard,
        producers: ["class_management_service"], consumers: [],
    },
    StudentUpdated {
        name: "STUDENT_UPDATED", value: "student.updated",
        topic: "huleedu.class.student.updated.v1", legacy: "huleedu.class.student.updated.v1",
        payload: StudentUpdatedV1 = "StudentUpdatedV1",
        key: StudentId "student_id" |p| Some(Cow::Borrowed(p.student_id.as_str())),
        class: Standard,
        producers: ["class_management_service"], consumers: [],
    },
    StudentAssociationsConfirmed {
        name: "STUDENT_ASSOCIATIONS_CONFIRMED", value: "student.associations.confirmed",
        topic: "huleedu.class.student.associations.confirmed.v1", legacy: "huleedu.class.student.associations.confirmed.v1",
        payload: StudentAssociationsConfirmedV1 = "StudentAssociationsConfirmedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: ["class_management_service"], consumers: ["essay_lifecycle_service", "batch_orchestrator_service"],
    },
    ValidationTimeoutProcessed {
        name: "VALIDATION_TIMEOUT_PROCESSED", value: "validation.timeout.processed",
        topic: "huleedu.class.validation.timeout.processed.v1", legacy: "huleedu.class.validation.timeout.processed.v1",
        payload: ValidationTimeoutProcessedV1 = "ValidationTimeoutProcessedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
    TeacherNotificationRequested {
        name: "TEACHER_NOTIFICATION_REQUESTED", value: "teacher.notification.requested",
        topic: "huleedu.notification.teacher.requested.v1", legacy: "huleedu.notification.teacher.requested.v1",
        payload: TeacherNotificationRequestedV1 = "TeacherNotificationRequestedV1",
        key: TeacherId "teacher_id" |p| Some(Cow::Borrowed(p.teacher_id.as_str())),
        class: Standard,
        producers: ["batch_orchestrator_service", "class_management_service", "essay_lifecycle_service", "file_service", "result_aggregator_service"], consumers: ["websocket_service"],
    },
    BatchResultsReady {
        name: "BATCH_RESULTS_READY", value: "batch.results.ready",
        topic: "huleedu.ras.batch.results.ready.v1", legacy: "huleedu.ras.batch.results.ready.v1",
        payload: BatchResultsReadyV1 = "BatchResultsReadyV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Result,
        producers: ["result_aggregator_service"], consumers: [],
    },
    BatchAssessmentCompleted {
        name: "BATCH_ASSESSMENT_COMPLETED", value: "batch.assessment.completed",
        topic: "huleedu.ras.batch.assessment.completed.v1", legacy: "huleedu.ras.batch.assessment.completed.v1",
        payload: BatchAssessmentCompletedV1 = "BatchAssessmentCompletedV1",
        key: BatchId "batch_id" |p| Some(Cow::Borrowed(p.batch_id.as_str())),
        class: Result,
        producers: ["result_aggregator_service"], consumers: [],
    },
    AssessmentResultPublished {
        name: "ASSESSMENT_RESULT_PUBLISHED", value: "assessment.result.published",
        topic: "huleedu.assessment.result.published.v1", legacy: "huleedu.assessment.result.published.v1",
        payload: AssessmentResultV1 = "AssessmentResultV1",
        key: CjJobId "cj_assessment_job_id" |p| Some(Cow::Borrowed(p.cj_assessment_job_id.as_str())),
        class: Result,
        producers: ["cj_assessment_service"], consumers: ["result_aggregator_service"],
    },
    ResourceConsumptionReported {
        name: "RESOURCE_CONSUMPTION_REPORTED", value: "resource.consumption.reported",
        topic: "huleedu.resource.consumption.v1", legacy: "huleedu.resource.consumption.v1",
        payload: ResourceConsumptionV1 = "ResourceConsumptionV1",
        key: UserId "user_id" |p| Some(Cow::Borrowed(p.user_id.as_str())),
        class: Standard,
        producers: ["cj_assessment_service"], consumers: ["entitlements_service"],
    },
    LlmRequestStarted {
        name: "LLM_REQUEST_STARTED", value: "llm_provider.request.started",
        topic: "huleedu.llm.provider.request.started.v1", legacy: "huleedu.llm_provider.request_started.v1",
        payload: LlmRequestStartedV1 = "LLMRequestStartedV1",
        key: CorrelationId "correlation_id" |p| Some(Cow::Owned(p.correlation_id.to_string())),
        class: Standard,
        producers: ["llm_provider_service"], consumers: [],
    },
    LlmRequestCompleted {
        name: "LLM_REQUEST_COMPLETED", value: "llm_provider.request.completed",
        topic: "huleedu.llm.provider.request.completed.v1", legacy: "huleedu.llm_provider.request_completed.v1",
        payload: LlmRequestCompletedV1 = "LLMRequestCompletedV1",
        key: CorrelationId "correlation_id" |p| Some(Cow::Owned(p.correlation_id.to_string())),
        class: Standard,
        producers: ["llm_provider_service"], consumers: [],
    },
    LlmProviderFailure {
        name: "LLM_PROVIDER_FAILURE", value: "llm_provider.failure",
        topic: "huleedu.llm.provider.failure.v1", legacy: "huleedu.llm_provider.failure.v1",
        payload: LlmProviderFailureV1 = "LLMProviderFailureV1",
        key: CorrelationId "correlation_id" |p| Some(Cow::Owned(p.correlation_id.to_string())),
        class: Standard,
        producers: ["llm_provider_service"], consumers: [],
    },
    LlmUsageAnalytics {
        name: "LLM_USAGE_ANALYTICS", value: "llm_provider.usage.analytics",
        topic: "huleedu.llm.provider.usage.analytics.v1", legacy: "huleedu.llm_provider.usage_analytics.v1",
        payload: LlmUsageAnalyticsV1 = "LLMUsageAnalyticsV1",
        key: Period "period_start" |p| Some(Cow::Owned(p.period_start.to_string())),
        class: Standard,
        producers: [], consumers: [],
    },
    LlmCostAlert {
        name: "LLM_COST_ALERT", value: "llm_provider.cost.alert",
        topic: "huleedu.llm.provider.cost.alert.v1", legacy: "huleedu.llm_provider.cost_alert.v1",
        payload: LlmCostAlertV1 = "LLMCostAlertV1",
        key: AlertType "alert_type" |p| Some(Cow::Borrowed(p.alert_type.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
    LlmCostTracking {
        name: "LLM_COST_TRACKING", value: "llm_provider.cost.tracking",
        topic: "huleedu.llm.provider.cost.tracking.v1", legacy: "huleedu.llm_provider.cost_tracking.v1",
        payload: LlmCostTrackingV1 = "LLMCostTrackingV1",
        key: CorrelationId "correlation_id" |p| Some(Cow::Owned(p.correlation_id.to_string())),
        class: Standard,
        producers: [], consumers: [],
    },
    LlmComparisonResult {
        name: "LLM_COMPARISON_RESULT", value: "llm_provider.comparison_result",
        topic: "huleedu.llm.provider.comparison.result.v1", legacy: "huleedu.llm_provider.comparison_result.v1",
        payload: LlmComparisonResultV1 = "LLMComparisonResultV1",
        key: RequestId "request_id" |p| Some(Cow::Borrowed(p.request_id.as_str())),
        class: Standard,
        producers: ["llm_provider_service"], consumers: ["cj_assessment_service"],
    },
    IdentityUserRegistered {
        name: "IDENTITY_USER_REGISTERED", value: "identity.user.registered",
        topic: "huleedu.identity.user.registered.v1", legacy: "huleedu.identity.user.registered.v1",
        payload: UserRegisteredV1 = "UserRegisteredV1",
        key: UserId "user_id" |p| Some(Cow::Borrowed(p.user_id.as_str())),
        class: Standard,
        producers: ["identity_service"], consumers: ["identity_service"],
    },
    IdentityEmailVerificationRequested {
        name: "IDENTITY_EMAIL_VERIFICATION_REQUESTED", value: "identity.email.verification.requested",
        topic: "huleedu.identity.email.verification.requested.v1", legacy: "huleedu.identity.email.verification.requested.v1",
        payload: EmailVerificationRequestedV1 = "EmailVerificationRequestedV1",
        key: UserId "user_id" |p| Some(Cow::Borrowed(p.user_id.as_str())),
        class: Standard,
        producers: ["identity_service"], consumers: ["identity_service"],
    },
    IdentityEmailVerified {
        name: "IDENTITY_EMAIL_VERIFIED", value: "identity.email.verified",
        topic: "huleedu.identity.email.verified.v1", legacy: "huleedu.identity.email.verified.v1",
        payload: EmailVerifiedV1 = "EmailVerifiedV1",
        key: UserId "user_id" |p| Some(Cow::Borrowed(p.user_id.as_str())),
        class: Standard,
        producers: ["identity_service"], consumers: [],
    },
    IdentityPasswordResetRequested {
        name: "IDENTITY_PASSWORD_RESET_REQUESTED", value: "identity.password.reset.requested",
        topic: "huleedu.identity.password.reset.requested.v1", legacy: "huleedu.identity.password.reset.requested.v1",
        payload: PasswordResetRequestedV1 = "PasswordResetRequestedV1",
        key: UserId "user_id" |p| Some(Cow::Borrowed(p.user_id.as_str())),
        class: Standard,
        producers: ["identity_service"], consumers: ["identity_service"],
    },
    IdentityPasswordResetCompleted {
        name: "IDENTITY_PASSWORD_RESET_COMPLETED", value: "identity.password.reset.completed",
        topic: "huleedu.identity.password.reset.completed.v1", legacy: "huleedu.identity.password.reset.completed.v1",
        payload: PasswordResetCompletedV1 = "PasswordResetCompletedV1",
        key: UserId "user_id" |p| Some(Cow::Borrowed(p.user_id.as_str())),
        class: Standard,
        producers: ["identity_service"], consumers: [],
    },
    IdentityLoginSucceeded {
        name: "IDENTITY_LOGIN_SUCCEEDED", value: "identity.login.succeeded",
        topic: "huleedu.identity.login.succeeded.v1", legacy: "huleedu.identity.login.succeeded.v1",
        payload: LoginSucceededV1 = "LoginSucceededV1",
        key: UserId "user_id" |p| Some(Cow::Borrowed(p.user_id.as_str())),
        class: Standard,
        producers: ["identity_service"], consumers: [],
    },
    IdentityLoginFailed {
        name: "IDENTITY_LOGIN_FAILED", value: "identity.login.failed",
        topic: "huleedu.identity.login.failed.v1", legacy: "huleedu.identity.login.failed.v1",
        payload: LoginFailedV1 = "LoginFailedV1",
        key: Email "email" |p| Some(Cow::Borrowed(p.email.as_str())),
        class: Standard,
        producers: ["identity_service"], consumers: [],
    },
    EmailNotificationRequested {
        name: "EMAIL_NOTIFICATION_REQUESTED", value: "email.notification.requested",
        topic: "huleedu.email.notification.requested.v1", legacy: "huleedu.email.notification.requested.v1",
        payload: NotificationEmailRequestedV1 = "NotificationEmailRequestedV1",
        key: MessageId "message_id" |p| Some(Cow::Borrowed(p.message_id.as_str())),
        class: Standard,
        producers: ["identity_service"], consumers: ["email_service"],
    },
    EmailSent {
        name: "EMAIL_SENT", value: "email.sent",
        topic: "huleedu.email.sent.v1", legacy: "huleedu.email.sent.v1",
        payload: EmailSentV1 = "EmailSentV1",
        key: MessageId "message_id" |p| Some(Cow::Borrowed(p.message_id.as_str())),
        class: Standard,
        producers: ["email_service"], consumers: [],
    },
    EmailDeliveryFailed {
        name: "EMAIL_DELIVERY_FAILED", value: "email.delivery_failed",
        topic: "huleedu.email.delivery.failed.v1", legacy: "huleedu.email.delivery_failed.v1",
        payload: EmailDeliveryFailedV1 = "EmailDeliveryFailedV1",
        key: MessageId "message_id" |p| Some(Cow::Borrowed(p.message_id.as_str())),
        class: Standard,
        producers: ["email_service"], consumers: [],
    },
    EntitlementsSubscriptionActivated {
        name: "ENTITLEMENTS_SUBSCRIPTION_ACTIVATED", value: "entitlements.subscription.activated",
        topic: "huleedu.entitlements.subscription.activated.v1", legacy: "huleedu.entitlements.subscription.activated.v1",
        payload: SubscriptionActivatedV1 = "SubscriptionActivatedV1",
        key: SubjectId "subject.id" |p| Some(Cow::Borrowed(p.subject.id.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
    EntitlementsSubscriptionChanged {
        name: "ENTITLEMENTS_SUBSCRIPTION_CHANGED", value: "entitlements.subscription.changed",
        topic: "huleedu.entitlements.subscription.changed.v1", legacy: "huleedu.entitlements.subscription.changed.v1",
        payload: SubscriptionChangedV1 = "SubscriptionChangedV1",
        key: SubjectId "subject.id" |p| Some(Cow::Borrowed(p.subject.id.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
    EntitlementsSubscriptionCanceled {
        name: "ENTITLEMENTS_SUBSCRIPTION_CANCELED", value: "entitlements.subscription.canceled",
        topic: "huleedu.entitlements.subscription.canceled.v1", legacy: "huleedu.entitlements.subscription.canceled.v1",
        payload: SubscriptionCanceledV1 = "SubscriptionCanceledV1",
        key: SubjectId "subject.id" |p| Some(Cow::Borrowed(p.subject.id.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
    EntitlementsUsageAuthorized {
        name: "ENTITLEMENTS_USAGE_AUTHORIZED", value: "entitlements.usage.authorized",
        topic: "huleedu.entitlements.usage.authorized.v1", legacy: "huleedu.entitlements.usage.authorized.v1",
        payload: UsageAuthorizedV1 = "UsageAuthorizedV1",
        key: SubjectId "subject.id" |p| Some(Cow::Borrowed(p.subject.id.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
    EntitlementsUsageRecorded {
        name: "ENTITLEMENTS_USAGE_RECORDED", value: "entitlements.usage.recorded",
        topic: "huleedu.entitlements.usage.recorded.v1", legacy: "huleedu.entitlements.usage.recorded.v1",
        payload: UsageRecordedV1 = "UsageRecordedV1",
        key: SubjectId "subject.id" |p| Some(Cow::Borrowed(p.subject.id.as_str())),
        class: Standard,
        producers: ["entitlements_service"], consumers: [],
    },
    EntitlementsCreditBalanceChanged {
        name: "ENTITLEMENTS_CREDIT_BALANCE_CHANGED", value: "entitlements.credit.balance.changed",
        topic: "huleedu.entitlements.credit.balance.changed.v1", legacy: "huleedu.entitlements.credit.balance.changed.v1",
        payload: CreditBalanceChangedV1 = "CreditBalanceChangedV1",
        key: SubjectId "subject.id" |p| Some(Cow::Borrowed(p.subject.id.as_str())),
        class: Standard,
        producers: ["entitlements_service"], consumers: [],
    },
    EntitlementsRateLimitExceeded {
        name: "ENTITLEMENTS_RATE_LIMIT_EXCEEDED", value: "entitlements.rate_limit.exceeded",
        topic: "huleedu.entitlements.rate.limit.exceeded.v1", legacy: "huleedu.entitlements.rate_limit.exceeded.v1",
        payload: RateLimitExceededV1 = "RateLimitExceededV1",
        key: SubjectId "subject.id" |p| Some(Cow::Borrowed(p.subject.id.as_str())),
        class: Standard,
        producers: ["entitlements_service"], consumers: [],
    },
    EntitlementsResourceAccessGranted {
        name: "ENTITLEMENTS_RESOURCE_ACCESS_GRANTED", value: "entitlements.resource.access.granted",
        topic: "huleedu.entitlements.resource.access.granted.v1", legacy: "huleedu.entitlements.resource.access.granted.v1",
        payload: ResourceAccessGrantedV1 = "ResourceAccessGrantedV1",
        key: ResourceId "resource_id" |p| Some(Cow::Borrowed(p.resource_id.as_str())),
        class: Standard,
        producers: [], consumers: [],
    },
}

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
        EVENTS
            .iter()
            .find(|d| d.topic == topic || d.legacy_topic == topic)
            .map(|d| d.event)
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
