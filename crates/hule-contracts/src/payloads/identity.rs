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
    /// `user_id: str`, required (Python `UserRegisteredV1.user_id`)
    pub user_id: String,
    /// `org_id: opt[str]`, default `None` (Python `UserRegisteredV1.org_id`)
    #[serde(default)]
    pub org_id: Option<String>,
    /// `email: EmailStr`, required (Python `UserRegisteredV1.email`)
    pub email: Email,
    /// `registered_at: datetime`, required (Python `UserRegisteredV1.registered_at`)
    pub registered_at: Timestamp,
    /// `correlation_id: str`, required (Python `UserRegisteredV1.correlation_id`)
    pub correlation_id: String,
}

/// `EmailVerificationRequestedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailVerificationRequestedV1 {
    /// `user_id: str`, required (Python `EmailVerificationRequestedV1.user_id`)
    pub user_id: String,
    /// `email: EmailStr`, required (Python `EmailVerificationRequestedV1.email`)
    pub email: Email,
    /// `verification_token: str`, required (Python `EmailVerificationRequestedV1.verification_token`)
    pub verification_token: String,
    /// `expires_at: datetime`, required (Python `EmailVerificationRequestedV1.expires_at`)
    pub expires_at: Timestamp,
    /// `correlation_id: str`, required (Python `EmailVerificationRequestedV1.correlation_id`)
    pub correlation_id: String,
}

/// `EmailVerifiedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailVerifiedV1 {
    /// `user_id: str`, required (Python `EmailVerifiedV1.user_id`)
    pub user_id: String,
    /// `verified_at: datetime`, required (Python `EmailVerifiedV1.verified_at`)
    pub verified_at: Timestamp,
    /// `correlation_id: str`, required (Python `EmailVerifiedV1.correlation_id`)
    pub correlation_id: String,
}

/// `PasswordResetRequestedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordResetRequestedV1 {
    /// `user_id: str`, required (Python `PasswordResetRequestedV1.user_id`)
    pub user_id: String,
    /// `email: EmailStr`, required (Python `PasswordResetRequestedV1.email`)
    pub email: Email,
    /// `token_id: str`, required (Python `PasswordResetRequestedV1.token_id`)
    pub token_id: String,
    /// `expires_at: datetime`, required (Python `PasswordResetRequestedV1.expires_at`)
    pub expires_at: Timestamp,
    /// `correlation_id: str`, required (Python `PasswordResetRequestedV1.correlation_id`)
    pub correlation_id: String,
}

/// `PasswordResetCompletedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordResetCompletedV1 {
    /// `user_id: str`, required (Python `PasswordResetCompletedV1.user_id`)
    pub user_id: String,
    /// `reset_at: datetime`, required (Python `PasswordResetCompletedV1.reset_at`)
    pub reset_at: Timestamp,
    /// `correlation_id: str`, required (Python `PasswordResetCompletedV1.correlation_id`)
    pub correlation_id: String,
}

/// `LoginSucceededV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginSucceededV1 {
    /// `user_id: str`, required (Python `LoginSucceededV1.user_id`)
    pub user_id: String,
    /// `org_id: opt[str]`, default `None` (Python `LoginSucceededV1.org_id`)
    #[serde(default)]
    pub org_id: Option<String>,
    /// `timestamp: datetime`, required (Python `LoginSucceededV1.timestamp`)
    pub timestamp: Timestamp,
    /// `correlation_id: str`, required (Python `LoginSucceededV1.correlation_id`)
    pub correlation_id: String,
}

/// `LoginFailedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginFailedV1 {
    /// `email: EmailStr`, required (Python `LoginFailedV1.email`)
    pub email: Email,
    /// `reason: LoginFailureReason`, required (Python `LoginFailedV1.reason`)
    pub reason: LoginFailureReason,
    /// `timestamp: datetime`, required (Python `LoginFailedV1.timestamp`)
    pub timestamp: Timestamp,
    /// `correlation_id: str`, required (Python `LoginFailedV1.correlation_id`)
    pub correlation_id: String,
}

/// `NotificationEmailRequestedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationEmailRequestedV1 {
    /// `message_id: str`, required (Python `NotificationEmailRequestedV1.message_id`)
    pub message_id: String,
    /// `template_id: str`, required (Python `NotificationEmailRequestedV1.template_id`)
    pub template_id: String,
    /// `to: EmailStr`, required (Python `NotificationEmailRequestedV1.to`)
    pub to: Email,
    /// `variables: dict[str, str]`, default `dict()` (Python `NotificationEmailRequestedV1.variables`)
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// `category: Literal['verification', 'password_reset', 'receipt', 'teacher_notification', 'system']`, required (Python `NotificationEmailRequestedV1.category`)
    pub category: EmailCategory,
    /// `correlation_id: str`, required (Python `NotificationEmailRequestedV1.correlation_id`)
    pub correlation_id: String,
}

/// `EmailSentV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailSentV1 {
    /// `message_id: str`, required (Python `EmailSentV1.message_id`)
    pub message_id: String,
    /// `provider: str`, required (Python `EmailSentV1.provider`)
    pub provider: String,
    /// `sent_at: datetime`, required (Python `EmailSentV1.sent_at`)
    pub sent_at: Timestamp,
    /// `correlation_id: str`, required (Python `EmailSentV1.correlation_id`)
    pub correlation_id: String,
}

/// `EmailDeliveryFailedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailDeliveryFailedV1 {
    /// `message_id: str`, required (Python `EmailDeliveryFailedV1.message_id`)
    pub message_id: String,
    /// `provider: str`, required (Python `EmailDeliveryFailedV1.provider`)
    pub provider: String,
    /// `failed_at: datetime`, required (Python `EmailDeliveryFailedV1.failed_at`)
    pub failed_at: Timestamp,
    /// `reason: str`, required (Python `EmailDeliveryFailedV1.reason`)
    pub reason: String,
    /// `correlation_id: str`, required (Python `EmailDeliveryFailedV1.correlation_id`)
    pub correlation_id: String,
}

/// `SubjectRefV1`: an organisation or a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectRefV1 {
    /// `type: Literal['org', 'user']`, required (Python `SubjectRefV1.type`; `type` on the wire)
    #[serde(rename = "type")]
    pub kind: SubjectType,
    /// `id: str`, required (Python `SubjectRefV1.id`)
    pub id: String,
}

/// `SubscriptionActivatedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionActivatedV1 {
    /// `subject: SubjectRefV1`, required (Python `SubscriptionActivatedV1.subject`)
    pub subject: SubjectRefV1,
    /// `plan_id: str`, required (Python `SubscriptionActivatedV1.plan_id`)
    pub plan_id: String,
    /// `activated_at: datetime`, required (Python `SubscriptionActivatedV1.activated_at`)
    pub activated_at: Timestamp,
    /// `correlation_id: str`, required (Python `SubscriptionActivatedV1.correlation_id`)
    pub correlation_id: String,
}

/// `SubscriptionChangedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionChangedV1 {
    /// `subject: SubjectRefV1`, required (Python `SubscriptionChangedV1.subject`)
    pub subject: SubjectRefV1,
    /// `old_plan_id: opt[str]`, default `None` (Python `SubscriptionChangedV1.old_plan_id`)
    #[serde(default)]
    pub old_plan_id: Option<String>,
    /// `new_plan_id: str`, required (Python `SubscriptionChangedV1.new_plan_id`)
    pub new_plan_id: String,
    /// `changed_at: datetime`, required (Python `SubscriptionChangedV1.changed_at`)
    pub changed_at: Timestamp,
    /// `correlation_id: str`, required (Python `SubscriptionChangedV1.correlation_id`)
    pub correlation_id: String,
}

/// `SubscriptionCanceledV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionCanceledV1 {
    /// `subject: SubjectRefV1`, required (Python `SubscriptionCanceledV1.subject`)
    pub subject: SubjectRefV1,
    /// `plan_id: str`, required (Python `SubscriptionCanceledV1.plan_id`)
    pub plan_id: String,
    /// `canceled_at: datetime`, required (Python `SubscriptionCanceledV1.canceled_at`)
    pub canceled_at: Timestamp,
    /// `correlation_id: str`, required (Python `SubscriptionCanceledV1.correlation_id`)
    pub correlation_id: String,
}

/// `UsageAuthorizedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageAuthorizedV1 {
    /// `subject: SubjectRefV1`, required (Python `UsageAuthorizedV1.subject`)
    pub subject: SubjectRefV1,
    /// `metric: str`, required (Python `UsageAuthorizedV1.metric`)
    pub metric: String,
    /// `amount: int`, default `1` (Python `UsageAuthorizedV1.amount`)
    #[serde(default = "one")]
    pub amount: i64,
    /// `authorization_id: str`, required (Python `UsageAuthorizedV1.authorization_id`)
    pub authorization_id: String,
    /// `expires_at: opt[datetime]`, default `None` (Python `UsageAuthorizedV1.expires_at`)
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// `correlation_id: str`, required (Python `UsageAuthorizedV1.correlation_id`)
    pub correlation_id: String,
}

/// `UsageRecordedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageRecordedV1 {
    /// `subject: SubjectRefV1`, required (Python `UsageRecordedV1.subject`)
    pub subject: SubjectRefV1,
    /// `metric: str`, required (Python `UsageRecordedV1.metric`)
    pub metric: String,
    /// `amount: int`, default `1` (Python `UsageRecordedV1.amount`)
    #[serde(default = "one")]
    pub amount: i64,
    /// `period_start: datetime`, required (Python `UsageRecordedV1.period_start`)
    pub period_start: Timestamp,
    /// `period_end: datetime`, required (Python `UsageRecordedV1.period_end`)
    pub period_end: Timestamp,
    /// `correlation_id: str`, required (Python `UsageRecordedV1.correlation_id`)
    pub correlation_id: String,
}

/// `CreditBalanceChangedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreditBalanceChangedV1 {
    /// `subject: SubjectRefV1`, required (Python `CreditBalanceChangedV1.subject`)
    pub subject: SubjectRefV1,
    /// `delta: int`, required (Python `CreditBalanceChangedV1.delta`)
    pub delta: i64,
    /// `new_balance: int`, required (Python `CreditBalanceChangedV1.new_balance`)
    pub new_balance: i64,
    /// `reason: str`, required (Python `CreditBalanceChangedV1.reason`)
    pub reason: String,
    /// `correlation_id: str`, required (Python `CreditBalanceChangedV1.correlation_id`)
    pub correlation_id: String,
}

/// `RateLimitExceededV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RateLimitExceededV1 {
    /// `subject: SubjectRefV1`, required (Python `RateLimitExceededV1.subject`)
    pub subject: SubjectRefV1,
    /// `metric: str`, required (Python `RateLimitExceededV1.metric`)
    pub metric: String,
    /// `limit: int`, required (Python `RateLimitExceededV1.limit`)
    pub limit: i64,
    /// `window_seconds: int`, required (Python `RateLimitExceededV1.window_seconds`)
    pub window_seconds: i64,
    /// `correlation_id: str`, required (Python `RateLimitExceededV1.correlation_id`)
    pub correlation_id: String,
}

/// `ResourceAccessGrantedV1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceAccessGrantedV1 {
    /// `resource_id: str`, required (Python `ResourceAccessGrantedV1.resource_id`)
    pub resource_id: String,
    /// `subject: SubjectRefV1 | None`, default `None` (Python `ResourceAccessGrantedV1.subject`)
    #[serde(default)]
    pub subject: Option<SubjectRefV1>,
    /// `email_hash: opt[str]`, default `None` (Python `ResourceAccessGrantedV1.email_hash`)
    #[serde(default)]
    pub email_hash: Option<String>,
    /// `rights: list`, constraints `str] = ['read'` (Python `ResourceAccessGrantedV1.rights`)
    #[serde(default = "read_right")]
    pub rights: Vec<String>,
    /// `expires_at: opt[datetime]`, default `None` (Python `ResourceAccessGrantedV1.expires_at`)
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// `correlation_id: str`, required (Python `ResourceAccessGrantedV1.correlation_id`)
    pub correlation_id: String,
}

fn one() -> i64 {
    1
}

fn read_right() -> Vec<String> {
    vec!["read".to_owned()]
}
