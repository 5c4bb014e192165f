//! The request path after parsing, shared by the HTTP API and the CLI: policy first (channel,
//! country, number type, then every bucket at once), then the engine. A request refused by any
//! step reaches no later step, so it sends nothing and charges no bucket.
//!
//! The engine is the configured provider, except for test numbers, which this module alone
//! recognises: the local engine serves them (their fixed code, nothing delivered) whatever the
//! provider. A check's [`CheckOutcome`] is labelled in metrics and counted on the failure
//! buckets here, in one place, whichever engine judged it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{
    Channel, CheckOutcome, CheckRefusal, OtpCode, PhoneNumber, Timestamp, Verification,
};
use crate::error::Chain;
use crate::limiter::{Decision, Limiter, LimiterError};
use crate::policy::{BucketName, BucketRequest, ClientKey, Policy, PolicyError, TestNumbers};
use crate::provider::{CheckRequest, LocalProvider, Provider, ProviderError, StartRequest};

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
    /// The check was judged and did not approve.
    #[error("the check did not approve the verification")]
    Refused(CheckRefusal),
}

/// Who is asking: the client's rate-limit key (absent for the CLI), the authenticated user
/// (absent with API-key auth) and the credential's opaque stable label (`user:<sub>` or
/// `key:<digest prefix>`; absent for the CLI), which failed checks are counted under.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub client: Option<ClientKey>,
    pub user: Option<String>,
    pub principal: Option<String>,
}

impl Caller {
    /// The label failed checks are counted under: the principal, or `cli` for the command line.
    fn failure_label(&self) -> &str {
        self.principal.as_deref().unwrap_or("cli")
    }
}

/// Policy plus provider.
pub struct Verifier {
    policy: Policy,
    limiter: Arc<dyn Limiter>,
    provider: Arc<dyn Provider>,
    /// Test numbers and the engine that serves them (the local engine, which sends no SMS for
    /// them), whatever the main provider is.
    test_numbers: Arc<TestNumbers>,
    local: Arc<LocalProvider>,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    pub fn new(
        policy: Policy,
        limiter: Arc<dyn Limiter>,
        provider: Arc<dyn Provider>,
        test_numbers: Arc<TestNumbers>,
        local: Arc<LocalProvider>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            policy,
            limiter,
            provider,
            test_numbers,
            local,
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

    async fn charge(&self, buckets: &[BucketRequest], now: Timestamp) -> Result<(), ServiceError> {
        if buckets.is_empty() {
            // Nothing to charge: still make sure the limiter answers, so that an unreachable
            // shared limiter refuses every request (fail closed) whatever the bucket settings.
            self.limiter.ping().await?;
            return Ok(());
        }
        match self.limiter.acquire(buckets, now).await? {
            Decision::Allowed => Ok(()),
            Decision::Limited {
                bucket,
                retry_after,
            } => {
                metrics::counter!("verifyd_rate_limited_total", "bucket" => bucket.as_str())
                    .increment(1);
                Err(ServiceError::RateLimited {
                    bucket,
                    retry_after,
                })
            }
        }
    }

    /// Send-code: channel allowlist, country, number type, every bucket (all or none), provider.
    ///
    /// # Errors
    /// [`ServiceError`] naming the step that refused.
    pub async fn send_code(
        &self,
        phone: PhoneNumber,
        channel: Channel,
        caller: Caller,
    ) -> Result<Verification, ServiceError> {
        self.policy
            .check_channel(channel)
            .inspect_err(count_refusal)?;
        self.policy
            .check_number(&phone)
            .inspect_err(count_refusal)?;
        let now = self.clock.now();
        let buckets =
            self.policy
                .send_buckets(&phone, caller.client.as_ref(), caller.user.as_deref());
        self.charge(&buckets, now).await?;
        let request = StartRequest {
            client: caller.client,
            user: caller.user,
            now,
            channel,
            phone,
        };
        let started = std::time::Instant::now();
        let (engine, result) = match self.test_numbers.code(&request.phone, now) {
            Some(code) => {
                let code = code.clone();
                (
                    self.local.name(),
                    self.local.start_test(request, code).await,
                )
            }
            None => (self.provider.name(), self.provider.start(request).await),
        };
        metrics::histogram!("verifyd_provider_request_duration_seconds", "provider" => engine, "op" => "start")
            .record(started.elapsed().as_secs_f64());
        Ok(result?)
    }

    /// Verify: the client's verify buckets and one failed check on the number's failure
    /// buckets (this caller's and the shared ceiling) are charged together, all or none,
    /// before the code is judged; the failure is given back when the check did not fail. So
    /// of any number of concurrent wrong guesses, at most the buckets' remaining room are
    /// judged, on one node or across replicas sharing a limiter.
    ///
    /// # Errors
    /// [`ServiceError`] naming the step that refused.
    pub async fn verify_code(
        &self,
        phone: PhoneNumber,
        code: OtpCode,
        caller: Caller,
    ) -> Result<Verification, ServiceError> {
        let now = self.clock.now();
        let failures = self.policy.failure_buckets(&phone, caller.failure_label());
        let mut buckets = self.policy.verify_buckets(caller.client.as_ref());
        buckets.extend(failures.iter().cloned());
        self.charge(&buckets, now).await?;
        let test_number = self.test_numbers.code(&phone, now).is_some();
        let engine: &dyn Provider = if test_number {
            self.local.as_ref()
        } else {
            self.provider.as_ref()
        };
        let started = std::time::Instant::now();
        let result = engine
            .check(CheckRequest {
                phone,
                code,
                user: caller.user,
                now,
            })
            .await;
        metrics::histogram!("verifyd_provider_request_duration_seconds", "provider" => engine.name(), "op" => "check")
            .record(started.elapsed().as_secs_f64());
        if let Ok(outcome) = &result {
            metrics::counter!("verifyd_verifications_total", "result" => outcome.label())
                .increment(1);
        }
        if !failures.is_empty()
            && !result.as_ref().is_ok_and(CheckOutcome::is_failed_check)
            && let Err(e) = self.limiter.refund(&failures, now).await
        {
            // The reservation stands: the number's failure count is one too high, never low.
            tracing::warn!(error = %Chain(&e), "could not give back a reserved failed check");
        }
        match result? {
            CheckOutcome::Approved(verification) => {
                if test_number {
                    tracing::info!(phone = %verification.to.masked(), sid = %verification.sid, "test number: approved");
                    metrics::counter!("verifyd_test_number_uses_total", "op" => "check")
                        .increment(1);
                }
                Ok(verification)
            }
            CheckOutcome::Refused(refusal) => Err(ServiceError::Refused(refusal)),
        }
    }
}
fn count_refusal(e: &PolicyError) {
    metrics::counter!("verifyd_policy_refused_total", "reason" => e.reason()).increment(1);
}
