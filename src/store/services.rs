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
