//! Persistence of the safe list: numbers exempt from the geographic and number-type rules and
//! from the prefix, country and global buckets. Keyed by the number's keyed digest (the number
//! itself only as a ciphertext); every replica reads the same rows, so an entry added or removed
//! on one is in force on all at once.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Timestamp;

/// One safe-listed number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeListRecord {
    /// `GN…`.
    pub sid: String,
    pub phone_lookup: Vec<u8>,
    pub phone_sealed: Vec<u8>,
    pub created: Timestamp,
}

/// The safe list's store.
#[async_trait]
pub trait SafeListStore: Send + Sync {
    /// Adds `entry` unless its number is listed; either way, the number's entry as stored.
    async fn add_safe_number(&self, entry: &SafeListRecord) -> Result<SafeListRecord, StoreError>;

    /// The entry of the first of `lookups` (a number's digests under each secret) that is listed.
    async fn safe_number(&self, lookups: &[[u8; 32]])
    -> Result<Option<SafeListRecord>, StoreError>;

    /// Removes the number (under any of `lookups`); false when it was not listed.
    async fn remove_safe_number(&self, lookups: &[[u8; 32]]) -> Result<bool, StoreError>;

    /// Up to `limit` entries in sid (creation) order, after `after`.
    async fn safe_numbers(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SafeListRecord>, StoreError>;
}
