//! LLM provider payloads: request lifecycle, cost and usage, and the comparison callback.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::base::{ErrorDetail, JsonMap};
use crate::constrained::{BoundedString, Confidence5, NonNegativeF64, NonNegativeInt};
use crate::enums::{EssayComparisonWinner, LlmProviderType};
use crate::time::Timestamp;

/// `TokenUsage`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct TokenUsage {
    /// `prompt_tokens: int`, default `0`, constraints `ge=0` (Python `TokenUsage.prompt_tokens`)
    #[serde(default)]
    pub prompt_tokens: NonNegativeInt,
    /// `completion_tokens: int`, default `0`, constraints `ge=0` (Python `TokenUsage.completion_tokens`)
    #[serde(default)]
    pub completion_tokens: NonNegativeInt,
    /// `total_tokens: int`, default `0`, constraints `ge=0` (Python `TokenUsage.total_tokens`)
    #[serde(default)]
    pub total_tokens: NonNegativeInt,
}

/// `LLMComparisonResultV1`: either all success fields (`winner`, `justification`, `confidence`) or `error_detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "wire::LlmComparisonResultWire")]
pub struct LlmComparisonResultV1 {
    /// `request_id: str`, required (Python `LLMComparisonResultV1.request_id`)
    pub request_id: String,
    /// `correlation_id: UUID`, required (Python `LLMComparisonResultV1.correlation_id`)
    pub correlation_id: Uuid,
    /// `winner: opt[EssayComparisonWinner]`, default `None` (Python `LLMComparisonResultV1.winner`)
    pub winner: Option<EssayComparisonWinner>,
    /// `justification: opt`, constraints `str] = None [max_length=500` (Python `LLMComparisonResultV1.justification`)
    pub justification: Option<BoundedString<0, 500>>,
    /// `confidence: opt`, constraints `float] = None [ge=1.0, le=5.0` (Python `LLMComparisonResultV1.confidence`)
    pub confidence: Option<Confidence5>,
    /// `error_detail: opt[ErrorDetail]`, default `None` (Python `LLMComparisonResultV1.error_detail`)
    pub error_detail: Option<ErrorDetail>,
    /// `provider: LLMProviderType`, required (Python `LLMComparisonResultV1.provider`)
    pub provider: LlmProviderType,
    /// `model: str`, required (Python `LLMComparisonResultV1.model`)
    pub model: String,
    /// `response_time_ms: int`, required, constraints `ge=0` (Python `LLMComparisonResultV1.response_time_ms`)
    pub response_time_ms: NonNegativeInt,
    /// `token_usage: TokenUsage`, default `TokenUsage()` (Python `LLMComparisonResultV1.token_usage`)
    pub token_usage: TokenUsage,
    /// `cost_estimate: float`, required, constraints `ge=0.0` (Python `LLMComparisonResultV1.cost_estimate`)
    pub cost_estimate: NonNegativeF64,
    /// `requested_at: datetime`, required (Python `LLMComparisonResultV1.requested_at`)
    pub requested_at: Timestamp,
    /// `completed_at: datetime`, required (Python `LLMComparisonResultV1.completed_at`)
    pub completed_at: Timestamp,
    /// `trace_id: opt[str]`, default `None` (Python `LLMComparisonResultV1.trace_id`)
    pub trace_id: Option<String>,
    /// `request_metadata: dict[str, Any]`, default `dict()` (Python `LLMComparisonResultV1.request_metadata`)
    pub request_metadata: JsonMap,
}

mod wire {
    //! The unchecked wire form of `LLMComparisonResultV1`, before its model validator runs.
    use super::*;

    #[derive(Deserialize, JsonSchema)]
    #[schemars(rename = "LlmComparisonResultV1")]
    #[schemars(extend("oneOf" = [
        {
            "title": "success",
            "required": ["winner", "justification", "confidence"],
            "properties": {
                "winner": {"not": {"type": "null"}},
                "justification": {"not": {"type": "null"}},
                "confidence": {"not": {"type": "null"}},
                "error_detail": {"type": "null"}
            }
        },
        {
            "title": "error",
            "required": ["error_detail"],
            "properties": {
                "winner": {"type": "null"},
                "justification": {"type": "null"},
                "confidence": {"type": "null"},
                "error_detail": {"not": {"type": "null"}}
            }
        }
    ]))]
    pub struct LlmComparisonResultWire {
        /// `request_id: str`, required (Python `LLMComparisonResultV1.request_id`)
        request_id: String,
        /// `correlation_id: UUID`, required (Python `LLMComparisonResultV1.correlation_id`)
        correlation_id: Uuid,
        /// `winner: opt[EssayComparisonWinner]`, default `None` (Python `LLMComparisonResultV1.winner`)
        #[serde(default)]
        winner: Option<EssayComparisonWinner>,
        /// `justification: opt`, constraints `str] = None [max_length=500` (Python `LLMComparisonResultV1.justification`)
        #[serde(default)]
        justification: Option<BoundedString<0, 500>>,
        /// `confidence: opt`, constraints `float] = None [ge=1.0, le=5.0` (Python `LLMComparisonResultV1.confidence`)
        #[serde(default)]
        confidence: Option<Confidence5>,
        /// `error_detail: opt[ErrorDetail]`, default `None` (Python `LLMComparisonResultV1.error_detail`)
        #[serde(default)]
        error_detail: Option<ErrorDetail>,
        /// `provider: LLMProviderType`, required (Python `LLMComparisonResultV1.provider`)
        provider: LlmProviderType,
        /// `model: str`, required (Python `LLMComparisonResultV1.model`)
        model: String,
        /// `response_time_ms: int`, required, constraints `ge=0` (Python `LLMComparisonResultV1.response_time_ms`)
        response_time_ms: NonNegativeInt,
        /// `token_usage: TokenUsage`, default `TokenUsage()` (Python `LLMComparisonResultV1.token_usage`)
        #[serde(default)]
        token_usage: TokenUsage,
        /// `cost_estimate: float`, required, constraints `ge=0.0` (Python `LLMComparisonResultV1.cost_estimate`)
        cost_estimate: NonNegativeF64,
        /// `requested_at: datetime`, required (Python `LLMComparisonResultV1.requested_at`)
        requested_at: Timestamp,
        /// `completed_at: datetime`, required (Python `LLMComparisonResultV1.completed_at`)
        completed_at: Timestamp,
        /// `trace_id: opt[str]`, default `None` (Python `LLMComparisonResultV1.trace_id`)
        #[serde(default)]
        trace_id: Option<String>,
        /// `request_metadata: dict[str, Any]`, default `dict()` (Python `LLMComparisonResultV1.request_metadata`)
        #[serde(default)]
        request_metadata: JsonMap,
    }

    impl TryFrom<LlmComparisonResultWire> for LlmComparisonResultV1 {
        type Error = String;
        fn try_from(w: LlmComparisonResultWire) -> Result<Self, String> {
            let success = [
                w.winner.is_some(),
                w.justification.is_some(),
                w.confidence.is_some(),
            ];
            let any_success = success.iter().any(|b| *b);
            let all_success = success.iter().all(|b| *b);
            match (any_success, w.error_detail.is_some()) {
                (true, true) => {
                    return Err("success fields and error_detail are mutually exclusive".into())
                }
                (false, false) => {
                    return Err("either the success fields or error_detail must be set".into())
                }
                (true, false) if !all_success => {
                    return Err(
                        "winner, justification and confidence must all be set together".into(),
                    )
                }
                _ => {}
            }
            Ok(LlmComparisonResultV1 {
                request_id: w.request_id,
                correlation_id: w.correlation_id,
                winner: w.winner,
                justification: w.justification,
                confidence: w.confidence,
                error_detail: w.error_detail,
                provider: w.provider,
                model: w.model,
                response_time_ms: w.response_time_ms,
                token_usage: w.token_usage,
                cost_estimate: w.cost_estimate,
                requested_at: w.requested_at,
                completed_at: w.completed_at,
                trace_id: w.trace_id,
                request_metadata: w.request_metadata,
            })
        }
    }
}

/// `LLMCostAlertV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmCostAlertV1 {
    /// `alert_type: str`, required (Python `LLMCostAlertV1.alert_type`)
    pub alert_type: String,
    /// `provider: LLMProviderType | None`, default `None` (Python `LLMCostAlertV1.provider`)
    #[serde(default)]
    pub provider: Option<LlmProviderType>,
    /// `current_cost: float`, required (Python `LLMCostAlertV1.current_cost`)
    pub current_cost: f64,
    /// `threshold: float`, required (Python `LLMCostAlertV1.threshold`)
    pub threshold: f64,
    /// `period: str`, required (Python `LLMCostAlertV1.period`)
    pub period: String,
    /// `metadata: dict[str, Any]`, default `dict()` (Python `LLMCostAlertV1.metadata`)
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMCostTrackingV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmCostTrackingV1 {
    /// `correlation_id: UUID`, required (Python `LLMCostTrackingV1.correlation_id`)
    pub correlation_id: Uuid,
    /// `provider: LLMProviderType`, required (Python `LLMCostTrackingV1.provider`)
    pub provider: LlmProviderType,
    /// `model: str`, required (Python `LLMCostTrackingV1.model`)
    pub model: String,
    /// `request_type: str`, required (Python `LLMCostTrackingV1.request_type`)
    pub request_type: String,
    /// `cost_estimate_usd: float`, required (Python `LLMCostTrackingV1.cost_estimate_usd`)
    pub cost_estimate_usd: f64,
    /// `token_usage: dict[str, int]`, required (Python `LLMCostTrackingV1.token_usage`)
    pub token_usage: BTreeMap<String, i64>,
    /// `user_id: str | None`, default `None` (Python `LLMCostTrackingV1.user_id`)
    #[serde(default)]
    pub user_id: Option<String>,
    /// `organization_id: str | None`, default `None` (Python `LLMCostTrackingV1.organization_id`)
    #[serde(default)]
    pub organization_id: Option<String>,
    /// `service_name: str`, required (Python `LLMCostTrackingV1.service_name`)
    pub service_name: String,
    /// `request_timestamp: datetime`, required (Python `LLMCostTrackingV1.request_timestamp`)
    pub request_timestamp: Timestamp,
    /// `response_time_ms: int`, required (Python `LLMCostTrackingV1.response_time_ms`)
    pub response_time_ms: i64,
    /// `metadata: dict[str, Any]`, default `dict()` (Python `LLMCostTrackingV1.metadata`)
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMProviderFailureV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmProviderFailureV1 {
    /// `provider: LLMProviderType`, required (Python `LLMProviderFailureV1.provider`)
    pub provider: LlmProviderType,
    /// `failure_type: str`, required (Python `LLMProviderFailureV1.failure_type`)
    pub failure_type: String,
    /// `correlation_id: UUID`, required (Python `LLMProviderFailureV1.correlation_id`)
    pub correlation_id: Uuid,
    /// `error_details: str`, required (Python `LLMProviderFailureV1.error_details`)
    pub error_details: String,
    /// `circuit_breaker_opened: bool`, default `False` (Python `LLMProviderFailureV1.circuit_breaker_opened`)
    #[serde(default)]
    pub circuit_breaker_opened: bool,
    /// `metadata: dict[str, Any]`, default `dict()` (Python `LLMProviderFailureV1.metadata`)
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMRequestCompletedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmRequestCompletedV1 {
    /// `provider: LLMProviderType`, required (Python `LLMRequestCompletedV1.provider`)
    pub provider: LlmProviderType,
    /// `request_type: str`, required (Python `LLMRequestCompletedV1.request_type`)
    pub request_type: String,
    /// `correlation_id: UUID`, required (Python `LLMRequestCompletedV1.correlation_id`)
    pub correlation_id: Uuid,
    /// `success: bool`, required (Python `LLMRequestCompletedV1.success`)
    pub success: bool,
    /// `response_time_ms: int`, required (Python `LLMRequestCompletedV1.response_time_ms`)
    pub response_time_ms: i64,
    /// `error_message: str | None`, default `None` (Python `LLMRequestCompletedV1.error_message`)
    #[serde(default)]
    pub error_message: Option<String>,
    /// `token_usage: opt[dict[str, int]]`, default `None` (Python `LLMRequestCompletedV1.token_usage`)
    #[serde(default)]
    pub token_usage: Option<BTreeMap<String, i64>>,
    /// `cost_estimate: float | None`, default `None` (Python `LLMRequestCompletedV1.cost_estimate`)
    #[serde(default)]
    pub cost_estimate: Option<f64>,
    /// `metadata: dict[str, Any]`, default `dict()` (Python `LLMRequestCompletedV1.metadata`)
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMRequestStartedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmRequestStartedV1 {
    /// `provider: LLMProviderType`, required (Python `LLMRequestStartedV1.provider`)
    pub provider: LlmProviderType,
    /// `request_type: str`, required (Python `LLMRequestStartedV1.request_type`)
    pub request_type: String,
    /// `correlation_id: UUID`, required (Python `LLMRequestStartedV1.correlation_id`)
    pub correlation_id: Uuid,
    /// `user_id: str | None`, default `None` (Python `LLMRequestStartedV1.user_id`)
    #[serde(default)]
    pub user_id: Option<String>,
    /// `metadata: dict[str, Any]`, default `dict()` (Python `LLMRequestStartedV1.metadata`)
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMUsageAnalyticsV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmUsageAnalyticsV1 {
    /// `period_start: datetime`, required (Python `LLMUsageAnalyticsV1.period_start`)
    pub period_start: Timestamp,
    /// `period_end: datetime`, required (Python `LLMUsageAnalyticsV1.period_end`)
    pub period_end: Timestamp,
    /// `provider_stats: dict[str, dict[str, Any]]`, required (Python `LLMUsageAnalyticsV1.provider_stats`)
    pub provider_stats: BTreeMap<String, JsonMap>,
    /// `total_requests: int`, required (Python `LLMUsageAnalyticsV1.total_requests`)
    pub total_requests: i64,
    /// `successful_requests: int`, required (Python `LLMUsageAnalyticsV1.successful_requests`)
    pub successful_requests: i64,
    /// `failed_requests: int`, required (Python `LLMUsageAnalyticsV1.failed_requests`)
    pub failed_requests: i64,
    /// `total_tokens: dict[str, int]`, required (Python `LLMUsageAnalyticsV1.total_tokens`)
    pub total_tokens: BTreeMap<String, i64>,
    /// `total_cost: float`, required (Python `LLMUsageAnalyticsV1.total_cost`)
    pub total_cost: f64,
    /// `average_response_time_ms: float`, required (Python `LLMUsageAnalyticsV1.average_response_time_ms`)
    pub average_response_time_ms: f64,
    /// `metadata: dict[str, Any]`, default `dict()` (Python `LLMUsageAnalyticsV1.metadata`)
    #[serde(default)]
    pub metadata: JsonMap,
}
