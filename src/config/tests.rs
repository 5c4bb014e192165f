//! The tests of the whole: the defaults, and every problem reported at once.

use std::time::Duration;

use super::*;
use crate::domain::Channel;

/// The settings from `pairs` alone (no files, no environment).
pub(super) fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(move |k| map.get(k).cloned())
}

#[test]
fn defaults_are_the_seeds() {
    let c = config(&[]).unwrap();
    assert_eq!(c.server.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.delivery.provider, ProviderKind::Local);
    assert_eq!(
        c.limits
            .valid_country_codes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["US"]
    );
    assert_eq!(
        c.limits.channels.iter().copied().collect::<Vec<_>>(),
        [Channel::Sms]
    );
    assert_eq!(
        c.limits.rate_limit_ip,
        BucketConfig {
            max: 4,
            interval: Duration::from_secs(60)
        }
    );
    assert_eq!(c.codes.length.get(), 6);
    assert_eq!(c.codes.ttl, Duration::from_secs(600));
    assert!(
        c.store.secret.is_none() && c.auth.api_keys.is_empty() && c.twilio.credentials.is_none()
    );
    assert_eq!(c.server.header_timeout, Duration::from_secs(10));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(75));
    assert_eq!(c.server.max_connections, 10_000);
    let err = config(&[
        (ENV_HEADER_TIMEOUT, "0"),
        (ENV_IDLE_TIMEOUT, "soon"),
        (ENV_MAX_CONNECTIONS, "0"),
    ])
    .unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
}

#[test]
fn every_bad_variable_is_reported_at_once_with_secrets_redacted() {
    let err = config(&[
        (ENV_ADDR, "nope"),
        (ENV_VALID_COUNTRY_CODES, "US,XX"),
        (ENV_CHANNELS, "sms,pigeon"),
        (ENV_RATE_LIMIT_IP_MAX, "-1"),
        (ENV_CODE_LENGTH, "12"),
        (ENV_SECRET, "short-secret-value"),
        (ENV_TWILIO_ACCOUNT_SID, "XX123"),
    ])
    .unwrap_err();
    let text = err.to_string();
    for name in [
        ENV_ADDR,
        ENV_VALID_COUNTRY_CODES,
        ENV_CHANNELS,
        ENV_RATE_LIMIT_IP_MAX,
        ENV_CODE_LENGTH,
        ENV_SECRET,
        ENV_TWILIO_ACCOUNT_SID,
    ] {
        assert!(
            text.contains(&format!("{name}=")),
            "{name} missing from:\n{text}"
        );
    }
    assert!(!text.contains("short-secret-value"), "{text}");
    assert_eq!(err.problems.len(), 7);
}
