//! The keys concern on PostgreSQL: generated API keys' digests and the key-check records.

use async_trait::async_trait;
use sqlx::Row;

use super::{PostgresStore, corrupt, db_error};
use crate::domain::Timestamp;
use crate::store::{KeyCheck, KeyStore, StoreError};

#[async_trait]
impl KeyStore for PostgresStore {
    async fn api_key_digests(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query("SELECT digest FROM api_keys ORDER BY created_at")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    let bytes: Vec<u8> = r.try_get(0).map_err(db_error)?;
                    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| corrupt("api key digest"))
                })
                .collect()
        })
        .await
    }

    async fn add_api_key_digest(&self, digest: [u8; 32], now: Timestamp) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO api_keys (digest, created_at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&digest[..])
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn key_checks(&self) -> Result<Vec<KeyCheck>, StoreError> {
        self.bounded(async {
            let rows =
                sqlx::query("SELECT key_id, sealed FROM key_checks ORDER BY created_at, key_id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    Ok(KeyCheck {
                        key_id: r.try_get(0).map_err(db_error)?,
                        sealed: r.try_get(1).map_err(db_error)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn add_key_check(&self, check: &KeyCheck, now: Timestamp) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO key_checks (key_id, sealed, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key_id) DO NOTHING",
            )
            .bind(&check.key_id)
            .bind(&check.sealed)
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn retire_key_checks(&self, keep: &[u8]) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = sqlx::query("DELETE FROM key_checks WHERE key_id <> $1")
                .bind(keep)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected())
        })
        .await
    }
}
