//! Rate-limit decisions. A request is charged to a set of buckets all at once or not at all: if
//! any bucket is empty, none is charged and the answer names the bucket that refused and when to
//! retry. Buckets use GCRA (the generic cell rate algorithm, a token bucket kept as one
//! timestamp per key): `max` per `interval` allows a burst of `max`, then one more every
//! `interval / max`.

pub mod gcra;
pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Timestamp;
use crate::error::BoxError;
use crate::policy::{BucketName, BucketRequest};

pub use self::redis::{RedisLimiter, RedisSettings};
pub use memory::MemoryLimiter;

/// The outcome of one charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every bucket had room and was charged.
    Allowed,
    /// `bucket` is empty (nothing was charged); it has room again after `retry_after`.
    Limited {
        bucket: BucketName,
        retry_after: Duration,
    },
}

/// The limiter could not decide (a shared backend is unreachable, or the memory limiter is full
/// of live keys). Callers fail closed. The cause is its `source()`.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable")]
pub struct LimiterError(#[source] BoxError);

impl LimiterError {
    /// Unavailable because of `cause` (an error, or what happened, as text).
    pub fn new(cause: impl Into<BoxError>) -> Self {
        Self(cause.into())
    }
}

/// A rate limiter backend.
#[async_trait]
pub trait Limiter: Send + Sync {
    /// Charges one request to every bucket in `buckets`, or to none of them.
    ///
    /// # Errors
    /// [`LimiterError`] when the backend cannot be reached: the request must be refused.
    async fn acquire(
        &self,
        buckets: &[BucketRequest],
        now: Timestamp,
    ) -> Result<Decision, LimiterError>;

    /// Gives back one request to every bucket in `buckets` (charged earlier by
    /// [`acquire`](Self::acquire)): a reservation that turned out not to count, such as a
    /// failed-check bucket reserved before a code that was right. A bucket never holds more
    /// than its full allowance.
    ///
    /// # Errors
    /// [`LimiterError`] when the backend cannot be reached (the charge then stands).
    async fn refund(&self, buckets: &[BucketRequest], now: Timestamp) -> Result<(), LimiterError>;

    /// Whether the backend answers (for `/readyz`).
    ///
    /// # Errors
    /// [`LimiterError`] when it does not.
    async fn ping(&self) -> Result<(), LimiterError>;

    /// `memory` or `redis`, for logs.
    fn name(&self) -> &'static str;
}
