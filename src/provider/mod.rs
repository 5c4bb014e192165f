//! The engine behind send-code and verify: `local` (our codes, our store, a sender) or
//! `twilio-verify` (Twilio Verify does code, delivery and check; `twilio_sync` keeps its
//! Twilio-side IP bucket). Providers apply Twilio Verify's lifecycle; they never rate-limit
//! (the policy did that before they were called).

pub mod local;
pub mod twilio_sync;
pub mod twilio_verify;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    Channel, CheckOutcome, CodeLength, OtpCode, Recipient, Timestamp, Verification,
    VerificationSid, VerificationStatus,
};
use crate::error::BoxError;
use crate::policy::ClientKey;
use crate::sms::SmsError;
use crate::store::StoreError;

pub use local::LocalProvider;
pub use twilio_verify::TwilioVerifyProvider;

/// Start (or resend) a verification.
#[derive(Debug)]
pub struct StartRequest {
    pub phone: Recipient,
    pub channel: Channel,
    /// The client's rate-limit key, when the request came over HTTP (Twilio's RateLimits).
    pub client: Option<ClientKey>,
    /// The authenticated user (JWT `sub`) the verification will belong to.
    pub user: Option<String>,
    pub now: Timestamp,
    /// What a face asks beyond number and channel (defaults: the `/mfa` behaviour).
    pub options: SendOptions,
}

/// A send's settings and parameters beyond number and channel: the `/v2` face's service
/// settings (`code_length`, `friendly_name`, …) and request parameters (`CustomCode`,
/// `Amount`/`Payee`, `AppHash`). The default is exactly what `/mfa/send-code` does. Only the
/// local engine implements them; `twilio-verify` ignores them (the `/v2` face needs the local
/// engine).
#[derive(Debug, Default)]
pub struct SendOptions {
    /// The service the verification belongs to when it is not the default one: verifications
    /// of different services never meet (each service has its own pending verification per
    /// number).
    pub scope: Option<String>,
    /// Digits of a generated code (default: `VERIFYD_CODE_LENGTH`).
    pub code_length: Option<CodeLength>,
    /// The code to use instead of a generated one (Twilio's `CustomCode`).
    pub custom_code: Option<OtpCode>,
    /// Bound into the code's HMAC (PSD2 dynamic linking: amount and payee), so that a check
    /// with any other binding is a wrong code.
    pub binding: Option<String>,
    /// The wording of the message.
    pub message: MessageOptions,
    /// Refuse landlines (Twilio's `skip_sms_to_landlines`): a policy rule, applied by the
    /// [`Verifier`](crate::service::Verifier) with the number-type rules.
    pub skip_landlines: bool,
    /// More buckets to charge with verifyd's own, all or none (a `/v2` service's RateLimits).
    pub extra_buckets: Vec<crate::policy::BucketRequest>,
}

/// What the message says besides the code.
#[derive(Clone, Debug, Default)]
pub struct MessageOptions {
    /// The service's name (`Your <name> verification code is: …`).
    pub service_name: Option<String>,
    /// Adds the do-not-share sentence.
    pub do_not_share_warning: bool,
    /// The Android SMS Retriever hash, on a line of its own (SMS only).
    pub app_hash: Option<crate::messages::AppHash>,
    /// The language of the message (`locale` / `Locale`); `None`: `VERIFYD_DEFAULT_LOCALE`.
    pub locale: Option<crate::messages::Locale>,
}

/// A check's scope and binding (see [`SendOptions`]); the default is `/mfa/verify`'s.
#[derive(Debug, Default)]
pub struct CheckOptions {
    pub scope: Option<String>,
    pub binding: Option<String>,
}

/// Check a code.
#[derive(Debug)]
pub struct CheckRequest {
    pub phone: Recipient,
    pub code: OtpCode,
    /// The authenticated user: only their own verification is visible to them.
    pub user: Option<String>,
    pub now: Timestamp,
    pub options: CheckOptions,
}

/// Why a provider call did not succeed. Each variant is one row of the error table. A check's
/// answers (wrong code, expired, …) are not errors: they are its [`CheckOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No pending verification to cancel.
    #[error("no pending verification")]
    NotFound,
    /// Approving (by update, the `/v2` face) a verification locked after its last wrong check.
    #[error("all check attempts used")]
    MaxCheckAttempts,
    #[error("all send attempts used")]
    MaxSendAttempts,
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    /// The sender failed; the message may or may not have gone out.
    #[error("delivery failed")]
    Delivery(#[source] SmsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored verification does not open or read back (the cause says which part).
    #[error("stored data cannot be read")]
    Data(#[source] BoxError),
    /// The provider refused the number's country (Twilio 60605, geo permissions).
    #[error("the provider does not deliver to this country")]
    CountryNotAllowed,
    /// The provider refused the number's line type (Twilio 60205).
    #[error("the provider does not deliver to this type of number")]
    NumberTypeNotAllowed,
    /// The provider's fraud protection blocked the number (Twilio 60410, Fraud Guard).
    #[error("the provider's fraud protection blocked this number")]
    FraudBlocked,
    /// The provider refused a parameter (Twilio 60200).
    #[error("the provider refused the {0:?} parameter")]
    InvalidParameter(InvalidParameter),
    /// The provider failed or answered something unexpected; the cause is for logs only.
    #[error("the provider failed")]
    Upstream(#[source] BoxError),
}

/// The parameter a provider refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidParameter {
    /// The number (a vendor refused it).
    To,
    /// The email address (the SMTP server refused the mailbox).
    Email,
    Channel,
    Code,
}

/// A verification engine.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Starts a verification for the number, or re-delivers the pending one's code.
    async fn start(&self, request: StartRequest) -> Result<Verification, ProviderError>;

    /// Checks a code against the number's pending verification; approves it when right.
    async fn check(&self, request: CheckRequest) -> Result<CheckOutcome, ProviderError>;

    /// Cancels a pending verification.
    async fn cancel(
        &self,
        sid: &VerificationSid,
        now: Timestamp,
    ) -> Result<Verification, ProviderError>;

    /// The verification `sid` of `scope` (see [`SendOptions::scope`]) while it exists for the
    /// API: pending, or locked after 5 wrong checks (`max_attempts_reached`) until its TTL.
    /// Only the local engine keeps verifications; the default answers [`ProviderError::NotFound`].
    async fn fetch(
        &self,
        _sid: &VerificationSid,
        _scope: Option<&str>,
        _now: Timestamp,
    ) -> Result<Verification, ProviderError> {
        Err(ProviderError::NotFound)
    }

    /// Ends the verification `sid` of `scope` as `status` (canceled or approved) while it
    /// exists for the API; after that it is gone for checks. The default answers
    /// [`ProviderError::NotFound`].
    async fn finish(
        &self,
        _sid: &VerificationSid,
        _scope: Option<&str>,
        _status: VerificationStatus,
        _now: Timestamp,
    ) -> Result<Verification, ProviderError> {
        Err(ProviderError::NotFound)
    }

    /// `local` or `twilio-verify`, for logs and metrics.
    fn name(&self) -> &'static str;
}
