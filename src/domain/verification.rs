//! Verifications as Twilio Verify models them: identifiers (`VE…`, `VL…`), statuses, the
//! send attempts of one verification, and the lifecycle rules (TTL, 5 checks, 5 sends) as pure
//! functions over a verification's counters: what a stored verification means now
//! ([`Lifecycle::state`]) and what one check of a code does to it ([`Lifecycle::judge_check`]:
//! a [`CheckVerdict`], whose counted form is a compare-and-set [`CheckUpdate`] the store
//! applies). [`CheckOutcome`] is the answer to a check, whichever engine judged it.

use std::fmt;
use std::time::Duration;

use rand::RngCore;

use super::{Channel, Recipient, Timestamp};

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
    pub to: Recipient,
    pub channel: Channel,
    pub status: VerificationStatus,
    pub send_attempts: Vec<SendAttempt>,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// What this call's delivery carried, when the local engine rendered a message (for the
    /// attempt log and logs; the API never shows it).
    pub message: Option<MessageFacts>,
    /// The SMS vendor that carried this call's message (local engine; `VERIFYD_SMS_ROUTES`).
    pub vendor: Option<&'static str>,
}

/// A rendered message's locale, SMS encoding and segment count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageFacts {
    /// The built-in locale's tag (`pt-BR`).
    pub locale: &'static str,
    /// `gsm7` or `ucs2`.
    pub encoding: &'static str,
    pub segments: u32,
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

    /// What one check of a code does to a stored verification at `now`: an open one counts it
    /// (approved when `right_code`, which is asked only then), a locked or gone one is left
    /// as it is.
    pub fn judge_check(
        &self,
        counters: Counters,
        now: Timestamp,
        right_code: impl FnOnce() -> bool,
    ) -> CheckVerdict {
        match self.state(counters, now) {
            LiveState::Open { .. } => CheckVerdict::Count(CheckUpdate {
                expected_checks: counters.check_attempts,
                checks: counters.check_attempts + 1,
                status: if right_code() {
                    VerificationStatus::Approved
                } else {
                    VerificationStatus::Pending
                },
                at: now,
            }),
            LiveState::Locked => CheckVerdict::Locked,
            LiveState::Gone
                if counters.status == VerificationStatus::Pending && now >= counters.expires_at =>
            {
                CheckVerdict::Expired
            }
            LiveState::Gone => CheckVerdict::Gone,
        }
    }

    /// Checks left after `update` was applied.
    pub fn checks_left(&self, update: CheckUpdate) -> u32 {
        self.max_checks.saturating_sub(update.checks)
    }
}

/// What one check of a code does to a stored verification ([`Lifecycle::judge_check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckVerdict {
    /// Open: the check counts; the store applies this update.
    Count(CheckUpdate),
    /// Pending but past its TTL: nothing changes (it answers like none, counted apart in
    /// metrics).
    Expired,
    /// Every check used, TTL not over: nothing changes; `max_check_attempts`.
    Locked,
    /// Approved, canceled, expired or failed: nothing changes; it no longer exists.
    Gone,
}

/// A counted check, as the compare-and-set the store applies in one conditional update: only
/// if the verification is still pending with `expected_checks` counted (what it was judged
/// on), it gets `checks` counted and `status`, updated `at`. A concurrent check that counted
/// first, or a close, makes it change nothing; the engine then judges the verification again
/// as it is now. So of any number of concurrent checks at most one approves and at most
/// `max_checks` are counted, on one node or many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckUpdate {
    /// Checks counted when the verification was judged.
    pub expected_checks: u32,
    /// Checks counted once this one is.
    pub checks: u32,
    /// `approved` for the right code, else still `pending`.
    pub status: VerificationStatus,
    pub at: Timestamp,
}

impl CheckUpdate {
    /// Whether the check approves the verification.
    pub fn approves(self) -> bool {
        self.status == VerificationStatus::Approved
    }
}

/// The answer to one check of a code, whichever engine judged it: the one value the service
/// labels metrics from, counts failed checks from and the faces answer from.
#[derive(Debug)]
pub enum CheckOutcome {
    /// The right code: the verification, approved.
    Approved(Verification),
    /// No approval.
    Refused(CheckRefusal),
}

/// Why a check did not approve.
#[derive(Clone, Debug)]
pub enum CheckRefusal {
    /// A wrong code, counted. `attempts_remaining` is `None` when the engine cannot know it
    /// (Twilio does not say).
    ///
    /// `pending` is the still-pending verification when the engine knows it (the `/v2` face
    /// answers a wrong code with it, `status: pending`).
    Incorrect {
        attempts_remaining: Option<u32>,
        pending: Option<Box<Verification>>,
    },
    /// The verification's TTL ended (answers like [`NotFound`](Self::NotFound)).
    Expired,
    /// Every check was used: `max_check_attempts` until the TTL ends.
    MaxAttempts,
    /// No pending verification of this caller's for the number.
    NotFound,
}

impl CheckOutcome {
    /// The `result` label of `verifyd_verifications_total`.
    pub fn label(&self) -> &'static str {
        match self {
            CheckOutcome::Approved(_) => "approved",
            CheckOutcome::Refused(CheckRefusal::Incorrect { .. }) => "incorrect",
            CheckOutcome::Refused(CheckRefusal::Expired) => "expired",
            CheckOutcome::Refused(CheckRefusal::MaxAttempts) => "max_attempts",
            CheckOutcome::Refused(CheckRefusal::NotFound) => "not_found",
        }
    }

    /// Whether it counts on the number's failed-check buckets: a wrong code, or a number with
    /// no verification of this caller's (a guess at someone else's).
    pub fn is_failed_check(&self) -> bool {
        matches!(
            self,
            CheckOutcome::Refused(CheckRefusal::Incorrect { .. } | CheckRefusal::NotFound)
        )
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
    fn an_open_verification_counts_the_check_and_approves_only_the_right_code() {
        let life = Lifecycle::with_ttl(Duration::from_secs(600));
        let now = Timestamp::from_millis(1_000_000);
        let pending = Counters {
            status: VerificationStatus::Pending,
            check_attempts: 2,
            send_attempts: 1,
            expires_at: now.plus(Duration::from_secs(1)),
        };
        let wrong = life.judge_check(pending, now, || false);
        let CheckVerdict::Count(update) = wrong else {
            panic!("counted: {wrong:?}")
        };
        assert_eq!(
            update,
            CheckUpdate {
                expected_checks: 2,
                checks: 3,
                status: VerificationStatus::Pending,
                at: now,
            }
        );
        assert!(!update.approves());
        assert_eq!(life.checks_left(update), 2);
        let right = life.judge_check(pending, now, || true);
        assert!(matches!(right, CheckVerdict::Count(u) if u.approves() && u.checks == 3));
    }

    #[test]
    fn a_locked_expired_or_closed_verification_counts_nothing_and_never_compares_the_code() {
        let life = Lifecycle::with_ttl(Duration::from_secs(600));
        let now = Timestamp::from_millis(1_000_000);
        let pending = Counters {
            status: VerificationStatus::Pending,
            check_attempts: 5,
            send_attempts: 1,
            expires_at: now.plus(Duration::from_secs(1)),
        };
        let never = || -> bool { panic!("the code is compared only for an open verification") };
        assert_eq!(life.judge_check(pending, now, never), CheckVerdict::Locked);
        let later = now.plus(Duration::from_secs(1));
        assert_eq!(
            life.judge_check(pending, later, never),
            CheckVerdict::Expired
        );
        for status in [
            VerificationStatus::Approved,
            VerificationStatus::Canceled,
            VerificationStatus::Failed,
        ] {
            let closed = Counters {
                status,
                check_attempts: 0,
                ..pending
            };
            assert_eq!(life.judge_check(closed, now, never), CheckVerdict::Gone);
        }
    }

    #[test]
    fn check_outcomes_name_their_metric_label_and_which_count_as_failures() {
        let refused = |r| CheckOutcome::Refused(r);
        let cases = [
            (
                refused(CheckRefusal::Incorrect {
                    attempts_remaining: Some(1),
                    pending: None,
                }),
                "incorrect",
                true,
            ),
            (refused(CheckRefusal::NotFound), "not_found", true),
            (refused(CheckRefusal::Expired), "expired", false),
            (refused(CheckRefusal::MaxAttempts), "max_attempts", false),
        ];
        for (outcome, label, failed) in cases {
            assert_eq!(outcome.label(), label);
            assert_eq!(outcome.is_failed_check(), failed, "{label}");
        }
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
