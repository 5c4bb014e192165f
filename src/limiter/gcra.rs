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

/// The TAT after giving one request back to a bucket whose TAT is `tat_us`: one emission
/// interval earlier, never before `now_us` (a bucket holds at most its full allowance).
/// `None` means the bucket is back at full allowance and can be forgotten.
pub fn refund(tat_us: i64, now_us: i64, max: u32, interval: Duration) -> Option<i64> {
    let interval_us = i64::try_from(interval.as_micros()).unwrap_or(i64::MAX / 4);
    let emission = (interval_us / i64::from(max.max(1))).max(1);
    let new_tat = tat_us - emission;
    (new_tat > now_us).then_some(new_tat)
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

    #[test]
    fn a_refund_gives_back_exactly_one_request() {
        let (allowed, tat, _) = run(10, 0, None);
        assert_eq!(allowed, 4);
        let tat = refund(tat.unwrap(), 0, 4, MIN);
        let (allowed, tat, _) = run(10, 0, tat);
        assert_eq!(allowed, 1);
        // Refunding more than was charged never makes room for more than the burst.
        let mut tat = tat;
        for _ in 0..10 {
            tat = tat.and_then(|t| refund(t, 0, 4, MIN));
        }
        assert_eq!(tat, None);
        assert_eq!(run(10, 0, tat).0, 4);
    }
}
