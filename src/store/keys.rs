//! The keys concern: digests of generated API keys, and the key-check records of secret
//! rotation (see [`crate::rotation`]).

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Timestamp;

/// A key-check record: the database's stable key sealed under one server secret (see
/// [`crate::rotation`]). `key_id` repeats the key id inside `sealed`, so it can be a primary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCheck {
    pub key_id: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// API keys and key-check records.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Digests of generated API keys.
    async fn api_key_digests(&self) -> Result<Vec<[u8; 32]>, StoreError>;

    /// Keeps the digest of a newly generated API key.
    async fn add_api_key_digest(&self, digest: [u8; 32], now: Timestamp) -> Result<(), StoreError>;

    /// Every key-check record.
    async fn key_checks(&self) -> Result<Vec<KeyCheck>, StoreError>;

    /// Adds a key-check record unless one with its key id exists (then nothing changes).
    async fn add_key_check(&self, check: &KeyCheck, now: Timestamp) -> Result<(), StoreError>;

    /// Deletes every key-check record but `keep`'s; returns how many.
    async fn retire_key_checks(&self, keep: &[u8]) -> Result<u64, StoreError>;
}
