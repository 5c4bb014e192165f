//! Event bodies as JSON text. Most events are about a verification and are written on the
//! request path, inside the change's own transaction (a send writes `verification.pending`), so
//! their body is written straight into one string ([`VerificationData::body`]) rather than
//! through serde's generic machinery, which measured about half of what events added to a send
//! (BENCHMARKS.md, issue 23). The text is exactly what serde_json writes for the same fields (a
//! test holds the two together); the rarer events (receipts, fraud-guard blocks) go through
//! serde ([`body`]).

use serde::Serialize;

use crate::domain::Rfc3339;

/// An event's body (the Standard Webhooks shape), keys in the order they are written.
#[derive(Serialize)]
struct Body<'a, D: Serialize> {
    data: &'a D,
    timestamp: Rfc3339,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// The body of a `kind` event carrying `data`, at `timestamp`.
///
/// # Errors
/// What serde_json refuses (only a map with keys that are not strings; no event has one).
pub fn body(
    kind: &str,
    timestamp: Rfc3339,
    data: &impl Serialize,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Body {
        data,
        timestamp,
        kind,
    })
}

/// The `data` of a verification event: the verification as the API shows it, never its code.
#[derive(Serialize)]
pub struct VerificationData<'a> {
    pub channel: &'a str,
    pub date_created: Rfc3339,
    pub date_updated: Rfc3339,
    pub send_code_attempts: &'a [AttemptData<'a>],
    pub service_sid: &'a str,
    pub sid: &'a str,
    pub status: &'a str,
    pub to: &'a str,
}

/// One send of a verification, in its event.
#[derive(Serialize)]
pub struct AttemptData<'a> {
    pub attempt_sid: &'a str,
    pub channel: &'a str,
    pub time: Rfc3339,
}

impl VerificationData<'_> {
    /// The body of a `kind` event about this verification at `timestamp`: the same text as
    /// [`body`] gives, written directly.
    pub fn body(&self, kind: &str, timestamp: Rfc3339) -> String {
        let mut out = String::with_capacity(320 + 96 * self.send_code_attempts.len());
        out.push_str(r#"{"data":{"channel":"#);
        push_str(&mut out, self.channel);
        out.push_str(r#","date_created":""#);
        out.push_str(&self.date_created);
        out.push_str(r#"","date_updated":""#);
        out.push_str(&self.date_updated);
        out.push_str(r#"","send_code_attempts":["#);
        for (i, a) in self.send_code_attempts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"attempt_sid":"#);
            push_str(&mut out, a.attempt_sid);
            out.push_str(r#","channel":"#);
            push_str(&mut out, a.channel);
            out.push_str(r#","time":""#);
            out.push_str(&a.time);
            out.push_str(r#""}"#);
        }
        out.push_str(r#"],"service_sid":"#);
        push_str(&mut out, self.service_sid);
        out.push_str(r#","sid":"#);
        push_str(&mut out, self.sid);
        out.push_str(r#","status":"#);
        push_str(&mut out, self.status);
        out.push_str(r#","to":"#);
        push_str(&mut out, self.to);
        out.push_str(r#"},"timestamp":""#);
        out.push_str(&timestamp);
        out.push_str(r#"","type":"#);
        push_str(&mut out, kind);
        out.push('}');
        out
    }
}

/// `text` as a JSON string. Sids, statuses, dates and masked numbers never need escaping, so
/// they are copied as they are; anything else is escaped by serde_json (control characters,
/// quotes and backslashes; the rest of UTF-8 stays as it is, as serde_json writes it).
fn push_str(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        // A string always serialises.
        out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn at(millis: i64) -> Rfc3339 {
        Timestamp::from_millis(millis).rfc3339()
    }

    #[test]
    fn the_written_body_is_what_serde_json_writes() {
        let attempts = [
            AttemptData {
                attempt_sid: "VL0123456789abcdef0123456789abcdef",
                channel: "sms",
                time: at(1_795_000_000_000),
            },
            AttemptData {
                attempt_sid: "VL1123456789abcdef0123456789abcdef",
                channel: "whatsapp",
                time: at(1_795_000_060_000),
            },
        ];
        for (to, service, attempts) in [
            (
                "+1415***2671",
                "VA0123456789abcdef0123456789abcdef",
                &attempts[..1],
            ),
            ("+14155552671", "VAdefault", &attempts[..]),
            // Strings that need escaping, and UTF-8 that does not.
            ("j\"o\\e\u{1}@e***.com", "s\u{e9}rvice\n", &attempts[..0]),
        ] {
            let data = VerificationData {
                channel: "sms",
                date_created: at(1_795_000_000_000),
                date_updated: at(1_795_000_060_999),
                send_code_attempts: attempts,
                service_sid: service,
                sid: "VE0123456789abcdef0123456789abcdef",
                status: "pending",
                to,
            };
            let written = data.body("verification.pending", at(1_795_000_061_000));
            assert_eq!(
                written,
                body("verification.pending", at(1_795_000_061_000), &data).unwrap()
            );
            let parsed: serde_json::Value = serde_json::from_str(&written).unwrap();
            assert_eq!(parsed["data"]["to"], to);
            assert_eq!(parsed["data"]["service_sid"], service);
            assert_eq!(
                parsed["data"]["send_code_attempts"]
                    .as_array()
                    .unwrap()
                    .len(),
                attempts.len()
            );
        }
    }
}
