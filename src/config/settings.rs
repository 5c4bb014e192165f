//! The one declarative table of settings: each row declares a variable once (its `ENV_*`
//! constant, name, default, how its value is shown, and its documentation). From it come the
//! `ENV_*` constants, [`SETTINGS`] (what `verifyd config` lists, in this order, and which keys
//! `verifyd.toml` accepts), and the table of `docs/configuration.md` ([`markdown_table`], checked
//! against the page by a test). Each component's file (`server.rs`, `store.rs`, …) parses its rows.
//!
//! Adding a setting: a row here (under its component), then a field on that component's struct
//! and its parsing in that component's `read`; `cargo test --lib config` prints the docs table
//! to paste into `docs/configuration.md` (or run `verifyd config --markdown-table`).

/// How a setting's value may be shown (`verifyd config`, problems, logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// As set.
    Plain,
    /// Never: `<redacted>` everywhere.
    Secret,
    /// A URL that may carry a password or token: through [`super::redact_url`].
    Url,
}

/// One documented setting: its variable, default (as text), how it is shown, and its doc.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub shown: Shown,
    pub doc: &'static str,
}

impl Setting {
    /// Whether its value is secret (redacted everywhere).
    pub const fn secret(&self) -> bool {
        matches!(self.shown, Shown::Secret)
    }

    /// Whether it holds a URL shown through [`super::redact_url`].
    pub const fn url(&self) -> bool {
        matches!(self.shown, Shown::Url)
    }
}

macro_rules! shown {
    (plain) => {
        Shown::Plain
    };
    (secret) => {
        Shown::Secret
    };
    (url) => {
        Shown::Url
    };
}

/// `ENV_X = "NAME", default "text", plain|secret|url, "doc";` per setting: declares the
/// constant and the row of [`SETTINGS`] at once.
macro_rules! settings {
    ($( $constant:ident = $name:literal, default $default:literal, $shown:ident, $doc:literal; )*) => {
        $( pub const $constant: &str = $name; )*

        /// Every setting verifyd reads, in the order `verifyd config` prints them.
        pub const SETTINGS: &[Setting] = &[
            $( Setting { name: $name, default: $default, shown: shown!($shown), doc: $doc }, )*
        ];
    };
}

settings! {
    // production (the profile)
    ENV_ENV = "VERIFYD_ENV", default "development", plain,
        "`development` or `production`. Production refuses to start (exit 64, naming each problem) with the console or null sender (local engine), a generated VERIFYD_SECRET or API key, VERIFYD_TRUSTED_PROXIES trusting every address, a test number without valid_until, VERIFYD_CODE_LENGTH under 6, VERIFYD_CODE_TTL over 600 s, or a plain http:// URL in use (JWKS, SMS webhook, Twilio base URLs; development allows http:// to loopback only and warns otherwise); it never serves /dev/outbox.";
    // server
    ENV_ADDR = "VERIFYD_ADDR", default "127.0.0.1:8080", plain,
        "Listen address (port 0 picks a free port; the log prints the bound one).";
    // store
    ENV_DATABASE_URL = "VERIFYD_DATABASE_URL", default "sqlite://verifyd.db", url,
        "Store: a SQLite file (created if missing), or `postgres://user:pass@host/db` for a store shared by several replicas (password redacted in output).";
    ENV_SECRET = "VERIFYD_SECRET", default "", secret,
        "Server secret (>= 32 chars) for HMAC and encryption keys; several, comma-separated and newest first, while rotating (new data under the first, old data still read; `verifyd rekey` moves it). Unset: generated once into <database>.secret (0600); refused in production.";
    // auth
    ENV_API_KEYS = "VERIFYD_API_KEYS", default "", secret,
        "Comma-separated API keys accepted as `Authorization: Bearer <key>` (list the new and the old key while rotating); unset: one is generated on first start, printed once, stored hashed (refused in production).";
    ENV_AUTH = "VERIFYD_AUTH", default "api-key", plain,
        "`api-key` (VERIFYD_API_KEYS), `jwt` (the app's user tokens, e.g. Auth0) or `both`.";
    ENV_JWT_JWKS_URL = "VERIFYD_JWT_JWKS_URL", default "", url,
        "JWKS of the token issuer, e.g. `https://<tenant>.auth0.com/.well-known/jwks.json` (jwt/both); https:// in production (userinfo and secret query parameters redacted in output).";
    ENV_JWT_ISSUER = "VERIFYD_JWT_ISSUER", default "", plain,
        "Required `iss`, e.g. `https://<tenant>.auth0.com/` (with Auth0's trailing slash).";
    ENV_JWT_AUDIENCE = "VERIFYD_JWT_AUDIENCE", default "", plain,
        "Required `aud`: the API identifier the app requests tokens for.";
    ENV_JWT_ALGORITHMS = "VERIFYD_JWT_ALGORITHMS", default "RS256,ES256", plain,
        "Accepted signature algorithms (asymmetric only: RS*, PS*, ES256/384, EdDSA; never `none` or HS*).";
    ENV_JWT_LEEWAY = "VERIFYD_JWT_LEEWAY", default "30", plain,
        "Clock skew allowed on `exp`/`nbf`, in seconds.";
    ENV_JWT_JWKS_REFRESH = "VERIFYD_JWT_JWKS_REFRESH", default "600", plain,
        "How often the JWKS is re-fetched (an unknown `kid` also triggers a fetch, at most once a minute).";
    // twilio
    ENV_TWILIO_ACCOUNT_SID = "TWILIO_ACCOUNT_SID", default "", plain,
        "Twilio Account SID (AC + 32 hex), seed S1.";
    ENV_TWILIO_AUTH_TOKEN = "TWILIO_AUTH_TOKEN", default "", secret,
        "Twilio Auth Token, seed S1.";
    ENV_TWILIO_SERVICE_SID = "TWILIO_SERVICE_SID", default "", plain,
        "Twilio Verify Service SID (VA + 32 hex), seed S1.";
    // delivery
    ENV_PROVIDER = "VERIFYD_PROVIDER", default "local", plain,
        "`local` (our code engine) or `twilio-verify`; unset: twilio-verify when all three TWILIO_* are set, else local.";
    ENV_SMS_SENDER = "VERIFYD_SMS_SENDER", default "console", plain,
        "How the local engine delivers codes: `console` (stdout and GET /dev/outbox), `twilio-messaging` (Twilio Programmable Messaging), `webhook` (a signed POST to VERIFYD_SMS_WEBHOOK_URL), `telnyx` (TELNYX_API_KEY), `vonage` (VONAGE_API_KEY), `plivo` (PLIVO_AUTH_ID), `sinch` (SINCH_SERVICE_PLAN_ID), `infobip` (INFOBIP_API_KEY) or `bird` (BIRD_API_KEY). Several vendors per country: VERIFYD_SMS_ROUTES. Unused with twilio-verify.";
    // twilio
    ENV_TWILIO_VERIFY_BASE_URL = "TWILIO_VERIFY_BASE_URL", default "https://verify.twilio.com", url,
        "Base URL of the Twilio Verify API (tests point it at a local fake).";
    ENV_TWILIO_API_BASE_URL = "TWILIO_API_BASE_URL", default "https://api.twilio.com", url,
        "Base URL of the Twilio REST API used by the twilio-messaging sender.";
    ENV_TWILIO_MESSAGING_BASE_URL = "TWILIO_MESSAGING_BASE_URL", default "https://messaging.twilio.com", url,
        "Base URL of Twilio's Messaging API, where `verifyd doctor` looks up TWILIO_MESSAGING_SERVICE_SID (tests point it at a local fake).";
    ENV_TWILIO_TIMEOUT = "TWILIO_TIMEOUT", default "10", plain,
        "Seconds to wait for any Twilio call; a timed-out send is answered 502 and never retried.";
    ENV_TWILIO_SYNC_RATE_LIMITS = "VERIFYD_TWILIO_SYNC_RATE_LIMITS", default "true", plain,
        "twilio-verify: at start, make the Verify service's `end_user_ip_address` RateLimit have one Bucket equal to the IP bucket (`verifyd twilio sync` does it on demand).";
    // delivery
    ENV_TWILIO_MESSAGING_SERVICE_SID = "TWILIO_MESSAGING_SERVICE_SID", default "", plain,
        "twilio-messaging sender: the Messaging Service SID (MG + 32 hex) to send from; or set TWILIO_FROM.";
    ENV_TWILIO_FROM = "TWILIO_FROM", default "", plain,
        "twilio-messaging sender: the sender (a Twilio number in E.164, a short code or an alphanumeric sender ID); or set TWILIO_MESSAGING_SERVICE_SID.";
    ENV_SMS_WEBHOOK_URL = "VERIFYD_SMS_WEBHOOK_URL", default "", url,
        "webhook sender: the URL that receives each message as a signed JSON POST (https:// in production; redirects are never followed; userinfo and secret query parameters such as `token` or `api_key` redacted in output).";
    ENV_SMS_WEBHOOK_SECRET = "VERIFYD_SMS_WEBHOOK_SECRET", default "", secret,
        "webhook sender: the HMAC-SHA256 key (>= 16 chars) for the `X-Verifyd-Signature` header.";
    ENV_SMS_WEBHOOK_TIMEOUT = "VERIFYD_SMS_WEBHOOK_TIMEOUT", default "10", plain,
        "webhook sender: seconds to wait for the webhook's answer (a timeout is a failed send, never retried).";
    ENV_TELNYX_API_KEY = "TELNYX_API_KEY", default "", secret,
        "telnyx vendor (a route or VERIFYD_SMS_SENDER=telnyx): the API v2 key (`KEY…`), sent as `Authorization: Bearer`.";
    ENV_TELNYX_FROM = "TELNYX_FROM", default "", plain,
        "telnyx vendor: the sending number (E.164) or alphanumeric sender ID; or set TELNYX_MESSAGING_PROFILE_ID (a number pool).";
    ENV_TELNYX_MESSAGING_PROFILE_ID = "TELNYX_MESSAGING_PROFILE_ID", default "", plain,
        "telnyx vendor: the messaging profile the messages go out under (sent as `messaging_profile_id`).";
    ENV_TELNYX_PUBLIC_KEY = "TELNYX_PUBLIC_KEY", default "", plain,
        "telnyx vendor: the account's public key (base64, from the Telnyx portal's Keys & Credentials) that verifies its delivery receipts at `POST /callbacks/telnyx` (Ed25519). With VERIFYD_PUBLIC_URL, each message asks for its receipts; unset: none asked for, and receipts are refused.";
    ENV_TELNYX_BASE_URL = "TELNYX_BASE_URL", default "https://api.telnyx.com", url,
        "Base URL of the Telnyx API (tests point it at a local fake); messages go to `POST /v2/messages`.";
    ENV_VONAGE_API_KEY = "VONAGE_API_KEY", default "", plain,
        "vonage vendor (a route or VERIFYD_SMS_SENDER=vonage): the account's API key (sent as `api_key`).";
    ENV_VONAGE_API_SECRET = "VONAGE_API_SECRET", default "", secret,
        "vonage vendor: the account's API secret (sent as `api_secret`).";
    ENV_VONAGE_FROM = "VONAGE_FROM", default "", plain,
        "vonage vendor: the sender (a number in E.164 or an alphanumeric sender ID).";
    ENV_VONAGE_SIGNATURE_SECRET = "VONAGE_SIGNATURE_SECRET", default "", secret,
        "vonage vendor: the account's signature secret (dashboard, API settings; signature method `SHA-256 HMAC`) that verifies its signed delivery receipts at `POST /callbacks/vonage`. With VERIFYD_PUBLIC_URL, each message asks for its receipt; unset: none asked for, and receipts are refused.";
    ENV_VONAGE_BASE_URL = "VONAGE_BASE_URL", default "https://rest.nexmo.com", url,
        "Base URL of Vonage's SMS API (tests point it at a local fake); messages go to `POST /sms/json`.";
    ENV_PLIVO_AUTH_ID = "PLIVO_AUTH_ID", default "", plain,
        "plivo vendor (a route or VERIFYD_SMS_SENDER=plivo): the account's Auth ID (`MA…`/`SA…`), the user of HTTP Basic auth and part of the URL.";
    ENV_PLIVO_AUTH_TOKEN = "PLIVO_AUTH_TOKEN", default "", secret,
        "plivo vendor: the Auth Token (HTTP Basic password; also the key of Plivo's V3 receipt signatures).";
    ENV_PLIVO_FROM = "PLIVO_FROM", default "", plain,
        "plivo vendor: the sender (`src`): a Plivo number in E.164 or an alphanumeric sender ID.";
    ENV_PLIVO_BASE_URL = "PLIVO_BASE_URL", default "https://api.plivo.com", url,
        "Base URL of Plivo's API (tests point it at a local fake); messages go to `POST /v1/Account/{PLIVO_AUTH_ID}/Message/`.";
    ENV_SINCH_SERVICE_PLAN_ID = "SINCH_SERVICE_PLAN_ID", default "", plain,
        "sinch vendor (a route or VERIFYD_SMS_SENDER=sinch): the SMS REST API service plan ID (part of the URL).";
    ENV_SINCH_API_TOKEN = "SINCH_API_TOKEN", default "", secret,
        "sinch vendor: the service plan's API token, sent as `Authorization: Bearer`.";
    ENV_SINCH_FROM = "SINCH_FROM", default "", plain,
        "sinch vendor: the sender (`from`): a Sinch number in E.164, a short code or an alphanumeric sender ID.";
    ENV_SINCH_BASE_URL = "SINCH_BASE_URL", default "https://us.sms.api.sinch.com", url,
        "Base URL of Sinch's SMS REST API, by region (`us`, `eu`, `au`, `br`, `ca`); messages go to `POST /xms/v1/{SINCH_SERVICE_PLAN_ID}/batches`.";
    ENV_SINCH_WEBHOOK_SECRET = "SINCH_WEBHOOK_SECRET", default "", secret,
        "sinch vendor: the HMAC secret Sinch signs delivery reports with (`x-sinch-webhook-signature`; set up per service plan by Sinch). Unset: receipts from Sinch are refused.";
    ENV_INFOBIP_API_KEY = "INFOBIP_API_KEY", default "", secret,
        "infobip vendor (a route or VERIFYD_SMS_SENDER=infobip): the API key, sent as `Authorization: App …`.";
    ENV_INFOBIP_BASE_URL = "INFOBIP_BASE_URL", default "https://api.infobip.com", url,
        "infobip vendor: the account's personal base URL (`https://xxxxx.api.infobip.com`); messages go to `POST /sms/3/messages`.";
    ENV_INFOBIP_FROM = "INFOBIP_FROM", default "", plain,
        "infobip vendor: the sender (`sender`): a number in E.164 or an alphanumeric sender ID.";
    ENV_INFOBIP_RECEIPT_TOKEN = "VERIFYD_INFOBIP_RECEIPT_TOKEN", default "", secret,
        "infobip vendor: a random secret (>= 24 chars) that delivery-report URLs carry as `?token=` (Infobip signs nothing; compared in constant time). Unset: receipts from Infobip are refused.";
    ENV_BIRD_API_KEY = "BIRD_API_KEY", default "", secret,
        "bird vendor (a route or VERIFYD_SMS_SENDER=bird): the Bird API key (`bk_{region}_…`), sent as `Authorization: Bearer`; its region picks the API host.";
    ENV_BIRD_FROM = "BIRD_FROM", default "", plain,
        "bird vendor: the sender (`from`): a number the workspace owns in E.164, a short code or an alphanumeric sender ID.";
    ENV_BIRD_BASE_URL = "BIRD_BASE_URL", default "", url,
        "Base URL of Bird's API; unset: `https://{region}.platform.bird.com` from BIRD_API_KEY's region. Messages go to `POST /v1/sms/messages`.";
    ENV_BIRD_WEBHOOK_SECRET = "BIRD_WEBHOOK_SECRET", default "", secret,
        "bird vendor: the webhook signing secret (`whsec_…`) Bird signs events with (Standard Webhooks). Unset: receipts from Bird are refused.";
    ENV_SMS_ROUTES = "VERIFYD_SMS_ROUTES", default "", plain,
        "Local engine: SMS vendors per country in failover order, `US,CA=twilio-messaging,webhook;*=webhook` (`*` is every other country; without `*` they use VERIFYD_SMS_SENDER). The next vendor is tried on a connect error, timeout, 5xx or 429, never on a refusal of the number (a 4xx, answered as the caller's error); a vendor failing 3 times in a row is skipped for 30 s, then probed with one message. Unset: VERIFYD_SMS_SENDER alone. See docs/vendors.md.";
    ENV_SMS_FROM = "VERIFYD_SMS_FROM", default "", plain,
        "Local engine: the SMS sender per destination country, `US=+14155550100,GB=Acme,*=+14155550100` (`*` is every other country): a number in E.164, or an alphanumeric sender ID of 1 to 11 letters, digits and spaces with at least one letter (where the country allows one). Used by the senders that take a `From` (twilio-messaging, telnyx, vonage) in place of their own TWILIO_FROM / TELNYX_FROM / VONAGE_FROM; a country without an entry (and no `*`) keeps that setting. See docs/messages.md.";
    // limits
    ENV_VALID_COUNTRY_CODES = "VERIFYD_VALID_COUNTRY_CODES", default "US", plain,
        "ISO 3166-1 alpha-2 regions that may receive codes (seed S2).";
    ENV_CHANNELS = "VERIFYD_CHANNELS", default "sms", plain,
        "Channels a send-code may use (seed S3): sms, call, whatsapp, email, sna.";
    ENV_BLOCKED_NUMBER_TYPES = "VERIFYD_BLOCKED_NUMBER_TYPES", default "premium_rate,shared_cost,uan,voicemail,pager,unknown,toll_free", plain,
        "libphonenumber line types refused with 403 number_type_not_allowed (empty list: none). toll_free is in the default because toll-free numbers are a classic SMS-pumping (traffic-pumping) target and rarely belong to a person's phone.";
    ENV_RATE_LIMIT_IP_MAX = "VERIFYD_RATE_LIMIT_IP_MAX", default "4", plain,
        "Send-codes per client IP per interval (seed S4); 0 turns the bucket off.";
    ENV_RATE_LIMIT_IP_INTERVAL = "VERIFYD_RATE_LIMIT_IP_INTERVAL", default "60", plain,
        "Interval of the IP bucket, in seconds (or with s/m/h/d suffix).";
    ENV_RATE_LIMIT_PHONE_MAX = "VERIFYD_RATE_LIMIT_PHONE_MAX", default "5", plain,
        "Send-codes per phone number per interval (first interval; default also 10 per day); 0 turns the key off.";
    ENV_RATE_LIMIT_PHONE_INTERVAL = "VERIFYD_RATE_LIMIT_PHONE_INTERVAL", default "600", plain,
        "Interval of the first phone bucket.";
    ENV_RATE_LIMIT_PREFIX_MAX = "VERIFYD_RATE_LIMIT_PREFIX_MAX", default "20", plain,
        "Send-codes per number prefix (the number without its last 4 digits) per interval; 0 off.";
    ENV_RATE_LIMIT_PREFIX_INTERVAL = "VERIFYD_RATE_LIMIT_PREFIX_INTERVAL", default "3600", plain,
        "Interval of the prefix bucket.";
    ENV_RATE_LIMIT_COUNTRY_MAX = "VERIFYD_RATE_LIMIT_COUNTRY_MAX", default "0", plain,
        "Send-codes per destination country per interval; 0 (default) off.";
    ENV_RATE_LIMIT_COUNTRY_INTERVAL = "VERIFYD_RATE_LIMIT_COUNTRY_INTERVAL", default "3600", plain,
        "Interval of the country bucket.";
    ENV_RATE_LIMIT_GLOBAL_MAX = "VERIFYD_RATE_LIMIT_GLOBAL_MAX", default "1000", plain,
        "All send-codes together per interval: a spend cap; 0 off.";
    ENV_RATE_LIMIT_GLOBAL_INTERVAL = "VERIFYD_RATE_LIMIT_GLOBAL_INTERVAL", default "3600", plain,
        "Interval of the global bucket.";
    ENV_RATE_LIMIT_USER_MAX = "VERIFYD_RATE_LIMIT_USER_MAX", default "10", plain,
        "Send-codes per authenticated user (JWT `sub`) per interval; 0 off.";
    ENV_RATE_LIMIT_USER_INTERVAL = "VERIFYD_RATE_LIMIT_USER_INTERVAL", default "3600", plain,
        "Interval of the user bucket.";
    ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX = "VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", default "10", plain,
        "Wrong codes (and checks of a number with no verification of the caller's) per number and caller per interval, across verifications (a new code does not reset it); the caller is the JWT user, else the API key, so one caller cannot lock a number for others; 0 off.";
    ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_INTERVAL = "VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_INTERVAL", default "3600", plain,
        "Interval of the failed-check buckets (per caller and the per-number ceiling).";
    ENV_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING = "VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING", default "3 x max", plain,
        "Failed checks per number per interval from all callers together: stops guessing spread over many users or keys; at least the per-caller max; 0 off.";
    ENV_VERIFY_RATE_LIMIT_IP_MAX = "VERIFYD_VERIFY_RATE_LIMIT_IP_MAX", default "30", plain,
        "Verify requests per client IP per interval; 0 off.";
    ENV_VERIFY_RATE_LIMIT_IP_INTERVAL = "VERIFYD_VERIFY_RATE_LIMIT_IP_INTERVAL", default "60", plain,
        "Interval of the verify IP bucket.";
    ENV_RESEND_COOLDOWN = "VERIFYD_RESEND_COOLDOWN", default "30", plain,
        "Minimum time between two sends to one number; 0 disables.";
    ENV_LIMITER_MAX_KEYS = "VERIFYD_LIMITER_MAX_KEYS", default "1000000", plain,
        "Hard cap on bucket keys the in-memory limiter tracks; keys at full allowance are dropped to make room, part-used keys never (forgetting one would hand back requests its limit withholds): past the cap, a request that needs a new key is refused 503 and `verifyd_limiter_full_total` counts it.";
    // server
    ENV_TRUSTED_PROXIES = "VERIFYD_TRUSTED_PROXIES", default "", plain,
        "CIDRs of reverse proxies whose X-Forwarded-For is believed (right-most untrusted entry wins).";
    // codes
    ENV_CODE_LENGTH = "VERIFYD_CODE_LENGTH", default "6", plain,
        "Digits per code, 4 to 10 (production: at least 6).";
    ENV_CODE_TTL = "VERIFYD_CODE_TTL", default "600", plain,
        "How long a code stays valid, in seconds (Twilio: 10 minutes; production: at most 600).";
    // telemetry
    ENV_METRICS_ADDR = "VERIFYD_METRICS_ADDR", default "", plain,
        "Serve `GET /metrics` on its own listener here (public: bind it privately); unset: on the main listener, behind the API key (a user token is refused there).";
    ENV_LOG_FORMAT = "VERIFYD_LOG_FORMAT", default "pretty", plain,
        "`pretty` or `json` logs on stderr.";
    ENV_RUST_LOG = "RUST_LOG", default "info", plain,
        "Log filter (tracing EnvFilter syntax).";
    // server
    ENV_SHUTDOWN_GRACE = "VERIFYD_SHUTDOWN_GRACE", default "20", plain,
        "Seconds in-flight requests get to finish after SIGTERM/SIGINT.";
    ENV_REQUEST_TIMEOUT = "VERIFYD_REQUEST_TIMEOUT", default "15", plain,
        "Seconds before a request is answered 503 unavailable.";
    ENV_HEADER_TIMEOUT = "VERIFYD_HEADER_TIMEOUT", default "10", plain,
        "Seconds a client gets to send a request's line and headers in full, counted from the connection's accept (or, on a keep-alive connection, from the request's first byte); past it the connection is closed (slowloris). The body is bounded by VERIFYD_REQUEST_TIMEOUT.";
    ENV_IDLE_TIMEOUT = "VERIFYD_IDLE_TIMEOUT", default "75", plain,
        "Seconds a keep-alive connection may wait for its next request before it is closed. Keep it above your load balancer's idle timeout (AWS ALB: 60 s), so the balancer, not verifyd, closes idle connections (otherwise it may send a request on a connection verifyd is closing and answer 502).";
    ENV_MAX_CONNECTIONS = "VERIFYD_MAX_CONNECTIONS", default "10000", plain,
        "Most client connections open at once (the metrics listener counts its own). Past it verifyd stops accepting and new connections wait in the kernel's backlog until one closes; it never fails. The process needs a file-descriptor limit above it (systemd: LimitNOFILE).";
    ENV_PUBLIC_URL = "VERIFYD_PUBLIC_URL", default "", plain,
        "The address clients reach verifyd at (`https://verifyd.internal`): the `/v2` face builds every `url`, `links` and `next_page_url` from it, never from the request's Host, and SMS vendors are asked to post delivery receipts to `{it}/callbacks/{vendor}`. Unset: `http://` + VERIFYD_ADDR, and no receipts are asked for. https:// in production.";
    ENV_ACCOUNT_SID = "VERIFYD_ACCOUNT_SID", default "", plain,
        "`/v2` face: the account SID (`AC` + 32 hex) that Twilio SDKs authenticate as (HTTP Basic user; the password is an API key). Unset: generated once, kept in the store (the same on every replica and restart) and printed at start.";
    ENV_SERVICE_SID = "VERIFYD_SERVICE_SID", default "", plain,
        "`/v2` face: the default Verify service's SID (`VA` + 32 hex), the one `/mfa/*` uses. Unset: generated once and kept in the store, like the account SID.";
    ENV_SERVICE_NAME = "VERIFYD_SERVICE_NAME", default "verifyd", plain,
        "`/v2` face: the default service's `friendly_name` (in its messages: `Your <name> verification code is: …`) when verifyd creates that service; later changes go through `POST /v2/Services/{VA}`.";
    // store
    ENV_STORE_TIMEOUT = "VERIFYD_STORE_TIMEOUT", default "2", plain,
        "Seconds to wait for a store connection or lock (PostgreSQL: connect and pool acquire; Redis: connect and reply) before answering 503.";
    ENV_SQLITE_SYNCHRONOUS = "VERIFYD_SQLITE_SYNCHRONOUS", default "full", plain,
        "SQLite `synchronous` with WAL: `full` (survives power loss) or `normal` (survives process crashes).";
    ENV_DB_POOL_SIZE = "VERIFYD_DB_POOL_SIZE", default "10", plain,
        "PostgreSQL store: connections per replica (mind the server's max_connections across replicas).";
    ENV_DB_STATEMENT_TIMEOUT = "VERIFYD_DB_STATEMENT_TIMEOUT", default "5", plain,
        "PostgreSQL store: `statement_timeout` set on every connection, in seconds; a slower statement answers 503.";
    ENV_ATTEMPT_RETENTION = "VERIFYD_ATTEMPT_RETENTION", default "30d", plain,
        "How long the attempt log (every send attempt, check outcome and refusal, of `/mfa/*` and `/v2`; read through `GET /v2/Attempts`) keeps a row before the background purge deletes it (at least 1 hour).";
    // limits (the shared limiter)
    ENV_REDIS_URL = "VERIFYD_REDIS_URL", default "", url,
        "Limiter: `redis://host:port/db` (or `rediss://`) shares every rate-limit bucket between replicas; unset: buckets in this process's memory (password redacted in output).";
    ENV_REDIS_PREFIX = "VERIFYD_REDIS_PREFIX", default "verifyd:", plain,
        "Prefix of every Redis key the limiter writes (one Redis can serve several deployments).";
    // fraud guard
    ENV_FRAUD_GUARD = "VERIFYD_FRAUD_GUARD", default "monitor (enforce in production)", plain,
        "The fraud guard (docs/fraud-guard.md): `off`, `monitor` (decides, logs and meters what it would refuse, and sends anyway) or `enforce` (refuses 403 `fraud_blocked`, Twilio 60410, before any bucket is charged).";
    ENV_FRAUD_GUARD_WINDOW = "VERIFYD_FRAUD_GUARD_WINDOW", default "86400", plain,
        "Rolling window of the conversion figures, in seconds (or with s/m/h/d suffix); a destination with no approval in it is unproven.";
    ENV_FRAUD_GUARD_SETTLE = "VERIFYD_FRAUD_GUARD_SETTLE", default "180", plain,
        "How long a sent code may go unanswered before it counts as unconverted (an approval later still counts as a conversion).";
    ENV_FRAUD_GUARD_MIN_SENDS = "VERIFYD_FRAUD_GUARD_MIN_SENDS", default "6", plain,
        "Settled attempts a destination needs before its conversion can block it.";
    ENV_FRAUD_GUARD_MIN_CONVERSION = "VERIFYD_FRAUD_GUARD_MIN_CONVERSION", default "0.2", plain,
        "Conversion (approved / settled, 0 to 1) under which a destination with enough settled attempts is blocked.";
    ENV_FRAUD_GUARD_BLOCK = "VERIFYD_FRAUD_GUARD_BLOCK", default "3600", plain,
        "How long a block lasts; afterwards the destination starts over as unproven.";
    ENV_FRAUD_GUARD_UNPROVEN_MAX = "VERIFYD_FRAUD_GUARD_UNPROVEN_MAX", default "2", plain,
        "Unsettled codes at a time into destinations that have not converted in the window: per long prefix, per short prefix (into its unproven long prefixes) and per country (into its unproven short prefixes).";
    ENV_FRAUD_GUARD_PREFIX_DIGITS = "VERIFYD_FRAUD_GUARD_PREFIX_DIGITS", default "7", plain,
        "Digits of the E.164 number (after +) in a long prefix (7: +1 NPA-NXX); the short prefix is the long one without its last 3 digits (+1 NPA). From 5 to 12.";
    ENV_MONITOR_COUNTRY_CODES = "VERIFYD_MONITOR_COUNTRY_CODES", default "", plain,
        "Regions sent to in addition to VERIFYD_VALID_COUNTRY_CODES, to learn their conversion before allowing them: the fraud guard counts them apart (`monitored` in its status and metrics) and never refuses them.";
    ENV_TEST_NUMBERS_BYPASS_LIMITS = "VERIFYD_TEST_NUMBERS_BYPASS_LIMITS", default "false", plain,
        "Test numbers skip every rate-limit bucket too (they always skip the fraud guard), for CI that sends to them often.";
    // events (signed webhooks about verifications; docs/events.md)
    ENV_EVENTS_URL = "VERIFYD_EVENTS_URL", default "", url,
        "Where signed events go (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`); https:// in production. Unset, and no `[[event_endpoints]]` in verifyd.toml: no events. More endpoints, each with its own secrets and types: `[[event_endpoints]]` (`name`, `url`, `secret` or `secrets`, `types`).";
    ENV_EVENTS_SECRET = "VERIFYD_EVENTS_SECRET", default "", secret,
        "VERIFYD_EVENTS_URL's signing secrets: `whsec_` + base64 of at least 24 bytes; several, space-separated, while rotating (each event carries one signature per secret).";
    ENV_EVENTS_TYPES = "VERIFYD_EVENTS_TYPES", default "", plain,
        "Event types VERIFYD_EVENTS_URL receives, comma-separated; unset: all (verification.pending, .approved, .canceled, .expired, .max_attempts_reached, attempt.delivered, attempt.failed, fraud_guard.blocked).";
    ENV_EVENTS_FULL_NUMBER = "VERIFYD_EVENTS_FULL_NUMBER", default "false", plain,
        "Events carry the full phone number (`to`) instead of the masked one.";
    ENV_EVENTS_RETRY_SCHEDULE = "VERIFYD_EVENTS_RETRY_SCHEDULE", default "5s,5m,30m,2h,5h,10h,10h", plain,
        "Waits between delivery tries of an event (a 2xx answer delivers it); after the last one fails the event is dead: kept, listed by `verifyd events list`, sent again by `verifyd events replay`.";
    ENV_EVENTS_TIMEOUT = "VERIFYD_EVENTS_TIMEOUT", default "10", plain,
        "Seconds one delivery try may take (a timeout is a failed try). A replica's lease on an event lasts this plus 5 s: if it dies mid-delivery, another replica sends the event after that.";
    ENV_EVENTS_RETENTION = "VERIFYD_EVENTS_RETENTION", default "7d", plain,
        "How long delivered and dead events are kept before the background purge deletes them (at least 1 hour).";
    // sources
    ENV_CONFIG = "VERIFYD_CONFIG", default "verifyd.toml", plain,
        "Optional TOML file with the same settings (keys without the VERIFYD_ prefix, lowercase).";
    // messages
    ENV_DEFAULT_LOCALE = "VERIFYD_DEFAULT_LOCALE", default "en", plain,
        "Language of a message whose request names no `locale` (`/mfa`) or `Locale` (`/v2`): one of the built-in locales of docs/messages.md (a region verifyd has no wording of its own for falls back to its language: `de-AT` is `de`).";
    ENV_TEMPLATES = "VERIFYD_TEMPLATES", default "", plain,
        "TOML file of the operator's own message wording, per service (`[default]` or `[VA…]`) and locale, with the placeholders `{code}`, `{service}` and `{ttl}` (minutes); checked at startup (docs/messages.md).";
    ENV_WEBOTP_DOMAIN = "VERIFYD_WEBOTP_DOMAIN", default "", plain,
        "Host of the web page that may read codes with WebOTP (`login.example.com`): every SMS gets the last line `@login.example.com #123456`. Unset: no WebOTP line.";
    // channels
    ENV_TWILIO_WHATSAPP_FROM = "TWILIO_WHATSAPP_FROM", default "", plain,
        "Local engine: the WhatsApp sender (E.164) that sends the `whatsapp` channel through Twilio Messaging (`From=whatsapp:+…`), with TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN. Unset: `whatsapp` goes to VERIFYD_SMS_SENDER (the console shows it; twilio-messaging refuses it).";
    ENV_WHATSAPP_SENDER = "VERIFYD_WHATSAPP_SENDER", default "twilio", plain,
        "Who carries the `whatsapp` channel: `twilio` (Twilio Messaging from TWILIO_WHATSAPP_FROM) or `meta` (Meta's WhatsApp Cloud API with an authentication template: WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID, WHATSAPP_TEMPLATE).";
    ENV_WHATSAPP_ACCESS_TOKEN = "WHATSAPP_ACCESS_TOKEN", default "", secret,
        "Meta WhatsApp Cloud API: the access token (a system user's) sent as `Authorization: Bearer`.";
    ENV_WHATSAPP_PHONE_NUMBER_ID = "WHATSAPP_PHONE_NUMBER_ID", default "", plain,
        "Meta WhatsApp Cloud API: the ID of the business phone number that sends (digits, from WhatsApp Manager).";
    ENV_WHATSAPP_TEMPLATE = "WHATSAPP_TEMPLATE", default "", plain,
        "Meta WhatsApp Cloud API: the name of the approved Authentication template (one code parameter, copy-code button), approved in every language you send in.";
    ENV_WHATSAPP_API_VERSION = "WHATSAPP_API_VERSION", default "v23.0", plain,
        "Meta WhatsApp Cloud API: the Graph API version in the path (`v23.0`).";
    ENV_WHATSAPP_BASE_URL = "WHATSAPP_BASE_URL", default "https://graph.facebook.com", url,
        "Meta WhatsApp Cloud API: the Graph API's base URL (tests point it at a local fake).";
    ENV_TWILIO_VOICE_FROM = "TWILIO_VOICE_FROM", default "", plain,
        "Local engine: the number (E.164) that places the `call` channel's calls through Twilio Voice (the message said twice, the code digit by digit, in its language), with TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN. Unset: `call` goes to VERIFYD_SMS_SENDER.";
    ENV_SMTP_URL = "VERIFYD_SMTP_URL", default "", url,
        "Local engine: the SMTP server that sends the `email` channel (turn `email` on in VERIFYD_CHANNELS): `smtps://user:pass@host` (TLS from the start, port 465 by default) or `smtp://user:pass@host:587?tls=required` (STARTTLS); plain `smtp://` only to a loopback host (a local relay). Credentials are redacted in output. 10 s timeout, never retried. Unset: `email` goes to VERIFYD_SMS_SENDER (the console shows it; the webhook passes the address on; SMS vendors refuse it).";
    ENV_EMAIL_FROM = "VERIFYD_EMAIL_FROM", default "", plain,
        "The `From` of code emails, `no-reply@example.com` or `Example <no-reply@example.com>`; required with VERIFYD_SMTP_URL.";
    ENV_CHANNEL_FALLBACK = "VERIFYD_CHANNEL_FALLBACK", default "", plain,
        "Channels in fallback order, e.g. `whatsapp,sms`: when delivery on one fails, the same code goes out on the next (one more send attempt of the same verification, within its 5 sends). Every channel listed must be in VERIFYD_CHANNELS.";
    // telemetry (the operator console)
    ENV_SMS_PRICE = "VERIFYD_SMS_PRICE", default "", plain,
        "Price of one SMS segment (a decimal number, in your currency), for the console's estimated spend (sends × price); unset: the console shows no spend.";
}

/// The setting named `name`.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The table of `docs/configuration.md` (between its `settings:start` and `settings:end`
/// comments): one row per setting, in [`SETTINGS`] order.
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | default | what it does |\n|---|---|---|\n");
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", s.default)
        };
        let secret = if s.secret() {
            " (secret: redacted everywhere)"
        } else {
            ""
        };
        out.push_str(&format!(
            "| `{}` | {default} | {}{secret} |\n",
            s.name,
            escape_tags(s.doc)
        ));
    }
    out
}

/// Outside `code`, `<word>` would be read as an HTML tag (and vanish): escapes the `<`.
fn escape_tags(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut in_code = false;
    for c in doc.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '<' if !in_code => out.push_str("&lt;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = "<!-- settings:start -->\n";
    const END: &str = "<!-- settings:end -->";

    #[test]
    fn the_book_documents_every_setting() {
        let page = include_str!("../../docs/configuration.md");
        let start = page
            .find(START)
            .expect("settings:start in docs/configuration.md")
            + START.len();
        let end = page
            .find(END)
            .expect("settings:end in docs/configuration.md");
        let expected = markdown_table();
        assert!(
            page[start..end] == expected,
            "the settings table of docs/configuration.md is not the one generated from \
             src/config/settings.rs; replace what lies between the settings:start and settings:end \
             comments with (or run `verifyd config --markdown-table`):\n{expected}"
        );
    }

    #[test]
    fn every_setting_is_declared_once() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert!(
                SETTINGS[i + 1..].iter().all(|o| o.name != s.name),
                "{} twice",
                s.name
            );
        }
    }
}
