//! The fraud guard's settings (`VERIFYD_FRAUD_GUARD*`), the countries sent to only to learn
//! (`VERIFYD_MONITOR_COUNTRY_CODES`) and the test-number bucket bypass. The guard itself is
//! [`crate::fraud`]; this module only reads and checks values.

use std::collections::BTreeSet;
use std::time::Duration;

use super::parse::{parse_bool, parse_list, positive_duration};
use super::production::Profile;
use super::settings::{
    ENV_FRAUD_GUARD, ENV_FRAUD_GUARD_BLOCK, ENV_FRAUD_GUARD_MIN_CONVERSION,
    ENV_FRAUD_GUARD_MIN_SENDS, ENV_FRAUD_GUARD_PREFIX_DIGITS, ENV_FRAUD_GUARD_SETTLE,
    ENV_FRAUD_GUARD_UNPROVEN_MAX, ENV_FRAUD_GUARD_WINDOW, ENV_MONITOR_COUNTRY_CODES,
    ENV_TEST_NUMBERS_BYPASS_LIMITS,
};
use super::source::Reader;
use crate::domain::Region;

component! {
    /// How the fraud guard decides.
    #[derive(Clone, Debug)]
    pub struct FraudGuardSettings / FraudGuardDraft {
        pub mode: GuardMode,
        /// Rolling window of the conversion figures.
        pub window: Duration,
        /// Unanswered this long, a sent code counts as unconverted.
        pub settle: Duration,
        /// Settled attempts needed before conversion can block.
        pub min_sends: u32,
        /// Conversion (0..=1) under which a destination is blocked.
        pub min_conversion: f64,
        /// How long a block lasts.
        pub block: Duration,
        /// Unsettled codes at a time into a destination that has not converted in the window.
        pub unproven_max: u32,
        /// Digits (after `+`) of a long prefix; the short prefix is 3 fewer.
        pub prefix_digits: usize,
        /// Regions sent to only to learn: counted apart, never refused by the guard.
        pub monitor_countries: BTreeSet<Region>,
        /// Test numbers skip every bucket too.
        pub test_numbers_bypass_limits: bool,
    }
}

/// `VERIFYD_FRAUD_GUARD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardMode {
    /// No decisions, no state.
    Off,
    /// Decides and records, never refuses.
    Monitor,
    /// Refuses what it decides against.
    Enforce,
}

impl GuardMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            GuardMode::Off => "off",
            GuardMode::Monitor => "monitor",
            GuardMode::Enforce => "enforce",
        }
    }
}

/// Reads the fraud-guard settings; the mode's default follows the profile.
pub(super) fn read(r: &mut Reader<'_>, profile: Option<Profile>) -> FraudGuardDraft {
    let mode = {
        let (value, _) = r.raw(ENV_FRAUD_GUARD);
        match value.as_deref().map(str::trim) {
            None | Some("") => Some(if profile == Some(Profile::Production) {
                GuardMode::Enforce
            } else {
                GuardMode::Monitor
            }),
            Some("off") => Some(GuardMode::Off),
            Some("monitor") => Some(GuardMode::Monitor),
            Some("enforce") => Some(GuardMode::Enforce),
            Some(other) => {
                let other = other.to_owned();
                r.problem(
                    ENV_FRAUD_GUARD,
                    &other,
                    "expected `off`, `monitor` or `enforce`",
                );
                None
            }
        }
    };
    if mode == Some(GuardMode::Off) && profile == Some(Profile::Production) {
        r.warn(
            "VERIFYD_FRAUD_GUARD=off in production: nothing stops SMS pumping spread over many \
             prefixes but the global bucket (see docs/fraud-guard.md)",
        );
    }
    let window = r.parse(ENV_FRAUD_GUARD_WINDOW, positive_duration);
    let settle = r.parse(ENV_FRAUD_GUARD_SETTLE, positive_duration);
    let min_sends = r.parse(ENV_FRAUD_GUARD_MIN_SENDS, |t| {
        t.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| "expected a whole number of at least 1".to_owned())
    });
    let min_conversion = r.parse(ENV_FRAUD_GUARD_MIN_CONVERSION, |t| {
        t.parse::<f64>()
            .ok()
            .filter(|f| (0.0..=1.0).contains(f))
            .ok_or_else(|| "expected a fraction from 0 to 1, for example 0.2".to_owned())
    });
    let block = r.parse(ENV_FRAUD_GUARD_BLOCK, positive_duration);
    let unproven_max = r.parse(ENV_FRAUD_GUARD_UNPROVEN_MAX, |t| {
        t.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| "expected a whole number of at least 1".to_owned())
    });
    let prefix_digits = r.parse(ENV_FRAUD_GUARD_PREFIX_DIGITS, |t| {
        t.parse::<usize>()
            .ok()
            .filter(|n| (5..=12).contains(n))
            .ok_or_else(|| "expected a number of digits from 5 to 12".to_owned())
    });
    let monitor_countries = r.parse(ENV_MONITOR_COUNTRY_CODES, |t| {
        parse_list::<Region>(t, "an ISO 3166-1 alpha-2 region code")
    });
    let test_numbers_bypass_limits = r.parse(ENV_TEST_NUMBERS_BYPASS_LIMITS, parse_bool);
    if let (Some(window), Some(settle)) = (window, settle)
        && settle >= window
    {
        r.problem(
            ENV_FRAUD_GUARD_SETTLE,
            &settle.as_secs().to_string(),
            "must be shorter than VERIFYD_FRAUD_GUARD_WINDOW",
        );
    }
    FraudGuardDraft {
        mode,
        window,
        settle,
        min_sends,
        min_conversion,
        block,
        unproven_max,
        prefix_digits,
        monitor_countries,
        test_numbers_bypass_limits,
    }
}
