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
    Channel, CheckOutcome, OtpCode, PhoneNumber, Timestamp, Verification, VerificationSid,
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
    pub phone: PhoneNumber,
    pub channel: Channel,
    /// The client's rate-limit key, when the request came over HTTP (Twilio's RateLimits).
    pub client: Option<ClientKey>,
    /// The authenticated user (JWT `sub`) the verification will belong to.
    pub user: Option<String>,
    pub now: Timestamp,
}

/// Check a code.
#[derive(Debug)]
pub struct CheckRequest {
    pub phone: PhoneNumber,
    pub code: OtpCode,
    /// The authenticated user: only their own verification is visible to them.
    pub user: Option<String>,
    pub now: Timestamp,
}

/// Why a provider call did not succeed. Each variant is one row of the error table. A check's
/// answers (wrong code, expired, …) are not errors: they are its [`CheckOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No pending verification to cancel.
    #[error("no pending verification")]
    NotFound,
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
    To,
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

    /// `local` or `twilio-verify`, for logs and metrics.
    fn name(&self) -> &'static str;
}
