//! The `vonage` vendor: Vonage SMS API, `POST {VONAGE_BASE_URL}/sms/json`, form-encoded
//! `api_key`, `api_secret`, `from`, `to` (international format without the `+`) and `text`
//! (developer.vonage.com, SMS API reference, "Send an SMS"). Vonage answers HTTP 200 even when it
//! refuses: each part's `status` says (`"0"` accepted). Statuses about the number or the message
//! (2 missing, 3 invalid parameters, 6 invalid message, 7 number barred, 12 message too long,
//! 29 non-whitelisted destination) are refusals; the rest (1 throttled, 4 bad credentials,
//! 5 internal error, 8/9 account barred or out of quota, …) make the vendor unusable now.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::vendor_http::{answer_error, client, transport_error};
use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::VonageConfig;

#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    messages: Vec<Part>,
}

#[derive(serde::Deserialize)]
struct Part {
    status: Option<String>,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
}

/// Whether Vonage status `status` refuses the number or the message (not an outage).
fn refuses(status: &str) -> bool {
    matches!(status, "2" | "3" | "6" | "7" | "12" | "29")
}

/// Sends through Vonage's SMS API.
pub struct VonageSender {
    http: reqwest::Client,
    url: String,
    api_key: String,
    api_secret: SecretString,
    from: String,
    per_country: crate::domain::SenderIds,
}

impl VonageSender {
    /// A sender for `settings`.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(settings: &VonageConfig) -> Result<Self, SmsError> {
        Ok(Self {
            http: client()?,
            url: format!("{}/sms/json", settings.base_url.trim_end_matches('/')),
            api_key: settings.api_key.clone(),
            api_secret: settings.api_secret.clone(),
            from: settings.from.trim_start_matches('+').to_owned(),
            per_country: crate::domain::SenderIds::default(),
        })
    }

    /// The same sender, sending from `ids`' sender for each destination country that has one.
    #[must_use]
    pub fn with_sender_ids(mut self, ids: crate::domain::SenderIds) -> Self {
        self.per_country = ids;
        self
    }
}

#[async_trait]
impl SmsSender for VonageSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        let phone = message.phone()?;
        let to = phone.e164().trim_start_matches('+');
        // Vonage writes numbers without the `+`.
        let from = self
            .per_country
            .for_destination(phone)
            .map_or(self.from.as_str(), |id| id.as_str().trim_start_matches('+'));
        let form = [
            ("api_key", self.api_key.as_str()),
            ("api_secret", self.api_secret.expose_secret()),
            ("from", from),
            ("to", to),
            ("text", message.body.expose_secret()),
        ];
        let response = self
            .http
            .post(&self.url)
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error("Vonage", &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(answer_error("Vonage", status.as_u16(), ""));
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| SmsError::Failed(format!("Vonage's answer could not be read: {e}")))?;
        if answer.messages.is_empty() {
            return Err(SmsError::Failed(
                "Vonage answered no message part".to_owned(),
            ));
        }
        for part in &answer.messages {
            match part.status.as_deref() {
                Some("0") => {}
                Some(s) if refuses(s) => {
                    return Err(SmsError::Refused(format!("Vonage refused it (status {s})")));
                }
                other => {
                    return Err(SmsError::Failed(format!(
                        "Vonage failed (status {})",
                        other.unwrap_or("?")
                    )));
                }
            }
        }
        tracing::debug!(
            to = %message.to.masked(),
            message_id = answer.messages[0].message_id.as_deref().unwrap_or("?"),
            "Vonage accepted the message"
        );
        Ok(())
    }

    fn name(&self) -> &'static str {
        "vonage"
    }
}
