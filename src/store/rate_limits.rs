//! Persistence of Twilio's RateLimits (`RK…`, per service, by unique name) and their Buckets
//! (`BL…`: `max` requests per `interval` seconds). Definitions only: the counting is the
//! limiter's, with verifyd's own buckets. Every replica reads the same rows, so a rate limit or
//! bucket created or changed on one is in force on all at once. Twilio's own rules are kept
//! atomically here: at most [`MAX_BUCKETS`] buckets per rate limit, no two with one interval,
//! no two rate limits of a service with one unique name.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Timestamp;

/// Buckets one rate limit may have (Twilio's limit; 60210 beyond it).
pub const MAX_BUCKETS: u32 = 5;

/// One rate limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitRecord {
    pub sid: String,
    pub service_sid: String,
    pub unique_name: String,
    pub description: Option<String>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// One bucket of a rate limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketRecord {
    pub sid: String,
    pub rate_limit_sid: String,
    pub service_sid: String,
    pub max: u32,
    /// Seconds.
    pub interval: u32,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// What creating or changing a bucket did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketChange {
    /// Done: the bucket as stored now.
    Done(BucketRecord),
    /// The rate limit already has [`MAX_BUCKETS`] buckets; nothing changed.
    TooMany,
    /// Another bucket of the rate limit has this interval; nothing changed.
    SameInterval,
    /// The rate limit (or the bucket, for a change) does not exist.
    NotFound,
}

/// The rate limits' store.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Inserts a rate limit; false (nothing changed) when its service has one by that name.
    async fn insert_rate_limit(&self, r: &RateLimitRecord) -> Result<bool, StoreError>;

    /// The rate limit `sid` of `service`.
    async fn rate_limit(
        &self,
        service: &str,
        sid: &str,
    ) -> Result<Option<RateLimitRecord>, StoreError>;

    /// Up to `limit` rate limits of `service` in sid order, after `after`.
    async fn rate_limits(
        &self,
        service: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RateLimitRecord>, StoreError>;

    /// Replaces a rate limit's description and `updated`; false when it does not exist.
    async fn update_rate_limit(&self, r: &RateLimitRecord) -> Result<bool, StoreError>;

    /// Deletes a rate limit and its buckets; false when it did not exist.
    async fn delete_rate_limit(&self, service: &str, sid: &str) -> Result<bool, StoreError>;

    /// Adds a bucket to its rate limit, keeping Twilio's rules in one atomic step.
    async fn insert_bucket(&self, b: &BucketRecord) -> Result<BucketChange, StoreError>;

    /// The bucket `sid` of the rate limit `rate_limit`.
    async fn bucket(&self, rate_limit: &str, sid: &str)
    -> Result<Option<BucketRecord>, StoreError>;

    /// Up to `limit` buckets of `rate_limit` in sid order, after `after`.
    async fn buckets(
        &self,
        rate_limit: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BucketRecord>, StoreError>;

    /// Replaces a bucket's `max`, `interval` and `updated`, keeping the one-interval rule.
    async fn update_bucket(&self, b: &BucketRecord) -> Result<BucketChange, StoreError>;

    /// Deletes a bucket; false when it did not exist.
    async fn delete_bucket(&self, rate_limit: &str, sid: &str) -> Result<bool, StoreError>;

    /// For each of `names` that `service` has a rate limit by: the name and its buckets (in
    /// one read: what a verification create with `RateLimits` charges).
    async fn buckets_by_name(
        &self,
        service: &str,
        names: &[String],
    ) -> Result<Vec<(String, Vec<BucketRecord>)>, StoreError>;
}
