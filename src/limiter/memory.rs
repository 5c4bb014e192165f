//! The embedded limiter: bucket state in this process's memory (one node only; several replicas
//! would each count separately). Keys at full allowance are dropped by a sweep, so memory tracks
//! only clients that are being limited or were seen within their interval.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::gcra::{self, Step};
use super::{Decision, Limiter, LimiterError};
use crate::domain::Timestamp;
use crate::policy::BucketRequest;

/// Sweep expired keys when the map grows past this many entries since the last sweep.
const SWEEP_EVERY: usize = 4096;

#[derive(Default)]
struct State {
    tats: HashMap<String, i64>,
    size_after_sweep: usize,
}

/// In-process GCRA buckets behind one mutex (held only for a few hash lookups, never across an
/// await).
#[derive(Default)]
pub struct MemoryLimiter {
    state: Mutex<State>,
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bucket keys are tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.state.lock().map_or(0, |s| s.tats.len())
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
        let keys: Vec<String> = buckets.iter().map(BucketRequest::storage_key).collect();
        let mut state = self
            .state
            .lock()
            .map_err(|_| LimiterError("memory limiter lock poisoned".to_owned()))?;
        let mut updates = Vec::with_capacity(buckets.len());
        let mut refused: Option<Decision> = None;
        for (bucket, key) in buckets.iter().zip(&keys) {
            match gcra::step(
                state.tats.get(key).copied(),
                now_us,
                bucket.max,
                bucket.interval,
            ) {
                Step::Allow { new_tat } => updates.push(new_tat),
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
        if let Some(decision) = refused {
            return Ok(decision);
        }
        for (key, tat) in keys.into_iter().zip(updates) {
            state.tats.insert(key, tat);
        }
        if state.tats.len() > state.size_after_sweep + SWEEP_EVERY {
            state.tats.retain(|_, tat| *tat > now_us);
            state.size_after_sweep = state.tats.len();
        }
        Ok(Decision::Allowed)
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
    use crate::policy::BucketName;
    use std::time::Duration;

    fn bucket(name: BucketName, key: &str, max: u32) -> BucketRequest {
        BucketRequest::new(
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
        let limiter = MemoryLimiter::new();
        let now = Timestamp::from_millis(1_000_000);
        let roomy = bucket(BucketName::Ip, "a", 10);
        let tight = bucket(BucketName::Phone, "p", 1);
        assert_eq!(
            limiter
                .acquire(&[roomy.clone(), tight.clone()], now)
                .await
                .unwrap(),
            Decision::Allowed
        );
        let refused = limiter.acquire(&[roomy.clone(), tight], now).await.unwrap();
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
    async fn expired_keys_are_swept() {
        let limiter = MemoryLimiter::new();
        let start = Timestamp::from_millis(0);
        for i in 0..SWEEP_EVERY {
            limiter
                .acquire(&[bucket(BucketName::Ip, &i.to_string(), 4)], start)
                .await
                .unwrap();
        }
        let later = start.plus(Duration::from_secs(61));
        limiter
            .acquire(&[bucket(BucketName::Ip, "x", 4)], later)
            .await
            .unwrap();
        limiter
            .acquire(&[bucket(BucketName::Ip, "y", 4)], later)
            .await
            .unwrap();
        assert!(
            limiter.tracked_keys() <= 2,
            "tracked {}",
            limiter.tracked_keys()
        );
    }
}
