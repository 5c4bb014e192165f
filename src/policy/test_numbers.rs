//! Test numbers: configured numbers that never receive an SMS and approve a fixed code, for
//! app-store review and end-to-end tests of the apps that use verifyd. An entry past its
//! `valid_until` is an ordinary number again.

use std::collections::HashMap;

use crate::config::TestNumber;
use crate::domain::{PhoneNumber, Timestamp};

/// The configured test numbers, by E.164.
#[derive(Clone, Debug, Default)]
pub struct TestNumbers {
    by_number: HashMap<String, TestNumber>,
}

impl TestNumbers {
    pub fn new(entries: &[TestNumber]) -> Self {
        Self {
            by_number: entries
                .iter()
                .map(|t| (t.number.e164().to_owned(), t.clone()))
                .collect(),
        }
    }

    /// The entry for `phone` if it is a test number still valid at `now`.
    pub fn active(&self, phone: &PhoneNumber, now: Timestamp) -> Option<&TestNumber> {
        self.by_number
            .get(phone.e164())
            .filter(|t| t.valid_until.is_none_or(|until| now < until))
    }

    pub fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }
}
