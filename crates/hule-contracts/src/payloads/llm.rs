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
    #[serde(default)]
    pub prompt_tokens: NonNegativeInt,
    #[serde(default)]
    pub completion_tokens: NonNegativeInt,
    #[serde(default)]
    pub total_tokens: NonNegativeInt,
}

/// `LLMComparisonResultV1`: either all success fields (`winner`, `justification`, `confidence`) or `error_detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "wire::LlmComparisonResultWire")]
pub struct LlmComparisonResultV1 {
    pub request_id: String,
    pub correlation_id: Uuid,
    pub winner: Option<EssayComparisonWinner>,
    pub justification: Option<BoundedString<0, 500>>,
    pub confidence: Option<Confidence5>,
    pub error_detail: Option<ErrorDetail>,
    pub provider: LlmProviderType,
    pub model: String,
    pub response_time_ms: NonNegativeInt,
    pub token_usage: TokenUsage,
    pub cost_estimate: NonNegativeF64,
    pub requested_at: Timestamp,
    pub completed_at: Timestamp,
    pub trace_id: Option<String>,
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
        request_id: String,
        correlation_id: Uuid,
        #[serde(default)]
        winner: Option<EssayComparisonWinner>,
        #[serde(default)]
        justification: Option<BoundedString<0, 500>>,
        #[serde(default)]
        confidence: Option<Confidence5>,
        #[serde(default)]
        error_detail: Option<ErrorDetail>,
        provider: LlmProviderType,
        model: String,
        response_time_ms: NonNegativeInt,
        #[serde(default)]
        token_usage: TokenUsage,
        cost_estimate: NonNegativeF64,
        requested_at: Timestamp,
        completed_at: Timestamp,
        #[serde(default)]
        trace_id: Option<String>,
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
    pub alert_type: String,
    #[serde(default)]
    pub provider: Option<LlmProviderType>,
    pub current_cost: f64,
    pub threshold: f64,
    pub period: String,
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMCostTrackingV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmCostTrackingV1 {
    pub correlation_id: Uuid,
    pub provider: LlmProviderType,
    pub model: String,
    pub request_type: String,
    pub cost_estimate_usd: f64,
    pub token_usage: BTreeMap<String, i64>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub organization_id: Option<String>,
    pub service_name: String,
    pub request_timestamp: Timestamp,
    pub response_time_ms: i64,
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMProviderFailureV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmProviderFailureV1 {
    pub provider: LlmProviderType,
    pub failure_type: String,
    pub correlation_id: Uuid,
    pub error_details: String,
    #[serde(default)]
    pub circuit_breaker_opened: bool,
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMRequestCompletedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmRequestCompletedV1 {
    pub provider: LlmProviderType,
    pub request_type: String,
    pub correlation_id: Uuid,
    pub success: bool,
    pub response_time_ms: i64,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub token_usage: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    pub cost_estimate: Option<f64>,
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMRequestStartedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmRequestStartedV1 {
    pub provider: LlmProviderType,
    pub request_type: String,
    pub correlation_id: Uuid,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub metadata: JsonMap,
}

/// `LLMUsageAnalyticsV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmUsageAnalyticsV1 {
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub provider_stats: BTreeMap<String, JsonMap>,
    pub total_requests: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
    pub total_tokens: BTreeMap<String, i64>,
    pub total_cost: f64,
    pub average_response_time_ms: f64,
    #[serde(default)]
    pub metadata: JsonMap,
}
