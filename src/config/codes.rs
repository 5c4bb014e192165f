//! The codes' rules: their length, their lifetime and the test numbers (a fixed code and no
//! SMS, from `[[test_numbers]]` in `verifyd.toml`; each code must have the configured length).

use std::time::Duration;

use super::parse::positive_duration;
use super::settings::{ENV_CODE_LENGTH, ENV_CODE_TTL};
use super::source::Reader;
use crate::domain::{CodeLength, PhoneNumber, Timestamp};

/// The codes' rules.
#[derive(Clone, Debug)]
pub struct CodeSettings {
    pub length: CodeLength,
    pub ttl: Duration,
    /// Numbers that get a fixed code and no SMS.
    pub test_numbers: Vec<TestNumber>,
}

/// The codes' rules as read, each `None` when its problem was recorded.
pub(super) struct CodeDraft {
    pub length: Option<CodeLength>,
    pub ttl: Option<Duration>,
    pub test_numbers: Vec<TestNumber>,
}

impl CodeDraft {
    pub(super) fn finish(self) -> Option<CodeSettings> {
        Some(CodeSettings {
            length: self.length?,
            ttl: self.ttl?,
            test_numbers: self.test_numbers,
        })
    }
}

/// A number that never receives an SMS and approves a fixed code (app-store review, e2e tests).
#[derive(Clone, Debug)]
pub struct TestNumber {
    pub number: PhoneNumber,
    pub code: String,
    /// The entry stops working at this instant (end of the given day, UTC).
    pub valid_until: Option<Timestamp>,
}

/// Reads the codes' rules.
pub(super) fn read(r: &mut Reader<'_>) -> CodeDraft {
    let length = r.parse(ENV_CODE_LENGTH, |t| {
        t.parse::<u8>()
            .ok()
            .and_then(CodeLength::new)
            .ok_or_else(|| "expected a number from 4 to 10".to_owned())
    });
    let test_numbers = test_numbers(r, length);
    let ttl = r.parse(ENV_CODE_TTL, |t| {
        let d = positive_duration(t)?;
        if d > Duration::from_secs(86_400) {
            return Err("must be at most one day".to_owned());
        }
        Ok(d)
    });
    CodeDraft {
        length,
        ttl,
        test_numbers,
    }
}

/// `[[test_numbers]]`: `number`, `code` (exactly the configured length), optional
/// `valid_until` (`2026-12-31`: valid through that day, UTC; or an RFC 3339 instant).
fn test_numbers(r: &mut Reader<'_>, code_length: Option<CodeLength>) -> Vec<TestNumber> {
    let Some(value) = r.sources.structured.get("test_numbers").cloned() else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        r.problem(
            "test_numbers",
            "",
            "must be an array of tables ([[test_numbers]])",
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = format!("test_numbers[{i}]");
        match test_number(item, code_length) {
            Ok(t) => out.push(t),
            // The code is a secret: never echo the entry.
            Err(reason) => r.problem(&name, "<entry>", reason),
        }
    }
    out
}

fn test_number(item: &toml::Value, code_length: Option<CodeLength>) -> Result<TestNumber, String> {
    let t = item.as_table().ok_or("must be a table")?;
    for k in t.keys() {
        if !["number", "code", "valid_until"].contains(&k.as_str()) {
            return Err(format!("unknown field `{k}`"));
        }
    }
    let number = t
        .get("number")
        .and_then(toml::Value::as_str)
        .ok_or("`number` is required")?;
    let number = PhoneNumber::parse(number).map_err(|e| format!("`number`: {e}"))?;
    let code = t
        .get("code")
        .and_then(toml::Value::as_str)
        .ok_or("`code` is required (a string of digits)")?;
    if !code.bytes().all(|c| c.is_ascii_digit()) || code.is_empty() {
        return Err("`code` must be ASCII digits".to_owned());
    }
    if let Some(len) = code_length
        && code.len() != len.get()
    {
        return Err(format!(
            "`code` has {} digits but VERIFYD_CODE_LENGTH is {}: it could never be entered",
            code.len(),
            len.get()
        ));
    }
    let valid_until = match t.get("valid_until") {
        None => None,
        Some(toml::Value::Datetime(dt)) => Some(parse_until(&dt.to_string())?),
        Some(toml::Value::String(s)) => Some(parse_until(s)?),
        Some(_) => return Err("`valid_until` must be a date like 2026-12-31".to_owned()),
    };
    Ok(TestNumber {
        number,
        code: code.to_owned(),
        valid_until,
    })
}

/// `2026-12-31` (through the end of that day, UTC) or an RFC 3339 instant.
fn parse_until(text: &str) -> Result<Timestamp, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(Timestamp::from_millis(
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        ));
    }
    let parts: Vec<&str> = text.split('-').collect();
    let bad = || format!("`valid_until` {text:?} is not a date like 2026-12-31");
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day: u8 = d.parse().map_err(|_| bad())?;
    let month = time::Month::try_from(month).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    let end = date.next_day().ok_or_else(bad)?.midnight().assume_utc();
    Ok(Timestamp::from_millis(end.unix_timestamp() * 1000))
}
