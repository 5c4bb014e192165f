//! The embedded limiter: bucket state in this process's memory (one node only; several replicas
//! would each count separately, which `verifyd config` warns about).
//!
//! Memory is bounded. Each bucket key is reduced to a 64-bit SipHash under a per-process random
//! key (so clients cannot aim collisions), and an entry is 16 bytes, so a million tracked keys
//! take about 50 MB. The map is allocated for the cap up front (pages are touched only as keys
//! arrive) and never grows past it. When it is full: first every key at full allowance is dropped
//! (forgetting such a key changes no decision); then, if that freed too little, the
//! least-recently-seen keys that could accept a request right now; a key that is limited right now
//! is never dropped. If only limited keys remain, new keys are refused (fail closed).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;

use async_trait::async_trait;

use super::gcra::{self, Step};
use super::{Decision, Limiter, LimiterError};
use crate::domain::Timestamp;
use crate::policy::BucketRequest;

/// One tracked bucket: its GCRA TAT, when it next accepts a request, and when it was last used.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Theoretical arrival time, µs since the epoch.
    tat_us: i64,
    /// The bucket accepts a request again at `tat_us - free_lag_ms * 1000`.
    free_lag_ms: u32,
    /// Last charge, in seconds since the epoch (truncated; enough to order evictions).
    seen_s: u32,
}

impl Entry {
    fn free_at_us(&self) -> i64 {
        self.tat_us - i64::from(self.free_lag_ms) * 1000
    }
}

/// The keys are already uniformly random 64-bit hashes: use them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map = HashMap<u64, Entry, BuildHasherDefault<Identity>>;

/// In-process GCRA buckets behind one mutex (held for a few hash lookups, never across an await).
pub struct MemoryLimiter {
    map: Mutex<Map>,
    hasher: RandomState,
    cap: usize,
}

impl MemoryLimiter {
    /// A limiter that tracks at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(16);
        Self {
            map: Mutex::new(Map::with_capacity_and_hasher(
                cap,
                BuildHasherDefault::default(),
            )),
            hasher: RandomState::new(),
            cap,
        }
    }

    /// How many bucket keys are tracked (for tests and benchmarks).
    pub fn tracked_keys(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    fn key(&self, bucket: &BucketRequest) -> u64 {
        self.hasher.hash_one(bucket.storage_key())
    }

    /// Tries every bucket; returns the decision and, when allowed, the entries to store.
    fn decide(
        map: &Map,
        keys: &[u64],
        buckets: &[BucketRequest],
        now_us: i64,
    ) -> (Decision, Vec<Entry>) {
        let mut updates = Vec::with_capacity(buckets.len());
        let mut refused: Option<Decision> = None;
        for (bucket, key) in buckets.iter().zip(keys) {
            let tat = map.get(key).map(|e| e.tat_us);
            match gcra::step(tat, now_us, bucket.max, bucket.interval) {
                Step::Allow { new_tat } => {
                    let lag = gcra::free_lag(bucket.max, bucket.interval);
                    updates.push(Entry {
                        tat_us: new_tat,
                        free_lag_ms: u32::try_from(lag.as_millis()).unwrap_or(u32::MAX),
                        seen_s: u32::try_from(now_us / 1_000_000).unwrap_or(u32::MAX),
                    });
                }
                Step::Deny { retry_after } => {
                    let longer = match refused {
                        Some(Decision::Limited { retry_after: r, .. }) => retry_after > r,
                        _ => true,
                    };
                    if longer {
                        refused = Some(Decision::Limited {
                            bucket: bucket.name,
                            retry_after,
                        });
                    }
                }
            }
        }
        (refused.unwrap_or(Decision::Allowed), updates)
    }

    /// Frees room for `incoming` new keys, as the module docs describe.
    fn make_room(&self, map: &mut Map, incoming: usize, now_us: i64) -> Result<(), LimiterError> {
        if map.len() + incoming <= self.cap {
            return Ok(());
        }
        map.retain(|_, e| e.tat_us > now_us);
        let target = self.cap - self.cap / 10;
        if map.len() + incoming > target {
            let mut seen: Vec<u32> = map
                .values()
                .filter(|e| e.free_at_us() <= now_us)
                .map(|e| e.seen_s)
                .collect();
            let excess = (map.len() + incoming)
                .saturating_sub(target)
                .min(seen.len());
            if excess > 0 {
                let (_, threshold, _) = seen.select_nth_unstable(excess - 1);
                let threshold = *threshold;
                let mut budget = excess;
                map.retain(|_, e| {
                    if budget > 0 && e.free_at_us() <= now_us && e.seen_s <= threshold {
                        budget -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        if map.len() + incoming > self.cap {
            return Err(LimiterError(
                "the in-memory limiter is full of limited keys; refusing new clients".to_owned(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn acquire(
        &self,
        buckets: &[BucketRequest],
        now: Timestamp,
    ) -> Result<Decision, LimiterError> {
        let now_us = now.as_millis().saturating_mul(1000);
        let keys: Vec<u64> = buckets.iter().map(|b| self.key(b)).collect();
        let mut map = self
            .map
            .lock()
            .map_err(|_| LimiterError("memory limiter lock poisoned".to_owned()))?;
        let (decision, updates) = Self::decide(&map, &keys, buckets, now_us);
        if decision != Decision::Allowed {
            return Ok(decision);
        }
        let incoming = keys.iter().filter(|k| !map.contains_key(k)).count();
        self.make_room(&mut map, incoming, now_us)?;
        for (key, entry) in keys.into_iter().zip(updates) {
            map.insert(key, entry);
        }
        Ok(Decision::Allowed)
    }

    async fn peek(
        &self,
        buckets: &[BucketRequest],
        now: Timestamp,
    ) -> Result<Decision, LimiterError> {
        let now_us = now.as_millis().saturating_mul(1000);
        let keys: Vec<u64> = buckets.iter().map(|b| self.key(b)).collect();
        let map = self
            .map
            .lock()
            .map_err(|_| LimiterError("memory limiter lock poisoned".to_owned()))?;
        Ok(Self::decide(&map, &keys, buckets, now_us).0)
    }

    async fn ping(&self) -> Result<(), LimiterError> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BucketConfig;
    use crate::policy::{BucketName, Scope};
    use std::time::Duration;

    fn bucket(name: BucketName, key: &str, max: u32) -> BucketRequest {
        BucketRequest::new(
            Scope::Send,
            name,
            key,
            BucketConfig {
                max,
                interval: Duration::from_secs(60),
            },
        )
    }

    #[tokio::test]
    async fn a_refused_request_charges_no_bucket() {
        let limiter = MemoryLimiter::new(1000);
        let now = Timestamp::from_millis(1_000_000);
        let roomy = bucket(BucketName::Ip, "a", 10);
        let tight = bucket(BucketName::Phone, "p", 1);
        let both = [roomy.clone(), tight];
        assert_eq!(
            limiter.acquire(&both, now).await.unwrap(),
            Decision::Allowed
        );
        let refused = limiter.acquire(&both, now).await.unwrap();
        assert!(matches!(
            refused,
            Decision::Limited {
                bucket: BucketName::Phone,
                ..
            }
        ));
        // `roomy` was charged once only: 9 more fit.
        for _ in 0..9 {
            assert_eq!(
                limiter
                    .acquire(std::slice::from_ref(&roomy), now)
                    .await
                    .unwrap(),
                Decision::Allowed
            );
        }
        assert!(matches!(
            limiter.acquire(&[roomy], now).await.unwrap(),
            Decision::Limited {
                bucket: BucketName::Ip,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn peek_charges_nothing() {
        let limiter = MemoryLimiter::new(1000);
        let now = Timestamp::from_millis(0);
        let one = [bucket(BucketName::Phone, "p", 1)];
        for _ in 0..3 {
            assert_eq!(limiter.peek(&one, now).await.unwrap(), Decision::Allowed);
        }
        assert_eq!(limiter.acquire(&one, now).await.unwrap(), Decision::Allowed);
        assert!(matches!(
            limiter.peek(&one, now).await.unwrap(),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[tokio::test]
    async fn the_cap_holds_and_limited_keys_are_never_evicted() {
        let limiter = MemoryLimiter::new(100);
        let now = Timestamp::from_millis(10_000_000);
        // 50 limited keys (max 1, used once) ...
        let limited: Vec<BucketRequest> = (0..50)
            .map(|i| bucket(BucketName::Ip, &format!("limited{i}"), 1))
            .collect();
        for b in &limited {
            assert_eq!(
                limiter.acquire(std::slice::from_ref(b), now).await.unwrap(),
                Decision::Allowed
            );
        }
        // ... then 10 000 other clients, each with room left after their request.
        for i in 0..10_000 {
            let b = bucket(BucketName::Ip, &format!("roomy{i}"), 4);
            assert_eq!(
                limiter.acquire(&[b], now).await.unwrap(),
                Decision::Allowed,
                "client {i}"
            );
            assert!(limiter.tracked_keys() <= 100);
        }
        for b in &limited {
            assert!(
                matches!(
                    limiter.acquire(std::slice::from_ref(b), now).await.unwrap(),
                    Decision::Limited { .. }
                ),
                "a limited key was forgotten"
            );
        }
    }

    #[tokio::test]
    async fn a_cap_full_of_limited_keys_refuses_new_clients() {
        let limiter = MemoryLimiter::new(16);
        let now = Timestamp::from_millis(0);
        for i in 0..16 {
            limiter
                .acquire(&[bucket(BucketName::Ip, &i.to_string(), 1)], now)
                .await
                .unwrap();
        }
        assert!(
            limiter
                .acquire(&[bucket(BucketName::Ip, "new", 1)], now)
                .await
                .is_err()
        );
        // Once they are at full allowance again, there is room.
        let later = now.plus(Duration::from_secs(61));
        assert_eq!(
            limiter
                .acquire(&[bucket(BucketName::Ip, "new", 1)], later)
                .await
                .unwrap(),
            Decision::Allowed
        );
    }
}
