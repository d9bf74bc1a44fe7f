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
    #[serde(default = "d_essay_slot_assigned")]
    pub event: String,
    pub batch_id: String,
    pub essay_id: String,
    pub file_upload_id: String,
    pub text_storage_id: String,
    pub original_file_name: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `EssayContentProvisionedV1` (file service → ELS). `entity_id` is the batch id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayContentProvisionedV1 {
    #[serde(default = "d_essay_content_provisioned")]
    pub event: String,
    pub entity_id: String,
    pub file_upload_id: String,
    pub original_file_name: String,
    pub raw_file_storage_id: String,
    pub text_storage_id: String,
    pub file_size_bytes: i64,
    #[serde(default)]
    pub content_md5_hash: Option<String>,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `ExcessContentProvisionedV1` (ELS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExcessContentProvisionedV1 {
    #[serde(default = "d_excess_content_provisioned")]
    pub event: String,
    pub batch_id: String,
    pub original_file_name: String,
    pub text_storage_id: String,
    pub reason: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `EssayValidationFailedV1` (file service → ELS). `entity_id` is the batch id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayValidationFailedV1 {
    #[serde(default = "d_essay_validation_failed")]
    pub event: String,
    pub entity_id: String,
    pub file_upload_id: String,
    pub original_file_name: String,
    pub raw_file_storage_id: String,
    pub validation_error_code: FileValidationErrorCode,
    pub validation_error_detail: ErrorDetail,
    pub file_size_bytes: i64,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `BatchFileAddedV1` (file service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchFileAddedV1 {
    #[serde(default = "d_batch_file_added")]
    pub event: String,
    pub batch_id: String,
    pub file_upload_id: String,
    pub filename: String,
    pub user_id: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `BatchFileRemovedV1` (file service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchFileRemovedV1 {
    #[serde(default = "d_batch_file_removed")]
    pub event: String,
    pub batch_id: String,
    pub file_upload_id: String,
    pub filename: String,
    pub user_id: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

base_event!(
    /// `BatchStudentMatchingRequestedV1` (ELS → NLP).
    BatchStudentMatchingRequestedV1 ["e_batch_student_matching_requested"] {
        batch_id: String,
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        class_id: String,
        course_code: CourseCode,
    }
);

processing_update!(
    /// `SpellcheckResultDataV1` (legacy rich spellcheck result). `entity_id` is the essay id.
    SpellcheckResultDataV1 [required] {
        original_text_storage_id: String,
        #[serde(default)]
        storage_metadata: Option<StorageReferenceMetadata>,
        #[serde(default)]
        corrections_made: Option<i64>,
    }
);

processing_update!(
    /// `EssayLifecycleSpellcheckRequestV1` (ELS → spellchecker). `entity_id` is the essay id.
    EssayLifecycleSpellcheckRequestV1 [required] { text_storage_id: String, language: String }
);

/// `SpellcheckPhaseCompletedV1`: the thin spellcheck event (spellchecker → ELS, BCS). `entity_id` is the essay id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpellcheckPhaseCompletedV1 {
    pub entity_id: String,
    pub batch_id: String,
    pub correlation_id: String,
    pub status: ProcessingStatus,
    #[serde(default)]
    pub corrected_text_storage_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    pub processing_duration_ms: i64,
    pub timestamp: Timestamp,
}

processing_update!(
    /// `SpellcheckResultV1`: the rich spellcheck event (spellchecker → RAS).
    SpellcheckResultV1 [required] {
        batch_id: String,
        correlation_id: String,
        #[serde(default)]
        user_id: Option<String>,
        corrections_made: i64,
        correction_metrics: SpellcheckMetricsV1,
        original_text_storage_id: String,
        #[serde(default)]
        corrected_text_storage_id: Option<String>,
        processing_duration_ms: i64,
        #[serde(default = "d_processor_version")]
        processor_version: String,
    }
);

/// `StudentMatchSuggestion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentMatchSuggestion {
    pub student_id: String,
    pub student_name: String,
    #[serde(default)]
    pub student_email: Option<String>,
    pub confidence_score: UnitInterval,
    pub match_reasons: Vec<String>,
    #[serde(default)]
    pub extraction_metadata: JsonMap,
}

/// `EssayMatchResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayMatchResult {
    pub essay_id: String,
    pub text_storage_id: String,
    pub filename: String,
    #[serde(default)]
    pub suggestions: Vec<StudentMatchSuggestion>,
    #[serde(default)]
    pub no_match_reason: Option<String>,
    #[serde(default)]
    pub extraction_metadata: JsonMap,
}

base_event!(
    /// `BatchAuthorMatchesSuggestedV1` (NLP → class management).
    BatchAuthorMatchesSuggestedV1 ["e_batch_author_matches_suggested"] {
        batch_id: String,
        class_id: String,
        course_code: CourseCode,
        match_results: Vec<EssayMatchResult>,
        processing_summary: BTreeMap<String, i64>,
        #[serde(default)]
        processing_metadata: JsonMap,
    }
);

/// `NlpMetrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NlpMetrics {
    pub word_count: i64,
    pub sentence_count: i64,
    pub avg_sentence_length: f64,
    pub language_detected: String,
    #[serde(default)]
    pub processing_time_ms: i64,
    #[serde(default)]
    pub mean_zipf_frequency: f64,
    #[serde(default)]
    pub percent_tokens_zipf_below_3: f64,
    #[serde(default)]
    pub mtld_score: f64,
    #[serde(default)]
    pub hdd_score: f64,
    #[serde(default)]
    pub mean_dependency_distance: f64,
    #[serde(default)]
    pub phrasal_indices: BTreeMap<String, f64>,
    #[serde(default)]
    pub clausal_indices: BTreeMap<String, f64>,
    #[serde(default)]
    pub first_order_coherence: f64,
    #[serde(default)]
    pub second_order_coherence: f64,
    #[serde(default)]
    pub avg_bigram_pmi: f64,
    #[serde(default)]
    pub avg_trigram_pmi: f64,
    #[serde(default)]
    pub avg_bigram_npmi: f64,
    #[serde(default)]
    pub avg_trigram_npmi: f64,
}

/// `GrammarError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrammarError {
    pub rule_id: String,
    pub message: String,
    pub short_message: String,
    pub offset: i64,
    pub length: i64,
    #[serde(default)]
    pub replacements: Vec<String>,
    pub category: String,
    #[serde(default = "d_info")]
    pub severity: String,
    pub category_id: String,
    pub category_name: String,
    pub context: String,
    pub context_offset: i64,
}

/// `GrammarAnalysis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrammarAnalysis {
    pub error_count: i64,
    #[serde(default)]
    pub errors: Vec<GrammarError>,
    pub language: String,
    #[serde(default)]
    pub processing_time_ms: i64,
    #[serde(default)]
    pub grammar_category_counts: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    pub grammar_rule_counts: Option<BTreeMap<String, i64>>,
}

base_event!(
    /// `EssayNlpCompletedV1` (NLP → RAS).
    EssayNlpCompletedV1 ["e_essay_nlp_completed"] {
        essay_id: String,
        text_storage_id: String,
        nlp_metrics: NlpMetrics,
        grammar_analysis: GrammarAnalysis,
        #[serde(default)]
        processing_metadata: JsonMap,
    }
);

processing_update!(
    /// `BatchNlpAnalysisCompletedV1`: thin NLP completion (NLP → ELS). `entity_id` is the batch id.
    BatchNlpAnalysisCompletedV1 ["e_batch_nlp_analysis_completed"] {
        batch_id: String,
        #[serde(default)]
        processing_summary: ProcessingSummary,
    }
);
