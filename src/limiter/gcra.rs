//! GCRA, the arithmetic shared by every limiter backend. State per bucket key is one number, the
//! theoretical arrival time (TAT) in microseconds; a key whose TAT is in the past is at full
//! allowance and can be forgotten.

use std::time::Duration;

/// The result of trying one request against one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Allowed; store this TAT if the whole request is allowed.
    Allow { new_tat: i64 },
    /// Refused; the bucket has room again in `retry_after`.
    Deny { retry_after: Duration },
}

/// Tries one request at `now_us` against a bucket of `max` per `interval` whose stored TAT is
/// `tat_us` (`None` for a bucket never used or forgotten). `max` must be at least 1.
pub fn step(tat_us: Option<i64>, now_us: i64, max: u32, interval: Duration) -> Step {
    let interval_us = i64::try_from(interval.as_micros()).unwrap_or(i64::MAX / 4);
    let emission = (interval_us / i64::from(max.max(1))).max(1);
    let tat = tat_us.map_or(now_us, |t| t.max(now_us));
    let new_tat = tat + emission;
    let allow_at = new_tat - interval_us;
    if allow_at > now_us {
        let wait = u64::try_from(allow_at - now_us).unwrap_or(0);
        Step::Deny {
            retry_after: Duration::from_micros(wait),
        }
    } else {
        Step::Allow { new_tat }
    }
}

/// How long before its TAT a bucket accepts a request again: `interval - interval / max`.
pub fn free_lag(max: u32, interval: Duration) -> Duration {
    interval.saturating_sub(interval / max.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn run(n: usize, now: i64, mut tat: Option<i64>) -> (usize, Option<i64>, Option<Duration>) {
        let mut allowed = 0;
        for _ in 0..n {
            match step(tat, now, 4, MIN) {
                Step::Allow { new_tat } => {
                    tat = Some(new_tat);
                    allowed += 1;
                }
                Step::Deny { retry_after } => return (allowed, tat, Some(retry_after)),
            }
        }
        (allowed, tat, None)
    }

    #[test]
    fn four_per_minute_allows_a_burst_of_four_then_one_every_fifteen_seconds() {
        let (allowed, tat, retry) = run(10, 0, None);
        assert_eq!(allowed, 4);
        assert_eq!(retry, Some(Duration::from_secs(15)));
        // 14.999 s later: still refused; at 15 s exactly one more.
        assert!(matches!(step(tat, 14_999_999, 4, MIN), Step::Deny { .. }));
        let (allowed, _, _) = run(10, 15_000_000, tat);
        assert_eq!(allowed, 1);
        // After a full interval of silence the whole burst is back.
        let (allowed, _, _) = run(10, 60_000_000, tat);
        assert_eq!(allowed, 4);
    }
}
