//! [`RateLimitStore`] on PostgreSQL: a bucket change is one transaction that locks its rate
//! limit's row (`FOR UPDATE`), so concurrent changes on any replicas keep Twilio's rules.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, db_error};
use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::rate_limits::{
    BucketChange, BucketRecord, MAX_BUCKETS, RateLimitRecord, RateLimitStore,
};

macro_rules! limit_columns {
    () => {
        "sid, service_sid, unique_name, description, created_at, updated_at"
    };
}
macro_rules! bucket_columns {
    () => {
        "sid, rate_limit_sid, service_sid, max, interval, created_at, updated_at"
    };
}

fn limit_from(row: &PgRow) -> Result<RateLimitRecord, StoreError> {
    Ok(RateLimitRecord {
        sid: row.try_get(0).map_err(db_error)?,
        service_sid: row.try_get(1).map_err(db_error)?,
        unique_name: row.try_get(2).map_err(db_error)?,
        description: row.try_get(3).map_err(db_error)?,
        created: Timestamp::from_millis(row.try_get(4).map_err(db_error)?),
        updated: Timestamp::from_millis(row.try_get(5).map_err(db_error)?),
    })
}

fn bucket_from(row: &PgRow) -> Result<BucketRecord, StoreError> {
    Ok(BucketRecord {
        sid: row.try_get(0).map_err(db_error)?,
        rate_limit_sid: row.try_get(1).map_err(db_error)?,
        service_sid: row.try_get(2).map_err(db_error)?,
        max: u32::try_from(row.try_get::<i64, _>(3).map_err(db_error)?).unwrap_or(0),
        interval: u32::try_from(row.try_get::<i64, _>(4).map_err(db_error)?).unwrap_or(0),
        created: Timestamp::from_millis(row.try_get(5).map_err(db_error)?),
        updated: Timestamp::from_millis(row.try_get(6).map_err(db_error)?),
    })
}

#[async_trait]
impl RateLimitStore for PostgresStore {
    async fn insert_rate_limit(&self, r: &RateLimitRecord) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(concat!(
                "INSERT INTO rate_limits (",
                limit_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            ))
            .bind(&r.sid)
            .bind(&r.service_sid)
            .bind(&r.unique_name)
            .bind(r.description.as_deref())
            .bind(r.created.as_millis())
            .bind(r.updated.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn rate_limit(
        &self,
        service: &str,
        sid: &str,
    ) -> Result<Option<RateLimitRecord>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(concat!(
                "SELECT ",
                limit_columns!(),
                " FROM rate_limits WHERE sid = $1 AND service_sid = $2"
            ))
            .bind(sid)
            .bind(service)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.as_ref().map(limit_from).transpose()
        })
        .await
    }

    async fn rate_limits(
        &self,
        service: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RateLimitRecord>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                limit_columns!(),
                " FROM rate_limits WHERE service_sid = $1 AND sid COLLATE \"C\" > $2 \
                 ORDER BY sid COLLATE \"C\" LIMIT $3"
            ))
            .bind(service)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter().map(limit_from).collect()
        })
        .await
    }

    async fn update_rate_limit(&self, r: &RateLimitRecord) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE rate_limits SET description = $3, updated_at = $4 \
                 WHERE sid = $1 AND service_sid = $2",
            )
            .bind(&r.sid)
            .bind(&r.service_sid)
            .bind(r.description.as_deref())
            .bind(r.updated.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn delete_rate_limit(&self, service: &str, sid: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query("DELETE FROM rate_limits WHERE sid = $1 AND service_sid = $2")
                .bind(sid)
                .bind(service)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn insert_bucket(&self, b: &BucketRecord) -> Result<BucketChange, StoreError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let locked = sqlx::query(
                "SELECT sid FROM rate_limits WHERE sid = $1 AND service_sid = $2 FOR UPDATE",
            )
            .bind(&b.rate_limit_sid)
            .bind(&b.service_sid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if locked.is_none() {
                return Ok(BucketChange::NotFound);
            }
            let row = sqlx::query(
                "SELECT count(*), count(*) FILTER (WHERE interval = $2) FROM rate_limit_buckets \
                 WHERE rate_limit_sid = $1",
            )
            .bind(&b.rate_limit_sid)
            .bind(i64::from(b.interval))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            let (count, same): (i64, i64) = (
                row.try_get(0).map_err(db_error)?,
                row.try_get(1).map_err(db_error)?,
            );
            if count >= i64::from(MAX_BUCKETS) {
                return Ok(BucketChange::TooMany);
            }
            if same > 0 {
                return Ok(BucketChange::SameInterval);
            }
            sqlx::query(concat!(
                "INSERT INTO rate_limit_buckets (",
                bucket_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(&b.sid)
            .bind(&b.rate_limit_sid)
            .bind(&b.service_sid)
            .bind(i64::from(b.max))
            .bind(i64::from(b.interval))
            .bind(b.created.as_millis())
            .bind(b.updated.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(BucketChange::Done(b.clone()))
        })
        .await
    }

    async fn bucket(
        &self,
        rate_limit: &str,
        sid: &str,
    ) -> Result<Option<BucketRecord>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(concat!(
                "SELECT ",
                bucket_columns!(),
                " FROM rate_limit_buckets WHERE sid = $1 AND rate_limit_sid = $2"
            ))
            .bind(sid)
            .bind(rate_limit)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.as_ref().map(bucket_from).transpose()
        })
        .await
    }

    async fn buckets(
        &self,
        rate_limit: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BucketRecord>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                bucket_columns!(),
                " FROM rate_limit_buckets WHERE rate_limit_sid = $1 AND sid COLLATE \"C\" > $2 \
                 ORDER BY sid COLLATE \"C\" LIMIT $3"
            ))
            .bind(rate_limit)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter().map(bucket_from).collect()
        })
        .await
    }

    async fn update_bucket(&self, b: &BucketRecord) -> Result<BucketChange, StoreError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let locked = sqlx::query("SELECT sid FROM rate_limits WHERE sid = $1 FOR UPDATE")
                .bind(&b.rate_limit_sid)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            if locked.is_none() {
                return Ok(BucketChange::NotFound);
            }
            let same: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM rate_limit_buckets WHERE rate_limit_sid = $1 \
                 AND interval = $2 AND sid <> $3",
            )
            .bind(&b.rate_limit_sid)
            .bind(i64::from(b.interval))
            .bind(&b.sid)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            if same > 0 {
                return Ok(BucketChange::SameInterval);
            }
            let done = sqlx::query(
                "UPDATE rate_limit_buckets SET max = $3, interval = $4, updated_at = $5 \
                 WHERE sid = $1 AND rate_limit_sid = $2",
            )
            .bind(&b.sid)
            .bind(&b.rate_limit_sid)
            .bind(i64::from(b.max))
            .bind(i64::from(b.interval))
            .bind(b.updated.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(if done.rows_affected() == 1 {
                BucketChange::Done(b.clone())
            } else {
                BucketChange::NotFound
            })
        })
        .await
    }

    async fn delete_bucket(&self, rate_limit: &str, sid: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "DELETE FROM rate_limit_buckets WHERE sid = $1 AND rate_limit_sid = $2",
            )
            .bind(sid)
            .bind(rate_limit)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn buckets_by_name(
        &self,
        service: &str,
        names: &[String],
    ) -> Result<Vec<(String, Vec<BucketRecord>)>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT r.unique_name, b.sid, b.rate_limit_sid, b.service_sid, b.max, b.interval, \
                 b.created_at, b.updated_at FROM rate_limits r \
                 LEFT JOIN rate_limit_buckets b ON b.rate_limit_sid = r.sid \
                 WHERE r.service_sid = $1 AND r.unique_name = ANY($2) ORDER BY r.unique_name, b.sid",
            )
            .bind(service)
            .bind(names)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            let mut out: Vec<(String, Vec<BucketRecord>)> = Vec::new();
            for row in &rows {
                let name: String = row.try_get(0).map_err(db_error)?;
                if out.last().is_none_or(|(n, _)| *n != name) {
                    out.push((name, Vec::new()));
                }
                let bucket_sid: Option<String> = row.try_get(1).map_err(db_error)?;
                if let (Some(sid), Some((_, buckets))) = (bucket_sid, out.last_mut()) {
                    buckets.push(BucketRecord {
                        sid,
                        rate_limit_sid: row.try_get(2).map_err(db_error)?,
                        service_sid: row.try_get(3).map_err(db_error)?,
                        max: u32::try_from(row.try_get::<i64, _>(4).map_err(db_error)?)
                            .unwrap_or(0),
                        interval: u32::try_from(row.try_get::<i64, _>(5).map_err(db_error)?)
                            .unwrap_or(0),
                        created: Timestamp::from_millis(row.try_get(6).map_err(db_error)?),
                        updated: Timestamp::from_millis(row.try_get(7).map_err(db_error)?),
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}
