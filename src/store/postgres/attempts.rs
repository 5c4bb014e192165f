//! [`AttemptStore`] on PostgreSQL: a batch of rows is one multi-row `INSERT`; reads use the
//! time index and the verification index (conversion is an indexed `EXISTS`).

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, QueryBuilder, Row};

use super::{PostgresStore, db_error};
use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::attempts::{
    AttemptFilter, AttemptKind, AttemptRecord, AttemptStore, SendAttemptRow, stored_delivery,
    stored_message,
};

macro_rules! converted {
    () => {
        "EXISTS (SELECT 1 FROM verification_attempts c WHERE c.verification_sid = a.verification_sid \
         AND c.kind = 'check' AND c.status = 'approved')"
    };
}

macro_rules! attempt_columns {
    () => {
        concat!(
            "a.sid, a.kind, a.created_at, a.service_sid, a.verification_sid, a.channel, a.country, \
             a.prefix, a.phone_lookup, a.phone_sealed, a.vendor, a.status, a.reason, a.bucket, ",
            converted!(),
            ", a.locale, a.encoding, a.segments, a.vendor_message_id, a.failovers, \
             a.delivery_status, a.delivery_error"
        )
    };
}

/// Twilio's filters over send attempts, parameters $1 to $9.
macro_rules! send_filter {
    () => {
        concat!(
            " a.kind = 'send' AND a.sid IS NOT NULL AND a.channel IN ('sms', 'call', 'email', 'whatsapp') \
             AND ($1::bigint IS NULL OR a.created_at >= $1) AND ($2::bigint IS NULL OR a.created_at < $2) \
             AND ($3::bytea IS NULL OR a.phone_lookup = $3) AND ($4::text IS NULL OR a.country = $4) \
             AND ($5::text IS NULL OR a.channel = $5) AND ($6::text IS NULL OR a.service_sid = $6) \
             AND ($7::text IS NULL OR a.verification_sid = $7) \
             AND ($8::boolean IS NULL OR ",
            converted!(),
            " = $8) AND ($9::text IS NULL OR left(a.prefix, length($9)) = $9)"
        )
    };
}

fn row_from(row: &PgRow) -> Result<SendAttemptRow, StoreError> {
    let kind = match row.try_get::<String, _>(1).map_err(db_error)?.as_str() {
        "send" => AttemptKind::Send,
        "check" => AttemptKind::Check,
        _ => AttemptKind::Refusal,
    };
    Ok(SendAttemptRow {
        record: AttemptRecord {
            sid: row.try_get(0).map_err(db_error)?,
            kind,
            time: Timestamp::from_millis(row.try_get(2).map_err(db_error)?),
            service_sid: row.try_get(3).map_err(db_error)?,
            verification_sid: row.try_get(4).map_err(db_error)?,
            channel: row.try_get(5).map_err(db_error)?,
            country: row.try_get(6).map_err(db_error)?,
            prefix: row.try_get(7).map_err(db_error)?,
            phone_lookup: row.try_get(8).map_err(db_error)?,
            phone_sealed: row.try_get(9).map_err(db_error)?,
            vendor: row.try_get(10).map_err(db_error)?,
            status: row.try_get(11).map_err(db_error)?,
            reason: row.try_get(12).map_err(db_error)?,
            bucket: row.try_get(13).map_err(db_error)?,
            message: stored_message(
                row.try_get(15).map_err(db_error)?,
                row.try_get(16).map_err(db_error)?,
                row.try_get::<Option<i32>, _>(17)
                    .map_err(db_error)?
                    .map(i64::from),
            ),
            delivery: stored_delivery(
                row.try_get(18).map_err(db_error)?,
                row.try_get::<Option<i32>, _>(19)
                    .map_err(db_error)?
                    .map(i64::from),
                row.try_get(20).map_err(db_error)?,
                row.try_get(21).map_err(db_error)?,
            ),
            // Send attempts: never a summary.
            times: 1,
        },
        converted: row.try_get(14).map_err(db_error)?,
    })
}

fn bind_filter<'q>(
    q: Query<'q, Postgres, PgArguments>,
    f: &'q AttemptFilter,
) -> Query<'q, Postgres, PgArguments> {
    q.bind(f.created_after.map(Timestamp::as_millis))
        .bind(f.created_before.map(Timestamp::as_millis))
        .bind(f.phone_lookup.as_deref())
        .bind(f.country.as_deref())
        .bind(f.channel.as_deref())
        .bind(f.service_sid.as_deref())
        .bind(f.verification_sid.as_deref())
        .bind(f.converted)
        .bind(f.prefix.as_deref())
}

/// One statement appending `records` (rows whose `sid` is already there are left as they are)
/// and adding the rows written to their hourly counters (the console).
pub(super) fn insert_query(records: &[AttemptRecord]) -> QueryBuilder<Postgres> {
    let mut insert = QueryBuilder::<Postgres>::new(
        "WITH written AS (INSERT INTO verification_attempts (sid, kind, created_at, service_sid, \
         verification_sid, channel, country, prefix, phone_lookup, phone_sealed, vendor, \
         status, reason, bucket, locale, encoding, segments, times) ",
    );
    insert.push_values(records, |mut b, r| {
        b.push_bind(r.sid.as_deref())
            .push_bind(r.kind.as_str())
            .push_bind(r.time.as_millis())
            .push_bind(&r.service_sid)
            .push_bind(r.verification_sid.as_deref())
            .push_bind(r.channel.as_deref())
            .push_bind(r.country.as_deref())
            .push_bind(r.prefix.as_deref())
            .push_bind(r.phone_lookup.as_deref())
            .push_bind(r.phone_sealed.as_deref())
            .push_bind(r.vendor.as_deref())
            .push_bind(r.status.as_deref())
            .push_bind(r.reason.as_deref())
            .push_bind(r.bucket.as_deref())
            .push_bind(r.message.map(|m| m.locale))
            .push_bind(r.message.map(|m| m.encoding))
            .push_bind(
                r.message
                    .map(|m| i32::try_from(m.segments).unwrap_or(i32::MAX)),
            )
            .push_bind(i32::try_from(r.times.max(1)).unwrap_or(i32::MAX));
    });
    insert.push(" ON CONFLICT (sid) DO NOTHING");
    insert.push(super::console::hourly_upsert());
    insert
}

#[async_trait]
impl AttemptStore for PostgresStore {
    async fn record_attempts(&self, records: Vec<AttemptRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.bounded(async {
            let mut insert = insert_query(&records);
            insert.build().execute(&self.pool).await.map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn send_attempts(
        &self,
        filter: &AttemptFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SendAttemptRow>, StoreError> {
        self.bounded(async {
            let q = sqlx::query(concat!(
                "SELECT ",
                attempt_columns!(),
                " FROM verification_attempts a WHERE",
                send_filter!(),
                " AND a.sid COLLATE \"C\" > $10 ORDER BY a.sid COLLATE \"C\" LIMIT $11"
            ));
            let rows = bind_filter(q, filter)
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            rows.iter().map(row_from).collect()
        })
        .await
    }

    async fn send_attempt(&self, sid: &str) -> Result<Option<SendAttemptRow>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(concat!(
                "SELECT ",
                attempt_columns!(),
                " FROM verification_attempts a WHERE a.sid = $1 AND a.kind = 'send' \
                 AND a.channel IN ('sms', 'call', 'email', 'whatsapp')"
            ))
            .bind(sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.as_ref().map(row_from).transpose()
        })
        .await
    }

    async fn attempt_summary(&self, filter: &AttemptFilter) -> Result<(u64, u64), StoreError> {
        self.bounded(async {
            let q = sqlx::query(concat!(
                "SELECT count(*), count(*) FILTER (WHERE ",
                converted!(),
                ") FROM verification_attempts a WHERE",
                send_filter!()
            ));
            let row = bind_filter(q, filter)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
            let total: i64 = row.try_get(0).map_err(db_error)?;
            let converted: i64 = row.try_get(1).map_err(db_error)?;
            Ok((
                u64::try_from(total).unwrap_or(0),
                u64::try_from(converted).unwrap_or(0),
            ))
        })
        .await
    }

    async fn purge_attempts(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = sqlx::query("DELETE FROM verification_attempts WHERE created_at < $1")
                .bind(before.as_millis())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            sqlx::query("DELETE FROM attempt_hourly WHERE hour < $1")
                .bind(
                    before
                        .as_millis()
                        .div_euclid(crate::store::console::HOUR_MS),
                )
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected())
        })
        .await
    }
}
