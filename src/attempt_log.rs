//! The attempt log (DESIGN.md "Attempt log"): every send attempt, check outcome and refusal of
//! every face.
//!
//! Rows that belong to an accepted verification of the local engine (its send attempts, its
//! counted checks, its approval or cancellation by update) are not queued here: the engine
//! writes each in the store transaction of the change it records (a
//! [`Journal`](crate::store::Journal), like the events' outbox), so a crash cannot lose one and
//! a rolled-back change leaves none. [`seal`] turns an entry into that row.
//!
//! Everything else (refusals before the engine, checks that found nothing or a locked
//! verification, and every row of the `twilio-verify` engine, whose verifications are not in our
//! store) is best effort, off the request path: the [`Verifier`](crate::service::Verifier) hands
//! each entry to a channel (never waiting); one background task takes whatever is waiting, seals
//! the numbers (HMAC for lookup, AEAD for display, as everywhere) and appends the batch in one
//! store call, so a busy server writes many requests' rows per transaction. Those rows are lost
//! if the process dies before the batch is written, and a batch the store refuses (an outage) or
//! a row that finds the channel full is dropped, counted in `verifyd_attempt_log_dropped_total`
//! and logged, never blocking or failing a request. A second task purges rows older than
//! `VERIFYD_ATTEMPT_RETENTION`.
//!
//! A flood is summarised, as the log summarises it (`http::refusals`): a refusal that names its
//! client is written row by row up to [`DETAILED_PER_KEY`] per (client, reason, bucket) and
//! 10-second window; the rest of that window's are only counted and written as one summary row
//! when the window ends (`times` = how many, no number), so a flood of 429s costs a counter
//! instead of a sealed row each while the console's counts stay whole.
//!
//! Readers that must see their own writes (the `/v2/Attempts` handlers) call
//! [`AttemptLog::flush`] first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::crypto::Keys;
use crate::domain::{Channel, MessageFacts, Recipient, Timestamp};
use crate::flood::{FloodTally, Summary};
use crate::rotation::PHONE_CONTEXT;
use crate::store::{AttemptKind, AttemptRecord, AttemptStore};

/// Entries that may wait for the writer; beyond this they are dropped (and counted).
const QUEUE: usize = 65_536;
/// Most rows in one store call.
const MAX_BATCH: usize = 1024;
/// How often the purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(300);

/// One thing that happened, as the service saw it.
#[derive(Debug)]
pub struct AttemptEntry {
    pub kind: AttemptKind,
    pub time: Timestamp,
    /// The service (`VA…`) when not the default one.
    pub scope: Option<String>,
    pub verification_sid: Option<String>,
    /// The send attempt's `VL…`.
    pub attempt_sid: Option<String>,
    pub channel: Option<Channel>,
    pub phone: Option<Recipient>,
    pub vendor: Option<&'static str>,
    pub status: Option<&'static str>,
    pub reason: Option<&'static str>,
    pub bucket: Option<&'static str>,
    /// The rendered message's locale, encoding and segments (sends by the local engine).
    pub message: Option<MessageFacts>,
    /// Who was refused (a refusal's client key): a flood of one client's refusals is summarised.
    pub client: Option<String>,
    /// How many refusals the entry stands for (1, or a summary's count).
    pub times: u32,
}

impl AttemptEntry {
    /// An entry of `kind` about `phone` at `time`, the rest empty.
    pub fn new(
        kind: AttemptKind,
        time: Timestamp,
        scope: Option<String>,
        phone: &Recipient,
    ) -> Self {
        Self {
            kind,
            time,
            scope,
            verification_sid: None,
            attempt_sid: None,
            channel: None,
            phone: Some(phone.clone()),
            vendor: None,
            status: None,
            reason: None,
            bucket: None,
            message: None,
            client: None,
            times: 1,
        }
    }

    /// The summary row of `summary`: the refusals of one client and reason beyond the first
    /// [`DETAILED_PER_KEY`] of a window, with no number.
    fn summary(s: &Summary<RefusalLabel>) -> Self {
        let (client, scope) = match s.client.split_once(SCOPE_SEPARATOR) {
            Some((client, scope)) => (client.to_owned(), Some(scope.to_owned())),
            None => (s.client.clone(), None),
        };
        let (reason, bucket) = s.label;
        Self {
            kind: AttemptKind::Refusal,
            time: s.started.plus(s.length),
            scope,
            verification_sid: None,
            attempt_sid: None,
            channel: None,
            phone: None,
            vendor: None,
            status: None,
            reason: Some(reason),
            bucket,
            message: None,
            client: Some(client),
            times: u32::try_from(s.total.saturating_sub(DETAILED_PER_KEY)).unwrap_or(u32::MAX),
        }
    }
}

/// A refusal's reason and bucket: what a flood's refusals are summarised by (with the client).
type RefusalLabel = (&'static str, Option<&'static str>);

/// Refusals of one (client, reason, bucket) written row by row per window; the rest are counted
/// and written as one summary row when the window ends (as the log summarises them).
pub const DETAILED_PER_KEY: u64 = crate::http::refusals::LOGGED_PER_KEY;
/// Separates a client key from a service sid in the tally's key.
const SCOPE_SEPARATOR: char = ' ';

enum Message {
    Entry(Box<AttemptEntry>),
    Flush(oneshot::Sender<()>),
}

/// The writer's handle.
pub struct AttemptLog {
    tx: mpsc::Sender<Message>,
    /// Refusals per (client, reason, bucket) in the current window.
    refusals: FloodTally<RefusalLabel>,
}

/// What the writer needs.
struct Writer {
    store: Arc<dyn AttemptStore>,
    keys: Arc<Keys>,
    default_service: String,
}

/// The stored row of `e`: the number sealed (lookup digest, ciphertext, prefix, country); a row
/// without a service belongs to `default_service`.
pub fn seal(e: AttemptEntry, keys: &Keys, default_service: &str) -> AttemptRecord {
    let (lookup, sealed, prefix, country) = match &e.phone {
        // An email address has no prefix or country: none of it is kept in clear.
        Some(p) => (
            Some(keys.phone_lookup(&p.key()).to_vec()),
            Some(keys.seal(p.as_str().as_bytes(), PHONE_CONTEXT)),
            p.phone().map(|n| n.e164().chars().take(5).collect()),
            p.region().map(|r| r.to_string()),
        ),
        None => (None, None, None, None),
    };
    AttemptRecord {
        sid: e.attempt_sid,
        kind: e.kind,
        time: e.time,
        service_sid: e.scope.unwrap_or_else(|| default_service.to_owned()),
        verification_sid: e.verification_sid,
        channel: e.channel.map(|c| c.as_str().to_owned()),
        country,
        prefix,
        phone_lookup: lookup,
        phone_sealed: sealed,
        vendor: e.vendor.map(str::to_owned),
        status: e.status.map(str::to_owned),
        reason: e.reason.map(str::to_owned),
        bucket: e.bucket.map(str::to_owned),
        message: e.message,
        delivery: None,
        times: e.times.max(1),
    }
}

impl Writer {
    fn record(&self, e: AttemptEntry) -> AttemptRecord {
        seal(e, &self.keys, &self.default_service)
    }

    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let mut entries = Vec::with_capacity(MAX_BATCH);
        let mut flushes = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(message) = next {
                match message {
                    Message::Entry(e) => entries.push(self.record(*e)),
                    Message::Flush(done) => flushes.push(done),
                }
                next = if entries.len() < MAX_BATCH {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            let n = entries.len();
            if let Err(e) = self
                .store
                .record_attempts(std::mem::take(&mut entries))
                .await
            {
                metrics::counter!("verifyd_attempt_log_dropped_total").increment(n as u64);
                tracing::warn!(error = %e, rows = n, "could not write attempt-log rows; dropped");
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

impl AttemptLog {
    /// Starts the writer and the purge; the tasks end when the log is dropped (the writer) or
    /// are returned to be stopped on shutdown.
    pub fn start(
        store: Arc<dyn AttemptStore>,
        keys: Arc<Keys>,
        default_service: String,
        retention: Duration,
        clock: Arc<dyn Clock>,
    ) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            store: Arc::clone(&store),
            keys,
            default_service,
        };
        let write = tokio::spawn(writer.run(rx));
        let log = Arc::new(Self {
            tx,
            refusals: FloodTally::new(
                Arc::clone(&clock),
                DETAILED_PER_KEY,
                crate::http::refusals::WINDOW,
                crate::http::refusals::MAX_CLIENTS,
            ),
        });
        // Writes each window's summary rows once it has ended, even when no refusal follows.
        let summaries = tokio::spawn({
            let log = Arc::clone(&log);
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    log.summarise(false);
                }
            }
        });
        let purge = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_EVERY);
            loop {
                tick.tick().await;
                match store.purge_attempts(clock.now().minus(retention)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "purged old attempt-log rows"),
                    Err(e) => tracing::warn!(error = %e, "attempt-log purge failed; will retry"),
                }
            }
        });
        (log, vec![write, summaries, purge])
    }

    /// Hands an entry to the writer without waiting; dropped (and counted) when the queue is full.
    /// A refusal with its client is written row by row up to [`DETAILED_PER_KEY`] per (client,
    /// reason, bucket) and window, then only counted: the window's summary row says how many
    /// more there were.
    pub fn record(&self, entry: AttemptEntry) {
        if entry.kind == AttemptKind::Refusal
            && let (Some(client), Some(reason)) = (entry.client.as_deref(), entry.reason)
        {
            let key;
            let key = match entry.scope.as_deref() {
                Some(scope) => {
                    key = format!("{client}{SCOPE_SEPARATOR}{scope}");
                    key.as_str()
                }
                None => client,
            };
            let (detailed, ended) = self.refusals.admit(key, (reason, entry.bucket));
            self.write_summaries(&ended);
            if !detailed {
                return;
            }
        }
        self.send(entry);
    }

    /// Writes the summary rows of the current window if it has ended (or now, with `force`: on
    /// shutdown).
    pub fn summarise(&self, force: bool) {
        let ended = self.refusals.flush(force);
        self.write_summaries(&ended);
    }

    fn write_summaries(&self, ended: &[Summary<RefusalLabel>]) {
        for s in ended {
            self.send(AttemptEntry::summary(s));
        }
    }

    fn send(&self, entry: AttemptEntry) {
        if self.tx.try_send(Message::Entry(Box::new(entry))).is_err() {
            metrics::counter!("verifyd_attempt_log_dropped_total").increment(1);
        }
    }

    /// Resolves once every entry recorded before this call is written (or dropped).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}
