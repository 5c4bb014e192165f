//! The settings of the Plivo, Sinch, Infobip and Bird SMS vendors, each under its vendor's own
//! credential names, read only when the sender or a route uses that vendor. Every secret is a
//! [`SecretString`] and every `Debug` hides it.

use std::fmt;

use secrecy::SecretString;

use super::delivery::SenderKind;
use super::parse::{parse_url, sender_id};
use super::settings::{
    ENV_BIRD_API_KEY, ENV_BIRD_BASE_URL, ENV_BIRD_FROM, ENV_BIRD_WEBHOOK_SECRET,
    ENV_INFOBIP_API_KEY, ENV_INFOBIP_BASE_URL, ENV_INFOBIP_FROM, ENV_INFOBIP_RECEIPT_TOKEN,
    ENV_PLIVO_AUTH_ID, ENV_PLIVO_AUTH_TOKEN, ENV_PLIVO_BASE_URL, ENV_PLIVO_FROM,
    ENV_SINCH_API_TOKEN, ENV_SINCH_BASE_URL, ENV_SINCH_FROM, ENV_SINCH_SERVICE_PLAN_ID,
    ENV_SINCH_WEBHOOK_SECRET,
};
use super::source::Reader;

/// The settings of the vendors this file reads, each `Some` when the sender or a route uses it.
#[derive(Clone, Debug, Default)]
pub struct MoreVendors {
    pub plivo: Option<PlivoConfig>,
    pub sinch: Option<SinchConfig>,
    pub infobip: Option<InfobipConfig>,
    pub bird: Option<BirdConfig>,
}

impl MoreVendors {
    /// Their base URLs, for the rules about plain `http://` in production.
    pub(super) fn urls_in_use<'a>(&'a self, urls: &mut Vec<(&'static str, &'a str)>) {
        if let Some(p) = &self.plivo {
            urls.push((ENV_PLIVO_BASE_URL, &p.base_url));
        }
        if let Some(s) = &self.sinch {
            urls.push((ENV_SINCH_BASE_URL, &s.base_url));
        }
        if let Some(i) = &self.infobip {
            urls.push((ENV_INFOBIP_BASE_URL, &i.base_url));
        }
        if let Some(b) = &self.bird {
            urls.push((ENV_BIRD_BASE_URL, &b.base_url));
        }
    }
}

/// The `plivo` vendor's settings.
#[derive(Clone)]
pub struct PlivoConfig {
    pub auth_id: String,
    pub auth_token: SecretString,
    pub from: String,
    pub base_url: String,
}

impl fmt::Debug for PlivoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlivoConfig")
            .field("auth_id", &self.auth_id)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// The `sinch` vendor's settings (SMS REST API, service plan and token).
#[derive(Clone)]
pub struct SinchConfig {
    pub service_plan_id: String,
    pub api_token: SecretString,
    pub from: String,
    pub base_url: String,
    /// The HMAC secret of signed delivery reports, when set.
    pub webhook_secret: Option<SecretString>,
}

impl fmt::Debug for SinchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinchConfig")
            .field("service_plan_id", &self.service_plan_id)
            .field("api_token", &"<redacted>")
            .field("from", &self.from)
            .field("base_url", &self.base_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The `infobip` vendor's settings.
#[derive(Clone)]
pub struct InfobipConfig {
    pub api_key: SecretString,
    pub from: String,
    pub base_url: String,
    /// The secret token delivery-report URLs carry, when set.
    pub receipt_token: Option<SecretString>,
}

impl fmt::Debug for InfobipConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfobipConfig")
            .field("api_key", &"<redacted>")
            .field("from", &self.from)
            .field("base_url", &self.base_url)
            .field(
                "receipt_token",
                &self.receipt_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The `bird` vendor's settings (Bird's SMS API).
#[derive(Clone)]
pub struct BirdConfig {
    pub api_key: SecretString,
    pub from: String,
    /// `BIRD_BASE_URL`, or the host of the key's region.
    pub base_url: String,
    /// The Standard Webhooks signing secret (`whsec_…`), when set.
    pub webhook_secret: Option<SecretString>,
}

impl fmt::Debug for BirdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BirdConfig")
            .field("api_key", &"<redacted>")
            .field("from", &self.from)
            .field("base_url", &self.base_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A setting's trimmed value, `None` when unset or empty.
fn set(r: &mut Reader<'_>, name: &'static str) -> Option<String> {
    r.raw(name)
        .0
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A required setting: its problem recorded when missing.
fn required(r: &mut Reader<'_>, name: &'static str, vendor: &str) -> Option<String> {
    let value = set(r, name);
    if value.is_none() {
        r.problem(name, "", format!("the {vendor} vendor needs {name}"));
    }
    value
}

/// A required sender ID or number.
fn sender(r: &mut Reader<'_>, name: &'static str, vendor: &str) -> Option<String> {
    let from = required(r, name, vendor)?;
    match sender_id(&from) {
        Ok(()) => Some(from),
        Err(e) => {
            r.problem(name, &from, e);
            None
        }
    }
}

/// A base URL (its default when unset).
fn base_url(r: &mut Reader<'_>, name: &'static str) -> Option<String> {
    let base = r.text(name);
    match parse_url(base.trim()) {
        Ok(u) => Some(u),
        Err(e) => {
            r.problem(name, &base, e);
            None
        }
    }
}

/// Reads each vendor's settings when `routed` says the sender or a route uses it.
pub(super) fn read(r: &mut Reader<'_>, routed: &dyn Fn(SenderKind) -> bool) -> MoreVendors {
    MoreVendors {
        plivo: routed(SenderKind::Plivo).then(|| read_plivo(r)).flatten(),
        sinch: routed(SenderKind::Sinch).then(|| read_sinch(r)).flatten(),
        infobip: routed(SenderKind::Infobip)
            .then(|| read_infobip(r))
            .flatten(),
        bird: routed(SenderKind::Bird).then(|| read_bird(r)).flatten(),
    }
}

fn read_plivo(r: &mut Reader<'_>) -> Option<PlivoConfig> {
    let auth_id = required(r, ENV_PLIVO_AUTH_ID, "plivo");
    if let Some(id) = &auth_id
        && !id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        // It is a path segment of every request.
        r.problem(ENV_PLIVO_AUTH_ID, id, "must be letters and digits only");
    }
    let auth_token = required(r, ENV_PLIVO_AUTH_TOKEN, "plivo");
    let from = sender(r, ENV_PLIVO_FROM, "plivo");
    let base_url = base_url(r, ENV_PLIVO_BASE_URL);
    Some(PlivoConfig {
        auth_id: auth_id.filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric()))?,
        auth_token: SecretString::from(auth_token?),
        from: from?,
        base_url: base_url?,
    })
}

fn read_sinch(r: &mut Reader<'_>) -> Option<SinchConfig> {
    let plan = required(r, ENV_SINCH_SERVICE_PLAN_ID, "sinch");
    let plan_ok = |p: &String| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if let Some(p) = &plan
        && !plan_ok(p)
    {
        r.problem(
            ENV_SINCH_SERVICE_PLAN_ID,
            p,
            "must be letters, digits, `-` and `_` only",
        );
    }
    let api_token = required(r, ENV_SINCH_API_TOKEN, "sinch");
    let from = sender(r, ENV_SINCH_FROM, "sinch");
    let base_url = base_url(r, ENV_SINCH_BASE_URL);
    let webhook_secret = set(r, ENV_SINCH_WEBHOOK_SECRET).map(SecretString::from);
    Some(SinchConfig {
        service_plan_id: plan.filter(plan_ok)?,
        api_token: SecretString::from(api_token?),
        from: from?,
        base_url: base_url?,
        webhook_secret,
    })
}

fn read_infobip(r: &mut Reader<'_>) -> Option<InfobipConfig> {
    let api_key = required(r, ENV_INFOBIP_API_KEY, "infobip");
    let from = sender(r, ENV_INFOBIP_FROM, "infobip");
    let base_url = base_url(r, ENV_INFOBIP_BASE_URL);
    let token = set(r, ENV_INFOBIP_RECEIPT_TOKEN);
    if let Some(t) = &token
        && t.len() < 24
    {
        r.problem(
            ENV_INFOBIP_RECEIPT_TOKEN,
            t,
            "must be at least 24 characters long",
        );
    }
    Some(InfobipConfig {
        api_key: SecretString::from(api_key?),
        from: from?,
        base_url: base_url?,
        receipt_token: match token {
            Some(t) if t.len() < 24 => return None,
            t => t.map(SecretString::from),
        },
    })
}

/// The region of a `bk_{region}_{token}` key (`us1`, `eu1`, …), if it has one.
pub fn bird_region(key: &str) -> Option<&str> {
    let mut parts = key.splitn(3, '_');
    let (Some("bk"), Some(region), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let letters = region.bytes().take_while(u8::is_ascii_lowercase).count();
    let ok = letters == 2 && region.len() > 2 && region.bytes().skip(2).all(|b| b.is_ascii_digit());
    ok.then_some(region)
}

fn read_bird(r: &mut Reader<'_>) -> Option<BirdConfig> {
    let api_key = required(r, ENV_BIRD_API_KEY, "bird");
    let from = sender(r, ENV_BIRD_FROM, "bird");
    let base_url = match set(r, ENV_BIRD_BASE_URL) {
        Some(u) => match parse_url(&u) {
            Ok(u) => Some(u),
            Err(e) => {
                r.problem(ENV_BIRD_BASE_URL, &u, e);
                None
            }
        },
        None => match api_key.as_deref().map(bird_region) {
            Some(Some(region)) => Some(format!("https://{region}.platform.bird.com")),
            Some(None) => {
                r.problem(
                    ENV_BIRD_BASE_URL,
                    "",
                    "BIRD_API_KEY names no region (`bk_{region}_…`): set BIRD_BASE_URL",
                );
                None
            }
            None => None,
        },
    };
    let webhook_secret = set(r, ENV_BIRD_WEBHOOK_SECRET);
    if let Some(s) = &webhook_secret
        && crate::sms::bird::webhook_key(s).is_none()
    {
        r.problem(
            ENV_BIRD_WEBHOOK_SECRET,
            s,
            "expected `whsec_` followed by base64 (Bird's signing secret)",
        );
    }
    Some(BirdConfig {
        api_key: SecretString::from(api_key?),
        from: from?,
        base_url: base_url?,
        webhook_secret: match webhook_secret {
            Some(s) if crate::sms::bird::webhook_key(&s).is_none() => return None,
            s => s.map(SecretString::from),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::bird_region;
    use crate::config::tests::config;
    use crate::config::*;

    #[test]
    fn each_vendor_names_its_missing_settings() {
        for (vendor, needs) in [
            (
                "plivo",
                &["PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "PLIVO_FROM"][..],
            ),
            (
                "sinch",
                &["SINCH_SERVICE_PLAN_ID", "SINCH_API_TOKEN", "SINCH_FROM"][..],
            ),
            ("infobip", &["INFOBIP_API_KEY", "INFOBIP_FROM"][..]),
            ("bird", &["BIRD_API_KEY", "BIRD_FROM"][..]),
        ] {
            let text = config(&[(ENV_SMS_SENDER, vendor)]).unwrap_err().to_string();
            for name in needs {
                assert!(text.contains(name), "{vendor}: {name} in {text}");
            }
            let routes = format!("US={vendor},console");
            assert!(config(&[(ENV_SMS_ROUTES, routes.as_str())]).is_err());
        }
    }

    #[test]
    fn the_four_vendors_read_their_settings_and_hide_their_secrets() {
        let c = config(&[
            (ENV_SMS_ROUTES, "US=plivo,sinch;GB=infobip,bird;*=console"),
            (ENV_PLIVO_AUTH_ID, "MAXXXXXXXXXXXXXXXXXX"),
            (ENV_PLIVO_AUTH_TOKEN, "SECRETPART-plivo"),
            (ENV_PLIVO_FROM, "+14155550100"),
            (ENV_SINCH_SERVICE_PLAN_ID, "0123abcd"),
            (ENV_SINCH_API_TOKEN, "SECRETPART-sinch"),
            (ENV_SINCH_FROM, "Acme"),
            (ENV_SINCH_WEBHOOK_SECRET, "SECRETPART-sinch-hmac"),
            (ENV_INFOBIP_API_KEY, "SECRETPART-infobip"),
            (ENV_INFOBIP_FROM, "Acme"),
            (ENV_INFOBIP_RECEIPT_TOKEN, "SECRETPART-0123456789abcdef"),
            (ENV_BIRD_API_KEY, "bk_eu1_SECRETPART"),
            (ENV_BIRD_FROM, "Acme"),
            (
                ENV_BIRD_WEBHOOK_SECRET,
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ])
        .unwrap();
        let m = &c.delivery.more;
        assert_eq!(m.plivo.as_ref().unwrap().base_url, "https://api.plivo.com");
        assert_eq!(
            m.sinch.as_ref().unwrap().base_url,
            "https://us.sms.api.sinch.com"
        );
        assert_eq!(
            m.infobip.as_ref().unwrap().base_url,
            "https://api.infobip.com"
        );
        assert_eq!(
            m.bird.as_ref().unwrap().base_url,
            "https://eu1.platform.bird.com"
        );
        let verifiers: Vec<&str> = crate::sms::more_receipt_verifiers(m)
            .iter()
            .map(|v| v.vendor())
            .collect();
        assert_eq!(verifiers, ["plivo", "sinch", "infobip", "bird"]);
        let shown = format!("{m:?}");
        assert!(
            !shown.contains("SECRETPART") && !shown.contains("MfKQ"),
            "{shown}"
        );
    }

    #[test]
    fn without_their_secrets_only_plivo_verifies_receipts() {
        let c = config(&[
            (ENV_SMS_ROUTES, "US=plivo,sinch;GB=infobip,bird;*=console"),
            (ENV_PLIVO_AUTH_ID, "MAXXXXXXXXXXXXXXXXXX"),
            (ENV_PLIVO_AUTH_TOKEN, "t"),
            (ENV_PLIVO_FROM, "+14155550100"),
            (ENV_SINCH_SERVICE_PLAN_ID, "plan"),
            (ENV_SINCH_API_TOKEN, "t"),
            (ENV_SINCH_FROM, "Acme"),
            (ENV_INFOBIP_API_KEY, "k"),
            (ENV_INFOBIP_FROM, "Acme"),
            (ENV_BIRD_API_KEY, "bk_us1_k"),
            (ENV_BIRD_FROM, "Acme"),
        ])
        .unwrap();
        let verifiers: Vec<&str> = crate::sms::more_receipt_verifiers(&c.delivery.more)
            .iter()
            .map(|v| v.vendor())
            .collect();
        assert_eq!(verifiers, ["plivo"]);
    }

    #[test]
    fn bad_values_are_refused_with_their_setting() {
        let base = [
            (ENV_SMS_SENDER, "bird"),
            (ENV_BIRD_API_KEY, "no-region-key"),
            (ENV_BIRD_FROM, "Acme"),
        ];
        let err = config(&base).unwrap_err().to_string();
        assert!(err.contains("BIRD_BASE_URL"), "{err}");
        let err = config(&[
            (ENV_SMS_SENDER, "infobip"),
            (ENV_INFOBIP_API_KEY, "k"),
            (ENV_INFOBIP_FROM, "Acme"),
            (ENV_INFOBIP_RECEIPT_TOKEN, "short"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("VERIFYD_INFOBIP_RECEIPT_TOKEN"), "{err}");
        assert!(!err.contains("short"), "a secret is never echoed: {err}");
        let err = config(&[
            (ENV_SMS_SENDER, "plivo"),
            (ENV_PLIVO_AUTH_ID, "MA/../x"),
            (ENV_PLIVO_AUTH_TOKEN, "t"),
            (ENV_PLIVO_FROM, "+14155550100"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("PLIVO_AUTH_ID"), "{err}");
        assert_eq!(bird_region("bk_us1_abc"), Some("us1"));
        assert_eq!(bird_region("bk_US1_abc"), None);
        assert_eq!(bird_region("bk_us1"), None);
    }
}
