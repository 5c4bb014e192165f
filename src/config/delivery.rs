//! How codes are delivered: the engine (the local one, or Twilio Verify, which delivers its own
//! codes) and, for the local engine, the sender (console, null, Twilio Programmable Messaging or
//! the signed webhook) with that sender's settings, judged only when it is in use.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use super::parse::positive_duration;
use super::parse::{parse_url, redact_url, sender_id, sid};
use super::settings::{
    ENV_PROVIDER, ENV_SMS_FROM, ENV_SMS_ROUTES, ENV_SMS_SENDER, ENV_SMS_WEBHOOK_SECRET,
    ENV_SMS_WEBHOOK_TIMEOUT, ENV_SMS_WEBHOOK_URL, ENV_TWILIO_FROM,
    ENV_TWILIO_MESSAGING_SERVICE_SID,
};
use super::source::Reader;
use super::twilio::TwilioDraft;

/// How codes are delivered.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    pub provider: ProviderKind,
    /// Why this provider was chosen (for the startup log).
    pub provider_reason: &'static str,
    pub sender: SenderKind,
    /// Set when the local engine delivers through Twilio Programmable Messaging.
    pub twilio_messaging: Option<TwilioMessagingConfig>,
    /// Set when the local engine delivers through the signed webhook.
    pub webhook: Option<WebhookConfig>,
    /// `VERIFYD_SMS_ROUTES` (empty: `sender` alone).
    pub routes: super::SmsRoutes,
    /// Set when the sender or a route uses Telnyx.
    pub telnyx: Option<super::TelnyxConfig>,
    /// Set when the sender or a route uses Vonage.
    pub vonage: Option<super::VonageConfig>,
    /// Set when the sender or a route uses Plivo, Sinch, Infobip or Bird.
    pub more: super::MoreVendors,
    /// `VERIFYD_PUBLIC_URL` (copied from the server's settings): where vendors post delivery
    /// receipts. None: no receipts are asked for.
    pub public_url: Option<String>,
    /// `VERIFYD_SMS_FROM`: the sender per destination country (empty: each vendor's own).
    pub sms_from: crate::domain::SenderIds,
}

impl DeliverySettings {
    /// `{VERIFYD_PUBLIC_URL}/callbacks/{vendor}`, when the public URL is set.
    #[must_use]
    pub fn receipt_url(&self, vendor: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{}/callbacks/{vendor}", base.trim_end_matches('/')))
    }
}

/// The delivery settings as read, each `None` when its problem was recorded.
pub(super) struct DeliveryDraft {
    pub provider: Option<ProviderKind>,
    pub provider_reason: &'static str,
    pub sender: Option<SenderKind>,
    pub twilio_messaging: Option<TwilioMessagingConfig>,
    pub webhook: Option<WebhookConfig>,
    pub routes: Option<super::SmsRoutes>,
    pub telnyx: Option<super::TelnyxConfig>,
    pub vonage: Option<super::VonageConfig>,
    pub more: super::MoreVendors,
    pub sms_from: Option<crate::domain::SenderIds>,
}

impl DeliveryDraft {
    pub(super) fn finish(self) -> Option<DeliverySettings> {
        Some(DeliverySettings {
            provider: self.provider?,
            provider_reason: self.provider_reason,
            sender: self.sender?,
            twilio_messaging: self.twilio_messaging,
            webhook: self.webhook,
            routes: self.routes?,
            telnyx: self.telnyx,
            vonage: self.vonage,
            more: self.more,
            public_url: None,
            sms_from: self.sms_from?,
        })
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
    Telnyx,
    Vonage,
    Plivo,
    Sinch,
    Infobip,
    Bird,
}

impl SenderKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            SenderKind::Console => "console",
            SenderKind::Null => "null",
            SenderKind::TwilioMessaging => "twilio-messaging",
            SenderKind::Webhook => "webhook",
            SenderKind::Telnyx => "telnyx",
            SenderKind::Vonage => "vonage",
            SenderKind::Plivo => "plivo",
            SenderKind::Sinch => "sinch",
            SenderKind::Infobip => "infobip",
            SenderKind::Bird => "bird",
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
            .field("url", &redact_url(&self.url))
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Reads the engine, the sender and the sender's settings (judged only when the local engine
/// uses that sender); `twilio` holds the seed's credentials, read before.
pub(super) fn read(r: &mut Reader<'_>, twilio: &TwilioDraft) -> DeliveryDraft {
    let all_twilio = twilio.all();
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
            if twilio.any() && !(messaging_wanted && twilio.service_sid.is_none()) {
                r.warn(
                    "some but not all of TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_SERVICE_SID are set; \
                     set all three to use Twilio Verify",
                );
            }
            (
                Some(ProviderKind::Local),
                "no Twilio credentials set (the embedded default)",
            )
        }
    };
    let sender = r.parse(ENV_SMS_SENDER, |t| {
        super::routes::vendor(t).map_err(|_| {
            "expected `console`, `twilio-messaging`, `webhook`, `telnyx`, `vonage`, `plivo`, `sinch`, `infobip`, `bird` or `null`"
                .to_owned()
        })
    });
    let routes = r.parse(ENV_SMS_ROUTES, super::routes::parse_routes);
    let sms_from = r.parse(ENV_SMS_FROM, crate::domain::SenderIds::parse);
    // A vendor's settings are judged when the sender or a route uses it.
    let routed = |kind: SenderKind| {
        sender == Some(kind) || routes.as_ref().is_some_and(|r| r.vendors().contains(&kind))
    };
    if sender == Some(SenderKind::Null) {
        r.warn("VERIFYD_SMS_SENDER=null discards every message: for benchmarks only");
    }
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
        Some(v) => match parse_url(v.trim()) {
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
    let mut webhook = None;
    let local = provider == Some(ProviderKind::Local);
    if local && routed(SenderKind::TwilioMessaging) {
        {
            if twilio.account_sid.is_none() || twilio.auth_token.is_none() {
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
                (&twilio.account_sid, &twilio.auth_token, from)
            {
                twilio_messaging = Some(TwilioMessagingConfig {
                    account_sid: account_sid.clone(),
                    auth_token: SecretString::from(token.clone()),
                    from,
                });
            }
        }
    }
    if local && routed(SenderKind::Webhook) {
        {
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
                webhook = Some(WebhookConfig {
                    url: url.clone(),
                    secret: SecretString::from(secret.clone()),
                    timeout,
                });
            }
        }
    }
    let telnyx = if local && routed(SenderKind::Telnyx) {
        super::vendors::read_telnyx(r)
    } else {
        None
    };
    let vonage = if local && routed(SenderKind::Vonage) {
        super::vendors::read_vonage(r)
    } else {
        None
    };
    let more = if local {
        super::sms_vendors::read(r, &routed)
    } else {
        super::MoreVendors::default()
    };
    match (provider, sender) {
        (Some(ProviderKind::TwilioVerify), Some(sender)) if sender != SenderKind::Console => {
            r.warn(format!(
                "VERIFYD_SMS_SENDER={} is unused: with provider twilio-verify, Twilio delivers the codes",
                sender.as_str()
            ));
        }
        _ => {}
    }
    DeliveryDraft {
        provider,
        provider_reason,
        sender,
        twilio_messaging,
        webhook,
        routes,
        sms_from,
        telnyx,
        vonage,
        more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::config::*;

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
        assert_eq!(c.delivery.provider, ProviderKind::Local);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let m = c.delivery.twilio_messaging.unwrap();
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
        let w = c.delivery.webhook.unwrap();
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
        assert_eq!(c.delivery.provider, ProviderKind::TwilioVerify);
        assert!(c.delivery.webhook.is_none());
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }
}
