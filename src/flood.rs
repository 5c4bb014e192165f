//! Counting what a flood repeats (issue 24). [`FloodTally`] lets the first [`FloodTally::per_key`]
//! events of each key through in every window and only counts the rest; when a window ends it
//! hands back, per key, how many there were in all, so the caller can write one summary instead
//! of thousands of copies. The HTTP request log ([`crate::http::refusals`]) and the attempt
//! log's refusal rows ([`crate::attempt_log`]) are both summarised this way.
//!
//! Keys are a client (a rate-limit client key) and a small `Copy` label (an outcome, or a
//! reason and a bucket). At most `max_clients` distinct clients are tallied per window; past
//! that, a flood that rotates addresses is tallied per label under the client [`OTHER`].
//! Windows follow the application's [`Clock`], so tests move them without sleeping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::Timestamp;

/// The client that refusals past the client cap are tallied under.
pub const OTHER: &str = "other";

/// How many times one (client, label) happened in a window that has ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary<L> {
    pub client: String,
    pub label: L,
    /// Every occurrence in the window, the ones let through included.
    pub total: u64,
    /// The window's start and length.
    pub started: Timestamp,
    pub length: Duration,
}

/// One window's counts.
struct Window<L> {
    started: Timestamp,
    clients: HashMap<Box<str>, Vec<(L, u64)>>,
    others: Vec<(L, u64)>,
}

impl<L: Copy + PartialEq> Window<L> {
    fn new(started: Timestamp) -> Self {
        Self {
            started,
            clients: HashMap::new(),
            others: Vec::new(),
        }
    }

    /// Counts one occurrence; how many of this (client, label) the window has seen.
    fn count(&mut self, client: &str, label: L, max_clients: usize) -> u64 {
        let tallies = if self.clients.contains_key(client) {
            self.clients.get_mut(client).expect("present")
        } else if self.clients.len() < max_clients {
            self.clients.entry(client.into()).or_default()
        } else {
            &mut self.others
        };
        match tallies.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                tallies.push((label, 1));
                1
            }
        }
    }

    /// The (client, label) pairs seen more than `per_key` times.
    fn summaries(self, per_key: u64, ended: Timestamp) -> Vec<Summary<L>> {
        let length = ended.since(self.started);
        let started = self.started;
        let others = self.others.into_iter().map(|t| (OTHER.to_owned(), t));
        self.clients
            .into_iter()
            .flat_map(|(c, ts)| {
                let c = String::from(c);
                ts.into_iter().map(move |t| (c.clone(), t))
            })
            .chain(others)
            .filter(|(_, (_, n))| *n > per_key)
            .map(|(client, (label, total))| Summary {
                client,
                label,
                total,
                started,
                length,
            })
            .collect()
    }
}

/// Counts occurrences per (client, label) in windows of `window`, letting `per_key` of each
/// through per window.
pub struct FloodTally<L> {
    current: Mutex<Window<L>>,
    clock: Arc<dyn Clock>,
    per_key: u64,
    window: Duration,
    max_clients: usize,
}

impl<L: Copy + PartialEq> FloodTally<L> {
    pub fn new(clock: Arc<dyn Clock>, per_key: u64, window: Duration, max_clients: usize) -> Self {
        let now = clock.now();
        Self {
            current: Mutex::new(Window::new(now)),
            clock,
            per_key,
            window,
            max_clients,
        }
    }

    /// How many of each (client, label) are let through per window.
    pub fn per_key(&self) -> u64 {
        self.per_key
    }

    /// Counts one occurrence: whether it is let through (among the first `per_key` of its
    /// client and label in this window), and the summaries of a window that just ended.
    pub fn admit(&self, client: &str, label: L) -> (bool, Vec<Summary<L>>) {
        let now = self.clock.now();
        let Ok(mut w) = self.current.lock() else {
            return (true, Vec::new());
        };
        let ended = (now >= w.started.plus(self.window))
            .then(|| std::mem::replace(&mut *w, Window::new(now)));
        let n = w.count(client, label, self.max_clients);
        drop(w);
        let summaries = ended.map_or_else(Vec::new, |e| e.summaries(self.per_key, now));
        (n <= self.per_key, summaries)
    }

    /// Ends the current window if it is due (or at once, with `force`: on shutdown) and
    /// returns its summaries.
    pub fn flush(&self, force: bool) -> Vec<Summary<L>> {
        let now = self.clock.now();
        let Ok(mut w) = self.current.lock() else {
            return Vec::new();
        };
        let due = now >= w.started.plus(self.window);
        let ended = (force || due).then(|| std::mem::replace(&mut *w, Window::new(now)));
        drop(w);
        ended.map_or_else(Vec::new, |e| e.summaries(self.per_key, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const WINDOW: Duration = Duration::from_secs(10);

    fn tally(max_clients: usize) -> (Arc<ManualClock>, FloodTally<&'static str>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
        let tally = FloodTally::new(clock.clone(), 10, WINDOW, max_clients);
        (clock, tally)
    }

    #[test]
    fn the_first_of_each_client_and_label_pass_then_they_are_counted() {
        let (clock, t) = tally(100);
        let passed = (0..25)
            .filter(|_| t.admit("203.0.113.7", "rate_limited").0)
            .count();
        assert_eq!(passed, 10);
        // Another label, another client: their own allowance.
        assert!(t.admit("203.0.113.7", "unauthorized").0);
        assert!(t.admit("198.51.100.1", "rate_limited").0);
        clock.advance(WINDOW);
        let (passed, summaries) = t.admit("203.0.113.7", "rate_limited");
        assert!(passed, "a fresh window");
        assert_eq!(
            summaries,
            vec![Summary {
                client: "203.0.113.7".to_owned(),
                label: "rate_limited",
                total: 25,
                started: Timestamp::from_millis(1_000_000),
                length: WINDOW,
            }],
            "only what went past the allowance is summarised"
        );
    }

    #[test]
    fn past_the_client_cap_occurrences_count_under_other() {
        let (_, t) = tally(3);
        for c in ["a", "b", "c"] {
            t.admit(c, "x");
        }
        for _ in 0..10 {
            assert!(t.admit("d", "x").0);
        }
        assert!(!t.admit("e", "x").0, "d and e share the `other` allowance");
        assert!(t.admit("a", "x").0, "a known client keeps its own");
        let summaries = t.flush(true);
        assert_eq!(summaries.len(), 1);
        assert_eq!(
            (summaries[0].client.as_str(), summaries[0].total),
            (OTHER, 11)
        );
    }

    #[test]
    fn flush_ends_a_window_only_when_due_or_forced() {
        let (clock, t) = tally(100);
        for _ in 0..11 {
            t.admit("a", "x");
        }
        assert!(t.flush(false).is_empty(), "not due yet");
        assert_eq!(t.flush(true).len(), 1);
        assert!(t.flush(true).is_empty(), "the new window is empty");
        for _ in 0..11 {
            t.admit("a", "x");
        }
        clock.advance(WINDOW);
        assert_eq!(t.flush(false)[0].total, 11);
    }
}
