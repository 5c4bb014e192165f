//! What a message says: the built-in wording per locale ([`wording`]), the operator's overrides
//! ([`overrides`], `VERIFYD_TEMPLATES`), the locale of a request ([`locale`]), the autofill lines
//! ([`autofill`]) and the SMS encoding and segment count of every rendered message
//! ([`segments`]). It renders text for a channel; it never knows which vendor carries it, and
//! never chooses or keeps a code.

pub mod autofill;
pub mod email;
pub mod locale;
pub mod overrides;
pub mod segments;
pub mod wording;

use std::fmt::Write as _;
use std::time::Duration;

use secrecy::SecretString;

use crate::domain::Channel;

pub use autofill::{AppHash, AppHashError, WebOtpDomain, WebOtpDomainError};
pub use email::EmailParts;
pub use locale::{Locale, LocaleError};
pub use overrides::{Overrides, Template};
pub use segments::{Encoding, Segments, segments};

/// The message settings and the operator's templates, read once at startup.
#[derive(Clone, Debug)]
pub struct Messages {
    /// The locale of a request that names none (`VERIFYD_DEFAULT_LOCALE`).
    pub default_locale: Locale,
    /// `VERIFYD_TEMPLATES`.
    pub overrides: Overrides,
    /// `VERIFYD_WEBOTP_DOMAIN`: adds the WebOTP last line to every SMS.
    pub webotp: Option<WebOtpDomain>,
    /// What `{service}` reads in an override when the request has no service name (`/mfa`):
    /// `VERIFYD_SERVICE_NAME`.
    pub default_service_name: String,
}

impl Default for Messages {
    fn default() -> Self {
        Self {
            default_locale: Locale::english(),
            overrides: Overrides::default(),
            webotp: None,
            default_service_name: "verifyd".to_owned(),
        }
    }
}

/// What one message needs besides the settings.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub code: &'a str,
    pub channel: Channel,
    /// The request's locale; `None`: the default.
    pub locale: Option<Locale>,
    /// The `/v2` service whose overrides apply; `None`: the default service.
    pub scope: Option<&'a str>,
    /// The service's name (`/v2`); `None` for `/mfa`, whose built-in sentence names none.
    pub service_name: Option<&'a str>,
    pub do_not_share: bool,
    /// SMS only.
    pub app_hash: Option<&'a AppHash>,
    pub ttl: Duration,
}

/// A rendered message: its text (a secret: it holds the code), locale and SMS segments, and for
/// the email channel its subject, text and HTML.
pub struct Rendered {
    pub text: SecretString,
    pub locale: Locale,
    pub segments: Segments,
    pub email: Option<EmailParts>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("text", &"<redacted>")
            .field("locale", &self.locale)
            .field("segments", &self.segments)
            .field("email", &self.email)
            .finish()
    }
}

/// Whole minutes of `ttl`, rounded up (a 90 s code "expires in 2 minutes").
pub fn ttl_minutes(ttl: Duration) -> u64 {
    ttl.as_secs().div_ceil(60).max(1)
}

/// The code's digits one by one (`1, 2, 3`), so that a voice reads digits, not a number.
pub fn spell(code: &str) -> String {
    let mut out = String::with_capacity(code.len() * 3);
    for (i, c) in code.chars().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push(c);
    }
    out
}

/// `template` with each `{name}` replaced by its value, in one pass (a value is never scanned
/// again, so a service name holding `{code}` stays as it is).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.split_once('}').and_then(|(name, tail)| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, tail))
        }) {
            Some((value, tail)) => {
                out.push_str(value);
                rest = tail;
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Messages {
    /// The locale a request ends up with.
    pub fn locale(&self, requested: Option<Locale>) -> Locale {
        requested.unwrap_or(self.default_locale)
    }

    /// The code sentence: the operator's template when there is one, else the built-in one
    /// (with the service's name when there is one), with the do-not-share sentence when asked.
    pub fn sentence(&self, r: &Request<'_>) -> String {
        let locale = self.locale(r.locale);
        let wording = locale.wording();
        let ttl = ttl_minutes(r.ttl).to_string();
        let mut text = match (self.overrides.find(r.scope, locale), r.service_name) {
            (Some(t), name) => fill(
                t.as_str(),
                &[
                    ("code", r.code),
                    ("service", name.unwrap_or(&self.default_service_name)),
                    ("ttl", &ttl),
                ],
            ),
            (None, Some(name)) => fill(wording.service, &[("code", r.code), ("service", name)]),
            (None, None) => fill(wording.code, &[("code", r.code)]),
        };
        if r.do_not_share {
            text.push_str(wording.dont_share);
        }
        text
    }

    /// The message as sent on `r.channel` (SMS and WhatsApp: the sentence; SMS adds the
    /// autofill lines; a call: the sentence with the code's digits one by one, for a voice to
    /// read; email: the sentence and the expiry sentence, in text and HTML, under the locale's
    /// subject), with its SMS encoding and segments.
    pub fn render(&self, r: &Request<'_>) -> Rendered {
        let spelled;
        let r = if r.channel == Channel::Call {
            spelled = spell(r.code);
            &Request {
                code: &spelled,
                app_hash: None,
                ..*r
            }
        } else {
            r
        };
        let mut text = self.sentence(r);
        if r.channel == Channel::Sms {
            if let Some(hash) = r.app_hash {
                let _ = write!(text, "\n\n{}", hash.as_str());
            }
            if let Some(domain) = &self.webotp {
                let _ = write!(text, "\n\n{}", autofill::webotp_line(domain, r.code));
            }
        }
        let segments = segments(&text);
        let locale = self.locale(r.locale);
        let email = (r.channel == Channel::Email).then(|| {
            let ttl = ttl_minutes(r.ttl).to_string();
            let expires = fill(locale.wording().expires, &[("ttl", &ttl)]);
            email::render(locale, r.service_name, &text, r.code, &expires)
        });
        Rendered {
            text: SecretString::from(text),
            locale,
            segments,
            email,
        }
    }
}

/// `text` escaped for markup: HTML (the email's body) and XML (a call's TwiML) alike, character
/// data and quoted attribute values (`&#39;` is an apostrophe in both).
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;

/// The table of docs/messages.md (between its `locales:start` and `locales:end` comments): every
/// built-in locale with its plain message for the code 123456, its encoding and parts.
pub fn locales_table() -> String {
    let m = Messages::default();
    let mut out = String::from(
        "| locale | language | message (code 123456) | encoding | SMS parts |\n|---|---|---|---|---|\n",
    );
    for l in Locale::all() {
        let r = m.render(&Request {
            code: "123456",
            channel: Channel::Sms,
            locale: Some(l),
            scope: None,
            service_name: None,
            do_not_share: false,
            app_hash: None,
            ttl: Duration::from_secs(600),
        });
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            l.tag(),
            l.wording().name,
            secrecy::ExposeSecret::expose_secret(&r.text),
            r.segments.encoding,
            r.segments.count
        );
    }
    out
}
