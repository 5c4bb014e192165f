//! The `twilio-verify` engine (the seed's setup): Twilio Verify chooses, delivers and checks the
//! code and keeps the verification's lifecycle; verifyd's policy has already run, so a request
//! that reaches this module is one verifyd allows.
//!
//! - start → `POST /v2/Services/{VA…}/Verifications` (`To`, `Channel`, and `RateLimits` with the
//!   client's IP key when the Twilio-side IP bucket is on). Never retried: after a timeout or a
//!   5xx an SMS may already be out.
//! - check → `POST /v2/Services/{VA…}/VerificationCheck` (`To`, `Code`). Retried once, and only
//!   when no connection could be made (the check never reached Twilio).
//! - cancel → `POST /v2/Services/{VA…}/Verifications/{VE…}` (`Status=canceled`). Retried once on
//!   connect errors only.
//!
//! Twilio's check answer has no `send_code_attempts`, and Twilio does not say how many checks
//! are left. [`RecentSends`] keeps, in memory, what this process saw at send time (the attempts
//! and the wrong checks since, per number, bounded and expiring with `VERIFYD_CODE_TTL`); when it
//! knows nothing (another replica sent, or a restart) the attempts are `[]` and
//! `attemptsRemaining` is left out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{CheckRequest, InvalidParameter, Provider, ProviderError, StartRequest};
use crate::config::{Config, TwilioCredentials};
use crate::domain::{
    AttemptSid, Channel, CheckOutcome, CheckRefusal, Lifecycle, Recipient, SendAttempt, Timestamp,
    Verification, VerificationSid, VerificationStatus,
};
use crate::error::Context;
use crate::twilio::{TwilioClient, TwilioError};

/// The `unique_name` of the Twilio-side RateLimit that carries the client's IP key.
pub const IP_RATE_LIMIT: &str = "end_user_ip_address";

/// How many numbers [`RecentSends`] remembers at most.
const RECENT_CAPACITY: usize = 10_000;

/// `Retry-After` when Twilio rate-limits without saying for how long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Which call failed: the same Twilio code means different things on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Start,
    Check,
    Cancel,
}

impl Call {
    const fn as_str(self) -> &'static str {
        match self {
            Call::Start => "start verification",
            Call::Check => "verification check",
            Call::Cancel => "cancel verification",
        }
    }
}

/// Twilio's Verification / VerificationCheck resource (only what we read).
#[derive(Deserialize)]
struct TwilioVerification {
    sid: Option<String>,
    to: Option<String>,
    channel: Option<String>,
    status: Option<String>,
    date_created: Option<String>,
    date_updated: Option<String>,
    #[serde(default)]
    send_code_attempts: Option<Vec<TwilioAttempt>>,
}

#[derive(Deserialize)]
struct TwilioAttempt {
    attempt_sid: Option<String>,
    channel: Option<String>,
    time: Option<String>,
}

/// What this process saw of one number's current verification.
struct Recent {
    sid: VerificationSid,
    /// The JWT user who started it (None for API-key callers).
    owner: Option<String>,
    attempts: Vec<SendAttempt>,
    wrong_checks: u32,
    expires: Timestamp,
}

/// A bounded, expiring memory of recent sends, keyed by E.164 number. In memory only: it holds
/// no code, and it is lost on restart (then the check answer has `[]` attempts and no
/// `attemptsRemaining`).
pub struct RecentSends {
    entries: Mutex<HashMap<String, Recent>>,
    capacity: usize,
    life: Lifecycle,
}

impl RecentSends {
    /// Remembers at most `capacity` numbers, each for `life.ttl` after its verification began.
    pub fn new(capacity: usize, life: Lifecycle) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            life,
        }
    }

    fn remember(
        &self,
        to: &str,
        sid: &VerificationSid,
        attempts: &[SendAttempt],
        owner: Option<&str>,
        now: Timestamp,
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if let Some(entry) = entries.get_mut(to)
            && entry.sid == *sid
            && entry.expires > now
        {
            entry.attempts = attempts.to_vec();
            entry.owner = owner.map(str::to_owned);
            return;
        }
        if !entries.contains_key(to) && entries.len() >= self.capacity {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: forget the earliest-expiring tenth in one pass, so
                // a stream of new numbers costs one scan per `capacity / 10` sends instead of a
                // scan per send (that scan was most of a send's CPU in twilio-verify mode).
                let excess = entries.len() + 1 - self.capacity + self.capacity / 10;
                let mut expiries: Vec<Timestamp> = entries.values().map(|e| e.expires).collect();
                let threshold = *expiries.select_nth_unstable(excess - 1).1;
                let mut budget = excess;
                entries.retain(|_, e| {
                    if budget > 0 && e.expires <= threshold {
                        budget -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        entries.insert(
            to.to_owned(),
            Recent {
                sid: sid.clone(),
                owner: owner.map(str::to_owned),
                attempts: attempts.to_vec(),
                wrong_checks: 0,
                expires: now.plus(self.life.ttl),
            },
        );
    }

    /// Counts a wrong check; the checks left, when this process knows the verification.
    fn wrong_check(&self, to: &str, sid: Option<&VerificationSid>, now: Timestamp) -> Option<u32> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get_mut(to)?;
        if entry.expires <= now || sid.is_some_and(|s| *s != entry.sid) {
            return None;
        }
        entry.wrong_checks += 1;
        Some(self.life.max_checks.saturating_sub(entry.wrong_checks))
    }

    /// Whether this process saw `to`'s live verification started by someone other than `user`.
    /// Twilio keeps one pending verification per number, so only checks can be bound to users,
    /// and only on the replica that saw the send.
    fn owned_by_another(&self, to: &str, user: Option<&str>, now: Timestamp) -> bool {
        self.entries.lock().is_ok_and(|entries| {
            entries
                .get(to)
                .is_some_and(|e| e.expires > now && e.owner.as_deref() != user)
        })
    }

    fn attempts(&self, to: &str, sid: &VerificationSid, now: Timestamp) -> Vec<SendAttempt> {
        self.entries
            .lock()
            .ok()
            .and_then(|entries| {
                entries
                    .get(to)
                    .filter(|e| e.sid == *sid && e.expires > now)
                    .map(|e| e.attempts.clone())
            })
            .unwrap_or_default()
    }

    fn forget(&self, to: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(to);
        }
    }

    fn forget_sid(&self, sid: &VerificationSid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, e| e.sid != *sid);
        }
    }

    /// How many numbers are remembered (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Twilio Verify as the engine.
pub struct TwilioVerifyProvider {
    api: TwilioClient,
    service_sid: String,
    /// Send `RateLimits` (the client's IP key) with each start: the IP bucket is on.
    send_rate_limits: bool,
    recent: RecentSends,
}

impl TwilioVerifyProvider {
    /// A provider for the service in `credentials`, at `base_url`.
    ///
    /// # Errors
    /// [`TwilioError::Setup`] when the HTTP client cannot be built.
    pub fn new(
        credentials: &TwilioCredentials,
        base_url: &str,
        timeout: Duration,
        send_rate_limits: bool,
        life: Lifecycle,
    ) -> Result<Self, TwilioError> {
        Ok(Self {
            api: TwilioClient::new(
                base_url,
                &credentials.account_sid,
                credentials.auth_token.clone(),
                timeout,
            )?,
            service_sid: credentials.service_sid.clone(),
            send_rate_limits,
            recent: RecentSends::new(RECENT_CAPACITY, life),
        })
    }

    /// The provider the settings describe.
    ///
    /// # Errors
    /// [`TwilioError::Setup`] when the credentials are missing or the client cannot be built.
    pub fn from_config(config: &Config) -> Result<Self, TwilioError> {
        let credentials = config.twilio.credentials.as_ref().ok_or_else(|| {
            TwilioError::Setup(
                "twilio-verify needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_SERVICE_SID"
                    .to_owned(),
            )
        })?;
        Self::new(
            credentials,
            &config.twilio.verify_base_url,
            config.twilio.timeout,
            config.limits.rate_limit_ip.enabled(),
            Lifecycle::with_ttl(config.codes.ttl),
        )
    }

    fn path(&self, tail: &str) -> String {
        format!("/v2/Services/{}{tail}", self.service_sid)
    }

    /// A call that may be repeated once when the first try could not connect.
    async fn post_retrying_connect(
        &self,
        path: &str,
        form: &[(&str, &str)],
        call: Call,
    ) -> Result<TwilioVerification, TwilioError> {
        match self.api.post_form(path, form).await {
            Err(TwilioError::Connect(first)) => {
                tracing::warn!(call = call.as_str(), error = %first, "could not connect to Twilio; retrying once");
                self.api.post_form(path, form).await
            }
            other => other,
        }
    }

    fn view(
        &self,
        answer: TwilioVerification,
        phone: Option<&Recipient>,
        requested: Option<Channel>,
        now: Timestamp,
    ) -> Result<Verification, ProviderError> {
        let sid = answer
            .sid
            .as_deref()
            .and_then(VerificationSid::parse)
            .ok_or_else(|| upstream("Twilio's answer has no readable verification sid"))?;
        let to = match phone {
            Some(p) => p.clone(),
            None => answer
                .to
                .as_deref()
                .and_then(|t| Recipient::parse(t).ok())
                .ok_or_else(|| upstream("Twilio's answer has no readable `to`"))?,
        };
        let channel = answer
            .channel
            .as_deref()
            .and_then(parse_channel)
            .or(requested)
            .unwrap_or(Channel::Sms);
        let status = answer
            .status
            .as_deref()
            .and_then(parse_status)
            .ok_or_else(|| upstream("Twilio's answer has an unknown status"))?;
        let created = answer
            .date_created
            .as_deref()
            .and_then(parse_time)
            .unwrap_or(now);
        let updated = answer
            .date_updated
            .as_deref()
            .and_then(parse_time)
            .unwrap_or(created);
        let send_attempts = answer
            .send_code_attempts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| {
                Some(SendAttempt {
                    sid: AttemptSid::parse(a.attempt_sid.as_deref()?)?,
                    channel: a
                        .channel
                        .as_deref()
                        .and_then(parse_channel)
                        .unwrap_or(channel),
                    time: a.time.as_deref().and_then(parse_time).unwrap_or(now),
                })
            })
            .collect();
        Ok(Verification {
            sid,
            to,
            channel,
            status,
            send_attempts,
            created,
            updated,
            message: None,
            vendor: None,
        })
    }
}

#[async_trait]
impl Provider for TwilioVerifyProvider {
    async fn start(&self, request: StartRequest) -> Result<Verification, ProviderError> {
        let StartRequest {
            phone,
            channel,
            client,
            user,
            now,
            // Twilio applies its own service's settings; the /v2 face needs the local engine.
            options: _,
        } = request;
        let rate_limits = match (&client, self.send_rate_limits) {
            (Some(client), true) => {
                Some(serde_json::json!({ IP_RATE_LIMIT: client.as_str() }).to_string())
            }
            _ => None,
        };
        let mut form = vec![("To", phone.as_str()), ("Channel", channel.as_str())];
        if let Some(value) = &rate_limits {
            form.push(("RateLimits", value.as_str()));
        }
        // Never retried: after a timeout or a 5xx the SMS may already be out.
        let answered = self
            .api
            .post_form(&self.path("/Verifications"), &form)
            .await;
        let country = phone
            .region()
            .map_or_else(|| "none".to_owned(), |r| r.to_string());
        metrics::counter!(
            "verifyd_sms_sent_total",
            "provider" => "twilio-verify",
            "channel" => channel.as_str(),
            "country" => country,
            "outcome" => if answered.is_ok() { "sent" } else { "failed" },
        )
        .increment(1);
        let answer: TwilioVerification = answered.map_err(|e| provider_error(e, Call::Start))?;
        let verification = self.view(answer, Some(&phone), Some(channel), now)?;
        self.recent.remember(
            phone.as_str(),
            &verification.sid,
            &verification.send_attempts,
            user.as_deref(),
            now,
        );
        Ok(verification)
    }

    async fn check(&self, request: CheckRequest) -> Result<CheckOutcome, ProviderError> {
        let CheckRequest {
            phone,
            code,
            user,
            now,
            options: _,
        } = request;
        if self
            .recent
            .owned_by_another(phone.as_str(), user.as_deref(), now)
        {
            return Ok(CheckOutcome::Refused(CheckRefusal::NotFound));
        }
        let form = [("To", phone.as_str()), ("Code", code.expose())];
        let answer = match self
            .post_retrying_connect(&self.path("/VerificationCheck"), &form, Call::Check)
            .await
        {
            Ok(answer) => answer,
            // 20404: no pending verification; 60202: max check attempts reached.
            Err(TwilioError::Api(failure)) if failure.code == Some(20404) => {
                self.recent.forget(phone.as_str());
                return Ok(CheckOutcome::Refused(CheckRefusal::NotFound));
            }
            Err(TwilioError::Api(failure)) if failure.code == Some(60202) => {
                return Ok(CheckOutcome::Refused(CheckRefusal::MaxAttempts));
            }
            Err(e) => return Err(provider_error(e, Call::Check)),
        };
        let sid = answer.sid.as_deref().and_then(VerificationSid::parse);
        match answer.status.as_deref().and_then(parse_status) {
            Some(VerificationStatus::Approved) => {
                let mut verification = self.view(answer, Some(&phone), None, now)?;
                verification.send_attempts =
                    self.recent.attempts(phone.as_str(), &verification.sid, now);
                self.recent.forget(phone.as_str());
                Ok(CheckOutcome::Approved(verification))
            }
            Some(VerificationStatus::Pending) => {
                Ok(CheckOutcome::Refused(CheckRefusal::Incorrect {
                    attempts_remaining: self.recent.wrong_check(phone.as_str(), sid.as_ref(), now),
                    pending: None,
                }))
            }
            Some(VerificationStatus::MaxAttemptsReached) => {
                Ok(CheckOutcome::Refused(CheckRefusal::MaxAttempts))
            }
            Some(_) => {
                self.recent.forget(phone.as_str());
                Ok(CheckOutcome::Refused(CheckRefusal::NotFound))
            }
            None => Err(upstream("Twilio's check answer has an unknown status")),
        }
    }

    async fn cancel(
        &self,
        sid: &VerificationSid,
        now: Timestamp,
    ) -> Result<Verification, ProviderError> {
        let path = self.path(&format!("/Verifications/{sid}"));
        let answer = self
            .post_retrying_connect(&path, &[("Status", "canceled")], Call::Cancel)
            .await
            .map_err(|e| provider_error(e, Call::Cancel))?;
        self.recent.forget_sid(sid);
        self.view(answer, None, None, now)
    }

    fn name(&self) -> &'static str {
        "twilio-verify"
    }
}

fn upstream(what: &str) -> ProviderError {
    ProviderError::Upstream(what.into())
}

/// Twilio's answer, as one row of DESIGN.md's error table.
fn provider_error(error: TwilioError, call: Call) -> ProviderError {
    let failure = match error {
        TwilioError::Api(failure) => failure,
        other => {
            return ProviderError::Upstream(
                Context::new(format!("Twilio Verify {}", call.as_str()), other).into(),
            );
        }
    };
    match failure.code {
        Some(60200) if failure.names_parameter("To") => {
            ProviderError::InvalidParameter(InvalidParameter::To)
        }
        Some(60200) if failure.names_parameter("Channel") => {
            ProviderError::InvalidParameter(InvalidParameter::Channel)
        }
        Some(60200) if failure.names_parameter("Code") => {
            ProviderError::InvalidParameter(InvalidParameter::Code)
        }
        Some(60203) => ProviderError::MaxSendAttempts,
        Some(60212 | 20429) => ProviderError::RateLimited {
            retry_after: Some(failure.retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        },
        Some(60605) => ProviderError::CountryNotAllowed,
        Some(60410) => ProviderError::FraudBlocked,
        Some(60205) => ProviderError::NumberTypeNotAllowed,
        // On a start, "not found" is the service itself: a configuration problem. (A check
        // answers its 20404 as an outcome before coming here.)
        Some(20404) if call != Call::Start => ProviderError::NotFound,
        Some(20404) => ProviderError::Upstream(
            Context::new(
                format!("Twilio Verify {} (check TWILIO_SERVICE_SID)", call.as_str()),
                TwilioError::Api(failure),
            )
            .into(),
        ),
        _ if failure.status == 429 => ProviderError::RateLimited {
            retry_after: Some(failure.retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        },
        _ => ProviderError::Upstream(
            Context::new(
                format!("Twilio Verify {}", call.as_str()),
                TwilioError::Api(failure),
            )
            .into(),
        ),
    }
}

/// Twilio's channel names; its attempts spell them in capitals (`SMS`).
fn parse_channel(s: &str) -> Option<Channel> {
    s.to_ascii_lowercase().parse().ok()
}

fn parse_status(s: &str) -> Option<VerificationStatus> {
    match s {
        "deleted" => Some(VerificationStatus::Canceled),
        other => VerificationStatus::parse(other),
    }
}

/// Twilio's ISO 8601 times (`2015-07-30T20:00:00Z`).
fn parse_time(s: &str) -> Option<Timestamp> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let millis = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(Timestamp::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> VerificationSid {
        VerificationSid::parse(&format!("VE{:032x}", n)).unwrap()
    }

    #[test]
    fn recent_sends_count_wrong_checks_only_for_the_known_verification() {
        let recent = RecentSends::new(10, Lifecycle::with_ttl(Duration::from_secs(600)));
        let now = Timestamp::from_millis(1_000_000);
        recent.remember("+14155552671", &sid(1), &[], None, now);
        assert_eq!(
            recent.wrong_check("+14155552671", Some(&sid(1)), now),
            Some(4)
        );
        assert_eq!(recent.wrong_check("+14155552671", Some(&sid(2)), now), None);
        assert_eq!(recent.wrong_check("+14155552672", Some(&sid(1)), now), None);
        // A resend of the same verification keeps the count.
        recent.remember("+14155552671", &sid(1), &[], None, now);
        assert_eq!(
            recent.wrong_check("+14155552671", Some(&sid(1)), now),
            Some(3)
        );
        let later = now.plus(Duration::from_secs(600));
        assert_eq!(
            recent.wrong_check("+14155552671", Some(&sid(1)), later),
            None
        );
    }

    #[test]
    fn recent_sends_stay_within_capacity() {
        let recent = RecentSends::new(3, Lifecycle::with_ttl(Duration::from_secs(600)));
        let now = Timestamp::from_millis(1_000_000);
        for i in 0..10u8 {
            recent.remember(
                &format!("+1415555267{i}"),
                &sid(i),
                &[],
                None,
                now.plus(Duration::from_secs(i.into())),
            );
        }
        assert_eq!(recent.len(), 3);
    }

    #[test]
    fn a_full_memory_forgets_the_earliest_expiring_numbers_first() {
        let recent = RecentSends::new(100, Lifecycle::with_ttl(Duration::from_secs(600)));
        let start = Timestamp::from_millis(1_000_000);
        for i in 0..1000u32 {
            let at = start.plus(Duration::from_millis(i.into()));
            recent.remember(&format!("+1415555{i:04}"), &sid(1), &[], None, at);
            assert!(recent.len() <= 100, "{} after {i}", recent.len());
        }
        let now = start.plus(Duration::from_secs(1));
        // The latest 90 are always remembered; the first ones are long forgotten.
        for i in 910..1000u32 {
            assert!(
                recent
                    .wrong_check(&format!("+1415555{i:04}"), None, now)
                    .is_some(),
                "{i}"
            );
        }
        assert_eq!(recent.wrong_check("+14155550000", None, now), None);
    }

    #[test]
    fn twilio_times_and_channels_are_read() {
        assert_eq!(
            parse_time("1970-01-01T00:00:01Z"),
            Some(Timestamp::from_millis(1000))
        );
        assert_eq!(parse_channel("SMS"), Some(Channel::Sms));
        assert_eq!(parse_channel("auto"), None);
        assert_eq!(parse_status("deleted"), Some(VerificationStatus::Canceled));
    }
}
