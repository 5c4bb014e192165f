//! Every setting, read once at start from layered sources and validated before any port is
//! bound. Precedence: the process environment, then `.env.development`, then `.env` (both in the
//! working directory), then `verifyd.toml` (or the file named by `VERIFYD_CONFIG`), then the
//! defaults. Nothing else in the crate reads the environment.
//!
//! Every problem is collected and reported together as `NAME=value is not valid: reason`
//! (secret values redacted); the binary exits 64 (`EX_USAGE`) on any of them.
//!
//! The layout: `settings.rs` is the one table of settings (constants, defaults, docs); each
//! component's file holds its settings struct and reads its rows (`server`, `store`, `auth`,
//! `twilio`, `delivery`, `limits`, `telemetry`, `codes`); `production.rs` the profile and the
//! production rules; `source.rs` the layers and the problem collector; `parse.rs` the shared
//! value parsers and URL redaction. [`Config`] is the struct of the component structs, and each
//! module is handed only its component.

/// Declares a component's settings struct and its draft (every field an `Option`, `None` when
/// that value's problem was recorded), with `finish` turning a complete draft into the struct.
macro_rules! component {
    (
        $(#[$meta:meta])*
        pub struct $name:ident / $draft:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        /// The settings as read, each `None` when its problem was recorded.
        #[derive(Default)]
        pub(super) struct $draft {
            $( pub $field: Option<$ty>, )*
        }

        impl $draft {
            /// The settings, when every value was valid.
            pub(super) fn finish(self) -> Option<$name> {
                Some($name { $( $field: self.$field?, )* })
            }
        }
    };
}

mod auth;
mod channels;
mod codes;
mod delivery;
mod events;
mod fraud_guard;
mod limits;
mod messages;
mod parse;
mod production;
mod routes;
mod server;
mod settings;
mod sms_vendors;
mod source;
mod store;
mod telemetry;
mod twilio;
mod vendors;

pub use auth::{AuthMode, AuthSettings, JwtConfig};
pub use channels::{ChannelSettings, EmailSettings, MetaWhatsappSettings, TwilioAccount};
pub use codes::{CodeSettings, TestNumber};
pub use delivery::{
    DeliverySettings, MessagingFrom, ProviderKind, SenderKind, TwilioMessagingConfig, WebhookConfig,
};
pub use events::{DEFAULT_ENDPOINT, EventEndpoint, EventSettings};
pub use fraud_guard::{FraudGuardSettings, GuardMode};
pub use limits::{BucketConfig, Buckets, LimitSettings, SendLimits, VerifyLimits};
pub use messages::MessageSettings;
pub use parse::{parse_duration, redact_url};
pub use production::Profile;
pub use routes::SmsRoutes;
pub use server::ServerSettings;
pub use settings::*;
pub use sms_vendors::{BirdConfig, InfobipConfig, MoreVendors, PlivoConfig, SinchConfig};
pub use source::{ConfigError, Origin, Problem, Sources};
pub use store::{Database, SqliteLocation, SqliteSync, StoreSettings};
pub use telemetry::{LogFormat, TelemetrySettings};
pub use twilio::{TwilioCredentials, TwilioSettings};
pub use vendors::{TelnyxConfig, VonageConfig};

use source::Reader;

/// The validated settings: one struct per component.
#[derive(Clone, Debug)]
pub struct Config {
    /// `development` (the default) or `production`.
    pub profile: Profile,
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub twilio: TwilioSettings,
    pub delivery: DeliverySettings,
    pub limits: LimitSettings,
    pub codes: CodeSettings,
    pub telemetry: TelemetrySettings,
    /// What messages say (locale, templates, WebOTP).
    pub messages: MessageSettings,
    /// WhatsApp and voice senders, and the fallback between channels.
    pub channels: ChannelSettings,
    /// The fraud guard.
    pub fraud_guard: FraudGuardSettings,
    /// Signed events: endpoints, retries.
    pub events: EventSettings,
    /// Not errors, but worth a line at startup and in `verifyd config`.
    pub warnings: Vec<String>,
    /// Each setting's effective value and where it came from, secrets redacted, in
    /// [`SETTINGS`] order.
    pub effective: Vec<(&'static str, String, Origin)>,
}

impl Config {
    /// Reads the binary's sources: the environment and the files in the working directory.
    ///
    /// # Errors
    /// [`ConfigError`] listing every bad setting.
    pub fn load() -> Result<Self, ConfigError> {
        let dir = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));
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

    /// Reads and validates every setting from `sources`: each component reads its own, then
    /// the rules across components (the production rules among them) are judged on what is
    /// in use.
    ///
    /// # Errors
    /// [`ConfigError`] listing every bad setting.
    pub fn from_sources(sources: &Sources) -> Result<Self, ConfigError> {
        let mut r = Reader::new(sources);
        let profile = production::read_profile(&mut r);
        let server = server::read(&mut r);
        let store = store::read(&mut r);
        let auth = auth::read(&mut r);
        let mut twilio = twilio::read_credentials(&mut r);
        let delivery = delivery::read(&mut r, &twilio);
        twilio::read_api(&mut r, &mut twilio);
        let limits = limits::read(&mut r);
        let codes = codes::read(&mut r);
        let telemetry = telemetry::read(&mut r);
        let messages = messages::read(&mut r);
        let channels = channels::read(&mut r, &twilio, &limits);
        let fraud_guard = fraud_guard::read(&mut r, profile);
        let events = events::read(&mut r, profile);
        let _ = r.raw(ENV_CONFIG);

        let drafts = Drafts {
            profile,
            server: &server,
            store: &store,
            auth: &auth,
            twilio: &twilio,
            delivery: &delivery,
            limits: &limits,
            codes: &codes,
            channels: &channels,
        };
        across_components(&mut r, &drafts);

        let Reader {
            problems,
            mut effective,
            warnings,
            ..
        } = r;
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        effective.sort_by_key(|(name, ..)| SETTINGS.iter().position(|s| s.name == *name));
        // Every `None` above recorded a problem, so all are `Some` here.
        let missing = || ConfigError {
            problems: Vec::new(),
        };
        let server = server.finish().ok_or_else(missing)?;
        let mut delivery = delivery.finish().ok_or_else(missing)?;
        delivery.public_url.clone_from(&server.public_url);
        Ok(Config {
            profile: profile.ok_or_else(missing)?,
            server,
            store: store.finish().ok_or_else(missing)?,
            auth: auth.finish().ok_or_else(missing)?,
            twilio: twilio.finish().ok_or_else(missing)?,
            delivery,
            limits: limits.finish().ok_or_else(missing)?,
            codes: codes.finish().ok_or_else(missing)?,
            telemetry: telemetry.finish().ok_or_else(missing)?,
            messages: messages.finish().ok_or_else(missing)?,
            channels: channels.finish().ok_or_else(missing)?,
            fraud_guard: fraud_guard.finish().ok_or_else(missing)?,
            events: events.finish().ok_or_else(missing)?,
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
            self.delivery.provider.as_str(),
            self.delivery.provider_reason
        ));
        let s = &self.limits.send;
        let v = &self.limits.verify;
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
        for t in &self.codes.test_numbers {
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
}

/// What the rules across components look at: each component as read.
struct Drafts<'a> {
    profile: Option<Profile>,
    server: &'a server::ServerDraft,
    store: &'a store::StoreDraft,
    auth: &'a auth::AuthDraft,
    twilio: &'a twilio::TwilioDraft,
    delivery: &'a delivery::DeliveryDraft,
    limits: &'a limits::LimitDraft,
    codes: &'a codes::CodeDraft,
    channels: &'a channels::ChannelDraft,
}

/// The rules that look at several components: the outbound URLs in use (production refuses
/// plain http://, development warns), the production rules, the shared store's needs, and the
/// warnings about combinations.
fn across_components(r: &mut Reader<'_>, d: &Drafts<'_>) {
    let provider = d.delivery.provider;
    let sms_sender = d.delivery.sender;
    // The outbound URLs in use: where codes, tokens or credentials travel.
    let mut urls_in_use: Vec<(&'static str, &str)> = Vec::new();
    if let Some(j) = &d.auth.jwt {
        urls_in_use.push((ENV_JWT_JWKS_URL, &j.jwks_url));
    }
    if let Some(w) = &d.delivery.webhook {
        urls_in_use.push((ENV_SMS_WEBHOOK_URL, &w.url));
    }
    match (provider, sms_sender) {
        (Some(ProviderKind::TwilioVerify), _) => {
            if let Some(u) = &d.twilio.verify_base_url {
                urls_in_use.push((ENV_TWILIO_VERIFY_BASE_URL, u));
            }
        }
        (Some(ProviderKind::Local), Some(SenderKind::TwilioMessaging)) => {
            if let Some(u) = &d.twilio.api_base_url {
                urls_in_use.push((ENV_TWILIO_API_BASE_URL, u));
            }
            if let Some(u) = &d.twilio.messaging_base_url {
                urls_in_use.push((ENV_TWILIO_MESSAGING_BASE_URL, u));
            }
        }
        _ => {}
    }
    if provider == Some(ProviderKind::Local)
        && sms_sender != Some(SenderKind::TwilioMessaging)
        && let Some(routes) = &d.delivery.routes
        && routes.vendors().contains(&SenderKind::TwilioMessaging)
        && let Some(u) = &d.twilio.api_base_url
    {
        urls_in_use.push((ENV_TWILIO_API_BASE_URL, u));
    }
    // Where vendors post delivery receipts (and what the `/v2` face's links say).
    if let Some(Some(u)) = &d.server.public_url {
        urls_in_use.push((ENV_PUBLIC_URL, u));
    }
    if let Some(t) = &d.delivery.telnyx {
        urls_in_use.push((ENV_TELNYX_BASE_URL, &t.base_url));
    }
    if let Some(v) = &d.delivery.vonage {
        urls_in_use.push((ENV_VONAGE_BASE_URL, &v.base_url));
    }
    d.delivery.more.urls_in_use(&mut urls_in_use);
    if let Some(Some(m)) = &d.channels.meta_whatsapp {
        urls_in_use.push((settings::ENV_WHATSAPP_BASE_URL, &m.base_url));
    }
    if d.profile == Some(Profile::Production) {
        routes::production_rule(r, provider, d.delivery.routes.as_ref());
    }
    // With a `*` route, VERIFYD_SMS_SENDER carries nothing: not judged.
    let sms_sender = sms_sender.filter(|_| {
        d.delivery
            .routes
            .as_ref()
            .is_none_or(|routes| routes.fallback.is_none())
    });
    if d.profile == Some(Profile::Production) {
        production::production_rules(
            r,
            &production::Judged {
                provider,
                sms_sender,
                secret_set: !matches!(d.store.secret, Some(None)),
                auth_mode: d.auth.mode.unwrap_or(AuthMode::ApiKey),
                api_keys_set: !d.auth.api_keys.is_empty(),
                trusted_proxies: d.server.trusted_proxies.as_deref(),
                test_numbers: &d.codes.test_numbers,
                code_length: d.codes.length,
                code_ttl: d.codes.ttl,
                urls: &urls_in_use,
            },
        );
    } else {
        production::warn_plain_http(r, &urls_in_use);
    }

    if let Some(Database::Postgres { .. }) = &d.store.database {
        if let Some(None) = &d.store.secret {
            r.problem(
                ENV_SECRET,
                "",
                "must be set when the store is PostgreSQL: every replica needs the same \
                 secret, so a generated one is refused",
            );
        }
        if let Some(None) = &d.limits.redis_url {
            r.warn(
                "the store is shared (PostgreSQL) but the rate limiter is in this process's memory: \
                 every replica counts its own buckets, so each limit multiplies by the number of \
                 replicas; set VERIFYD_REDIS_URL=redis://host:6379 to share them",
            );
        }
        if d.auth.api_keys.is_empty() {
            r.warn(
                "the store is shared (PostgreSQL) and VERIFYD_API_KEYS is unset: the generated key \
                 is read from the database at startup, so startup needs the database; \
                 set VERIFYD_API_KEYS on every replica",
            );
        }
    }

    if let (Some(Database::Sqlite(SqliteLocation::Memory)), Some(None)) =
        (&d.store.database, &d.store.secret)
    {
        r.warn(
            "the store is in memory and VERIFYD_SECRET is unset: a secret is generated for this process only",
        );
    }
    if d.profile != Some(Profile::Production)
        && d.server
            .trusted_proxies
            .as_ref()
            .is_some_and(|p| p.iter().any(|n| n.prefix_len() == 0))
    {
        r.warn(
            "VERIFYD_TRUSTED_PROXIES trusts every address: any client can choose its own IP bucket",
        );
    }

    if let (Some(ProviderKind::TwilioVerify), Some(twilio), Some(request)) =
        (provider, d.twilio.timeout, d.server.request_timeout)
        && twilio >= request
    {
        r.warn(
            "TWILIO_TIMEOUT is not below VERIFYD_REQUEST_TIMEOUT: a slow Twilio is answered 503 instead of 502",
        );
    }
}

#[cfg(test)]
mod tests;
