//! Signed events (DESIGN.md "Events"; docs/events.md): what verifyd tells the operator's
//! endpoints about verifications, in the Standard Webhooks format.
//!
//! - [`Emitter`] builds the outbox rows of an event (one per endpoint whose type filter takes
//!   it). Producers hand them to the store call that makes the change they report, inside its
//!   transaction (a [`Journal`](crate::store::Journal)), so an event is never lost nor written
//!   for a change that did not happen. [`Emitter::publish`] writes an event that reports no
//!   store change of its own (a fraud-guard block, a delivery receipt) in its own transaction.
//! - [`sign`]: the `webhook-signature` of a body, one `v1,` entry per secret.
//! - [`replay`]: dead (or any) events pending again, for `verifyd events replay` and the
//!   console's replay button alike.
//! - [`dispatcher`]: leases due rows, posts them, retries on the schedule, marks dead; the
//!   expiry sweeper that writes `verification.expired` once across replicas; the purge. Its
//!   deliveries run on a low-priority thread of their own ([`yielding`]), so that a saturated
//!   request path is not slowed by them.
//!
//! Never a code in an event: the payload is built from the verification's public view.

pub mod dispatcher;
mod payload;
mod types;
mod yielding;

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

pub use types::{EventSecret, EventType, MIN_SECRET_BYTES, SecretError, UnknownEventType};

use crate::config::EventSettings;
use crate::domain::{PhoneNumber, Timestamp, Verification};
use crate::store::{EventStore, OutboxEvent, Replay, StoreError};
use payload::{AttemptData, VerificationData};

/// The `webhook-signature` header of `body` sent as `id` at `timestamp` (seconds): the base64
/// HMAC-SHA256 of `id.timestamp.body` under each secret, as `v1,<signature>`, space-separated.
pub fn sign(secrets: &[EventSecret], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| {
            // HMAC takes a key of any length.
            let mut mac = Hmac::<Sha256>::new_from_slice(s.key()).expect("HMAC accepts any key");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body.as_bytes());
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A send the fraud guard refused, as its `fraud_guard.blocked` event tells it.
#[derive(Clone, Debug)]
pub struct FraudBlock<'a> {
    pub phone: &'a PhoneNumber,
    /// The `/v2` service (none: the default one).
    pub scope: Option<&'a str>,
    pub channel: &'a str,
    /// The number's long prefix (`+1415555`).
    pub prefix: String,
    /// `country`, `short_prefix` or `long_prefix`.
    pub level: &'static str,
    /// What was refused at that level (`US`, `+1415`, `+1415555`).
    pub destination: String,
    /// `blocked`, `closed` or `unproven`.
    pub reason: &'static str,
    /// When the block ends on its own (none: when something settles or converts).
    pub until: Option<Timestamp>,
}

/// Builds events for the configured endpoints and wakes the dispatcher when some are written.
pub struct Emitter {
    /// Each endpoint's name and the types it takes.
    endpoints: Vec<(String, BTreeSet<EventType>)>,
    full_number: bool,
    /// The `/v2` service a verification without a scope belongs to.
    default_service: String,
    wake: Arc<Notify>,
}

impl Emitter {
    /// `None` when no endpoint is configured (events off: nothing is ever written).
    pub fn new(settings: &EventSettings, default_service: String) -> Option<Arc<Self>> {
        if settings.endpoints.is_empty() {
            return None;
        }
        Some(Arc::new(Self {
            endpoints: settings
                .endpoints
                .iter()
                .map(|e| (e.name.clone(), e.types.clone()))
                .collect(),
            full_number: settings.full_number,
            default_service,
            wake: Arc::new(Notify::new()),
        }))
    }

    /// What the dispatcher waits on between polls.
    pub fn wake_handle(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Tells the dispatcher that rows were committed (call after the store call returned).
    pub fn written(&self) {
        self.wake.notify_one();
    }

    /// Whether any endpoint takes `kind`.
    pub fn wants(&self, kind: EventType) -> bool {
        self.endpoints.iter().any(|(_, t)| t.contains(&kind))
    }

    /// The outbox rows of one event (`kind` about `subject`, `data` as the body's `data`), one
    /// per endpoint that takes it; empty when none does. `subject_created` is when the subject
    /// began (a verification's `date_created`): the same for every event of one subject, it
    /// keeps PostgreSQL's per-subject index in time order (see `OutboxEvent`).
    pub fn rows(
        &self,
        kind: EventType,
        subject: &str,
        subject_created: Timestamp,
        data: &impl serde::Serialize,
        now: Timestamp,
    ) -> Vec<OutboxEvent> {
        if !self.wants(kind) {
            return Vec::new();
        }
        match payload::body(kind.as_str(), now.rfc3339(), data) {
            Ok(payload) => self.rows_of(kind, subject, subject_created, payload, now),
            Err(e) => {
                // Only a map with non-string keys fails; no event data has one.
                tracing::error!(error = %e, kind = kind.as_str(), "an event could not be serialised; not written");
                Vec::new()
            }
        }
    }

    /// The outbox rows of one event whose body is `payload` (moved into the last row, cloned
    /// for the others: one endpoint is the common case). Each row's id is its own, given by the
    /// store ([`row_id`](crate::store::row_id)).
    fn rows_of(
        &self,
        kind: EventType,
        subject: &str,
        subject_created: Timestamp,
        payload: String,
        now: Timestamp,
    ) -> Vec<OutboxEvent> {
        let mut takers = self
            .endpoints
            .iter()
            .filter(|(_, types)| types.contains(&kind))
            .map(|(name, _)| name)
            .peekable();
        let mut rows = Vec::with_capacity(1);
        let mut payload = Some(payload);
        while let Some(name) = takers.next() {
            let payload = if takers.peek().is_none() {
                payload.take()
            } else {
                payload.clone()
            };
            rows.push(OutboxEvent {
                endpoint: name.clone(),
                kind: kind.as_str().to_owned(),
                subject: subject.to_owned(),
                subject_created,
                payload: payload.unwrap_or_default(),
                created: now,
            });
        }
        rows
    }

    /// The rows of a verification event: `data` is the verification as the API shows it (never
    /// its code), the number masked unless `VERIFYD_EVENTS_FULL_NUMBER`, with its service.
    pub fn verification(
        &self,
        kind: EventType,
        v: &Verification,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Vec<OutboxEvent> {
        if !self.wants(kind) {
            return Vec::new();
        }
        let to = self.recipient(&v.to);
        let attempts: Vec<AttemptData<'_>> = v
            .send_attempts
            .iter()
            .map(|a| AttemptData {
                attempt_sid: a.sid.as_str(),
                channel: a.channel.as_str(),
                time: a.time.rfc3339(),
            })
            .collect();
        let data = VerificationData {
            channel: v.channel.as_str(),
            date_created: v.created.rfc3339(),
            date_updated: v.updated.rfc3339(),
            send_code_attempts: &attempts,
            service_sid: scope.unwrap_or(&self.default_service),
            sid: v.sid.as_str(),
            status: v.status.as_str(),
            to: &to,
        };
        let payload = data.body(kind.as_str(), now.rfc3339());
        self.rows_of(kind, v.sid.as_str(), v.created, payload, now)
    }

    /// A number as events show it: masked unless `VERIFYD_EVENTS_FULL_NUMBER`.
    pub fn number(&self, phone: &crate::domain::PhoneNumber) -> String {
        if self.full_number {
            phone.e164().to_owned()
        } else {
            phone.masked()
        }
    }

    /// A recipient as events show it: masked unless `VERIFYD_EVENTS_FULL_NUMBER`.
    fn recipient(&self, to: &crate::domain::Recipient) -> String {
        if self.full_number {
            to.as_str().to_owned()
        } else {
            to.masked()
        }
    }

    /// The `data` of a `fraud_guard.blocked` event: the service, the number's country and long
    /// prefix, what the guard refused (`level`, `destination`, `reason`: `blocked`, `closed` or
    /// `unproven`, `until` when it ends on its own), the channel, and the number masked unless
    /// `VERIFYD_EVENTS_FULL_NUMBER`. Never a code (none was made).
    pub fn fraud_blocked_data(&self, block: &FraudBlock<'_>) -> serde_json::Value {
        serde_json::json!({
            "service_sid": block.scope.unwrap_or(&self.default_service),
            "to": self.number(block.phone),
            "channel": block.channel,
            "country": block.phone.region().map(|r| r.as_str().to_owned()),
            "prefix": block.prefix,
            "level": block.level,
            "destination": block.destination,
            "reason": block.reason,
            "until": block.until.map(Timestamp::to_rfc3339),
        })
    }

    /// Writes one event that reports no store change of its own (a fraud-guard block, a
    /// delivery receipt: `fraud_guard.blocked`, `attempt.delivered`, `attempt.failed`) in its
    /// own transaction, and wakes the dispatcher. Nothing when no endpoint takes `kind`.
    /// `subject_created` as for [`rows`](Self::rows).
    ///
    /// # Errors
    /// [`StoreError`] when the outbox cannot be written.
    pub async fn publish(
        &self,
        store: &dyn EventStore,
        kind: EventType,
        subject: &str,
        subject_created: Timestamp,
        data: serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rows = self.rows(kind, subject, subject_created, &data, now);
        if rows.is_empty() {
            return Ok(());
        }
        store.write_events(rows).await?;
        self.written();
        Ok(())
    }
}

/// Puts outbox rows back to pending, due at `now`, with their tries reset (one event by id, or
/// every dead one), and wakes the dispatcher when `emitter` is this process's: what
/// `verifyd events replay` and the console's replay button both do. How many rows.
///
/// # Errors
/// [`StoreError`] when the outbox cannot be written (nothing changed).
pub async fn replay(
    store: &dyn EventStore,
    which: &Replay,
    now: Timestamp,
    emitter: Option<&Emitter>,
) -> Result<u64, StoreError> {
    let n = store.replay_events(which, now).await?;
    if n > 0 {
        tracing::info!(
            rows = n,
            which = match which {
                Replay::Id(id) => id.as_str(),
                Replay::AllDead => "every dead event",
            },
            "events: replayed"
        );
        if let Some(e) = emitter {
            e.written();
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let secret = EventSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &[secret],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn signs_once_per_secret() {
        let a = EventSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = EventSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let header = sign(&[a, b], "msg_1", 1, "{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_ne!(parts[0], parts[1]);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
    }
}
