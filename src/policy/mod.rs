//! The protections that run before anything is sent or stored: the channel allowlist, the
//! geographic allowlist, number-type rules, the rate-limit buckets a request is charged to, and
//! client-IP resolution behind trusted proxies. Pure rules: no HTTP, no Twilio, no I/O.

pub mod buckets;
pub mod client_ip;

use std::collections::BTreeSet;

use crate::config::{BucketConfig, Config};
use crate::domain::{Channel, NumberType, PhoneNumber, Region};

pub use buckets::{BucketName, BucketRequest};
pub use client_ip::{ClientKey, TrustedProxies};

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
#[derive(Clone, Debug)]
pub struct Policy {
    countries: BTreeSet<Region>,
    channels: BTreeSet<Channel>,
    blocked_types: BTreeSet<NumberType>,
    ip_bucket: BucketConfig,
}

impl Policy {
    /// The rules from the settings.
    pub fn from_config(config: &Config) -> Self {
        Self {
            countries: config.valid_country_codes.clone(),
            channels: config.channels.clone(),
            blocked_types: config.blocked_number_types.clone(),
            ip_bucket: config.rate_limit_ip,
        }
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

    /// The buckets a send-code is charged to (all or none). Seed S4: the client IP bucket.
    /// Calls without a client (the CLI) skip the IP bucket.
    pub fn send_buckets(&self, client: Option<&ClientKey>) -> Vec<BucketRequest> {
        let mut out = Vec::new();
        if let (Some(client), true) = (client, self.ip_bucket.enabled()) {
            out.push(BucketRequest::new(
                BucketName::Ip,
                client.as_str(),
                self.ip_bucket,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn policy(pairs: &[(&str, &str)]) -> Policy {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Policy::from_config(&Config::from_lookup(move |k| map.get(k).cloned()).unwrap())
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
            ("+18005550100", Ok(())),
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
    fn ip_bucket_can_be_turned_off() {
        let client = ClientKey::from_ip("203.0.113.9".parse().unwrap());
        assert_eq!(policy(&[]).send_buckets(Some(&client)).len(), 1);
        assert!(
            policy(&[("VERIFYD_RATE_LIMIT_IP_MAX", "0")])
                .send_buckets(Some(&client))
                .is_empty()
        );
        assert!(policy(&[]).send_buckets(None).is_empty());
    }
}
