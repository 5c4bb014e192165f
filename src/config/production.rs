//! The profile (`VERIFYD_ENV`) and the production rules: `production` refuses the laptop
//! defaults and the settings that undo a protection, one problem per rule, each naming its
//! variable; only what is in use is judged. Development instead warns about plain http:// URLs
//! that leave the machine.

use std::time::Duration;

use ipnet::IpNet;

use super::auth::AuthMode;
use super::codes::TestNumber;
use super::delivery::{ProviderKind, SenderKind};
use super::parse::plain_http;
use super::settings::{
    ENV_API_KEYS, ENV_CODE_LENGTH, ENV_CODE_TTL, ENV_ENV, ENV_SECRET, ENV_SMS_SENDER,
    ENV_TRUSTED_PROXIES,
};
use super::source::{Problem, Reader};
use crate::domain::CodeLength;

/// Which rules the settings are held to (`VERIFYD_ENV`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The embedded default: made for a laptop (console sender, generated secret and key).
    Development,
    /// Refuses the laptop defaults and other unsafe settings (see [`production_rules`]).
    Production,
}

impl Profile {
    pub const fn as_str(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Production => "production",
        }
    }
}

/// Reads `VERIFYD_ENV`.
pub(super) fn read_profile(r: &mut Reader<'_>) -> Option<Profile> {
    r.parse(ENV_ENV, |t| match t {
        "development" => Ok(Profile::Development),
        "production" => Ok(Profile::Production),
        _ => Err("expected `development` or `production`".to_owned()),
    })
}

/// Development: a warning per outbound URL in use that is plain http:// to a host that is not
/// loopback (production refuses every plain http:// one in [`production_rules`]).
pub(super) fn warn_plain_http(r: &mut Reader<'_>, urls: &[(&'static str, &str)]) {
    for (name, url) in urls {
        if plain_http(url) == Some(false) {
            r.warn(format!(
                "{name} is plain http:// to a host that is not loopback: what it carries \
                 travels unencrypted (production refuses it); use https://"
            ));
        }
    }
}

/// What the production rules look at (only what is in use is judged).
pub(super) struct Judged<'a> {
    pub(super) provider: Option<ProviderKind>,
    pub(super) sms_sender: Option<SenderKind>,
    pub(super) secret_set: bool,
    pub(super) auth_mode: AuthMode,
    pub(super) api_keys_set: bool,
    pub(super) trusted_proxies: Option<&'a [IpNet]>,
    pub(super) test_numbers: &'a [TestNumber],
    pub(super) code_length: Option<CodeLength>,
    pub(super) code_ttl: Option<Duration>,
    /// The outbound URLs in use, by setting.
    pub(super) urls: &'a [(&'static str, &'a str)],
}

/// The shortest code production accepts.
const PRODUCTION_MIN_CODE_LENGTH: usize = 6;
/// The longest code lifetime production accepts (Twilio Verify's 10 minutes).
const PRODUCTION_MAX_CODE_TTL: Duration = Duration::from_secs(600);

/// `VERIFYD_ENV=production`: refuses the laptop defaults and the settings that undo a
/// protection, one problem per rule, each naming its variable.
pub(super) fn production_rules(r: &mut Reader<'_>, j: &Judged<'_>) {
    // The sender is judged only when the local engine delivers with it (twilio-verify: unused).
    if j.provider == Some(ProviderKind::Local)
        && let Some(sender @ (SenderKind::Console | SenderKind::Null)) = j.sms_sender
    {
        let why = match sender {
            SenderKind::Console => "prints codes to stdout and serves them at /dev/outbox",
            _ => "discards every code",
        };
        r.problem(
            ENV_SMS_SENDER,
            sender.as_str(),
            format!(
                "is refused in production: it {why}; set VERIFYD_SMS_SENDER=twilio-messaging or webhook, or use Twilio Verify (VERIFYD_PROVIDER=twilio-verify)"
            ),
        );
    }
    if !j.secret_set {
        r.unset_problem(
            ENV_SECRET,
            "must be set explicitly in production (a generated secret lives in one file beside one database, is lost with it and cannot be shared by replicas); generate one with `openssl rand -hex 32`",
        );
    }
    // With `jwt` the JWT settings are required in every profile; API keys, when accepted, must
    // be listed explicitly here.
    if j.auth_mode.api_keys() && !j.api_keys_set {
        r.unset_problem(
            ENV_API_KEYS,
            "must be set explicitly in production (a generated key is printed once to stdout); list your keys, comma-separated",
        );
    }
    if let Some(proxies) = j.trusted_proxies
        && let Some(all) = proxies.iter().find(|n| n.prefix_len() == 0)
    {
        r.problem(
            ENV_TRUSTED_PROXIES,
            &all.to_string(),
            "trusts every address, so any client chooses its own IP bucket with X-Forwarded-For; list only your reverse proxies' addresses",
        );
    }
    if let Some(length) = j.code_length
        && length.get() < PRODUCTION_MIN_CODE_LENGTH
    {
        r.problem(
            ENV_CODE_LENGTH,
            &length.get().to_string(),
            "is refused in production: codes under 6 digits are too easy to guess (with 5 checks per code, a 4-digit code falls once in 2,000 tries); use 6 or more",
        );
    }
    if let Some(ttl) = j.code_ttl
        && ttl > PRODUCTION_MAX_CODE_TTL
    {
        r.problem(
            ENV_CODE_TTL,
            &ttl.as_secs().to_string(),
            "is refused in production: a code valid for more than 600 seconds (10 minutes) gives guessing and phishing more time; use at most 600",
        );
    }
    for (name, url) in j.urls {
        if plain_http(url).is_some() {
            r.problem(
                name,
                url,
                "is refused in production: plain http:// lets anyone on the path read and change what it carries (codes, tokens, credentials), loopback included; use https://",
            );
        }
    }
    for (i, t) in j.test_numbers.iter().enumerate() {
        if t.valid_until.is_none() {
            r.problems.push(Problem {
                name: format!("test_numbers[{i}]"),
                value: t.number.masked(),
                reason: "has no valid_until: in production a test number (a fixed code that approves) must expire; add valid_until = \"YYYY-MM-DD\""
                    .to_owned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::config::*;

    #[test]
    fn production_refuses_each_unsafe_setting_and_judges_only_what_is_in_use() {
        let good = [
            (ENV_ENV, "production"),
            (ENV_SECRET, "a-production-secret-0123456789-0123456789"),
            (ENV_API_KEYS, "a-production-api-key-0123"),
            (ENV_SMS_SENDER, "webhook"),
            (ENV_SMS_WEBHOOK_URL, "https://sms.example.com/hook"),
            (ENV_SMS_WEBHOOK_SECRET, "a-webhook-secret-of-some-length"),
        ];
        let c = config(&good).unwrap();
        assert_eq!(c.profile, Profile::Production);
        assert_eq!(c.auth.mode, AuthMode::ApiKey);
        let without = |name: &str| -> Vec<(&str, &str)> {
            good.iter().copied().filter(|(k, _)| *k != name).collect()
        };
        for (pairs, named) in [
            (without(ENV_SECRET), ENV_SECRET),
            (without(ENV_API_KEYS), ENV_API_KEYS),
            (
                [without(ENV_SMS_SENDER), vec![(ENV_SMS_SENDER, "null")]].concat(),
                ENV_SMS_SENDER,
            ),
            (
                [good.to_vec(), vec![(ENV_TRUSTED_PROXIES, "::/0")]].concat(),
                ENV_TRUSTED_PROXIES,
            ),
        ] {
            let err = config(&pairs).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{err}");
            assert_eq!(err.problems[0].name, named, "{err}");
        }
        // Weak code settings, and plain http:// where codes or credentials travel.
        for (set, named) in [
            ((ENV_CODE_LENGTH, "5"), ENV_CODE_LENGTH),
            ((ENV_CODE_TTL, "601"), ENV_CODE_TTL),
            ((ENV_CODE_TTL, "1h"), ENV_CODE_TTL),
            // Where vendors post delivery receipts.
            (
                (ENV_PUBLIC_URL, "http://verifyd.example.com"),
                ENV_PUBLIC_URL,
            ),
            (
                (ENV_SMS_WEBHOOK_URL, "http://127.0.0.1:9/hook"),
                ENV_SMS_WEBHOOK_URL,
            ),
            (
                (
                    ENV_SMS_WEBHOOK_URL,
                    "http://sms.example.com/hook?token=gw-token-1",
                ),
                ENV_SMS_WEBHOOK_URL,
            ),
        ] {
            let pairs = [without(set.0), vec![set]].concat();
            let err = config(&pairs).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{err}");
            assert_eq!(err.problems[0].name, named, "{err}");
            assert!(!err.to_string().contains("gw-token-1"), "{err}");
        }
        assert!(
            config(
                &[
                    good.to_vec(),
                    vec![(ENV_CODE_LENGTH, "6"), (ENV_CODE_TTL, "600")]
                ]
                .concat()
            )
            .is_ok()
        );
        let jwt = [
            (ENV_AUTH, "both"),
            (ENV_JWT_ISSUER, "https://tenant.example.com/"),
            (ENV_JWT_AUDIENCE, "https://verifyd.example/api"),
        ];
        let with_jwks = |url: &'static str| {
            [good.to_vec(), jwt.to_vec(), vec![(ENV_JWT_JWKS_URL, url)]].concat()
        };
        assert!(config(&with_jwks("https://tenant.example.com/jwks.json")).is_ok());
        let err = config(&with_jwks("http://localhost:9/jwks.json")).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].name, ENV_JWT_JWKS_URL, "{err}");
        // Development allows http:// to loopback, and warns about it to any other host.
        let dev = |url: &'static str| {
            config(&[
                (ENV_SMS_SENDER, "webhook"),
                (ENV_SMS_WEBHOOK_URL, url),
                (ENV_SMS_WEBHOOK_SECRET, "a-webhook-secret-of-some-length"),
            ])
            .unwrap()
        };
        assert!(dev("http://127.0.0.1:9/hook").warnings.is_empty());
        let c = dev("http://sms.example.com/hook");
        assert!(
            c.warnings.iter().any(|w| w.contains(ENV_SMS_WEBHOOK_URL)),
            "{:?}",
            c.warnings
        );
        // The same settings are fine in development (with a warning for the proxies).
        let c = config(&[(ENV_TRUSTED_PROXIES, "0.0.0.0/0")]).unwrap();
        assert_eq!(c.profile, Profile::Development);
        assert_eq!(c.warnings.len(), 1);
        // twilio-verify: the (default console) sender is unused, so not judged.
        let twilio = [
            (ENV_ENV, "production"),
            (ENV_SECRET, "a-production-secret-0123456789-0123456789"),
            (ENV_API_KEYS, "a-production-api-key-0123"),
            (ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_AUTH_TOKEN, "fedcba9876543210fedcba9876543210"),
            (ENV_TWILIO_SERVICE_SID, "VA0123456789abcdef0123456789abcdef"),
        ];
        assert!(config(&twilio).is_ok());
    }
}
