//! The request path after parsing, shared by the HTTP API and the CLI: policy first (channel,
//! country, number type, buckets), then the provider. A request refused by any step reaches no
//! later step, so it sends nothing and charges no bucket it did not pass.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{Channel, OtpCode, PhoneNumber, Verification};
use crate::limiter::{Decision, Limiter, LimiterError};
use crate::policy::{BucketName, ClientKey, Policy, PolicyError};
use crate::provider::{CheckRequest, Provider, ProviderError, StartRequest};

/// Why a send or check was not done.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("rate limited ({})", bucket.as_str())]
    RateLimited {
        bucket: BucketName,
        retry_after: Duration,
    },
    #[error(transparent)]
    Limiter(#[from] LimiterError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Policy plus provider.
pub struct Verifier {
    policy: Policy,
    limiter: Arc<dyn Limiter>,
    provider: Arc<dyn Provider>,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    pub fn new(
        policy: Policy,
        limiter: Arc<dyn Limiter>,
        provider: Arc<dyn Provider>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            policy,
            limiter,
            provider,
            clock,
        }
    }

    /// The provider in use (for health and logs).
    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// The limiter in use (for health and logs).
    pub fn limiter(&self) -> &dyn Limiter {
        self.limiter.as_ref()
    }

    /// Send-code: channel allowlist, country, number type, buckets (all or none), provider.
    ///
    /// # Errors
    /// [`ServiceError`] naming the step that refused.
    pub async fn send_code(
        &self,
        phone: PhoneNumber,
        channel: Channel,
        client: Option<ClientKey>,
    ) -> Result<Verification, ServiceError> {
        self.policy.check_channel(channel)?;
        self.policy.check_number(&phone)?;
        let now = self.clock.now();
        let buckets = self.policy.send_buckets(client.as_ref());
        self.charge(&buckets, now).await?;
        let verification = self
            .provider
            .start(StartRequest {
                phone,
                channel,
                client,
                now,
            })
            .await?;
        Ok(verification)
    }

    /// Charges `buckets` all at once. With no bucket to charge it still asks the limiter
    /// whether it answers: an unreachable shared limiter refuses every request (fail closed),
    /// whatever the bucket settings.
    async fn charge(
        &self,
        buckets: &[crate::policy::BucketRequest],
        now: crate::domain::Timestamp,
    ) -> Result<(), ServiceError> {
        if buckets.is_empty() {
            self.limiter.ping().await?;
            return Ok(());
        }
        match self.limiter.acquire(buckets, now).await? {
            Decision::Allowed => Ok(()),
            Decision::Limited {
                bucket,
                retry_after,
            } => Err(ServiceError::RateLimited {
                bucket,
                retry_after,
            }),
        }
    }

    /// Verify: the provider checks the code against the number's pending verification.
    ///
    /// # Errors
    /// [`ServiceError`] naming the step that refused.
    pub async fn verify_code(
        &self,
        phone: PhoneNumber,
        code: OtpCode,
    ) -> Result<Verification, ServiceError> {
        let now = self.clock.now();
        // No verify buckets yet: only confirm the limiter answers, so verify fails closed too.
        self.charge(&[], now).await?;
        Ok(self
            .provider
            .check(CheckRequest { phone, code, now })
            .await?)
    }
}
