//! Refused requests in the log, summarised under a flood (issue 24). A refusal (any 4xx answer)
//! is logged line by line as long as its client has had fewer than [`LOGGED_PER_KEY`] refusals
//! with the same outcome in the current window ([`WINDOW`]); beyond that it is only counted, and
//! when the window ends one line per (outcome, client) says how many were refused in all and
//! how many of them were not logged. So an operator still sees who was refused, why and how
//! often, and a flood of 429s costs a counter instead of a formatted line each.
//!
//! Clients are the rate-limit client keys (the address behind trusted proxies, an IPv6 /64).
//! At most [`MAX_CLIENTS`] distinct clients are tallied per window; a flood that rotates more
//! addresses than that is tallied per outcome under the client `other`. Windows follow the
//! application's clock; the last one is reported by [`RefusalLog::flush`] (every
//! [`WINDOW`] in the background, and on shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::Timestamp;

/// Refusals of one (outcome, client) logged line by line per window.
pub const LOGGED_PER_KEY: u64 = 10;
/// How long a window lasts.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Distinct clients tallied per window; the rest count under `other`.
pub const MAX_CLIENTS: usize = 10_000;

/// How often one outcome was refused to one client in a window.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    outcome: &'static str,
    refused: u64,
}

/// One window's counts.
#[derive(Debug)]
struct Window {
    started: Timestamp,
    clients: HashMap<Box<str>, Vec<Tally>>,
    others: Vec<Tally>,
}

impl Window {
    fn new(started: Timestamp) -> Self {
        Self {
            started,
            clients: HashMap::new(),
            others: Vec::new(),
        }
    }

    /// Counts one refusal; the count of this (outcome, client) so far in the window.
    fn count(&mut self, outcome: &'static str, client: &str) -> u64 {
        let tallies = if self.clients.contains_key(client) || self.clients.len() < MAX_CLIENTS {
            self.clients.entry_ref(client)
        } else {
            &mut self.others
        };
        match tallies.iter_mut().find(|t| t.outcome == outcome) {
            Some(t) => {
                t.refused += 1;
                t.refused
            }
            None => {
                tallies.push(Tally {
                    outcome,
                    refused: 1,
                });
                1
            }
        }
    }

    /// Logs one line per (outcome, client) that was refused more often than logged.
    fn report(self, ended: Timestamp) {
        let seconds = ended.since(self.started).as_secs();
        let others = self.others.into_iter().map(|t| ("other", t));
        let clients = self
            .clients
            .iter()
            .flat_map(|(c, ts)| ts.iter().map(move |t| (&**c, *t)));
        for (client, tally) in clients.chain(others) {
            if tally.refused > LOGGED_PER_KEY {
                tracing::info!(
                    outcome = tally.outcome,
                    client,
                    refused = tally.refused,
                    not_logged = tally.refused - LOGGED_PER_KEY,
                    window_secs = seconds,
                    "refusals summarised: {} {} refusals to {client} in {seconds} s, {} of them not logged line by line",
                    tally.refused,
                    tally.outcome,
                    tally.refused - LOGGED_PER_KEY,
                );
            }
        }
    }
}

/// A `HashMap<Box<str>, V>` entry looked up by `&str`, allocating the key only when new.
trait EntryRef<V> {
    fn entry_ref(&mut self, key: &str) -> &mut V;
}

impl<V: Default> EntryRef<V> for HashMap<Box<str>, V> {
    fn entry_ref(&mut self, key: &str) -> &mut V {
        if !self.contains_key(key) {
            self.insert(key.into(), V::default());
        }
        self.get_mut(key).expect("present: inserted above")
    }
}

/// The refusal tallies of this process.
pub struct RefusalLog {
    window: Mutex<Window>,
    clock: Arc<dyn Clock>,
}

impl RefusalLog {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        Self {
            window: Mutex::new(Window::new(now)),
            clock,
        }
    }

    /// Counts a refusal of `outcome` to `client`; true when it is to be logged line by line.
    /// A window that has ended is reported first.
    pub fn admit(&self, outcome: &'static str, client: &str) -> bool {
        let now = self.clock.now();
        let (ended, count) = {
            let Ok(mut w) = self.window.lock() else {
                return true;
            };
            let ended = (now >= w.started.plus(WINDOW))
                .then(|| std::mem::replace(&mut *w, Window::new(now)));
            (ended, w.count(outcome, client))
        };
        if let Some(ended) = ended {
            ended.report(now);
        }
        count <= LOGGED_PER_KEY
    }

    /// Reports the current window if it has ended (or now, with `force`: on shutdown).
    pub fn flush(&self, force: bool) {
        let now = self.clock.now();
        let ended = {
            let Ok(mut w) = self.window.lock() else {
                return;
            };
            let due = now >= w.started.plus(WINDOW);
            (force || due).then(|| std::mem::replace(&mut *w, Window::new(now)))
        };
        if let Some(ended) = ended {
            ended.report(now);
        }
    }

    /// Reports each window as it ends, until the task is aborted.
    pub async fn report_every_window(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            self.flush(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn log() -> (Arc<ManualClock>, RefusalLog) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let log = RefusalLog::new(clock.clone());
        (clock, log)
    }

    #[test]
    fn the_first_refusals_of_each_client_and_outcome_are_logged_then_counted() {
        let (_, log) = log();
        let logged = (0..25)
            .filter(|_| log.admit("rate_limited", "203.0.113.7"))
            .count();
        assert_eq!(logged as u64, LOGGED_PER_KEY);
        // Another outcome, another client: their own allowance.
        assert!(log.admit("unauthorized", "203.0.113.7"));
        assert!(log.admit("rate_limited", "198.51.100.1"));
        let w = log.window.lock().unwrap();
        let tallies = &w.clients["203.0.113.7"];
        assert_eq!(tallies[0].refused, 25);
        assert_eq!(tallies[1].refused, 1);
    }

    #[test]
    fn a_new_window_logs_again() {
        let (clock, log) = log();
        for _ in 0..LOGGED_PER_KEY {
            assert!(log.admit("rate_limited", "a"));
        }
        assert!(!log.admit("rate_limited", "a"));
        clock.advance(WINDOW);
        assert!(log.admit("rate_limited", "a"), "a fresh window");
        assert_eq!(log.window.lock().unwrap().clients["a"][0].refused, 1);
    }

    #[test]
    fn past_the_client_cap_refusals_count_under_other() {
        let (_, log) = log();
        for i in 0..MAX_CLIENTS {
            log.admit("rate_limited", &i.to_string());
        }
        for _ in 0..LOGGED_PER_KEY {
            assert!(log.admit("rate_limited", "late"));
        }
        assert!(!log.admit("rate_limited", "later"));
        let w = log.window.lock().unwrap();
        assert_eq!(w.clients.len(), MAX_CLIENTS);
        assert_eq!(w.others[0].refused, LOGGED_PER_KEY + 1);
    }

    #[test]
    fn flush_starts_a_new_window_only_when_due_or_forced() {
        let (clock, log) = log();
        log.admit("rate_limited", "a");
        log.flush(false);
        assert_eq!(log.window.lock().unwrap().clients.len(), 1, "not due yet");
        log.flush(true);
        assert!(log.window.lock().unwrap().clients.is_empty());
        log.admit("rate_limited", "a");
        clock.advance(WINDOW);
        log.flush(false);
        assert!(log.window.lock().unwrap().clients.is_empty());
    }
}
