//! [`ConsoleStore`] on PostgreSQL. The hourly counters are kept by the attempt log's batch
//! write itself (one statement: the rows' `INSERT … RETURNING` feeds the counters' upsert, see
//! [`hourly_upsert`]); filtered lists read one index in `seq` order.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::{PostgresStore, db_error};
use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::attempts::{AttemptRecord, stored_delivery};
use crate::store::console::{
    ConsoleFilter, ConsoleStore, Destination, FilterValue, LoggedAttempt, OutcomeCount, Volume,
    conditions, kind_from,
};

/// What follows an `INSERT INTO verification_attempts … ON CONFLICT (sid) DO NOTHING` (the
/// statement starting `WITH written AS (`) so that the rows it wrote are added to their hourly
/// counters in the same statement. Counters are upserted in key order, so concurrent batches
/// of several replicas lock them in one order and never deadlock.
pub(super) fn hourly_upsert() -> &'static str {
    " RETURNING created_at, kind, status, reason, bucket, channel, country, prefix, times) \
     INSERT INTO attempt_hourly (hour, kind, outcome, bucket, channel, country, prefix, n) \
     SELECT created_at / 3600000, kind, \
     coalesce(CASE WHEN kind = 'refusal' THEN reason ELSE status END, ''), coalesce(bucket, ''), \
     coalesce(channel, ''), coalesce(country, ''), coalesce(prefix, ''), sum(times) \
     FROM written GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7 \
     ON CONFLICT (hour, kind, outcome, bucket, channel, country, prefix) \
     DO UPDATE SET n = attempt_hourly.n + excluded.n"
}

macro_rules! columns {
    () => {
        "seq, sid, kind, created_at, service_sid, verification_sid, channel, country, prefix, \
         phone_lookup, phone_sealed, vendor, status, reason, bucket, vendor_message_id, \
         failovers, delivery_status, delivery_error, times"
    };
}

/// Sends and conversions by `$col` from hour $1 on, the $2 busiest.
macro_rules! destinations_sql {
    ($col:literal) => {
        concat!(
            "SELECT ", $col, ", \
             sum(CASE WHEN kind = 'send' AND outcome = 'sent' THEN n ELSE 0 END)::bigint AS sends, \
             sum(CASE WHEN kind = 'check' AND outcome = 'approved' THEN n ELSE 0 END)::bigint \
             FROM attempt_hourly WHERE hour >= $1 AND ", $col, " <> '' GROUP BY ", $col,
            " ORDER BY sends DESC, ", $col, " LIMIT $2"
        )
    };
}

fn logged(row: &PgRow) -> Result<LoggedAttempt, StoreError> {
    let get = |i: usize| row.try_get::<Option<String>, _>(i).map_err(db_error);
    Ok(LoggedAttempt {
        seq: row.try_get(0).map_err(db_error)?,
        record: AttemptRecord {
            sid: get(1)?,
            kind: kind_from(&row.try_get::<String, _>(2).map_err(db_error)?),
            time: Timestamp::from_millis(row.try_get(3).map_err(db_error)?),
            service_sid: row.try_get(4).map_err(db_error)?,
            verification_sid: get(5)?,
            channel: get(6)?,
            country: get(7)?,
            prefix: get(8)?,
            phone_lookup: row.try_get(9).map_err(db_error)?,
            phone_sealed: row.try_get(10).map_err(db_error)?,
            vendor: get(11)?,
            status: get(12)?,
            reason: get(13)?,
            bucket: get(14)?,
            // The console's rows do not show the message's encoding.
            message: None,
            delivery: stored_delivery(
                get(15)?,
                row.try_get::<Option<i32>, _>(16)
                    .map_err(db_error)?
                    .map(i64::from),
                get(17)?,
                get(18)?,
            ),
            times: row
                .try_get::<i32, _>(19)
                .map_err(db_error)
                .map(|n| u32::try_from(n).unwrap_or(1))?,
        },
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn volume(row: &PgRow) -> Result<Volume, StoreError> {
    Ok(Volume {
        key: row.try_get(0).map_err(db_error)?,
        sends: count(row.try_get(1).map_err(db_error)?),
        conversions: count(row.try_get(2).map_err(db_error)?),
    })
}

#[async_trait]
impl ConsoleStore for PostgresStore {
    async fn outcome_counts(&self, from_hour: i64) -> Result<Vec<OutcomeCount>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT kind, outcome, bucket, sum(n)::bigint FROM attempt_hourly \
                 WHERE hour >= $1 GROUP BY kind, outcome, bucket",
            )
            .bind(from_hour)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    Ok(OutcomeCount {
                        kind: r.try_get(0).map_err(db_error)?,
                        outcome: r.try_get(1).map_err(db_error)?,
                        bucket: r.try_get(2).map_err(db_error)?,
                        n: count(r.try_get(3).map_err(db_error)?),
                    })
                })
                .collect()
        })
        .await
    }

    async fn destinations(
        &self,
        from_hour: i64,
        by: Destination,
        limit: u32,
    ) -> Result<Vec<Volume>, StoreError> {
        let sql = match by {
            Destination::Country => destinations_sql!("country"),
            Destination::Prefix => destinations_sql!("prefix"),
        };
        self.bounded(async {
            let rows = sqlx::query(sql)
                .bind(from_hour)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            rows.iter().map(volume).collect()
        })
        .await
    }

    async fn hourly_volume(&self, from_hour: i64) -> Result<Vec<Volume>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT hour::text, \
                 sum(CASE WHEN kind = 'send' AND outcome = 'sent' THEN n ELSE 0 END)::bigint, \
                 sum(CASE WHEN kind = 'check' AND outcome = 'approved' THEN n ELSE 0 END)::bigint \
                 FROM attempt_hourly WHERE hour >= $1 GROUP BY hour ORDER BY hour",
            )
            .bind(from_hour)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter().map(volume).collect()
        })
        .await
    }

    async fn logged_attempts(
        &self,
        filter: &ConsoleFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LoggedAttempt>, StoreError> {
        let mut filter = filter.clone();
        self.bounded(async {
            let first_at = |t: Timestamp| {
                sqlx::query_scalar::<_, i64>(
                    "SELECT seq FROM verification_attempts WHERE created_at >= $1 \
                     ORDER BY created_at, seq LIMIT 1",
                )
                .bind(t.as_millis())
                .fetch_optional(&self.pool)
            };
            if let Some(from) = filter.from {
                match first_at(from).await.map_err(db_error)? {
                    Some(seq) => filter.seq_from = Some(seq),
                    None => return Ok(Vec::new()),
                }
            }
            if let Some(to) = filter.to {
                filter.seq_to = first_at(to).await.map_err(db_error)?;
            }
            let conditions = conditions(&filter, before);
            let mut q = QueryBuilder::<Postgres>::new(concat!(
                "SELECT ",
                columns!(),
                " FROM verification_attempts"
            ));
            for (i, (condition, value)) in conditions.iter().enumerate() {
                q.push(if i == 0 { " WHERE " } else { " AND " });
                q.push(*condition);
                match value {
                    None => {}
                    Some(FilterValue::Int(v)) => {
                        q.push(" ").push_bind(*v);
                    }
                    Some(FilterValue::Text(v)) => {
                        q.push(" ").push_bind(v.clone());
                    }
                    Some(FilterValue::Bytes(v)) => {
                        q.push(" ").push_bind(v.clone());
                    }
                }
            }
            q.push(" ORDER BY seq DESC LIMIT ")
                .push_bind(i64::from(limit));
            let rows = q.build().fetch_all(&self.pool).await.map_err(db_error)?;
            rows.iter().map(logged).collect()
        })
        .await
    }

    async fn verification_log(&self, sid: &str) -> Result<Vec<LoggedAttempt>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM verification_attempts WHERE verification_sid = $1 ORDER BY seq LIMIT 200"
            ))
            .bind(sid)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter().map(logged).collect()
        })
        .await
    }
}
