//! Essay-level payloads: file service, ELS slot and request events, spellcheck (thin and rich) and NLP.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::base::{
    ErrorDetail, EssayProcessingInputRefV1, JsonMap, ProcessingSummary, SpellcheckMetricsV1,
    StorageReferenceMetadata,
};
use super::defaults::*;
use crate::constrained::UnitInterval;
use crate::enums::{CourseCode, FileValidationErrorCode, ProcessingStatus};
use crate::time::Timestamp;

/// `EssaySlotAssignedV1` (ELS → RAS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssaySlotAssignedV1 {
    /// `event: str`, default `'essay.slot.assigned'` (Python `EssaySlotAssignedV1.event`)
    #[serde(default = "d_essay_slot_assigned")]
    pub event: String,
    /// `batch_id: str`, required (Python `EssaySlotAssignedV1.batch_id`)
    pub batch_id: String,
    /// `essay_id: str`, required (Python `EssaySlotAssignedV1.essay_id`)
    pub essay_id: String,
    /// `file_upload_id: str`, required (Python `EssaySlotAssignedV1.file_upload_id`)
    pub file_upload_id: String,
    /// `text_storage_id: str`, required (Python `EssaySlotAssignedV1.text_storage_id`)
    pub text_storage_id: String,
    /// `original_file_name: str`, required (Python `EssaySlotAssignedV1.original_file_name`)
    pub original_file_name: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `EssaySlotAssignedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `EssaySlotAssignedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `EssayContentProvisionedV1` (file service → ELS). `entity_id` is the batch id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayContentProvisionedV1 {
    /// `event: str`, default `'essay.content.provisioned'` (Python `EssayContentProvisionedV1.event`)
    #[serde(default = "d_essay_content_provisioned")]
    pub event: String,
    /// `entity_id: str`, required (Python `EssayContentProvisionedV1.entity_id`)
    pub entity_id: String,
    /// `file_upload_id: str`, required (Python `EssayContentProvisionedV1.file_upload_id`)
    pub file_upload_id: String,
    /// `original_file_name: str`, required (Python `EssayContentProvisionedV1.original_file_name`)
    pub original_file_name: String,
    /// `raw_file_storage_id: str`, required (Python `EssayContentProvisionedV1.raw_file_storage_id`)
    pub raw_file_storage_id: String,
    /// `text_storage_id: str`, required (Python `EssayContentProvisionedV1.text_storage_id`)
    pub text_storage_id: String,
    /// `file_size_bytes: int`, required (Python `EssayContentProvisionedV1.file_size_bytes`)
    pub file_size_bytes: i64,
    /// `content_md5_hash: str | None`, default `None` (Python `EssayContentProvisionedV1.content_md5_hash`)
    #[serde(default)]
    pub content_md5_hash: Option<String>,
    /// `correlation_id: UUID`, default `uuid4()` (Python `EssayContentProvisionedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `EssayContentProvisionedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `ExcessContentProvisionedV1` (ELS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExcessContentProvisionedV1 {
    /// `event: str`, default `'excess.content.provisioned'` (Python `ExcessContentProvisionedV1.event`)
    #[serde(default = "d_excess_content_provisioned")]
    pub event: String,
    /// `batch_id: str`, required (Python `ExcessContentProvisionedV1.batch_id`)
    pub batch_id: String,
    /// `original_file_name: str`, required (Python `ExcessContentProvisionedV1.original_file_name`)
    pub original_file_name: String,
    /// `text_storage_id: str`, required (Python `ExcessContentProvisionedV1.text_storage_id`)
    pub text_storage_id: String,
    /// `reason: str`, required (Python `ExcessContentProvisionedV1.reason`)
    pub reason: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `ExcessContentProvisionedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `ExcessContentProvisionedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `EssayValidationFailedV1` (file service → ELS). `entity_id` is the batch id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayValidationFailedV1 {
    /// `event: str`, default `'essay.validation.failed'` (Python `EssayValidationFailedV1.event`)
    #[serde(default = "d_essay_validation_failed")]
    pub event: String,
    /// `entity_id: str`, required (Python `EssayValidationFailedV1.entity_id`)
    pub entity_id: String,
    /// `file_upload_id: str`, required (Python `EssayValidationFailedV1.file_upload_id`)
    pub file_upload_id: String,
    /// `original_file_name: str`, required (Python `EssayValidationFailedV1.original_file_name`)
    pub original_file_name: String,
    /// `raw_file_storage_id: str`, required (Python `EssayValidationFailedV1.raw_file_storage_id`)
    pub raw_file_storage_id: String,
    /// `validation_error_code: FileValidationErrorCode`, required (Python `EssayValidationFailedV1.validation_error_code`)
    pub validation_error_code: FileValidationErrorCode,
    /// `validation_error_detail: ErrorDetail`, required (Python `EssayValidationFailedV1.validation_error_detail`)
    pub validation_error_detail: ErrorDetail,
    /// `file_size_bytes: int`, required (Python `EssayValidationFailedV1.file_size_bytes`)
    pub file_size_bytes: i64,
    /// `correlation_id: UUID`, default `uuid4()` (Python `EssayValidationFailedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `EssayValidationFailedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `BatchFileAddedV1` (file service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchFileAddedV1 {
    /// `event: str`, default `'batch.file.added'` (Python `BatchFileAddedV1.event`)
    #[serde(default = "d_batch_file_added")]
    pub event: String,
    /// `batch_id: str`, required (Python `BatchFileAddedV1.batch_id`)
    pub batch_id: String,
    /// `file_upload_id: str`, required (Python `BatchFileAddedV1.file_upload_id`)
    pub file_upload_id: String,
    /// `filename: str`, required (Python `BatchFileAddedV1.filename`)
    pub filename: String,
    /// `user_id: str`, required (Python `BatchFileAddedV1.user_id`)
    pub user_id: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `BatchFileAddedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `BatchFileAddedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `BatchFileRemovedV1` (file service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchFileRemovedV1 {
    /// `event: str`, default `'batch.file.removed'` (Python `BatchFileRemovedV1.event`)
    #[serde(default = "d_batch_file_removed")]
    pub event: String,
    /// `batch_id: str`, required (Python `BatchFileRemovedV1.batch_id`)
    pub batch_id: String,
    /// `file_upload_id: str`, required (Python `BatchFileRemovedV1.file_upload_id`)
    pub file_upload_id: String,
    /// `filename: str`, required (Python `BatchFileRemovedV1.filename`)
    pub filename: String,
    /// `user_id: str`, required (Python `BatchFileRemovedV1.user_id`)
    pub user_id: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `BatchFileRemovedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `BatchFileRemovedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

base_event!(
    /// `BatchStudentMatchingRequestedV1` (ELS → NLP).
    BatchStudentMatchingRequestedV1 ["e_batch_student_matching_requested"] {
        /// `batch_id: str`, required (Python `BatchStudentMatchingRequestedV1.batch_id`)
        batch_id: String,
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchStudentMatchingRequestedV1.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `class_id: str`, required (Python `BatchStudentMatchingRequestedV1.class_id`)
        class_id: String,
        /// `course_code: CourseCode`, required (Python `BatchStudentMatchingRequestedV1.course_code`)
        course_code: CourseCode,
    }
);

processing_update!(
    /// `SpellcheckResultDataV1` (legacy rich spellcheck result). `entity_id` is the essay id.
    SpellcheckResultDataV1 [required] {
        /// `original_text_storage_id: str`, required (Python `SpellcheckResultDataV1.original_text_storage_id`)
        original_text_storage_id: String,
        /// `storage_metadata: StorageReferenceMetadata | None`, default `None` (Python `SpellcheckResultDataV1.storage_metadata`)
        #[serde(default)]
        storage_metadata: Option<StorageReferenceMetadata>,
        /// `corrections_made: int | None`, default `None` (Python `SpellcheckResultDataV1.corrections_made`)
        #[serde(default)]
        corrections_made: Option<i64>,
    }
);

processing_update!(
    /// `EssayLifecycleSpellcheckRequestV1` (ELS → spellchecker). `entity_id` is the essay id.
    EssayLifecycleSpellcheckRequestV1 [required] {
        /// `text_storage_id: str`, required (Python `EssayLifecycleSpellcheckRequestV1.text_storage_id`)
        text_storage_id: String,
        /// `language: str`, required (Python `EssayLifecycleSpellcheckRequestV1.language`)
        language: String,
    }
);

/// `SpellcheckPhaseCompletedV1`: the thin spellcheck event (spellchecker → ELS, BCS). `entity_id` is the essay id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpellcheckPhaseCompletedV1 {
    /// `entity_id: str`, required (Python `SpellcheckPhaseCompletedV1.entity_id`)
    pub entity_id: String,
    /// `batch_id: str`, required (Python `SpellcheckPhaseCompletedV1.batch_id`)
    pub batch_id: String,
    /// `correlation_id: str`, required (Python `SpellcheckPhaseCompletedV1.correlation_id`)
    pub correlation_id: String,
    /// `status: ProcessingStatus`, required (Python `SpellcheckPhaseCompletedV1.status`)
    pub status: ProcessingStatus,
    /// `corrected_text_storage_id: str | None`, default `None` (Python `SpellcheckPhaseCompletedV1.corrected_text_storage_id`)
    #[serde(default)]
    pub corrected_text_storage_id: Option<String>,
    /// `error_code: str | None`, default `None` (Python `SpellcheckPhaseCompletedV1.error_code`)
    #[serde(default)]
    pub error_code: Option<String>,
    /// `processing_duration_ms: int`, required (Python `SpellcheckPhaseCompletedV1.processing_duration_ms`)
    pub processing_duration_ms: i64,
    /// `timestamp: datetime`, required (Python `SpellcheckPhaseCompletedV1.timestamp`)
    pub timestamp: Timestamp,
}

processing_update!(
    /// `SpellcheckResultV1`: the rich spellcheck event (spellchecker → RAS).
    SpellcheckResultV1 [required] {
        /// `batch_id: str`, required (Python `SpellcheckResultV1.batch_id`)
        batch_id: String,
        /// `correlation_id: str`, required (Python `SpellcheckResultV1.correlation_id`)
        correlation_id: String,
        /// `user_id: str | None`, default `None` (Python `SpellcheckResultV1.user_id`)
        #[serde(default)]
        user_id: Option<String>,
        /// `corrections_made: int`, required (Python `SpellcheckResultV1.corrections_made`)
        corrections_made: i64,
        /// `correction_metrics: SpellcheckMetricsV1`, required (Python `SpellcheckResultV1.correction_metrics`)
        correction_metrics: SpellcheckMetricsV1,
        /// `original_text_storage_id: str`, required (Python `SpellcheckResultV1.original_text_storage_id`)
        original_text_storage_id: String,
        /// `corrected_text_storage_id: str | None`, default `None` (Python `SpellcheckResultV1.corrected_text_storage_id`)
        #[serde(default)]
        corrected_text_storage_id: Option<String>,
        /// `processing_duration_ms: int`, required (Python `SpellcheckResultV1.processing_duration_ms`)
        processing_duration_ms: i64,
        /// `processor_version: str`, default `'pyspellchecker_1.0_L2_swedish'` (Python `SpellcheckResultV1.processor_version`)
        #[serde(default = "d_processor_version")]
        processor_version: String,
    }
);

/// `StudentMatchSuggestion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentMatchSuggestion {
    /// `student_id: str`, required (Python `StudentMatchSuggestion.student_id`)
    pub student_id: String,
    /// `student_name: str`, required (Python `StudentMatchSuggestion.student_name`)
    pub student_name: String,
    /// `student_email: str | None`, default `None` (Python `StudentMatchSuggestion.student_email`)
    #[serde(default)]
    pub student_email: Option<String>,
    /// `confidence_score: float`, required, constraints `ge=0.0, le=1.0` (Python `StudentMatchSuggestion.confidence_score`)
    pub confidence_score: UnitInterval,
    /// `match_reasons: list[str]`, required (Python `StudentMatchSuggestion.match_reasons`)
    pub match_reasons: Vec<String>,
    /// `extraction_metadata: dict[str, Any]`, default `dict()` (Python `StudentMatchSuggestion.extraction_metadata`)
    #[serde(default)]
    pub extraction_metadata: JsonMap,
}

/// `EssayMatchResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayMatchResult {
    /// `essay_id: str`, required (Python `EssayMatchResult.essay_id`)
    pub essay_id: String,
    /// `text_storage_id: str`, required (Python `EssayMatchResult.text_storage_id`)
    pub text_storage_id: String,
    /// `filename: str`, required (Python `EssayMatchResult.filename`)
    pub filename: String,
    /// `suggestions: list[StudentMatchSuggestion]`, default `list()` (Python `EssayMatchResult.suggestions`)
    #[serde(default)]
    pub suggestions: Vec<StudentMatchSuggestion>,
    /// `no_match_reason: str | None`, default `None` (Python `EssayMatchResult.no_match_reason`)
    #[serde(default)]
    pub no_match_reason: Option<String>,
    /// `extraction_metadata: dict[str, Any]`, default `dict()` (Python `EssayMatchResult.extraction_metadata`)
    #[serde(default)]
    pub extraction_metadata: JsonMap,
}

base_event!(
    /// `BatchAuthorMatchesSuggestedV1` (NLP → class management).
    BatchAuthorMatchesSuggestedV1 ["e_batch_author_matches_suggested"] {
        /// `batch_id: str`, required (Python `BatchAuthorMatchesSuggestedV1.batch_id`)
        batch_id: String,
        /// `class_id: str`, required (Python `BatchAuthorMatchesSuggestedV1.class_id`)
        class_id: String,
        /// `course_code: CourseCode`, required (Python `BatchAuthorMatchesSuggestedV1.course_code`)
        course_code: CourseCode,
        /// `match_results: list[EssayMatchResult]`, required (Python `BatchAuthorMatchesSuggestedV1.match_results`)
        match_results: Vec<EssayMatchResult>,
        /// `processing_summary: dict[str, int]`, required (Python `BatchAuthorMatchesSuggestedV1.processing_summary`)
        processing_summary: BTreeMap<String, i64>,
        /// `processing_metadata: dict[str, Any]`, default `dict()` (Python `BatchAuthorMatchesSuggestedV1.processing_metadata`)
        #[serde(default)]
        processing_metadata: JsonMap,
    }
);

/// `NlpMetrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NlpMetrics {
    /// `word_count` (Python `NlpMetrics.word_count`; a model the reference's field lists leave out)
    pub word_count: i64,
    /// `sentence_count` (Python `NlpMetrics.sentence_count`; a model the reference's field lists leave out)
    pub sentence_count: i64,
    /// `avg_sentence_length` (Python `NlpMetrics.avg_sentence_length`; a model the reference's field lists leave out)
    pub avg_sentence_length: f64,
    /// `language_detected` (Python `NlpMetrics.language_detected`; a model the reference's field lists leave out)
    pub language_detected: String,
    /// `processing_time_ms` (Python `NlpMetrics.processing_time_ms`; a model the reference's field lists leave out)
    #[serde(default)]
    pub processing_time_ms: i64,
    /// `mean_zipf_frequency` (Python `NlpMetrics.mean_zipf_frequency`; a model the reference's field lists leave out)
    #[serde(default)]
    pub mean_zipf_frequency: f64,
    /// `percent_tokens_zipf_below_3` (Python `NlpMetrics.percent_tokens_zipf_below_3`; a model the reference's field lists leave out)
    #[serde(default)]
    pub percent_tokens_zipf_below_3: f64,
    /// `mtld_score` (Python `NlpMetrics.mtld_score`; a model the reference's field lists leave out)
    #[serde(default)]
    pub mtld_score: f64,
    /// `hdd_score` (Python `NlpMetrics.hdd_score`; a model the reference's field lists leave out)
    #[serde(default)]
    pub hdd_score: f64,
    /// `mean_dependency_distance` (Python `NlpMetrics.mean_dependency_distance`; a model the reference's field lists leave out)
    #[serde(default)]
    pub mean_dependency_distance: f64,
    /// `phrasal_indices` (Python `NlpMetrics.phrasal_indices`; a model the reference's field lists leave out)
    #[serde(default)]
    pub phrasal_indices: BTreeMap<String, f64>,
    /// `clausal_indices` (Python `NlpMetrics.clausal_indices`; a model the reference's field lists leave out)
    #[serde(default)]
    pub clausal_indices: BTreeMap<String, f64>,
    /// `first_order_coherence` (Python `NlpMetrics.first_order_coherence`; a model the reference's field lists leave out)
    #[serde(default)]
    pub first_order_coherence: f64,
    /// `second_order_coherence` (Python `NlpMetrics.second_order_coherence`; a model the reference's field lists leave out)
    #[serde(default)]
    pub second_order_coherence: f64,
    /// `avg_bigram_pmi` (Python `NlpMetrics.avg_bigram_pmi`; a model the reference's field lists leave out)
    #[serde(default)]
    pub avg_bigram_pmi: f64,
    /// `avg_trigram_pmi` (Python `NlpMetrics.avg_trigram_pmi`; a model the reference's field lists leave out)
    #[serde(default)]
    pub avg_trigram_pmi: f64,
    /// `avg_bigram_npmi` (Python `NlpMetrics.avg_bigram_npmi`; a model the reference's field lists leave out)
    #[serde(default)]
    pub avg_bigram_npmi: f64,
    /// `avg_trigram_npmi` (Python `NlpMetrics.avg_trigram_npmi`; a model the reference's field lists leave out)
    #[serde(default)]
    pub avg_trigram_npmi: f64,
}

/// `GrammarError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrammarError {
    /// `rule_id` (Python `GrammarError.rule_id`; a model the reference's field lists leave out)
    pub rule_id: String,
    /// `message` (Python `GrammarError.message`; a model the reference's field lists leave out)
    pub message: String,
    /// `short_message` (Python `GrammarError.short_message`; a model the reference's field lists leave out)
    pub short_message: String,
    /// `offset` (Python `GrammarError.offset`; a model the reference's field lists leave out)
    pub offset: i64,
    /// `length` (Python `GrammarError.length`; a model the reference's field lists leave out)
    pub length: i64,
    /// `replacements` (Python `GrammarError.replacements`; a model the reference's field lists leave out)
    #[serde(default)]
    pub replacements: Vec<String>,
    /// `category` (Python `GrammarError.category`; a model the reference's field lists leave out)
    pub category: String,
    /// `severity` (Python `GrammarError.severity`; a model the reference's field lists leave out)
    #[serde(default = "d_info")]
    pub severity: String,
    /// `category_id` (Python `GrammarError.category_id`; a model the reference's field lists leave out)
    pub category_id: String,
    /// `category_name` (Python `GrammarError.category_name`; a model the reference's field lists leave out)
    pub category_name: String,
    /// `context` (Python `GrammarError.context`; a model the reference's field lists leave out)
    pub context: String,
    /// `context_offset` (Python `GrammarError.context_offset`; a model the reference's field lists leave out)
    pub context_offset: i64,
}

/// `GrammarAnalysis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrammarAnalysis {
    /// `error_count` (Python `GrammarAnalysis.error_count`; a model the reference's field lists leave out)
    pub error_count: i64,
    /// `errors` (Python `GrammarAnalysis.errors`; a model the reference's field lists leave out)
    #[serde(default)]
    pub errors: Vec<GrammarError>,
    /// `language` (Python `GrammarAnalysis.language`; a model the reference's field lists leave out)
    pub language: String,
    /// `processing_time_ms` (Python `GrammarAnalysis.processing_time_ms`; a model the reference's field lists leave out)
    #[serde(default)]
    pub processing_time_ms: i64,
    /// `grammar_category_counts` (Python `GrammarAnalysis.grammar_category_counts`; a model the reference's field lists leave out)
    #[serde(default)]
    pub grammar_category_counts: Option<BTreeMap<String, i64>>,
    /// `grammar_rule_counts` (Python `GrammarAnalysis.grammar_rule_counts`; a model the reference's field lists leave out)
    #[serde(default)]
    pub grammar_rule_counts: Option<BTreeMap<String, i64>>,
}

base_event!(
    /// `EssayNlpCompletedV1` (NLP → RAS).
    EssayNlpCompletedV1 ["e_essay_nlp_completed"] {
        /// `essay_id: str`, required (Python `EssayNlpCompletedV1.essay_id`)
        essay_id: String,
        /// `text_storage_id: str`, required (Python `EssayNlpCompletedV1.text_storage_id`)
        text_storage_id: String,
        /// `nlp_metrics: NlpMetrics`, required (Python `EssayNlpCompletedV1.nlp_metrics`)
        nlp_metrics: NlpMetrics,
        /// `grammar_analysis: GrammarAnalysis`, required (Python `EssayNlpCompletedV1.grammar_analysis`)
        grammar_analysis: GrammarAnalysis,
        /// `processing_metadata: dict[str, Any]`, default `dict()` (Python `EssayNlpCompletedV1.processing_metadata`)
        #[serde(default)]
        processing_metadata: JsonMap,
    }
);

processing_update!(
    /// `BatchNlpAnalysisCompletedV1`: thin NLP completion (NLP → ELS). `entity_id` is the batch id.
    BatchNlpAnalysisCompletedV1 ["e_batch_nlp_analysis_completed"] {
        /// `batch_id: str`, required (Python `BatchNlpAnalysisCompletedV1.batch_id`)
        batch_id: String,
        /// `processing_summary: dict[str, Any]`, default `{'total_essays': 0, 'successful': 0, 'failed': 0, 'successful_essay_ids': [], 'failed_essay_ids': [], 'processing_time_seconds': 0.0}` (Python `BatchNlpAnalysisCompletedV1.processing_summary`)
        #[serde(default)]
        processing_summary: ProcessingSummary,
    }
);
