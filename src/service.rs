//! The request path after parsing, shared by the HTTP API and the CLI: policy first (channel,
//! country, number type, then every bucket at once), then the engine. A request refused by any
//! step reaches no later step, so it sends nothing and charges no bucket.
//!
//! The engine is the configured provider, except for test numbers, which this module alone
//! recognises: the local engine serves them (their fixed code, nothing delivered) whatever the
//! provider. A check's [`CheckOutcome`] is labelled in metrics and counted on the failure
//! buckets here, in one place, whichever engine judged it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::attempt_log::{AttemptEntry, AttemptLog};
use crate::crypto::Keys;
use crate::store::{AttemptKind, EventStore, SafeListStore};

use crate::clock::Clock;
use crate::domain::{
    Channel, CheckOutcome, CheckRefusal, NumberType, OtpCode, PhoneNumber, Recipient, Timestamp,
    Verification, VerificationSid, VerificationStatus,
};
use crate::error::Chain;
use crate::events::{Emitter, EventType, FraudBlock};
use crate::fraud::FraudGuard;
use crate::limiter::{Decision, Limiter, LimiterError};
use crate::policy::{BucketName, BucketRequest, ClientKey, Policy, PolicyError, TestNumbers};
use crate::provider::{
    CheckOptions, CheckRequest, LocalProvider, Provider, ProviderError, SendOptions, StartRequest,
};

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
    /// The fraud guard refused the destination (enforce mode).
    #[error("the fraud guard refused this destination ({} {})", .0.level.as_str(), .0.reason.as_str())]
    FraudBlocked(crate::fraud::Refusal),
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
    /// Where every send, check and refusal is recorded (set once the server starts).
    attempts: OnceLock<Arc<AttemptLog>>,
    /// The safe list and the keys that turn a number into its lookup digests.
    safe_list: OnceLock<(Arc<dyn SafeListStore>, Arc<Keys>)>,
    /// The fraud guard, and whether test numbers skip every bucket too.
    fraud: OnceLock<(Arc<FraudGuard>, bool)>,
    /// Where events that report no store change of their own go (`fraud_guard.blocked`).
    events: OnceLock<(Arc<Emitter>, Arc<dyn EventStore>)>,
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
            attempts: OnceLock::new(),
            safe_list: OnceLock::new(),
            fraud: OnceLock::new(),
            events: OnceLock::new(),
        }
    }

    /// Asks `guard` about every send that is not exempt from now on, and lets test numbers
    /// skip every bucket when `test_numbers_bypass_limits` (once; later calls are ignored).
    pub fn set_fraud_guard(&self, guard: Arc<FraudGuard>, test_numbers_bypass_limits: bool) {
        let _ = self.fraud.set((guard, test_numbers_bypass_limits));
    }

    /// Writes a `fraud_guard.blocked` event through `emitter` into `store` for every send the
    /// guard refuses from now on (once; later calls are ignored).
    pub fn set_events(&self, emitter: Arc<Emitter>, store: Arc<dyn EventStore>) {
        let _ = self.events.set((emitter, store));
    }

    /// Writes the `fraud_guard.blocked` event of a refused send, in its own transaction (the
    /// refusal changes nothing in the store to write it beside). The refusal stands whatever
    /// happens here: an outbox that cannot be written is logged, and the answer stays 403
    /// `fraud_blocked`, as without events (never a 503 for a send that was refused anyway).
    async fn report_block(
        &self,
        guard: &FraudGuard,
        phone: &PhoneNumber,
        channel: Channel,
        scope: Option<&str>,
        refusal: &crate::fraud::Refusal,
        now: Timestamp,
    ) {
        let Some((emitter, store)) = self.events.get() else {
            return;
        };
        if !emitter.wants(EventType::FraudGuardBlocked) {
            return;
        }
        let (destination, prefix) = guard.refused_destination(phone, refusal);
        let block = FraudBlock {
            phone,
            scope,
            channel: channel.as_str(),
            prefix,
            level: refusal.level.as_str(),
            destination,
            reason: refusal.reason.as_str(),
            until: (refusal.until > 0).then(|| Timestamp::from_millis(refusal.until)),
        };
        let data = emitter.fraud_blocked_data(&block);
        if let Err(e) = emitter
            .publish(
                store.as_ref(),
                EventType::FraudGuardBlocked,
                &block.destination,
                // A destination has no beginning of its own: all share the epoch.
                Timestamp::from_millis(0),
                data,
                now,
            )
            .await
        {
            tracing::error!(error = %Chain(&e), phone = %phone.masked(), "fraud guard: the fraud_guard.blocked event could not be written; the send is refused all the same");
        }
    }

    /// The fraud guard, once set.
    pub fn fraud_guard(&self) -> Option<&Arc<FraudGuard>> {
        self.fraud.get().map(|(g, _)| g)
    }

    /// Tells the guard that `phone`'s code was approved (a failure is logged, never refused:
    /// the user did nothing wrong).
    async fn guard_converted(&self, to: &Recipient, now: Timestamp) {
        let Some(phone) = to.phone() else { return };
        if let Some((guard, _)) = self.fraud.get()
            && let Err(e) = guard.converted(phone, now).await
        {
            tracing::warn!(error = %Chain(&e), phone = %phone.masked(), "fraud guard: could not count a conversion");
        }
    }

    /// Gives a guard reservation back (its code did not go out).
    async fn guard_release(&self, reservation: Option<crate::fraud::Reservation>) {
        if let (Some((guard, _)), Some(r)) = (self.fraud.get(), reservation)
            && let Err(e) = guard.release(r).await
        {
            tracing::warn!(error = %Chain(&e), "fraud guard: could not give back a reservation; it settles as unconverted");
        }
    }

    /// Honours the safe list in `store` from now on (once; later calls are ignored).
    pub fn set_safe_list(&self, store: Arc<dyn SafeListStore>, keys: Arc<Keys>) {
        let _ = self.safe_list.set((store, keys));
    }

    /// Whether `phone` is on the safe list (a point read of the store, so an entry added on any
    /// replica is in force at once).
    async fn safe_listed(&self, to: &Recipient) -> Result<bool, ServiceError> {
        let (Some((store, keys)), Some(phone)) = (self.safe_list.get(), to.phone()) else {
            return Ok(false);
        };
        let found = store
            .safe_number(&keys.phone_lookups(phone.e164()))
            .await
            .map_err(ProviderError::Store)?;
        Ok(found.is_some())
    }

    /// Records every send, check and refusal from now on in `log` (once; later calls are
    /// ignored).
    pub fn set_attempt_log(&self, log: Arc<AttemptLog>) {
        let _ = self.attempts.set(log);
    }

    /// The attempt log, once set.
    pub fn attempt_log(&self) -> Option<&Arc<AttemptLog>> {
        self.attempts.get()
    }

    /// The local engine (the provider in `local` mode, and the engine of test numbers).
    pub fn local_engine(&self) -> &LocalProvider {
        &self.local
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
        phone: Recipient,
        channel: Channel,
        caller: Caller,
    ) -> Result<Verification, ServiceError> {
        self.send_code_with(phone, channel, caller, SendOptions::default())
            .await
    }

    /// [`send_code`](Self::send_code) with a face's service settings and parameters (the
    /// `/v2` face): the same policy, in the same order, with the same all-or-nothing charging.
    ///
    /// # Errors
    /// [`ServiceError`] naming the step that refused.
    pub async fn send_code_with(
        &self,
        phone: Recipient,
        channel: Channel,
        caller: Caller,
        options: SendOptions,
    ) -> Result<Verification, ServiceError> {
        let Some(log) = self.attempts.get() else {
            return self.send_inner(phone, channel, caller, options).await;
        };
        let scope = options.scope.clone();
        let logged = phone.clone();
        let client = caller.client.as_ref().map(|c| c.as_str().to_owned());
        let result = self.send_inner(phone, channel, caller, options).await;
        // The local engine wrote a send's row in its transaction (a failed delivery's too).
        let journaled = self.journaled(&logged)
            && matches!(
                result,
                Ok(_)
                    | Err(ServiceError::Provider(
                        ProviderError::Delivery(_) | ProviderError::InvalidParameter(_)
                    ))
            );
        if !journaled {
            let mut entry = self.send_entry(&result, scope, &logged, channel);
            entry.client = client;
            log.record(entry);
        }
        result
    }

    /// The attempt-log row of a send's outcome.
    fn send_entry(
        &self,
        result: &Result<Verification, ServiceError>,
        scope: Option<String>,
        phone: &Recipient,
        channel: Channel,
    ) -> AttemptEntry {
        let now = self.clock.now();
        let mut e = AttemptEntry::new(AttemptKind::Refusal, now, scope, phone);
        e.channel = Some(channel);
        let vendor = if self.test_numbers.code(phone, now).is_some() {
            "test-number"
        } else {
            self.provider.name()
        };
        match result {
            Ok(v) => {
                e.kind = AttemptKind::Send;
                e.verification_sid = Some(v.sid.to_string());
                e.attempt_sid = v.send_attempts.last().map(|a| a.sid.to_string());
                e.channel = Some(v.channel);
                e.vendor = Some(v.vendor.unwrap_or(vendor));
                e.status = Some("sent");
                e.message = v.message;
            }
            Err(ServiceError::Policy(p)) => e.reason = Some(p.reason()),
            Err(ServiceError::FraudBlocked(_)) => e.reason = Some("fraud_blocked"),
            Err(ServiceError::RateLimited { bucket, .. }) => {
                e.reason = Some("rate_limited");
                e.bucket = Some(bucket.as_str());
            }
            Err(ServiceError::Provider(ProviderError::MaxSendAttempts)) => {
                e.reason = Some("max_send_attempts");
            }
            Err(ServiceError::Provider(
                ProviderError::Delivery(_) | ProviderError::Upstream(_),
            )) => {
                e.kind = AttemptKind::Send;
                e.vendor = Some(vendor);
                e.status = Some("failed");
            }
            Err(ServiceError::Provider(
                ProviderError::CountryNotAllowed
                | ProviderError::NumberTypeNotAllowed
                | ProviderError::FraudBlocked
                | ProviderError::InvalidParameter(_)
                | ProviderError::RateLimited { .. },
            )) => e.reason = Some("provider_refused"),
            Err(_) => e.reason = Some("unavailable"),
        }
        e
    }

    /// The send itself (see [`send_code_with`](Self::send_code_with)).
    async fn send_inner(
        &self,
        phone: Recipient,
        channel: Channel,
        caller: Caller,
        options: SendOptions,
    ) -> Result<Verification, ServiceError> {
        let mut options = options;
        self.policy
            .check_channel(channel)
            .inspect_err(count_refusal)?;
        // A safe-listed number skips the country and number-type rules and the shared
        // buckets (prefix, country, global); never the per-number and per-IP limits.
        let safe = self.safe_listed(&phone).await?;
        // The country and number-type rules are about numbers; an email address meets none.
        if !safe && let Some(number) = phone.phone() {
            self.policy
                .check_number(number)
                .inspect_err(count_refusal)?;
            if options.skip_landlines && number.number_type() == NumberType::FixedLine {
                let refused = PolicyError::NumberTypeNotAllowed(NumberType::FixedLine);
                count_refusal(&refused);
                return Err(refused.into());
            }
        }
        let now = self.clock.now();
        let test_number = self.test_numbers.code(&phone, now).is_some();
        // The fraud guard, before any bucket: safe-listed and test numbers never meet it.
        // It watches number prefixes and countries (SMS pumping); an email address has neither.
        let mut reservation = None;
        if !safe
            && !test_number
            && let Some(number) = phone.phone()
            && let Some((guard, _)) = self.fraud.get()
        {
            let admission = guard
                .check_send(number, now)
                .await
                .map_err(LimiterError::new)?;
            if admission.enforced
                && let Some(refusal) = admission.refusal
            {
                self.report_block(
                    guard,
                    number,
                    channel,
                    options.scope.as_deref(),
                    &refusal,
                    now,
                )
                .await;
                return Err(ServiceError::FraudBlocked(refusal));
            }
            reservation = admission.reservation;
        }
        let mut buckets =
            self.policy
                .send_buckets(&phone, caller.client.as_ref(), caller.user.as_deref());
        if test_number && self.fraud.get().is_some_and(|(_, bypass)| *bypass) {
            buckets.clear();
        }
        if safe {
            buckets.retain(|b| {
                !matches!(
                    b.name,
                    BucketName::Prefix | BucketName::Country | BucketName::Global
                )
            });
        }
        buckets.append(&mut options.extra_buckets);
        if let Err(e) = self.charge(&buckets, now).await {
            self.guard_release(reservation).await;
            return Err(e);
        }
        let request = StartRequest {
            client: caller.client,
            user: caller.user,
            now,
            channel,
            phone,
            options,
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
        if result.is_err() {
            self.guard_release(reservation).await;
        }
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
        phone: Recipient,
        code: OtpCode,
        caller: Caller,
    ) -> Result<Verification, ServiceError> {
        self.verify_code_with(phone, code, caller, CheckOptions::default())
            .await
    }

    /// [`verify_code`](Self::verify_code) within a service scope and with a PSD2 binding (the
    /// `/v2` face): the same buckets, the same engine, the same single use.
    ///
    /// # Errors
    /// [`ServiceError`] naming the step that refused.
    pub async fn verify_code_with(
        &self,
        phone: Recipient,
        code: OtpCode,
        caller: Caller,
        options: CheckOptions,
    ) -> Result<Verification, ServiceError> {
        let Some(log) = self.attempts.get() else {
            return self.verify_inner(phone, code, caller, options).await;
        };
        let scope = options.scope.clone();
        let logged = phone.clone();
        let client = caller.client.as_ref().map(|c| c.as_str().to_owned());
        let result = self.verify_inner(phone, code, caller, options).await;
        // The local engine wrote a counted check's row in its transaction.
        if self.journaled(&logged)
            && matches!(
                result,
                Ok(_) | Err(ServiceError::Refused(CheckRefusal::Incorrect { .. }))
            )
        {
            return result;
        }
        let mut e = AttemptEntry::new(AttemptKind::Check, self.clock.now(), scope, &logged);
        e.client = client;
        let found = match &result {
            Ok(v) => {
                e.status = Some("approved");
                Some(v)
            }
            Err(ServiceError::Refused(CheckRefusal::Incorrect { pending, .. })) => {
                e.status = Some("incorrect");
                pending.as_deref()
            }
            Err(ServiceError::Refused(CheckRefusal::MaxAttempts)) => {
                e.status = Some("max_attempts");
                None
            }
            Err(ServiceError::Refused(CheckRefusal::NotFound | CheckRefusal::Expired)) => {
                e.status = Some("not_found");
                None
            }
            Err(ServiceError::RateLimited { bucket, .. }) => {
                e.kind = AttemptKind::Refusal;
                e.reason = Some("rate_limited");
                e.bucket = Some(bucket.as_str());
                None
            }
            Err(_) => {
                e.kind = AttemptKind::Refusal;
                e.reason = Some("unavailable");
                None
            }
        };
        if let Some(v) = found {
            e.verification_sid = Some(v.sid.to_string());
            e.channel = Some(v.channel);
        }
        log.record(e);
        result
    }

    /// The check itself (see [`verify_code_with`](Self::verify_code_with)).
    async fn verify_inner(
        &self,
        phone: Recipient,
        code: OtpCode,
        caller: Caller,
        options: CheckOptions,
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
                options,
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
                if !test_number {
                    self.guard_converted(&verification.to, now).await;
                }
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

impl Verifier {
    /// The verification `sid` of `scope` while it exists for the API (pending, or locked after
    /// 5 wrong checks until its TTL).
    ///
    /// # Errors
    /// [`ServiceError::Provider`] with [`ProviderError::NotFound`] when it does not.
    pub async fn fetch_verification(
        &self,
        sid: &VerificationSid,
        scope: Option<&str>,
    ) -> Result<Verification, ServiceError> {
        Ok(self
            .engine_by_sid()
            .fetch(sid, scope, self.clock.now())
            .await?)
    }

    /// Ends the verification `sid` of `scope` as canceled or approved.
    ///
    /// # Errors
    /// [`ServiceError::Provider`]: not found, or locked (approving after 5 wrong checks).
    pub async fn finish_verification(
        &self,
        sid: &VerificationSid,
        scope: Option<&str>,
        status: VerificationStatus,
    ) -> Result<Verification, ServiceError> {
        let now: Timestamp = self.clock.now();
        let v = self.engine_by_sid().finish(sid, scope, status, now).await?;
        if status == VerificationStatus::Approved {
            self.guard_converted(&v.to, now).await;
        }
        // The local engine wrote the row in its transaction when it journals.
        if let Some(log) = self.attempts.get().filter(|_| !self.local.journals()) {
            // An approval by update converts the verification's attempts, like a right code.
            let mut e = AttemptEntry::new(AttemptKind::Check, now, scope.map(str::to_owned), &v.to);
            e.status = Some(status.as_str());
            e.verification_sid = Some(v.sid.to_string());
            e.channel = Some(v.channel);
            log.record(e);
        }
        Ok(v)
    }

    /// Whether the local engine serves `phone` and writes its rows itself (in the store
    /// transaction of each change), so the service must not queue them too.
    fn journaled(&self, phone: &Recipient) -> bool {
        self.local.journals()
            && (self.provider.name() == "local"
                || self.test_numbers.code(phone, self.clock.now()).is_some())
    }

    /// The engine that keeps verifications by sid: the local engine (the main provider in
    /// `local` mode; Twilio keeps its own, which verifyd does not fetch).
    fn engine_by_sid(&self) -> &dyn Provider {
        if self.provider.name() == "local" {
            self.provider.as_ref()
        } else {
            self.local.as_ref()
        }
    }
}

fn count_refusal(e: &PolicyError) {
    metrics::counter!("verifyd_policy_refused_total", "reason" => e.reason()).increment(1);
}
