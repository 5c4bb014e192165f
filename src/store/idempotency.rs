//! The idempotency concern: `Idempotency-Key` claims and the sealed answers they replay.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Timestamp;

/// What an `Idempotency-Key` lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// No live record: one was created (in progress); the caller processes the request.
    Started,
    /// The first request finished with this answer: replay it.
    Replay { status: u16, body_sealed: Vec<u8> },
    /// The key was used with a different request.
    Mismatch,
    /// The first request with this key is still being processed.
    InProgress,
}

/// A stored idempotent answer: what `verifyd rekey` re-seals.
#[derive(Clone, Debug)]
pub struct SealedAnswer {
    pub key_digest: [u8; 32],
    pub body_sealed: Vec<u8>,
}

/// Idempotency records.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Looks up an idempotency key and claims it when it is new (or older than `before`, or an
    /// in-progress claim older than `stale_before`), in one atomic step.
    async fn idempotency_begin(
        &self,
        key: &[u8; 32],
        request: &[u8; 32],
        now: Timestamp,
        before: Timestamp,
        stale_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError>;

    /// Records the answer of a claimed key.
    async fn idempotency_finish(
        &self,
        key: &[u8; 32],
        status: u16,
        body_sealed: &[u8],
    ) -> Result<(), StoreError>;

    /// Drops a claim whose answer is not to be replayed (429, 5xx), so a retry runs afresh.
    async fn idempotency_abandon(&self, key: &[u8; 32]) -> Result<(), StoreError>;

    /// Up to `limit` stored idempotent answers, in key order, after `after`.
    async fn sealed_answers(
        &self,
        after: Option<&[u8; 32]>,
        limit: u32,
    ) -> Result<Vec<SealedAnswer>, StoreError>;

    /// Replaces a stored answer's ciphertext if it is still `old`. False if it changed or is gone.
    async fn reseal_answer(
        &self,
        key: &[u8; 32],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;

    /// Deletes idempotency records created before `before`.
    async fn purge_idempotency(&self, before: Timestamp) -> Result<(), StoreError>;
}
