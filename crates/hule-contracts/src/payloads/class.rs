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
    #[serde(default = "d_class_created")]
    pub event: String,
    pub class_id: String,
    pub class_designation: String,
    pub course_codes: Vec<CourseCode>,
    pub user_id: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `ClassUpdatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClassUpdatedV1 {
    #[serde(default = "d_class_updated")]
    pub event: String,
    pub class_id: String,
    #[serde(default)]
    pub class_designation: Option<String>,
    #[serde(default)]
    pub course_codes: Option<Vec<CourseCode>>,
    pub user_id: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `EssayStudentAssociationUpdatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EssayStudentAssociationUpdatedV1 {
    #[serde(default = "d_essay_student_association_updated")]
    pub event: String,
    pub batch_id: String,
    pub essay_id: String,
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub student_id: Option<String>,
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub student_email: Option<String>,
    pub association_method: String,
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<f64>")]
    pub confidence_score: Option<f64>,
    pub created_by_user_id: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `StudentCreatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentCreatedV1 {
    #[serde(default = "d_student_created")]
    pub event: String,
    pub student_id: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub student_email: Option<String>,
    pub class_ids: Vec<String>,
    pub created_by_user_id: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `StudentUpdatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentUpdatedV1 {
    #[serde(default = "d_student_updated")]
    pub event: String,
    pub student_id: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub student_email: Option<String>,
    #[serde(default)]
    pub add_class_ids: Option<Vec<String>>,
    #[serde(default)]
    pub remove_class_ids: Option<Vec<String>>,
    pub updated_by_user_id: String,
    #[serde(default)]
    pub correlation_id: Uuid,
    #[serde(default)]
    pub timestamp: Timestamp,
}

/// `StudentAssociation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentAssociation {
    pub essay_id: String,
    pub student_first_name: String,
    pub student_last_name: String,
    #[serde(default)]
    pub student_email: Option<String>,
    pub confidence_score: f64,
    pub is_confirmed: bool,
}

/// `StudentAssociationConfirmation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudentAssociationConfirmation {
    pub essay_id: String,
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub student_id: Option<String>,
    pub confidence_score: f64,
    pub validation_method: AssociationValidationMethod,
    #[serde(deserialize_with = "nullable")]
    #[schemars(required, schema_with = "nullable_schema::<String>")]
    pub validated_by: Option<String>,
    #[serde(default)]
    pub validated_at: Timestamp,
}

base_event!(
    /// `StudentAssociationsConfirmedV1` (class management → ELS, BOS).
    StudentAssociationsConfirmedV1 ["e_student_associations_confirmed"] {
        batch_id: String,
        class_id: String,
        course_code: CourseCode,
        associations: Vec<StudentAssociationConfirmation>,
        #[serde(default)]
        timeout_triggered: bool,
        validation_summary: BTreeMap<String, i64>,
    }
);

base_event!(
    /// `ValidationTimeoutProcessedV1`.
    ValidationTimeoutProcessedV1 ["e_validation_timeout_processed"] {
        batch_id: String,
        user_id: String,
        timeout_hours: i64,
        auto_confirmed_associations: Vec<StudentAssociation>,
        guest_essays: Vec<String>,
        guest_class_created: bool,
        #[serde(default)]
        guest_class_id: Option<String>,
        #[serde(default)]
        processing_timestamp: Timestamp,
    }
);
