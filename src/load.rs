//! How busy the request path is, counted by the HTTP layer around every request (in
//! `http::log_request`) and read by background work that should yield to it: the events
//! dispatcher paces its deliveries while the server is saturated, so that the CPU goes to the
//! requests and the events wait, durably, in the outbox.
//!
//! The measure is the time with at least one request in flight, summed: its growth over a window
//! is the share of that window the server was busy (1.0 when clients queue for it; a server
//! within its capacity is idle most of the time, even at hundreds of requests a second). Two
//! relaxed atomics per request and a clock read per busy period; a request that starts exactly
//! as the last one ends may be counted a few microseconds off, which a share over 100 ms of
//! time does not notice.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests in flight, and the time there were any.
#[derive(Debug)]
pub struct RequestLoad {
    in_flight: AtomicUsize,
    /// Busy periods that ended, summed (µs).
    busy_us: AtomicU64,
    /// When the current busy period began (µs since `base`; meaningful while one is in flight).
    busy_since_us: AtomicU64,
    base: Instant,
}

impl Default for RequestLoad {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            busy_us: AtomicU64::new(0),
            busy_since_us: AtomicU64::new(0),
            base: Instant::now(),
        }
    }
}

impl RequestLoad {
    /// Counts a request in flight until the returned guard is dropped.
    pub fn enter(&self) -> InFlight<'_> {
        self.enter_at(self.now_us());
        InFlight(self)
    }

    fn enter_at(&self, now_us: u64) {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            self.busy_since_us.store(now_us, Ordering::Relaxed);
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The time so far with at least one request in flight.
    pub fn busy_time(&self) -> Duration {
        self.busy_time_at(self.now_us())
    }

    fn busy_time_at(&self, now_us: u64) -> Duration {
        let mut us = self.busy_us.load(Ordering::Relaxed);
        if self.in_flight() > 0 {
            us += now_us.saturating_sub(self.busy_since_us.load(Ordering::Relaxed));
        }
        Duration::from_micros(us)
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn left_at(&self, now_us: u64) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            let busy = now_us.saturating_sub(self.busy_since_us.load(Ordering::Relaxed));
            self.busy_us.fetch_add(busy, Ordering::Relaxed);
        }
    }
}

/// One request in flight (see [`RequestLoad::enter`]).
#[must_use = "the request counts only while the guard lives"]
pub struct InFlight<'a>(&'a RequestLoad);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.left_at(self.0.now_us());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_while_its_guard_lives() {
        let load = RequestLoad::default();
        let first = load.enter();
        {
            let _second = load.enter();
            assert_eq!(load.in_flight(), 2);
        }
        assert_eq!(load.in_flight(), 1);
        drop(first);
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn busy_time_grows_only_while_a_request_is_in_flight() {
        let load = RequestLoad::default();
        let ms = |n: u64| n * 1000;
        assert_eq!(load.busy_time_at(ms(5)), Duration::ZERO, "nothing yet");
        load.enter_at(ms(10));
        load.enter_at(ms(11));
        assert_eq!(load.busy_time_at(ms(12)), Duration::from_millis(2));
        load.left_at(ms(13));
        load.left_at(ms(14));
        // Busy from 10 to 14; idle after.
        assert_eq!(load.busy_time_at(ms(20)), Duration::from_millis(4));
        load.enter_at(ms(30));
        assert_eq!(load.busy_time_at(ms(31)), Duration::from_millis(5));
    }
}
