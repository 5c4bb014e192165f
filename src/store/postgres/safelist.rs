//! [`SafeListStore`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, db_error};
use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::safelist::{SafeListRecord, SafeListStore};

fn record(row: &PgRow) -> Result<SafeListRecord, StoreError> {
    Ok(SafeListRecord {
        sid: row.try_get(0).map_err(db_error)?,
        phone_lookup: row.try_get(1).map_err(db_error)?,
        phone_sealed: row.try_get(2).map_err(db_error)?,
        created: Timestamp::from_millis(row.try_get(3).map_err(db_error)?),
    })
}

#[async_trait]
impl SafeListStore for PostgresStore {
    async fn add_safe_number(&self, e: &SafeListRecord) -> Result<SafeListRecord, StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO safe_list (phone_lookup, sid, phone_sealed, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (phone_lookup) DO NOTHING",
            )
            .bind(&e.phone_lookup)
            .bind(&e.sid)
            .bind(&e.phone_sealed)
            .bind(e.created.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            let row = sqlx::query(
                "SELECT sid, phone_lookup, phone_sealed, created_at FROM safe_list \
                 WHERE phone_lookup = $1",
            )
            .bind(&e.phone_lookup)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
            record(&row)
        })
        .await
    }

    async fn safe_number(
        &self,
        lookups: &[[u8; 32]],
    ) -> Result<Option<SafeListRecord>, StoreError> {
        self.bounded(async {
            let keys: Vec<Vec<u8>> = lookups.iter().map(|l| l.to_vec()).collect();
            let rows = sqlx::query(
                "SELECT sid, phone_lookup, phone_sealed, created_at FROM safe_list \
                 WHERE phone_lookup = ANY($1)",
            )
            .bind(&keys)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.first().map(record).transpose()
        })
        .await
    }

    async fn remove_safe_number(&self, lookups: &[[u8; 32]]) -> Result<bool, StoreError> {
        self.bounded(async {
            let keys: Vec<Vec<u8>> = lookups.iter().map(|l| l.to_vec()).collect();
            let done = sqlx::query("DELETE FROM safe_list WHERE phone_lookup = ANY($1)")
                .bind(&keys)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn safe_numbers(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SafeListRecord>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT sid, phone_lookup, phone_sealed, created_at FROM safe_list \
                 WHERE sid COLLATE \"C\" > $1 ORDER BY sid COLLATE \"C\" LIMIT $2",
            )
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter().map(record).collect()
        })
        .await
    }
}
