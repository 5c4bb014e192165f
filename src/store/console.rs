//! What the operator console reads: the hourly counts of the attempt log (kept by the backends
//! in the same transaction as the rows they count, so the overview never scans the log), the
//! log itself newest first with the console's filters (each one indexed), and the rows of one
//! verification. Read-only: the console changes nothing through this trait.

use async_trait::async_trait;

use super::StoreError;
use super::attempts::{AttemptKind, AttemptRecord};
use crate::domain::Timestamp;

/// Milliseconds in an hour: the counters' unit of time.
pub const HOUR_MS: i64 = 3_600_000;

/// The counter an attempt-log row adds one to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HourlyKey {
    /// `created_at / HOUR_MS`.
    pub hour: i64,
    pub kind: &'static str,
    /// A send's or a check's status, a refusal's reason; `""` when the row has none.
    pub outcome: String,
    pub bucket: String,
    pub channel: String,
    pub country: String,
    pub prefix: String,
}

impl HourlyKey {
    /// The counter `record` counts in.
    pub fn of(record: &AttemptRecord) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let outcome = match record.kind {
            AttemptKind::Refusal => text(&record.reason),
            AttemptKind::Send | AttemptKind::Check => text(&record.status),
        };
        Self {
            hour: record.time.as_millis().div_euclid(HOUR_MS),
            kind: record.kind.as_str(),
            outcome,
            bucket: text(&record.bucket),
            channel: text(&record.channel),
            country: text(&record.country),
            prefix: text(&record.prefix),
        }
    }
}

/// A sum of counters: how many rows of `kind` had `outcome` (and `bucket`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeCount {
    pub kind: String,
    pub outcome: String,
    pub bucket: String,
    pub n: u64,
}

/// Which column [`ConsoleStore::destinations`] groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    Country,
    Prefix,
}

/// Sends and conversions of one country or prefix (or one hour).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// The country, the prefix, or the hour (`created_at / HOUR_MS`) as text.
    pub key: String,
    /// Send attempts that went out (`status = sent`).
    pub sends: u64,
    /// Approved checks.
    pub conversions: u64,
}

/// The console's filters over the attempt log; `None` filters nothing.
#[derive(Clone, Debug, Default)]
pub struct ConsoleFilter {
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
    pub country: Option<String>,
    pub channel: Option<String>,
    pub kind: Option<AttemptKind>,
    /// A send's or a check's status (with `kind`).
    pub status: Option<String>,
    /// The number's lookup digest.
    pub phone_lookup: Option<Vec<u8>>,
    /// Set by the backends from `from` and `to`: the log's positions (`seq`) of the first rows
    /// at or after those times, found with the time index, so that a date range is read as a
    /// range of the log's own order (rows are appended in time order; with several replicas
    /// writing, a row flushed out of time order within a second of midnight may be listed on
    /// the neighbouring day).
    pub seq_from: Option<i64>,
    pub seq_to: Option<i64>,
}

/// A row of the log with its place in it (`seq`, for paging).
#[derive(Clone, Debug)]
pub struct LoggedAttempt {
    pub seq: i64,
    pub record: AttemptRecord,
}

/// The console's reads.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Counters summed by kind, outcome and bucket over the hours from `from_hour` on.
    async fn outcome_counts(&self, from_hour: i64) -> Result<Vec<OutcomeCount>, StoreError>;

    /// The `limit` countries or prefixes with the most sends from `from_hour` on, with their
    /// approved checks.
    async fn destinations(
        &self,
        from_hour: i64,
        by: Destination,
        limit: u32,
    ) -> Result<Vec<Volume>, StoreError>;

    /// Sends and conversions per hour from `from_hour` on (hours without any are absent).
    async fn hourly_volume(&self, from_hour: i64) -> Result<Vec<Volume>, StoreError>;

    /// Up to `limit` rows matching `filter`, newest first, older than `before` (a `seq`).
    async fn logged_attempts(
        &self,
        filter: &ConsoleFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LoggedAttempt>, StoreError>;

    /// Every row of the verification `sid`, oldest first.
    async fn verification_log(&self, sid: &str) -> Result<Vec<LoggedAttempt>, StoreError>;
}

/// Adds one to `counts` for each of `records` (a backend's helper for its batch write).
pub fn count_hourly<'a>(
    records: impl IntoIterator<Item = &'a AttemptRecord>,
) -> std::collections::HashMap<HourlyKey, i64> {
    let mut counts = std::collections::HashMap::new();
    for r in records {
        *counts.entry(HourlyKey::of(r)).or_insert(0) += i64::from(r.times.max(1));
    }
    counts
}

/// Parses a stored kind.
pub fn kind_from(text: &str) -> AttemptKind {
    match text {
        "send" => AttemptKind::Send,
        "check" => AttemptKind::Check,
        _ => AttemptKind::Refusal,
    }
}

/// A value a filter compares with.
#[derive(Clone, Debug)]
pub enum FilterValue {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// The conditions `filter` (and `before`) set, as `(column and operator, value)`; a condition
/// without a value is complete as it stands. Only those set, so the database can use the one
/// index that serves the list (an `x IS NULL OR …` condition would hide it), and each written
/// so that index also gives the rows in `seq` order whatever the planner's statistics say:
///
/// - a date range is the range of the log's positions (`seq_from`, `seq_to`) the time index
///   found, not a second condition on the time (on PostgreSQL, two range conditions over one
///   range of `seq` made the planner expect a handful of rows right after a bulk load, read all
///   of the day's rows through a bitmap and sort them: 120 ms with 1 M rows);
/// - "refused" is the literal `kind = 'refusal'`, which the partial index
///   `verification_attempts_refusals` (in `seq` order) matches even in a prepared statement's
///   generic plan; PostgreSQL cannot read `(kind, status, seq)` in `seq` order for
///   `status IS NULL` (an `IS NULL` is no equality to its planner), and sorted all 100 k
///   refusals instead (295 ms).
pub fn conditions(
    filter: &ConsoleFilter,
    before: Option<i64>,
) -> Vec<(&'static str, Option<FilterValue>)> {
    let mut out = Vec::new();
    if let Some(s) = filter.seq_from {
        out.push(("seq >=", Some(FilterValue::Int(s))));
    }
    if let Some(s) = filter.seq_to {
        out.push(("seq <", Some(FilterValue::Int(s))));
    }
    if let Some(c) = &filter.country {
        out.push(("country =", Some(FilterValue::Text(c.clone()))));
    }
    if let Some(c) = &filter.channel {
        out.push(("channel =", Some(FilterValue::Text(c.clone()))));
    }
    match (filter.kind, &filter.status) {
        (Some(AttemptKind::Refusal), _) => out.push(("kind = 'refusal'", None)),
        (Some(k), status) => {
            out.push(("kind =", Some(FilterValue::Text(k.as_str().to_owned()))));
            if let Some(s) = status {
                out.push(("status =", Some(FilterValue::Text(s.clone()))));
            }
        }
        (None, Some(s)) => out.push(("status =", Some(FilterValue::Text(s.clone())))),
        (None, None) => {}
    }
    if let Some(p) = &filter.phone_lookup {
        out.push(("phone_lookup =", Some(FilterValue::Bytes(p.clone()))));
    }
    if let Some(b) = before {
        out.push(("seq <", Some(FilterValue::Int(b))));
    }
    out
}
