//! The protections that run before anything is sent or stored: the channel allowlist, the
//! geographic allowlist, number-type rules, the rate-limit buckets a request is charged to, and
//! client-IP resolution behind trusted proxies. Pure rules: no HTTP, no Twilio, no I/O.

pub mod buckets;
pub mod client_ip;
pub mod test_numbers;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{BucketConfig, LimitSettings, SendLimits, VerifyLimits};
use crate::crypto::Keys;
use crate::domain::{Channel, NumberType, PhoneNumber, Recipient, Region};

pub use buckets::{BucketName, BucketRequest, Scope};
pub use client_ip::{ClientKey, TrustedProxies};
pub use test_numbers::TestNumbers;

/// A request the policy refuses. Refusals charge no bucket and touch nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("codes cannot be sent to numbers in this country")]
    CountryNotAllowed,
    #[error("this channel is not enabled")]
    ChannelNotAllowed,
    #[error("codes cannot be sent to this type of number")]
    NumberTypeNotAllowed(NumberType),
}

impl PolicyError {
    /// A fixed label for metrics and logs.
    pub const fn reason(&self) -> &'static str {
        match self {
            PolicyError::CountryNotAllowed => "country",
            PolicyError::ChannelNotAllowed => "channel",
            PolicyError::NumberTypeNotAllowed(_) => "number_type",
        }
    }
}

/// The configured rules.
#[derive(Clone)]
pub struct Policy {
    countries: BTreeSet<Region>,
    channels: BTreeSet<Channel>,
    blocked_types: BTreeSet<NumberType>,
    send: SendLimits,
    verify: VerifyLimits,
    cooldown: Duration,
    keys: Arc<Keys>,
}

impl Policy {
    /// The rules from the settings; `keys` turns personal data into opaque bucket keys.
    pub fn new(limits: &LimitSettings, keys: Arc<Keys>) -> Self {
        Self {
            countries: limits.valid_country_codes.clone(),
            channels: limits.channels.clone(),
            blocked_types: limits.blocked_number_types.clone(),
            send: limits.send.clone(),
            verify: limits.verify.clone(),
            cooldown: limits.resend_cooldown,
            keys,
        }
    }

    /// Also accepts numbers of `countries` (`VERIFYD_MONITOR_COUNTRY_CODES`: sent to so the
    /// fraud guard learns their conversion before they are allowed for good).
    #[must_use]
    pub fn also_sending_to(mut self, countries: &BTreeSet<Region>) -> Self {
        self.countries.extend(countries.iter().copied());
        self
    }

    /// Seed S3: only enabled channels.
    ///
    /// # Errors
    /// [`PolicyError::ChannelNotAllowed`].
    pub fn check_channel(&self, channel: Channel) -> Result<(), PolicyError> {
        if self.channels.contains(&channel) {
            Ok(())
        } else {
            Err(PolicyError::ChannelNotAllowed)
        }
    }

    /// Seed S2 (the number's region from libphonenumber metadata must be allowed), then the
    /// number-type rules.
    ///
    /// # Errors
    /// [`PolicyError::CountryNotAllowed`] or [`PolicyError::NumberTypeNotAllowed`].
    pub fn check_number(&self, phone: &PhoneNumber) -> Result<(), PolicyError> {
        match phone.region() {
            Some(region) if self.countries.contains(&region) => {}
            _ => return Err(PolicyError::CountryNotAllowed),
        }
        let kind = phone.number_type();
        if self.blocked_types.contains(&kind) {
            return Err(PolicyError::NumberTypeNotAllowed(kind));
        }
        Ok(())
    }

    /// Every bucket a send-code is charged to (all or none): client IP (seed S4), recipient,
    /// number prefix, country, global, user, and the resend cooldown. Calls without a client
    /// (the CLI) or without a user skip those keys; an email address has no prefix or country
    /// (its per-recipient buckets are the `phone` buckets, keyed by the address).
    pub fn send_buckets(
        &self,
        phone: &Recipient,
        client: Option<&ClientKey>,
        user: Option<&str>,
    ) -> Vec<BucketRequest> {
        let mut out = Vec::new();
        let mut add = |name: BucketName, key: &str, sizes: &[BucketConfig]| {
            for size in sizes {
                out.push(BucketRequest::new(Scope::Send, name, key, *size));
            }
        };
        if let Some(client) = client {
            add(BucketName::Ip, client.as_str(), &self.send.ip);
        }
        // A keyed digest costs an HMAC: only when a bucket keyed by the number is on.
        let phone_key = if self.send.phone.is_empty() && self.cooldown.is_zero() {
            String::new()
        } else {
            self.keys.bucket_key("phone", &phone.key())
        };
        add(BucketName::Phone, &phone_key, &self.send.phone);
        if !self.send.prefix.is_empty()
            && let Some(number) = phone.phone()
        {
            let prefix = &number.e164()[..number.e164().len().saturating_sub(4)];
            add(
                BucketName::Prefix,
                &self.keys.bucket_key("prefix", prefix),
                &self.send.prefix,
            );
        }
        if let Some(region) = phone.region() {
            add(BucketName::Country, region.as_str(), &self.send.country);
        }
        add(BucketName::Global, "all", &self.send.global);
        if let Some(user) = user {
            add(
                BucketName::User,
                &self.keys.bucket_key("user", user),
                &self.send.user,
            );
        }
        if !self.cooldown.is_zero() {
            out.push(BucketRequest::new(
                Scope::Cooldown,
                BucketName::Cooldown,
                &phone_key,
                BucketConfig {
                    max: 1,
                    interval: self.cooldown,
                },
            ));
        }
        out
    }

    /// The verify-side buckets charged on every check (client IP).
    pub fn verify_buckets(&self, client: Option<&ClientKey>) -> Vec<BucketRequest> {
        client
            .map(|c| {
                self.verify
                    .ip
                    .iter()
                    .map(|size| {
                        BucketRequest::new(Scope::Verify, BucketName::Ip, c.as_str(), *size)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The failed-check buckets of `phone` as checked by `caller` (an opaque stable label: the
    /// JWT user or the API key): the caller's own buckets for this number, then the number's
    /// ceiling shared by every caller. Both answer 429 with `bucket: "phone"`. They are
    /// reserved before a code is judged and refunded when the check did not fail, so
    /// concurrent wrong guesses can never outrun them.
    pub fn failure_buckets(&self, phone: &Recipient, caller: &str) -> Vec<BucketRequest> {
        let per_caller = &self.verify.phone_failures;
        let ceiling = &self.verify.phone_failures_ceiling;
        if per_caller.is_empty() && ceiling.is_empty() {
            return Vec::new();
        }
        let phone_key = self.keys.bucket_key("phone", &phone.key());
        let caller_key = format!("{phone_key}.{}", self.keys.bucket_key("caller", caller));
        let mut out = Vec::with_capacity(per_caller.len() + ceiling.len());
        for size in per_caller {
            out.push(BucketRequest::new(
                Scope::Failures,
                BucketName::Phone,
                &caller_key,
                *size,
            ));
        }
        for size in ceiling {
            out.push(BucketRequest::new(
                Scope::FailureCeiling,
                BucketName::Phone,
                &phone_key,
                *size,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ServerSecret;
    use std::collections::HashMap;

    fn policy(pairs: &[(&str, &str)]) -> Policy {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let keys = Keys::derive(&ServerSecret::generate());
        Policy::new(
            &crate::config::Config::from_lookup(move |k| map.get(k).cloned())
                .unwrap()
                .limits,
            Arc::new(keys),
        )
    }

    fn phone(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    #[test]
    fn canada_is_not_the_us_even_though_both_are_plus_one() {
        let p = policy(&[]);
        assert_eq!(p.check_number(&phone("+14155552671")), Ok(()));
        assert_eq!(
            p.check_number(&phone("+14165550123")),
            Err(PolicyError::CountryNotAllowed)
        );
        let p = policy(&[("VERIFYD_VALID_COUNTRY_CODES", "US,CA")]);
        assert_eq!(p.check_number(&phone("+14165550123")), Ok(()));
    }

    #[test]
    fn blocked_number_types_are_refused_after_the_country_check() {
        let p = policy(&[("VERIFYD_VALID_COUNTRY_CODES", "US,GB")]);
        let cases = [
            (
                "+19005550100",
                Err(PolicyError::NumberTypeNotAllowed(NumberType::PremiumRate)),
            ),
            (
                "+448712345678",
                Err(PolicyError::NumberTypeNotAllowed(NumberType::PremiumRate)),
            ),
            (
                "+443001234567",
                Err(PolicyError::NumberTypeNotAllowed(NumberType::Uan)),
            ),
            // Toll-free is blocked by default (an SMS-pumping target, rarely a person's phone).
            (
                "+18005550100",
                Err(PolicyError::NumberTypeNotAllowed(NumberType::TollFree)),
            ),
            ("+447400123456", Ok(())),
            ("+442079460000", Ok(())),
            ("+33612345678", Err(PolicyError::CountryNotAllowed)),
        ];
        for (number, want) in cases {
            assert_eq!(p.check_number(&phone(number)), want, "{number}");
        }
        let p = policy(&[("VERIFYD_BLOCKED_NUMBER_TYPES", "toll_free")]);
        assert!(p.check_number(&phone("+18005550100")).is_err());
        assert!(p.check_number(&phone("+19005550100")).is_ok());
    }

    #[test]
    fn channels_follow_the_allowlist() {
        let p = policy(&[]);
        assert_eq!(p.check_channel(Channel::Sms), Ok(()));
        assert_eq!(
            p.check_channel(Channel::Call),
            Err(PolicyError::ChannelNotAllowed)
        );
    }

    #[test]
    fn send_buckets_follow_the_settings() {
        let client = ClientKey::from_ip("203.0.113.9".parse().unwrap());
        let number = Recipient::from(phone("+14155552671"));
        let names = |p: &Policy, c: Option<&ClientKey>, u: Option<&str>| {
            p.send_buckets(&number, c, u)
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
        };
        // Defaults: ip, phone x2 (10 min, 1 day), prefix, global, cooldown; country off; user only with a user.
        assert_eq!(
            names(&policy(&[]), Some(&client), None),
            ["ip", "phone", "phone", "prefix", "global", "cooldown"]
        );
        assert_eq!(
            names(&policy(&[]), None, Some("auth0|1")),
            ["phone", "phone", "prefix", "global", "user", "cooldown"]
        );
        let off = policy(&[
            ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
            ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
            ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
            ("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "0"),
            ("VERIFYD_RESEND_COOLDOWN", "0"),
            ("VERIFYD_RATE_LIMIT_COUNTRY_MAX", "50"),
        ]);
        assert_eq!(names(&off, Some(&client), None), ["country"]);
    }

    #[test]
    fn an_email_address_has_recipient_buckets_but_no_prefix_or_country() {
        let client = ClientKey::from_ip("203.0.113.9".parse().unwrap());
        let p = policy(&[("VERIFYD_RATE_LIMIT_COUNTRY_MAX", "50")]);
        let email = |s: &str| Recipient::for_channel(s, Channel::Email).unwrap();
        let buckets = p.send_buckets(&email("Ann@Example.org"), Some(&client), None);
        let names: Vec<&str> = buckets.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["ip", "phone", "phone", "global", "cooldown"]);
        // One recipient whatever the case of its address; another address is another recipient.
        let same = p.send_buckets(&email("ann@example.org"), Some(&client), None);
        let other = p.send_buckets(&email("bob@example.org"), Some(&client), None);
        assert_eq!(buckets[1].key, same[1].key);
        assert_ne!(buckets[1].key, other[1].key);
        assert_eq!(
            p.failure_buckets(&email("Ann@Example.org"), "key:1")[0].key,
            p.failure_buckets(&email("ann@example.org"), "key:1")[0].key
        );
    }

    #[test]
    fn failures_count_per_caller_under_a_shared_ceiling() {
        let p = policy(&[]);
        let number = Recipient::from(phone("+14155552671"));
        let alice = p.failure_buckets(&number, "user:alice");
        let bob = p.failure_buckets(&number, "user:bob");
        let sizes = |b: &[BucketRequest]| {
            b.iter()
                .map(|b| (b.scope, b.max, b.interval.as_secs()))
                .collect::<Vec<_>>()
        };
        // Defaults: 10 per hour per caller, 30 per hour for the number.
        assert_eq!(
            sizes(&alice),
            [
                (Scope::Failures, 10, 3600),
                (Scope::FailureCeiling, 30, 3600)
            ]
        );
        assert_ne!(alice[0].storage_key(), bob[0].storage_key());
        assert_eq!(alice[1].storage_key(), bob[1].storage_key());
        assert!(!alice[0].storage_key().contains("alice"));

        let p = policy(&[
            ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "2"),
            ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING", "5"),
        ]);
        assert_eq!(
            sizes(&p.failure_buckets(&number, "key:1")),
            [(Scope::Failures, 2, 3600), (Scope::FailureCeiling, 5, 3600)]
        );
        let p = policy(&[("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING", "0")]);
        assert_eq!(
            sizes(&p.failure_buckets(&number, "key:1")),
            [(Scope::Failures, 10, 3600)]
        );
        let p = policy(&[("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "0")]);
        assert!(p.failure_buckets(&number, "key:1").is_empty());
    }

    #[test]
    fn a_ceiling_below_the_per_caller_max_is_refused() {
        let map: HashMap<String, String> = [(
            "VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING".to_owned(),
            "3".to_owned(),
        )]
        .into_iter()
        .collect();
        let Err(err) = crate::config::Config::from_lookup(move |k| map.get(k).cloned()) else {
            panic!("a ceiling below the per-caller max was accepted");
        };
        assert!(
            err.to_string()
                .contains("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING"),
            "{err}"
        );
    }

    #[test]
    fn bucket_keys_never_hold_the_number() {
        let p = policy(&[]);
        for b in p.send_buckets(&phone("+14155552671").into(), None, None) {
            assert!(
                !b.storage_key().contains("4155552671"),
                "{}",
                b.storage_key()
            );
            assert!(!b.storage_key().contains("415555"), "{}", b.storage_key());
        }
        // Same prefix, same prefix bucket; another prefix, another bucket.
        let key = |n: &str| {
            p.send_buckets(&phone(n).into(), None, None)
                .into_iter()
                .find(|b| b.name == BucketName::Prefix)
                .unwrap()
                .key
        };
        assert_eq!(key("+14155552671"), key("+14155559999"));
        assert_ne!(key("+14155552671"), key("+14155562671"));
    }
}
