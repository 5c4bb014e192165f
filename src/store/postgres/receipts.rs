//! [`ReceiptStore`] on PostgreSQL: the compare-and-set is an `UPDATE … WHERE delivery_status IS
//! NOT DISTINCT FROM $n`, its events inserted in the same transaction.

use async_trait::async_trait;
use sqlx::Row;

use super::events::insert_events;
use super::{PostgresStore, db_error};
use crate::domain::Timestamp;
use crate::store::receipts::{
    DeliveryUpdate, ReceiptChange, ReceiptStore, ReceiptTarget, parse_status,
};
use crate::store::{OutboxEvent, StoreError};

#[async_trait]
impl ReceiptStore for PostgresStore {
    async fn record_delivery(
        &self,
        attempt_sid: &str,
        update: &DeliveryUpdate,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "UPDATE verification_attempts SET vendor = $1, vendor_message_id = $2, \
                 failovers = $3, delivery_status = $4 WHERE sid = $5",
            )
            .bind(&update.vendor)
            .bind(update.message_id.as_deref())
            .bind(i32::try_from(update.failovers).unwrap_or(i32::MAX))
            .bind(update.status.as_str())
            .bind(attempt_sid)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn receipt_target(
        &self,
        vendor: &str,
        message_id: &str,
    ) -> Result<Option<ReceiptTarget>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(
                "SELECT sid, verification_sid, service_sid, channel, country, phone_sealed, \
                 failovers, delivery_status, COALESCE((SELECT v.created_at FROM verifications v \
                     WHERE v.sid = a.verification_sid), a.created_at) FROM verification_attempts a \
                 WHERE vendor = $1 AND vendor_message_id = $2 LIMIT 1",
            )
            .bind(vendor)
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.map(|r| {
                Ok(ReceiptTarget {
                    attempt_sid: r.try_get(0).map_err(db_error)?,
                    verification_sid: r.try_get(1).map_err(db_error)?,
                    service_sid: r.try_get(2).map_err(db_error)?,
                    channel: r.try_get(3).map_err(db_error)?,
                    country: r.try_get(4).map_err(db_error)?,
                    phone_sealed: r.try_get(5).map_err(db_error)?,
                    failovers: r
                        .try_get::<Option<i32>, _>(6)
                        .map_err(db_error)?
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    status: parse_status(r.try_get(7).map_err(db_error)?),
                    subject_created: Timestamp::from_millis(r.try_get(8).map_err(db_error)?),
                })
            })
            .transpose()
        })
        .await
    }

    async fn apply_receipt(
        &self,
        change: &ReceiptChange,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let moved = sqlx::query(
                "UPDATE verification_attempts SET delivery_status = $1, \
                 delivery_error = coalesce($2, delivery_error) \
                 WHERE vendor = $3 AND vendor_message_id = $4 \
                 AND delivery_status IS NOT DISTINCT FROM $5",
            )
            .bind(change.to.as_str())
            .bind(change.error_code.as_deref())
            .bind(&change.vendor)
            .bind(&change.message_id)
            .bind(change.from.map(|s| s.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if moved == 0 {
                tx.rollback().await.map_err(db_error)?;
                return Ok(false);
            }
            insert_events(&mut tx, &events).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(true)
        })
        .await
    }
}
