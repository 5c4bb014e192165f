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
        if !buckets.is_empty()
            && let Decision::Limited {
                bucket,
                retry_after,
            } = self.limiter.acquire(&buckets, now).await?
        {
            return Err(ServiceError::RateLimited {
                bucket,
                retry_after,
            });
        }
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
        Ok(self
            .provider
            .check(CheckRequest { phone, code, now })
            .await?)
    }
}
