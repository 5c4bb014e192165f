//! [`SafeListStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::worker::Access;
use super::{SqliteStore, db_error};
use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::safelist::{SafeListRecord, SafeListStore};

fn record(row: &Row<'_>) -> rusqlite::Result<SafeListRecord> {
    Ok(SafeListRecord {
        sid: row.get(0)?,
        phone_lookup: row.get(1)?,
        phone_sealed: row.get(2)?,
        created: Timestamp::from_millis(row.get(3)?),
    })
}

#[async_trait]
impl SafeListStore for SqliteStore {
    async fn add_safe_number(&self, entry: &SafeListRecord) -> Result<SafeListRecord, StoreError> {
        let e = entry.clone();
        self.worker
            .call(Access::Write, move |c| {
                c.prepare_cached(
                    "INSERT INTO safe_list (phone_lookup, sid, phone_sealed, created_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (phone_lookup) DO NOTHING",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        e.phone_lookup,
                        e.sid,
                        e.phone_sealed,
                        e.created.as_millis()
                    ])
                })
                .map_err(db_error)?;
                c.prepare_cached(
                    "SELECT sid, phone_lookup, phone_sealed, created_at FROM safe_list \
                     WHERE phone_lookup = ?1",
                )
                .and_then(|mut st| st.query_row([&e.phone_lookup], record))
                .map_err(db_error)
            })
            .await
    }

    async fn safe_number(
        &self,
        lookups: &[[u8; 32]],
    ) -> Result<Option<SafeListRecord>, StoreError> {
        let lookups = lookups.to_vec();
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT sid, phone_lookup, phone_sealed, created_at FROM safe_list \
                         WHERE phone_lookup = ?1",
                    )
                    .map_err(db_error)?;
                for lookup in &lookups {
                    if let Some(found) = st
                        .query_row([&lookup[..]], record)
                        .optional()
                        .map_err(db_error)?
                    {
                        return Ok(Some(found));
                    }
                }
                Ok(None)
            })
            .await
    }

    async fn remove_safe_number(&self, lookups: &[[u8; 32]]) -> Result<bool, StoreError> {
        let lookups = lookups.to_vec();
        self.worker
            .call(Access::Write, move |c| {
                let mut st = c
                    .prepare_cached("DELETE FROM safe_list WHERE phone_lookup = ?1")
                    .map_err(db_error)?;
                let mut removed = false;
                for lookup in &lookups {
                    removed |= st.execute([&lookup[..]]).map_err(db_error)? > 0;
                }
                Ok(removed)
            })
            .await
    }

    async fn safe_numbers(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SafeListRecord>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        self.worker
            .call(Access::Read, move |c| {
                c.prepare_cached(
                    "SELECT sid, phone_lookup, phone_sealed, created_at FROM safe_list \
                     WHERE sid > ?1 ORDER BY sid LIMIT ?2",
                )
                .and_then(|mut st| {
                    st.query_map(params![after, i64::from(limit)], record)
                        .and_then(Iterator::collect)
                })
                .map_err(db_error)
            })
            .await
    }
}
