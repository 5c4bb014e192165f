//! The `whatsapp` channel through Meta's WhatsApp Cloud API (`VERIFYD_WHATSAPP_SENDER=meta`):
//! `POST {WHATSAPP_BASE_URL}/{WHATSAPP_API_VERSION}/{WHATSAPP_PHONE_NUMBER_ID}/messages` with
//! `Authorization: Bearer {WHATSAPP_ACCESS_TOKEN}` and an authentication template message
//! (`WHATSAPP_TEMPLATE`): the code as the body's one parameter and as the copy-code button's
//! parameter, in the template language nearest the message's locale. WhatsApp writes the
//! wording of authentication templates itself, so verifyd's own text is not sent. Never
//! retried; a refusal of the recipient (not on WhatsApp, …) is the caller's error, anything else
//! a failure (and the next channel of the fallback order, if any).

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::vendor_http::{client, transport_error};
use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::MetaWhatsappSettings;
use crate::messages::Locale;

/// Meta error codes that refuse this recipient (the number is not on WhatsApp, cannot be
/// messaged, or is not in a test app's allowed list), as opposed to our setup or Meta's state.
const RECIPIENT_REFUSED: [i64; 3] = [131_026, 131_030, 131_021];

/// Sends authentication template messages through the Cloud API.
pub struct MetaWhatsappSender {
    http: reqwest::Client,
    url: String,
    token: SecretString,
    template: String,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: Option<i64>,
    error_subcode: Option<i64>,
}

impl MetaWhatsappSender {
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(settings: &MetaWhatsappSettings) -> Result<Self, SmsError> {
        Ok(Self {
            http: client()?,
            url: format!(
                "{}/{}/{}/messages",
                settings.base_url.trim_end_matches('/'),
                settings.api_version,
                settings.phone_number_id
            ),
            token: settings.access_token.clone(),
            template: settings.template.clone(),
        })
    }
}

/// The WhatsApp template language of `locale` (Meta's codes: `en`, `en_GB`, `pt_BR`, `zh_CN`,
/// `fil`, …; a region Meta does not list falls back to the language).
pub fn template_language(locale: Locale) -> &'static str {
    match locale.tag() {
        "en-GB" => "en_GB",
        "pt-BR" => "pt_BR",
        "pt" => "pt_PT",
        "es-419" => "es_MX",
        "zh" => "zh_CN",
        "zh-HK" => "zh_HK",
        "tl" => "fil",
        _ => locale.language(),
    }
}

/// The request body: the template with the code as the body parameter and the button's.
pub fn body(to_digits: &str, template: &str, language: &str, code: &str) -> serde_json::Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to_digits,
        "type": "template",
        "template": {
            "name": template,
            "language": { "policy": "deterministic", "code": language },
            "components": [
                { "type": "body", "parameters": [ { "type": "text", "text": code } ] },
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [ { "type": "text", "text": code } ]
                }
            ]
        }
    })
}

#[async_trait]
impl SmsSender for MetaWhatsappSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        let to = message.phone()?.e164().trim_start_matches('+');
        let payload = SecretString::from(
            body(
                to,
                &self.template,
                template_language(message.locale),
                message.code.expose_secret(),
            )
            .to_string(),
        );
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.expose_secret().to_owned())
            .send()
            .await
            .map_err(|e| transport_error("Meta WhatsApp", &e))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            tracing::debug!(to = %message.to.masked(), "Meta accepted the WhatsApp message");
            return Ok(());
        }
        let detail = response
            .json::<ErrorBody>()
            .await
            .ok()
            .and_then(|b| b.error)
            .map(|e| (e.code, e.error_subcode));
        let text = format!(
            "Meta WhatsApp answered HTTP {status} (code {}, subcode {})",
            detail.and_then(|d| d.0).unwrap_or(0),
            detail.and_then(|d| d.1).unwrap_or(0)
        );
        if detail
            .and_then(|d| d.0)
            .is_some_and(|c| RECIPIENT_REFUSED.contains(&c))
        {
            Err(SmsError::Refused(text))
        } else {
            Err(SmsError::Failed(text))
        }
    }

    fn name(&self) -> &'static str {
        "meta-whatsapp"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_locale_has_a_template_language_meta_lists() {
        for l in Locale::all() {
            let code = template_language(l);
            assert!(
                code.len() >= 2 && code.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_'),
                "{} → {code}",
                l.tag()
            );
        }
        assert_eq!(template_language(Locale::parse("pt-BR").unwrap()), "pt_BR");
        assert_eq!(template_language(Locale::parse("de-AT").unwrap()), "de");
    }
}
