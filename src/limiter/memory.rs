//! The embedded limiter: bucket state in this process's memory (one node only; several replicas
//! would each count separately, which `verifyd config` warns about).
//!
//! Memory is bounded. Each bucket key is reduced to a 64-bit SipHash under a per-process random
//! key (so clients cannot aim collisions), and an entry is 16 bytes, so a million tracked keys
//! take about 40 MB. The map is allocated for the cap up front (pages are touched only as keys
//! arrive) and never grows past it. When it is full, every key at full allowance is dropped
//! (forgetting such a key changes no decision). A key that is part-used is never dropped, since
//! forgetting it would hand back requests its limit still withholds (a failed-check or daily
//! send counter, say); if no key is at full allowance, the request that needs a new key is
//! refused (fail closed: 503) and `verifyd_limiter_full_total` counts it.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;

use async_trait::async_trait;

use super::gcra::{self, Step};
use super::{Decision, Limiter, LimiterError};
use crate::domain::Timestamp;
use crate::policy::BucketRequest;

/// One tracked bucket: its GCRA TAT.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Theoretical arrival time, µs since the epoch; at or before now, the bucket is full.
    tat_us: i64,
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

    /// The bucket's slot: a keyed hash of the parts of its storage key, hashed in place (the
    /// same bucket always lands on the same slot, without formatting the key as text).
    fn key(&self, bucket: &BucketRequest) -> u64 {
        self.hasher.hash_one((
            bucket.scope.as_str(),
            bucket.name.as_str(),
            bucket.interval.as_secs(),
            bucket.key.as_str(),
        ))
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
                Step::Allow { new_tat } => updates.push(Entry { tat_us: new_tat }),
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
        // Only keys at full allowance: their absence decides exactly as their presence.
        map.retain(|_, e| e.tat_us > now_us);
        if map.len() + incoming > self.cap {
            metrics::counter!("verifyd_limiter_full_total").increment(1);
            return Err(LimiterError::new(
                "the in-memory limiter is full of keys whose limits are in effect; refusing new \
                 clients (raise VERIFYD_LIMITER_MAX_KEYS)",
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
            .map_err(|_| LimiterError::new("memory limiter lock poisoned"))?;
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

    async fn refund(&self, buckets: &[BucketRequest], now: Timestamp) -> Result<(), LimiterError> {
        let now_us = now.as_millis().saturating_mul(1000);
        let keys: Vec<u64> = buckets.iter().map(|b| self.key(b)).collect();
        let mut map = self
            .map
            .lock()
            .map_err(|_| LimiterError::new("memory limiter lock poisoned"))?;
        for (bucket, key) in buckets.iter().zip(keys) {
            let Some(entry) = map.get_mut(&key) else {
                continue;
            };
            match gcra::refund(entry.tat_us, now_us, bucket.max, bucket.interval) {
                Some(tat) => entry.tat_us = tat,
                None => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
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
    async fn the_cap_holds_and_part_used_keys_are_never_evicted() {
        let limiter = MemoryLimiter::new(100);
        let now = Timestamp::from_millis(10_000_000);
        // 50 part-used failure counters (5 per minute, 3 used): not limited, not forgettable.
        let counters: Vec<BucketRequest> = (0..50)
            .map(|i| bucket(BucketName::Phone, &format!("failures{i}"), 5))
            .collect();
        for b in &counters {
            for _ in 0..3 {
                assert_eq!(
                    limiter.acquire(std::slice::from_ref(b), now).await.unwrap(),
                    Decision::Allowed
                );
            }
        }
        // 50 more part-used keys fill the cap: the next new key is refused, not let through.
        for i in 0..50 {
            let b = bucket(BucketName::Ip, &format!("client{i}"), 4);
            limiter.acquire(&[b], now).await.unwrap();
        }
        assert_eq!(limiter.tracked_keys(), 100);
        assert!(
            limiter
                .acquire(&[bucket(BucketName::Ip, "newcomer", 4)], now)
                .await
                .is_err()
        );
        // Every counter still remembers its 3 uses: 2 more, then limited.
        for b in &counters {
            for _ in 0..2 {
                assert_eq!(
                    limiter.acquire(std::slice::from_ref(b), now).await.unwrap(),
                    Decision::Allowed
                );
            }
            assert!(
                matches!(
                    limiter.acquire(std::slice::from_ref(b), now).await.unwrap(),
                    Decision::Limited { .. }
                ),
                "a part-used key was forgotten"
            );
        }
        // Once the clients' buckets are full again (15 s for one request of 4/min) they make
        // room, and 10 000 more clients pass through without the cap growing.
        let later = now.plus(Duration::from_secs(16));
        for i in 0..10_000 {
            let at = later.plus(Duration::from_secs(16 * (i / 40)));
            let b = bucket(BucketName::Ip, &format!("roomy{i}"), 4);
            limiter.acquire(&[b], at).await.unwrap();
            assert!(limiter.tracked_keys() <= 100);
        }
    }

    #[tokio::test]
    async fn a_refund_gives_back_a_reservation() {
        let limiter = MemoryLimiter::new(100);
        let now = Timestamp::from_millis(0);
        let one = [bucket(BucketName::Phone, "p", 1)];
        assert_eq!(limiter.acquire(&one, now).await.unwrap(), Decision::Allowed);
        limiter.refund(&one, now).await.unwrap();
        assert_eq!(limiter.tracked_keys(), 0);
        assert_eq!(limiter.acquire(&one, now).await.unwrap(), Decision::Allowed);
        assert!(matches!(
            limiter.acquire(&one, now).await.unwrap(),
            Decision::Limited { .. }
        ));
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
