//! Batch coordination, pipeline and batch-service command payloads (BOS, ELS, BCS, API gateway).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::base::{
    ErrorDetail, EssayProcessingInputRefV1, StorageReferenceMetadata, SystemProcessingMetadata,
};
use super::defaults::*;
use crate::constrained::BoundedString;
use crate::enums::{BatchStatus, CourseCode, PhaseName};
use crate::time::Timestamp;

/// `BatchEssaysRegistered` (BOS → ELS, RAS). `entity_id` is the batch id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchEssaysRegistered {
    #[serde(default = "d_batch_essays_registered")]
    pub event: String,
    pub entity_id: String,
    pub expected_essay_count: i64,
    pub essay_ids: Vec<String>,
    pub metadata: SystemProcessingMetadata,
    pub course_code: CourseCode,
    #[serde(default)]
    pub student_prompt_ref: Option<StorageReferenceMetadata>,
    pub user_id: String,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub class_id: Option<String>,
}

/// `BatchEssaysReady` (ELS → BOS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchEssaysReady {
    #[serde(default = "d_batch_essays_ready")]
    pub event: String,
    pub batch_id: String,
    pub ready_essays: Vec<EssayProcessingInputRefV1>,
    pub metadata: SystemProcessingMetadata,
    pub course_code: CourseCode,
    pub course_language: String,
    #[serde(default)]
    pub student_prompt_ref: Option<StorageReferenceMetadata>,
    pub class_type: String,
}

/// `BatchPipelineCompletedV1` (BOS → RAS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchPipelineCompletedV1 {
    #[serde(default = "d_batch_pipeline_completed")]
    pub event: String,
    pub batch_id: String,
    pub completed_phases: Vec<String>,
    pub final_status: BatchStatus,
    pub processing_duration_seconds: f64,
    pub successful_essay_count: i64,
    pub failed_essay_count: i64,
    pub correlation_id: Uuid,
    pub metadata: SystemProcessingMetadata,
}

/// `PhaseSkippedV1` (BCS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseSkippedV1 {
    #[serde(default = "d_batch_phase_skipped")]
    pub event: String,
    pub batch_id: String,
    pub phase_name: String,
    #[serde(default = "d_already_completed")]
    pub skip_reason: String,
    #[serde(default)]
    pub storage_id: Option<String>,
    pub correlation_id: Uuid,
    pub metadata: SystemProcessingMetadata,
}

/// `BatchContentProvisioningCompletedV1` (ELS → BOS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchContentProvisioningCompletedV1 {
    #[serde(default = "d_batch_content_provisioning_completed")]
    pub event: String,
    pub batch_id: String,
    pub provisioned_count: i64,
    pub expected_count: i64,
    pub course_code: CourseCode,
    pub user_id: String,
    pub essays_for_processing: Vec<EssayProcessingInputRefV1>,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `BatchErrorSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchErrorSummary {
    pub total_errors: i64,
    pub error_categories: std::collections::BTreeMap<String, i64>,
    #[serde(default)]
    pub critical_failure: bool,
}

/// `EssayValidationError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayValidationError {
    pub essay_id: String,
    pub file_name: String,
    pub error_detail: ErrorDetail,
    #[serde(default)]
    pub failed_at: Timestamp,
}

/// `BatchValidationErrorsV1` (ELS → BOS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchValidationErrorsV1 {
    #[serde(default = "d_batch_validation_errors")]
    pub event: String,
    pub batch_id: String,
    pub failed_essays: Vec<EssayValidationError>,
    pub error_summary: BatchErrorSummary,
    #[serde(default)]
    pub correlation_id: Uuid,
    pub metadata: SystemProcessingMetadata,
}

/// `ELSBatchPhaseOutcomeV1` (ELS → BOS, BCS, RAS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ElsBatchPhaseOutcomeV1 {
    pub batch_id: String,
    pub phase_name: PhaseName,
    pub phase_status: BatchStatus,
    pub processed_essays: Vec<EssayProcessingInputRefV1>,
    pub failed_essay_ids: Vec<String>,
    #[serde(default)]
    pub correlation_id: Uuid,
}

/// `PipelinePromptPayload`: exactly one of `assignment_id` or `cms_prompt_ref`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(extend("oneOf" = [
    {"required": ["assignment_id"], "properties": {"assignment_id": {"not": {"type": "null"}}, "cms_prompt_ref": {"type": "null"}}},
    {"required": ["cms_prompt_ref"], "properties": {"cms_prompt_ref": {"not": {"type": "null"}}, "assignment_id": {"type": "null"}}}
]))]
pub struct PipelinePromptPayload {
    pub assignment_id: Option<BoundedString<0, 100>>,
    pub cms_prompt_ref: Option<StorageReferenceMetadata>,
}

impl<'de> Deserialize<'de> for PipelinePromptPayload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            assignment_id: Option<BoundedString<0, 100>>,
            #[serde(default)]
            cms_prompt_ref: Option<StorageReferenceMetadata>,
        }
        let raw = Raw::deserialize(d)?;
        match (&raw.assignment_id, &raw.cms_prompt_ref) {
            (Some(_), None) | (None, Some(_)) => Ok(PipelinePromptPayload {
                assignment_id: raw.assignment_id,
                cms_prompt_ref: raw.cms_prompt_ref,
            }),
            _ => Err(serde::de::Error::custom(
                "exactly one of assignment_id or cms_prompt_ref must be set",
            )),
        }
    }
}

/// `ClientBatchPipelineRequestV1` (API gateway → BOS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientBatchPipelineRequestV1 {
    pub batch_id: BoundedString<1, 255>,
    pub requested_pipeline: BoundedString<1, 100>,
    #[serde(default)]
    pub client_correlation_id: Uuid,
    pub user_id: BoundedString<1, 255>,
    #[serde(default)]
    pub is_retry: bool,
    #[serde(default)]
    pub retry_reason: Option<BoundedString<0, 500>>,
    #[serde(default)]
    pub prompt_payload: Option<PipelinePromptPayload>,
}

base_event!(
    /// `PipelineDeniedV1` (BOS). `denied_at` is naive UTC in the original.
    PipelineDeniedV1 ["e_pipeline_denied"] {
        batch_id: String,
        user_id: String,
        #[serde(default)]
        org_id: Option<String>,
        requested_pipeline: String,
        denial_reason: String,
        required_credits: i64,
        available_credits: i64,
        #[serde(default)]
        resource_breakdown: Option<std::collections::BTreeMap<String, i64>>,
        #[serde(default)]
        denied_at: Timestamp,
    }
);

base_event!(
    /// `BatchServiceSpellcheckInitiateCommandDataV1`. `entity_id` is the batch id.
    BatchServiceSpellcheckInitiateCommandDataV1 [required] { essays_to_process: Vec<EssayProcessingInputRefV1>, language: String }
);
base_event!(
    /// `BatchServiceCJAssessmentInitiateCommandDataV1`.
    BatchServiceCjAssessmentInitiateCommandDataV1 [required] {
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        language: String,
        course_code: CourseCode,
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
        class_type: String,
        #[serde(default)]
        assignment_id: Option<BoundedString<0, 100>>,
    }
);
base_event!(
    /// `BatchServiceAIFeedbackInitiateCommandDataV1`.
    BatchServiceAiFeedbackInitiateCommandDataV1 [required] {
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        language: String,
        course_code: CourseCode,
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
        class_type: String,
        owner_user_id: String,
    }
);
base_event!(
    /// `BatchServiceNLPInitiateCommandDataV1`.
    BatchServiceNlpInitiateCommandDataV1 [required] { essays_to_process: Vec<EssayProcessingInputRefV1>, language: String }
);
base_event!(
    /// `BatchServiceNLPInitiateCommandDataV2`.
    BatchServiceNlpInitiateCommandDataV2 [required] {
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        language: String,
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
    }
);
base_event!(
    /// `BatchServiceStudentMatchingInitiateCommandDataV1`.
    BatchServiceStudentMatchingInitiateCommandDataV1 [required] {
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        class_id: String,
        course_code: CourseCode,
    }
);
base_event!(
    /// `BatchNlpProcessingRequestedV1` (deprecated; ELS → NLP).
    BatchNlpProcessingRequestedV1 [required] {
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        language: String,
        batch_id: String,
    }
);
base_event!(
    /// `BatchNlpProcessingRequestedV2` (ELS → NLP).
    BatchNlpProcessingRequestedV2 [required] {
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        language: String,
        batch_id: String,
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
    }
);
