//! The overview's figures, from the hourly counters (never from the log itself): sends,
//! conversions and their rate, refusals by reason and bucket, fraud-guard blocks, the busiest
//! countries and prefixes with their conversion, sends and conversions per hour, and an
//! estimated spend. Pure arithmetic over what the store summed; no I/O.

use crate::store::console::{OutcomeCount, Volume};

/// The reason the fraud guard (DESIGN.md "Fraud guard") gives its refusals.
pub const FRAUD_BLOCKED: &str = "fraud_blocked";

/// One window's figures (the last 24 hours, or the last 7 days).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Codes that went out (send attempts with status `sent`).
    pub sends: u64,
    /// Send attempts whose delivery failed.
    pub failed: u64,
    /// Approved checks (a verification converts once).
    pub conversions: u64,
    /// Wrong codes entered.
    pub wrong_codes: u64,
    /// Refused requests by reason (and bucket: `rate_limited (ip)`), most first.
    pub refusals: Vec<(String, u64)>,
    /// Refusals with reason [`FRAUD_BLOCKED`].
    pub fraud_blocked: u64,
}

impl Figures {
    /// Sums the counters of one window.
    pub fn from_counts(counts: &[OutcomeCount]) -> Self {
        let mut f = Figures::default();
        let mut refusals: std::collections::BTreeMap<String, u64> = Default::default();
        for c in counts {
            match (c.kind.as_str(), c.outcome.as_str()) {
                ("send", "sent") => f.sends += c.n,
                ("send", "failed") => f.failed += c.n,
                ("check", "approved") => f.conversions += c.n,
                ("check", "incorrect") => f.wrong_codes += c.n,
                ("refusal", reason) => {
                    if reason == FRAUD_BLOCKED {
                        f.fraud_blocked += c.n;
                    }
                    let label = if c.bucket.is_empty() {
                        reason.to_owned()
                    } else {
                        format!("{reason} ({})", c.bucket)
                    };
                    *refusals.entry(label).or_default() += c.n;
                }
                _ => {}
            }
        }
        let mut refusals: Vec<(String, u64)> = refusals.into_iter().collect();
        refusals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        f.refusals = refusals;
        f
    }

    /// Every refused request.
    pub fn refused(&self) -> u64 {
        self.refusals.iter().map(|(_, n)| n).sum()
    }

    /// Conversions per code sent, in percent (none when nothing was sent).
    pub fn conversion_rate(&self) -> Option<f64> {
        rate(self.conversions, self.sends)
    }

    /// Sends times the price of one SMS segment (one segment per send: the log does not keep
    /// the segment count).
    pub fn spend(&self, price_per_segment: f64) -> f64 {
        self.sends as f64 * price_per_segment
    }
}

/// `part` of `whole` in percent.
pub fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// A percentage for a page: `42.9 %`, or `–` for none.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{r:.1} %"))
}

/// Sends and conversions for each of the `hours` hours ending with `now_hour`, oldest first,
/// zero where the store had none.
pub fn per_hour(volumes: &[Volume], now_hour: i64, hours: i64) -> Vec<(i64, u64, u64)> {
    let first = now_hour - hours + 1;
    let mut out: Vec<(i64, u64, u64)> = (first..=now_hour).map(|h| (h, 0, 0)).collect();
    for v in volumes {
        if let Ok(h) = v.key.parse::<i64>()
            && let Some(slot) = usize::try_from(h - first).ok().and_then(|i| out.get_mut(i))
        {
            slot.1 = v.sends;
            slot.2 = v.conversions;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(kind: &str, outcome: &str, bucket: &str, n: u64) -> OutcomeCount {
        OutcomeCount {
            kind: kind.to_owned(),
            outcome: outcome.to_owned(),
            bucket: bucket.to_owned(),
            n,
        }
    }

    #[test]
    fn figures_sum_the_counters_by_meaning() {
        let f = Figures::from_counts(&[
            count("send", "sent", "", 7),
            count("send", "sent", "", 3),
            count("send", "failed", "", 1),
            count("check", "approved", "", 4),
            count("check", "incorrect", "", 2),
            count("refusal", "rate_limited", "ip", 5),
            count("refusal", "rate_limited", "phone", 1),
            count("refusal", "country", "", 2),
            count("refusal", FRAUD_BLOCKED, "", 3),
        ]);
        assert_eq!(f.sends, 10);
        assert_eq!(f.failed, 1);
        assert_eq!(f.conversions, 4);
        assert_eq!(f.wrong_codes, 2);
        assert_eq!(f.fraud_blocked, 3);
        assert_eq!(f.refused(), 11);
        assert_eq!(f.refusals[0], ("rate_limited (ip)".to_owned(), 5));
        assert_eq!(percent(f.conversion_rate()), "40.0 %");
        assert!((f.spend(0.0079) - 0.079).abs() < 1e-9);
        assert_eq!(percent(Figures::default().conversion_rate()), "–");
    }

    #[test]
    fn hours_without_counts_are_zero() {
        let v = |h: i64, s, c| Volume {
            key: h.to_string(),
            sends: s,
            conversions: c,
        };
        let hours = per_hour(&[v(98, 5, 1), v(100, 2, 2), v(50, 9, 9)], 100, 3);
        assert_eq!(hours, vec![(98, 5, 1), (99, 0, 0), (100, 2, 2)]);
    }
}
