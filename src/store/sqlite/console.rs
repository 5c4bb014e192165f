//! [`ConsoleStore`] on SQLite, and the hourly counters' upkeep: the attempt log's batch write
//! adds its rows to `attempt_hourly` in the same write transaction ([`add_hourly`]), and the
//! purge drops the hours it purged from the log ([`purge_hourly`]). Filtered lists read one
//! index in `seq` order (migrations/sqlite/20261206190001_console.sql).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::worker::Access;
use super::{SqliteStore, db_error};
use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::attempts::{AttemptRecord, stored_delivery};
use crate::store::console::{
    ConsoleFilter, ConsoleStore, Destination, FilterValue, HOUR_MS, LoggedAttempt, OutcomeCount,
    Volume, conditions, count_hourly, kind_from,
};

/// Sends and conversions by `$col` from hour ?1 on, the ?2 busiest.
macro_rules! destinations_sql {
    ($col:literal) => {
        concat!(
            "SELECT ",
            $col,
            ", \
             sum(CASE WHEN kind = 'send' AND outcome = 'sent' THEN n ELSE 0 END) AS sends, \
             sum(CASE WHEN kind = 'check' AND outcome = 'approved' THEN n ELSE 0 END) \
             FROM attempt_hourly WHERE hour >= ?1 AND ",
            $col,
            " <> '' GROUP BY ",
            $col,
            " ORDER BY sends DESC, ",
            $col,
            " LIMIT ?2"
        )
    };
}

/// Adds `written` (rows just inserted) to their hourly counters.
pub(super) fn add_hourly(c: &Connection, written: Vec<&AttemptRecord>) -> Result<(), StoreError> {
    if written.is_empty() {
        return Ok(());
    }
    let mut st = c
        .prepare_cached(
            "INSERT INTO attempt_hourly (hour, kind, outcome, bucket, channel, country, prefix, n) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (hour, kind, outcome, bucket, channel, country, prefix) \
             DO UPDATE SET n = n + excluded.n",
        )
        .map_err(db_error)?;
    for (k, n) in count_hourly(written) {
        st.execute(params![
            k.hour, k.kind, k.outcome, k.bucket, k.channel, k.country, k.prefix, n
        ])
        .map_err(db_error)?;
    }
    Ok(())
}

/// Drops the counters of the hours wholly before `before`.
pub(super) fn purge_hourly(c: &Connection, before: Timestamp) -> Result<(), StoreError> {
    c.prepare_cached("DELETE FROM attempt_hourly WHERE hour < ?1")
        .and_then(|mut st| st.execute([before.as_millis().div_euclid(HOUR_MS)]))
        .map(|_| ())
        .map_err(db_error)
}

const COLUMNS: &str = "seq, sid, kind, created_at, service_sid, verification_sid, channel, \
                       country, prefix, phone_lookup, phone_sealed, vendor, status, reason, bucket, \
                       vendor_message_id, failovers, delivery_status, delivery_error, times";

fn logged(row: &Row<'_>) -> rusqlite::Result<LoggedAttempt> {
    Ok(LoggedAttempt {
        seq: row.get(0)?,
        record: AttemptRecord {
            sid: row.get(1)?,
            kind: kind_from(&row.get::<_, String>(2)?),
            time: Timestamp::from_millis(row.get(3)?),
            service_sid: row.get(4)?,
            verification_sid: row.get(5)?,
            channel: row.get(6)?,
            country: row.get(7)?,
            prefix: row.get(8)?,
            phone_lookup: row.get(9)?,
            phone_sealed: row.get(10)?,
            vendor: row.get(11)?,
            status: row.get(12)?,
            reason: row.get(13)?,
            bucket: row.get(14)?,
            // The console's rows do not show the message's encoding.
            message: None,
            delivery: stored_delivery(row.get(15)?, row.get(16)?, row.get(17)?, row.get(18)?),
            times: u32::try_from(row.get::<_, i64>(19)?).unwrap_or(1),
        },
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl ConsoleStore for SqliteStore {
    async fn outcome_counts(&self, from_hour: i64) -> Result<Vec<OutcomeCount>, StoreError> {
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT kind, outcome, bucket, sum(n) FROM attempt_hourly \
                         WHERE hour >= ?1 GROUP BY kind, outcome, bucket",
                    )
                    .map_err(db_error)?;
                st.query_map([from_hour], |r| {
                    Ok(OutcomeCount {
                        kind: r.get(0)?,
                        outcome: r.get(1)?,
                        bucket: r.get(2)?,
                        n: count(r.get(3)?),
                    })
                })
                .and_then(Iterator::collect)
                .map_err(db_error)
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
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c.prepare_cached(sql).map_err(db_error)?;
                st.query_map(params![from_hour, i64::from(limit)], volume)
                    .and_then(Iterator::collect)
                    .map_err(db_error)
            })
            .await
    }

    async fn hourly_volume(&self, from_hour: i64) -> Result<Vec<Volume>, StoreError> {
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT CAST(hour AS TEXT), \
                         sum(CASE WHEN kind = 'send' AND outcome = 'sent' THEN n ELSE 0 END), \
                         sum(CASE WHEN kind = 'check' AND outcome = 'approved' THEN n ELSE 0 END) \
                         FROM attempt_hourly WHERE hour >= ?1 GROUP BY hour ORDER BY hour",
                    )
                    .map_err(db_error)?;
                st.query_map([from_hour], volume)
                    .and_then(Iterator::collect)
                    .map_err(db_error)
            })
            .await
    }

    async fn logged_attempts(
        &self,
        filter: &ConsoleFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LoggedAttempt>, StoreError> {
        let filter = filter.clone();
        self.worker
            .call(Access::Read, move |c| {
                let mut filter = filter.clone();
                let first_at = |t: Timestamp| {
                    c.prepare_cached(
                        "SELECT seq FROM verification_attempts WHERE created_at >= ?1 \
                         ORDER BY created_at, seq LIMIT 1",
                    )
                    .and_then(|mut st| {
                        st.query_row([t.as_millis()], |r| r.get::<_, i64>(0))
                            .optional()
                    })
                    .map_err(db_error)
                };
                if let Some(from) = filter.from {
                    match first_at(from)? {
                        Some(seq) => filter.seq_from = Some(seq),
                        None => return Ok(Vec::new()),
                    }
                }
                if let Some(to) = filter.to {
                    filter.seq_to = first_at(to)?;
                }
                let conditions = conditions(&filter, before);
                let mut sql = format!("SELECT {COLUMNS} FROM verification_attempts");
                let mut values: Vec<rusqlite::types::Value> = Vec::new();
                for (i, (condition, value)) in conditions.iter().enumerate() {
                    let glue = if i == 0 { " WHERE " } else { " AND " };
                    sql.push_str(glue);
                    sql.push_str(condition);
                    let Some(value) = value else { continue };
                    values.push(match value {
                        FilterValue::Int(i) => rusqlite::types::Value::Integer(*i),
                        FilterValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
                        FilterValue::Bytes(b) => rusqlite::types::Value::Blob(b.clone()),
                    });
                    sql.push_str(&format!(" ?{}", values.len()));
                }
                sql.push_str(&format!(" ORDER BY seq DESC LIMIT {limit}"));
                let mut st = c.prepare_cached(&sql).map_err(db_error)?;
                st.query_map(rusqlite::params_from_iter(values), logged)
                    .and_then(Iterator::collect)
                    .map_err(db_error)
            })
            .await
    }

    async fn verification_log(&self, sid: &str) -> Result<Vec<LoggedAttempt>, StoreError> {
        let sid = sid.to_owned();
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM verification_attempts \
                         WHERE verification_sid = ?1 ORDER BY seq LIMIT 200"
                    ))
                    .map_err(db_error)?;
                st.query_map([&sid], logged)
                    .and_then(Iterator::collect)
                    .map_err(db_error)
            })
            .await
    }
}

fn volume(r: &Row<'_>) -> rusqlite::Result<Volume> {
    Ok(Volume {
        key: r.get(0)?,
        sends: count(r.get(1)?),
        conversions: count(r.get(2)?),
    })
}
