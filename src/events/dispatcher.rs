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
//! Deliveries yield to the requests. They run on a thread of their own at the lowest CPU
//! priority (see [`Yielding`]), and while the request path is saturated (busy for [`SATURATED`]
//! of the last [`LOAD_WINDOW`]) the dispatcher leases at most [`SATURATED_BATCH`] rows per
//! [`SATURATED_PACE`]: the events wait, durably, in the outbox, and go at full speed again as
//! soon as the load falls.
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

use super::yielding::Yielding;
use super::{Emitter, EventType, sign};
use crate::clock::Clock;
use crate::config::{EventEndpoint, EventSettings};
use crate::crypto::Keys;
use crate::domain::{
    Channel, Lifecycle, Recipient, Timestamp, Verification, VerificationSid, VerificationStatus,
};
use crate::error::Chain;
use crate::load::RequestLoad;
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
/// The request path counts as saturated once it was busy (a request in flight) for this share of
/// the last [`LOAD_WINDOW`] ...
const SATURATED: f64 = 0.95;
/// ... and has room again under this share (apart, so that the pace does not flap).
const UNSATURATED: f64 = 0.80;
/// How often the share is taken.
const LOAD_WINDOW: Duration = Duration::from_millis(100);
/// While saturated: at most this many rows per lease ...
const SATURATED_BATCH: usize = 16;
/// ... and one lease per this long: at most 64 deliveries a second, a small share of what the
/// CPU gives the requests (a delivery costs about what a send does).
const SATURATED_PACE: Duration = Duration::from_millis(250);
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
    /// The low-priority runtime the deliveries run on (None: it could not be started, and they
    /// run on the main runtime).
    deliveries: Option<Yielding>,
    /// The runtime the store calls run on (the server's own).
    main: tokio::runtime::Handle,
    /// Requests in flight on this replica.
    load: Arc<RequestLoad>,
}

impl Shared {
    /// Runs a store call on the server's runtime, so that a pooled database connection is only
    /// ever bound to its reactor, and waits for it here; `None` if that runtime is shutting
    /// down.
    async fn on_main<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.main.spawn(call).await.ok()
    }
}

/// Starts the dispatcher, the sweeper and the purge; the handles are aborted on shutdown.
pub fn start(
    store: Arc<dyn EventStore>,
    settings: &EventSettings,
    emitter: Arc<Emitter>,
    keys: Arc<Keys>,
    life: Lifecycle,
    clock: Arc<dyn Clock>,
    load: Arc<RequestLoad>,
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
        deliveries: Yielding::start("verifyd-events")
            .inspect_err(|e| {
                tracing::warn!(error = %e, "could not start the event deliveries' low-priority thread; they run with the requests");
            })
            .ok(),
        main: tokio::runtime::Handle::current(),
        load,
    });
    let wake = emitter.wake_handle();
    // The whole delivery side (leases, posts, results) runs on the low-priority thread: under
    // saturation it asks the store for rows only as often as that thread gets the CPU.
    let deliveries = match &shared.deliveries {
        Some(y) => y.handle().spawn(deliver_loop(Arc::clone(&shared), wake)),
        None => tokio::spawn(deliver_loop(Arc::clone(&shared), wake)),
    };
    vec![
        deliveries,
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
    let mut last_lease: Option<std::time::Instant> = None;
    let mut saturation = Saturation::default();
    loop {
        while running.try_join_next().is_some() {}
        let since = last_lease.map(|at| at.elapsed());
        let was = saturation.saturated;
        let saturated = saturation.update(std::time::Instant::now(), shared.load.busy_time());
        if saturated != was {
            metrics::gauge!("verifyd_events_paced").set(if saturated { 1.0 } else { 0.0 });
            if saturated {
                tracing::info!(
                    "events: the server is saturated; deliveries paced until it has room"
                );
            } else {
                tracing::info!("events: deliveries at full speed again");
            }
        }
        let room = match lease_room(running.len(), saturated, since) {
            Room::Lease(room) => room,
            Room::WaitForDeliveries => {
                let _ = running.join_next().await;
                continue;
            }
            Room::Paced(wait) => {
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        last_lease = Some(std::time::Instant::now());
        let now = shared.clock.now();
        let lease_until = now.plus(shared.timeout + LEASE_MARGIN);
        let full = last_full.is_none_or(|at| at.elapsed() >= POLL);
        let after = if full { 0 } else { cursor };
        if full {
            last_full = Some(std::time::Instant::now());
        }
        let lease = {
            let shared = Arc::clone(&shared);
            async move {
                shared
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
            }
        };
        let leased = match shared.on_main(lease).await.unwrap_or_else(|| {
            Err(crate::store::StoreError::unavailable(
                "the server is shutting down",
            ))
        }) {
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

/// What the dispatcher may lease now.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// Up to this many rows.
    Lease(usize),
    /// Nothing until a delivery in flight finishes.
    WaitForDeliveries,
    /// Nothing for this long: the request path is saturated and the last lease was recent.
    Paced(Duration),
}

/// Whether the request path is saturated, from the busy time's growth over each window.
#[derive(Debug, Default)]
struct Saturation {
    /// The start of the current window and the busy time then.
    window: Option<(std::time::Instant, Duration)>,
    saturated: bool,
}

impl Saturation {
    /// Takes the busy time at `now`: once a window has passed, its busy share decides (with
    /// [`SATURATED`] to enter and [`UNSATURATED`] to leave); within one, the last answer holds.
    fn update(&mut self, now: std::time::Instant, busy: Duration) -> bool {
        match self.window {
            Some((start, busy_then)) => {
                let span = now.saturating_duration_since(start);
                if span >= LOAD_WINDOW {
                    let share = busy.saturating_sub(busy_then).as_secs_f64() / span.as_secs_f64();
                    self.saturated = if self.saturated {
                        share >= UNSATURATED
                    } else {
                        share >= SATURATED
                    };
                    self.window = Some((now, busy));
                }
            }
            None => self.window = Some((now, busy)),
        }
        self.saturated
    }
}

/// How many rows to lease with `posting` deliveries in flight, the request path `saturated` or
/// not and `since` the last lease: in batches (at least half of [`IN_FLIGHT`] free), and while
/// the request path is saturated at most [`SATURATED_BATCH`] per [`SATURATED_PACE`], so that the
/// CPU goes to the requests.
fn lease_room(posting: usize, saturated: bool, since: Option<Duration>) -> Room {
    let room = IN_FLIGHT.saturating_sub(posting);
    if room < IN_FLIGHT / 2 {
        return Room::WaitForDeliveries;
    }
    if !saturated {
        return Room::Lease(room);
    }
    match since {
        Some(since) if since < SATURATED_PACE => Room::Paced(SATURATED_PACE - since),
        _ => Room::Lease(room.min(SATURATED_BATCH)),
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
    let mut results: Vec<(i64, DeliveryResult)> = Vec::with_capacity(RECORD_BATCH);
    while recorded.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        results.extend(
            batch
                .iter()
                .filter_map(|(seq, r)| r.as_ref().map(|r| (*seq, r.clone()))),
        );
        let finish = {
            let shared = Arc::clone(&shared);
            let results = std::mem::take(&mut results);
            async move { shared.store.finish_events(&shared.owner, &results).await }
        };
        if let Some(Err(e)) = shared.on_main(finish).await {
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
    let signature = sign(&endpoint.secrets, &row.id, timestamp, &row.event.payload);
    let answer = shared
        .http
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", &row.id)
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
                    tracing::info!(id = %row.id, endpoint = %label, tries, %error, "event not delivered; will retry");
                    DeliveryResult::Retry {
                        at: now.plus(*wait),
                        error,
                    }
                }
                None => {
                    metrics::counter!("verifyd_events_dead_total", "endpoint" => label.clone())
                        .increment(1);
                    tracing::warn!(id = %row.id, endpoint = %label, tries, %error, "event not delivered after its last try: dead (verifyd events replay sends it again)");
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn leases_in_batches_when_half_the_room_is_free() {
        assert_eq!(lease_room(0, false, None), Room::Lease(IN_FLIGHT));
        assert_eq!(
            lease_room(IN_FLIGHT / 2, false, None),
            Room::Lease(IN_FLIGHT / 2)
        );
        assert_eq!(
            lease_room(IN_FLIGHT / 2 + 1, false, None),
            Room::WaitForDeliveries
        );
    }

    #[test]
    fn a_saturated_server_gets_small_leases_at_a_pace() {
        let just_now = Some(Duration::from_millis(10));
        // Not saturated: no pacing, however recent the last lease.
        assert_eq!(lease_room(0, false, just_now), Room::Lease(IN_FLIGHT));
        // Saturated: a paced wait for the rest of the period, then a small batch.
        assert_eq!(
            lease_room(0, true, just_now),
            Room::Paced(SATURATED_PACE - Duration::from_millis(10))
        );
        assert_eq!(
            lease_room(0, true, Some(SATURATED_PACE)),
            Room::Lease(SATURATED_BATCH)
        );
        assert_eq!(lease_room(0, true, None), Room::Lease(SATURATED_BATCH));
        // Deliveries still in flight come first.
        assert_eq!(lease_room(IN_FLIGHT, true, None), Room::WaitForDeliveries);
    }

    #[test]
    fn saturation_is_the_busy_share_of_a_window_with_hysteresis() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let busy = Duration::from_millis;
        let mut s = Saturation::default();
        assert!(!s.update(at(0), busy(0)), "no window yet");
        // Busy 50 % of a window: not saturated; 96 %: saturated.
        assert!(!s.update(at(100), busy(50)));
        assert!(s.update(at(200), busy(146)));
        // Within a window the answer holds.
        assert!(s.update(at(250), busy(146)));
        // 85 % keeps it saturated (above the 80 % to leave); 70 % ends it.
        assert!(s.update(at(300), busy(231)));
        assert!(!s.update(at(400), busy(301)));
        // And 90 % is not enough to enter again.
        assert!(!s.update(at(500), busy(391)));
    }
}
