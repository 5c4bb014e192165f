//! Twilio's settings: the seed's three credentials (all three select Twilio Verify), the base
//! URLs of Twilio's APIs (tests point them at a fake), the deadline of each call and whether
//! startup syncs the Twilio-side rate limit. The Messaging sender's own settings (its
//! `From`) are delivery's.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use super::parse::{parse_base_url, parse_bool, positive_duration, sid};
use super::settings::{
    ENV_TWILIO_ACCOUNT_SID, ENV_TWILIO_API_BASE_URL, ENV_TWILIO_AUTH_TOKEN,
    ENV_TWILIO_MESSAGING_BASE_URL, ENV_TWILIO_SERVICE_SID, ENV_TWILIO_SYNC_RATE_LIMITS,
    ENV_TWILIO_TIMEOUT, ENV_TWILIO_VERIFY_BASE_URL,
};
use super::source::Reader;

/// Twilio's settings.
#[derive(Clone, Debug)]
pub struct TwilioSettings {
    /// Set when all three seed values are.
    pub credentials: Option<TwilioCredentials>,
    /// Base URL of Twilio Verify, without a trailing slash.
    pub verify_base_url: String,
    /// Base URL of Twilio's core REST API (Messaging), without a trailing slash.
    pub api_base_url: String,
    /// Base URL of Twilio's Messaging API (Messaging Services), without a trailing slash.
    pub messaging_base_url: String,
    /// Deadline of each Twilio call.
    pub timeout: Duration,
    /// Whether startup syncs the Twilio-side IP bucket (twilio-verify only).
    pub sync_rate_limits: bool,
}

/// The seed's three Twilio values, format-checked.
#[derive(Clone)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: SecretString,
    pub service_sid: String,
}

impl fmt::Debug for TwilioCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioCredentials")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("service_sid", &self.service_sid)
            .finish()
    }
}

/// Twilio's settings as read: the raw credentials (the Messaging sender needs only the first
/// two) and each value `None` when its problem was recorded.
pub(super) struct TwilioDraft {
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub service_sid: Option<String>,
    pub verify_base_url: Option<String>,
    pub api_base_url: Option<String>,
    pub messaging_base_url: Option<String>,
    pub timeout: Option<Duration>,
    pub sync_rate_limits: Option<bool>,
}

impl TwilioDraft {
    /// All three seed values are set (they select Twilio Verify).
    pub(super) fn all(&self) -> bool {
        self.account_sid.is_some() && self.auth_token.is_some() && self.service_sid.is_some()
    }

    /// Some seed value is set.
    pub(super) fn any(&self) -> bool {
        self.account_sid.is_some() || self.auth_token.is_some() || self.service_sid.is_some()
    }

    pub(super) fn finish(self) -> Option<TwilioSettings> {
        let credentials = self.all().then(|| TwilioCredentials {
            account_sid: self.account_sid.clone().unwrap_or_default(),
            auth_token: SecretString::from(self.auth_token.clone().unwrap_or_default()),
            service_sid: self.service_sid.clone().unwrap_or_default(),
        });
        Some(TwilioSettings {
            credentials,
            verify_base_url: self.verify_base_url?,
            api_base_url: self.api_base_url?,
            messaging_base_url: self.messaging_base_url?,
            timeout: self.timeout?,
            sync_rate_limits: self.sync_rate_limits?,
        })
    }
}

/// Reads the seed's three credentials.
pub(super) fn read_credentials(r: &mut Reader<'_>) -> TwilioDraft {
    let account_sid = r.raw(ENV_TWILIO_ACCOUNT_SID).0.filter(|v| !v.is_empty());
    let auth_token = r.raw(ENV_TWILIO_AUTH_TOKEN).0.filter(|v| !v.is_empty());
    let service_sid = r.raw(ENV_TWILIO_SERVICE_SID).0.filter(|v| !v.is_empty());
    if let Some(v) = &account_sid
        && let Err(e) = sid(v, "AC")
    {
        r.problem(ENV_TWILIO_ACCOUNT_SID, v, e);
    }
    if let Some(v) = &service_sid
        && let Err(e) = sid(v, "VA")
    {
        r.problem(ENV_TWILIO_SERVICE_SID, v, e);
    }
    if let Some(v) = &auth_token
        && (v.len() < 32 || !v.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        r.problem(
            ENV_TWILIO_AUTH_TOKEN,
            v,
            "must be the 32-character Auth Token from the Twilio console",
        );
    }
    TwilioDraft {
        account_sid,
        auth_token,
        service_sid,
        verify_base_url: None,
        api_base_url: None,
        messaging_base_url: None,
        timeout: None,
        sync_rate_limits: None,
    }
}

/// Reads the base URLs, the deadline and the sync switch.
pub(super) fn read_api(r: &mut Reader<'_>, draft: &mut TwilioDraft) {
    draft.verify_base_url = r.parse(ENV_TWILIO_VERIFY_BASE_URL, parse_base_url);
    draft.api_base_url = r.parse(ENV_TWILIO_API_BASE_URL, parse_base_url);
    draft.messaging_base_url = r.parse(ENV_TWILIO_MESSAGING_BASE_URL, parse_base_url);
    draft.timeout = r.parse(ENV_TWILIO_TIMEOUT, positive_duration);
    draft.sync_rate_limits = r.parse(ENV_TWILIO_SYNC_RATE_LIMITS, parse_bool);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::config::*;

    #[test]
    fn all_three_twilio_values_select_twilio_verify() {
        let c = config(&[
            (ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_AUTH_TOKEN, "fedcba9876543210fedcba9876543210"),
            (ENV_TWILIO_SERVICE_SID, "VA0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(c.delivery.provider, ProviderKind::TwilioVerify);
        assert!(!format!("{:?}", c.twilio.credentials).contains("fedcba98"));
        assert!(!c.describe().contains("fedcba98"));
    }

    #[test]
    fn twilio_settings_have_defaults_and_are_checked() {
        let c = config(&[]).unwrap();
        assert_eq!(c.twilio.verify_base_url, "https://verify.twilio.com");
        assert_eq!(c.twilio.api_base_url, "https://api.twilio.com");
        assert_eq!(c.twilio.timeout, Duration::from_secs(10));
        assert!(c.twilio.sync_rate_limits);
        let c = config(&[
            (ENV_TWILIO_VERIFY_BASE_URL, "http://127.0.0.1:9/"),
            (ENV_TWILIO_SYNC_RATE_LIMITS, "false"),
        ])
        .unwrap();
        assert_eq!(c.twilio.verify_base_url, "http://127.0.0.1:9");
        assert!(!c.twilio.sync_rate_limits);
        let err = config(&[
            (ENV_TWILIO_VERIFY_BASE_URL, "ftp://x"),
            (ENV_TWILIO_TIMEOUT, "0"),
            (ENV_TWILIO_SYNC_RATE_LIMITS, "maybe"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    #[test]
    fn toml_accepts_the_twilio_sync_switch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("verifyd.toml"),
            "twilio_sync_rate_limits = false\ntwilio_timeout = 3\n",
        )
        .unwrap();
        let sources = Sources::load(dir.path(), |_| None).unwrap();
        let c = Config::from_sources(&sources).unwrap();
        assert!(!c.twilio.sync_rate_limits);
        assert_eq!(c.twilio.timeout, Duration::from_secs(3));
    }

    #[test]
    fn partial_twilio_values_warn_and_stay_local() {
        let c = config(&[(ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef")]).unwrap();
        assert_eq!(c.delivery.provider, ProviderKind::Local);
        assert_eq!(c.warnings.len(), 1);
    }
}
