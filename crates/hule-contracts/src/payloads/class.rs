//! Class management payloads: classes, students, essay-student associations and their validation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::base::{nullable, nullable_schema};
use super::defaults::*;
use crate::enums::{AssociationValidationMethod, CourseCode};
use crate::time::Timestamp;

/// `ClassCreatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClassCreatedV1 {
    /// `event: str`, default `'class.created'` (Python `ClassCreatedV1.event`)
    #[serde(default = "d_class_created")]
    pub event: String,
    /// `class_id: str`, required (Python `ClassCreatedV1.class_id`)
    pub class_id: String,
    /// `class_designation: str`, required (Python `ClassCreatedV1.class_designation`)
    pub class_designation: String,
    /// `course_codes: list[CourseCode]`, required (Python `ClassCreatedV1.course_codes`)
    pub course_codes: Vec<CourseCode>,
    /// `user_id: str`, required (Python `ClassCreatedV1.user_id`)
    pub user_id: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `ClassCreatedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `ClassCreatedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `ClassUpdatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClassUpdatedV1 {
    /// `event: str`, default `'class.updated'` (Python `ClassUpdatedV1.event`)
    #[serde(default = "d_class_updated")]
    pub event: String,
    /// `class_id: str`, required (Python `ClassUpdatedV1.class_id`)
    pub class_id: String,
    /// `class_designation: str | None`, default `None` (Python `ClassUpdatedV1.class_designation`)
    #[serde(default)]
    pub class_designation: Option<String>,
    /// `course_codes: list[CourseCode] | None`, default `None` (Python `ClassUpdatedV1.course_codes`)
    #[serde(default)]
    pub course_codes: Option<Vec<CourseCode>>,
    /// `user_id: str`, required (Python `ClassUpdatedV1.user_id`)
    pub user_id: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `ClassUpdatedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `ClassUpdatedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `EssayStudentAssociationUpdatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayStudentAssociationUpdatedV1 {
    /// `event: str`, default `'essay.student.association.updated'` (Python `EssayStudentAssociationUpdatedV1.event`)
    #[serde(default = "d_essay_student_association_updated")]
    pub event: String,
    /// `batch_id: str`, required (Python `EssayStudentAssociationUpdatedV1.batch_id`)
    pub batch_id: String,
    /// `essay_id: str`, required (Python `EssayStudentAssociationUpdatedV1.essay_id`)
    pub essay_id: String,
    /// `student_id: str | None`, required (Python `EssayStudentAssociationUpdatedV1.student_id`)
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub student_id: Option<String>,
    /// `first_name: str | None`, required (Python `EssayStudentAssociationUpdatedV1.first_name`)
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub first_name: Option<String>,
    /// `last_name: str | None`, required (Python `EssayStudentAssociationUpdatedV1.last_name`)
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub last_name: Option<String>,
    /// `student_email: str | None`, required (Python `EssayStudentAssociationUpdatedV1.student_email`)
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub student_email: Option<String>,
    /// `association_method: str`, required (Python `EssayStudentAssociationUpdatedV1.association_method`)
    pub association_method: String,
    /// `confidence_score: float | None`, required (Python `EssayStudentAssociationUpdatedV1.confidence_score`)
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<f64>")]
    pub confidence_score: Option<f64>,
    /// `created_by_user_id: str`, required (Python `EssayStudentAssociationUpdatedV1.created_by_user_id`)
    pub created_by_user_id: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `EssayStudentAssociationUpdatedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `EssayStudentAssociationUpdatedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `StudentCreatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentCreatedV1 {
    /// `event: str`, default `'student.created'` (Python `StudentCreatedV1.event`)
    #[serde(default = "d_student_created")]
    pub event: String,
    /// `student_id: str`, required (Python `StudentCreatedV1.student_id`)
    pub student_id: String,
    /// `first_name: str`, required (Python `StudentCreatedV1.first_name`)
    pub first_name: String,
    /// `last_name: str`, required (Python `StudentCreatedV1.last_name`)
    pub last_name: String,
    /// `student_email: str | None`, required (Python `StudentCreatedV1.student_email`)
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub student_email: Option<String>,
    /// `class_ids: list[str]`, required (Python `StudentCreatedV1.class_ids`)
    pub class_ids: Vec<String>,
    /// `created_by_user_id: str`, required (Python `StudentCreatedV1.created_by_user_id`)
    pub created_by_user_id: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `StudentCreatedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `StudentCreatedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `StudentUpdatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentUpdatedV1 {
    /// `event: str`, default `'student.updated'` (Python `StudentUpdatedV1.event`)
    #[serde(default = "d_student_updated")]
    pub event: String,
    /// `student_id: str`, required (Python `StudentUpdatedV1.student_id`)
    pub student_id: String,
    /// `first_name: str | None`, default `None` (Python `StudentUpdatedV1.first_name`)
    #[serde(default)]
    pub first_name: Option<String>,
    /// `last_name: str | None`, default `None` (Python `StudentUpdatedV1.last_name`)
    #[serde(default)]
    pub last_name: Option<String>,
    /// `student_email: str | None`, default `None` (Python `StudentUpdatedV1.student_email`)
    #[serde(default)]
    pub student_email: Option<String>,
    /// `add_class_ids: list[str] | None`, default `None` (Python `StudentUpdatedV1.add_class_ids`)
    #[serde(default)]
    pub add_class_ids: Option<Vec<String>>,
    /// `remove_class_ids: list[str] | None`, default `None` (Python `StudentUpdatedV1.remove_class_ids`)
    #[serde(default)]
    pub remove_class_ids: Option<Vec<String>>,
    /// `updated_by_user_id: str`, required (Python `StudentUpdatedV1.updated_by_user_id`)
    pub updated_by_user_id: String,
    /// `correlation_id: UUID`, default `uuid4()` (Python `StudentUpdatedV1.correlation_id`)
    #[serde(default)]
    pub correlation_id: Uuid,
    /// `timestamp: datetime`, default `now(UTC)` (Python `StudentUpdatedV1.timestamp`)
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `StudentAssociation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentAssociation {
    /// `essay_id: str`, required (Python `StudentAssociation.essay_id`)
    pub essay_id: String,
    /// `student_first_name: str`, required (Python `StudentAssociation.student_first_name`)
    pub student_first_name: String,
    /// `student_last_name: str`, required (Python `StudentAssociation.student_last_name`)
    pub student_last_name: String,
    /// `student_email: str | None`, default `None` (Python `StudentAssociation.student_email`)
    #[serde(default)]
    pub student_email: Option<String>,
    /// `confidence_score: float`, required (Python `StudentAssociation.confidence_score`)
    pub confidence_score: f64,
    /// `is_confirmed: bool`, required (Python `StudentAssociation.is_confirmed`)
    pub is_confirmed: bool,
}

/// `StudentAssociationConfirmation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentAssociationConfirmation {
    /// `essay_id: str`, required (Python `StudentAssociationConfirmation.essay_id`)
    pub essay_id: String,
    /// `student_id: str | None`, required (Python `StudentAssociationConfirmation.student_id`)
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub student_id: Option<String>,
    /// `confidence_score: float`, required (Python `StudentAssociationConfirmation.confidence_score`)
    pub confidence_score: f64,
    /// `validation_method: AssociationValidationMethod`, required (Python `StudentAssociationConfirmation.validation_method`)
    pub validation_method: AssociationValidationMethod,
    /// `validated_by: str | None`, required (Python `StudentAssociationConfirmation.validated_by`)
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub validated_by: Option<String>,
    /// `validated_at: datetime`, default `now(UTC)` (Python `StudentAssociationConfirmation.validated_at`)
    #[serde(default)]
    pub validated_at: Timestamp,
}

base_event!(
    /// `StudentAssociationsConfirmedV1` (class management → ELS, BOS).
    StudentAssociationsConfirmedV1 ["e_student_associations_confirmed"] {
        /// `batch_id: str`, required (Python `StudentAssociationsConfirmedV1.batch_id`)
        batch_id: String,
        /// `class_id: str`, required (Python `StudentAssociationsConfirmedV1.class_id`)
        class_id: String,
        /// `course_code: CourseCode`, required (Python `StudentAssociationsConfirmedV1.course_code`)
        course_code: CourseCode,
        /// `associations: list[StudentAssociationConfirmation]`, required (Python `StudentAssociationsConfirmedV1.associations`)
        associations: Vec<StudentAssociationConfirmation>,
        /// `timeout_triggered: bool`, default `False` (Python `StudentAssociationsConfirmedV1.timeout_triggered`)
        #[serde(default)]
        timeout_triggered: bool,
        /// `validation_summary: dict[str, int]`, required (Python `StudentAssociationsConfirmedV1.validation_summary`)
        validation_summary: BTreeMap<String, i64>,
    }
);

base_event!(
    /// `ValidationTimeoutProcessedV1`.
    ValidationTimeoutProcessedV1 ["e_validation_timeout_processed"] {
        /// `batch_id: str`, required (Python `ValidationTimeoutProcessedV1.batch_id`)
        batch_id: String,
        /// `user_id: str`, required (Python `ValidationTimeoutProcessedV1.user_id`)
        user_id: String,
        /// `timeout_hours: int`, required (Python `ValidationTimeoutProcessedV1.timeout_hours`)
        timeout_hours: i64,
        /// `auto_confirmed_associations: list[StudentAssociation]`, required (Python `ValidationTimeoutProcessedV1.auto_confirmed_associations`)
        auto_confirmed_associations: Vec<StudentAssociation>,
        /// `guest_essays: list[str]`, required (Python `ValidationTimeoutProcessedV1.guest_essays`)
        guest_essays: Vec<String>,
        /// `guest_class_created: bool`, required (Python `ValidationTimeoutProcessedV1.guest_class_created`)
        guest_class_created: bool,
        /// `guest_class_id: str | None`, default `None` (Python `ValidationTimeoutProcessedV1.guest_class_id`)
        #[serde(default)]
        guest_class_id: Option<String>,
        /// `processing_timestamp: datetime`, default `now(UTC)` (Python `ValidationTimeoutProcessedV1.processing_timestamp`)
        #[serde(default)]
        processing_timestamp: Timestamp,
    }
);
