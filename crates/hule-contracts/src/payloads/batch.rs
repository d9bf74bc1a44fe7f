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
    /// `event: str`, default `'batch.essays.registered'` (Python `BatchEssaysRegistered.event`)
    #[serde(default = "d_batch_essays_registered")]
    pub event: String,
    /// `entity_id: str`, required (Python `BatchEssaysRegistered.entity_id`)
    pub entity_id: String,
    /// `expected_essay_count: int`, required (Python `BatchEssaysRegistered.expected_essay_count`)
    pub expected_essay_count: i64,
    /// `essay_ids: list[str]`, required (Python `BatchEssaysRegistered.essay_ids`)
    pub essay_ids: Vec<String>,
    /// `metadata: SystemProcessingMetadata`, required (Python `BatchEssaysRegistered.metadata`)
    pub metadata: SystemProcessingMetadata,
    /// `course_code: CourseCode`, required (Python `BatchEssaysRegistered.course_code`)
    pub course_code: CourseCode,
    /// `student_prompt_ref: StorageReferenceMetadata | None`, default `None` (Python `BatchEssaysRegistered.student_prompt_ref`)
    #[serde(default)]
    pub student_prompt_ref: Option<StorageReferenceMetadata>,
    /// `user_id: str`, required (Python `BatchEssaysRegistered.user_id`)
    pub user_id: String,
    /// `org_id: str | None`, default `None` (Python `BatchEssaysRegistered.org_id`)
    #[serde(default)]
    pub org_id: Option<String>,
    /// `class_id: str | None`, default `None` (Python `BatchEssaysRegistered.class_id`)
    #[serde(default)]
    pub class_id: Option<String>,
}

/// `BatchEssaysReady` (ELS → BOS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchEssaysReady {
    /// `event: str`, default `'batch.essays.ready'` (Python `BatchEssaysReady.event`)
    #[serde(default = "d_batch_essays_ready")]
    pub event: String,
    /// `batch_id: str`, required (Python `BatchEssaysReady.batch_id`)
    pub batch_id: String,
    /// `ready_essays: list[EssayProcessingInputRefV1]`, required (Python `BatchEssaysReady.ready_essays`)
    pub ready_essays: Vec<EssayProcessingInputRefV1>,
    /// `metadata: SystemProcessingMetadata`, required (Python `BatchEssaysReady.metadata`)
    pub metadata: SystemProcessingMetadata,
    /// `course_code: CourseCode`, required (Python `BatchEssaysReady.course_code`)
    pub course_code: CourseCode,
    /// `course_language: str`, required (Python `BatchEssaysReady.course_language`)
    pub course_language: String,
    /// `student_prompt_ref: StorageReferenceMetadata | None`, default `None` (Python `BatchEssaysReady.student_prompt_ref`)
    #[serde(default)]
    pub student_prompt_ref: Option<StorageReferenceMetadata>,
    /// `class_type: str`, required (Python `BatchEssaysReady.class_type`)
    pub class_type: String,
}

/// `BatchPipelineCompletedV1` (BOS → RAS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchPipelineCompletedV1 {
    /// `event: str`, default `'batch.pipeline.completed'` (Python `BatchPipelineCompletedV1.event`)
    #[serde(default = "d_batch_pipeline_completed")]
    pub event: String,
    /// `batch_id: str`, required (Python `BatchPipelineCompletedV1.batch_id`)
    pub batch_id: String,
    /// `completed_phases: list[str]`, required (Python `BatchPipelineCompletedV1.completed_phases`)
    pub completed_phases: Vec<String>,
    /// `final_status: BatchStatus`, required (Python `BatchPipelineCompletedV1.final_status`)
    pub final_status: BatchStatus,
    /// `processing_duration_seconds: float`, required (Python `BatchPipelineCompletedV1.processing_duration_seconds`)
    pub processing_duration_seconds: f64,
    /// `successful_essay_count: int`, required (Python `BatchPipelineCompletedV1.successful_essay_count`)
    pub successful_essay_count: i64,
    /// `failed_essay_count: int`, required (Python `BatchPipelineCompletedV1.failed_essay_count`)
    pub failed_essay_count: i64,
    /// `correlation_id: UUID`, required (Python `BatchPipelineCompletedV1.correlation_id`)
    pub correlation_id: Uuid,
    /// `metadata: SystemProcessingMetadata`, required (Python `BatchPipelineCompletedV1.metadata`)
    pub metadata: SystemProcessingMetadata,
}

/// `PhaseSkippedV1` (BCS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseSkippedV1 {
    /// `event: str`, default `'batch.phase.skipped'` (Python `PhaseSkippedV1.event`)
    #[serde(default = "d_batch_phase_skipped")]
    pub event: String,
    /// `batch_id: str`, required (Python `PhaseSkippedV1.batch_id`)
    pub batch_id: String,
    /// `phase_name: str`, required (Python `PhaseSkippedV1.phase_name`)
    pub phase_name: String,
    /// `skip_reason: str`, default `'already_completed'` (Python `PhaseSkippedV1.skip_reason`)
    #[serde(default = "d_already_completed")]
    pub skip_reason: String,
    /// `storage_id: str | None`, default `None` (Python `PhaseSkippedV1.storage_id`)
    #[serde(default)]
    pub storage_id: Option<String>,
    /// `correlation_id: UUID`, required (Python `PhaseSkippedV1.correlation_id`)
    pub correlation_id: Uuid,
    /// `metadata: SystemProcessingMetadata`, required (Python `PhaseSkippedV1.metadata`)
    pub metadata: SystemProcessingMetadata,
}

/// `BatchContentProvisioningCompletedV1` (ELS → BOS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchContentProvisioningCompletedV1 {
    /// `event: str`, default `'batch.content.provisioning.completed'` (Python `BatchContentProvisioningCompletedV1.event`)
    #[serde(default = "d_batch_content_provisioning_completed")]
    pub event: String,
    /// `batch_id: str`, required (Python `BatchContentProvisioningCompletedV1.batch_id`)
    pub batch_id: String,
    /// `provisioned_count: int`, required (Python `BatchContentProvisioningCompletedV1.provisioned_count`)
    pub provisioned_count: i64,
    /// `expected_count: int`, required (Python `BatchContentProvisioningCompletedV1.expected_count`)
    pub expected_count: i64,
    /// `course_code: CourseCode`, required (Python `BatchContentProvisioningCompletedV1.course_code`)
    pub course_code: CourseCode,
    /// `user_id: str`, required (Python `BatchContentProvisioningCompletedV1.user_id`)
    pub user_id: String,
    /// `essays_for_processing: list[EssayProcessingInputRefV1]`, required (Python `BatchContentProvisioningCompletedV1.essays_for_processing`)
    pub essays_for_processing: Vec<EssayProcessingInputRefV1>,
    /// `correlation_id: UUID`, default `uuid4()` (Python `BatchContentProvisioningCompletedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `BatchContentProvisioningCompletedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `BatchErrorSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchErrorSummary {
    /// `total_errors: int`, required (Python `BatchErrorSummary.total_errors`)
    pub total_errors: i64,
    /// `error_categories: dict[str, int]`, required (Python `BatchErrorSummary.error_categories`)
    pub error_categories: std::collections::BTreeMap<String, i64>,
    /// `critical_failure: bool`, default `False` (Python `BatchErrorSummary.critical_failure`)
    #[serde(default)]
    pub critical_failure: bool,
}

/// `EssayValidationError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayValidationError {
    /// `essay_id: str`, required (Python `EssayValidationError.essay_id`)
    pub essay_id: String,
    /// `file_name: str`, required (Python `EssayValidationError.file_name`)
    pub file_name: String,
    /// `error_detail: ErrorDetail`, required (Python `EssayValidationError.error_detail`)
    pub error_detail: ErrorDetail,
    /// `failed_at: datetime`, default `now(UTC)` (Python `EssayValidationError.failed_at`)
    #[serde(default)]
    pub failed_at: Timestamp,
}

/// `BatchValidationErrorsV1` (ELS → BOS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchValidationErrorsV1 {
    /// `event: str`, default `'batch.validation.errors.v1'` (Python `BatchValidationErrorsV1.event`)
    #[serde(default = "d_batch_validation_errors")]
    pub event: String,
    /// `batch_id: str`, required (Python `BatchValidationErrorsV1.batch_id`)
    pub batch_id: String,
    /// `failed_essays: list[EssayValidationError]`, required (Python `BatchValidationErrorsV1.failed_essays`)
    pub failed_essays: Vec<EssayValidationError>,
    /// `error_summary: BatchErrorSummary`, required (Python `BatchValidationErrorsV1.error_summary`)
    pub error_summary: BatchErrorSummary,
    /// `correlation_id: UUID`, default `uuid4()` (Python `BatchValidationErrorsV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `metadata: SystemProcessingMetadata`, required (Python `BatchValidationErrorsV1.metadata`)
    pub metadata: SystemProcessingMetadata,
}

/// `ELSBatchPhaseOutcomeV1` (ELS → BOS, BCS, RAS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ElsBatchPhaseOutcomeV1 {
    /// `batch_id: str`, required (Python `ELSBatchPhaseOutcomeV1.batch_id`)
    pub batch_id: String,
    /// `phase_name: PhaseName`, required (Python `ELSBatchPhaseOutcomeV1.phase_name`)
    pub phase_name: PhaseName,
    /// `phase_status: BatchStatus`, required (Python `ELSBatchPhaseOutcomeV1.phase_status`)
    pub phase_status: BatchStatus,
    /// `processed_essays: list[EssayProcessingInputRefV1]`, required (Python `ELSBatchPhaseOutcomeV1.processed_essays`)
    pub processed_essays: Vec<EssayProcessingInputRefV1>,
    /// `failed_essay_ids: list[str]`, required (Python `ELSBatchPhaseOutcomeV1.failed_essay_ids`)
    pub failed_essay_ids: Vec<String>,
    /// `correlation_id: UUID`, default `uuid4()` (Python `ELSBatchPhaseOutcomeV1.correlation_id`)
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
    /// `assignment_id: str | None`, default `None`, constraints `max_length=100` (Python `PipelinePromptPayload.assignment_id`)
    pub assignment_id: Option<BoundedString<0, 100>>,
    /// `cms_prompt_ref: StorageReferenceMetadata | None`, default `None` (Python `PipelinePromptPayload.cms_prompt_ref`)
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
    /// `batch_id: str`, required, constraints `min_length=1, max_length=255` (Python `ClientBatchPipelineRequestV1.batch_id`)
    pub batch_id: BoundedString<1, 255>,
    /// `requested_pipeline: str`, required, constraints `min_length=1, max_length=100` (Python `ClientBatchPipelineRequestV1.requested_pipeline`)
    pub requested_pipeline: BoundedString<1, 100>,
    /// `client_correlation_id: UUID`, default `uuid4()` (Python `ClientBatchPipelineRequestV1.client_correlation_id`)
    #[serde(default)]
    pub client_correlation_id: Uuid,
    /// `user_id: str`, required, constraints `min_length=1, max_length=255` (Python `ClientBatchPipelineRequestV1.user_id`)
    pub user_id: BoundedString<1, 255>,
    /// `is_retry: bool`, default `False` (Python `ClientBatchPipelineRequestV1.is_retry`)
    #[serde(default)]
    pub is_retry: bool,
    /// `retry_reason: str | None`, default `None`, constraints `max_length=500` (Python `ClientBatchPipelineRequestV1.retry_reason`)
    #[serde(default)]
    pub retry_reason: Option<BoundedString<0, 500>>,
    /// `prompt_payload: PipelinePromptPayload | None`, default `None` (Python `ClientBatchPipelineRequestV1.prompt_payload`)
    #[serde(default)]
    pub prompt_payload: Option<PipelinePromptPayload>,
}

base_event!(
    /// `PipelineDeniedV1` (BOS). `denied_at` is naive UTC in the original.
    PipelineDeniedV1 ["e_pipeline_denied"] {
        /// `batch_id: str`, required (Python `PipelineDeniedV1.batch_id`)
        batch_id: String,
        /// `user_id: str`, required (Python `PipelineDeniedV1.user_id`)
        user_id: String,
        /// `org_id: opt[str]`, default `None` (Python `PipelineDeniedV1.org_id`)
        #[serde(default)]
        org_id: Option<String>,
        /// `requested_pipeline: str`, required (Python `PipelineDeniedV1.requested_pipeline`)
        requested_pipeline: String,
        /// `denial_reason: str`, required (Python `PipelineDeniedV1.denial_reason`)
        denial_reason: String,
        /// `required_credits: int`, required (Python `PipelineDeniedV1.required_credits`)
        required_credits: i64,
        /// `available_credits: int`, required (Python `PipelineDeniedV1.available_credits`)
        available_credits: i64,
        /// `resource_breakdown: opt[dict[str, int]]`, default `None` (Python `PipelineDeniedV1.resource_breakdown`)
        #[serde(default)]
        resource_breakdown: Option<std::collections::BTreeMap<String, i64>>,
        /// `denied_at: datetime`, default `utcnow() (naive)` (Python `PipelineDeniedV1.denied_at`)
        #[serde(default)]
        denied_at: Timestamp,
    }
);

base_event!(
    /// `BatchServiceSpellcheckInitiateCommandDataV1`. `entity_id` is the batch id.
    BatchServiceSpellcheckInitiateCommandDataV1 [required] {
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchServiceSpellcheckInitiateCommandDataV1.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `language: str`, required (Python `BatchServiceSpellcheckInitiateCommandDataV1.language`)
        language: String,
    }
);
base_event!(
    /// `BatchServiceCJAssessmentInitiateCommandDataV1`.
    BatchServiceCjAssessmentInitiateCommandDataV1 [required] {
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchServiceCJAssessmentInitiateCommandDataV1.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `language: str`, required (Python `BatchServiceCJAssessmentInitiateCommandDataV1.language`)
        language: String,
        /// `course_code: CourseCode`, required (Python `BatchServiceCJAssessmentInitiateCommandDataV1.course_code`)
        course_code: CourseCode,
        /// `student_prompt_ref: StorageReferenceMetadata | None`, default `None` (Python `BatchServiceCJAssessmentInitiateCommandDataV1.student_prompt_ref`)
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
        /// `class_type: str`, required (Python `BatchServiceCJAssessmentInitiateCommandDataV1.class_type`)
        class_type: String,
        /// `assignment_id: str | None`, default `None`, constraints `max_length=100` (Python `BatchServiceCJAssessmentInitiateCommandDataV1.assignment_id`)
        #[serde(default)]
        assignment_id: Option<BoundedString<0, 100>>,
    }
);
base_event!(
    /// `BatchServiceAIFeedbackInitiateCommandDataV1`.
    BatchServiceAiFeedbackInitiateCommandDataV1 [required] {
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchServiceAIFeedbackInitiateCommandDataV1.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `language: str`, required (Python `BatchServiceAIFeedbackInitiateCommandDataV1.language`)
        language: String,
        /// `course_code: CourseCode`, required (Python `BatchServiceAIFeedbackInitiateCommandDataV1.course_code`)
        course_code: CourseCode,
        /// `student_prompt_ref: StorageReferenceMetadata | None`, default `None` (Python `BatchServiceAIFeedbackInitiateCommandDataV1.student_prompt_ref`)
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
        /// `class_type: str`, required (Python `BatchServiceAIFeedbackInitiateCommandDataV1.class_type`)
        class_type: String,
        /// `owner_user_id: str`, required (Python `BatchServiceAIFeedbackInitiateCommandDataV1.owner_user_id`)
        owner_user_id: String,
    }
);
base_event!(
    /// `BatchServiceNLPInitiateCommandDataV1`.
    BatchServiceNlpInitiateCommandDataV1 [required] {
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchServiceNLPInitiateCommandDataV1.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `language: str`, required (Python `BatchServiceNLPInitiateCommandDataV1.language`)
        language: String,
    }
);
base_event!(
    /// `BatchServiceNLPInitiateCommandDataV2`.
    BatchServiceNlpInitiateCommandDataV2 [required] {
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchServiceNLPInitiateCommandDataV2.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `language: str`, required (Python `BatchServiceNLPInitiateCommandDataV2.language`)
        language: String,
        /// `student_prompt_ref: StorageReferenceMetadata | None`, default `None` (Python `BatchServiceNLPInitiateCommandDataV2.student_prompt_ref`)
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
    }
);
base_event!(
    /// `BatchServiceStudentMatchingInitiateCommandDataV1`.
    BatchServiceStudentMatchingInitiateCommandDataV1 [required] {
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchServiceStudentMatchingInitiateCommandDataV1.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `class_id: str`, required (Python `BatchServiceStudentMatchingInitiateCommandDataV1.class_id`)
        class_id: String,
        /// `course_code: CourseCode`, required (Python `BatchServiceStudentMatchingInitiateCommandDataV1.course_code`)
        course_code: CourseCode,
    }
);
base_event!(
    /// `BatchNlpProcessingRequestedV1` (deprecated; ELS → NLP).
    BatchNlpProcessingRequestedV1 [required] {
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchNlpProcessingRequestedV1.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `language: str`, required (Python `BatchNlpProcessingRequestedV1.language`)
        language: String,
        /// `batch_id: str`, required (Python `BatchNlpProcessingRequestedV1.batch_id`)
        batch_id: String,
    }
);
base_event!(
    /// `BatchNlpProcessingRequestedV2` (ELS → NLP).
    BatchNlpProcessingRequestedV2 [required] {
        /// `essays_to_process: list[EssayProcessingInputRefV1]`, required (Python `BatchNlpProcessingRequestedV2.essays_to_process`)
        essays_to_process: Vec<EssayProcessingInputRefV1>,
        /// `language: str`, required (Python `BatchNlpProcessingRequestedV2.language`)
        language: String,
        /// `batch_id: str`, required (Python `BatchNlpProcessingRequestedV2.batch_id`)
        batch_id: String,
        /// `student_prompt_ref: StorageReferenceMetadata | None`, default `None` (Python `BatchNlpProcessingRequestedV2.student_prompt_ref`)
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
    }
);
