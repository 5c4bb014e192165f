//! The events concern (DESIGN.md "Events"): the transactional outbox. An event is written by the
//! store call that makes the change it reports, in that call's transaction ([`Journal`], handed
//! to [`VerificationStore`](super::VerificationStore)'s writes), so a crash can neither lose an
//! event nor leave one for a change that was rolled back. The same [`Journal`] carries the
//! change's attempt-log row, for the same reason. [`EventStore`] is the dispatcher's side: lease
//! due rows, record each delivery's result, list and replay, and the expiry sweeper's
//! compare-and-set watermark.
//!
//! The store never builds an event: the payload arrives as finished JSON text (built by
//! `crate::events`), and the store only keeps it and hands it back.

use async_trait::async_trait;

use super::{AttemptRecord, StoreError};
use crate::domain::{SendAttempt, Timestamp};

/// One outbox row to write: one event for one endpoint. Its id is the row's own (see
/// [`row_id`]), so nothing about it is written or indexed on the request path.
#[derive(Clone, Debug)]
pub struct OutboxEvent {
    /// The endpoint's name (`default` for `VERIFYD_EVENTS_URL`).
    pub endpoint: String,
    /// `verification.pending`, …
    pub kind: String,
    /// What it is about (a verification sid): a subject's events go out in order.
    pub subject: String,
    /// When the subject began (a verification's creation; the epoch for a subject without one),
    /// the same on all its events. PostgreSQL's per-subject index leads with it, so that a new
    /// event lands at the index's recent end instead of at a random page of it (verification
    /// sids are random): under a backlog that index is as large as the backlog, and random
    /// inserts into it cost a page write each. SQLite keeps the order without that index (see
    /// its `lease`) and only stores the value.
    pub subject_created: Timestamp,
    /// The request body, finished JSON.
    pub payload: String,
    pub created: Timestamp,
}

/// What a change writes beside itself, in its own transaction, when (and only when) it happens.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    /// The events the change emits (one row per event and endpoint).
    pub events: Vec<OutboxEvent>,
    /// The change's attempt-log row. For a resend the store fills in the verification sid.
    pub attempt: Option<AttemptRecord>,
}

impl Journal {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.attempt.is_none()
    }
}

/// A send's journals: what a new verification writes, and what a resend writes.
#[derive(Clone, Debug, Default)]
pub struct SendJournal {
    pub created: Journal,
    pub resent: Journal,
}

/// Where an outbox row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventState {
    /// Not delivered yet: due at `next_at`.
    Pending,
    /// An endpoint answered 2xx.
    Delivered,
    /// Every try of the retry schedule failed; kept until replayed or purged.
    Dead,
}

impl EventState {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Delivered => "delivered",
            EventState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// An outbox row as stored.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub seq: i64,
    /// Its `webhook-id`: [`row_id`] of its creation and `seq`, or the id stored with a row
    /// written before ids were the rows' own (the same for every endpoint of its event).
    pub id: String,
    pub event: OutboxEvent,
    pub state: EventState,
    /// Tries made so far.
    pub tries: u32,
    pub next_at: Timestamp,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

/// What one delivery try came to.
#[derive(Clone, Debug)]
pub enum DeliveryResult {
    Delivered {
        at: Timestamp,
    },
    /// Failed; try again at `at`.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// Failed, and that was the last try.
    Dead {
        error: String,
    },
}

/// The `webhook-id` of the outbox row `seq` written at `created`: `msg_`, the creation time
/// (milliseconds, 12 hex digits) and the row's number (16 hex digits). Unique (one row, one
/// id), the same on every try, sorted by creation, and found again by its number: nothing is
/// stored or indexed for it, which on the request path measured about 2 % of a send
/// (BENCHMARKS.md, issue 23). Each endpoint's row of one event has its own id.
pub fn row_id(created: Timestamp, seq: i64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(ROW_ID_LEN);
    id.push_str("msg_");
    // The casts keep the bits: hex digits of the two's-complement value (both are positive).
    let (millis, seq) = (created.as_millis() as u64, seq as u64);
    for (value, digits) in [(millis, 12_u32), (seq, 16)] {
        for i in (0..digits).rev() {
            // The mask keeps the index below 16.
            id.push(char::from(HEX[((value >> (4 * i)) & 0xf) as usize]));
        }
    }
    id
}

/// The length of a [`row_id`] (ids stored before were 36 characters long).
const ROW_ID_LEN: usize = 4 + 12 + 16;

/// The creation time and row number a [`row_id`] was made of; `None` for any other text (a
/// stored id of an older row, or no id at all).
pub fn parse_row_id(id: &str) -> Option<(Timestamp, i64)> {
    let hex = id.strip_prefix("msg_").filter(|_| id.len() == ROW_ID_LEN)?;
    // Typed back by an operator, possibly in capitals.
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let millis = i64::from_str_radix(&hex[..12], 16).ok()?;
    let seq = i64::from_str_radix(&hex[12..], 16).ok()?;
    Some((Timestamp::from_millis(millis), seq))
}

/// Which rows a replay puts back to pending.
#[derive(Clone, Debug)]
pub enum Replay {
    /// The row of this id (a [`row_id`]), or every endpoint's row of an older event whose id
    /// was stored; whatever its state.
    Id(String),
    /// Every dead row.
    AllDead,
}

/// A verification the expiry sweeper reports: what the event needs of it.
#[derive(Clone, Debug)]
pub struct ExpiredVerification {
    pub sid: String,
    pub phone_sealed: Vec<u8>,
    pub channel: String,
    pub send_attempts: Vec<SendAttempt>,
    pub created: Timestamp,
    pub expires_at: Timestamp,
    /// The service of its first send, from the attempt log (none when that row is gone).
    pub service_sid: Option<String>,
}

/// The outbox, the dispatcher's side.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Writes `events` in one transaction, outside any other change (for producers whose
    /// change is not a store write: a fraud-guard block, a delivery receipt).
    async fn write_events(&self, events: Vec<OutboxEvent>) -> Result<(), StoreError>;

    /// Leases up to `limit` due rows of `endpoints` (pending, `next_at` reached, no live lease,
    /// and no earlier pending row of the same subject and endpoint) until `lease_until`, as
    /// `owner`; on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so replicas never lease one row
    /// together. Oldest first, only rows after `after` (a `seq`; 0 for all): a dispatcher that
    /// knows which rows it has already seen leases new ones without walking those again.
    async fn lease_events(
        &self,
        endpoints: &[String],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
        limit: u32,
        after: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Records the tries of rows leased by `owner`, each `(seq, result)`, in one transaction
    /// (nothing for a row whose lease passed to another).
    async fn finish_events(
        &self,
        owner: &str,
        results: &[(i64, DeliveryResult)],
    ) -> Result<(), StoreError>;

    /// The newest `limit` rows, optionally of one state, newest first.
    async fn list_events(
        &self,
        state: Option<EventState>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Puts rows back to pending, due at `now`, with their tries reset. How many.
    async fn replay_events(&self, which: &Replay, now: Timestamp) -> Result<u64, StoreError>;

    /// Pending rows (for the `verifyd_events_pending` gauge).
    async fn count_pending_events(&self) -> Result<u64, StoreError>;

    /// The sweeper's watermark: every expiry at or before it has been written. Created at
    /// `now` when missing (expiries before events were first turned on are not reported).
    async fn sweep_watermark(&self, now: Timestamp) -> Result<Timestamp, StoreError>;

    /// Verifications that expired in (`after`, `until`] unapproved, uncanceled and unlocked
    /// (pending, or closed as expired by a later send), fewer than `max_checks` checks counted;
    /// at most `limit`, by expiry.
    async fn expired_between(
        &self,
        after: Timestamp,
        until: Timestamp,
        max_checks: u32,
        limit: u32,
    ) -> Result<Vec<ExpiredVerification>, StoreError>;

    /// In one transaction: moves the watermark from `from` to `to` if it is still `from`
    /// (compare-and-set) and then writes `events`. False (nothing written) when another replica
    /// moved it first.
    async fn advance_sweep(
        &self,
        from: Timestamp,
        to: Timestamp,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError>;

    /// A send attempt whose delivery failed after its row was written: the row becomes the
    /// failed send it is (no sid, no verification, status `failed`), as the attempt log has
    /// always recorded one.
    async fn fail_attempt(&self, attempt_sid: &str) -> Result<(), StoreError>;

    /// Deletes delivered and dead rows created before `before`. How many.
    async fn purge_events(&self, before: Timestamp) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_id_gives_back_its_time_and_number() {
        for (millis, seq) in [(0, 1), (1_795_000_000_123, 42), ((1 << 48) - 1, i64::MAX)] {
            let id = row_id(Timestamp::from_millis(millis), seq);
            assert_eq!(id.len(), ROW_ID_LEN, "{id}");
            assert_eq!(
                id,
                format!("msg_{millis:012x}{seq:016x}"),
                "the same digits format! writes"
            );
            assert_eq!(
                parse_row_id(&id),
                Some((Timestamp::from_millis(millis), seq))
            );
            assert_eq!(
                parse_row_id(&format!("msg_{}", id[4..].to_uppercase())),
                Some((Timestamp::from_millis(millis), seq)),
                "typed back in capitals"
            );
        }
    }

    #[test]
    fn other_ids_are_not_row_ids() {
        for id in [
            "",
            "msg_",
            // An id stored by an older verifyd: 36 characters.
            "msg_0199c0ffee00a1b2c3d4e5f60718293a",
            "msg_0199c0ffee00000000000000000000-1",
            "evt_0199c0ffee000000000000000000002a",
        ] {
            assert_eq!(parse_row_id(id), None, "{id}");
        }
    }
}
