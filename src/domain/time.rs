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
        self.rfc3339().as_str().to_owned()
    }

    /// [`to_rfc3339`](Self::to_rfc3339) without an allocation: it is on every answer and every
    /// event, several times.
    pub fn rfc3339(self) -> Rfc3339 {
        let secs = self.0.div_euclid(1000);
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
            return Rfc3339(*b"1970-01-01T00:00:00Z");
        };
        let Ok(year) = u16::try_from(t.year()) else {
            return Rfc3339(*b"1970-01-01T00:00:00Z");
        };
        let mut out = *b"0000-00-00T00:00:00Z";
        let two = |out: &mut [u8; 20], at: usize, n: u8| {
            out[at] = b'0' + n / 10;
            out[at + 1] = b'0' + n % 10;
        };
        // `from_unix_timestamp` keeps years within ±9999: four digits.
        two(&mut out, 0, (year / 100) as u8);
        two(&mut out, 2, (year % 100) as u8);
        two(&mut out, 5, u8::from(t.month()));
        two(&mut out, 8, t.day());
        two(&mut out, 11, t.hour());
        two(&mut out, 14, t.minute());
        two(&mut out, 17, t.second());
        Rfc3339(out)
    }
}

/// An instant printed as RFC 3339 (see [`Timestamp::rfc3339`]); serialises as that string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339([u8; 20]);

impl Rfc3339 {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00Z")
    }
}

impl std::ops::Deref for Rfc3339 {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
    fn formats_every_field_with_two_digits_and_agrees_with_the_time_crate() {
        // Every month's ends, leap days, the turn of centuries, and one second before midnight.
        for millis in [
            951_782_400_000_i64, // 2000-02-29T00:00:00Z
            4_107_542_399_000,   // 2100-02-28T23:59:59Z
            1_709_164_800_500,   // 2024-02-29T00:00:00.5Z
            -1_000,              // 1969-12-31T23:59:59Z
            253_402_300_799_000, // 9999-12-31T23:59:59Z
        ] {
            let t = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)).unwrap();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            assert_eq!(Timestamp::from_millis(millis).to_rfc3339(), expected);
        }
        assert_eq!(
            Timestamp::from_millis(-1_000).to_rfc3339(),
            "1969-12-31T23:59:59Z"
        );
        // Outside what can be printed in four digits: the epoch, as before.
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_rfc3339(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            serde_json::to_string(&Timestamp::from_millis(0).rfc3339()).unwrap(),
            "\"1970-01-01T00:00:00Z\""
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
