//! The channels beside SMS and the fallback between channels: the WhatsApp sender
//! (`TWILIO_WHATSAPP_FROM`) and the caller number (`TWILIO_VOICE_FROM`), both used with the
//! account of `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN`, the SMTP server and sender of the email
//! channel (`VERIFYD_SMTP_URL`, `VERIFYD_EMAIL_FROM`), and `VERIFYD_CHANNEL_FALLBACK`, whose
//! channels must all be enabled in `VERIFYD_CHANNELS`.

use std::collections::BTreeSet;
use std::fmt;

use secrecy::SecretString;

use super::limits::LimitDraft;
use super::parse::list;
use super::parse::parse_url;
use super::settings::{
    ENV_CHANNEL_FALLBACK, ENV_EMAIL_FROM, ENV_SMTP_URL, ENV_TWILIO_VOICE_FROM,
    ENV_TWILIO_WHATSAPP_FROM, ENV_WHATSAPP_ACCESS_TOKEN, ENV_WHATSAPP_API_VERSION,
    ENV_WHATSAPP_BASE_URL, ENV_WHATSAPP_PHONE_NUMBER_ID, ENV_WHATSAPP_SENDER,
    ENV_WHATSAPP_TEMPLATE,
};
use super::source::Reader;
use super::twilio::TwilioDraft;
use crate::domain::{Channel, PhoneNumber};

component! {
    /// The channel settings.
    #[derive(Clone, Debug)]
    pub struct ChannelSettings / ChannelDraft {
        /// WhatsApp through Twilio Messaging, from this WhatsApp sender (E.164).
        pub whatsapp_from: Option<String>,
        /// Calls through Twilio Voice, from this number (E.164).
        pub voice_from: Option<String>,
        /// The Twilio account both use (set when either is).
        pub twilio: Option<TwilioAccount>,
        /// The order in which a failed delivery moves to the next channel (empty: none).
        pub fallback: Vec<Channel>,
        /// The email channel's SMTP server and sender, when set.
        pub email: Option<EmailSettings>,
        /// Meta's WhatsApp Cloud API, when `VERIFYD_WHATSAPP_SENDER=meta`.
        pub meta_whatsapp: Option<MetaWhatsappSettings>,
    }
}

/// Meta WhatsApp Cloud API settings (named after Meta's own).
#[derive(Clone)]
pub struct MetaWhatsappSettings {
    pub access_token: SecretString,
    pub phone_number_id: String,
    pub template: String,
    pub api_version: String,
    pub base_url: String,
}

impl fmt::Debug for MetaWhatsappSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaWhatsappSettings")
            .field("access_token", &"<redacted>")
            .field("phone_number_id", &self.phone_number_id)
            .field("template", &self.template)
            .field("api_version", &self.api_version)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// The value of `name`, or a problem saying Meta's sender needs it.
fn required(r: &mut Reader<'_>, name: &'static str) -> Option<String> {
    let v = r.text(name).trim().to_owned();
    if v.is_empty() {
        r.unset_problem(name, "VERIFYD_WHATSAPP_SENDER=meta needs it");
        None
    } else {
        Some(v)
    }
}

/// Reads `WHATSAPP_*` (all required with `VERIFYD_WHATSAPP_SENDER=meta`).
fn read_meta(r: &mut Reader<'_>) -> Option<Option<MetaWhatsappSettings>> {
    let sender = r.parse(ENV_WHATSAPP_SENDER, |t| match t {
        "twilio" => Ok(false),
        "meta" => Ok(true),
        _ => Err("expected `twilio` or `meta`".to_owned()),
    })?;
    if !sender {
        return Some(None);
    }
    let token = required(r, ENV_WHATSAPP_ACCESS_TOKEN);
    let phone_number_id = required(r, ENV_WHATSAPP_PHONE_NUMBER_ID);
    if let Some(id) = &phone_number_id
        && !(id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()))
    {
        r.problem(
            ENV_WHATSAPP_PHONE_NUMBER_ID,
            id,
            "expected the phone number's ID (digits)",
        );
    }
    let template = required(r, ENV_WHATSAPP_TEMPLATE);
    if let Some(t) = &template
        && !(t.len() <= 512
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    {
        r.problem(
            ENV_WHATSAPP_TEMPLATE,
            t,
            "expected a template name (lowercase letters, digits and _)",
        );
    }
    let api_version = r.parse(ENV_WHATSAPP_API_VERSION, |t| {
        let ok = t.strip_prefix('v').is_some_and(|n| {
            n.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
        });
        if ok {
            Ok(t.to_owned())
        } else {
            Err("expected a Graph API version such as v23.0".to_owned())
        }
    });
    let base_url = r.parse(ENV_WHATSAPP_BASE_URL, parse_url);
    Some(Some(MetaWhatsappSettings {
        access_token: SecretString::from(token?),
        phone_number_id: phone_number_id.filter(|id| id.bytes().all(|b| b.is_ascii_digit()))?,
        template: template?,
        api_version: api_version?,
        base_url: base_url?,
    }))
}

/// Where code emails go out and whom they come from.
#[derive(Clone)]
pub struct EmailSettings {
    /// `VERIFYD_SMTP_URL` (it may hold the SMTP password).
    pub smtp_url: SecretString,
    /// `VERIFYD_EMAIL_FROM`, checked to be a mailbox.
    pub from: String,
}

impl fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSettings")
            .field("smtp_url", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

/// An SMTP URL lettre can use, that never carries a code in clear beyond this host: `smtps://`,
/// `smtp://…?tls=required`, or plain `smtp://` to a loopback host.
fn smtp_url(t: &str) -> Result<Option<String>, String> {
    if t.is_empty() {
        return Ok(None);
    }
    let url = reqwest::Url::parse(t).map_err(|e| format!("not a URL: {e}"))?;
    let host = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .filter(|h| !h.is_empty())
        .ok_or("expected smtp://host or smtps://host")?;
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtps", None) | ("smtp", Some("required")) => {}
        ("smtp", None) => {
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(
                    "plain smtp:// to a host that is not loopback would carry codes in clear: use smtps:// or add ?tls=required"
                        .to_owned(),
                );
            }
        }
        ("smtp" | "smtps", Some(_)) => {
            return Err("the only tls= this accepts is tls=required (with smtp://)".to_owned());
        }
        _ => return Err("expected an smtp:// or smtps:// URL".to_owned()),
    }
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(t)
        .map_err(|e| format!("not an SMTP URL lettre accepts: {e}"))?;
    Ok(Some(t.to_owned()))
}

fn mailbox(t: &str) -> Result<Option<String>, String> {
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<lettre::message::Mailbox>()
        .map(|m| Some(m.to_string()))
        .map_err(|e| format!("not a mailbox (`a@b.example` or `Name <a@b.example>`): {e}"))
}

/// A Twilio account's credentials.
#[derive(Clone)]
pub struct TwilioAccount {
    pub account_sid: String,
    pub auth_token: SecretString,
}

impl fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .finish()
    }
}

fn number(t: &str) -> Result<Option<String>, String> {
    if t.is_empty() {
        return Ok(None);
    }
    PhoneNumber::parse(t)
        .map(|p| Some(p.e164().to_owned()))
        .map_err(|_| "expected a number in E.164, e.g. +14155238886".to_owned())
}

/// Reads the channel settings (after the Twilio credentials and the channel allowlist).
pub(super) fn read(r: &mut Reader<'_>, twilio: &TwilioDraft, limits: &LimitDraft) -> ChannelDraft {
    let whatsapp_from = r.parse(ENV_TWILIO_WHATSAPP_FROM, number);
    let voice_from = r.parse(ENV_TWILIO_VOICE_FROM, number);
    let wanted = matches!(whatsapp_from, Some(Some(_))) || matches!(voice_from, Some(Some(_)));
    let account = match (&twilio.account_sid, &twilio.auth_token) {
        (Some(sid), Some(token)) => Some(TwilioAccount {
            account_sid: sid.clone(),
            auth_token: SecretString::from(token.clone()),
        }),
        _ => None,
    };
    let twilio_account = match (wanted, account) {
        (true, None) => {
            r.unset_problem(
                "TWILIO_ACCOUNT_SID",
                "TWILIO_WHATSAPP_FROM and TWILIO_VOICE_FROM need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
            );
            None
        }
        (true, account) => Some(account),
        (false, _) => Some(None),
    };
    let enabled: Option<&BTreeSet<Channel>> = limits.channels.as_ref();
    let fallback = r.parse(ENV_CHANNEL_FALLBACK, |t| {
        let channels = list(t)
            .map(|item| {
                item.parse::<Channel>()
                    .map_err(|_| format!("`{item}` is not a channel"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if channels.len() == 1 {
            return Err("a fallback needs at least two channels, e.g. `whatsapp,sms`".to_owned());
        }
        for (i, c) in channels.iter().enumerate() {
            if channels[..i].contains(c) {
                return Err(format!("{c} is listed twice"));
            }
            if enabled.is_some_and(|e| !e.contains(c)) {
                return Err(format!("{c} is not enabled in VERIFYD_CHANNELS"));
            }
        }
        Ok(channels)
    });
    let url = r.parse(ENV_SMTP_URL, smtp_url);
    let from = r.parse(ENV_EMAIL_FROM, mailbox);
    let email = match (url, from) {
        (Some(Some(url)), Some(Some(from))) => Some(Some(EmailSettings {
            smtp_url: SecretString::from(url),
            from,
        })),
        (Some(Some(_)), Some(None)) => {
            r.unset_problem(ENV_EMAIL_FROM, "VERIFYD_SMTP_URL needs VERIFYD_EMAIL_FROM");
            None
        }
        (Some(None), Some(Some(_))) => {
            r.unset_problem(ENV_SMTP_URL, "VERIFYD_EMAIL_FROM needs VERIFYD_SMTP_URL");
            None
        }
        (Some(None), Some(None)) => Some(None),
        _ => None,
    };
    let meta_whatsapp = read_meta(r);
    ChannelDraft {
        whatsapp_from,
        voice_from,
        twilio: twilio_account,
        fallback,
        email,
        meta_whatsapp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_never_carry_codes_in_clear_beyond_this_host() {
        for ok in [
            "smtps://user:pass@smtp.example.com",
            "smtp://user:pass@smtp.example.com:587?tls=required",
            "smtp://127.0.0.1:2525",
            "smtp://localhost",
            "smtp://[::1]:25",
        ] {
            assert_eq!(smtp_url(ok), Ok(Some(ok.to_owned())), "{ok}");
        }
        assert_eq!(smtp_url(""), Ok(None));
        for bad in [
            "smtp://smtp.example.com",
            "smtp://smtp.example.com?tls=opportunistic",
            "smtps://smtp.example.com?tls=none",
            "http://smtp.example.com",
            "smtps://",
            "not a url",
        ] {
            assert!(smtp_url(bad).is_err(), "{bad}");
        }
    }

    fn config(pairs: &[(&str, &str)]) -> Result<crate::config::Config, String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        crate::config::Config::from_lookup(move |k| map.get(k).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_smtp_password_never_shows() {
        let c = config(&[
            (
                ENV_SMTP_URL,
                "smtps://mailer:hunter2-secret@smtp.example.com",
            ),
            (ENV_EMAIL_FROM, "no-reply@example.com"),
        ])
        .unwrap();
        let shown = &c
            .effective
            .iter()
            .find(|(n, ..)| *n == ENV_SMTP_URL)
            .unwrap()
            .1;
        assert_eq!(shown, "smtps://mailer:<redacted>@smtp.example.com");
        assert!(!format!("{:?}", c.channels).contains("hunter2"));
        let err = config(&[
            (
                ENV_SMTP_URL,
                "smtp://mailer:hunter2-secret@smtp.example.com",
            ),
            (ENV_EMAIL_FROM, "no-reply@example.com"),
        ])
        .unwrap_err();
        assert!(
            err.contains(ENV_SMTP_URL) && !err.contains("hunter2"),
            "{err}"
        );
        let err = config(&[(ENV_SMTP_URL, "smtps://smtp.example.com")]).unwrap_err();
        assert!(err.contains(ENV_EMAIL_FROM), "{err}");
    }

    #[test]
    fn the_sender_is_a_mailbox() {
        assert_eq!(
            mailbox("Acme <no-reply@acme.example>"),
            Ok(Some("Acme <no-reply@acme.example>".to_owned()))
        );
        assert_eq!(mailbox(""), Ok(None));
        assert!(mailbox("no at sign").is_err());
    }
}
