//! The abuse-protection settings: the rate-limit bucket sets (several intervals per key, as a
//! Twilio RateLimit has several Buckets), the resend cooldown, and test numbers. Buckets come
//! from `[rate_limits.send]` / `[rate_limits.verify]` in `verifyd.toml`; the environment variables
//! `VERIFYD_RATE_LIMIT_<KEY>_MAX` / `_INTERVAL` (send) and `VERIFYD_VERIFY_RATE_LIMIT_<KEY>_MAX` /
//! `_INTERVAL` (verify) override the first interval of a key, and a max of 0 turns the whole key
//! off. Beside the buckets: the allowlists (countries, channels, blocked number types) and where
//! the buckets are counted (this process's memory, capped, or a shared Redis).

use std::collections::BTreeSet;
use std::time::Duration;

use secrecy::SecretString;

use super::parse::{parse_duration, parse_list};
use super::settings::{
    ENV_BLOCKED_NUMBER_TYPES, ENV_CHANNELS, ENV_LIMITER_MAX_KEYS, ENV_REDIS_PREFIX, ENV_REDIS_URL,
    ENV_RESEND_COOLDOWN, ENV_VALID_COUNTRY_CODES,
};
use super::source::Reader;
use crate::domain::{Channel, NumberType, Region};

/// The abuse-protection settings: what the policy allows and charges, and where the limiter
/// counts.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    pub valid_country_codes: BTreeSet<Region>,
    pub channels: BTreeSet<Channel>,
    pub blocked_number_types: BTreeSet<NumberType>,
    /// The seed's IP bucket: the first interval of `send.ip` (max 0 when off).
    pub rate_limit_ip: BucketConfig,
    /// Every send-code bucket.
    pub send: SendLimits,
    /// Every verify bucket.
    pub verify: VerifyLimits,
    /// Minimum time between two sends to one number (zero: no cooldown).
    pub resend_cooldown: Duration,
    /// Hard cap on keys tracked by the in-memory limiter.
    pub limiter_max_keys: usize,
    /// `None`: the in-memory limiter (one node); else the Redis that shares every bucket.
    pub redis_url: Option<SecretString>,
    /// Prefix of the limiter's Redis keys.
    pub redis_prefix: String,
}

/// The limit settings as read, each `None` when its problem was recorded.
pub(super) struct LimitDraft {
    pub valid_country_codes: Option<BTreeSet<Region>>,
    pub channels: Option<BTreeSet<Channel>>,
    pub blocked_number_types: Option<BTreeSet<NumberType>>,
    pub send: SendLimits,
    pub verify: VerifyLimits,
    pub resend_cooldown: Option<Duration>,
    pub limiter_max_keys: Option<usize>,
    pub redis_url: Option<Option<SecretString>>,
    pub redis_prefix: Option<String>,
}

impl LimitDraft {
    pub(super) fn finish(self) -> Option<LimitSettings> {
        Some(LimitSettings {
            valid_country_codes: self.valid_country_codes?,
            channels: self.channels?,
            blocked_number_types: self.blocked_number_types?,
            rate_limit_ip: self.send.ip.first().copied().unwrap_or(BucketConfig {
                max: 0,
                interval: Duration::from_secs(60),
            }),
            send: self.send,
            verify: self.verify,
            resend_cooldown: self.resend_cooldown?,
            limiter_max_keys: self.limiter_max_keys?,
            redis_url: self.redis_url?,
            redis_prefix: self.redis_prefix?,
        })
    }
}

/// Reads the limit settings.
pub(super) fn read(r: &mut Reader<'_>) -> LimitDraft {
    let valid_country_codes = r.parse(ENV_VALID_COUNTRY_CODES, |t| {
        let set: BTreeSet<Region> = parse_list(t, "an ISO 3166-1 alpha-2 region code")?;
        if set.is_empty() {
            return Err("list at least one region".to_owned());
        }
        Ok(set)
    });
    let channels = r.parse(ENV_CHANNELS, |t| {
        let set: BTreeSet<Channel> = parse_list(t, "a channel (sms, call, whatsapp, email, sna)")?;
        if set.is_empty() {
            return Err("list at least one channel".to_owned());
        }
        Ok(set)
    });
    let blocked_number_types = r.parse(ENV_BLOCKED_NUMBER_TYPES, |t| {
        parse_list::<NumberType>(t, "a number type (premium_rate, shared_cost, uan, voicemail, pager, unknown, toll_free, voip, fixed_line, mobile, fixed_line_or_mobile, personal_number)")
    });
    let (send, verify) = r.limits();
    let resend_cooldown = r.parse(ENV_RESEND_COOLDOWN, parse_duration);
    let limiter_max_keys = r.parse(ENV_LIMITER_MAX_KEYS, |t| {
        t.parse::<usize>()
            .ok()
            .filter(|n| *n >= 1000)
            .ok_or_else(|| "expected a whole number of at least 1000".to_owned())
    });
    let redis_url = {
        let (value, _) = r.raw(ENV_REDIS_URL);
        match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            None => Some(None),
            Some(v) if v.starts_with("redis://") || v.starts_with("rediss://") => {
                Some(Some(SecretString::from(v)))
            }
            Some(v) => {
                r.problem(
                    ENV_REDIS_URL,
                    &v,
                    "expected redis://host:port[/db] or rediss://…",
                );
                None
            }
        }
    };
    let redis_prefix = r.parse(ENV_REDIS_PREFIX, |t| {
        if t.len() > 64 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Err("expected at most 64 characters without spaces".to_owned())
        } else {
            Ok(t.to_owned())
        }
    });
    LimitDraft {
        valid_country_codes,
        channels,
        blocked_number_types,
        send,
        verify,
        resend_cooldown,
        limiter_max_keys,
        redis_url,
        redis_prefix,
    }
}

/// One rate-limit bucket's size: at most `max` requests per `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketConfig {
    pub max: u32,
    pub interval: Duration,
}

impl BucketConfig {
    /// A max of 0 turns the bucket off.
    pub fn enabled(&self) -> bool {
        self.max > 0
    }
}

/// Bucket sizes for one key; empty means the key is off.
pub type Buckets = Vec<BucketConfig>;

/// The buckets a send-code is charged to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendLimits {
    /// Per client IP (IPv6: per /64). The seed's bucket.
    pub ip: Buckets,
    /// Per phone number.
    pub phone: Buckets,
    /// Per number prefix (the number without its last 4 digits): stops pumping of a range.
    pub prefix: Buckets,
    /// Per destination country.
    pub country: Buckets,
    /// All sends together: a spend cap.
    pub global: Buckets,
    /// Per authenticated user (JWT `sub`), when there is one.
    pub user: Buckets,
}

/// The buckets of `/mfa/verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyLimits {
    /// Checks per client IP.
    pub ip: Buckets,
    /// Failed checks per (number, caller), across verifications (a new code does not reset
    /// it): one caller's wrong guesses never lock the number for another.
    pub phone_failures: Buckets,
    /// Failed checks per number from every caller together (the same intervals, a multiple of
    /// the per-caller sizes): bounds guessing spread over many users or keys.
    pub phone_failures_ceiling: Buckets,
}

fn b(max: u32, secs: u64) -> BucketConfig {
    BucketConfig {
        max,
        interval: Duration::from_secs(secs),
    }
}

/// One configurable key: its env names, its toml name and its defaults.
struct KeySpec {
    max_var: &'static str,
    interval_var: &'static str,
    toml_section: &'static str,
    toml_key: &'static str,
    defaults: fn() -> Buckets,
    /// Interval used when only `_MAX` turns a key on that is off by default.
    fallback_interval: u64,
}

macro_rules! key {
    ($max:expr, $interval:expr, $section:literal, $key:literal, $defaults:expr, $fallback:literal) => {
        KeySpec {
            max_var: $max,
            interval_var: $interval,
            toml_section: $section,
            toml_key: $key,
            defaults: $defaults,
            fallback_interval: $fallback,
        }
    };
}

use super::settings::{
    ENV_RATE_LIMIT_COUNTRY_INTERVAL, ENV_RATE_LIMIT_COUNTRY_MAX, ENV_RATE_LIMIT_GLOBAL_INTERVAL,
    ENV_RATE_LIMIT_GLOBAL_MAX, ENV_RATE_LIMIT_IP_INTERVAL, ENV_RATE_LIMIT_IP_MAX,
    ENV_RATE_LIMIT_PHONE_INTERVAL, ENV_RATE_LIMIT_PHONE_MAX, ENV_RATE_LIMIT_PREFIX_INTERVAL,
    ENV_RATE_LIMIT_PREFIX_MAX, ENV_RATE_LIMIT_USER_INTERVAL, ENV_RATE_LIMIT_USER_MAX,
    ENV_VERIFY_RATE_LIMIT_IP_INTERVAL, ENV_VERIFY_RATE_LIMIT_IP_MAX,
    ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING, ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_INTERVAL,
    ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX,
};

/// The default per-number ceiling, as a multiple of the per-caller failure sizes.
pub const FAILURE_CEILING_FACTOR: u32 = 3;

const SEND_IP: KeySpec = key!(
    ENV_RATE_LIMIT_IP_MAX,
    ENV_RATE_LIMIT_IP_INTERVAL,
    "send",
    "ip",
    || vec![b(4, 60)],
    60
);
const SEND_PHONE: KeySpec = key!(
    ENV_RATE_LIMIT_PHONE_MAX,
    ENV_RATE_LIMIT_PHONE_INTERVAL,
    "send",
    "phone",
    || vec![b(5, 600), b(10, 86_400)],
    600
);
const SEND_PREFIX: KeySpec = key!(
    ENV_RATE_LIMIT_PREFIX_MAX,
    ENV_RATE_LIMIT_PREFIX_INTERVAL,
    "send",
    "prefix",
    || vec![b(20, 3600)],
    3600
);
const SEND_COUNTRY: KeySpec = key!(
    ENV_RATE_LIMIT_COUNTRY_MAX,
    ENV_RATE_LIMIT_COUNTRY_INTERVAL,
    "send",
    "country",
    Vec::new,
    3600
);
const SEND_GLOBAL: KeySpec = key!(
    ENV_RATE_LIMIT_GLOBAL_MAX,
    ENV_RATE_LIMIT_GLOBAL_INTERVAL,
    "send",
    "global",
    || vec![b(1000, 3600)],
    3600
);
const SEND_USER: KeySpec = key!(
    ENV_RATE_LIMIT_USER_MAX,
    ENV_RATE_LIMIT_USER_INTERVAL,
    "send",
    "user",
    || vec![b(10, 3600)],
    3600
);
const VERIFY_IP: KeySpec = key!(
    ENV_VERIFY_RATE_LIMIT_IP_MAX,
    ENV_VERIFY_RATE_LIMIT_IP_INTERVAL,
    "verify",
    "ip",
    || vec![b(30, 60)],
    60
);
const VERIFY_FAILURES: KeySpec = key!(
    ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX,
    ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_INTERVAL,
    "verify",
    "phone_failures",
    || vec![b(10, 3600)],
    3600
);

/// The toml keys allowed under `[rate_limits.<section>]`.
const TOML_KEYS: &[(&str, &str)] = &[
    ("send", "ip"),
    ("send", "phone"),
    ("send", "prefix"),
    ("send", "country"),
    ("send", "global"),
    ("send", "user"),
    ("verify", "ip"),
    ("verify", "phone_failures"),
];

/// Parses `[{ max = 5, interval = "10m" }, …]`.
fn toml_buckets(value: &toml::Value) -> Result<Buckets, String> {
    let items = value
        .as_array()
        .ok_or("must be a list of { max, interval } tables")?;
    items
        .iter()
        .map(|item| {
            let t = item
                .as_table()
                .ok_or("each bucket must be a { max, interval } table")?;
            for k in t.keys() {
                if k != "max" && k != "interval" {
                    return Err(format!("unknown bucket field `{k}`"));
                }
            }
            let max = t
                .get("max")
                .and_then(toml::Value::as_integer)
                .and_then(|m| u32::try_from(m).ok())
                .ok_or("`max` must be a whole number >= 0")?;
            let interval = match t.get("interval") {
                Some(toml::Value::Integer(i)) if *i > 0 => Duration::from_secs(i.unsigned_abs()),
                Some(toml::Value::String(s)) => parse_duration(s)?,
                _ => return Err("`interval` must be seconds or a duration like \"10m\"".to_owned()),
            };
            if interval.is_zero() {
                return Err("`interval` must be greater than zero".to_owned());
            }
            Ok(BucketConfig { max, interval })
        })
        .collect()
}

impl Reader<'_> {
    /// Validates `[rate_limits]`'s shape (unknown sections or keys are problems).
    fn check_rate_limit_tables(&mut self) {
        let Some(rate_limits) = self.sources.structured.get("rate_limits") else {
            return;
        };
        let Some(table) = rate_limits.as_table() else {
            self.problem(
                "rate_limits",
                "",
                "must be a table with [rate_limits.send] and [rate_limits.verify]",
            );
            return;
        };
        for (section, keys) in table {
            let Some(keys) = keys.as_table() else {
                self.problem(&format!("rate_limits.{section}"), "", "must be a table");
                continue;
            };
            for key in keys.keys() {
                if !TOML_KEYS.contains(&(section.as_str(), key.as_str())) {
                    self.problem(
                        &format!("rate_limits.{section}.{key}"),
                        "",
                        "unknown rate-limit key",
                    );
                }
            }
        }
    }

    /// One key: defaults, then toml, then the env overrides of its first interval.
    fn buckets(&mut self, spec: &KeySpec) -> Buckets {
        let mut buckets = (spec.defaults)();
        let from_toml = self
            .sources
            .structured
            .get("rate_limits")
            .and_then(|v| v.get(spec.toml_section))
            .and_then(|v| v.get(spec.toml_key))
            .cloned();
        if let Some(value) = from_toml {
            match toml_buckets(&value) {
                Ok(list) => buckets = list,
                Err(reason) => {
                    let name = format!("rate_limits.{}.{}", spec.toml_section, spec.toml_key);
                    self.problem(&name, &value.to_string(), reason);
                }
            }
        }
        let (max_raw, _) = self.raw(spec.max_var);
        let (interval_raw, _) = self.raw(spec.interval_var);
        if let Some(text) = max_raw {
            match text.trim().parse::<u32>() {
                Ok(max) => match buckets.first_mut() {
                    Some(first) => first.max = max,
                    None => buckets.push(b(max, spec.fallback_interval)),
                },
                Err(_) => self.problem(
                    spec.max_var,
                    &text,
                    "expected a whole number (0 turns the bucket off)",
                ),
            }
        }
        if let Some(text) = interval_raw {
            match parse_duration(&text).and_then(|d| {
                if d.is_zero() {
                    Err("must be greater than zero".to_owned())
                } else {
                    Ok(d)
                }
            }) {
                Ok(interval) => {
                    if let Some(first) = buckets.first_mut() {
                        first.interval = interval;
                    }
                }
                Err(reason) => self.problem(spec.interval_var, &text, reason),
            }
        }
        // A max of 0 on any interval turns the whole key off.
        if buckets.iter().any(|b| b.max == 0) {
            buckets.clear();
        }
        buckets
    }

    fn limits(&mut self) -> (SendLimits, VerifyLimits) {
        self.check_rate_limit_tables();
        let send = SendLimits {
            ip: self.buckets(&SEND_IP),
            phone: self.buckets(&SEND_PHONE),
            prefix: self.buckets(&SEND_PREFIX),
            country: self.buckets(&SEND_COUNTRY),
            global: self.buckets(&SEND_GLOBAL),
            user: self.buckets(&SEND_USER),
        };
        let phone_failures = self.buckets(&VERIFY_FAILURES);
        let phone_failures_ceiling = self.failure_ceiling(&phone_failures);
        let verify = VerifyLimits {
            ip: self.buckets(&VERIFY_IP),
            phone_failures,
            phone_failures_ceiling,
        };
        (send, verify)
    }

    /// The per-number ceiling: the per-caller buckets' intervals at
    /// [`FAILURE_CEILING_FACTOR`] times their size, the first one's max overridden by
    /// `VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING` (0 turns the ceiling off; below the
    /// per-caller max it is a problem, since it would make the per-caller max meaningless).
    fn failure_ceiling(&mut self, per_caller: &Buckets) -> Buckets {
        let mut ceiling: Buckets = per_caller
            .iter()
            .map(|b| BucketConfig {
                max: b.max.saturating_mul(FAILURE_CEILING_FACTOR),
                interval: b.interval,
            })
            .collect();
        let (raw, _) = self.raw(ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING);
        let Some(text) = raw else {
            return ceiling;
        };
        match text.trim().parse::<u32>() {
            Ok(0) => ceiling.clear(),
            Ok(max) => match (ceiling.first_mut(), per_caller.first()) {
                (Some(first), Some(caller)) if max >= caller.max => first.max = max,
                (Some(_), Some(caller)) => self.problem(
                    ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING,
                    &text,
                    format!(
                        "must be at least the per-caller max ({}) or 0 (off)",
                        caller.max
                    ),
                ),
                // The per-caller key is off: there is nothing to be a ceiling of.
                _ => {}
            },
            Err(_) => self.problem(
                ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING,
                &text,
                "expected a whole number (0 turns the ceiling off)",
            ),
        }
        ceiling
    }
}

/// `4/60s, 10/86400s` for `verifyd config`.
pub fn describe(buckets: &Buckets) -> String {
    if buckets.is_empty() {
        return "off".to_owned();
    }
    buckets
        .iter()
        .map(|b| format!("{}/{}s", b.max, b.interval.as_secs()))
        .collect::<Vec<_>>()
        .join(", ")
}
