//! The idempotency concern on SQLite: one row per claimed key, its answer sealed.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::worker::Access;
use super::{SqliteStore, corrupt, db_error, digest, execute};
use crate::domain::Timestamp;
use crate::store::{IdempotencyBegin, IdempotencyStore, SealedAnswer, StoreError};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn idempotency_begin(
        &self,
        key: &[u8; 32],
        request: &[u8; 32],
        now: Timestamp,
        before: Timestamp,
        stale_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        let (key, request) = (*key, *request);
        self.worker
            .call(Access::Write, move |c| {
                let found = c
                    .prepare_cached(
                        "SELECT request_digest, status, body_sealed, created_at FROM idempotency_keys \
                         WHERE key_digest = ?1",
                    )
                    .and_then(|mut s| {
                        s.query_row([&key[..]], |r| {
                            Ok((
                                r.get::<_, Vec<u8>>(0)?,
                                r.get::<_, Option<i64>>(1)?,
                                r.get::<_, Option<Vec<u8>>>(2)?,
                                r.get::<_, i64>(3)?,
                            ))
                        })
                        .optional()
                    })
                    .map_err(db_error)?;
                if let Some((request_digest, status, body, created)) = found {
                    let created = Timestamp::from_millis(created);
                    let expired = created < before || (status.is_none() && created < stale_before);
                    if !expired {
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
                    execute(
                        c,
                        "DELETE FROM idempotency_keys WHERE key_digest = ?1",
                        [&key[..]],
                    )?;
                }
                execute(
                    c,
                    "INSERT INTO idempotency_keys (key_digest, request_digest, created_at) VALUES (?1, ?2, ?3)",
                    params![&key[..], &request[..], now.as_millis()],
                )?;
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
        let key = *key;
        let body = body_sealed.to_vec();
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "UPDATE idempotency_keys SET status = ?1, body_sealed = ?2 WHERE key_digest = ?3",
                    params![i64::from(status), &body, &key[..]],
                )
                .map(drop)
            })
            .await
    }

    async fn idempotency_abandon(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        let key = *key;
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "DELETE FROM idempotency_keys WHERE key_digest = ?1 AND status IS NULL",
                    [&key[..]],
                )
                .map(drop)
            })
            .await
    }

    async fn sealed_answers(
        &self,
        after: Option<&[u8; 32]>,
        limit: u32,
    ) -> Result<Vec<SealedAnswer>, StoreError> {
        let after = after.map_or_else(Vec::new, |a| a.to_vec());
        self.worker
            .call(Access::Read, move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT key_digest, body_sealed FROM idempotency_keys \
                         WHERE body_sealed IS NOT NULL AND key_digest > ?1 ORDER BY key_digest LIMIT ?2",
                    )
                    .map_err(db_error)?;
                let mut rows = s.query(params![&after, i64::from(limit)]).map_err(db_error)?;
                let mut found = Vec::new();
                while let Some(r) = rows.next().map_err(db_error)? {
                    found.push(SealedAnswer {
                        key_digest: digest(
                            &r.get::<_, Vec<u8>>(0).map_err(db_error)?,
                            "idempotency key digest",
                        )?,
                        body_sealed: r.get(1).map_err(db_error)?,
                    });
                }
                Ok(found)
            })
            .await
    }

    async fn reseal_answer(
        &self,
        key: &[u8; 32],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let (key, old, new) = (*key, old.to_vec(), new.to_vec());
        self.worker
            .call(Access::Write, move |c| {
                let n = execute(
                    c,
                    "UPDATE idempotency_keys SET body_sealed = ?1 WHERE key_digest = ?2 AND body_sealed = ?3",
                    params![&new, &key[..], &old],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn purge_idempotency(&self, before: Timestamp) -> Result<(), StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "DELETE FROM idempotency_keys WHERE created_at < ?1",
                    [before.as_millis()],
                )
                .map(drop)
            })
            .await
    }
}
