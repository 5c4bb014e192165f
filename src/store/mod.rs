//! Persistence of verifications, their send attempts, generated API keys, idempotent answers and
//! the key-check records of secret rotation. Every method is one atomic step (a single
//! conditional statement or one transaction), so concurrent requests on any number of
//! connections cannot double-approve, over-count or lose an attempt. Business rules live in the
//! engine; the store only applies the updates it is told to, atomically. The store never sees a
//! key: it keeps digests and ciphertexts as opaque bytes.

pub mod attempts;
pub mod postgres;
pub mod rate_limits;
pub mod safelist;
pub mod services;
pub mod sqlite;

use async_trait::async_trait;

use crate::domain::{
    Channel, Counters, Lifecycle, SendAttempt, Timestamp, VerificationSid, VerificationStatus,
};

pub use attempts::{AttemptFilter, AttemptKind, AttemptRecord, AttemptStore, SendAttemptRow};
pub use postgres::{PostgresSettings, PostgresStore};
pub use rate_limits::{BucketChange, BucketRecord, RateLimitRecord, RateLimitStore};
pub use safelist::{SafeListRecord, SafeListStore};
pub use services::{ServiceRecord, ServiceStore};
pub use sqlite::SqliteStore;

/// What the store failed at. Neither variant's text reaches a client.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached in time (pool or lock timeout, I/O): answer 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug, corrupt data): answer an opaque 500.
    #[error("store failure: {0}")]
    Internal(String),
}

/// A verification row as stored.
#[derive(Clone, Debug)]
pub struct StoredVerification {
    pub sid: VerificationSid,
    pub phone_sealed: Vec<u8>,
    pub channel: Channel,
    pub status: VerificationStatus,
    pub code_digest: Vec<u8>,
    pub code_sealed: Vec<u8>,
    pub check_attempts: u32,
    pub send_attempts: Vec<SendAttempt>,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub expires_at: Timestamp,
}

impl StoredVerification {
    /// The stored form of a verification just inserted from `new` at `now`.
    pub fn created(new: &NewVerification, now: Timestamp) -> Self {
        Self {
            sid: new.sid.clone(),
            phone_sealed: new.phone_sealed.clone(),
            channel: new.channel,
            status: VerificationStatus::Pending,
            code_digest: new.code_digest.to_vec(),
            code_sealed: new.code_sealed.clone(),
            check_attempts: 0,
            send_attempts: vec![new.attempt.clone()],
            created: now,
            updated: now,
            expires_at: new.expires_at,
        }
    }

    /// The counters the lifecycle rules read.
    pub fn counters(&self) -> Counters {
        Counters {
            status: self.status,
            check_attempts: self.check_attempts,
            send_attempts: u32::try_from(self.send_attempts.len()).unwrap_or(u32::MAX),
            expires_at: self.expires_at,
        }
    }
}

/// A verification to create if the number has no live one.
pub struct NewVerification {
    pub sid: VerificationSid,
    /// The user it belongs to (a keyed digest of the JWT `sub`); `None` for API-key callers.
    pub owner: Option<String>,
    pub phone_lookup: [u8; 32],
    pub phone_sealed: Vec<u8>,
    pub channel: Channel,
    pub code_digest: [u8; 32],
    pub code_sealed: Vec<u8>,
    pub attempt: SendAttempt,
    pub expires_at: Timestamp,
}

/// What a send did.
#[derive(Debug)]
pub enum SendOutcome {
    /// A new verification; its code is the new one.
    Created(StoredVerification),
    /// The live verification got another attempt; its code is the stored one.
    Resent(StoredVerification),
    /// The live verification has had all its sends; nothing changed.
    MaxSendAttempts,
}

/// What a counted check did.
#[derive(Debug)]
pub enum CheckRecord {
    /// The check was counted (and, if right, approved the verification).
    Counted(StoredVerification),
    /// The verification was no longer open when the check arrived; nothing changed.
    NotOpen,
}

/// How a check judges the pending verification it found: `None` leaves it uncounted (it is
/// expired or locked), `Some(right)` counts one check and approves the verification if `right`.
pub type Judge = Box<dyn Fn(&StoredVerification) -> Option<bool> + Send + Sync>;

/// What [`Store::check_pending`] found and did.
#[derive(Debug)]
pub enum PendingCheck {
    /// The number has no pending verification of this owner.
    NotFound,
    /// The judge left it uncounted; here it is as found.
    Uncounted(StoredVerification),
    /// One check was counted; the verification after it.
    Counted(StoredVerification),
    /// It stopped being open between the judging and the counting (another check used the last
    /// attempt or approved it, or the TTL ended); here it is as found.
    NotOpen(StoredVerification),
}

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

/// A key-check record: the database's stable key sealed under one server secret (see
/// [`crate::rotation`]). `key_id` repeats the key id inside `sealed`, so it can be a primary key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCheck {
    pub key_id: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// A verification's keyed columns: what `verifyd rekey` reads and rewrites.
#[derive(Clone, Debug)]
pub struct SealedVerification {
    pub sid: VerificationSid,
    pub phone_lookup: Vec<u8>,
    pub phone_sealed: Vec<u8>,
    pub code_digest: Vec<u8>,
    pub code_sealed: Vec<u8>,
}

/// A stored idempotent answer: what `verifyd rekey` re-seals.
#[derive(Clone, Debug)]
pub struct SealedAnswer {
    pub key_digest: [u8; 32],
    pub body_sealed: Vec<u8>,
}

/// What re-keying one verification did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RekeyOutcome {
    /// The row now holds the new columns.
    Rekeyed,
    /// The row's sealed columns are no longer the ones read (someone re-keyed it first) or the
    /// row is gone: nothing changed.
    Changed,
    /// The new lookup digest is already the pending verification of another row (two pending
    /// verifications of one number under two secrets): nothing changed.
    Conflict,
}

/// The persistence backend.
#[async_trait]
pub trait Store: Send + Sync {
    /// In one transaction: closes the number's pending verification if it expired or is locked,
    /// then either adds `new.attempt` to the live one (a resend) or inserts `new`.
    async fn start_or_resend(
        &self,
        new: NewVerification,
        now: Timestamp,
        life: Lifecycle,
    ) -> Result<SendOutcome, StoreError>;

    /// The number's pending verification belonging to `owner`, if any (possibly expired or
    /// locked: the caller applies the lifecycle rules).
    async fn find_pending(
        &self,
        phone_lookup: &[u8; 32],
        owner: Option<&str>,
    ) -> Result<Option<StoredVerification>, StoreError>;

    /// Counts one check of `sid` if it is still pending, unexpired and has checks left, and
    /// approves it when `approve`; all in one conditional update, so at most `max_checks`
    /// checks are ever counted and at most one approves.
    async fn record_check(
        &self,
        sid: &VerificationSid,
        approve: bool,
        now: Timestamp,
        max_checks: u32,
    ) -> Result<CheckRecord, StoreError>;

    /// A check in one step where the backend can: the number's pending verification of `owner`
    /// under the first of `lookups` that has one, judged by `judge`, and the check it asks for
    /// counted with [`Store::record_check`]'s conditional update (which alone keeps concurrent
    /// checks within the budget). The default runs [`Store::find_pending`] then
    /// [`Store::record_check`].
    async fn check_pending(
        &self,
        lookups: &[[u8; 32]],
        owner: Option<&str>,
        judge: Judge,
        now: Timestamp,
        max_checks: u32,
    ) -> Result<PendingCheck, StoreError> {
        for lookup in lookups {
            let Some(found) = self.find_pending(lookup, owner).await? else {
                continue;
            };
            let Some(approve) = judge(&found) else {
                return Ok(PendingCheck::Uncounted(found));
            };
            return Ok(
                match self
                    .record_check(&found.sid, approve, now, max_checks)
                    .await?
                {
                    CheckRecord::Counted(counted) => PendingCheck::Counted(counted),
                    CheckRecord::NotOpen => PendingCheck::NotOpen(found),
                },
            );
        }
        Ok(PendingCheck::NotFound)
    }

    /// Moves a pending verification to `status` (canceled, failed). False if it was not pending.
    async fn close(
        &self,
        sid: &VerificationSid,
        status: VerificationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// One verification by id.
    async fn get(&self, sid: &VerificationSid) -> Result<Option<StoredVerification>, StoreError>;

    /// Deletes verifications that expired before `before` (one closed earlier, approved or
    /// canceled, is kept until then: no check or resend can touch it after its expiry), and
    /// idempotency records created before it. Returns how many verifications.
    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Digests of generated API keys.
    async fn api_key_digests(&self) -> Result<Vec<[u8; 32]>, StoreError>;

    /// Keeps the digest of a newly generated API key.
    async fn add_api_key_digest(&self, digest: [u8; 32], now: Timestamp) -> Result<(), StoreError>;

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

    /// Every key-check record.
    async fn key_checks(&self) -> Result<Vec<KeyCheck>, StoreError>;

    /// Adds a key-check record unless one with its key id exists (then nothing changes).
    async fn add_key_check(&self, check: &KeyCheck, now: Timestamp) -> Result<(), StoreError>;

    /// Deletes every key-check record but `keep`'s; returns how many.
    async fn retire_key_checks(&self, keep: &[u8]) -> Result<u64, StoreError>;

    /// Up to `limit` verifications' keyed columns, in sid order, after `after` (all states).
    async fn sealed_verifications(
        &self,
        after: Option<&VerificationSid>,
        limit: u32,
    ) -> Result<Vec<SealedVerification>, StoreError>;

    /// Replaces `old.sid`'s four keyed columns with `new`'s if its sealed columns are still
    /// `old`'s, in one conditional update that touches nothing else (status, counts and
    /// attempts stay as concurrent checks and sends left them).
    async fn rekey_verification(
        &self,
        old: &SealedVerification,
        new: &SealedVerification,
    ) -> Result<RekeyOutcome, StoreError>;

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

    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// `sqlite` or `postgres`, for logs.
    fn name(&self) -> &'static str;
}
