//! The engine behind send-code and verify: `local` (our codes, our store, a sender) or, in a
//! later step, `twilio-verify`. Providers apply Twilio Verify's lifecycle; they never rate-limit
//! (the policy did that before they were called).

pub mod local;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Channel, OtpCode, PhoneNumber, Timestamp, Verification, VerificationSid};
use crate::policy::ClientKey;
use crate::store::StoreError;

pub use local::LocalProvider;

/// Start (or resend) a verification.
#[derive(Debug)]
pub struct StartRequest {
    pub phone: PhoneNumber,
    pub channel: Channel,
    /// The client's rate-limit key, when the request came over HTTP (Twilio's RateLimits).
    pub client: Option<ClientKey>,
    pub now: Timestamp,
}

/// Check a code.
#[derive(Debug)]
pub struct CheckRequest {
    pub phone: PhoneNumber,
    pub code: OtpCode,
    pub now: Timestamp,
}

/// Why a provider call did not succeed. Each variant is one row of the error table.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no pending verification")]
    NotFound,
    /// The verification existed but its TTL ended (answers like [`NotFound`](Self::NotFound);
    /// kept apart for metrics).
    #[error("the verification expired")]
    Expired,
    #[error("wrong code")]
    IncorrectCode { attempts_remaining: u32 },
    #[error("all check attempts used")]
    MaxCheckAttempts,
    #[error("all send attempts used")]
    MaxSendAttempts,
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    #[error("delivery failed: {0}")]
    Delivery(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored data cannot be read: {0}")]
    Data(String),
}

/// A verification engine.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Starts a verification for the number, or re-delivers the pending one's code.
    async fn start(&self, request: StartRequest) -> Result<Verification, ProviderError>;

    /// Checks a code against the number's pending verification; approves it when right.
    async fn check(&self, request: CheckRequest) -> Result<Verification, ProviderError>;

    /// Cancels a pending verification.
    async fn cancel(
        &self,
        sid: &VerificationSid,
        now: Timestamp,
    ) -> Result<Verification, ProviderError>;

    /// `local` or `twilio-verify`, for logs and metrics.
    fn name(&self) -> &'static str;
}
