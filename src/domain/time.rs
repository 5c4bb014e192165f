//! Wall-clock instants as whole milliseconds since the Unix epoch: what the store persists, what
//! the limiter computes with, and what the API prints (ISO 8601, second precision, UTC).

use std::time::Duration;

/// A point in time, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant moved `d` later (saturating).
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(d)))
    }

    /// This instant moved `d` earlier (saturating).
    #[must_use]
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(d)))
    }

    /// How long after `earlier` this instant is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// ISO 8601 / RFC 3339 in UTC with whole seconds, as Twilio prints dates: `2026-11-26T12:40:32Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        match time::OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            Err(_) => "1970-01-01T00:00:00Z".to_owned(),
        }
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_utc_seconds() {
        assert_eq!(
            Timestamp::from_millis(0).to_rfc3339(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_795_000_000_999).to_rfc3339(),
            "2026-11-18T11:06:40Z"
        );
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Timestamp::from_millis(1_000);
        assert_eq!(
            a.plus(Duration::from_secs(2)).since(a),
            Duration::from_secs(2)
        );
        assert_eq!(a.since(a.plus(Duration::from_secs(2))), Duration::ZERO);
    }
}
