//! [`RateLimitStore`] on SQLite: each change is one write job, so Twilio's bucket rules (count,
//! one interval) are checked and applied in one transaction.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::worker::Access;
use super::{SqliteStore, db_error};
use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::rate_limits::{
    BucketChange, BucketRecord, MAX_BUCKETS, RateLimitRecord, RateLimitStore,
};

const LIMIT_COLUMNS: &str = "sid, service_sid, unique_name, description, created_at, updated_at";
const BUCKET_COLUMNS: &str =
    "sid, rate_limit_sid, service_sid, max, interval, created_at, updated_at";

fn limit_from(row: &Row<'_>) -> rusqlite::Result<RateLimitRecord> {
    Ok(RateLimitRecord {
        sid: row.get(0)?,
        service_sid: row.get(1)?,
        unique_name: row.get(2)?,
        description: row.get(3)?,
        created: Timestamp::from_millis(row.get(4)?),
        updated: Timestamp::from_millis(row.get(5)?),
    })
}

fn bucket_from(row: &Row<'_>) -> rusqlite::Result<BucketRecord> {
    Ok(BucketRecord {
        sid: row.get(0)?,
        rate_limit_sid: row.get(1)?,
        service_sid: row.get(2)?,
        max: u32::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
        interval: u32::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
        created: Timestamp::from_millis(row.get(5)?),
        updated: Timestamp::from_millis(row.get(6)?),
    })
}

/// Whether another bucket of the rate limit has `interval`.
fn interval_taken(c: &Connection, b: &BucketRecord) -> Result<bool, StoreError> {
    c.prepare_cached(
        "SELECT 1 FROM rate_limit_buckets WHERE rate_limit_sid = ?1 AND interval = ?2 AND sid <> ?3",
    )
    .and_then(|mut st| {
        st.query_row(params![b.rate_limit_sid, i64::from(b.interval), b.sid], |_| Ok(()))
            .optional()
    })
    .map(|found| found.is_some())
    .map_err(db_error)
}

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn insert_rate_limit(&self, r: &RateLimitRecord) -> Result<bool, StoreError> {
        let r = r.clone();
        self.worker
            .call(Access::Write, move |c| {
                c.prepare_cached(&format!(
                    "INSERT INTO rate_limits ({LIMIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT DO NOTHING"
                ))
                .and_then(|mut st| {
                    st.execute(params![
                        r.sid,
                        r.service_sid,
                        r.unique_name,
                        r.description,
                        r.created.as_millis(),
                        r.updated.as_millis()
                    ])
                })
                .map(|n| n == 1)
                .map_err(db_error)
            })
            .await
    }

    async fn rate_limit(
        &self,
        service: &str,
        sid: &str,
    ) -> Result<Option<RateLimitRecord>, StoreError> {
        let (service, sid) = (service.to_owned(), sid.to_owned());
        self.worker
            .call(Access::Read, move |c| {
                c.prepare_cached(&format!(
                    "SELECT {LIMIT_COLUMNS} FROM rate_limits WHERE sid = ?1 AND service_sid = ?2"
                ))
                .and_then(|mut st| st.query_row(params![sid, service], limit_from).optional())
                .map_err(db_error)
            })
            .await
    }

    async fn rate_limits(
        &self,
        service: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RateLimitRecord>, StoreError> {
        let (service, after) = (service.to_owned(), after.unwrap_or("").to_owned());
        self.worker
            .call(Access::Read, move |c| {
                c.prepare_cached(&format!(
                    "SELECT {LIMIT_COLUMNS} FROM rate_limits WHERE service_sid = ?1 AND sid > ?2 \
                     ORDER BY sid LIMIT ?3"
                ))
                .and_then(|mut st| {
                    st.query_map(params![service, after, i64::from(limit)], limit_from)
                        .and_then(Iterator::collect)
                })
                .map_err(db_error)
            })
            .await
    }

    async fn update_rate_limit(&self, r: &RateLimitRecord) -> Result<bool, StoreError> {
        let r = r.clone();
        self.worker
            .call(Access::Write, move |c| {
                c.prepare_cached(
                    "UPDATE rate_limits SET description = ?3, updated_at = ?4 \
                     WHERE sid = ?1 AND service_sid = ?2",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        r.sid,
                        r.service_sid,
                        r.description,
                        r.updated.as_millis()
                    ])
                })
                .map(|n| n == 1)
                .map_err(db_error)
            })
            .await
    }

    async fn delete_rate_limit(&self, service: &str, sid: &str) -> Result<bool, StoreError> {
        let (service, sid) = (service.to_owned(), sid.to_owned());
        self.worker
            .call(Access::Write, move |c| {
                c.prepare_cached("DELETE FROM rate_limits WHERE sid = ?1 AND service_sid = ?2")
                    .and_then(|mut st| st.execute(params![sid, service]))
                    .map(|n| n == 1)
                    .map_err(db_error)
            })
            .await
    }

    async fn insert_bucket(&self, b: &BucketRecord) -> Result<BucketChange, StoreError> {
        let b = b.clone();
        self.worker
            .call(Access::Write, move |c| {
                let count: Option<i64> = c
                    .prepare_cached(
                        "SELECT (SELECT count(*) FROM rate_limit_buckets WHERE rate_limit_sid = r.sid) \
                         FROM rate_limits r WHERE r.sid = ?1 AND r.service_sid = ?2",
                    )
                    .and_then(|mut st| {
                        st.query_row(params![b.rate_limit_sid, b.service_sid], |r| r.get(0))
                            .optional()
                    })
                    .map_err(db_error)?;
                let Some(count) = count else {
                    return Ok(BucketChange::NotFound);
                };
                if count >= i64::from(MAX_BUCKETS) {
                    return Ok(BucketChange::TooMany);
                }
                if interval_taken(c, &b)? {
                    return Ok(BucketChange::SameInterval);
                }
                c.prepare_cached(&format!(
                    "INSERT INTO rate_limit_buckets ({BUCKET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ))
                .and_then(|mut st| {
                    st.execute(params![
                        b.sid,
                        b.rate_limit_sid,
                        b.service_sid,
                        i64::from(b.max),
                        i64::from(b.interval),
                        b.created.as_millis(),
                        b.updated.as_millis()
                    ])
                })
                .map_err(db_error)?;
                Ok(BucketChange::Done(b.clone()))
            })
            .await
    }

    async fn bucket(
        &self,
        rate_limit: &str,
        sid: &str,
    ) -> Result<Option<BucketRecord>, StoreError> {
        let (rate_limit, sid) = (rate_limit.to_owned(), sid.to_owned());
        self.worker
            .call(Access::Read, move |c| {
                c.prepare_cached(&format!(
                    "SELECT {BUCKET_COLUMNS} FROM rate_limit_buckets WHERE sid = ?1 AND rate_limit_sid = ?2"
                ))
                .and_then(|mut st| st.query_row(params![sid, rate_limit], bucket_from).optional())
                .map_err(db_error)
            })
            .await
    }

    async fn buckets(
        &self,
        rate_limit: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BucketRecord>, StoreError> {
        let (rate_limit, after) = (rate_limit.to_owned(), after.unwrap_or("").to_owned());
        self.worker
            .call(Access::Read, move |c| {
                c.prepare_cached(&format!(
                    "SELECT {BUCKET_COLUMNS} FROM rate_limit_buckets WHERE rate_limit_sid = ?1 \
                     AND sid > ?2 ORDER BY sid LIMIT ?3"
                ))
                .and_then(|mut st| {
                    st.query_map(params![rate_limit, after, i64::from(limit)], bucket_from)
                        .and_then(Iterator::collect)
                })
                .map_err(db_error)
            })
            .await
    }

    async fn update_bucket(&self, b: &BucketRecord) -> Result<BucketChange, StoreError> {
        let b = b.clone();
        self.worker
            .call(Access::Write, move |c| {
                if interval_taken(c, &b)? {
                    return Ok(BucketChange::SameInterval);
                }
                let n = c
                    .prepare_cached(
                        "UPDATE rate_limit_buckets SET max = ?3, interval = ?4, updated_at = ?5 \
                         WHERE sid = ?1 AND rate_limit_sid = ?2",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            b.sid,
                            b.rate_limit_sid,
                            i64::from(b.max),
                            i64::from(b.interval),
                            b.updated.as_millis()
                        ])
                    })
                    .map_err(db_error)?;
                Ok(if n == 1 {
                    BucketChange::Done(b.clone())
                } else {
                    BucketChange::NotFound
                })
            })
            .await
    }

    async fn delete_bucket(&self, rate_limit: &str, sid: &str) -> Result<bool, StoreError> {
        let (rate_limit, sid) = (rate_limit.to_owned(), sid.to_owned());
        self.worker
            .call(Access::Write, move |c| {
                c.prepare_cached(
                    "DELETE FROM rate_limit_buckets WHERE sid = ?1 AND rate_limit_sid = ?2",
                )
                .and_then(|mut st| st.execute(params![sid, rate_limit]))
                .map(|n| n == 1)
                .map_err(db_error)
            })
            .await
    }

    async fn buckets_by_name(
        &self,
        service: &str,
        names: &[String],
    ) -> Result<Vec<(String, Vec<BucketRecord>)>, StoreError> {
        let (service, names) = (service.to_owned(), names.to_vec());
        self.worker
            .call(Access::Read, move |c| {
                let mut find = c
                    .prepare_cached(
                        "SELECT sid FROM rate_limits WHERE service_sid = ?1 AND unique_name = ?2",
                    )
                    .map_err(db_error)?;
                let mut out = Vec::new();
                for name in &names {
                    let Some(sid) = find
                        .query_row(params![service, name], |r| r.get::<_, String>(0))
                        .optional()
                        .map_err(db_error)?
                    else {
                        continue;
                    };
                    let buckets = c
                        .prepare_cached(&format!(
                            "SELECT {BUCKET_COLUMNS} FROM rate_limit_buckets WHERE rate_limit_sid = ?1 \
                             ORDER BY sid"
                        ))
                        .and_then(|mut st| {
                            st.query_map([&sid], bucket_from).and_then(Iterator::collect)
                        })
                        .map_err(db_error)?;
                    out.push((name.clone(), buckets));
                }
                Ok(out)
            })
            .await
    }
}
