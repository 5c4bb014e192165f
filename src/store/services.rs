//! Persistence of the `/v2` face's own records: the identity values generated once per
//! database (the account SID and the default service SID when they are not configured) and the
//! Verify services with their settings. Like the rest of the store, every method is one atomic
//! step and none decides anything: the face validates, the store keeps.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Timestamp, VerificationSid};

/// A Verify service as stored (`VA…`), with the settings verifyd implements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecord {
    pub sid: String,
    pub friendly_name: String,
    /// 4 to 10.
    pub code_length: u8,
    pub lookup_enabled: bool,
    pub skip_sms_to_landlines: bool,
    pub psd2_enabled: bool,
    pub do_not_share_warning_enabled: bool,
    pub custom_code_enabled: bool,
    /// `HJ…`, kept and answered; verifyd has no template catalogue.
    pub default_template_sid: Option<String>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// The `/v2` face's records.
#[async_trait]
pub trait ServiceStore: Send + Sync {
    /// The identity value called `name`: the stored one, or `candidate` stored now when there is
    /// none (in one atomic step, so concurrent first starts of several replicas agree).
    async fn identity(&self, name: &str, candidate: &str) -> Result<String, StoreError>;

    /// Inserts a service; false (nothing changed) when its sid exists.
    async fn insert_service(&self, service: &ServiceRecord) -> Result<bool, StoreError>;

    /// One service by sid.
    async fn service(&self, sid: &str) -> Result<Option<ServiceRecord>, StoreError>;

    /// Replaces a service's settings and `updated` (never its sid or `created`); false when it
    /// does not exist.
    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError>;

    /// Deletes a service; false when it did not exist.
    async fn delete_service(&self, sid: &str) -> Result<bool, StoreError>;

    /// Up to `limit` services in sid order (sids begin with their creation time, so this is
    /// creation order), after `after`.
    async fn services(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError>;

    /// The owner column of a verification (`Some(None)`: it has no owner; `None`: no such
    /// verification), so a face can tell whose it is before showing or changing it.
    async fn verification_owner(
        &self,
        sid: &VerificationSid,
    ) -> Result<Option<Option<String>>, StoreError>;
}

/// The services of a single-node store, held in memory: a `/v2` request reads its service from
/// this process's copy instead of the database. Changes made through it (the API of this
/// process) are in force at once; changes made by another process on the same file (the CLI)
/// within [`CachedServices::REFRESH`], when the copy is reloaded. (The shared PostgreSQL store
/// is read on every request instead: there, every replica must see a change at once.)
pub struct CachedServices {
    inner: std::sync::Arc<dyn ServiceStore>,
    services: std::sync::RwLock<std::collections::HashMap<String, ServiceRecord>>,
}

impl CachedServices {
    /// How often the copy is reloaded from the store.
    pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

    /// Loads the services and keeps reloading them in the background.
    ///
    /// # Errors
    /// [`StoreError`] when the first load fails.
    pub async fn start(
        inner: std::sync::Arc<dyn ServiceStore>,
    ) -> Result<std::sync::Arc<Self>, StoreError> {
        let cache = std::sync::Arc::new(Self {
            inner,
            services: std::sync::RwLock::new(std::collections::HashMap::new()),
        });
        cache.reload().await?;
        super::keep_reloading(&cache, Self::REFRESH, "the services", |cache| async move {
            cache.reload().await
        });
        Ok(cache)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let mut all = std::collections::HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.inner.services(after.as_deref(), 1000).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.sid.clone());
            all.extend(page.into_iter().map(|s| (s.sid.clone(), s)));
        }
        *self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = all;
        Ok(())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, std::collections::HashMap<String, ServiceRecord>> {
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ServiceStore for CachedServices {
    async fn identity(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        self.inner.identity(name, candidate).await
    }

    async fn insert_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let inserted = self.inner.insert_service(service).await?;
        if inserted {
            self.write().insert(service.sid.clone(), service.clone());
        }
        Ok(inserted)
    }

    async fn service(&self, sid: &str) -> Result<Option<ServiceRecord>, StoreError> {
        let cached = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(sid)
            .cloned();
        match cached {
            Some(s) => Ok(Some(s)),
            // Not in the copy: perhaps made by another process since the last reload.
            None => self.inner.service(sid).await,
        }
    }

    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        let updated = self.inner.update_service(service).await?;
        if updated {
            self.write().insert(service.sid.clone(), service.clone());
        }
        Ok(updated)
    }

    async fn delete_service(&self, sid: &str) -> Result<bool, StoreError> {
        let deleted = self.inner.delete_service(sid).await?;
        self.write().remove(sid);
        Ok(deleted)
    }

    async fn services(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.inner.services(after, limit).await
    }

    async fn verification_owner(
        &self,
        sid: &VerificationSid,
    ) -> Result<Option<Option<String>>, StoreError> {
        self.inner.verification_owner(sid).await
    }
}
