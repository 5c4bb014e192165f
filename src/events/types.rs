//! What an event can be, and the keys that sign it: the eight event types of DESIGN.md "Events"
//! and the Standard Webhooks secrets (`whsec_` + base64), parsed once from the settings.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One kind of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// A verification was created (its first send).
    VerificationPending,
    /// The right code was checked, or the verification was approved by update.
    VerificationApproved,
    /// The verification was canceled.
    VerificationCanceled,
    /// Its TTL passed unapproved (noticed by the expiry sweeper).
    VerificationExpired,
    /// The last allowed check was wrong: the verification is locked.
    VerificationMaxAttemptsReached,
    /// A delivery receipt said the message arrived (fed by the vendors' receipts).
    AttemptDelivered,
    /// A delivery receipt said the message failed (fed by the vendors' receipts).
    AttemptFailed,
    /// The fraud guard refused a send (fed by the fraud guard).
    FraudGuardBlocked,
}

impl EventType {
    /// Every type, in documentation order.
    pub const ALL: [EventType; 8] = [
        EventType::VerificationPending,
        EventType::VerificationApproved,
        EventType::VerificationCanceled,
        EventType::VerificationExpired,
        EventType::VerificationMaxAttemptsReached,
        EventType::AttemptDelivered,
        EventType::AttemptFailed,
        EventType::FraudGuardBlocked,
    ];

    /// The wire name (`verification.pending`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::VerificationPending => "verification.pending",
            EventType::VerificationApproved => "verification.approved",
            EventType::VerificationCanceled => "verification.canceled",
            EventType::VerificationExpired => "verification.expired",
            EventType::VerificationMaxAttemptsReached => "verification.max_attempts_reached",
            EventType::AttemptDelivered => "attempt.delivered",
            EventType::AttemptFailed => "attempt.failed",
            EventType::FraudGuardBlocked => "fraud_guard.blocked",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of the eight event types.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an event type (expected one of: {list})", list = EventType::ALL.map(EventType::as_str).join(", "))]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// The shortest key a secret may decode to, in bytes.
pub const MIN_SECRET_BYTES: usize = 24;

/// A signing key: the bytes of a `whsec_…` secret. Never printed.
#[derive(Clone)]
pub struct EventSecret(Vec<u8>);

impl fmt::Debug for EventSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSecret(<redacted>)")
    }
}

/// Why a secret was refused (the text never contains the secret).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with `whsec_`")]
    Prefix,
    #[error("is not base64 after `whsec_`")]
    Base64,
    #[error("is too short: the key must be at least {MIN_SECRET_BYTES} bytes (got {0})")]
    Short(usize),
}

impl EventSecret {
    /// `whsec_` followed by the base64 of at least [`MIN_SECRET_BYTES`] bytes.
    ///
    /// # Errors
    /// [`SecretError`] saying what is wrong (never echoing the secret).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix("whsec_").ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(SecretError::Short(key.len()));
        }
        Ok(Self(key))
    }

    /// The key bytes (for the HMAC).
    pub(crate) fn key(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_from_its_name() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
        }
        assert!("verification.failed".parse::<EventType>().is_err());
    }

    #[test]
    fn secrets_are_refused_with_the_reason_and_never_echoed() {
        for (text, want) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SecretError::Prefix),
            ("whsec_not base64!", SecretError::Base64),
            ("whsec_c2hvcnQ=", SecretError::Short(5)),
        ] {
            let e = EventSecret::parse(text).unwrap_err();
            assert_eq!(e, want, "{text}");
            assert!(!e.to_string().contains(text), "{text}");
        }
        assert!(EventSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    }
}
