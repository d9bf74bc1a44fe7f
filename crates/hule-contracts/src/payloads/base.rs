//! The building blocks shared by many payloads: metadata models, storage references, error details, summaries.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::enums::{ContentType, ErrorCode, ProcessingStage};
use crate::time::Timestamp;

/// A free-form JSON object (`dict[str, Any]` in the original), kept as given.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// Deserializes a field that is required but may be `null` (`x: str | None` with no default).
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// The schema of a [`nullable`] field: `T` or `null` (the field itself is marked required where it is used).
pub(crate) fn nullable_schema<T: JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    generator.subschema_for::<Option<T>>()
}

/// `SystemProcessingMetadata`: the processing context of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemProcessingMetadata {
    /// The entity's id.
    pub entity_id: String,
    /// The entity's kind (`essay`, `batch`, ...).
    pub entity_type: String,
    /// The parent entity.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// When this metadata was made.
    #[serde(default)]
    pub timestamp: Timestamp,
    /// The stage reached.
    #[serde(default)]
    pub processing_stage: Option<ProcessingStage>,
    /// When processing started.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When processing completed.
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    /// The enum value of the event.
    #[serde(default)]
    pub event: Option<String>,
    /// Error details, by convention `error_code`, `error_message`, `error_type`, `context`.
    #[serde(default)]
    pub error_info: ErrorInfo,
}

/// `SystemProcessingMetadata.error_info`: the documented keys, and any others kept as given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    /// Machine-readable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Exception class or category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Extra context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<JsonMap>,
    /// Keys the reference does not document.
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `StorageReferenceMetadata`: Content Service references by content type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StorageReferenceMetadata {
    /// `{content_type: {"storage_id": ..., "path": ...}}`.
    #[serde(default)]
    pub references: BTreeMap<ContentType, BTreeMap<String, String>>,
}

/// `SpellcheckMetricsV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpellcheckMetricsV1 {
    /// All corrections.
    pub total_corrections: i64,
    /// Corrections from the L2 dictionary.
    pub l2_dictionary_corrections: i64,
    /// Corrections from the spellchecker.
    pub spellchecker_corrections: i64,
    /// Words in the essay.
    pub word_count: i64,
    /// Corrections per word.
    pub correction_density: f64,
}

/// `EssayProcessingInputRefV1`: an essay and where its text is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayProcessingInputRefV1 {
    /// The essay.
    pub essay_id: String,
    /// Where its text is.
    pub text_storage_id: String,
    /// Spellcheck metrics when known (typed `Any` at run time in the original because of a forward reference;
    /// its intended type is `SpellcheckMetricsV1`).
    #[serde(default)]
    pub spellcheck_metrics: Option<SpellcheckMetricsV1>,
}

/// `ErrorDetail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// A code of `ErrorCode` or one of the service error enums.
    pub error_code: ErrorCode,
    /// What went wrong.
    pub message: String,
    /// The correlation id of the request.
    pub correlation_id: Uuid,
    /// When.
    pub timestamp: Timestamp,
    /// Which service.
    pub service: String,
    /// Which operation.
    pub operation: String,
    /// More detail.
    #[serde(default)]
    pub details: JsonMap,
    /// Stack trace.
    #[serde(default)]
    pub stack_trace: Option<String>,
    /// Trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Span id.
    #[serde(default)]
    pub span_id: Option<String>,
}

/// The `processing_summary` of CJ and NLP completion events: the documented keys, and any others kept as given.
///
/// Absent keys stay absent when re-encoded; [`ProcessingSummary::default`] is the original's default dict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessingSummary {
    /// Essays in the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_essays: Option<i64>,
    /// Essays that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<i64>,
    /// Essays that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,
    /// Ids of the successful essays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_essay_ids: Option<Vec<String>>,
    /// Ids of the failed essays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_essay_ids: Option<Vec<String>>,
    /// Wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_time_seconds: Option<f64>,
    /// Keys the reference does not document (the CJ producer adds `single_essay_batch`).
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl Default for ProcessingSummary {
    fn default() -> Self {
        ProcessingSummary {
            total_essays: Some(0),
            successful: Some(0),
            failed: Some(0),
            successful_essay_ids: Some(Vec::new()),
            failed_essay_ids: Some(Vec::new()),
            processing_time_seconds: Some(0.0),
            extra: JsonMap::new(),
        }
    }
}
