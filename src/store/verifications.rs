//! The verifications concern: a number's verification rows, their send attempts and check
//! counts, and the keyed columns `verifyd rekey` rewrites. Every method is one atomic step (a
//! single conditional statement or one transaction), so concurrent requests on any number of
//! connections or replicas cannot double-approve, over-count or lose an attempt.

use async_trait::async_trait;

use super::{Journal, SendJournal, StoreError, corrupt};
use crate::domain::{
    AttemptSid, Channel, CheckUpdate, Counters, Lifecycle, SendAttempt, Timestamp, VerificationSid,
    VerificationStatus,
};

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

    /// The verification once `update` is applied to it.
    pub fn with_check(mut self, update: &CheckUpdate) -> Self {
        self.check_attempts = update.checks;
        self.status = update.status;
        self.updated = update.at;
        self
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
    /// What the send writes beside itself, in its transaction (events, the attempt-log row).
    pub journal: SendJournal,
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

/// What applying a counted check did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckRecord {
    /// The update was applied: the check is counted (and the verification approved if it
    /// approves).
    Counted,
    /// The verification changed since it was read (another check was counted first, or it is
    /// no longer pending): nothing was written.
    Changed,
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

/// Verification rows.
#[async_trait]
pub trait VerificationStore: Send + Sync {
    /// In one transaction: closes the number's pending verification if it expired or is locked,
    /// then either adds `new.attempt` to the live one (a resend) or inserts `new`.
    async fn start_or_resend(
        &self,
        new: NewVerification,
        now: Timestamp,
        life: Lifecycle,
    ) -> Result<SendOutcome, StoreError>;

    /// The number's pending verification belonging to `owner` under the first of `lookups`
    /// (one per configured secret) that has one, read in one snapshot; possibly expired or
    /// locked: the domain judges it ([`crate::domain::Lifecycle::judge_check`]).
    async fn find_pending(
        &self,
        lookups: &[[u8; 32]],
        owner: Option<&str>,
    ) -> Result<Option<StoredVerification>, StoreError>;

    /// Applies a counted check the domain computed, in one conditional update: only if `sid`
    /// is still pending with `update.expected_checks` counted (compare-and-set), it gets
    /// `update.checks`, `update.status` and `update.at`. So at most one check approves and
    /// checks are counted one at a time, however many run at once.
    async fn record_check(
        &self,
        sid: &VerificationSid,
        update: &CheckUpdate,
    ) -> Result<CheckRecord, StoreError> {
        self.record_check_with(sid, update, Journal::default())
            .await
    }

    /// [`record_check`](Self::record_check), writing `journal` in the same transaction when
    /// (and only when) the check is counted.
    async fn record_check_with(
        &self,
        sid: &VerificationSid,
        update: &CheckUpdate,
        journal: Journal,
    ) -> Result<CheckRecord, StoreError>;

    /// Moves a pending verification to `status` (canceled, failed). False if it was not pending.
    async fn close(
        &self,
        sid: &VerificationSid,
        status: VerificationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.close_with(sid, status, now, Journal::default()).await
    }

    /// [`close`](Self::close), writing `journal` in the same transaction when (and only when)
    /// the verification was pending.
    async fn close_with(
        &self,
        sid: &VerificationSid,
        status: VerificationStatus,
        now: Timestamp,
        journal: Journal,
    ) -> Result<bool, StoreError>;

    /// One verification by id.
    async fn get(&self, sid: &VerificationSid) -> Result<Option<StoredVerification>, StoreError>;

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

    /// Deletes verifications that expired before `before` (one closed earlier, approved or
    /// canceled, is kept until then: no check or resend can touch it after its expiry). Returns
    /// how many.
    async fn purge_verifications(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// One send attempt in the text form both backends read (`<attempt sid> <channel> <sent at,
/// ms>`; a verification's attempts are these, oldest first, separated by commas): SQLite keeps
/// it in the row's `attempts` column, PostgreSQL aggregates its `send_attempts` rows into it.
pub(super) fn attempt_text(attempt: &SendAttempt) -> String {
    format!(
        "{} {} {}",
        attempt.sid.as_str(),
        attempt.channel.as_str(),
        attempt.time.as_millis()
    )
}

/// The attempts in their text form (see [`attempt_text`]), oldest first.
///
/// # Errors
/// [`StoreError::Internal`] for text that is not in that form.
pub(super) fn parse_attempts(text: &str) -> Result<Vec<SendAttempt>, StoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|entry| {
            let mut parts = entry.split(' ');
            let (Some(sid), Some(channel), Some(time), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt("send attempt"));
            };
            Ok(SendAttempt {
                sid: AttemptSid::parse(sid).ok_or_else(|| corrupt("attempt sid"))?,
                channel: channel
                    .parse::<Channel>()
                    .map_err(|_| corrupt("attempt channel"))?,
                time: Timestamp::from_millis(time.parse().map_err(|_| corrupt("attempt time"))?),
            })
        })
        .collect()
}
