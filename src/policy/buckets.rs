//! Rate-limit buckets as the policy names them: which bucket (`ip`, `phone`, ...), whose key,
//! and its size (`max` per `interval`, Twilio's RateLimit Bucket shape). The limiter decides;
//! this module only says what to ask.

use std::time::Duration;

use crate::config::BucketConfig;

/// The bucket families; the name is what a 429 body's `bucket` field says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BucketName {
    Ip,
    Phone,
    Prefix,
    Country,
    Global,
    User,
    Cooldown,
    /// A bucket of a `/v2` service's RateLimits (Twilio's model), never charged on `/mfa`.
    RateLimit,
}

impl BucketName {
    pub const fn as_str(self) -> &'static str {
        match self {
            BucketName::Ip => "ip",
            BucketName::Phone => "phone",
            BucketName::Prefix => "prefix",
            BucketName::Country => "country",
            BucketName::Global => "global",
            BucketName::User => "user",
            BucketName::Cooldown => "cooldown",
            BucketName::RateLimit => "rate_limit",
        }
    }
}

/// What a bucket counts. Each scope has its own settings and its own storage keys, so a
/// setting governs only what its name says: send-code and verify requests from one address,
/// failed checks and the resend cooldown never share state, even with the same name and
/// interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send-code requests (`VERIFYD_RATE_LIMIT_*`).
    Send,
    /// Verify requests (`VERIFYD_VERIFY_RATE_LIMIT_IP_*`).
    Verify,
    /// Failed checks of one number by one caller (`VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_*`).
    Failures,
    /// Failed checks of one number by every caller together (`…_PHONE_FAILURES_CEILING`).
    FailureCeiling,
    /// One send per number per `VERIFYD_RESEND_COOLDOWN`.
    Cooldown,
    /// Console login attempts from one address.
    ConsoleLogin,
}

impl Scope {
    /// The scope's part of a storage key.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Verify => "verify",
            Scope::Failures => "fail",
            Scope::FailureCeiling => "failall",
            Scope::Cooldown => "cooldown",
            Scope::ConsoleLogin => "login",
        }
    }
}

/// One bucket to charge: `scope`, `name` and `key` identify it, `max` per `interval` sizes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketRequest {
    pub scope: Scope,
    pub name: BucketName,
    pub key: String,
    pub max: u32,
    pub interval: Duration,
}

impl BucketRequest {
    /// A bucket of the configured size.
    pub fn new(scope: Scope, name: BucketName, key: &str, size: BucketConfig) -> Self {
        Self {
            scope,
            name,
            key: key.to_owned(),
            max: size.max,
            interval: size.interval,
        }
    }

    /// The limiter's storage key: scope, family, interval and key, so the same address or
    /// number counts separately in each scope, and one key may have several intervals (as a
    /// Twilio RateLimit has several Buckets).
    pub fn storage_key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.scope.as_str(),
            self.name.as_str(),
            self.interval.as_secs(),
            self.key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_in_two_scopes_is_two_buckets() {
        let size = BucketConfig {
            max: 4,
            interval: Duration::from_secs(60),
        };
        let keys: std::collections::HashSet<String> = [
            Scope::Send,
            Scope::Verify,
            Scope::Failures,
            Scope::FailureCeiling,
            Scope::Cooldown,
        ]
        .into_iter()
        .map(|scope| BucketRequest::new(scope, BucketName::Ip, "203.0.113.9", size).storage_key())
        .collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
    }
}
