//! Every setting, read once at start from layered sources and validated before any port is
//! bound. Precedence: the process environment, then `.env.development`, then `.env` (both in the
//! working directory), then `verifyd.toml` (or the file named by `VERIFYD_CONFIG`), then the
//! defaults. Nothing else in the crate reads the environment.
//!
//! Every problem is collected and reported together as `NAME=value is not valid: reason`
//! (secret values redacted); the binary exits 64 (`EX_USAGE`) on any of them.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::ServerSecrets;

mod limits;
use crate::domain::{Channel, CodeLength, NumberType, Region};
pub use limits::{Buckets, SendLimits, TestNumber, VerifyLimits};

pub const ENV_ENV: &str = "VERIFYD_ENV";
pub const ENV_ADDR: &str = "VERIFYD_ADDR";
pub const ENV_DATABASE_URL: &str = "VERIFYD_DATABASE_URL";
pub const ENV_SECRET: &str = "VERIFYD_SECRET";
pub const ENV_API_KEYS: &str = "VERIFYD_API_KEYS";
pub const ENV_AUTH: &str = "VERIFYD_AUTH";
pub const ENV_JWT_JWKS_URL: &str = "VERIFYD_JWT_JWKS_URL";
pub const ENV_JWT_ISSUER: &str = "VERIFYD_JWT_ISSUER";
pub const ENV_JWT_AUDIENCE: &str = "VERIFYD_JWT_AUDIENCE";
pub const ENV_JWT_ALGORITHMS: &str = "VERIFYD_JWT_ALGORITHMS";
pub const ENV_JWT_LEEWAY: &str = "VERIFYD_JWT_LEEWAY";
pub const ENV_JWT_JWKS_REFRESH: &str = "VERIFYD_JWT_JWKS_REFRESH";
pub const ENV_PROVIDER: &str = "VERIFYD_PROVIDER";
pub const ENV_SMS_SENDER: &str = "VERIFYD_SMS_SENDER";
pub const ENV_VALID_COUNTRY_CODES: &str = "VERIFYD_VALID_COUNTRY_CODES";
pub const ENV_CHANNELS: &str = "VERIFYD_CHANNELS";
pub const ENV_BLOCKED_NUMBER_TYPES: &str = "VERIFYD_BLOCKED_NUMBER_TYPES";
pub const ENV_RATE_LIMIT_IP_MAX: &str = "VERIFYD_RATE_LIMIT_IP_MAX";
pub const ENV_RATE_LIMIT_IP_INTERVAL: &str = "VERIFYD_RATE_LIMIT_IP_INTERVAL";
pub const ENV_RATE_LIMIT_PHONE_MAX: &str = "VERIFYD_RATE_LIMIT_PHONE_MAX";
pub const ENV_RATE_LIMIT_PHONE_INTERVAL: &str = "VERIFYD_RATE_LIMIT_PHONE_INTERVAL";
pub const ENV_RATE_LIMIT_PREFIX_MAX: &str = "VERIFYD_RATE_LIMIT_PREFIX_MAX";
pub const ENV_RATE_LIMIT_PREFIX_INTERVAL: &str = "VERIFYD_RATE_LIMIT_PREFIX_INTERVAL";
pub const ENV_RATE_LIMIT_COUNTRY_MAX: &str = "VERIFYD_RATE_LIMIT_COUNTRY_MAX";
pub const ENV_RATE_LIMIT_COUNTRY_INTERVAL: &str = "VERIFYD_RATE_LIMIT_COUNTRY_INTERVAL";
pub const ENV_RATE_LIMIT_GLOBAL_MAX: &str = "VERIFYD_RATE_LIMIT_GLOBAL_MAX";
pub const ENV_RATE_LIMIT_GLOBAL_INTERVAL: &str = "VERIFYD_RATE_LIMIT_GLOBAL_INTERVAL";
pub const ENV_RATE_LIMIT_USER_MAX: &str = "VERIFYD_RATE_LIMIT_USER_MAX";
pub const ENV_RATE_LIMIT_USER_INTERVAL: &str = "VERIFYD_RATE_LIMIT_USER_INTERVAL";
pub const ENV_VERIFY_RATE_LIMIT_IP_MAX: &str = "VERIFYD_VERIFY_RATE_LIMIT_IP_MAX";
pub const ENV_VERIFY_RATE_LIMIT_IP_INTERVAL: &str = "VERIFYD_VERIFY_RATE_LIMIT_IP_INTERVAL";
pub const ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX: &str =
    "VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX";
pub const ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_INTERVAL: &str =
    "VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_INTERVAL";
pub const ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING: &str =
    "VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING";
pub const ENV_RESEND_COOLDOWN: &str = "VERIFYD_RESEND_COOLDOWN";
pub const ENV_LIMITER_MAX_KEYS: &str = "VERIFYD_LIMITER_MAX_KEYS";
pub const ENV_TRUSTED_PROXIES: &str = "VERIFYD_TRUSTED_PROXIES";
pub const ENV_CODE_LENGTH: &str = "VERIFYD_CODE_LENGTH";
pub const ENV_CODE_TTL: &str = "VERIFYD_CODE_TTL";
pub const ENV_LOG_FORMAT: &str = "VERIFYD_LOG_FORMAT";
pub const ENV_METRICS_ADDR: &str = "VERIFYD_METRICS_ADDR";
pub const ENV_RUST_LOG: &str = "RUST_LOG";
pub const ENV_SHUTDOWN_GRACE: &str = "VERIFYD_SHUTDOWN_GRACE";
pub const ENV_REQUEST_TIMEOUT: &str = "VERIFYD_REQUEST_TIMEOUT";
pub const ENV_STORE_TIMEOUT: &str = "VERIFYD_STORE_TIMEOUT";
pub const ENV_SQLITE_SYNCHRONOUS: &str = "VERIFYD_SQLITE_SYNCHRONOUS";
pub const ENV_DB_POOL_SIZE: &str = "VERIFYD_DB_POOL_SIZE";
pub const ENV_DB_STATEMENT_TIMEOUT: &str = "VERIFYD_DB_STATEMENT_TIMEOUT";
pub const ENV_REDIS_URL: &str = "VERIFYD_REDIS_URL";
pub const ENV_REDIS_PREFIX: &str = "VERIFYD_REDIS_PREFIX";
pub const ENV_CONFIG: &str = "VERIFYD_CONFIG";
pub const ENV_TWILIO_ACCOUNT_SID: &str = "TWILIO_ACCOUNT_SID";
pub const ENV_TWILIO_AUTH_TOKEN: &str = "TWILIO_AUTH_TOKEN";
pub const ENV_TWILIO_SERVICE_SID: &str = "TWILIO_SERVICE_SID";
pub const ENV_TWILIO_VERIFY_BASE_URL: &str = "TWILIO_VERIFY_BASE_URL";
pub const ENV_TWILIO_API_BASE_URL: &str = "TWILIO_API_BASE_URL";
pub const ENV_TWILIO_TIMEOUT: &str = "TWILIO_TIMEOUT";
pub const ENV_TWILIO_SYNC_RATE_LIMITS: &str = "VERIFYD_TWILIO_SYNC_RATE_LIMITS";
pub const ENV_TWILIO_MESSAGING_SERVICE_SID: &str = "TWILIO_MESSAGING_SERVICE_SID";
pub const ENV_TWILIO_FROM: &str = "TWILIO_FROM";
pub const ENV_TWILIO_MESSAGING_BASE_URL: &str = "TWILIO_MESSAGING_BASE_URL";
pub const ENV_SMS_WEBHOOK_URL: &str = "VERIFYD_SMS_WEBHOOK_URL";
pub const ENV_SMS_WEBHOOK_SECRET: &str = "VERIFYD_SMS_WEBHOOK_SECRET";
pub const ENV_SMS_WEBHOOK_TIMEOUT: &str = "VERIFYD_SMS_WEBHOOK_TIMEOUT";
pub const ENV_PUBLIC_URL: &str = "VERIFYD_PUBLIC_URL";
pub const ENV_ACCOUNT_SID: &str = "VERIFYD_ACCOUNT_SID";
pub const ENV_SERVICE_SID: &str = "VERIFYD_SERVICE_SID";
pub const ENV_SERVICE_NAME: &str = "VERIFYD_SERVICE_NAME";
pub const ENV_ATTEMPT_RETENTION: &str = "VERIFYD_ATTEMPT_RETENTION";

/// One documented setting: its variable, default (as text) and whether its value is secret.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub secret: bool,
    pub doc: &'static str,
}

/// Every setting verifyd reads, in the order `verifyd config` prints them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: ENV_ENV,
        default: "development",
        secret: false,
        doc: "`development` or `production`. Production refuses to start (exit 64, naming each problem) with the console or null sender (local engine), a generated VERIFYD_SECRET or API key, VERIFYD_TRUSTED_PROXIES trusting every address, or a test number without valid_until; it never serves /dev/outbox.",
    },
    Setting {
        name: ENV_ADDR,
        default: "127.0.0.1:8080",
        secret: false,
        doc: "Listen address (port 0 picks a free port; the log prints the bound one).",
    },
    Setting {
        name: ENV_DATABASE_URL,
        default: "sqlite://verifyd.db",
        secret: false,
        doc: "Store: a SQLite file (created if missing), or `postgres://user:pass@host/db` for a store shared by several replicas (password redacted in output).",
    },
    Setting {
        name: ENV_SECRET,
        default: "",
        secret: true,
        doc: "Server secret (>= 32 chars) for HMAC and encryption keys; several, comma-separated and newest first, while rotating (new data under the first, old data still read; `verifyd rekey` moves it). Unset: generated once into <database>.secret (0600); refused in production.",
    },
    Setting {
        name: ENV_API_KEYS,
        default: "",
        secret: true,
        doc: "Comma-separated API keys accepted as `Authorization: Bearer <key>` (list the new and the old key while rotating); unset: one is generated on first start, printed once, stored hashed (refused in production).",
    },
    Setting {
        name: ENV_AUTH,
        default: "api-key",
        secret: false,
        doc: "`api-key` (VERIFYD_API_KEYS), `jwt` (the app's user tokens, e.g. Auth0) or `both`.",
    },
    Setting {
        name: ENV_JWT_JWKS_URL,
        default: "",
        secret: false,
        doc: "JWKS of the token issuer, e.g. `https://<tenant>.auth0.com/.well-known/jwks.json` (jwt/both).",
    },
    Setting {
        name: ENV_JWT_ISSUER,
        default: "",
        secret: false,
        doc: "Required `iss`, e.g. `https://<tenant>.auth0.com/` (with Auth0's trailing slash).",
    },
    Setting {
        name: ENV_JWT_AUDIENCE,
        default: "",
        secret: false,
        doc: "Required `aud`: the API identifier the app requests tokens for.",
    },
    Setting {
        name: ENV_JWT_ALGORITHMS,
        default: "RS256,ES256",
        secret: false,
        doc: "Accepted signature algorithms (asymmetric only: RS*, PS*, ES256/384, EdDSA; never `none` or HS*).",
    },
    Setting {
        name: ENV_JWT_LEEWAY,
        default: "30",
        secret: false,
        doc: "Clock skew allowed on `exp`/`nbf`, in seconds.",
    },
    Setting {
        name: ENV_JWT_JWKS_REFRESH,
        default: "600",
        secret: false,
        doc: "How often the JWKS is re-fetched (an unknown `kid` also triggers a fetch, at most once a minute).",
    },
    Setting {
        name: ENV_PROVIDER,
        default: "local",
        secret: false,
        doc: "`local` (our code engine) or `twilio-verify`; unset: twilio-verify when all three TWILIO_* are set, else local.",
    },
    Setting {
        name: ENV_SMS_SENDER,
        default: "console",
        secret: false,
        doc: "How the local engine delivers codes: `console` (stdout and GET /dev/outbox), `twilio-messaging` (Twilio Programmable Messaging) or `webhook` (a signed POST to VERIFYD_SMS_WEBHOOK_URL). Unused with twilio-verify.",
    },
    Setting {
        name: ENV_VALID_COUNTRY_CODES,
        default: "US",
        secret: false,
        doc: "ISO 3166-1 alpha-2 regions that may receive codes (seed S2).",
    },
    Setting {
        name: ENV_CHANNELS,
        default: "sms",
        secret: false,
        doc: "Channels a send-code may use (seed S3): sms, call, whatsapp, email, sna.",
    },
    Setting {
        name: ENV_BLOCKED_NUMBER_TYPES,
        default: "premium_rate,shared_cost,uan,voicemail,pager,unknown",
        secret: false,
        doc: "libphonenumber line types refused with 403 number_type_not_allowed (empty list: none).",
    },
    Setting {
        name: ENV_RATE_LIMIT_IP_MAX,
        default: "4",
        secret: false,
        doc: "Send-codes per client IP per interval (seed S4); 0 turns the bucket off.",
    },
    Setting {
        name: ENV_RATE_LIMIT_IP_INTERVAL,
        default: "60",
        secret: false,
        doc: "Interval of the IP bucket, in seconds (or with s/m/h/d suffix).",
    },
    Setting {
        name: ENV_RATE_LIMIT_PHONE_MAX,
        default: "5",
        secret: false,
        doc: "Send-codes per phone number per interval (first interval; default also 10 per day); 0 turns the key off.",
    },
    Setting {
        name: ENV_RATE_LIMIT_PHONE_INTERVAL,
        default: "600",
        secret: false,
        doc: "Interval of the first phone bucket.",
    },
    Setting {
        name: ENV_RATE_LIMIT_PREFIX_MAX,
        default: "20",
        secret: false,
        doc: "Send-codes per number prefix (the number without its last 4 digits) per interval; 0 off.",
    },
    Setting {
        name: ENV_RATE_LIMIT_PREFIX_INTERVAL,
        default: "3600",
        secret: false,
        doc: "Interval of the prefix bucket.",
    },
    Setting {
        name: ENV_RATE_LIMIT_COUNTRY_MAX,
        default: "0",
        secret: false,
        doc: "Send-codes per destination country per interval; 0 (default) off.",
    },
    Setting {
        name: ENV_RATE_LIMIT_COUNTRY_INTERVAL,
        default: "3600",
        secret: false,
        doc: "Interval of the country bucket.",
    },
    Setting {
        name: ENV_RATE_LIMIT_GLOBAL_MAX,
        default: "1000",
        secret: false,
        doc: "All send-codes together per interval: a spend cap; 0 off.",
    },
    Setting {
        name: ENV_RATE_LIMIT_GLOBAL_INTERVAL,
        default: "3600",
        secret: false,
        doc: "Interval of the global bucket.",
    },
    Setting {
        name: ENV_RATE_LIMIT_USER_MAX,
        default: "10",
        secret: false,
        doc: "Send-codes per authenticated user (JWT `sub`) per interval; 0 off.",
    },
    Setting {
        name: ENV_RATE_LIMIT_USER_INTERVAL,
        default: "3600",
        secret: false,
        doc: "Interval of the user bucket.",
    },
    Setting {
        name: ENV_VERIFY_RATE_LIMIT_IP_MAX,
        default: "30",
        secret: false,
        doc: "Verify requests per client IP per interval; 0 off.",
    },
    Setting {
        name: ENV_VERIFY_RATE_LIMIT_IP_INTERVAL,
        default: "60",
        secret: false,
        doc: "Interval of the verify IP bucket.",
    },
    Setting {
        name: ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX,
        default: "10",
        secret: false,
        doc: "Wrong codes (and checks of a number with no verification of the caller's) per number and caller per interval, across verifications (a new code does not reset it); the caller is the JWT user, else the API key, so one caller cannot lock a number for others; 0 off.",
    },
    Setting {
        name: ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_INTERVAL,
        default: "3600",
        secret: false,
        doc: "Interval of the failed-check buckets (per caller and the per-number ceiling).",
    },
    Setting {
        name: ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING,
        default: "3 x max",
        secret: false,
        doc: "Failed checks per number per interval from all callers together: stops guessing spread over many users or keys; at least the per-caller max; 0 off.",
    },
    Setting {
        name: ENV_RESEND_COOLDOWN,
        default: "30",
        secret: false,
        doc: "Minimum time between two sends to one number; 0 disables.",
    },
    Setting {
        name: ENV_LIMITER_MAX_KEYS,
        default: "1000000",
        secret: false,
        doc: "Hard cap on bucket keys the in-memory limiter tracks; keys at full allowance are dropped to make room, part-used keys never (forgetting one would hand back requests its limit withholds): past the cap, a request that needs a new key is refused 503 and `verifyd_limiter_full_total` counts it.",
    },
    Setting {
        name: ENV_TRUSTED_PROXIES,
        default: "",
        secret: false,
        doc: "CIDRs of reverse proxies whose X-Forwarded-For is believed (right-most untrusted entry wins).",
    },
    Setting {
        name: ENV_CODE_LENGTH,
        default: "6",
        secret: false,
        doc: "Digits per code, 4 to 10.",
    },
    Setting {
        name: ENV_CODE_TTL,
        default: "600",
        secret: false,
        doc: "How long a code stays valid, in seconds (Twilio: 10 minutes).",
    },
    Setting {
        name: ENV_METRICS_ADDR,
        default: "",
        secret: false,
        doc: "Serve `GET /metrics` on its own listener here (public: bind it privately); unset: on the main listener, behind the API key.",
    },
    Setting {
        name: ENV_LOG_FORMAT,
        default: "pretty",
        secret: false,
        doc: "`pretty` or `json` logs on stderr.",
    },
    Setting {
        name: ENV_RUST_LOG,
        default: "info",
        secret: false,
        doc: "Log filter (tracing EnvFilter syntax).",
    },
    Setting {
        name: ENV_SHUTDOWN_GRACE,
        default: "20",
        secret: false,
        doc: "Seconds in-flight requests get to finish after SIGTERM/SIGINT.",
    },
    Setting {
        name: ENV_REQUEST_TIMEOUT,
        default: "15",
        secret: false,
        doc: "Seconds before a request is answered 503 unavailable.",
    },
    Setting {
        name: ENV_STORE_TIMEOUT,
        default: "2",
        secret: false,
        doc: "Seconds to wait for a store connection or lock (PostgreSQL: connect and pool acquire; Redis: connect and reply) before answering 503.",
    },
    Setting {
        name: ENV_SQLITE_SYNCHRONOUS,
        default: "full",
        secret: false,
        doc: "SQLite `synchronous` with WAL: `full` (survives power loss) or `normal` (survives process crashes).",
    },
    Setting {
        name: ENV_DB_POOL_SIZE,
        default: "10",
        secret: false,
        doc: "PostgreSQL store: connections per replica (mind the server's max_connections across replicas).",
    },
    Setting {
        name: ENV_DB_STATEMENT_TIMEOUT,
        default: "5",
        secret: false,
        doc: "PostgreSQL store: `statement_timeout` set on every connection, in seconds; a slower statement answers 503.",
    },
    Setting {
        name: ENV_REDIS_URL,
        default: "",
        secret: false,
        doc: "Limiter: `redis://host:port/db` (or `rediss://`) shares every rate-limit bucket between replicas; unset: buckets in this process's memory (password redacted in output).",
    },
    Setting {
        name: ENV_REDIS_PREFIX,
        default: "verifyd:",
        secret: false,
        doc: "Prefix of every Redis key the limiter writes (one Redis can serve several deployments).",
    },
    Setting {
        name: ENV_CONFIG,
        default: "verifyd.toml",
        secret: false,
        doc: "Optional TOML file with the same settings (keys without the VERIFYD_ prefix, lowercase).",
    },
    Setting {
        name: ENV_TWILIO_ACCOUNT_SID,
        default: "",
        secret: false,
        doc: "Twilio Account SID (AC + 32 hex), seed S1.",
    },
    Setting {
        name: ENV_TWILIO_AUTH_TOKEN,
        default: "",
        secret: true,
        doc: "Twilio Auth Token, seed S1.",
    },
    Setting {
        name: ENV_TWILIO_SERVICE_SID,
        default: "",
        secret: false,
        doc: "Twilio Verify Service SID (VA + 32 hex), seed S1.",
    },
    Setting {
        name: ENV_TWILIO_VERIFY_BASE_URL,
        default: "https://verify.twilio.com",
        secret: false,
        doc: "Base URL of the Twilio Verify API (tests point it at a local fake).",
    },
    Setting {
        name: ENV_TWILIO_API_BASE_URL,
        default: "https://api.twilio.com",
        secret: false,
        doc: "Base URL of the Twilio REST API used by the twilio-messaging sender.",
    },
    Setting {
        name: ENV_TWILIO_TIMEOUT,
        default: "10",
        secret: false,
        doc: "Seconds to wait for any Twilio call; a timed-out send is answered 502 and never retried.",
    },
    Setting {
        name: ENV_TWILIO_SYNC_RATE_LIMITS,
        default: "true",
        secret: false,
        doc: "twilio-verify: at start, make the Verify service's `end_user_ip_address` RateLimit have one Bucket equal to the IP bucket (`verifyd twilio sync` does it on demand).",
    },
    Setting {
        name: ENV_TWILIO_MESSAGING_SERVICE_SID,
        default: "",
        secret: false,
        doc: "twilio-messaging sender: the Messaging Service SID (MG + 32 hex) to send from; or set TWILIO_FROM.",
    },
    Setting {
        name: ENV_TWILIO_FROM,
        default: "",
        secret: false,
        doc: "twilio-messaging sender: the sender (a Twilio number in E.164, a short code or an alphanumeric sender ID); or set TWILIO_MESSAGING_SERVICE_SID.",
    },
    Setting {
        name: ENV_TWILIO_MESSAGING_BASE_URL,
        default: "https://messaging.twilio.com",
        secret: false,
        doc: "Base URL of Twilio's Messaging API, where `verifyd doctor` looks up TWILIO_MESSAGING_SERVICE_SID (tests point it at a local fake).",
    },
    Setting {
        name: ENV_SMS_WEBHOOK_URL,
        default: "",
        secret: false,
        doc: "webhook sender: the URL that receives each message as a signed JSON POST.",
    },
    Setting {
        name: ENV_SMS_WEBHOOK_SECRET,
        default: "",
        secret: true,
        doc: "webhook sender: the HMAC-SHA256 key (>= 16 chars) for the `X-Verifyd-Signature` header.",
    },
    Setting {
        name: ENV_SMS_WEBHOOK_TIMEOUT,
        default: "10",
        secret: false,
        doc: "webhook sender: seconds to wait for the webhook's answer (a timeout is a failed send, never retried).",
    },
    Setting {
        name: ENV_PUBLIC_URL,
        default: "",
        secret: false,
        doc: "The address clients reach verifyd at (`https://verifyd.internal`): the `/v2` face builds every `url`, `links` and `next_page_url` from it, never from the request's Host. Unset: `http://` + VERIFYD_ADDR.",
    },
    Setting {
        name: ENV_ACCOUNT_SID,
        default: "",
        secret: false,
        doc: "`/v2` face: the account SID (`AC` + 32 hex) that Twilio SDKs authenticate as (HTTP Basic user; the password is an API key). Unset: generated once, kept in the store (the same on every replica and restart) and printed at start.",
    },
    Setting {
        name: ENV_SERVICE_SID,
        default: "",
        secret: false,
        doc: "`/v2` face: the default Verify service's SID (`VA` + 32 hex), the one `/mfa/*` uses. Unset: generated once and kept in the store, like the account SID.",
    },
    Setting {
        name: ENV_SERVICE_NAME,
        default: "verifyd",
        secret: false,
        doc: "`/v2` face: the default service's `friendly_name` (in its messages: `Your <name> verification code is: …`) when verifyd creates that service; later changes go through `POST /v2/Services/{VA}`.",
    },
    Setting {
        name: ENV_ATTEMPT_RETENTION,
        default: "30d",
        secret: false,
        doc: "How long the attempt log (every send attempt, check outcome and refusal, of `/mfa/*` and `/v2`; read through `GET /v2/Attempts`) keeps a row before the background purge deletes it (at least 1 hour).",
    },
];

fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Which rules the settings are held to (`VERIFYD_ENV`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The embedded default: made for a laptop (console sender, generated secret and key).
    Development,
    /// Refuses the laptop defaults and other unsafe settings (see [`Config::from_sources`]).
    Production,
}

impl Profile {
    pub const fn as_str(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Production => "production",
        }
    }
}

/// Which engine answers send-code and verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    Local,
    TwilioVerify,
}

impl ProviderKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::TwilioVerify => "twilio-verify",
        }
    }
}

/// How the local engine delivers a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderKind {
    Console,
    /// Discards messages: for benchmarks only.
    Null,
    TwilioMessaging,
    Webhook,
}

impl SenderKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            SenderKind::Console => "console",
            SenderKind::Null => "null",
            SenderKind::TwilioMessaging => "twilio-messaging",
            SenderKind::Webhook => "webhook",
        }
    }
}

/// Where Twilio Programmable Messaging sends from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessagingFrom {
    /// `MessagingServiceSid` (`MG…`): Twilio picks the number from the service's pool.
    Service(String),
    /// `From`: one Twilio number, short code or alphanumeric sender ID.
    Number(String),
}

/// The `twilio-messaging` sender's settings (present only when that sender is in use).
#[derive(Clone)]
pub struct TwilioMessagingConfig {
    pub account_sid: String,
    pub auth_token: SecretString,
    pub from: MessagingFrom,
}

impl fmt::Debug for TwilioMessagingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioMessagingConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

/// The `webhook` sender's settings (present only when that sender is in use).
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: SecretString,
    pub timeout: Duration,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How callers authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    ApiKey,
    Jwt,
    Both,
}

impl AuthMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMode::ApiKey => "api-key",
            AuthMode::Jwt => "jwt",
            AuthMode::Both => "both",
        }
    }

    /// Whether user tokens are accepted.
    pub const fn jwt(self) -> bool {
        matches!(self, AuthMode::Jwt | AuthMode::Both)
    }

    /// Whether API keys are accepted.
    pub const fn api_keys(self) -> bool {
        matches!(self, AuthMode::ApiKey | AuthMode::Both)
    }
}

/// Where user tokens come from and what they must say.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub leeway: Duration,
    pub refresh: Duration,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// SQLite's `synchronous` level in WAL mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteSync {
    Full,
    Normal,
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

/// The seed's three Twilio values, format-checked.
#[derive(Clone)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: SecretString,
    pub service_sid: String,
}

impl fmt::Debug for TwilioCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioCredentials")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("service_sid", &self.service_sid)
            .finish()
    }
}

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file.
    SqliteFile { url: String, path: PathBuf },
    /// A SQLite database in memory: nothing survives the process (tests and demos).
    SqliteMemory { url: String },
    /// A PostgreSQL database shared by every replica (`postgres://` or `postgresql://`).
    Postgres { url: String },
}

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        match self {
            DatabaseUrl::SqliteFile { url, .. }
            | DatabaseUrl::SqliteMemory { url }
            | DatabaseUrl::Postgres { url } => url,
        }
    }

    /// Whether several replicas share this store (limits must then be shared too).
    pub fn is_shared(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres { .. })
    }
}

/// The URL with any password replaced, so `Debug` never prints it.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            DatabaseUrl::SqliteFile { .. } => "SqliteFile",
            DatabaseUrl::SqliteMemory { .. } => "SqliteMemory",
            DatabaseUrl::Postgres { .. } => "Postgres",
        };
        write!(f, "{kind}({})", redact_url_password(self.as_str()))
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:<redacted>@host/…`; anything else unchanged.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}<redacted>{}",
        &url[..rest_start],
        &authority[..=colon],
        &url[rest_start + at..]
    )
}

/// The validated settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `development` (the default) or `production`.
    pub profile: Profile,
    pub addr: SocketAddr,
    pub database_url: DatabaseUrl,
    /// The server secrets, newest first. `None`: generated once and kept beside the SQLite file.
    pub secret: Option<ServerSecrets>,
    /// Empty: one key is generated on first start and stored hashed.
    pub api_keys: Vec<SecretString>,
    pub auth: AuthMode,
    /// Set when `auth` accepts user tokens.
    pub jwt: Option<JwtConfig>,
    pub provider: ProviderKind,
    /// Why this provider was chosen (for the startup log).
    pub provider_reason: &'static str,
    pub sms_sender: SenderKind,
    pub valid_country_codes: BTreeSet<Region>,
    pub channels: BTreeSet<Channel>,
    pub blocked_number_types: BTreeSet<NumberType>,
    /// The seed's IP bucket: the first interval of `send_limits.ip` (max 0 when off).
    pub rate_limit_ip: BucketConfig,
    /// Every send-code bucket.
    pub send_limits: SendLimits,
    /// Every verify bucket.
    pub verify_limits: VerifyLimits,
    /// Minimum time between two sends to one number (zero: no cooldown).
    pub resend_cooldown: Duration,
    /// Hard cap on keys tracked by the in-memory limiter.
    pub limiter_max_keys: usize,
    /// Numbers that get a fixed code and no SMS.
    pub test_numbers: Vec<TestNumber>,
    pub trusted_proxies: Vec<IpNet>,
    pub code_length: CodeLength,
    pub code_ttl: Duration,
    /// A separate, unauthenticated listener for `/metrics`.
    pub metrics_addr: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub shutdown_grace: Duration,
    pub request_timeout: Duration,
    pub store_timeout: Duration,
    pub sqlite_synchronous: SqliteSync,
    /// PostgreSQL store: connections per replica.
    pub db_pool_size: u32,
    /// PostgreSQL store: server-side `statement_timeout` of every connection.
    pub db_statement_timeout: Duration,
    /// `None`: the in-memory limiter (one node); else the Redis that shares every bucket.
    pub redis_url: Option<SecretString>,
    /// Prefix of the limiter's Redis keys.
    pub redis_prefix: String,
    pub twilio: Option<TwilioCredentials>,
    /// Base URL of Twilio Verify, without a trailing slash.
    pub twilio_verify_base_url: String,
    /// Base URL of Twilio's core REST API (Messaging), without a trailing slash.
    pub twilio_api_base_url: String,
    /// Base URL of Twilio's Messaging API (Messaging Services), without a trailing slash.
    pub twilio_messaging_base_url: String,
    /// Deadline of each Twilio call.
    pub twilio_timeout: Duration,
    /// Whether startup syncs the Twilio-side IP bucket (twilio-verify only).
    pub twilio_sync_rate_limits: bool,
    /// Set when the local engine delivers through Twilio Programmable Messaging.
    pub twilio_messaging: Option<TwilioMessagingConfig>,
    /// Set when the local engine delivers through the signed webhook.
    pub sms_webhook: Option<WebhookConfig>,
    /// Where clients reach verifyd, without a trailing slash: the `/v2` face's absolute URLs.
    /// `None`: `http://` + the bound listen address.
    pub public_url: Option<String>,
    /// The `/v2` account SID; `None`: generated once and kept in the store.
    pub account_sid: Option<String>,
    /// The default Verify service's SID; `None`: generated once and kept in the store.
    pub service_sid: Option<String>,
    /// The default service's name when verifyd creates it.
    pub service_name: String,
    /// How long attempt-log rows are kept.
    pub attempt_retention: Duration,
    /// Not errors, but worth a line at startup and in `verifyd config`.
    pub warnings: Vec<String>,
    /// Each setting's effective value and where it came from, secrets redacted.
    pub effective: Vec<(&'static str, String, Origin)>,
}

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Env,
    DotEnvDevelopment,
    DotEnv,
    TomlFile,
    Default,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Env => "env",
            Origin::DotEnvDevelopment => ".env.development",
            Origin::DotEnv => ".env",
            Origin::TomlFile => "verifyd.toml",
            Origin::Default => "default",
        }
    }
}

/// One bad setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub name: String,
    /// The offending value, already redacted when secret.
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} is not valid: {}",
            self.name, self.value, self.reason
        )
    }
}

/// Every problem found while loading the settings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// A function from a variable name to its value, if set.
type Lookup = dyn Fn(&str) -> Option<String>;

/// The layered sources, highest precedence first.
pub struct Sources {
    layers: Vec<(Origin, HashMap<String, String>)>,
    /// The structured sections of the TOML file (`rate_limits`, `test_numbers`).
    structured: toml::Table,
    env: Box<Lookup>,
}

impl Sources {
    /// Only `lookup` (tests pass a map; the binary passes the environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + 'static) -> Self {
        Self {
            layers: Vec::new(),
            structured: toml::Table::new(),
            env: Box::new(lookup),
        }
    }

    /// The process environment, `.env.development` and `.env` from `dir`, and the TOML file
    /// (`VERIFYD_CONFIG`, relative to `dir`, default `verifyd.toml`, optional unless named).
    ///
    /// # Errors
    /// A file that exists but cannot be read or parsed.
    pub fn load(
        dir: &Path,
        env: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut layers = Vec::new();
        for (origin, file) in [
            (Origin::DotEnvDevelopment, ".env.development"),
            (Origin::DotEnv, ".env"),
        ] {
            let path = dir.join(file);
            if !path.exists() {
                continue;
            }
            match dotenvy::from_path_iter(&path)
                .and_then(|it| it.collect::<Result<HashMap<_, _>, _>>())
            {
                Ok(map) => layers.push((origin, map)),
                Err(e) => problems.push(Problem {
                    name: file.to_owned(),
                    value: path.display().to_string(),
                    reason: format!("cannot be read: {e}"),
                }),
            }
        }
        let named =
            env(ENV_CONFIG).or_else(|| layers.iter().find_map(|(_, m)| m.get(ENV_CONFIG).cloned()));
        let toml_path = dir.join(named.as_deref().unwrap_or("verifyd.toml"));
        let mut structured = toml::Table::new();
        if toml_path.exists() {
            match read_toml(&toml_path) {
                Ok((map, sections)) => {
                    layers.push((Origin::TomlFile, map));
                    structured = sections;
                }
                Err(reason) => problems.push(Problem {
                    name: ENV_CONFIG.to_owned(),
                    value: toml_path.display().to_string(),
                    reason,
                }),
            }
        } else if named.is_some() {
            problems.push(Problem {
                name: ENV_CONFIG.to_owned(),
                value: toml_path.display().to_string(),
                reason: "file does not exist".to_owned(),
            });
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Self {
            layers,
            structured,
            env: Box::new(env),
        })
    }

    fn get(&self, name: &str) -> Option<(String, Origin)> {
        if let Some(v) = (self.env)(name) {
            return Some((v, Origin::Env));
        }
        self.layers
            .iter()
            .find_map(|(origin, map)| map.get(name).map(|v| (v.clone(), *origin)))
    }
}

/// Reads `verifyd.toml`: a flat table whose keys are the variable names in lowercase without
/// `VERIFYD_` (`rate_limit_ip_max = 4`, `valid_country_codes = ["US", "CA"]`,
/// `twilio_account_sid = "AC…"`), plus the structured sections `[rate_limits.*]` and
/// `[[test_numbers]]`. Unknown keys are errors, so typos do not pass silently.
fn read_toml(path: &Path) -> Result<(HashMap<String, String>, toml::Table), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("is not valid TOML: {e}"))?;
    let mut out = HashMap::new();
    let mut structured = toml::Table::new();
    for (key, value) in table {
        if key == "rate_limits" || key == "test_numbers" {
            structured.insert(key, value);
            continue;
        }
        let upper = key.to_ascii_uppercase();
        let name = if (upper.starts_with("TWILIO_") && setting(&upper).is_some())
            || upper == ENV_RUST_LOG
        {
            upper
        } else {
            format!("VERIFYD_{upper}")
        };
        if setting(&name).is_none() || name == ENV_CONFIG {
            return Err(format!("unknown setting `{key}`"));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    _ => Err(format!("`{key}` must be a list of strings")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(format!("`{key}` must be a string, number, boolean or list")),
        };
        out.insert(name, text);
    }
    Ok((out, structured))
}

impl Reader<'_> {
    /// The JWT settings: required (and checked) when `auth` accepts user tokens.
    fn jwt(&mut self, auth: Option<AuthMode>) -> Option<JwtConfig> {
        let url = self
            .raw(ENV_JWT_JWKS_URL)
            .0
            .filter(|v| !v.trim().is_empty());
        let issuer = self.raw(ENV_JWT_ISSUER).0.filter(|v| !v.trim().is_empty());
        let audience = self
            .raw(ENV_JWT_AUDIENCE)
            .0
            .filter(|v| !v.trim().is_empty());
        let algorithms = self.parse(ENV_JWT_ALGORITHMS, |t| {
            use jsonwebtoken::Algorithm as A;
            let list = list(t)
                .map(|name| match name {
                    "RS256" => Ok(A::RS256),
                    "RS384" => Ok(A::RS384),
                    "RS512" => Ok(A::RS512),
                    "PS256" => Ok(A::PS256),
                    "PS384" => Ok(A::PS384),
                    "PS512" => Ok(A::PS512),
                    "ES256" => Ok(A::ES256),
                    "ES384" => Ok(A::ES384),
                    "EdDSA" => Ok(A::EdDSA),
                    "none" | "HS256" | "HS384" | "HS512" => Err(format!(
                        "`{name}` is never accepted: only asymmetric algorithms are verified against a JWKS"
                    )),
                    other => Err(format!("`{other}` is not a JWS algorithm")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if list.is_empty() {
                return Err("list at least one algorithm".to_owned());
            }
            Ok(list)
        });
        let leeway = self.parse(ENV_JWT_LEEWAY, |t| {
            let d = parse_duration(t)?;
            if d > Duration::from_secs(300) {
                return Err("at most 300 seconds".to_owned());
            }
            Ok(d)
        });
        let refresh = self.parse(ENV_JWT_JWKS_REFRESH, |t| {
            let d = parse_duration(t)?;
            if d < Duration::from_secs(60) {
                return Err("at least 60 seconds".to_owned());
            }
            Ok(d)
        });
        if !auth.is_some_and(AuthMode::jwt) {
            return None;
        }
        let mut need = |name: &'static str, v: &Option<String>| {
            if v.is_none() {
                self.problem(name, "", "required when VERIFYD_AUTH is jwt or both");
            }
        };
        need(ENV_JWT_JWKS_URL, &url);
        need(ENV_JWT_ISSUER, &issuer);
        need(ENV_JWT_AUDIENCE, &audience);
        if let Some(u) = &url
            && let Err(e) = parse_base_url(u)
        {
            self.problem(ENV_JWT_JWKS_URL, u, e);
            return None;
        }
        Some(JwtConfig {
            jwks_url: url?,
            issuer: issuer?,
            audience: audience?,
            algorithms: algorithms?,
            leeway: leeway?,
            refresh: refresh?,
        })
    }
}

/// Settings holding URLs that may carry a password: shown with the password redacted.
const URL_SETTINGS: &[&str] = &[ENV_DATABASE_URL, ENV_REDIS_URL];

/// Collects values and problems while the settings are read.
struct Reader<'a> {
    sources: &'a Sources,
    problems: Vec<Problem>,
    effective: Vec<(&'static str, String, Origin)>,
}

impl Reader<'_> {
    /// The raw value (or default) of a documented setting, recorded for `verifyd config`.
    fn raw(&mut self, name: &'static str) -> (Option<String>, Origin) {
        let spec = setting(name).expect("every ENV_* constant is in SETTINGS");
        let (value, origin) = match self.sources.get(name) {
            Some((v, o)) => (Some(v), o),
            None => (None, Origin::Default),
        };
        let shown = match (&value, spec.secret) {
            (Some(v), true) if !v.is_empty() => "<redacted>".to_owned(),
            (Some(v), _) if URL_SETTINGS.contains(&name) => redact_url_password(v),
            (Some(v), _) => v.clone(),
            (None, _) if spec.default.is_empty() => "<unset>".to_owned(),
            (None, _) => spec.default.to_owned(),
        };
        self.effective.push((name, shown, origin));
        (value, origin)
    }

    /// The value, or the default when unset.
    fn text(&mut self, name: &'static str) -> String {
        let (value, _) = self.raw(name);
        value.unwrap_or_else(|| {
            setting(name)
                .map(|s| s.default.to_owned())
                .unwrap_or_default()
        })
    }

    /// Parses the value (or default) with `parse`, recording a problem on failure.
    fn parse<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.text(name);
        match parse(text.trim()) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.problem(name, &text, reason);
                None
            }
        }
    }

    /// A problem with a setting that has no value (shown as `<unset>`, never redacted text).
    fn unset_problem(&mut self, name: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            name: name.to_owned(),
            value: "<unset>".to_owned(),
            reason: reason.into(),
        });
    }

    fn problem(&mut self, name: &str, value: &str, reason: impl Into<String>) {
        let secret = setting(name).is_some_and(|s| s.secret);
        self.problems.push(Problem {
            name: name.to_owned(),
            value: if secret {
                "<redacted>".to_owned()
            } else if URL_SETTINGS.contains(&name) {
                format!("{:?}", redact_url_password(value))
            } else {
                format!("{value:?}")
            },
            reason: reason.into(),
        });
    }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_list<T: FromStr + Ord>(text: &str, what: &str) -> Result<BTreeSet<T>, String> {
    list(text)
        .map(|item| {
            item.parse::<T>()
                .map_err(|_| format!("`{item}` is not {what}"))
        })
        .collect()
}

/// Seconds as a plain integer, or with a unit suffix: `90`, `90s`, `10m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected whole seconds, or a number with s, m, h or d".to_owned())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err("expected whole seconds, or a number with s, m, h or d".to_owned()),
    };
    Ok(Duration::from_secs(secs))
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(d)
}

/// An absolute `http(s)://` URL without query or fragment; returned without a trailing slash.
fn parse_base_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Twilio's `From`: an E.164 number, a short code (digits) or an alphanumeric sender ID.
fn sender_id(text: &str) -> Result<(), String> {
    let ok = if let Some(digits) = text.strip_prefix('+') {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    } else {
        (3..=11).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
    };
    if ok {
        Ok(())
    } else {
        Err("expected an E.164 number (+...), a short code or an alphanumeric sender ID (up to 11 characters)".to_owned())
    }
}

fn sid(text: &str, prefix: &str) -> Result<String, String> {
    let ok = text
        .strip_prefix(prefix)
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("must be `{prefix}` followed by 32 hex digits"))
    }
}

impl Config {
    /// Reads the binary's sources: the environment and the files in the working directory.
    ///
    /// # Errors
    /// [`ConfigError`] listing every bad setting.
    pub fn load() -> Result<Self, ConfigError> {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let sources = Sources::load(&dir, |k| std::env::var(k).ok())?;
        Self::from_sources(&sources)
    }

    /// Reads the settings from a lookup function only (tests use a map).
    ///
    /// # Errors
    /// [`ConfigError`] listing every bad setting.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Self, ConfigError> {
        Self::from_sources(&Sources::from_lookup(lookup))
    }

    /// Reads and validates every setting from `sources`.
    ///
    /// # Errors
    /// [`ConfigError`] listing every bad setting.
    pub fn from_sources(sources: &Sources) -> Result<Self, ConfigError> {
        let mut r = Reader {
            sources,
            problems: Vec::new(),
            effective: Vec::new(),
        };
        let mut warnings = Vec::new();

        let profile = r.parse(ENV_ENV, |t| match t {
            "development" => Ok(Profile::Development),
            "production" => Ok(Profile::Production),
            _ => Err("expected `development` or `production`".to_owned()),
        });
        let addr = r.parse(ENV_ADDR, |t| {
            t.parse::<SocketAddr>()
                .map_err(|_| "expected IP:port, for example 127.0.0.1:8080".to_owned())
        });
        let database_url = r.parse(ENV_DATABASE_URL, parse_database_url);
        let secret = {
            let (value, _) = r.raw(ENV_SECRET);
            match value.filter(|v| !v.trim().is_empty()) {
                None => Some(None),
                Some(v) => match ServerSecrets::parse(&v) {
                    Ok(s) => Some(Some(s)),
                    Err(e) => {
                        r.problem(ENV_SECRET, &v, e.to_string());
                        None
                    }
                },
            }
        };
        let api_keys = {
            let (value, _) = r.raw(ENV_API_KEYS);
            let keys: Vec<String> = value
                .as_deref()
                .map(list)
                .into_iter()
                .flatten()
                .map(str::to_owned)
                .collect();
            if keys.iter().any(|k| k.len() < 16) {
                r.problem(
                    ENV_API_KEYS,
                    "",
                    "every key must be at least 16 characters long",
                );
            }
            keys.into_iter().map(SecretString::from).collect::<Vec<_>>()
        };

        let auth = r.parse(ENV_AUTH, |t| match t {
            "api-key" => Ok(AuthMode::ApiKey),
            "jwt" => Ok(AuthMode::Jwt),
            "both" => Ok(AuthMode::Both),
            _ => Err("expected `api-key`, `jwt` or `both`".to_owned()),
        });
        let jwt = r.jwt(auth);
        let twilio_sid = r.raw(ENV_TWILIO_ACCOUNT_SID).0.filter(|v| !v.is_empty());
        let twilio_token = r.raw(ENV_TWILIO_AUTH_TOKEN).0.filter(|v| !v.is_empty());
        let twilio_service = r.raw(ENV_TWILIO_SERVICE_SID).0.filter(|v| !v.is_empty());
        let all_twilio = twilio_sid.is_some() && twilio_token.is_some() && twilio_service.is_some();
        let any_twilio = twilio_sid.is_some() || twilio_token.is_some() || twilio_service.is_some();
        if let Some(v) = &twilio_sid
            && let Err(e) = sid(v, "AC")
        {
            r.problem(ENV_TWILIO_ACCOUNT_SID, v, e);
        }
        if let Some(v) = &twilio_service
            && let Err(e) = sid(v, "VA")
        {
            r.problem(ENV_TWILIO_SERVICE_SID, v, e);
        }
        if let Some(v) = &twilio_token
            && (v.len() < 32 || !v.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            r.problem(
                ENV_TWILIO_AUTH_TOKEN,
                v,
                "must be the 32-character Auth Token from the Twilio console",
            );
        }
        let twilio = all_twilio.then(|| TwilioCredentials {
            account_sid: twilio_sid.clone().unwrap_or_default(),
            auth_token: SecretString::from(twilio_token.clone().unwrap_or_default()),
            service_sid: twilio_service.clone().unwrap_or_default(),
        });

        let (provider_raw, _) = r.raw(ENV_PROVIDER);
        let (provider, provider_reason) = match provider_raw.as_deref().map(str::trim) {
            Some("local") => (Some(ProviderKind::Local), "VERIFYD_PROVIDER=local"),
            Some("twilio-verify") => {
                if !all_twilio {
                    r.problem(
                        ENV_PROVIDER,
                        "twilio-verify",
                        "needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_SERVICE_SID",
                    );
                }
                (
                    Some(ProviderKind::TwilioVerify),
                    "VERIFYD_PROVIDER=twilio-verify",
                )
            }
            Some(other) => {
                r.problem(ENV_PROVIDER, other, "expected `local` or `twilio-verify`");
                (None, "")
            }
            None if all_twilio => (
                Some(ProviderKind::TwilioVerify),
                "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_SERVICE_SID are all set",
            ),
            None => {
                // The Messaging sender needs only the Account SID and token: not a partial Verify setup.
                let messaging_wanted = r
                    .sources
                    .get(ENV_SMS_SENDER)
                    .is_some_and(|(v, _)| v.trim() == "twilio-messaging");
                if any_twilio && !(messaging_wanted && twilio_service.is_none()) {
                    warnings.push(
                        "some but not all of TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_SERVICE_SID are set; \
                         set all three to use Twilio Verify"
                            .to_owned(),
                    );
                }
                (
                    Some(ProviderKind::Local),
                    "no Twilio credentials set (the embedded default)",
                )
            }
        };
        let sms_sender = r.parse(ENV_SMS_SENDER, |t| match t {
            "console" => Ok(SenderKind::Console),
            "twilio-messaging" => Ok(SenderKind::TwilioMessaging),
            "webhook" => Ok(SenderKind::Webhook),
            "null" => Ok(SenderKind::Null),
            _ => Err("expected `console`, `twilio-messaging`, `webhook` or `null`".to_owned()),
        });
        if sms_sender == Some(SenderKind::Null) {
            warnings.push(
                "VERIFYD_SMS_SENDER=null discards every message: for benchmarks only".to_owned(),
            );
        }
        let twilio_verify_base_url = r.parse(ENV_TWILIO_VERIFY_BASE_URL, parse_base_url);
        let twilio_api_base_url = r.parse(ENV_TWILIO_API_BASE_URL, parse_base_url);
        let twilio_messaging_base_url = r.parse(ENV_TWILIO_MESSAGING_BASE_URL, parse_base_url);
        let twilio_timeout = r.parse(ENV_TWILIO_TIMEOUT, positive_duration);
        let twilio_sync_rate_limits = r.parse(ENV_TWILIO_SYNC_RATE_LIMITS, parse_bool);
        let messaging_service = r
            .raw(ENV_TWILIO_MESSAGING_SERVICE_SID)
            .0
            .filter(|v| !v.trim().is_empty());
        if let Some(v) = &messaging_service
            && let Err(e) = sid(v.trim(), "MG")
        {
            r.problem(ENV_TWILIO_MESSAGING_SERVICE_SID, v, e);
        }
        let twilio_from = r.raw(ENV_TWILIO_FROM).0.filter(|v| !v.trim().is_empty());
        if let Some(v) = &twilio_from
            && let Err(e) = sender_id(v.trim())
        {
            r.problem(ENV_TWILIO_FROM, v, e);
        }
        let webhook_url_raw = r
            .raw(ENV_SMS_WEBHOOK_URL)
            .0
            .filter(|v| !v.trim().is_empty());
        let webhook_url_set = webhook_url_raw.is_some();
        let webhook_url = match webhook_url_raw {
            Some(v) => match parse_base_url(v.trim()) {
                Ok(url) => Some(url),
                Err(e) => {
                    r.problem(ENV_SMS_WEBHOOK_URL, &v, e);
                    None
                }
            },
            None => None,
        };
        let webhook_secret = r.raw(ENV_SMS_WEBHOOK_SECRET).0.filter(|v| !v.is_empty());
        if let Some(v) = &webhook_secret
            && v.len() < 16
        {
            r.problem(
                ENV_SMS_WEBHOOK_SECRET,
                v,
                "must be at least 16 characters long",
            );
        }
        let webhook_timeout = r.parse(ENV_SMS_WEBHOOK_TIMEOUT, positive_duration);
        // The sender's own settings are judged only when the local engine uses that sender.
        let mut twilio_messaging = None;
        let mut sms_webhook = None;
        match (provider, sms_sender) {
            (Some(ProviderKind::Local), Some(SenderKind::TwilioMessaging)) => {
                if twilio_sid.is_none() || twilio_token.is_none() {
                    r.problem(
                        ENV_SMS_SENDER,
                        "twilio-messaging",
                        "needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
                    );
                }
                let from = match (&messaging_service, &twilio_from) {
                    (Some(m), None) => Some(MessagingFrom::Service(m.trim().to_owned())),
                    (None, Some(f)) => Some(MessagingFrom::Number(f.trim().to_owned())),
                    (Some(_), Some(f)) => {
                        r.problem(
                            ENV_TWILIO_FROM,
                            f,
                            "set either TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM, not both",
                        );
                        None
                    }
                    (None, None) => {
                        r.problem(
                            ENV_SMS_SENDER,
                            "twilio-messaging",
                            "needs TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM",
                        );
                        None
                    }
                };
                if let (Some(account_sid), Some(token), Some(from)) =
                    (&twilio_sid, &twilio_token, from)
                {
                    twilio_messaging = Some(TwilioMessagingConfig {
                        account_sid: account_sid.clone(),
                        auth_token: SecretString::from(token.clone()),
                        from,
                    });
                }
            }
            (Some(ProviderKind::Local), Some(SenderKind::Webhook)) => {
                if !webhook_url_set {
                    r.problem(ENV_SMS_SENDER, "webhook", "needs VERIFYD_SMS_WEBHOOK_URL");
                }
                if webhook_secret.is_none() {
                    r.problem(
                        ENV_SMS_SENDER,
                        "webhook",
                        "needs VERIFYD_SMS_WEBHOOK_SECRET (the HMAC key of the signature)",
                    );
                }
                if let (Some(url), Some(secret), Some(timeout)) =
                    (&webhook_url, &webhook_secret, webhook_timeout)
                {
                    sms_webhook = Some(WebhookConfig {
                        url: url.clone(),
                        secret: SecretString::from(secret.clone()),
                        timeout,
                    });
                }
            }
            (Some(ProviderKind::TwilioVerify), Some(sender)) if sender != SenderKind::Console => {
                warnings.push(format!(
                    "VERIFYD_SMS_SENDER={} is unused: with provider twilio-verify, Twilio delivers the codes",
                    sender.as_str()
                ));
            }
            _ => {}
        }
        let valid_country_codes = r.parse(ENV_VALID_COUNTRY_CODES, |t| {
            let set: BTreeSet<Region> = parse_list(t, "an ISO 3166-1 alpha-2 region code")?;
            if set.is_empty() {
                return Err("list at least one region".to_owned());
            }
            Ok(set)
        });
        let channels = r.parse(ENV_CHANNELS, |t| {
            let set: BTreeSet<Channel> =
                parse_list(t, "a channel (sms, call, whatsapp, email, sna)")?;
            if set.is_empty() {
                return Err("list at least one channel".to_owned());
            }
            Ok(set)
        });
        let blocked_number_types = r.parse(ENV_BLOCKED_NUMBER_TYPES, |t| {
            parse_list::<NumberType>(t, "a number type (premium_rate, shared_cost, uan, voicemail, pager, unknown, toll_free, voip, fixed_line, mobile, fixed_line_or_mobile, personal_number)")
        });
        let (send_limits, verify_limits) = r.limits();
        let resend_cooldown = r.parse(ENV_RESEND_COOLDOWN, parse_duration);
        let limiter_max_keys = r.parse(ENV_LIMITER_MAX_KEYS, |t| {
            t.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1000)
                .ok_or_else(|| "expected a whole number of at least 1000".to_owned())
        });
        let trusted_proxies = r.parse(ENV_TRUSTED_PROXIES, |t| {
            list(t)
                .map(|item| {
                    item.parse::<IpNet>()
                        .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map(|n| n.trunc())
                        .map_err(|_| format!("`{item}` is not a CIDR or IP address"))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let code_length = r.parse(ENV_CODE_LENGTH, |t| {
            t.parse::<u8>()
                .ok()
                .and_then(CodeLength::new)
                .ok_or_else(|| "expected a number from 4 to 10".to_owned())
        });
        let test_numbers = r.test_numbers(code_length);
        let public_url = r.parse(ENV_PUBLIC_URL, |t| {
            if t.is_empty() {
                Ok(None)
            } else {
                parse_base_url(t).map(Some)
            }
        });
        let account_sid = r.parse(ENV_ACCOUNT_SID, |t| {
            if t.is_empty() {
                Ok(None)
            } else {
                sid(t, "AC").map(Some)
            }
        });
        let service_sid = r.parse(ENV_SERVICE_SID, |t| {
            if t.is_empty() {
                Ok(None)
            } else {
                sid(t, "VA").map(Some)
            }
        });
        let service_name = r.parse(ENV_SERVICE_NAME, |t| {
            if t.is_empty() || t.chars().count() > 30 {
                Err("expected 1 to 30 characters".to_owned())
            } else {
                Ok(t.to_owned())
            }
        });
        let attempt_retention = r.parse(ENV_ATTEMPT_RETENTION, |t| {
            let d = parse_duration(t)?;
            if d < Duration::from_secs(3600) {
                return Err("must be at least one hour".to_owned());
            }
            Ok(d)
        });
        let code_ttl = r.parse(ENV_CODE_TTL, |t| {
            let d = positive_duration(t)?;
            if d > Duration::from_secs(86_400) {
                return Err("must be at most one day".to_owned());
            }
            Ok(d)
        });
        let metrics_addr = r.parse(ENV_METRICS_ADDR, |t| {
            if t.is_empty() {
                return Ok(None);
            }
            t.parse::<SocketAddr>()
                .map(Some)
                .map_err(|_| "expected IP:port, for example 127.0.0.1:9090".to_owned())
        });
        let log_format = r.parse(ENV_LOG_FORMAT, |t| match t {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `pretty` or `json`".to_owned()),
        });
        let log_filter = r.parse(ENV_RUST_LOG, |t| {
            tracing_subscriber::EnvFilter::try_new(t)
                .map(|_| t.to_owned())
                .map_err(|e| format!("not a log filter: {e}"))
        });
        let shutdown_grace = r.parse(ENV_SHUTDOWN_GRACE, parse_duration);
        let request_timeout = r.parse(ENV_REQUEST_TIMEOUT, positive_duration);
        let store_timeout = r.parse(ENV_STORE_TIMEOUT, positive_duration);
        let sqlite_synchronous = r.parse(ENV_SQLITE_SYNCHRONOUS, |t| match t {
            "full" => Ok(SqliteSync::Full),
            "normal" => Ok(SqliteSync::Normal),
            _ => Err("expected `full` or `normal`".to_owned()),
        });
        let db_pool_size = r.parse(ENV_DB_POOL_SIZE, |t| match t.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err("expected a number of connections from 1 to 1000".to_owned()),
        });
        let db_statement_timeout = r.parse(ENV_DB_STATEMENT_TIMEOUT, positive_duration);
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
        let _ = r.raw(ENV_CONFIG);
        let auth_mode = auth.unwrap_or(AuthMode::ApiKey);

        if profile == Some(Profile::Production) {
            production_rules(
                &mut r,
                &Judged {
                    provider,
                    sms_sender,
                    secret_set: !matches!(secret, Some(None)),
                    auth_mode,
                    api_keys_set: !api_keys.is_empty(),
                    trusted_proxies: trusted_proxies.as_deref(),
                    test_numbers: &test_numbers,
                },
            );
        }

        if let Some(DatabaseUrl::Postgres { .. }) = &database_url {
            if let Some(None) = &secret {
                r.problem(
                    ENV_SECRET,
                    "",
                    "must be set when the store is PostgreSQL: every replica needs the same \
                     secret, so a generated one is refused",
                );
            }
            if let Some(None) = &redis_url {
                warnings.push(
                    "the store is shared (PostgreSQL) but the rate limiter is in this process's memory: \
                     every replica counts its own buckets, so each limit multiplies by the number of \
                     replicas; set VERIFYD_REDIS_URL=redis://host:6379 to share them"
                        .to_owned(),
                );
            }
            if api_keys.is_empty() {
                warnings.push(
                    "the store is shared (PostgreSQL) and VERIFYD_API_KEYS is unset: the generated key \
                     is read from the database at startup, so startup needs the database; \
                     set VERIFYD_API_KEYS on every replica"
                        .to_owned(),
                );
            }
        }

        if let (Some(DatabaseUrl::SqliteMemory { .. }), Some(None)) = (&database_url, &secret) {
            warnings.push(
                "the store is in memory and VERIFYD_SECRET is unset: a secret is generated for this process only"
                    .to_owned(),
            );
        }
        if profile != Some(Profile::Production)
            && trusted_proxies
                .as_ref()
                .is_some_and(|p| p.iter().any(|n| n.prefix_len() == 0))
        {
            warnings.push(
                "VERIFYD_TRUSTED_PROXIES trusts every address: any client can choose its own IP bucket".to_owned(),
            );
        }

        if let (Some(ProviderKind::TwilioVerify), Some(twilio), Some(request)) =
            (provider, twilio_timeout, request_timeout)
            && twilio >= request
        {
            warnings.push(
                "TWILIO_TIMEOUT is not below VERIFYD_REQUEST_TIMEOUT: a slow Twilio is answered 503 instead of 502"
                    .to_owned(),
            );
        }

        let Reader {
            problems,
            effective,
            ..
        } = r;
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        // Every `None` above recorded a problem, so all are `Some` here.
        let missing = || ConfigError {
            problems: Vec::new(),
        };
        Ok(Config {
            profile: profile.ok_or_else(missing)?,
            addr: addr.ok_or_else(missing)?,
            database_url: database_url.ok_or_else(missing)?,
            secret: secret.ok_or_else(missing)?,
            api_keys,
            auth: auth.ok_or_else(missing)?,
            jwt,
            provider: provider.ok_or_else(missing)?,
            provider_reason,
            sms_sender: sms_sender.ok_or_else(missing)?,
            valid_country_codes: valid_country_codes.ok_or_else(missing)?,
            channels: channels.ok_or_else(missing)?,
            blocked_number_types: blocked_number_types.ok_or_else(missing)?,
            rate_limit_ip: send_limits.ip.first().copied().unwrap_or(BucketConfig {
                max: 0,
                interval: Duration::from_secs(60),
            }),
            send_limits,
            verify_limits,
            resend_cooldown: resend_cooldown.ok_or_else(missing)?,
            limiter_max_keys: limiter_max_keys.ok_or_else(missing)?,
            test_numbers,
            trusted_proxies: trusted_proxies.ok_or_else(missing)?,
            code_length: code_length.ok_or_else(missing)?,
            code_ttl: code_ttl.ok_or_else(missing)?,
            metrics_addr: metrics_addr.ok_or_else(missing)?,
            log_format: log_format.ok_or_else(missing)?,
            log_filter: log_filter.ok_or_else(missing)?,
            shutdown_grace: shutdown_grace.ok_or_else(missing)?,
            request_timeout: request_timeout.ok_or_else(missing)?,
            store_timeout: store_timeout.ok_or_else(missing)?,
            sqlite_synchronous: sqlite_synchronous.ok_or_else(missing)?,
            db_pool_size: db_pool_size.ok_or_else(missing)?,
            db_statement_timeout: db_statement_timeout.ok_or_else(missing)?,
            redis_url: redis_url.ok_or_else(missing)?,
            redis_prefix: redis_prefix.ok_or_else(missing)?,
            twilio,
            twilio_verify_base_url: twilio_verify_base_url.ok_or_else(missing)?,
            twilio_api_base_url: twilio_api_base_url.ok_or_else(missing)?,
            twilio_messaging_base_url: twilio_messaging_base_url.ok_or_else(missing)?,
            twilio_timeout: twilio_timeout.ok_or_else(missing)?,
            twilio_sync_rate_limits: twilio_sync_rate_limits.ok_or_else(missing)?,
            twilio_messaging,
            sms_webhook,
            public_url: public_url.ok_or_else(missing)?,
            account_sid: account_sid.ok_or_else(missing)?,
            service_sid: service_sid.ok_or_else(missing)?,
            service_name: service_name.ok_or_else(missing)?,
            attempt_retention: attempt_retention.ok_or_else(missing)?,
            warnings,
            effective,
        })
    }

    /// The effective settings as `NAME=value  (origin)` lines, secrets redacted.
    pub fn describe(&self) -> String {
        let width = SETTINGS.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (name, value, origin) in &self.effective {
            out.push_str(&format!(
                "{name:<width$} = {value}  ({})\n",
                origin.as_str()
            ));
        }
        out.push_str(&format!(
            "{:<width$} = {}  (because {})\n",
            "provider (effective)",
            self.provider.as_str(),
            self.provider_reason
        ));
        let s = &self.send_limits;
        let v = &self.verify_limits;
        for (name, buckets) in [
            ("send buckets: ip", &s.ip),
            ("send buckets: phone", &s.phone),
            ("send buckets: prefix", &s.prefix),
            ("send buckets: country", &s.country),
            ("send buckets: global", &s.global),
            ("send buckets: user", &s.user),
            ("verify buckets: ip", &v.ip),
            ("verify buckets: phone_failures", &v.phone_failures),
            (
                "verify buckets: phone_failures_ceiling",
                &v.phone_failures_ceiling,
            ),
        ] {
            out.push_str(&format!("{name:<width$} = {}\n", limits::describe(buckets)));
        }
        for t in &self.test_numbers {
            out.push_str(&format!(
                "{:<width$} = {} (code redacted, valid until {})\n",
                "test number",
                t.number.masked(),
                t.valid_until
                    .map_or_else(|| "forever".to_owned(), |u| u.to_rfc3339())
            ));
        }
        out
    }

    /// Whether an API key is configured, for tests and the startup line.
    pub fn api_keys_exposed(&self) -> Vec<&str> {
        self.api_keys.iter().map(|k| k.expose_secret()).collect()
    }
}

/// What the production rules look at (only what is in use is judged).
struct Judged<'a> {
    provider: Option<ProviderKind>,
    sms_sender: Option<SenderKind>,
    secret_set: bool,
    auth_mode: AuthMode,
    api_keys_set: bool,
    trusted_proxies: Option<&'a [IpNet]>,
    test_numbers: &'a [TestNumber],
}

/// `VERIFYD_ENV=production`: refuses the laptop defaults and the settings that undo a
/// protection, one problem per rule, each naming its variable.
fn production_rules(r: &mut Reader<'_>, j: &Judged<'_>) {
    // The sender is judged only when the local engine delivers with it (twilio-verify: unused).
    if j.provider == Some(ProviderKind::Local)
        && let Some(sender @ (SenderKind::Console | SenderKind::Null)) = j.sms_sender
    {
        let why = match sender {
            SenderKind::Console => "prints codes to stdout and serves them at /dev/outbox",
            _ => "discards every code",
        };
        r.problem(
            ENV_SMS_SENDER,
            sender.as_str(),
            format!(
                "is refused in production: it {why}; set VERIFYD_SMS_SENDER=twilio-messaging or webhook, or use Twilio Verify (VERIFYD_PROVIDER=twilio-verify)"
            ),
        );
    }
    if !j.secret_set {
        r.unset_problem(
            ENV_SECRET,
            "must be set explicitly in production (a generated secret lives in one file beside one database, is lost with it and cannot be shared by replicas); generate one with `openssl rand -hex 32`",
        );
    }
    // With `jwt` the JWT settings are required in every profile; API keys, when accepted, must
    // be listed explicitly here.
    if j.auth_mode.api_keys() && !j.api_keys_set {
        r.unset_problem(
            ENV_API_KEYS,
            "must be set explicitly in production (a generated key is printed once to stdout); list your keys, comma-separated",
        );
    }
    if let Some(proxies) = j.trusted_proxies
        && let Some(all) = proxies.iter().find(|n| n.prefix_len() == 0)
    {
        r.problem(
            ENV_TRUSTED_PROXIES,
            &all.to_string(),
            "trusts every address, so any client chooses its own IP bucket with X-Forwarded-For; list only your reverse proxies' addresses",
        );
    }
    for (i, t) in j.test_numbers.iter().enumerate() {
        if t.valid_until.is_none() {
            r.problems.push(Problem {
                name: format!("test_numbers[{i}]"),
                value: t.number.masked(),
                reason: "has no valid_until: in production a test number (a fixed code that approves) must expire; add valid_until = \"YYYY-MM-DD\""
                    .to_owned(),
            });
        }
    }
}

fn parse_database_url(text: &str) -> Result<DatabaseUrl, String> {
    if let Some(rest) = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"))
    {
        if rest.is_empty() {
            return Err("expected postgres://user[:password]@host[:port]/database".to_owned());
        }
        return Ok(DatabaseUrl::Postgres {
            url: text.to_owned(),
        });
    }
    let rest = text
        .strip_prefix("sqlite://")
        .or_else(|| text.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            "expected sqlite://<path> (or sqlite::memory:) or postgres://user@host/database"
                .to_owned()
        })?;
    let path_part = rest.split('?').next().unwrap_or_default();
    if path_part.is_empty() {
        return Err("expected sqlite://<path> (or sqlite::memory:)".to_owned());
    }
    if path_part == ":memory:" {
        return Ok(DatabaseUrl::SqliteMemory {
            url: text.to_owned(),
        });
    }
    Ok(DatabaseUrl::SqliteFile {
        url: text.to_owned(),
        path: PathBuf::from(path_part),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = config(&[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.provider, ProviderKind::Local);
        assert_eq!(
            c.valid_country_codes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["US"]
        );
        assert_eq!(
            c.channels.iter().copied().collect::<Vec<_>>(),
            [Channel::Sms]
        );
        assert_eq!(
            c.rate_limit_ip,
            BucketConfig {
                max: 4,
                interval: Duration::from_secs(60)
            }
        );
        assert_eq!(c.code_length.get(), 6);
        assert_eq!(c.code_ttl, Duration::from_secs(600));
        assert!(c.secret.is_none() && c.api_keys.is_empty() && c.twilio.is_none());
    }

    #[test]
    fn every_bad_variable_is_reported_at_once_with_secrets_redacted() {
        let err = config(&[
            (ENV_ADDR, "nope"),
            (ENV_VALID_COUNTRY_CODES, "US,XX"),
            (ENV_CHANNELS, "sms,pigeon"),
            (ENV_RATE_LIMIT_IP_MAX, "-1"),
            (ENV_CODE_LENGTH, "12"),
            (ENV_SECRET, "short-secret-value"),
            (ENV_TWILIO_ACCOUNT_SID, "XX123"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for name in [
            ENV_ADDR,
            ENV_VALID_COUNTRY_CODES,
            ENV_CHANNELS,
            ENV_RATE_LIMIT_IP_MAX,
            ENV_CODE_LENGTH,
            ENV_SECRET,
            ENV_TWILIO_ACCOUNT_SID,
        ] {
            assert!(
                text.contains(&format!("{name}=")),
                "{name} missing from:\n{text}"
            );
        }
        assert!(!text.contains("short-secret-value"), "{text}");
        assert_eq!(err.problems.len(), 7);
    }

    #[test]
    fn all_three_twilio_values_select_twilio_verify() {
        let c = config(&[
            (ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_AUTH_TOKEN, "fedcba9876543210fedcba9876543210"),
            (ENV_TWILIO_SERVICE_SID, "VA0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(c.provider, ProviderKind::TwilioVerify);
        assert!(!format!("{:?}", c.twilio).contains("fedcba98"));
        assert!(!c.describe().contains("fedcba98"));
    }

    #[test]
    fn twilio_settings_have_defaults_and_are_checked() {
        let c = config(&[]).unwrap();
        assert_eq!(c.twilio_verify_base_url, "https://verify.twilio.com");
        assert_eq!(c.twilio_api_base_url, "https://api.twilio.com");
        assert_eq!(c.twilio_timeout, Duration::from_secs(10));
        assert!(c.twilio_sync_rate_limits);
        let c = config(&[
            (ENV_TWILIO_VERIFY_BASE_URL, "http://127.0.0.1:9/"),
            (ENV_TWILIO_SYNC_RATE_LIMITS, "false"),
        ])
        .unwrap();
        assert_eq!(c.twilio_verify_base_url, "http://127.0.0.1:9");
        assert!(!c.twilio_sync_rate_limits);
        let err = config(&[
            (ENV_TWILIO_VERIFY_BASE_URL, "ftp://x"),
            (ENV_TWILIO_TIMEOUT, "0"),
            (ENV_TWILIO_SYNC_RATE_LIMITS, "maybe"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    #[test]
    fn the_messaging_sender_needs_credentials_and_exactly_one_origin() {
        let base = [
            (ENV_SMS_SENDER, "twilio-messaging"),
            (ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_AUTH_TOKEN, "fedcba9876543210fedcba9876543210"),
        ];
        let err = config(&base).unwrap_err();
        assert!(err.to_string().contains("TWILIO_FROM"), "{err}");
        let mut with_from = base.to_vec();
        with_from.push((ENV_TWILIO_FROM, "+15005550006"));
        let c = config(&with_from).unwrap();
        assert_eq!(c.provider, ProviderKind::Local);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let m = c.twilio_messaging.unwrap();
        assert_eq!(m.from, MessagingFrom::Number("+15005550006".to_owned()));
        assert!(!format!("{m:?}").contains("fedcba98"));
        with_from.push((
            ENV_TWILIO_MESSAGING_SERVICE_SID,
            "MG0123456789abcdef0123456789abcdef",
        ));
        assert!(config(&with_from).is_err(), "both origins");
        let err = config(&[
            (ENV_SMS_SENDER, "twilio-messaging"),
            (ENV_TWILIO_FROM, "+15005550006"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("TWILIO_AUTH_TOKEN"), "{err}");
    }

    #[test]
    fn the_webhook_sender_needs_a_url_and_a_secret() {
        let err = config(&[(ENV_SMS_SENDER, "webhook")]).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        let err = config(&[
            (ENV_SMS_SENDER, "webhook"),
            (ENV_SMS_WEBHOOK_URL, "http://127.0.0.1:9/hook"),
            (ENV_SMS_WEBHOOK_SECRET, "too-short"),
        ])
        .unwrap_err();
        assert!(!err.to_string().contains("too-short"), "{err}");
        let c = config(&[
            (ENV_SMS_SENDER, "webhook"),
            (ENV_SMS_WEBHOOK_URL, "http://127.0.0.1:9/hook"),
            (ENV_SMS_WEBHOOK_SECRET, "a-webhook-secret-of-some-length"),
        ])
        .unwrap();
        let w = c.sms_webhook.unwrap();
        assert_eq!(w.url, "http://127.0.0.1:9/hook");
        assert!(!format!("{w:?}").contains("a-webhook-secret"));
    }

    #[test]
    fn with_twilio_verify_the_sender_is_unused_and_not_judged() {
        let c = config(&[
            (ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_AUTH_TOKEN, "fedcba9876543210fedcba9876543210"),
            (ENV_TWILIO_SERVICE_SID, "VA0123456789abcdef0123456789abcdef"),
            (ENV_SMS_SENDER, "webhook"),
        ])
        .unwrap();
        assert_eq!(c.provider, ProviderKind::TwilioVerify);
        assert!(c.sms_webhook.is_none());
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }

    #[test]
    fn toml_accepts_the_twilio_sync_switch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("verifyd.toml"),
            "twilio_sync_rate_limits = false\ntwilio_timeout = 3\n",
        )
        .unwrap();
        let sources = Sources::load(dir.path(), |_| None).unwrap();
        let c = Config::from_sources(&sources).unwrap();
        assert!(!c.twilio_sync_rate_limits);
        assert_eq!(c.twilio_timeout, Duration::from_secs(3));
    }

    #[test]
    fn partial_twilio_values_warn_and_stay_local() {
        let c = config(&[(ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef")]).unwrap();
        assert_eq!(c.provider, ProviderKind::Local);
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn layers_follow_precedence_env_then_dotenv_development_then_dotenv_then_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "VERIFYD_CODE_LENGTH=7\nVERIFYD_CODE_TTL=300\nVERIFYD_RATE_LIMIT_IP_MAX=9\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".env.development"),
            "VERIFYD_CODE_LENGTH=8\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("verifyd.toml"),
            "code_length = 9\nrate_limit_ip_max = 2\nvalid_country_codes = [\"US\", \"CA\"]\n",
        )
        .unwrap();
        let sources = Sources::load(dir.path(), |k| {
            (k == ENV_CODE_TTL).then(|| "120".to_owned())
        })
        .unwrap();
        let c = Config::from_sources(&sources).unwrap();
        assert_eq!(
            c.code_length.get(),
            8,
            ".env.development beats .env and toml"
        );
        assert_eq!(c.code_ttl, Duration::from_secs(120), "real env beats files");
        assert_eq!(c.rate_limit_ip.max, 9, ".env beats toml");
        assert_eq!(c.valid_country_codes.len(), 2, "toml beats defaults");
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for s in SETTINGS {
            assert!(
                readme.contains(&format!("`{}`", s.name)),
                "README lacks {}",
                s.name
            );
        }
    }

    #[test]
    fn a_postgres_store_needs_an_explicit_secret_and_warns_about_a_memory_limiter() {
        let url = "postgres://verifyd:hunter2-db-pass@127.0.0.1:5432/verifyd";
        let err = config(&[(ENV_DATABASE_URL, url)]).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].name, ENV_SECRET);

        let c = config(&[
            (ENV_DATABASE_URL, url),
            (ENV_SECRET, "0123456789abcdef0123456789abcdef-secret"),
        ])
        .unwrap();
        assert!(c.database_url.is_shared());
        assert!(
            c.warnings.iter().any(|w| w.contains(ENV_REDIS_URL)),
            "{:?}",
            c.warnings
        );
        assert!(!c.describe().contains("hunter2"), "{}", c.describe());
        assert!(!format!("{c:?}").contains("hunter2"));

        let c = config(&[
            (ENV_DATABASE_URL, "postgresql://127.0.0.1/verifyd"),
            (ENV_SECRET, "0123456789abcdef0123456789abcdef-secret"),
            (ENV_REDIS_URL, "redis://:redis-pass-xyz@127.0.0.1:6379/0"),
            (ENV_API_KEYS, "an-api-key-of-some-length"),
        ])
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.redis_url.is_some());
        assert_eq!(c.redis_prefix, "verifyd:");
        assert_eq!(c.db_pool_size, 10);
        assert_eq!(c.db_statement_timeout, Duration::from_secs(5));
        assert!(!c.describe().contains("redis-pass-xyz"), "{}", c.describe());
    }

    #[test]
    fn bad_shared_mode_settings_are_named() {
        let err = config(&[
            (ENV_REDIS_URL, "http://127.0.0.1:6379"),
            (ENV_DB_POOL_SIZE, "0"),
            (ENV_DB_STATEMENT_TIMEOUT, "0"),
        ])
        .unwrap_err();
        let names: Vec<&str> = err.problems.iter().map(|p| p.name.as_str()).collect();
        for name in [ENV_DB_POOL_SIZE, ENV_DB_STATEMENT_TIMEOUT, ENV_REDIS_URL] {
            assert!(names.contains(&name), "{name} missing from {err}");
        }
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://u:p@h:5432/db?x=y"),
            "postgres://u:<redacted>@h:5432/db?x=y"
        );
        assert_eq!(
            redact_url_password("redis://:p@h/0"),
            "redis://:<redacted>@h/0"
        );
        assert_eq!(redact_url_password("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url_password("sqlite://a.db"), "sqlite://a.db");
    }

    #[test]
    fn production_refuses_each_unsafe_setting_and_judges_only_what_is_in_use() {
        let good = [
            (ENV_ENV, "production"),
            (ENV_SECRET, "a-production-secret-0123456789-0123456789"),
            (ENV_API_KEYS, "a-production-api-key-0123"),
            (ENV_SMS_SENDER, "webhook"),
            (ENV_SMS_WEBHOOK_URL, "https://sms.example.com/hook"),
            (ENV_SMS_WEBHOOK_SECRET, "a-webhook-secret-of-some-length"),
        ];
        let c = config(&good).unwrap();
        assert_eq!(c.profile, Profile::Production);
        assert_eq!(c.auth, AuthMode::ApiKey);
        let without = |name: &str| -> Vec<(&str, &str)> {
            good.iter().copied().filter(|(k, _)| *k != name).collect()
        };
        for (pairs, named) in [
            (without(ENV_SECRET), ENV_SECRET),
            (without(ENV_API_KEYS), ENV_API_KEYS),
            (
                [without(ENV_SMS_SENDER), vec![(ENV_SMS_SENDER, "null")]].concat(),
                ENV_SMS_SENDER,
            ),
            (
                [good.to_vec(), vec![(ENV_TRUSTED_PROXIES, "::/0")]].concat(),
                ENV_TRUSTED_PROXIES,
            ),
        ] {
            let err = config(&pairs).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{err}");
            assert_eq!(err.problems[0].name, named, "{err}");
        }
        // The same settings are fine in development (with a warning for the proxies).
        let c = config(&[(ENV_TRUSTED_PROXIES, "0.0.0.0/0")]).unwrap();
        assert_eq!(c.profile, Profile::Development);
        assert_eq!(c.warnings.len(), 1);
        // twilio-verify: the (default console) sender is unused, so not judged.
        let twilio = [
            (ENV_ENV, "production"),
            (ENV_SECRET, "a-production-secret-0123456789-0123456789"),
            (ENV_API_KEYS, "a-production-api-key-0123"),
            (ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_AUTH_TOKEN, "fedcba9876543210fedcba9876543210"),
            (ENV_TWILIO_SERVICE_SID, "VA0123456789abcdef0123456789abcdef"),
        ];
        assert!(config(&twilio).is_ok());
    }

    #[test]
    fn the_secret_may_list_several_secrets_newest_first() {
        let c = config(&[(
            ENV_SECRET,
            "newer-secret-0123456789-0123456789-abc, older-secret-0123456789-0123456789-abc",
        )])
        .unwrap();
        let secrets = c.secret.unwrap();
        assert_eq!(secrets.len(), 2);
        assert!(secrets.newest().expose().starts_with("newer"));
        let err =
            config(&[(ENV_SECRET, "newer-secret-0123456789-0123456789-abc,short")]).unwrap_err();
        assert!(err.to_string().contains("secret #2"), "{err}");
        assert!(!err.to_string().contains("newer-secret"), "{err}");
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("verifyd.toml"), "rate_limit_ip_maxx = 4\n").unwrap();
        let err = Sources::load(dir.path(), |_| None).err().unwrap();
        assert!(err.to_string().contains("rate_limit_ip_maxx"), "{err}");
    }
}
