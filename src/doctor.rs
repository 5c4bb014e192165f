//! `verifyd doctor`: checks the settings against reality and prints a checklist, one line per
//! check (✔ passed, ✘ failed with the fix, · for information), so a deploy pipeline can run it
//! before switching traffic (exit 1 on any ✘).
//!
//! It changes nothing: the SQLite file is opened without being created or migrated, a
//! PostgreSQL database is read without being migrated (a schema that lacks migrations is a
//! failure to fix, never fixed here), the secret file is read but never generated, and Twilio
//! is only read (GET). It prints no secret: Twilio
//! answers are reduced to their HTTP status and error code, and secrets to their key ids.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;

use crate::app::{build_limiter, secret_path};
use crate::clock::{Clock, SystemClock};
use crate::config::{
    AuthMode, BucketConfig, Config, Database, MessagingFrom, ProviderKind, SenderKind,
    SqliteLocation,
};
use crate::crypto::{ServerSecret, ServerSecrets};
use crate::domain::{Channel, Timestamp};
use crate::error::Chain;
use crate::provider::twilio_sync::read_ip_buckets;
use crate::rotation::{self, RotationError};
use crate::store::{PostgresSettings, PostgresStore, SchemaStatus, SqliteStore, Store};
use crate::twilio::{TwilioClient, TwilioError};

/// How far our clock and Twilio's `Date` may drift apart before doctor complains.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(30);

/// When this binary was built (see `build.rs`): a sane clock is later.
const BUILT_UNIX: &str = env!("VERIFYD_BUILD_UNIX");

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Pass,
    Fail,
    /// Information, or a check that does not apply.
    Info,
}

impl Mark {
    const fn symbol(self) -> &'static str {
        match self {
            Mark::Pass => "✔",
            Mark::Fail => "✘",
            Mark::Info => "·",
        }
    }
}

/// One line of the checklist.
#[derive(Clone, Debug)]
pub struct Check {
    pub mark: Mark,
    /// What was checked (`store`, `twilio verify service`, …).
    pub title: &'static str,
    /// What was found.
    pub detail: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

/// The checklist.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, title: &'static str, detail: impl Into<String>) {
        self.push(Mark::Pass, title, detail.into(), None);
    }

    fn info(&mut self, title: &'static str, detail: impl Into<String>) {
        self.push(Mark::Info, title, detail.into(), None);
    }

    fn fail(&mut self, title: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(Mark::Fail, title, detail.into(), Some(fix.into()));
    }

    fn push(&mut self, mark: Mark, title: &'static str, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            mark,
            title,
            detail,
            fix,
        });
    }

    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| c.mark == Mark::Fail).count()
    }

    /// The checklist as printed, ending with a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = writeln!(out, "{} {}: {}", c.mark.symbol(), c.title, c.detail);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "    fix: {fix}");
            }
        }
        let failed = self.failures();
        if failed == 0 {
            let _ = writeln!(out, "all checks passed");
        } else {
            let _ = writeln!(out, "{failed} check(s) failed");
        }
        out
    }
}

/// Runs every check that applies to `config`.
pub async fn run(config: &Config) -> Report {
    let mut report = Report::default();
    settings(&mut report, config);
    let store = store(&mut report, config).await;
    secrets(&mut report, config, store.as_deref()).await;
    limiter(&mut report, config).await;
    auth(&mut report, config);
    clock(&mut report);
    match config.delivery.provider {
        ProviderKind::TwilioVerify => twilio_verify(&mut report, config).await,
        ProviderKind::Local => match config.delivery.sender {
            SenderKind::TwilioMessaging => twilio_messaging(&mut report, config).await,
            SenderKind::Webhook => report.info(
                "sms sender",
                "webhook: not contacted (a test message would be a real SMS)",
            ),
            SenderKind::Console | SenderKind::Null => report.info(
                "sms sender",
                format!(
                    "{}: delivers nothing to phones (development only)",
                    config.delivery.sender.as_str()
                ),
            ),
        },
    }
    report
}

fn settings(report: &mut Report, config: &Config) {
    let sender = match config.delivery.provider {
        ProviderKind::TwilioVerify => "none (Twilio delivers)",
        ProviderKind::Local => config.delivery.sender.as_str(),
    };
    report.pass(
        "settings",
        format!(
            "valid (profile {}, provider {} because {}, sender {sender}, auth {})",
            config.profile.as_str(),
            config.delivery.provider.as_str(),
            config.delivery.provider_reason,
            config.auth.mode.as_str()
        ),
    );
    for w in &config.warnings {
        report.info("warning", w.clone());
    }
}

/// The store's check; the store itself when its schema is this binary's, so the secrets can be
/// checked against its key-check records.
async fn store(report: &mut Report, config: &Config) -> Option<Box<dyn Store>> {
    let path = match &config.store.database {
        Database::Sqlite(SqliteLocation::Memory) => {
            report.info(
                "store",
                "SQLite in memory: nothing to check, nothing survives a restart",
            );
            return None;
        }
        Database::Sqlite(SqliteLocation::File(path)) => path,
        Database::Postgres { url } => return postgres(report, config, url).await,
    };
    let opened = SqliteStore::open_existing(path, config.store.timeout).await;
    let store = match opened {
        Ok(Some(store)) => store,
        Ok(None) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if dir.is_dir() {
                report.pass(
                    "store",
                    format!(
                        "{} does not exist yet: `verifyd serve` creates and migrates it",
                        path.display()
                    ),
                );
            } else {
                report.fail(
                    "store",
                    format!("{} cannot be created: {} is not a directory", path.display(), dir.display()),
                    "create the directory (writable by the service's user) or fix VERIFYD_DATABASE_URL",
                );
            }
            return None;
        }
        Err(e) => {
            report.fail(
                "store",
                format!("{} cannot be opened: {}", path.display(), Chain(&e)),
                "check VERIFYD_DATABASE_URL and the file's permissions (run doctor as the service's user)",
            );
            return None;
        }
    };
    match (store.ping().await, store.schema_status().await) {
        (Ok(()), Ok(status)) if !status.unknown.is_empty() => report.fail(
            "store",
            format!(
                "{} was migrated by a newer verifyd (unknown migration(s) {:?})",
                path.display(),
                status.unknown
            ),
            "run the verifyd version that migrated it, or restore a backup made for this one",
        ),
        (Ok(()), Ok(status)) if !status.pending.is_empty() => report.pass(
            "store",
            format!(
                "{} reachable; {} migration(s) will be applied at the next start ({})",
                path.display(),
                status.pending.len(),
                status.pending.join(", ")
            ),
        ),
        (Ok(()), Ok(status)) => report.pass(
            "store",
            format!(
                "{} reachable, schema up to date ({} migrations)",
                path.display(),
                status.applied
            ),
        ),
        (Err(e), _) | (_, Err(e)) => report.fail(
            "store",
            format!("{} does not answer: {}", path.display(), Chain(&e)),
            "check the file, its directory and their permissions",
        ),
    }
    Some(Box::new(store))
}

/// PostgreSQL: reachable, and migrated exactly to this binary's schema. Read without
/// migrating: a database that lacks migrations is reported, not changed.
async fn postgres(report: &mut Report, config: &Config, url: &str) -> Option<Box<dyn Store>> {
    let store = match PostgresStore::without_migrating(
        url,
        PostgresSettings {
            pool_size: 1,
            acquire_timeout: config.store.timeout,
            statement_timeout: config.store.statement_timeout,
        },
    ) {
        Ok(store) => store,
        Err(e) => {
            report.fail(
                "store",
                format!("PostgreSQL cannot be used: {e}"),
                "check VERIFYD_DATABASE_URL",
            );
            return None;
        }
    };
    let status = match store.schema_status().await {
        Ok(status) => status,
        Err(e) => {
            report.fail(
                "store",
                format!("PostgreSQL does not answer: {e}"),
                "check VERIFYD_DATABASE_URL, that the database server runs and the database user's rights",
            );
            return None;
        }
    };
    postgres_schema(report, &status);
    status
        .up_to_date()
        .then(|| Box::new(store) as Box<dyn Store>)
}

fn postgres_schema(report: &mut Report, status: &SchemaStatus) {
    if !status.unknown.is_empty() {
        report.fail(
            "store",
            format!(
                "PostgreSQL was migrated by a newer verifyd (unknown migration(s) {:?})",
                status.unknown
            ),
            "run the verifyd version that migrated it, or restore a backup made for this one",
        );
    } else if status.applied == 0 {
        report.fail(
            "store",
            format!(
                "PostgreSQL reachable but not migrated: none of the {} migration(s) applied (doctor changes nothing)",
                status.pending.len()
            ),
            "start `verifyd serve` once (it migrates at start), or check that VERIFYD_DATABASE_URL names verifyd's database",
        );
    } else if !status.pending.is_empty() {
        report.fail(
            "store",
            format!(
                "PostgreSQL reachable but behind: {} migration(s) missing ({}); doctor changes nothing",
                status.pending.len(),
                status.pending.join(", ")
            ),
            "start this verifyd's `verifyd serve` once (it migrates at start) before switching traffic",
        );
    } else {
        report.pass(
            "store",
            format!(
                "PostgreSQL reachable, schema up to date ({} migrations)",
                status.applied
            ),
        );
    }
}

/// The configured secrets, or the generated one if its file exists (never created here).
fn configured_secrets(config: &Config) -> Result<Option<ServerSecrets>, String> {
    if let Some(secrets) = &config.store.secret {
        return Ok(Some(secrets.clone()));
    }
    let Database::Sqlite(SqliteLocation::File(path)) = &config.store.database else {
        return Ok(None);
    };
    let file = secret_path(path);
    match std::fs::read_to_string(&file) {
        Ok(text) => ServerSecret::new(secrecy::SecretString::from(text.trim().to_owned()))
            .map(|s| Some(ServerSecrets::single(s)))
            .map_err(|e| format!("the secret in {} {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{} cannot be read: {e}", file.display())),
    }
}

async fn secrets(report: &mut Report, config: &Config, store: Option<&dyn Store>) {
    let secrets = match configured_secrets(config) {
        Ok(Some(s)) => s,
        Ok(None) => {
            report.pass(
                "secrets",
                "VERIFYD_SECRET is unset: `verifyd serve` generates one beside the database (development only)",
            );
            return;
        }
        Err(e) => {
            report.fail(
                "secrets",
                e,
                "set VERIFYD_SECRET (that file is read when it is unset)",
            );
            return;
        }
    };
    let configured = secrets
        .iter()
        .map(|s| s.key_id().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let source = if config.store.secret.is_some() {
        "VERIFYD_SECRET"
    } else {
        "the generated secret file"
    };
    let Some(store) = store else {
        report.pass(
            "secrets",
            format!(
                "{} secret(s) from {source} (key id {configured})",
                secrets.len()
            ),
        );
        return;
    };
    match rotation::check_keys(store, &secrets).await {
        Ok(found) if found.stored.is_empty() => report.pass(
            "secrets",
            format!(
                "{} secret(s) from {source} (key id {configured}); no key-check record yet (written at the next start)",
                secrets.len()
            ),
        ),
        Ok(found) => {
            report.pass(
                "secrets",
                format!(
                    "{} secret(s) from {source} (key id {configured}) open the database's key-check record(s)",
                    secrets.len()
                ),
            );
            let newest = secrets.newest().key_id();
            let older: Vec<String> = found
                .stored
                .iter()
                .filter(|id| **id != newest)
                .map(ToString::to_string)
                .collect();
            if !older.is_empty() {
                report.info(
                    "rotation",
                    format!(
                        "data may still be sealed under key id {}: run `verifyd rekey` before dropping that secret",
                        older.join(", ")
                    ),
                );
            }
        }
        // A database migrated before key checks existed: nothing to compare yet.
        Err(RotationError::Store(e)) if Chain(&e).to_string().contains("no such table") => report.pass(
            "secrets",
            format!(
                "{} secret(s) from {source} (key id {configured}); no key-check record yet (written at the next start)",
                secrets.len()
            ),
        ),
        Err(e @ RotationError::UnknownKeys { .. }) => report.fail(
            "secrets",
            e.to_string(),
            "set VERIFYD_SECRET=<new>,<old> with the secret of that key id, then run `verifyd rekey`",
        ),
        Err(e) => report.fail(
            "secrets",
            e.to_string(),
            "set VERIFYD_SECRET to the secret(s) this database was written with",
        ),
    }
}

async fn limiter(report: &mut Report, config: &Config) {
    match build_limiter(config) {
        Ok(limiter) => match limiter.ping().await {
            Ok(()) => report.pass("limiter", format!("{} reachable", limiter.name())),
            Err(e) => report.fail(
                "limiter",
                format!("{} does not answer: {e}", limiter.name()),
                "start it, or fix its URL",
            ),
        },
        Err(e) => report.fail("limiter", e.to_string(), "fix the limiter's settings"),
    }
}

fn auth(report: &mut Report, config: &Config) {
    if let Some(jwt) = &config.auth.jwt {
        report.pass(
            "auth",
            format!(
                "user tokens: issuer {}, audience {}",
                jwt.issuer, jwt.audience
            ),
        );
    }
    match config.auth.mode {
        AuthMode::Jwt => {}
        _ if config.auth.api_keys.is_empty() => report.pass(
            "auth",
            "API keys: VERIFYD_API_KEYS is unset, the key generated on first start is accepted (development only)",
        ),
        _ => report.pass(
            "auth",
            format!("API keys: {} configured", config.auth.api_keys.len()),
        ),
    }
}

fn clock(report: &mut Report) {
    let now = SystemClock.now();
    let built = BUILT_UNIX
        .parse::<i64>()
        .map(|s| Timestamp::from_millis(s.saturating_mul(1000)))
        .unwrap_or(Timestamp::from_millis(0));
    if now < built {
        report.fail(
            "clock",
            format!(
                "the system clock says {}, before this binary was built ({})",
                now.to_rfc3339(),
                built.to_rfc3339()
            ),
            "set the clock (enable NTP: chrony or systemd-timesyncd); codes expire and webhook signatures date by it",
        );
    } else {
        report.pass(
            "clock",
            format!(
                "{} (after this binary's build, {})",
                now.to_rfc3339(),
                built.to_rfc3339()
            ),
        );
    }
}

/// Our clock against Twilio's `Date` header.
fn twilio_clock(report: &mut Report, date: Option<Timestamp>) {
    let Some(theirs) = date else {
        report.info(
            "twilio clock",
            "Twilio's answer had no Date header to compare with",
        );
        return;
    };
    let ours = SystemClock.now();
    let skew = if ours > theirs {
        ours.since(theirs)
    } else {
        theirs.since(ours)
    };
    if skew <= CLOCK_TOLERANCE {
        report.pass(
            "twilio clock",
            format!("within {} s of Twilio's Date header", skew.as_secs()),
        );
    } else {
        report.fail(
            "twilio clock",
            format!(
                "{} s away from Twilio's Date header (tolerance {} s)",
                skew.as_secs(),
                CLOCK_TOLERANCE.as_secs()
            ),
            "sync the system clock (NTP: chrony or systemd-timesyncd)",
        );
    }
}

/// The fields of Twilio's Verify Service resource doctor reads.
#[derive(Deserialize)]
struct VerifyService {
    friendly_name: Option<String>,
    code_length: Option<u64>,
    #[serde(default)]
    lookup_enabled: bool,
    #[serde(default)]
    skip_sms_to_landlines: bool,
    #[serde(default)]
    psd2_enabled: bool,
    #[serde(default)]
    custom_code_enabled: bool,
    whatsapp: Option<serde_json::Value>,
}

/// A failed Twilio read as a checklist line. Returns whether the credentials were the cause.
fn twilio_failure(
    report: &mut Report,
    title: &'static str,
    what: &str,
    error: &TwilioError,
    missing_fix: &str,
) -> bool {
    match error {
        TwilioError::Api(f) if f.is_bad_credentials() => {
            report.fail(
                "twilio credentials",
                format!(
                    "Twilio rejected them (HTTP {}, error {})",
                    f.status,
                    f.code.map_or_else(|| "none".to_owned(), |c| c.to_string())
                ),
                "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (Twilio console > Account > API keys & tokens)",
            );
            true
        }
        TwilioError::Api(f) if f.status == 404 => {
            report.pass(
                "twilio credentials",
                "accepted (Twilio answered 404, not 401)",
            );
            report.fail(title, format!("{what} does not exist ({f})"), missing_fix);
            false
        }
        other => {
            report.fail(
                title,
                format!("{what} could not be read: {other}"),
                "check that this host can reach Twilio over HTTPS, and the TWILIO_*_BASE_URL settings",
            );
            false
        }
    }
}

async fn twilio_verify(report: &mut Report, config: &Config) {
    let Some(credentials) = &config.twilio.credentials else {
        return;
    };
    let api = match TwilioClient::new(
        &config.twilio.verify_base_url,
        &credentials.account_sid,
        credentials.auth_token.clone(),
        config.twilio.timeout,
    ) {
        Ok(api) => api,
        Err(e) => {
            report.fail("twilio", e.to_string(), "see the error");
            return;
        }
    };
    let service_sid = &credentials.service_sid;
    let what = format!("Verify service TWILIO_SERVICE_SID={service_sid}");
    let (service, date) = match api
        .get_dated::<VerifyService>(&format!("/v2/Services/{service_sid}"))
        .await
    {
        Ok(found) => found,
        Err(e) => {
            twilio_failure(
                report,
                "twilio verify service",
                &what,
                &e,
                &format!(
                    "create a Verify service (Twilio console > Verify > Services) and set TWILIO_SERVICE_SID to its VA… SID; \
                     it must belong to account {}",
                    credentials.account_sid
                ),
            );
            return;
        }
    };
    report.pass(
        "twilio credentials",
        format!("accepted for account {}", credentials.account_sid),
    );
    report.pass(
        "twilio verify service",
        format!(
            "{service_sid} \"{}\" exists",
            service.friendly_name.as_deref().unwrap_or("")
        ),
    );
    match service.code_length {
        Some(n) if n != config.codes.length.get() as u64 => report.fail(
            "twilio code length",
            format!(
                "the service sends {n}-digit codes, VERIFYD_CODE_LENGTH is {}: every right code would be refused as invalid_code",
                config.codes.length.get()
            ),
            format!("set VERIFYD_CODE_LENGTH={n} (or change the service's code length)"),
        ),
        Some(n) => report.pass("twilio code length", format!("{n} digits, as VERIFYD_CODE_LENGTH")),
        None => report.info("twilio code length", "the service did not say"),
    }
    verify_channels(report, config, &service);
    report.info(
        "twilio service settings",
        format!(
            "lookup_enabled={}, skip_sms_to_landlines={}, psd2_enabled={}, custom_code_enabled={}",
            service.lookup_enabled,
            service.skip_sms_to_landlines,
            service.psd2_enabled,
            service.custom_code_enabled
        ),
    );
    ip_bucket(report, config, &api, service_sid).await;
    twilio_clock(report, date);
}

/// Which of our enabled channels the service can deliver on, from the Service's fields.
fn verify_channels(report: &mut Report, config: &Config, service: &VerifyService) {
    let configured = |v: &Option<serde_json::Value>| {
        v.as_ref().is_some_and(|v| {
            v.as_object().is_some_and(|o| {
                o.values()
                    .any(|x| !x.is_null() && x != &serde_json::Value::Bool(false))
            })
        })
    };
    // Every Verify service delivers SMS and voice calls; WhatsApp needs a sender on the service.
    let mut offered = vec!["sms", "call"];
    if configured(&service.whatsapp) {
        offered.push("whatsapp");
    }
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    for channel in &config.limits.channels {
        match channel {
            Channel::Sms | Channel::Call => {}
            Channel::Whatsapp if configured(&service.whatsapp) => {}
            Channel::Whatsapp => missing.push("whatsapp (the service has no WhatsApp sender)"),
            Channel::Email | Channel::Sna => unknown.push(channel.as_str()),
        }
    }
    let enabled = config
        .limits
        .channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if missing.is_empty() {
        report.pass(
            "twilio channels",
            format!(
                "the service offers {}; VERIFYD_CHANNELS={enabled}",
                offered.join(", ")
            ),
        );
    } else {
        report.fail(
            "twilio channels",
            format!(
                "VERIFYD_CHANNELS={enabled}, but the service cannot deliver: {}",
                missing.join("; ")
            ),
            "configure that channel on the Verify service (Twilio console), or remove it from VERIFYD_CHANNELS",
        );
    }
    if !unknown.is_empty() {
        report.info(
            "twilio channels",
            format!(
                "{} cannot be checked through the API: check the service's settings in the Twilio console",
                unknown.join(", ")
            ),
        );
    }
}

async fn ip_bucket(report: &mut Report, config: &Config, api: &TwilioClient, service_sid: &str) {
    let ours = config.limits.rate_limit_ip;
    if !ours.enabled() {
        report.pass(
            "twilio ip bucket",
            "VERIFYD_RATE_LIMIT_IP_MAX=0: verifyd sends no RateLimits, so no Twilio-side bucket is used",
        );
        return;
    }
    let want = (u64::from(ours.max), ours.interval.as_secs().max(1));
    let fix = if config.twilio.sync_rate_limits {
        "run `verifyd twilio sync` (`verifyd serve` also syncs it at start)"
    } else {
        "run `verifyd twilio sync` (VERIFYD_TWILIO_SYNC_RATE_LIMITS=false: serve does not sync it)"
    };
    match read_ip_buckets(api, service_sid).await {
        Ok(Some((_, buckets))) if buckets == [want] => report.pass(
            "twilio ip bucket",
            format!(
                "end_user_ip_address has one bucket of {} per {} s, as {}",
                want.0,
                want.1,
                describe_ours(ours)
            ),
        ),
        Ok(Some((_, buckets))) => report.fail(
            "twilio ip bucket",
            format!(
                "end_user_ip_address has {}, but verifyd's IP bucket is {} per {} s ({})",
                if buckets.is_empty() {
                    "no bucket".to_owned()
                } else {
                    buckets
                        .iter()
                        .map(|(m, i)| format!("{m} per {i} s"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                want.0,
                want.1,
                describe_ours(ours)
            ),
            fix,
        ),
        Ok(None) => report.fail(
            "twilio ip bucket",
            "the service has no end_user_ip_address RateLimit: Twilio ignores the client IP verifyd sends",
            fix,
        ),
        Err(e) => {
            twilio_failure(
                report,
                "twilio ip bucket",
                "the service's RateLimits",
                &e,
                fix,
            );
        }
    }
}

fn describe_ours(b: BucketConfig) -> String {
    format!(
        "VERIFYD_RATE_LIMIT_IP_MAX={} per VERIFYD_RATE_LIMIT_IP_INTERVAL={}",
        b.max,
        b.interval.as_secs()
    )
}

#[derive(Deserialize)]
struct MessagingService {
    friendly_name: Option<String>,
}

#[derive(Deserialize)]
struct IncomingNumbers {
    #[serde(default)]
    incoming_phone_numbers: Vec<IncomingNumber>,
}

#[derive(Deserialize)]
struct IncomingNumber {
    phone_number: Option<String>,
    capabilities: Option<Capabilities>,
}

#[derive(Deserialize)]
struct Capabilities {
    #[serde(default)]
    sms: bool,
}

async fn twilio_messaging(report: &mut Report, config: &Config) {
    let Some(settings) = &config.delivery.twilio_messaging else {
        return;
    };
    let client = |base: &str| {
        TwilioClient::new(
            base,
            &settings.account_sid,
            settings.auth_token.clone(),
            config.twilio.timeout,
        )
    };
    match &settings.from {
        MessagingFrom::Service(sid) => {
            let api = match client(&config.twilio.messaging_base_url) {
                Ok(api) => api,
                Err(e) => return report.fail("twilio", e.to_string(), "see the error"),
            };
            match api
                .get_dated::<MessagingService>(&format!("/v1/Services/{sid}"))
                .await
            {
                Ok((service, date)) => {
                    report.pass(
                        "twilio credentials",
                        format!("accepted for account {}", settings.account_sid),
                    );
                    report.pass(
                        "twilio messaging service",
                        format!(
                            "{sid} \"{}\" exists",
                            service.friendly_name.as_deref().unwrap_or("")
                        ),
                    );
                    twilio_clock(report, date);
                }
                Err(e) => {
                    twilio_failure(
                        report,
                        "twilio messaging service",
                        &format!("Messaging Service TWILIO_MESSAGING_SERVICE_SID={sid}"),
                        &e,
                        "create a Messaging Service (Twilio console > Messaging > Services) with a sender pool, \
                         and set TWILIO_MESSAGING_SERVICE_SID to its MG… SID",
                    );
                }
            }
        }
        MessagingFrom::Number(from) if from.starts_with('+') => {
            let api = match client(&config.twilio.api_base_url) {
                Ok(api) => api,
                Err(e) => return report.fail("twilio", e.to_string(), "see the error"),
            };
            let query = form_urlencode(from);
            let path = format!(
                "/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json?PhoneNumber={query}",
                settings.account_sid
            );
            let fix = "set TWILIO_FROM to an SMS-capable number of this account (Twilio console > Phone Numbers), \
                       or use TWILIO_MESSAGING_SERVICE_SID";
            match api.get_dated::<IncomingNumbers>(&path).await {
                Ok((list, date)) => {
                    report.pass(
                        "twilio credentials",
                        format!("accepted for account {}", settings.account_sid),
                    );
                    let number = list
                        .incoming_phone_numbers
                        .iter()
                        .find(|n| n.phone_number.as_deref() == Some(from.as_str()));
                    match number {
                        Some(n) if n.capabilities.as_ref().is_none_or(|c| c.sms) => report.pass(
                            "twilio from number",
                            format!("TWILIO_FROM={from} is an SMS-capable number of the account"),
                        ),
                        Some(_) => report.fail(
                            "twilio from number",
                            format!("TWILIO_FROM={from} belongs to the account but cannot send SMS"),
                            fix,
                        ),
                        None => report.fail(
                            "twilio from number",
                            format!(
                                "TWILIO_FROM={from} is not a number of account {}",
                                settings.account_sid
                            ),
                            fix,
                        ),
                    }
                    twilio_clock(report, date);
                }
                Err(e) => {
                    twilio_failure(
                        report,
                        "twilio from number",
                        &format!("TWILIO_FROM={from}"),
                        &e,
                        fix,
                    );
                }
            }
        }
        MessagingFrom::Number(from) => report.info(
            "twilio from number",
            format!(
                "TWILIO_FROM={from} is a short code or alphanumeric sender ID: Twilio's API cannot confirm it"
            ),
        ),
    }
}

/// Percent-encodes a query value (`+` becomes `%2B`).
fn form_urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_failures_and_prints_fixes() {
        let mut r = Report::default();
        r.pass("store", "ok");
        r.fail("twilio", "bad", "do this");
        r.info("note", "fyi");
        assert_eq!(r.failures(), 1);
        let text = r.render();
        assert!(text.contains("✔ store: ok"), "{text}");
        assert!(text.contains("✘ twilio: bad\n    fix: do this"), "{text}");
        assert!(text.contains("1 check(s) failed"), "{text}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(form_urlencode("+15005550006"), "%2B15005550006");
    }

    #[test]
    fn the_build_time_is_recorded() {
        assert!(BUILT_UNIX.parse::<i64>().unwrap() > 1_700_000_000);
    }
}
