//! The keys concern on SQLite: generated API keys' digests and the key-check records.

use async_trait::async_trait;
use rusqlite::params;

use super::worker::Access;
use super::{SqliteStore, db_error, digest, execute};
use crate::domain::Timestamp;
use crate::store::{KeyCheck, KeyStore, StoreError};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn api_key_digests(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        self.worker
            .call(Access::Read, |c| {
                let mut s = c
                    .prepare_cached("SELECT digest FROM api_keys ORDER BY created_at")
                    .map_err(db_error)?;
                let rows = s
                    .query_map([], |r| r.get::<_, Vec<u8>>(0))
                    .map_err(db_error)?;
                rows.map(|r| digest(&r.map_err(db_error)?, "api key digest"))
                    .collect()
            })
            .await
    }

    async fn add_api_key_digest(&self, digest: [u8; 32], now: Timestamp) -> Result<(), StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "INSERT OR IGNORE INTO api_keys (digest, created_at) VALUES (?1, ?2)",
                    params![&digest[..], now.as_millis()],
                )
                .map(drop)
            })
            .await
    }

    async fn key_checks(&self) -> Result<Vec<KeyCheck>, StoreError> {
        self.worker
            .call(Access::Read, |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT key_id, sealed FROM key_checks ORDER BY created_at, key_id",
                    )
                    .map_err(db_error)?;
                let rows = s
                    .query_map([], |r| {
                        Ok(KeyCheck {
                            key_id: r.get(0)?,
                            sealed: r.get(1)?,
                        })
                    })
                    .map_err(db_error)?;
                rows.collect::<Result<_, _>>().map_err(db_error)
            })
            .await
    }

    async fn add_key_check(&self, check: &KeyCheck, now: Timestamp) -> Result<(), StoreError> {
        let check = check.clone();
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "INSERT INTO key_checks (key_id, sealed, created_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key_id) DO NOTHING",
                    params![&check.key_id, &check.sealed, now.as_millis()],
                )
                .map(drop)
            })
            .await
    }

    async fn retire_key_checks(&self, keep: &[u8]) -> Result<u64, StoreError> {
        let keep = keep.to_vec();
        self.worker
            .call(Access::Write, move |c| {
                execute(c, "DELETE FROM key_checks WHERE key_id <> ?1", [&keep])
            })
            .await
    }
}
