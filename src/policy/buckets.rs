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
        }
    }
}

/// Which endpoint a bucket belongs to: send-code and verify buckets never share state, even
/// when they have the same name and interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Send,
    Verify,
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

    /// The limiter's storage key: family, interval and key, so one key may have several
    /// intervals (as a Twilio RateLimit has several Buckets).
    pub fn storage_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.name.as_str(),
            self.interval.as_secs(),
            self.key
        )
    }
}
