//! The idempotency concern on PostgreSQL: one row per claimed key (locked while it is looked
//! at), its answer sealed.

use async_trait::async_trait;
use sqlx::Row;

use super::{PostgresStore, corrupt, db_error};
use crate::domain::Timestamp;
use crate::store::{IdempotencyBegin, IdempotencyStore, SealedAnswer, StoreError};

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn idempotency_begin(
        &self,
        key: &[u8; 32],
        request: &[u8; 32],
        now: Timestamp,
        before: Timestamp,
        stale_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let row = sqlx::query(
                "SELECT request_digest, status, body_sealed, created_at FROM idempotency_keys \
                 WHERE key_digest = $1 FOR UPDATE",
            )
            .bind(&key[..])
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if let Some(row) = row {
                let request_digest: Vec<u8> = row.try_get(0).map_err(db_error)?;
                let status: Option<i32> = row.try_get(1).map_err(db_error)?;
                let body: Option<Vec<u8>> = row.try_get(2).map_err(db_error)?;
                let created = Timestamp::from_millis(row.try_get(3).map_err(db_error)?);
                let expired = created < before || (status.is_none() && created < stale_before);
                if !expired {
                    tx.rollback().await.map_err(db_error)?;
                    if request_digest.as_slice() != &request[..] {
                        return Ok(IdempotencyBegin::Mismatch);
                    }
                    return Ok(match (status, body) {
                        (Some(status), Some(body_sealed)) => IdempotencyBegin::Replay {
                            status: u16::try_from(status)
                                .map_err(|_| corrupt("idempotency status"))?,
                            body_sealed,
                        },
                        _ => IdempotencyBegin::InProgress,
                    });
                }
                sqlx::query("DELETE FROM idempotency_keys WHERE key_digest = $1")
                    .bind(&key[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (key_digest, request_digest, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (key_digest) DO NOTHING",
            )
            .bind(&key[..])
            .bind(&request[..])
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            // Another replica claimed the key between our read and our insert.
            if inserted.rows_affected() == 0 {
                return Ok(IdempotencyBegin::InProgress);
            }
            Ok(IdempotencyBegin::Started)
        })
        .await
    }

    async fn idempotency_finish(
        &self,
        key: &[u8; 32],
        status: u16,
        body_sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $1, body_sealed = $2 WHERE key_digest = $3",
            )
            .bind(i32::from(status))
            .bind(body_sealed)
            .bind(&key[..])
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn idempotency_abandon(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("DELETE FROM idempotency_keys WHERE key_digest = $1 AND status IS NULL")
                .bind(&key[..])
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn sealed_answers(
        &self,
        after: Option<&[u8; 32]>,
        limit: u32,
    ) -> Result<Vec<SealedAnswer>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT key_digest, body_sealed FROM idempotency_keys \
                 WHERE body_sealed IS NOT NULL AND key_digest > $1 ORDER BY key_digest LIMIT $2",
            )
            .bind(after.map_or(&[][..], |a| &a[..]))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    let key: Vec<u8> = r.try_get(0).map_err(db_error)?;
                    Ok(SealedAnswer {
                        key_digest: <[u8; 32]>::try_from(key.as_slice())
                            .map_err(|_| corrupt("idempotency key digest"))?,
                        body_sealed: r.try_get(1).map_err(db_error)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn reseal_answer(
        &self,
        key: &[u8; 32],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE idempotency_keys SET body_sealed = $1 WHERE key_digest = $2 AND body_sealed = $3",
            )
            .bind(new)
            .bind(&key[..])
            .bind(old)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn purge_idempotency(&self, before: Timestamp) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before.as_millis())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }
}
