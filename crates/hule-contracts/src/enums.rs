//! The string enums of the original `common_core` that event payloads use, with their exact wire values.

use serde::{Deserialize, Serialize};

/// Declares a string enum with its exact wire values, `as_str`, and the list of all values.
macro_rules! str_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($variant:ident = $value:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(
                #[doc = concat!("`", $value, "`")]
                #[serde(rename = $value)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire value.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $value),+ }
            }

            /// Looks a value up by its wire form.
            pub fn from_wire(value: &str) -> Option<Self> {
                match value { $($value => Some($name::$variant),)+ _ => None }
            }
        }

        /// A string schema listing the wire values.
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": concat!($($doc),*).trim(),
                    "type": "string",
                    "enum": [$($value),+],
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// System-level lifecycle stage (`ProcessingStage`).
    ProcessingStage { Pending = "pending", Initialized = "initialized", Processing = "processing",
    Completed = "completed", Failed = "failed", Cancelled = "cancelled" }
);

impl ProcessingStage {
    /// `terminal()` of the original: completed, failed, cancelled.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

str_enum!(
    /// Generic processing status (`ProcessingStatus`).
    ProcessingStatus { Pending = "pending", InProgress = "in_progress", Completed = "completed", Failed = "failed" }
);

str_enum!(
    /// Batch status (`BatchStatus`).
    BatchStatus {
        AwaitingContentValidation = "awaiting_content_validation",
        ContentIngestionFailed = "content_ingestion_failed",
        AwaitingPipelineConfiguration = "awaiting_pipeline_configuration",
        ReadyForPipelineExecution = "ready_for_pipeline_execution",
        ProcessingPipelines = "processing_pipelines",
        AwaitingStudentValidation = "awaiting_student_validation",
        StudentValidationCompleted = "student_validation_completed",
        ValidationTimeoutProcessed = "validation_timeout_processed",
        CompletedSuccessfully = "completed_successfully",
        CompletedWithFailures = "completed_with_failures",
        FailedCritically = "failed_critically",
        Cancelled = "cancelled",
    }
);

str_enum!(
    /// Fine-grained essay status (`EssayStatus`).
    EssayStatus {
        Uploaded = "uploaded", TextExtracted = "text_extracted", ContentIngesting = "content_ingester",
        ContentIngestionFailed = "content_ingestion_failed", ReadyForProcessing = "ready_for_processing",
        AwaitingSpellcheck = "awaiting_spellcheck", SpellcheckingInProgress = "spellchecking_in_progress",
        SpellcheckedSuccess = "spellchecked_success", SpellcheckFailed = "spellcheck_failed",
        AwaitingNlp = "awaiting_nlp", NlpInProgress = "nlp_processing_in_progress", NlpSuccess = "nlp_success",
        NlpFailed = "nlp_failed", AwaitingAiFeedback = "awaiting_ai_feedback",
        AiFeedbackInProgress = "ai_feedback_processing_in_progress", AiFeedbackSuccess = "ai_feedback_success",
        AiFeedbackFailed = "ai_feedback_failed", AwaitingEditorRevision = "awaiting_editor_revision",
        EditorRevisionInProgress = "editor_revision_processing_in_progress",
        EditorRevisionSuccess = "editor_revision_success", EditorRevisionFailed = "editor_revision_failed",
        AwaitingGrammarCheck = "awaiting_grammar_check", GrammarCheckInProgress = "grammar_check_processing_in_progress",
        GrammarCheckSuccess = "grammar_check_success", GrammarCheckFailed = "grammar_check_failed",
        AwaitingCjAssessment = "awaiting_cj_assessment", CjAssessmentInProgress = "cj_assessment_processing_in_progress",
        CjAssessmentSuccess = "cj_assessment_success", CjAssessmentFailed = "cj_assessment_failed",
        AllProcessingCompleted = "all_processing_completed", EssayCriticalFailure = "essay_critical_failure",
    }
);

str_enum!(
    /// Pipeline phase (`PhaseName`).
    PhaseName { Spellcheck = "spellcheck", AiFeedback = "ai_feedback", CjAssessment = "cj_assessment", Nlp = "nlp",
    StudentMatching = "student_matching" }
);

str_enum!(
    /// Content kinds stored in the Content Service (`ContentType`).
    ContentType {
        OriginalEssay = "original_essay", CorrectedText = "corrected_text", ProcessingLog = "processing_log",
        NlpMetricsJson = "nlp_metrics_json", StudentFacingAiFeedbackText = "student_facing_ai_feedback_text",
        AiEditorRevisionText = "ai_editor_revision_text", AiDetailedAnalysisJson = "ai_detailed_analysis_json",
        GrammarAnalysisJson = "grammar_analysis_json", CjResultsJson = "cj_results_json",
        RawUploadBlob = "raw_upload_blob", ExtractedPlaintext = "extracted_plaintext",
        StudentPromptText = "student_prompt_text",
    }
);

str_enum!(
    /// Course codes (`CourseCode`).
    CourseCode { Eng5 = "ENG5", Eng6 = "ENG6", Eng7 = "ENG7", Sv1 = "SV1", Sv2 = "SV2", Sv3 = "SV3" }
);

str_enum!(
    /// File validation failure codes (`FileValidationErrorCode`).
    FileValidationErrorCode {
        EmptyContent = "EMPTY_CONTENT", ContentTooShort = "CONTENT_TOO_SHORT", ContentTooLong = "CONTENT_TOO_LONG",
        RawStorageFailed = "RAW_STORAGE_FAILED", TextExtractionFailed = "TEXT_EXTRACTION_FAILED",
        UnknownValidationError = "UNKNOWN_VALIDATION_ERROR",
    }
);

str_enum!(
    /// Every error code `ErrorDetail.error_code` accepts: the union of `ErrorCode` and the seven service enums.
    ErrorCode {
        UnknownError = "UNKNOWN_ERROR", ValidationError = "VALIDATION_ERROR", ResourceNotFound = "RESOURCE_NOT_FOUND",
        ConfigurationError = "CONFIGURATION_ERROR", ExternalServiceError = "EXTERNAL_SERVICE_ERROR",
        KafkaPublishError = "KAFKA_PUBLISH_ERROR", ContentServiceError = "CONTENT_SERVICE_ERROR",
        SpellcheckServiceError = "SPELLCHECK_SERVICE_ERROR", NlpServiceError = "NLP_SERVICE_ERROR",
        AiFeedbackServiceError = "AI_FEEDBACK_SERVICE_ERROR", CjAssessmentServiceError = "CJ_ASSESSMENT_SERVICE_ERROR",
        LlmProviderServiceError = "LLM_PROVIDER_SERVICE_ERROR", MissingRequiredField = "MISSING_REQUIRED_FIELD",
        InvalidConfiguration = "INVALID_CONFIGURATION", Timeout = "TIMEOUT", ConnectionError = "CONNECTION_ERROR",
        ServiceUnavailable = "SERVICE_UNAVAILABLE", RateLimit = "RATE_LIMIT", QuotaExceeded = "QUOTA_EXCEEDED",
        AuthenticationError = "AUTHENTICATION_ERROR", AuthorizationError = "AUTHORIZATION_ERROR",
        InvalidApiKey = "INVALID_API_KEY", InvalidRequest = "INVALID_REQUEST", InvalidResponse = "INVALID_RESPONSE",
        ParsingError = "PARSING_ERROR", CircuitBreakerOpen = "CIRCUIT_BREAKER_OPEN", RequestQueued = "REQUEST_QUEUED",
        ProcessingError = "PROCESSING_ERROR", InitializationFailed = "INITIALIZATION_FAILED",
        CourseNotFound = "COURSE_NOT_FOUND", CourseValidationError = "COURSE_VALIDATION_ERROR",
        MultipleCourseError = "MULTIPLE_COURSE_ERROR", ClassNotFound = "CLASS_NOT_FOUND",
        StudentNotFound = "STUDENT_NOT_FOUND", EmptyContent = "EMPTY_CONTENT", ContentTooShort = "CONTENT_TOO_SHORT",
        ContentTooLong = "CONTENT_TOO_LONG", RawStorageFailed = "RAW_STORAGE_FAILED",
        TextExtractionFailed = "TEXT_EXTRACTION_FAILED", UnknownValidationError = "UNKNOWN_VALIDATION_ERROR",
        SpellEventCorrelationError = "SPELL_EVENT_CORRELATION_ERROR",
        LlmProviderUnavailable = "LLM_PROVIDER_UNAVAILABLE", LlmProviderRateLimit = "LLM_PROVIDER_RATE_LIMIT",
        LlmProviderTimeout = "LLM_PROVIDER_TIMEOUT", LlmProviderApiError = "LLM_PROVIDER_API_ERROR",
        LlmInvalidPrompt = "LLM_INVALID_PROMPT", LlmContentTooLong = "LLM_CONTENT_TOO_LONG",
        LlmInvalidConfig = "LLM_INVALID_CONFIG", LlmQueueFull = "LLM_QUEUE_FULL", LlmInternalError = "LLM_INTERNAL_ERROR",
        LlmCallbackTopicMissing = "LLM_CALLBACK_TOPIC_MISSING", LlmInvalidCallbackTopic = "LLM_INVALID_CALLBACK_TOPIC",
        LlmParsingError = "LLM_PARSING_ERROR", LlmInvalidResponse = "LLM_INVALID_RESPONSE",
        LlmCostLimitExceeded = "LLM_COST_LIMIT_EXCEEDED", LlmConfigurationError = "LLM_CONFIGURATION_ERROR",
        BcsPipelineDependencyResolutionFailed = "BCS_PIPELINE_DEPENDENCY_RESOLUTION_FAILED",
        BcsPipelineDependencyCycleDetected = "BCS_PIPELINE_DEPENDENCY_CYCLE_DETECTED",
        BcsPipelineCompatibilityFailed = "BCS_PIPELINE_COMPATIBILITY_FAILED",
        CjInsufficientComparisons = "CJ_INSUFFICIENT_COMPARISONS",
        CjScoreConvergenceFailed = "CJ_SCORE_CONVERGENCE_FAILED", CjComparisonImbalance = "CJ_COMPARISON_IMBALANCE",
        CjCallbackCorrelationFailed = "CJ_CALLBACK_CORRELATION_FAILED",
    }
);

str_enum!(
    /// How a student association was validated (`AssociationValidationMethod`).
    AssociationValidationMethod { Human = "human", Timeout = "timeout", Auto = "auto" }
);

str_enum!(
    /// LLM providers (`LLMProviderType`).
    LlmProviderType { Anthropic = "anthropic", OpenAi = "openai", Google = "google", OpenRouter = "openrouter",
    Mock = "mock" }
);

str_enum!(
    /// Winner of a pairwise comparison (`EssayComparisonWinner`).
    EssayComparisonWinner { EssayA = "Essay A", EssayB = "Essay B", Error = "Error" }
);

str_enum!(
    /// WebSocket notification category (`WebSocketEventCategory`).
    WebSocketEventCategory { BatchProgress = "batch_progress", ProcessingResults = "processing_results",
    FileOperations = "file_operations", ClassManagement = "class_management", StudentWorkflow = "student_workflow",
    SystemAlerts = "system_alerts" }
);

str_enum!(
    /// Teacher notification priority (`NotificationPriority`).
    NotificationPriority { Critical = "critical", Immediate = "immediate", High = "high", Standard = "standard",
    Low = "low" }
);

str_enum!(
    /// Why a login failed (`LoginFailureReason`).
    LoginFailureReason { UserNotFound = "user_not_found", InvalidPassword = "invalid_password",
    AccountLocked = "account_locked", EmailUnverified = "email_unverified", RateLimitExceeded = "rate_limit_exceeded" }
);

str_enum!(
    /// Confidence label of a CJ result (`Literal["HIGH","MID","LOW"]`).
    ConfidenceLabel { High = "HIGH", Mid = "MID", Low = "LOW" }
);

str_enum!(
    /// Category of a notification e-mail.
    EmailCategory { Verification = "verification", PasswordReset = "password_reset", Receipt = "receipt",
    TeacherNotification = "teacher_notification", System = "system" }
);

str_enum!(
    /// Kind of an entitlements subject (`Literal['org','user']`).
    SubjectType { Org = "org", User = "user" }
);

/// `ProcessingUpdate.status`: an `EssayStatus` or a `BatchStatus`, never a `ProcessingStage`.
///
/// `content_ingestion_failed` exists in both enums; like pydantic's left-to-right union it reads as the essay status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum EntityStatus {
    /// An essay status.
    Essay(EssayStatus),
    /// A batch status.
    Batch(BatchStatus),
}

impl EntityStatus {
    /// The wire value.
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityStatus::Essay(s) => s.as_str(),
            EntityStatus::Batch(s) => s.as_str(),
        }
    }
}

impl<'de> Deserialize<'de> for EntityStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = std::borrow::Cow::<'de, str>::deserialize(d)?;
        if let Some(s) = EssayStatus::from_wire(&value) {
            return Ok(EntityStatus::Essay(s));
        }
        if let Some(s) = BatchStatus::from_wire(&value) {
            return Ok(EntityStatus::Batch(s));
        }
        Err(serde::de::Error::custom(format_args!(
            "`{value}` is neither an EssayStatus nor a BatchStatus value (ProcessingStage values are not accepted)"
        )))
    }
}

/// Every `EssayStatus` and `BatchStatus` value, as one string enum (the shared value once).
impl schemars::JsonSchema for EntityStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EntityStatus".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut values: Vec<&str> = EssayStatus::ALL.iter().map(|s| s.as_str()).collect();
        for b in BatchStatus::ALL {
            if !values.contains(&b.as_str()) {
                values.push(b.as_str());
            }
        }
        schemars::json_schema!({
            "description": "An EssayStatus or a BatchStatus value (never a ProcessingStage value).",
            "type": "string",
            "enum": values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_union_rejects_processing_stage_values() {
        let ok: EntityStatus =
            serde_json::from_str("\"completed_successfully\"").expect("batch status");
        assert_eq!(ok, EntityStatus::Batch(BatchStatus::CompletedSuccessfully));
        let essay: EntityStatus =
            serde_json::from_str("\"content_ingestion_failed\"").expect("shared value");
        assert_eq!(
            essay,
            EntityStatus::Essay(EssayStatus::ContentIngestionFailed)
        );
        assert!(serde_json::from_str::<EntityStatus>("\"completed\"").is_err());
        assert_eq!(EssayStatus::ALL.len(), 31);
    }
}
