//! The delivery side of the attempt log (issue 22): after delivery, a send row learns which
//! vendor carried it, the vendor's id of the message, how many vendors were passed over first
//! and its first delivery status; later, the vendor's receipts move that status forward. A
//! receipt's status change and its event (`attempt.delivered` / `attempt.failed`) are written
//! in one transaction, as a compare-and-set on the status the caller read, so two receipts
//! racing never both apply and a status never moves back.
//!
//! The store does not judge statuses: the caller decides what is forward
//! ([`DeliveryStatus`]'s order) and builds the events.

use async_trait::async_trait;

use super::{OutboxEvent, StoreError};
use crate::domain::Timestamp;
use crate::sms::DeliveryStatus;

/// What delivery learned, for the send row it updates.
#[derive(Clone, Debug)]
pub struct DeliveryUpdate {
    /// The vendor that carried it (replaces `local`).
    pub vendor: String,
    pub message_id: Option<String>,
    pub failovers: u32,
    pub status: DeliveryStatus,
}

/// The send row a receipt is about, as the receipt route needs it.
#[derive(Clone, Debug)]
pub struct ReceiptTarget {
    /// The attempt's `VL…`.
    pub attempt_sid: Option<String>,
    pub verification_sid: Option<String>,
    pub service_sid: String,
    pub channel: Option<String>,
    pub country: Option<String>,
    pub phone_sealed: Option<Vec<u8>>,
    pub failovers: u32,
    /// The status now (none: the row was never given one).
    pub status: Option<DeliveryStatus>,
    /// When its verification began (the attempt's own time once the verification is gone): its
    /// events' `subject_created`.
    pub subject_created: Timestamp,
}

/// One receipt's change: `vendor`'s message `message_id` moves from `from` to `to`.
#[derive(Clone, Debug)]
pub struct ReceiptChange {
    pub vendor: String,
    pub message_id: String,
    /// The status the caller read (the compare-and-set's expected value).
    pub from: Option<DeliveryStatus>,
    pub to: DeliveryStatus,
    pub error_code: Option<String>,
}

/// The attempt log's delivery columns.
#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Records on send row `attempt_sid` what its delivery learned (one small `UPDATE`).
    async fn record_delivery(
        &self,
        attempt_sid: &str,
        update: &DeliveryUpdate,
    ) -> Result<(), StoreError>;

    /// The send row of `vendor`'s message `message_id`, if any.
    async fn receipt_target(
        &self,
        vendor: &str,
        message_id: &str,
    ) -> Result<Option<ReceiptTarget>, StoreError>;

    /// In one transaction: applies `change` if the row's status is still `change.from`, and then
    /// writes `events`. False (nothing written) when the status moved meanwhile.
    async fn apply_receipt(
        &self,
        change: &ReceiptChange,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError>;
}

/// A stored status word back as a [`DeliveryStatus`] (none for NULL or a word it does not know).
pub fn parse_status(word: Option<String>) -> Option<DeliveryStatus> {
    word.as_deref().and_then(DeliveryStatus::parse)
}
