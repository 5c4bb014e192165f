//! The signed events' settings (DESIGN.md "Events"): the endpoints (one from
//! `VERIFYD_EVENTS_URL`/`_SECRET`/`_TYPES`, more from `[[event_endpoints]]` in `verifyd.toml`,
//! each with its own secrets and type filter), whether events carry the full number, the retry
//! schedule, the per-try timeout and how long finished rows are kept. No endpoint: no events
//! are written at all.

use std::collections::BTreeSet;
use std::time::Duration;

use super::parse::{parse_bool, parse_duration, parse_url, plain_http, positive_duration};
use super::production::Profile;
use super::settings::{
    ENV_EVENTS_FULL_NUMBER, ENV_EVENTS_RETENTION, ENV_EVENTS_RETRY_SCHEDULE, ENV_EVENTS_SECRET,
    ENV_EVENTS_TIMEOUT, ENV_EVENTS_TYPES, ENV_EVENTS_URL,
};
use super::source::Reader;
use crate::events::{EventSecret, EventType};

component! {
    /// Where events go and how hard verifyd tries.
    #[derive(Clone, Debug)]
    pub struct EventSettings / EventDraft {
        /// Every endpoint; empty: events are off (nothing is written to the outbox).
        pub endpoints: Vec<EventEndpoint>,
        /// Events carry the full number instead of the masked one.
        pub full_number: bool,
        /// The waits between tries; after the last one fails the event is dead.
        pub retry_schedule: Vec<Duration>,
        /// How long one try may take.
        pub timeout: Duration,
        /// How long delivered and dead rows are kept.
        pub retention: Duration,
    }
}

/// One receiver of events.
#[derive(Clone, Debug)]
pub struct EventEndpoint {
    /// `default` for `VERIFYD_EVENTS_URL`; the `name` of an `[[event_endpoints]]` entry.
    pub name: String,
    pub url: String,
    /// Every secret signs every event (one `v1,` signature each), for rotation.
    pub secrets: Vec<EventSecret>,
    /// The types it receives.
    pub types: BTreeSet<EventType>,
}

/// The name of the endpoint of `VERIFYD_EVENTS_URL`.
pub const DEFAULT_ENDPOINT: &str = "default";

/// Reads the events' settings; `profile` decides whether plain `http://` is refused.
pub(super) fn read(r: &mut Reader<'_>, profile: Option<Profile>) -> EventDraft {
    let url = r.parse(ENV_EVENTS_URL, |t| {
        if t.is_empty() {
            Ok(None)
        } else {
            parse_url(t).map(Some)
        }
    });
    let secrets = r.parse(ENV_EVENTS_SECRET, |t| secrets(t.split_whitespace()));
    let types = r.parse(ENV_EVENTS_TYPES, types);
    let mut endpoints = Vec::new();
    match (url, secrets, types) {
        (Some(Some(url)), Some(secrets), Some(types)) => {
            if secrets.is_empty() {
                r.unset_problem(
                    ENV_EVENTS_SECRET,
                    "is required with VERIFYD_EVENTS_URL (whsec_ followed by base64 of at least 24 bytes)",
                );
            } else {
                check_scheme(r, ENV_EVENTS_URL, &url, profile);
                endpoints.push(EventEndpoint {
                    name: DEFAULT_ENDPOINT.to_owned(),
                    url,
                    secrets,
                    types,
                });
            }
        }
        (Some(None), Some(secrets), _) if !secrets.is_empty() => {
            r.warn(
                "VERIFYD_EVENTS_SECRET is set but VERIFYD_EVENTS_URL is not: no events are sent",
            );
        }
        _ => {}
    }
    for (i, entry) in table_endpoints(r) {
        let name = format!("event_endpoints[{i}]");
        match entry {
            Ok(e) => {
                if endpoints.iter().any(|o| o.name == e.name) {
                    r.problem(
                        &name,
                        "<entry>",
                        format!("the name `{}` is used twice", e.name),
                    );
                    continue;
                }
                if plain_http(&e.url).is_some() && profile == Some(Profile::Production) {
                    r.problem(
                        &name,
                        "<entry>",
                        "production refuses a plain http:// endpoint: use https://",
                    );
                    continue;
                }
                if plain_http(&e.url) == Some(false) {
                    r.warn(format!(
                        "{name} is plain http:// to a host that is not loopback: events travel unencrypted"
                    ));
                }
                endpoints.push(e);
            }
            // A secret may be in the entry: never echo it.
            Err(reason) => r.problem(&name, "<entry>", reason),
        }
    }
    let retry_schedule = r.parse(ENV_EVENTS_RETRY_SCHEDULE, |t| {
        let schedule = t
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(positive_duration)
            .collect::<Result<Vec<_>, _>>()?;
        if schedule.len() > 20 {
            return Err("at most 20 retries".to_owned());
        }
        Ok(schedule)
    });
    let timeout = r.parse(ENV_EVENTS_TIMEOUT, |t| {
        let d = positive_duration(t)?;
        if d > Duration::from_secs(60) {
            return Err("must be at most 60 seconds".to_owned());
        }
        Ok(d)
    });
    let retention = r.parse(ENV_EVENTS_RETENTION, |t| {
        let d = parse_duration(t)?;
        if d < Duration::from_secs(3600) {
            return Err("must be at least 1 hour".to_owned());
        }
        Ok(d)
    });
    EventDraft {
        endpoints: Some(endpoints),
        full_number: r.parse(ENV_EVENTS_FULL_NUMBER, parse_bool),
        retry_schedule,
        timeout,
        retention,
    }
}

/// Production refuses plain `http://`; development warns unless it is loopback.
fn check_scheme(r: &mut Reader<'_>, name: &'static str, url: &str, profile: Option<Profile>) {
    match plain_http(url) {
        Some(_) if profile == Some(Profile::Production) => {
            r.problem(
                name,
                url,
                "production refuses a plain http:// endpoint: use https://",
            );
        }
        Some(false) => r.warn(format!(
            "{name} is plain http:// to a host that is not loopback: events travel unencrypted"
        )),
        _ => {}
    }
}

fn secrets<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<EventSecret>, String> {
    items
        .enumerate()
        .map(|(i, s)| EventSecret::parse(s).map_err(|e| format!("secret {}: {e}", i + 1)))
        .collect()
}

/// A type filter: empty means every type.
fn types(text: &str) -> Result<BTreeSet<EventType>, String> {
    let named = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<EventType>().map_err(|e| e.to_string()))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(if named.is_empty() {
        EventType::ALL.into_iter().collect()
    } else {
        named
    })
}

/// `[[event_endpoints]]`: `name`, `url`, `secret` (one) or `secrets` (a list), optional `types`.
fn table_endpoints(r: &Reader<'_>) -> Vec<(usize, Result<EventEndpoint, String>)> {
    let Some(value) = r.sources.structured.get("event_endpoints") else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        return vec![(
            0,
            Err("must be an array of tables ([[event_endpoints]])".to_owned()),
        )];
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (i, table_endpoint(item)))
        .collect()
}

fn table_endpoint(item: &toml::Value) -> Result<EventEndpoint, String> {
    let t = item.as_table().ok_or("must be a table")?;
    for k in t.keys() {
        if !["name", "url", "secret", "secrets", "types"].contains(&k.as_str()) {
            return Err(format!("unknown field `{k}`"));
        }
    }
    let name = t
        .get("name")
        .and_then(toml::Value::as_str)
        .filter(|n| !n.is_empty() && n.len() <= 64)
        .ok_or("`name` is required (1 to 64 characters)")?;
    let url = t
        .get("url")
        .and_then(toml::Value::as_str)
        .ok_or("`url` is required")?;
    let url = parse_url(url).map_err(|e| format!("`url`: {e}"))?;
    let strings = |key: &str| -> Result<Vec<&str>, String> {
        match t.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::String(s)) => Ok(vec![s.as_str()]),
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().ok_or(format!("`{key}` must be strings")))
                .collect(),
            Some(_) => Err(format!("`{key}` must be a string or a list of strings")),
        }
    };
    let mut secret_texts = strings("secret")?;
    secret_texts.extend(strings("secrets")?);
    if secret_texts.is_empty() {
        return Err(
            "`secret` is required (whsec_ followed by base64 of at least 24 bytes)".to_owned(),
        );
    }
    let secrets = secrets(secret_texts.into_iter())?;
    let types = types(&strings("types")?.join(","))?;
    Ok(EventEndpoint {
        name: name.to_owned(),
        url,
        secrets,
        types,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::*;

    const GOOD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn no_endpoint_means_events_are_off_and_the_defaults_are_standard_webhooks() {
        let c = config(&[]).unwrap();
        assert!(c.events.endpoints.is_empty());
        assert_eq!(
            c.events.retry_schedule,
            [5, 300, 1800, 7200, 18_000, 36_000, 36_000].map(Duration::from_secs)
        );
        assert_eq!(c.events.timeout, Duration::from_secs(10));
        assert!(!c.events.full_number);
    }

    #[test]
    fn one_endpoint_with_two_secrets_and_a_filter() {
        let two = format!("{GOOD} whsec_dGhpcy1pcy1hLXNlY29uZC1rZXktb2YtMzItYnl0ZXM=");
        let c = config(&[
            (ENV_EVENTS_URL, "https://hooks.example.com/verifyd"),
            (ENV_EVENTS_SECRET, &two),
            (
                ENV_EVENTS_TYPES,
                "verification.approved, verification.expired",
            ),
        ])
        .unwrap();
        let e = &c.events.endpoints[0];
        assert_eq!((e.name.as_str(), e.secrets.len()), (DEFAULT_ENDPOINT, 2));
        assert_eq!(
            e.types.iter().copied().collect::<Vec<_>>(),
            [
                EventType::VerificationApproved,
                EventType::VerificationExpired
            ]
        );
    }

    #[test]
    fn bad_input_is_refused_naming_the_variable_and_never_echoing_a_secret() {
        let url = (ENV_EVENTS_URL, "https://hooks.example.com/v");
        let secret = (ENV_EVENTS_SECRET, GOOD);
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            (
                "malformed URL",
                &[(ENV_EVENTS_URL, "hooks example"), secret],
                ENV_EVENTS_URL,
            ),
            (
                "ftp URL",
                &[(ENV_EVENTS_URL, "ftp://x.example"), secret],
                ENV_EVENTS_URL,
            ),
            ("secret missing", &[url], ENV_EVENTS_SECRET),
            (
                "secret without whsec_",
                &[url, (ENV_EVENTS_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
                ENV_EVENTS_SECRET,
            ),
            (
                "short secret",
                &[url, (ENV_EVENTS_SECRET, "whsec_c2hvcnQ=")],
                ENV_EVENTS_SECRET,
            ),
            (
                "one bad of two",
                &[
                    url,
                    (
                        ENV_EVENTS_SECRET,
                        "whsec_c2hvcnQ= whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    ),
                ],
                ENV_EVENTS_SECRET,
            ),
            (
                "unknown type",
                &[url, secret, (ENV_EVENTS_TYPES, "verification.failed")],
                ENV_EVENTS_TYPES,
            ),
            (
                "bad schedule",
                &[(ENV_EVENTS_RETRY_SCHEDULE, "5s,soon")],
                ENV_EVENTS_RETRY_SCHEDULE,
            ),
            (
                "zero timeout",
                &[(ENV_EVENTS_TIMEOUT, "0")],
                ENV_EVENTS_TIMEOUT,
            ),
            (
                "production http",
                &[
                    (super::super::ENV_ENV, "production"),
                    (ENV_EVENTS_URL, "http://hooks.example.com/v"),
                    secret,
                ],
                ENV_EVENTS_URL,
            ),
        ];
        for (case, pairs, variable) in cases {
            let e = config(pairs)
                .err()
                .unwrap_or_else(|| panic!("{case}: accepted"));
            let p = e
                .problems
                .iter()
                .find(|p| p.name == *variable)
                .unwrap_or_else(|| panic!("{case}: {variable} not named in {e}"));
            assert!(
                !e.to_string().contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                "{case}: {e}"
            );
            assert!(!p.reason.is_empty(), "{case}");
        }
    }

    #[test]
    fn development_allows_plain_http_to_loopback() {
        let c = config(&[
            (ENV_EVENTS_URL, "http://127.0.0.1:9000/hooks"),
            (ENV_EVENTS_SECRET, GOOD),
        ])
        .unwrap();
        assert_eq!(c.events.endpoints.len(), 1);
        assert!(c.warnings.iter().all(|w| !w.contains(ENV_EVENTS_URL)));
    }
}
