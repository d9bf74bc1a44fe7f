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
    /// `model_override: str | None`, default `None` (Python `LLMConfigOverrides.model_override`)
    #[serde(default)]
    pub model_override: Option<String>,
    /// `temperature_override: float | None`, default `None`, constraints `ge=0.0, le=2.0` (Python `LLMConfigOverrides.temperature_override`)
    #[serde(default)]
    pub temperature_override: Option<Temperature>,
    /// `max_tokens_override: int | None`, default `None`, constraints `gt=0` (Python `LLMConfigOverrides.max_tokens_override`)
    #[serde(default)]
    pub max_tokens_override: Option<PositiveInt>,
    /// `provider_override: str | None`, default `None` (Python `LLMConfigOverrides.provider_override`)
    #[serde(default)]
    pub provider_override: Option<String>,
    /// `system_prompt_override: str | None`, default `None` (Python `LLMConfigOverrides.system_prompt_override`)
    #[serde(default)]
    pub system_prompt_override: Option<String>,
    /// `judge_rubric_override: str | None`, default `None` (Python `LLMConfigOverrides.judge_rubric_override`)
    #[serde(default)]
    pub judge_rubric_override: Option<String>,
    /// `reasoning_effort: str | None`, default `None` (Python `LLMConfigOverrides.reasoning_effort`)
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// `output_verbosity: str | None`, default `None` (Python `LLMConfigOverrides.output_verbosity`)
    #[serde(default)]
    pub output_verbosity: Option<String>,
}

base_event!(
    /// `ELS_CJAssessmentRequestV1` (ELS → CJ). `entity_id` is the batch id.
    ElsCjAssessmentRequestV1 ["e_els_cj_assessment_requested"] {
        /// `system_metadata: SystemProcessingMetadata`, required (Python `ELS_CJAssessmentRequestV1.system_metadata`)
        system_metadata: SystemProcessingMetadata,
        /// `essays_for_cj: list[EssayProcessingInputRefV1]`, required (Python `ELS_CJAssessmentRequestV1.essays_for_cj`)
        essays_for_cj: Vec<EssayProcessingInputRefV1>,
        /// `language: str`, required (Python `ELS_CJAssessmentRequestV1.language`)
        language: String,
        /// `course_code: CourseCode`, required (Python `ELS_CJAssessmentRequestV1.course_code`)
        course_code: CourseCode,
        /// `student_prompt_ref: StorageReferenceMetadata | None`, default `None` (Python `ELS_CJAssessmentRequestV1.student_prompt_ref`)
        #[serde(default)]
        student_prompt_ref: Option<StorageReferenceMetadata>,
        /// `llm_config_overrides: LLMConfigOverrides | None`, default `None` (Python `ELS_CJAssessmentRequestV1.llm_config_overrides`)
        #[serde(default)]
        llm_config_overrides: Option<LlmConfigOverrides>,
        /// `assignment_id: str | None`, default `None`, constraints `max_length=100` (Python `ELS_CJAssessmentRequestV1.assignment_id`)
        #[serde(default)]
        assignment_id: Option<BoundedString<0, 100>>,
        /// `user_id: str`, required (Python `ELS_CJAssessmentRequestV1.user_id`)
        user_id: String,
        /// `org_id: str | None`, default `None` (Python `ELS_CJAssessmentRequestV1.org_id`)
        #[serde(default)]
        org_id: Option<String>,
    }
);

processing_update!(
    /// `CJAssessmentCompletedV1`: thin CJ completion (CJ → ELS, BCS).
    CjAssessmentCompletedV1 ["e_cj_assessment_completed"] {
        /// `cj_assessment_job_id: str`, required (Python `CJAssessmentCompletedV1.cj_assessment_job_id`)
        cj_assessment_job_id: String,
        /// `processing_summary: dict[str, Any]`, default `{'total_essays': 0, 'successful': 0, 'failed': 0, 'successful_essay_ids': [], 'failed_essay_ids': [], 'processing_time_seconds': 0.0}` (Python `CJAssessmentCompletedV1.processing_summary`)
        #[serde(default)]
        processing_summary: ProcessingSummary,
    }
);

processing_update!(
    /// `CJAssessmentFailedV1`: thin CJ failure; details in `system_metadata.error_info`.
    CjAssessmentFailedV1 ["e_cj_assessment_failed"] {
        /// `cj_assessment_job_id: str`, required (Python `CJAssessmentFailedV1.cj_assessment_job_id`)
        cj_assessment_job_id: String,
    }
);

/// `EssayResultV1`: one essay's CJ result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayResultV1 {
    /// `essay_id: str`, required (Python `EssayResultV1.essay_id`)
    pub essay_id: String,
    /// `normalized_score: float`, required, constraints `ge=0.0, le=1.0` (Python `EssayResultV1.normalized_score`)
    pub normalized_score: UnitInterval,
    /// `letter_grade: str`, required, constraints `pattern='^([A-F][+-]?|U)$'` (Python `EssayResultV1.letter_grade`)
    pub letter_grade: LetterGrade,
    /// `confidence_score: float`, required, constraints `ge=0.0, le=1.0` (Python `EssayResultV1.confidence_score`)
    pub confidence_score: UnitInterval,
    /// `confidence_label: Literal['HIGH', 'MID', 'LOW']`, required (Python `EssayResultV1.confidence_label`)
    pub confidence_label: ConfidenceLabel,
    /// `bt_score: float`, required (Python `EssayResultV1.bt_score`)
    pub bt_score: f64,
    /// `rank: int`, required, constraints `gt=0` (Python `EssayResultV1.rank`)
    pub rank: PositiveInt,
    /// `is_anchor: bool`, default `False` (Python `EssayResultV1.is_anchor`)
    #[serde(default)]
    pub is_anchor: bool,
    /// `feedback_uri: str | None`, default `None` (Python `EssayResultV1.feedback_uri`)
    #[serde(default)]
    pub feedback_uri: Option<String>,
    /// `metrics_uri: str | None`, default `None` (Python `EssayResultV1.metrics_uri`)
    #[serde(default)]
    pub metrics_uri: Option<String>,
    /// `display_name: str | None`, default `None` (Python `EssayResultV1.display_name`)
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
    /// `anchor_essays_used` (Python `AssessmentMetadata.anchor_essays_used`; a model the reference's field lists leave out)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_essays_used: Option<i64>,
    /// `calibration_method` (Python `AssessmentMetadata.calibration_method`; a model the reference's field lists leave out)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_method: Option<CalibrationMethod>,
    /// `anchor_grade_distribution` (Python `AssessmentMetadata.anchor_grade_distribution`; a model the reference's field lists leave out)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_grade_distribution: Option<BTreeMap<String, i64>>,
    /// `comparison_count` (Python `AssessmentMetadata.comparison_count`; a model the reference's field lists leave out)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_count: Option<i64>,
    /// `processing_duration_seconds` (Python `AssessmentMetadata.processing_duration_seconds`; a model the reference's field lists leave out)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_duration_seconds: Option<f64>,
    /// `llm_temperature` (Python `AssessmentMetadata.llm_temperature`; a model the reference's field lists leave out)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_temperature: Option<f64>,
    /// `assignment_id` (Python `AssessmentMetadata.assignment_id`; a model the reference's field lists leave out)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<String>,
    /// `course_code` (Python `AssessmentMetadata.course_code`; a model the reference's field lists leave out)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_code: Option<String>,
    /// `extra` (Python `AssessmentMetadata.extra`; a model the reference's field lists leave out)
    #[serde(flatten)]
    pub extra: JsonMap,
}

base_event!(
    /// `AssessmentResultV1`: the rich CJ result (CJ → RAS).
    AssessmentResultV1 ["e_assessment_result_published"] {
        /// `batch_id: str`, required (Python `AssessmentResultV1.batch_id`)
        batch_id: String,
        /// `cj_assessment_job_id: str`, required (Python `AssessmentResultV1.cj_assessment_job_id`)
        cj_assessment_job_id: String,
        /// `assignment_id: str | None`, default `None`, constraints `max_length=100` (Python `AssessmentResultV1.assignment_id`)
        #[serde(default)]
        assignment_id: Option<BoundedString<0, 100>>,
        /// `assessment_method: str`, required (Python `AssessmentResultV1.assessment_method`)
        assessment_method: String,
        /// `model_used: str`, required (Python `AssessmentResultV1.model_used`)
        model_used: String,
        /// `model_provider: str`, required (Python `AssessmentResultV1.model_provider`)
        model_provider: String,
        /// `model_version: str | None`, default `None` (Python `AssessmentResultV1.model_version`)
        #[serde(default)]
        model_version: Option<String>,
        /// `essay_results: list[EssayResultV1]`, required (Python `AssessmentResultV1.essay_results`)
        essay_results: Vec<EssayResultV1>,
        /// `assessment_metadata: dict[str, Any]`, default `dict()` (Python `AssessmentResultV1.assessment_metadata`)
        #[serde(default)]
        assessment_metadata: AssessmentMetadata,
        /// `assessed_at: datetime`, default `now(UTC)` (Python `AssessmentResultV1.assessed_at`)
        #[serde(default)]
        assessed_at: Timestamp,
    }
);
