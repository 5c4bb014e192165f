//! [`ReceiptStore`] on SQLite: each call is one write job (so one transaction), the
//! compare-and-set an `UPDATE … WHERE delivery_status IS ?`.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::events::insert_events;
use super::worker::Access;
use super::{SqliteStore, db_error, execute};
use crate::domain::Timestamp;
use crate::store::receipts::{
    DeliveryUpdate, ReceiptChange, ReceiptStore, ReceiptTarget, parse_status,
};
use crate::store::{OutboxEvent, StoreError};

#[async_trait]
impl ReceiptStore for SqliteStore {
    async fn record_delivery(
        &self,
        attempt_sid: &str,
        update: &DeliveryUpdate,
    ) -> Result<(), StoreError> {
        let sid = attempt_sid.to_owned();
        let u = update.clone();
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "UPDATE verification_attempts SET vendor = ?1, vendor_message_id = ?2, \
                     failovers = ?3, delivery_status = ?4 WHERE sid = ?5",
                    params![u.vendor, u.message_id, u.failovers, u.status.as_str(), sid],
                )
                .map(|_| ())
            })
            .await
    }

    async fn receipt_target(
        &self,
        vendor: &str,
        message_id: &str,
    ) -> Result<Option<ReceiptTarget>, StoreError> {
        let (vendor, message_id) = (vendor.to_owned(), message_id.to_owned());
        self.worker
            .call(Access::Read, move |c| {
                c.prepare_cached(
                    "SELECT sid, verification_sid, service_sid, channel, country, phone_sealed, \
                     failovers, delivery_status, COALESCE((SELECT v.created_at FROM verifications v \
                     WHERE v.sid = a.verification_sid), a.created_at) FROM verification_attempts a \
                     WHERE vendor = ?1 AND vendor_message_id = ?2 LIMIT 1",
                )
                .and_then(|mut st| {
                    st.query_row(params![vendor, message_id], |r| {
                        Ok(ReceiptTarget {
                            attempt_sid: r.get(0)?,
                            verification_sid: r.get(1)?,
                            service_sid: r.get(2)?,
                            channel: r.get(3)?,
                            country: r.get(4)?,
                            phone_sealed: r.get(5)?,
                            failovers: r
                                .get::<_, Option<i64>>(6)?
                                .and_then(|n| u32::try_from(n).ok())
                                .unwrap_or(0),
                            status: parse_status(r.get(7)?),
                            subject_created: Timestamp::from_millis(r.get(8)?),
                        })
                    })
                    .optional()
                })
                .map_err(db_error)
            })
            .await
    }

    async fn apply_receipt(
        &self,
        change: &ReceiptChange,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError> {
        let ch = change.clone();
        self.worker
            .call(Access::Write, move |c| {
                let moved = execute(
                    c,
                    "UPDATE verification_attempts SET delivery_status = ?1, \
                     delivery_error = coalesce(?2, delivery_error) \
                     WHERE vendor = ?3 AND vendor_message_id = ?4 AND delivery_status IS ?5",
                    params![
                        ch.to.as_str(),
                        ch.error_code,
                        ch.vendor,
                        ch.message_id,
                        ch.from.map(|s| s.as_str())
                    ],
                )?;
                if moved > 0 {
                    insert_events(c, &events)?;
                }
                Ok(moved > 0)
            })
            .await
    }
}
