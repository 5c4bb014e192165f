//! Persistence, one trait per concern: [`VerificationStore`] (verifications, their send
//! attempts and check counts), [`IdempotencyStore`] (`Idempotency-Key` claims and answers) and
//! [`KeyStore`] (generated API keys and the key-check records of secret rotation). A backend
//! implements every concern and [`Store`], the supertrait the service holds as `Arc<dyn Store>`;
//! a part that needs one concern takes that concern's trait (`&dyn IdempotencyStore`, …). Future
//! tables (the attempt log, services, the safe list) each get a trait of their own, added to
//! [`Store`]'s bounds, with a file per backend beside these.
//!
//! Every method is one atomic step (a single conditional statement or one transaction), so
//! concurrent requests on any number of connections cannot double-approve, over-count or lose
//! an attempt. Business rules live in the engine; the store only applies the updates it is told
//! to, atomically. The store never sees a key: it keeps digests and ciphertexts as opaque bytes.
//!
//! Backends, a folder each with a file per concern: `sqlite` (embedded, the default) and
//! `postgres` (shared by replicas).

pub mod attempts;
pub mod console;
pub mod events;
pub mod idempotency;
pub mod keys;
pub mod postgres;
pub mod rate_limits;
pub mod receipts;
pub mod safelist;
pub mod services;
pub mod sqlite;
pub mod verifications;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::Timestamp;
use crate::error::BoxError;

pub use attempts::{
    AttemptFilter, AttemptKind, AttemptRecord, AttemptStore, DeliveryFacts, SendAttemptRow,
};
pub use console::ConsoleStore;
pub use events::{
    DeliveryResult, EventState, EventStore, ExpiredVerification, Journal, OutboxEvent, Replay,
    SendJournal, StoredEvent, parse_row_id, row_id,
};
pub use idempotency::{IdempotencyBegin, IdempotencyStore, SealedAnswer};
pub use keys::{KeyCheck, KeyStore};
pub use postgres::{PostgresSettings, PostgresStore};
pub use rate_limits::{BucketChange, BucketRecord, RateLimitRecord, RateLimitStore};
pub use receipts::{DeliveryUpdate, ReceiptChange, ReceiptStore, ReceiptTarget};
pub use safelist::{SafeListRecord, SafeListStore};
pub use services::{ServiceRecord, ServiceStore};
pub use sqlite::SqliteStore;
pub use verifications::{
    CheckRecord, NewVerification, RekeyOutcome, SealedVerification, SendOutcome,
    StoredVerification, VerificationStore,
};

/// What `verifyd doctor` finds of a database's schema, without changing anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Embedded migrations the database has.
    pub applied: usize,
    /// Embedded migrations it lacks (`verifyd serve` applies them at start).
    pub pending: Vec<String>,
    /// Versions the database has that this binary does not know (a newer binary migrated it).
    pub unknown: Vec<i64>,
}

impl SchemaStatus {
    /// The embedded `migrator`'s migrations against the versions a database recorded as applied.
    pub fn of(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Self {
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        SchemaStatus {
            applied: known.iter().filter(|v| applied.contains(v)).count(),
            pending: migrator
                .iter()
                .filter(|m| !applied.contains(&m.version))
                .map(|m| format!("{} {}", m.version, m.description))
                .collect(),
            unknown: applied
                .iter()
                .copied()
                .filter(|v| !known.contains(v))
                .collect(),
        }
    }

    /// Whether the database has exactly this binary's migrations.
    pub fn up_to_date(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
}

/// What the store failed at, classified; the cause (the driver's error, or what was found
/// wrong) is its `source()`. Nothing of it reaches a client. Clone, because one failed
/// commit answers every call of its batch.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached in time (pool or lock timeout, I/O): answer 503.
    #[error("store unavailable")]
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Anything else (a bug, corrupt data): answer an opaque 500.
    #[error("store failure")]
    Internal(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Unavailable because of `cause` (an error, or what happened, as text).
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        Self::Unavailable(Arc::from(cause.into()))
    }

    /// Internal because of `cause` (an error, or what was found wrong, as text).
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Self::Internal(Arc::from(cause.into()))
    }
}

/// Stored data that does not read back (a damaged database, or a bug).
fn corrupt(what: &str) -> StoreError {
    StoreError::internal(format!("corrupt {what} in the database"))
}

/// A whole backend: every concern, plus what is about the database itself.
#[async_trait]
pub trait Store:
    VerificationStore + IdempotencyStore + KeyStore + EventStore + ReceiptStore
{
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// `sqlite` or `postgres`, for logs.
    fn name(&self) -> &'static str;

    /// Deletes idempotency records created before `before` and verifications that expired
    /// before it (see [`VerificationStore::purge_verifications`]). Returns how many
    /// verifications.
    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.purge_idempotency(before).await?;
        self.purge_verifications(before).await
    }
}

/// Runs `reload` on an in-memory copy every `every`, for as long as the copy is in use (the task
/// holds only a weak reference and ends when the last strong one is dropped). A failed reload
/// keeps the previous copy and is logged; the next tick tries again.
pub(crate) fn keep_reloading<T, F, Fut>(
    cache: &Arc<T>,
    every: std::time::Duration,
    what: &'static str,
    reload: F,
) where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), StoreError>> + Send,
{
    let weak = Arc::downgrade(cache);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(cache) = weak.upgrade() else {
                return;
            };
            if let Err(e) = reload(cache).await {
                tracing::warn!(error = %crate::error::Chain(&e), what, "could not reload an in-memory copy; will retry");
            }
        }
    });
}
