//! Comparative-judgement payloads: the CJ request, the thin completion and failure events, the rich result.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::base::{
    EssayProcessingInputRefV1, JsonMap, ProcessingSummary, StorageReferenceMetadata,
};
use super::defaults::*;
use crate::constrained::{BoundedString, LetterGrade, PositiveInt, Temperature, UnitInterval};
use crate::enums::{ConfidenceLabel, CourseCode};
use crate::payloads::SystemProcessingMetadata;
use crate::time::Timestamp;

/// `LLMConfigOverrides`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct LlmConfigOverrides {
    #[serde(default)]
    pub model_override: Option<String>,
    #[serde(default)]
    pub temperature_override: Option<Temperature>,
    #[serde(default)]
    pub max_tokens_override: Option<PositiveInt>,
    #[serde(default)]
    pub provider_override: Option<String>,
    #[serde(default)]
    pub system_prompt_override: Option<String>,
    #[serde(default)]
    pub judge_rubric_override: Option<String>,
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    #[serde(default)]
    pub output_verbosity: Option<String>,
}

base_event!(
    /// `ELS_CJAssessmentRequestV1` (ELS → CJ). `entity_id` is the batch id.
    ElsCjAssessmentRequestV1 ["e_els_cj_assessment_requested"] {
        system_metadata: SystemProcessingMetadata,
        essays_for_cj: Vec<EssayProcessingInputRefV1>,
        language: String,
        course_code: CourseCode,
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
        #[serde(default)]
        llm_config_overrides: Option<LlmConfigOverrides>,
        #[serde(default)]
        assignment_id: Option<BoundedString<0, 100>>,
        user_id: String,
        #[serde(default)]
        org_id: Option<String>,
    }
);

processing_update!(
    /// `CJAssessmentCompletedV1`: thin CJ completion (CJ → ELS, BCS).
    CjAssessmentCompletedV1 ["e_cj_assessment_completed"] {
        cj_assessment_job_id: String,
        #[serde(default)]
        processing_summary: ProcessingSummary,
    }
);

processing_update!(
    /// `CJAssessmentFailedV1`: thin CJ failure; details in `system_metadata.error_info`.
    CjAssessmentFailedV1 ["e_cj_assessment_failed"] { cj_assessment_job_id: String }
);

/// `EssayResultV1`: one essay's CJ result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayResultV1 {
    pub essay_id: String,
    pub normalized_score: UnitInterval,
    pub letter_grade: LetterGrade,
    pub confidence_score: UnitInterval,
    pub confidence_label: ConfidenceLabel,
    pub bt_score: f64,
    pub rank: PositiveInt,
    #[serde(default)]
    pub is_anchor: bool,
    #[serde(default)]
    pub feedback_uri: Option<String>,
    #[serde(default)]
    pub metrics_uri: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// How grades were calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationMethod {
    /// Calibrated against anchor essays.
    Anchor,
    /// The default grade boundaries.
    Default,
}

/// `AssessmentResultV1.assessment_metadata`: the keys CJ fills, and any others kept as given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct AssessmentMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_essays_used: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_method: Option<CalibrationMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_grade_distribution: Option<BTreeMap<String, i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_duration_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_code: Option<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

base_event!(
    /// `AssessmentResultV1`: the rich CJ result (CJ → RAS).
    AssessmentResultV1 ["e_assessment_result_published"] {
        batch_id: String,
        cj_assessment_job_id: String,
        #[serde(default)]
        assignment_id: Option<BoundedString<0, 100>>,
        assessment_method: String,
        model_used: String,
        model_provider: String,
        #[serde(default)]
        model_version: Option<String>,
        essay_results: Vec<EssayResultV1>,
        #[serde(default)]
        assessment_metadata: AssessmentMetadata,
        #[serde(default)]
        assessed_at: Timestamp,
    }
);
