//! [`AttemptStore`] on SQLite: a batch of rows is one write job (so it shares its group commit
//! with the sends and checks waiting at that moment); reads use the time index and the
//! verification index (conversion is an indexed `EXISTS`).

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::worker::Access;
use super::{SqliteStore, db_error};
use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::attempts::{
    AttemptFilter, AttemptKind, AttemptRecord, AttemptStore, SendAttemptRow, stored_delivery,
    stored_message,
};

/// The columns [`record_from_row`] reads, in its order, then the conversion.
macro_rules! attempt_columns {
    () => {
        "a.sid, a.kind, a.created_at, a.service_sid, a.verification_sid, a.channel, a.country, \
         a.prefix, a.phone_lookup, a.phone_sealed, a.vendor, a.status, a.reason, a.bucket, \
         EXISTS (SELECT 1 FROM verification_attempts c WHERE c.verification_sid = a.verification_sid \
         AND c.kind = 'check' AND c.status = 'approved'), a.locale, a.encoding, a.segments, \
         a.vendor_message_id, a.failovers, a.delivery_status, a.delivery_error"
    };
}

/// Twilio's filters over send attempts, parameters ?1 to ?9.
macro_rules! send_filter {
    () => {
        " a.kind = 'send' AND a.sid IS NOT NULL AND a.channel IN ('sms', 'call', 'email', 'whatsapp') \
         AND (?1 IS NULL OR a.created_at >= ?1) AND (?2 IS NULL OR a.created_at < ?2) \
         AND (?3 IS NULL OR a.phone_lookup = ?3) AND (?4 IS NULL OR a.country = ?4) \
         AND (?5 IS NULL OR a.channel = ?5) AND (?6 IS NULL OR a.service_sid = ?6) \
         AND (?7 IS NULL OR a.verification_sid = ?7) \
         AND (?8 IS NULL OR EXISTS (SELECT 1 FROM verification_attempts c \
              WHERE c.verification_sid = a.verification_sid AND c.kind = 'check' \
              AND c.status = 'approved') = ?8) \
         AND (?9 IS NULL OR substr(a.prefix, 1, length(?9)) = ?9)"
    };
}

/// Appends one attempt-log row (a row whose `sid` is already there is left as it is).
pub(super) fn insert_attempt(
    c: &rusqlite::Connection,
    r: &AttemptRecord,
) -> Result<bool, StoreError> {
    let n = c
        .prepare_cached(
            "INSERT INTO verification_attempts (sid, kind, created_at, service_sid, \
             verification_sid, channel, country, prefix, phone_lookup, phone_sealed, \
             vendor, status, reason, bucket, locale, encoding, segments, times) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
             ON CONFLICT (sid) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                r.sid,
                r.kind.as_str(),
                r.time.as_millis(),
                r.service_sid,
                r.verification_sid,
                r.channel,
                r.country,
                r.prefix,
                r.phone_lookup,
                r.phone_sealed,
                r.vendor,
                r.status,
                r.reason,
                r.bucket,
                r.message.map(|m| m.locale),
                r.message.map(|m| m.encoding),
                r.message.map(|m| i64::from(m.segments)),
                i64::from(r.times.max(1)),
            ])
        })
        .map_err(db_error)?;
    Ok(n > 0)
}

fn kind(text: &str) -> AttemptKind {
    match text {
        "send" => AttemptKind::Send,
        "check" => AttemptKind::Check,
        _ => AttemptKind::Refusal,
    }
}

fn row_from(row: &Row<'_>) -> rusqlite::Result<SendAttemptRow> {
    Ok(SendAttemptRow {
        record: AttemptRecord {
            sid: row.get(0)?,
            kind: kind(&row.get::<_, String>(1)?),
            time: Timestamp::from_millis(row.get(2)?),
            service_sid: row.get(3)?,
            verification_sid: row.get(4)?,
            channel: row.get(5)?,
            country: row.get(6)?,
            prefix: row.get(7)?,
            phone_lookup: row.get(8)?,
            phone_sealed: row.get(9)?,
            vendor: row.get(10)?,
            status: row.get(11)?,
            reason: row.get(12)?,
            bucket: row.get(13)?,
            message: stored_message(row.get(15)?, row.get(16)?, row.get(17)?),
            delivery: stored_delivery(row.get(18)?, row.get(19)?, row.get(20)?, row.get(21)?),
            // Send attempts: never a summary.
            times: 1,
        },
        converted: row.get(14)?,
    })
}

/// The filter's nine parameters.
fn filter_params(f: &AttemptFilter) -> [Box<dyn rusqlite::ToSql + Send>; 9] {
    [
        Box::new(f.created_after.map(Timestamp::as_millis)),
        Box::new(f.created_before.map(Timestamp::as_millis)),
        Box::new(f.phone_lookup.clone()),
        Box::new(f.country.clone()),
        Box::new(f.channel.clone()),
        Box::new(f.service_sid.clone()),
        Box::new(f.verification_sid.clone()),
        Box::new(f.converted),
        Box::new(f.prefix.clone()),
    ]
}

#[async_trait]
impl AttemptStore for SqliteStore {
    async fn record_attempts(&self, records: Vec<AttemptRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.worker
            .call(Access::Write, move |c| {
                let mut written = Vec::with_capacity(records.len());
                for r in &records {
                    if insert_attempt(c, r)? {
                        written.push(r);
                    }
                }
                super::console::add_hourly(c, written)
            })
            .await
    }

    async fn send_attempts(
        &self,
        filter: &AttemptFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SendAttemptRow>, StoreError> {
        let filter = filter.clone();
        let after = after.unwrap_or("").to_owned();
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        attempt_columns!(),
                        " FROM verification_attempts a WHERE",
                        send_filter!(),
                        " AND a.sid > ?10 ORDER BY a.sid LIMIT ?11"
                    ))
                    .map_err(db_error)?;
                let [p1, p2, p3, p4, p5, p6, p7, p8, p9] = filter_params(&filter);
                st.query_map(
                    params![p1, p2, p3, p4, p5, p6, p7, p8, p9, after, i64::from(limit)],
                    row_from,
                )
                .and_then(Iterator::collect)
                .map_err(db_error)
            })
            .await
    }

    async fn send_attempt(&self, sid: &str) -> Result<Option<SendAttemptRow>, StoreError> {
        let sid = sid.to_owned();
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        attempt_columns!(),
                        " FROM verification_attempts a WHERE a.sid = ?1 AND a.kind = 'send' \
                         AND a.channel IN ('sms', 'call', 'email', 'whatsapp')"
                    ))
                    .map_err(db_error)?;
                let mut rows = st.query_map([&sid], row_from).map_err(db_error)?;
                rows.next().transpose().map_err(db_error)
            })
            .await
    }

    async fn attempt_summary(&self, filter: &AttemptFilter) -> Result<(u64, u64), StoreError> {
        let filter = filter.clone();
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(concat!(
                        "SELECT count(*), coalesce(sum(EXISTS (SELECT 1 FROM verification_attempts c \
                         WHERE c.verification_sid = a.verification_sid AND c.kind = 'check' \
                         AND c.status = 'approved')), 0) FROM verification_attempts a WHERE",
                        send_filter!()
                    ))
                    .map_err(db_error)?;
                let [p1, p2, p3, p4, p5, p6, p7, p8, p9] = filter_params(&filter);
                let (total, converted): (i64, i64) = st
                    .query_row(params![p1, p2, p3, p4, p5, p6, p7, p8, p9], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(db_error)?;
                Ok((
                    u64::try_from(total).unwrap_or(0),
                    u64::try_from(converted).unwrap_or(0),
                ))
            })
            .await
    }

    async fn purge_attempts(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                let n = c
                    .prepare_cached("DELETE FROM verification_attempts WHERE created_at < ?1")
                    .and_then(|mut st| st.execute([before.as_millis()]))
                    .map(|n| n as u64)
                    .map_err(db_error)?;
                super::console::purge_hourly(c, before)?;
                Ok(n)
            })
            .await
    }
}
