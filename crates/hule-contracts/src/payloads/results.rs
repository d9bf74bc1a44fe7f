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
    /// `teacher_id: str`, required (Python `TeacherNotificationRequestedV1.teacher_id`)
    pub teacher_id: String,
    /// `notification_type: str`, required (Python `TeacherNotificationRequestedV1.notification_type`)
    pub notification_type: String,
    /// `category: WebSocketEventCategory`, required (Python `TeacherNotificationRequestedV1.category`)
    pub category: WebSocketEventCategory,
    /// `priority: NotificationPriority`, required (Python `TeacherNotificationRequestedV1.priority`)
    pub priority: NotificationPriority,
    /// `payload: dict[str, Any]`, required (Python `TeacherNotificationRequestedV1.payload`)
    pub payload: JsonMap,
    /// `action_required: bool`, default `False` (Python `TeacherNotificationRequestedV1.action_required`)
    #[serde(default)]
    pub action_required: bool,
    /// `deadline_timestamp: opt[datetime]`, default `None` (Python `TeacherNotificationRequestedV1.deadline_timestamp`)
    #[serde(default)]
    pub deadline_timestamp: Option<Timestamp>,
    /// `correlation_id: str`, required (Python `TeacherNotificationRequestedV1.correlation_id`)
    pub correlation_id: String,
    /// `batch_id: opt[str]`, default `None` (Python `TeacherNotificationRequestedV1.batch_id`)
    #[serde(default)]
    pub batch_id: Option<String>,
    /// `class_id: opt[str]`, default `None` (Python `TeacherNotificationRequestedV1.class_id`)
    #[serde(default)]
    pub class_id: Option<String>,
    /// `timestamp: datetime`, default `now(UTC)` (Python `TeacherNotificationRequestedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `PhaseResultSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseResultSummary {
    /// `phase_name: str`, required (Python `PhaseResultSummary.phase_name`)
    pub phase_name: String,
    /// `status: str`, required (Python `PhaseResultSummary.status`)
    pub status: String,
    /// `completed_count: int`, required (Python `PhaseResultSummary.completed_count`)
    pub completed_count: i64,
    /// `failed_count: int`, required (Python `PhaseResultSummary.failed_count`)
    pub failed_count: i64,
    /// `processing_time_seconds: float | None`, default `None` (Python `PhaseResultSummary.processing_time_seconds`)
    #[serde(default)]
    pub processing_time_seconds: Option<f64>,
}

processing_update!(
    /// `BatchResultsReadyV1` (RAS).
    BatchResultsReadyV1 ["e_batch_results_ready"] {
        /// `batch_id: str`, required (Python `BatchResultsReadyV1.batch_id`)
        batch_id: String,
        /// `user_id: str`, required (Python `BatchResultsReadyV1.user_id`)
        user_id: String,
        /// `total_essays: int`, required (Python `BatchResultsReadyV1.total_essays`)
        total_essays: i64,
        /// `completed_essays: int`, required (Python `BatchResultsReadyV1.completed_essays`)
        completed_essays: i64,
        /// `phase_results: dict[str, PhaseResultSummary]`, required (Python `BatchResultsReadyV1.phase_results`)
        phase_results: BTreeMap<String, PhaseResultSummary>,
        /// `overall_status: BatchStatus`, required (Python `BatchResultsReadyV1.overall_status`)
        overall_status: BatchStatus,
        /// `processing_duration_seconds: float`, required (Python `BatchResultsReadyV1.processing_duration_seconds`)
        processing_duration_seconds: f64,
    }
);

processing_update!(
    /// `BatchAssessmentCompletedV1` (RAS).
    BatchAssessmentCompletedV1 ["e_batch_assessment_completed"] {
        /// `batch_id: str`, required (Python `BatchAssessmentCompletedV1.batch_id`)
        batch_id: String,
        /// `user_id: str`, required (Python `BatchAssessmentCompletedV1.user_id`)
        user_id: String,
        /// `assessment_job_id: str`, required (Python `BatchAssessmentCompletedV1.assessment_job_id`)
        assessment_job_id: String,
        /// `rankings_summary: list[dict[str, Any]]`, required (Python `BatchAssessmentCompletedV1.rankings_summary`)
        rankings_summary: Vec<JsonMap>,
    }
);

base_event!(
    /// `ResourceConsumptionV1` (CJ → entitlements).
    ResourceConsumptionV1 ["e_resource_consumption_reported"] {
        /// `user_id: str`, required (Python `ResourceConsumptionV1.user_id`)
        user_id: String,
        /// `org_id: str | None`, default `None` (Python `ResourceConsumptionV1.org_id`)
        #[serde(default)]
        org_id: Option<String>,
        /// `resource_type: str`, required (Python `ResourceConsumptionV1.resource_type`)
        resource_type: String,
        /// `quantity: int`, required, constraints `ge=0` (Python `ResourceConsumptionV1.quantity`)
        quantity: NonNegativeInt,
        /// `service_name: str`, required (Python `ResourceConsumptionV1.service_name`)
        service_name: String,
        /// `processing_id: str`, required (Python `ResourceConsumptionV1.processing_id`)
        processing_id: String,
        /// `consumed_at: datetime`, default `now(UTC)` (Python `ResourceConsumptionV1.consumed_at`)
        #[serde(default)]
        consumed_at: Timestamp,
    }
);
