//! Result aggregation, notification and resource-accounting payloads.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::base::JsonMap;
use super::defaults::*;
use crate::constrained::NonNegativeInt;
use crate::enums::{BatchStatus, NotificationPriority, WebSocketEventCategory};
use crate::time::Timestamp;

/// `TeacherNotificationRequestedV1` (several services → websocket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TeacherNotificationRequestedV1 {
    pub teacher_id: String,
    pub notification_type: String,
    pub category: WebSocketEventCategory,
    pub priority: NotificationPriority,
    pub payload: JsonMap,
    #[serde(default)]
    pub action_required: bool,
    #[serde(default)]
    pub deadline_timestamp: Option<Timestamp>,
    pub correlation_id: String,
    #[serde(default)]
    pub batch_id: Option<String>,
    #[serde(default)]
    pub class_id: Option<String>,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `PhaseResultSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseResultSummary {
    pub phase_name: String,
    pub status: String,
    pub completed_count: i64,
    pub failed_count: i64,
    #[serde(default)]
    pub processing_time_seconds: Option<f64>,
}

processing_update!(
    /// `BatchResultsReadyV1` (RAS).
    BatchResultsReadyV1 ["e_batch_results_ready"] {
        batch_id: String,
        user_id: String,
        total_essays: i64,
        completed_essays: i64,
        phase_results: BTreeMap<String, PhaseResultSummary>,
        overall_status: BatchStatus,
        processing_duration_seconds: f64,
    }
);

processing_update!(
    /// `BatchAssessmentCompletedV1` (RAS).
    BatchAssessmentCompletedV1 ["e_batch_assessment_completed"] {
        batch_id: String,
        user_id: String,
        assessment_job_id: String,
        rankings_summary: Vec<JsonMap>,
    }
);

base_event!(
    /// `ResourceConsumptionV1` (CJ → entitlements).
    ResourceConsumptionV1 ["e_resource_consumption_reported"] {
        user_id: String,
        #[serde(default)]
        org_id: Option<String>,
        resource_type: String,
        quantity: NonNegativeInt,
        service_name: String,
        processing_id: String,
        #[serde(default)]
        consumed_at: Timestamp,
    }
);
