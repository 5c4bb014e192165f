//! Delivery receipts: what a vendor tells verifyd, after the fact, about one message it carried.
//! Each vendor's file verifies its own signature scheme and parses its own body into a
//! [`Receipt`]; `POST /callbacks/{vendor}` (the HTTP face) hands the request over as a
//! [`ReceiptRequest`] and applies the result to the attempt log. Nothing here trusts a receipt
//! whose signature was not verified.

use crate::domain::Timestamp;

/// Where a message stands, as its vendor reports it. Ordered: a receipt never moves an attempt
/// backwards (`Delivered` is never replaced by `Sent`), so a replayed or late receipt changes
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStatus {
    /// Accepted by verifyd's vendor, not yet handed on.
    Queued,
    /// Handed to the carrier.
    Sent,
    /// The handset (or mailbox) has it. Final.
    Delivered,
    /// The carrier could not deliver it. Final.
    Undelivered,
    /// The vendor could not send it. Final.
    Failed,
}

impl DeliveryStatus {
    /// The attempt log's and `/v2`'s word for it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s words.
    #[must_use]
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "queued" => Self::Queued,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether no later receipt can change it.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Undelivered | Self::Failed)
    }
}

/// One callback request as it arrived, for a vendor to verify.
#[derive(Debug, Clone, Copy)]
pub struct ReceiptRequest<'a> {
    /// The URL the vendor called, as the vendor saw it (built from `VERIFYD_PUBLIC_URL`, path and
    /// query included): some schemes sign it.
    pub url: &'a str,
    /// The request's headers.
    pub headers: &'a axum::http::HeaderMap,
    /// The raw body, exactly as received (signatures are over bytes, not over parsed values).
    pub body: &'a [u8],
    /// Now, for schemes with a timestamp (replay protection).
    pub now: Timestamp,
}

/// What a verified receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The vendor's own id of the message (the one its send answer gave).
    pub message_id: String,
    /// Where the message stands.
    pub status: DeliveryStatus,
    /// The vendor's error code, when it gave one (kept for the attempt log, never a secret).
    pub error_code: Option<String>,
}

/// Why a receipt was not accepted. None of these changes anything.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The request carries no signature (or no token) at all.
    #[error("the receipt is not signed")]
    Unsigned,
    /// The signature does not match (forged, or signed with another secret).
    #[error("the receipt's signature does not match")]
    BadSignature,
    /// Signed, but its timestamp is outside the accepted window (a replay, or a skewed clock).
    #[error("the receipt's timestamp is outside the accepted window")]
    Stale,
    /// Signed, but the body is not a receipt this vendor sends.
    #[error("the receipt is malformed: {0}")]
    Malformed(String),
    /// This vendor's receipts are not configured here (its verification secret is missing).
    #[error("receipts from this vendor are not configured")]
    NotConfigured,
}

/// A vendor's way of verifying and reading its receipts.
pub trait ReceiptVerifier: Send + Sync {
    /// The vendor's name, as in `VERIFYD_SMS_ROUTES` and `/callbacks/{vendor}`.
    fn vendor(&self) -> &'static str;

    /// Verifies `request`'s signature and reads the receipt from it.
    ///
    /// # Errors
    /// [`ReceiptError`] for anything that must not change an attempt.
    fn verify(&self, request: &ReceiptRequest<'_>) -> Result<Receipt, ReceiptError>;
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The fields of a form-encoded body, in order.
///
/// # Errors
/// [`ReceiptError::Malformed`] when the body is not `application/x-www-form-urlencoded`.
pub fn form_fields(body: &[u8]) -> Result<Vec<(String, String)>, ReceiptError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| ReceiptError::Malformed("the body is not a form".to_owned()))
}

/// The verifier of `vendor` among `verifiers`.
#[must_use]
pub fn find<'a>(
    verifiers: &'a [std::sync::Arc<dyn ReceiptVerifier>],
    vendor: &str,
) -> Option<&'a dyn ReceiptVerifier> {
    verifiers
        .iter()
        .find(|v| v.vendor() == vendor)
        .map(AsRef::as_ref)
}

/// Receipts older or newer than this (by their signed timestamp) are refused as stale: the
/// replay window of the schemes with a timestamp.
pub const TIMESTAMP_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);

/// Whether a signed timestamp (`seconds` since the epoch) is within [`TIMESTAMP_TOLERANCE`] of
/// `now`.
#[must_use]
pub fn fresh(seconds: i64, now: Timestamp) -> bool {
    let tolerance = i64::try_from(TIMESTAMP_TOLERANCE.as_millis()).unwrap_or(i64::MAX);
    seconds
        .checked_mul(1000)
        .is_some_and(|ms| (ms - now.as_millis()).abs() <= tolerance)
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus;
    use crate::domain::Timestamp;

    #[test]
    fn statuses_round_trip_and_only_move_forward() {
        for status in [
            DeliveryStatus::Queued,
            DeliveryStatus::Sent,
            DeliveryStatus::Delivered,
            DeliveryStatus::Undelivered,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(status));
        }
        assert!(DeliveryStatus::Queued < DeliveryStatus::Sent);
        assert!(DeliveryStatus::Sent < DeliveryStatus::Delivered);
        assert!(!DeliveryStatus::Sent.is_final());
        assert!(DeliveryStatus::Failed.is_final());
        assert_eq!(DeliveryStatus::parse("read"), None);
    }

    #[test]
    fn a_signed_timestamp_is_fresh_within_five_minutes_either_way() {
        let now = Timestamp::from_millis(1_800_000_000_000);
        for (seconds, fresh_) in [
            (1_800_000_000, true),
            (1_800_000_000 - 300, true),
            (1_800_000_000 - 301, false),
            (1_800_000_000 + 300, true),
            (1_800_000_000 + 301, false),
            (i64::MAX, false),
        ] {
            assert_eq!(super::fresh(seconds, now), fresh_, "{seconds}");
        }
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
    }
}
