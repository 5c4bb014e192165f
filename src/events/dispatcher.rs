//! The background side of events: the dispatcher, the expiry sweeper and the purge. Never on the
//! request path: a request only writes outbox rows in its own transaction and wakes the
//! dispatcher.
//!
//! The dispatcher leases due rows for `VERIFYD_EVENTS_TIMEOUT` + 5 s (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so each row is in flight from one replica at a time), posts each
//! one signed, and records the result: 2xx delivered; anything else, or no answer within the
//! timeout, is a failed try, tried again after the next wait of `VERIFYD_EVENTS_RETRY_SCHEDULE`,
//! or dead after the last. A replica killed mid-delivery leaves its lease to run out; then any
//! replica leases the row again (at least once: the receiver dedupes by `webhook-id`). Leases,
//! due times and the schedule are in the [`Clock`]'s time, so tests move time instead of
//! sleeping.
//!
//! It works in batches so that a busy request path pays little for it: a wake (a commit that
//! wrote events) is answered after [`GATHER`], so one lease takes a burst's rows together; a
//! lease waits until at least half of [`IN_FLIGHT`] is free; and the results of finished tries
//! are recorded by one task, many per store call.
//!
//! The sweeper notices expiries: every second it looks for verifications whose TTL passed since
//! its watermark and writes their `verification.expired` while moving the watermark by
//! compare-and-set, in one transaction: of several replicas sweeping the same window one wins
//! and the others write nothing, so each expiry is reported once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use super::{Emitter, EventType, sign};
use crate::clock::Clock;
use crate::config::{EventEndpoint, EventSettings};
use crate::crypto::Keys;
use crate::domain::{
    Channel, Lifecycle, Recipient, Timestamp, Verification, VerificationSid, VerificationStatus,
};
use crate::error::Chain;
use crate::rotation::PHONE_CONTEXT;
use crate::store::{DeliveryResult, EventStore, StoredEvent};

/// Longest wait between polls when nothing wakes the dispatcher.
const POLL: Duration = Duration::from_millis(250);
/// Deliveries in flight at once, per replica.
const IN_FLIGHT: usize = 64;
/// How long a wake waits for more commits before leasing (a burst's rows in one lease).
const GATHER: Duration = Duration::from_millis(20);
/// Most results recorded in one store call.
const RECORD_BATCH: usize = 256;
/// A lease outlives the try's timeout by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often the sweeper looks for expiries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Most expiries written by one sweep.
const SWEEP_BATCH: u32 = 500;
/// How often finished rows are purged.
const PURGE_EVERY: Duration = Duration::from_secs(300);

/// Everything the background tasks share.
struct Shared {
    store: Arc<dyn EventStore>,
    endpoints: HashMap<String, EventEndpoint>,
    names: Vec<String>,
    schedule: Vec<Duration>,
    timeout: Duration,
    retention: Duration,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// This replica's lease name.
    owner: String,
}

/// Starts the dispatcher, the sweeper and the purge; the handles are aborted on shutdown.
pub fn start(
    store: Arc<dyn EventStore>,
    settings: &EventSettings,
    emitter: Arc<Emitter>,
    keys: Arc<Keys>,
    life: Lifecycle,
    clock: Arc<dyn Clock>,
) -> Vec<JoinHandle<()>> {
    let http = reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("verifyd/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        store,
        endpoints: settings
            .endpoints
            .iter()
            .map(|e| (e.name.clone(), e.clone()))
            .collect(),
        names: settings.endpoints.iter().map(|e| e.name.clone()).collect(),
        schedule: settings.retry_schedule.clone(),
        timeout: settings.timeout,
        retention: settings.retention,
        http,
        clock,
        owner: format!("replica-{:016x}", rand::random::<u64>()),
    });
    let wake = emitter.wake_handle();
    vec![
        tokio::spawn(deliver_loop(Arc::clone(&shared), wake)),
        tokio::spawn(sweep_loop(Arc::clone(&shared), emitter, keys, life)),
        tokio::spawn(purge_loop(shared)),
    ]
}

/// Rows this replica is posting: a lease that ran out meanwhile (a slow receiver, a clock that
/// jumped) may be taken again, but never by the replica already posting it. A row leaves it once
/// its result is recorded.
type Posting = Arc<std::sync::Mutex<std::collections::HashSet<i64>>>;

async fn deliver_loop(shared: Arc<Shared>, wake: Arc<Notify>) {
    let mut running = JoinSet::new();
    let posting: Posting = Arc::default();
    let (results, recorded) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record_loop(
        Arc::clone(&shared),
        recorded,
        Arc::clone(&posting),
        Arc::clone(&wake),
    ));
    // The recorder ends when this loop (the last sender) is dropped; it is aborted with it.
    let _recorder = AbortOnDrop(recorder);
    // The highest row leased so far: a wake (new commits, recorded results) leases only rows
    // after it, which skips the rows in flight; every POLL a full lease finds what that leaves
    // behind (retries now due, a subject's next event once its previous one was delivered, a
    // lease another replica let run out, a row committed out of `seq` order).
    let mut cursor = 0_i64;
    let mut last_full: Option<std::time::Instant> = None;
    loop {
        while running.try_join_next().is_some() {}
        // Lease in batches: wait until at least half the room is free.
        let room = IN_FLIGHT.saturating_sub(running.len());
        if room < IN_FLIGHT / 2 {
            let _ = running.join_next().await;
            continue;
        }
        let now = shared.clock.now();
        let lease_until = now.plus(shared.timeout + LEASE_MARGIN);
        let full = last_full.is_none_or(|at| at.elapsed() >= POLL);
        let after = if full { 0 } else { cursor };
        if full {
            last_full = Some(std::time::Instant::now());
        }
        let leased = match shared
            .store
            .lease_events(
                &shared.names,
                now,
                lease_until,
                &shared.owner,
                room as u32,
                after,
            )
            .await
        {
            Ok(rows) => {
                cursor = rows.iter().map(|r| r.seq).fold(cursor, i64::max);
                rows
            }
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "could not lease due events; will retry");
                Vec::new()
            }
        };
        if leased.is_empty() {
            // Wait for a wake (a commit with events, or recorded results: a subject's next
            // event may be due) or the poll, then a moment more so a burst is leased at once.
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            tokio::time::sleep(GATHER).await;
            continue;
        }
        for row in leased {
            if !posting.lock().expect("not poisoned").insert(row.seq) {
                continue;
            }
            let shared = Arc::clone(&shared);
            let results = results.clone();
            running.spawn(async move {
                let seq = row.seq;
                let result = deliver(&shared, row).await;
                let _ = results.send((seq, result));
            });
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records finished tries, as many as are waiting (up to [`RECORD_BATCH`]) per store call, then
/// frees their rows and wakes the dispatcher.
async fn record_loop(
    shared: Arc<Shared>,
    mut recorded: mpsc::UnboundedReceiver<(i64, Option<DeliveryResult>)>,
    posting: Posting,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    let mut results = Vec::with_capacity(RECORD_BATCH);
    while recorded.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        results.extend(
            batch
                .iter()
                .filter_map(|(seq, r)| r.as_ref().map(|r| (*seq, r.clone()))),
        );
        if let Err(e) = shared.store.finish_events(&shared.owner, &results).await {
            // The leases run out and the rows are tried again: at least once.
            tracing::warn!(error = %Chain(&e), rows = batch.len(), "could not record event deliveries");
        }
        {
            let mut posting = posting.lock().expect("not poisoned");
            for (seq, _) in &batch {
                posting.remove(seq);
            }
        }
        batch.clear();
        results.clear();
        wake.notify_one();
    }
}

/// One try of one row: what it came to (recorded by [`record_loop`]).
async fn deliver(shared: &Shared, row: StoredEvent) -> Option<DeliveryResult> {
    let Some(endpoint) = shared.endpoints.get(&row.event.endpoint) else {
        // Not an endpoint of this configuration (leased by name, so never here): the lease
        // runs out and nothing is recorded.
        return None;
    };
    let label = endpoint.name.clone();
    let sent_at = shared.clock.now();
    let timestamp = sent_at.as_millis().div_euclid(1000);
    let signature = sign(
        &endpoint.secrets,
        &row.event.id,
        timestamp,
        &row.event.payload,
    );
    let answer = shared
        .http
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", &row.event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(row.event.payload.clone())
        .send()
        .await;
    let failure = match answer {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Some("timed out".to_owned()),
        Err(e) if e.is_connect() => Some("could not connect".to_owned()),
        Err(_) => Some("request failed".to_owned()),
    };
    let now = shared.clock.now();
    let tries = row.tries + 1;
    Some(match failure {
        None => {
            metrics::counter!("verifyd_events_delivered_total", "endpoint" => label.clone())
                .increment(1);
            metrics::histogram!("verifyd_events_delivery_latency_seconds", "endpoint" => label.clone())
                .record(now.since(row.event.created).as_secs_f64());
            DeliveryResult::Delivered { at: now }
        }
        Some(error) => {
            metrics::counter!("verifyd_events_failed_total", "endpoint" => label.clone())
                .increment(1);
            match shared.schedule.get((tries as usize).saturating_sub(1)) {
                Some(wait) => {
                    tracing::info!(id = %row.event.id, endpoint = %label, tries, %error, "event not delivered; will retry");
                    DeliveryResult::Retry {
                        at: now.plus(*wait),
                        error,
                    }
                }
                None => {
                    metrics::counter!("verifyd_events_dead_total", "endpoint" => label.clone())
                        .increment(1);
                    tracing::warn!(id = %row.event.id, endpoint = %label, tries, %error, "event not delivered after its last try: dead (verifyd events replay sends it again)");
                    DeliveryResult::Dead { error }
                }
            }
        }
    })
}

async fn sweep_loop(shared: Arc<Shared>, emitter: Arc<Emitter>, keys: Arc<Keys>, life: Lifecycle) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = sweep(&shared, &emitter, &keys, life).await {
            tracing::warn!(error = %Chain(&e), "the expiry sweep failed; will retry");
        }
        if ticks.is_multiple_of(5) {
            match shared.store.count_pending_events().await {
                Ok(n) => metrics::gauge!("verifyd_events_pending").set(n as f64),
                Err(e) => tracing::debug!(error = %Chain(&e), "could not count pending events"),
            }
        }
        ticks += 1;
    }
}

/// One sweep: the expiries since the watermark, written with the watermark's move.
async fn sweep(
    shared: &Shared,
    emitter: &Emitter,
    keys: &Keys,
    life: Lifecycle,
) -> Result<(), crate::store::StoreError> {
    let now = shared.clock.now();
    let from = shared.store.sweep_watermark(now).await?;
    if now <= from {
        return Ok(());
    }
    let mut found = shared
        .store
        .expired_between(from, now, life.max_checks, SWEEP_BATCH)
        .await?;
    let mut to = now;
    if found.len() == SWEEP_BATCH as usize
        && let Some(last) = found.last().map(|v| v.expires_at)
    {
        // More may wait: stop before the last instant (its rows come whole next time), unless
        // every row shares it.
        let before: Vec<_> = found
            .iter()
            .filter(|v| v.expires_at < last)
            .cloned()
            .collect();
        if before.is_empty() {
            to = last;
        } else {
            found = before;
            to = last.minus(Duration::from_millis(1));
        }
    }
    let mut rows = Vec::new();
    if emitter.wants(EventType::VerificationExpired) {
        for v in &found {
            let Some(view) = expired_view(keys, v) else {
                tracing::warn!(sid = %v.sid, "an expired verification is unreadable; no event");
                continue;
            };
            rows.extend(emitter.verification(
                EventType::VerificationExpired,
                &view,
                v.service_sid.as_deref(),
                now,
            ));
        }
    }
    let wrote = !rows.is_empty();
    if shared.store.advance_sweep(from, to, rows).await? && wrote {
        emitter.written();
    }
    Ok(())
}

/// The public view of an expired verification (its number opened, never its code).
fn expired_view(keys: &Keys, v: &crate::store::ExpiredVerification) -> Option<Verification> {
    let plain = keys.open(&v.phone_sealed, PHONE_CONTEXT).ok()?;
    let to = Recipient::parse_stored(std::str::from_utf8(&plain).ok()?)?;
    Some(Verification {
        sid: VerificationSid::parse(&v.sid)?,
        to,
        channel: v.channel.parse::<Channel>().ok()?,
        status: VerificationStatus::Expired,
        send_attempts: v.send_attempts.clone(),
        created: v.created,
        updated: v.expires_at,
        message: None,
        vendor: None,
    })
}

async fn purge_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        let before: Timestamp = shared.clock.now().minus(shared.retention);
        match shared.store.purge_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "purged old events"),
            Err(e) => tracing::warn!(error = %Chain(&e), "event purge failed; will retry"),
        }
    }
}
