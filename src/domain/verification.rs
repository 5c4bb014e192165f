//! Verifications as Twilio Verify models them: identifiers (`VE…`, `VL…`), statuses, the
//! send attempts of one verification, and the lifecycle rules (TTL, 5 checks, 5 sends) as pure
//! functions over a verification's counters.

use std::fmt;
use std::time::Duration;

use rand::RngCore;

use super::{Channel, PhoneNumber, Timestamp};

macro_rules! sid_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// A new identifier: the prefix and 32 lowercase hex digits, of which the first 12
            /// are the creation time (milliseconds since 1970) and the other 20 are random
            /// (80 bits: unguessable). Time-ordered identifiers land at the end of a store's
            /// index of them instead of on a random page of it, so writing one touches a page
            /// that is already in memory.
            pub fn generate() -> Self {
                let millis = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let mut bytes = [0u8; 16];
                bytes[..6].copy_from_slice(&(millis as u64).to_be_bytes()[2..]);
                rand::rng().fill_bytes(&mut bytes[6..]);
                Self(format!("{}{}", $prefix, hex::encode(bytes)))
            }

            /// Accepts only the prefix followed by exactly 32 hex digits.
            pub fn parse(s: &str) -> Option<Self> {
                let hex_part = s.strip_prefix($prefix)?;
                (hex_part.len() == 32 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| Self(s.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

sid_type!(
    /// A verification's identifier, `VE` + 32 hex digits, as Twilio's.
    VerificationSid,
    "VE"
);
sid_type!(
    /// One delivery attempt's identifier, `VL` + 32 hex digits, as Twilio's.
    AttemptSid,
    "VL"
);

/// Where a verification is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerificationStatus {
    Pending,
    Approved,
    Canceled,
    Expired,
    MaxAttemptsReached,
    /// The first delivery failed, so nobody can hold its code.
    Failed,
}

impl VerificationStatus {
    /// Twilio's name for the status.
    pub const fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Pending => "pending",
            VerificationStatus::Approved => "approved",
            VerificationStatus::Canceled => "canceled",
            VerificationStatus::Expired => "expired",
            VerificationStatus::MaxAttemptsReached => "max_attempts_reached",
            VerificationStatus::Failed => "failed",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Canceled,
            Self::Expired,
            Self::MaxAttemptsReached,
            Self::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One delivery of a verification's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendAttempt {
    pub sid: AttemptSid,
    pub channel: Channel,
    pub time: Timestamp,
}

/// A verification as the API shows it.
#[derive(Clone, Debug)]
pub struct Verification {
    pub sid: VerificationSid,
    pub to: PhoneNumber,
    pub channel: Channel,
    pub status: VerificationStatus,
    pub send_attempts: Vec<SendAttempt>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

impl Verification {
    /// Twilio's `valid`: true exactly when the verification was approved.
    pub fn valid(&self) -> bool {
        self.status == VerificationStatus::Approved
    }
}

/// Twilio Verify's fixed lifecycle limits; the TTL is a setting.
#[derive(Clone, Copy, Debug)]
pub struct Lifecycle {
    /// How long a code can be checked after the verification started.
    pub ttl: Duration,
    /// Checks per verification (Twilio: 5, then 60202).
    pub max_checks: u32,
    /// Deliveries per verification (Twilio: 5, then 60203).
    pub max_sends: u32,
}

impl Lifecycle {
    /// Twilio's numbers with the given TTL.
    pub const fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            max_checks: 5,
            max_sends: 5,
        }
    }

    /// What a stored pending verification means now.
    pub fn state(&self, counters: Counters, now: Timestamp) -> LiveState {
        if counters.status != VerificationStatus::Pending || now >= counters.expires_at {
            LiveState::Gone
        } else if counters.check_attempts >= self.max_checks {
            LiveState::Locked
        } else {
            LiveState::Open {
                checks_left: self.max_checks - counters.check_attempts,
                sends_left: self.max_sends.saturating_sub(counters.send_attempts),
            }
        }
    }
}

/// The counters of a stored verification that the lifecycle rules read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub status: VerificationStatus,
    pub check_attempts: u32,
    pub send_attempts: u32,
    pub expires_at: Timestamp,
}

/// A verification as the rules see it at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    /// Pending, within its TTL, with checks left.
    Open { checks_left: u32, sends_left: u32 },
    /// Pending and within its TTL, but all checks were used: every check answers
    /// `max_check_attempts` until the TTL ends.
    Locked,
    /// Approved, canceled, expired or failed: it no longer exists for the API.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_millis() -> u64 {
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    }

    #[test]
    fn sids_start_with_their_creation_time_and_end_with_80_random_bits() {
        let before = now_millis();
        let sids: Vec<VerificationSid> = (0..200).map(|_| VerificationSid::generate()).collect();
        let after = now_millis();
        for sid in &sids {
            let millis = u64::from_str_radix(&sid.as_str()[2..14], 16).unwrap();
            assert!((before..=after).contains(&millis), "{sid}");
        }
        // Within one millisecond the order is random; across the batch the times never go back.
        let times: Vec<&str> = sids.iter().map(|s| &s.as_str()[2..14]).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let tails: std::collections::HashSet<&str> =
            sids.iter().map(|s| &s.as_str()[14..]).collect();
        assert_eq!(tails.len(), sids.len(), "the random parts repeat");
    }

    #[test]
    fn sids_have_prefix_and_32_hex_digits() {
        let sid = VerificationSid::generate();
        assert!(sid.as_str().starts_with("VE"));
        assert_eq!(sid.as_str().len(), 34);
        assert_eq!(VerificationSid::parse(sid.as_str()), Some(sid.clone()));
        assert!(AttemptSid::generate().as_str().starts_with("VL"));
        assert_ne!(VerificationSid::generate(), sid);
        for bad in [
            "",
            "VE",
            "VL0123456789abcdef0123456789abcdef",
            "VE0123456789abcdef0123456789abcdeg",
        ] {
            assert!(VerificationSid::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn lifecycle_states() {
        let life = Lifecycle::with_ttl(Duration::from_secs(600));
        let now = Timestamp::from_millis(1_000_000);
        let pending = Counters {
            status: VerificationStatus::Pending,
            check_attempts: 0,
            send_attempts: 1,
            expires_at: now.plus(Duration::from_secs(1)),
        };
        assert_eq!(
            life.state(pending, now),
            LiveState::Open {
                checks_left: 5,
                sends_left: 4
            }
        );
        let locked = Counters {
            check_attempts: 5,
            ..pending
        };
        assert_eq!(life.state(locked, now), LiveState::Locked);
        assert_eq!(
            life.state(locked, now.plus(Duration::from_secs(1))),
            LiveState::Gone
        );
        let approved = Counters {
            status: VerificationStatus::Approved,
            ..pending
        };
        assert_eq!(life.state(approved, now), LiveState::Gone);
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            "pending",
            "approved",
            "canceled",
            "expired",
            "max_attempts_reached",
            "failed",
        ] {
            assert_eq!(VerificationStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(VerificationStatus::parse("PENDING").is_none());
    }
}
