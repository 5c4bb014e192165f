//! Persistence of the attempt log: rows are appended in batches (one store call, one
//! transaction, for many requests' rows), read back with Twilio's filters, and purged by age.
//! A send attempt's conversion is not a stored flag: it is whether its verification has an
//! `approved` check row, so approving writes one row and never rewrites old ones.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{MessageFacts, Timestamp};
use crate::sms::DeliveryStatus;

/// A row's message columns as stored, back as [`MessageFacts`] (none unless all three are there
/// and name a built-in locale and an encoding).
pub fn stored_message(
    locale: Option<String>,
    encoding: Option<String>,
    segments: Option<i64>,
) -> Option<MessageFacts> {
    let locale = crate::messages::Locale::parse(&locale?).ok()?.tag();
    let encoding = match encoding?.as_str() {
        "gsm7" => "gsm7",
        "ucs2" => "ucs2",
        _ => return None,
    };
    Some(MessageFacts {
        locale,
        encoding,
        segments: u32::try_from(segments?).ok()?,
    })
}

/// What delivery and its receipts learned of a send (issue 22): none before delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryFacts {
    /// The vendor's id of the message (what its receipts name).
    pub message_id: Option<String>,
    /// Vendors of the route passed over before the one that carried it.
    pub failovers: u32,
    /// Where the message stands (moved only forward by receipts).
    pub status: DeliveryStatus,
    /// The vendor's error code from a receipt.
    pub error_code: Option<String>,
}

/// A row's delivery columns as stored, back as [`DeliveryFacts`] (none without a status).
pub fn stored_delivery(
    message_id: Option<String>,
    failovers: Option<i64>,
    status: Option<String>,
    error_code: Option<String>,
) -> Option<DeliveryFacts> {
    Some(DeliveryFacts {
        status: DeliveryStatus::parse(&status?)?,
        message_id,
        failovers: failovers.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        error_code,
    })
}

/// What a row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptKind {
    /// A delivery attempt (`sid` VL… when it was made; none when delivery failed).
    Send,
    /// A check's outcome (`status`: approved, incorrect, max_attempts, not_found, canceled).
    Check,
    /// A request refused before the engine (`reason`, and `bucket` for rate limits).
    Refusal,
}

impl AttemptKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptKind::Send => "send",
            AttemptKind::Check => "check",
            AttemptKind::Refusal => "refusal",
        }
    }
}

/// One row of the attempt log, as stored (the number only as digest and ciphertext).
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub sid: Option<String>,
    pub kind: AttemptKind,
    pub time: Timestamp,
    pub service_sid: String,
    pub verification_sid: Option<String>,
    pub channel: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// The number's first five characters (`+1415`).
    pub prefix: Option<String>,
    pub phone_lookup: Option<Vec<u8>>,
    pub phone_sealed: Option<Vec<u8>>,
    /// Who carried it (`local` until delivery names the vendor, `twilio-verify`, `test-number`,
    /// `twilio-messaging`, `telnyx`, …).
    pub vendor: Option<String>,
    /// Delivery status of a send (`sent`, `failed`), outcome of a check.
    pub status: Option<String>,
    /// Why a request was refused (`country`, `rate_limited`, …).
    pub reason: Option<String>,
    /// The bucket of a `rate_limited` refusal.
    pub bucket: Option<String>,
    /// A rendered message's locale, SMS encoding (`gsm7`, `ucs2`) and SMS parts.
    pub message: Option<MessageFacts>,
    /// How many refusals the row stands for: 1, or more for a flood's summary row (which has
    /// no number; see `attempt_log`).
    pub times: u32,
    /// What delivery and its receipts learned (written after delivery, never on insert).
    pub delivery: Option<DeliveryFacts>,
}

/// A send attempt as listed: the row and whether its verification was approved.
#[derive(Clone, Debug)]
pub struct SendAttemptRow {
    pub record: AttemptRecord,
    pub converted: bool,
}

/// Twilio's filters of `/v2/Attempts` and its summary; `None` filters nothing.
#[derive(Clone, Debug, Default)]
pub struct AttemptFilter {
    /// Created at or after.
    pub created_after: Option<Timestamp>,
    /// Created before.
    pub created_before: Option<Timestamp>,
    pub phone_lookup: Option<Vec<u8>>,
    pub country: Option<String>,
    pub channel: Option<String>,
    pub service_sid: Option<String>,
    pub verification_sid: Option<String>,
    pub converted: Option<bool>,
    /// Rows whose `prefix` starts with this.
    pub prefix: Option<String>,
}

/// The attempt log's store.
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// Appends `records` in one transaction.
    async fn record_attempts(&self, records: Vec<AttemptRecord>) -> Result<(), StoreError>;

    /// Up to `limit` send attempts (with a sid, on a Twilio channel) matching `filter`, in sid
    /// (creation) order, after `after`.
    async fn send_attempts(
        &self,
        filter: &AttemptFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SendAttemptRow>, StoreError>;

    /// One send attempt by sid.
    async fn send_attempt(&self, sid: &str) -> Result<Option<SendAttemptRow>, StoreError>;

    /// (send attempts, converted ones) matching `filter`.
    async fn attempt_summary(&self, filter: &AttemptFilter) -> Result<(u64, u64), StoreError>;

    /// Deletes rows created before `before`; how many.
    async fn purge_attempts(&self, before: Timestamp) -> Result<u64, StoreError>;
}
