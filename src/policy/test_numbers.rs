//! Test numbers: configured numbers that never receive an SMS and approve a fixed code, for
//! app-store review and end-to-end tests of the apps that use verifyd. An entry past its
//! `valid_until` is an ordinary number again. The service asks [`TestNumbers::code`] once per
//! request; nothing else decides whether a number is a test number.

use std::collections::HashMap;

use crate::config::TestNumber;
use crate::domain::{OtpCode, Recipient, Timestamp};

/// The configured test numbers, by E.164.
pub struct TestNumbers {
    by_number: HashMap<String, Entry>,
}

struct Entry {
    code: OtpCode,
    valid_until: Option<Timestamp>,
}

impl TestNumbers {
    /// The entries whose code is a code (the configuration has already refused any other).
    pub fn new(entries: &[TestNumber]) -> Self {
        Self {
            by_number: entries
                .iter()
                .filter_map(|t| {
                    let code = OtpCode::from_stored(t.code.clone())?;
                    Some((
                        t.number.e164().to_owned(),
                        Entry {
                            code,
                            valid_until: t.valid_until,
                        },
                    ))
                })
                .collect(),
        }
    }

    /// The fixed code of `to` if it is a test number still valid at `now` (an email address
    /// never is one).
    pub fn code(&self, to: &Recipient, now: Timestamp) -> Option<&OtpCode> {
        self.by_number
            .get(to.phone()?.e164())
            .filter(|t| t.valid_until.is_none_or(|until| now < until))
            .map(|t| &t.code)
    }
}

impl std::fmt::Debug for TestNumbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The codes are secrets: only the numbers are shown.
        f.debug_set().entries(self.by_number.keys()).finish()
    }
}
