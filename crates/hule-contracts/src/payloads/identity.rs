//! Identity, e-mail and entitlements payloads.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::constrained::Email;
use crate::enums::{EmailCategory, LoginFailureReason, SubjectType};
use crate::time::Timestamp;

/// `UserRegisteredV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegisteredV1 {
    pub user_id: String,
    #[serde(default)]
    pub org_id: Option<String>,
    pub email: Email,
    pub registered_at: Timestamp,
    pub correlation_id: String,
}

/// `EmailVerificationRequestedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailVerificationRequestedV1 {
    pub user_id: String,
    pub email: Email,
    pub verification_token: String,
    pub expires_at: Timestamp,
    pub correlation_id: String,
}

/// `EmailVerifiedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailVerifiedV1 {
    pub user_id: String,
    pub verified_at: Timestamp,
    pub correlation_id: String,
}

/// `PasswordResetRequestedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordResetRequestedV1 {
    pub user_id: String,
    pub email: Email,
    pub token_id: String,
    pub expires_at: Timestamp,
    pub correlation_id: String,
}

/// `PasswordResetCompletedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordResetCompletedV1 {
    pub user_id: String,
    pub reset_at: Timestamp,
    pub correlation_id: String,
}

/// `LoginSucceededV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginSucceededV1 {
    pub user_id: String,
    #[serde(default)]
    pub org_id: Option<String>,
    pub timestamp: Timestamp,
    pub correlation_id: String,
}

/// `LoginFailedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginFailedV1 {
    pub email: Email,
    pub reason: LoginFailureReason,
    pub timestamp: Timestamp,
    pub correlation_id: String,
}

/// `NotificationEmailRequestedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationEmailRequestedV1 {
    pub message_id: String,
    pub template_id: String,
    pub to: Email,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    pub category: EmailCategory,
    pub correlation_id: String,
}

/// `EmailSentV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailSentV1 {
    pub message_id: String,
    pub provider: String,
    pub sent_at: Timestamp,
    pub correlation_id: String,
}

/// `EmailDeliveryFailedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailDeliveryFailedV1 {
    pub message_id: String,
    pub provider: String,
    pub failed_at: Timestamp,
    pub reason: String,
    pub correlation_id: String,
}

/// `SubjectRefV1`: an organisation or a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectRefV1 {
    #[serde(rename = "type")]
    pub kind: SubjectType,
    pub id: String,
}

/// `SubscriptionActivatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionActivatedV1 {
    pub subject: SubjectRefV1,
    pub plan_id: String,
    pub activated_at: Timestamp,
    pub correlation_id: String,
}

/// `SubscriptionChangedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionChangedV1 {
    pub subject: SubjectRefV1,
    #[serde(default)]
    pub old_plan_id: Option<String>,
    pub new_plan_id: String,
    pub changed_at: Timestamp,
    pub correlation_id: String,
}

/// `SubscriptionCanceledV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionCanceledV1 {
    pub subject: SubjectRefV1,
    pub plan_id: String,
    pub canceled_at: Timestamp,
    pub correlation_id: String,
}

/// `UsageAuthorizedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageAuthorizedV1 {
    pub subject: SubjectRefV1,
    pub metric: String,
    #[serde(default = "one")]
    pub amount: i64,
    pub authorization_id: String,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    pub correlation_id: String,
}

/// `UsageRecordedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageRecordedV1 {
    pub subject: SubjectRefV1,
    pub metric: String,
    #[serde(default = "one")]
    pub amount: i64,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub correlation_id: String,
}

/// `CreditBalanceChangedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreditBalanceChangedV1 {
    pub subject: SubjectRefV1,
    pub delta: i64,
    pub new_balance: i64,
    pub reason: String,
    pub correlation_id: String,
}

/// `RateLimitExceededV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RateLimitExceededV1 {
    pub subject: SubjectRefV1,
    pub metric: String,
    pub limit: i64,
    pub window_seconds: i64,
    pub correlation_id: String,
}

/// `ResourceAccessGrantedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceAccessGrantedV1 {
    pub resource_id: String,
    #[serde(default)]
    pub subject: Option<SubjectRefV1>,
    #[serde(default)]
    pub email_hash: Option<String>,
    #[serde(default = "read_right")]
    pub rights: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    pub correlation_id: String,
}

fn one() -> i64 {
    1
}

fn read_right() -> Vec<String> {
    vec!["read".to_owned()]
}
