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

/// The safe list of a single-node store, held in memory: a send asks this process's copy of the
/// digests instead of the database, so the safe list costs the send path nothing. Changes made
/// through it (the API of this process) are in force at once; changes made by another process
/// on the same file (the CLI) within [`CachedSafeList::REFRESH`], when the copy is reloaded.
/// A hit is read from the store, so only a listed number pays for a lookup. (The shared
/// PostgreSQL store is read on every send instead: there, every replica must see a change at
/// once.)
pub struct CachedSafeList {
    inner: std::sync::Arc<dyn SafeListStore>,
    digests: std::sync::RwLock<std::collections::HashSet<Vec<u8>>>,
}

impl CachedSafeList {
    /// How often the copy is reloaded from the store.
    pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

    /// Loads the list and keeps reloading it in the background.
    ///
    /// # Errors
    /// [`StoreError`] when the first load fails.
    pub async fn start(
        inner: std::sync::Arc<dyn SafeListStore>,
    ) -> Result<std::sync::Arc<Self>, StoreError> {
        let cache = std::sync::Arc::new(Self {
            inner,
            digests: std::sync::RwLock::new(std::collections::HashSet::new()),
        });
        cache.reload().await?;
        super::keep_reloading(&cache, Self::REFRESH, "the safe list", |cache| async move {
            cache.reload().await
        });
        Ok(cache)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let mut all = std::collections::HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.inner.safe_numbers(after.as_deref(), 1000).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.sid.clone());
            all.extend(page.into_iter().map(|e| e.phone_lookup));
        }
        *self
            .digests
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = all;
        Ok(())
    }

    fn listed(&self, lookups: &[[u8; 32]]) -> bool {
        let digests = self
            .digests
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lookups.iter().any(|l| digests.contains(&l[..]))
    }
}

#[async_trait]
impl SafeListStore for CachedSafeList {
    async fn add_safe_number(&self, entry: &SafeListRecord) -> Result<SafeListRecord, StoreError> {
        let stored = self.inner.add_safe_number(entry).await?;
        self.digests
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(stored.phone_lookup.clone());
        Ok(stored)
    }

    async fn safe_number(
        &self,
        lookups: &[[u8; 32]],
    ) -> Result<Option<SafeListRecord>, StoreError> {
        if !self.listed(lookups) {
            return Ok(None);
        }
        self.inner.safe_number(lookups).await
    }

    async fn remove_safe_number(&self, lookups: &[[u8; 32]]) -> Result<bool, StoreError> {
        let removed = self.inner.remove_safe_number(lookups).await?;
        let mut digests = self
            .digests
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for l in lookups {
            digests.remove(&l[..]);
        }
        Ok(removed)
    }

    async fn safe_numbers(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SafeListRecord>, StoreError> {
        self.inner.safe_numbers(after, limit).await
    }
}
