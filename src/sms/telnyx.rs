//! The `telnyx` vendor: Telnyx Messaging API v2, `POST {TELNYX_BASE_URL}/v2/messages` with
//! `Authorization: Bearer {TELNYX_API_KEY}` and the JSON body `{"to", "text", "from" and/or
//! "messaging_profile_id"}` (developers.telnyx.com, "Send a message"). A 2xx answer holds
//! `data.id`, the message's id; an error answer holds `errors[].code`/`title`, which is all we
//! keep of it. Never retried here: the router decides about the next vendor.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::vendor_http::{answer_error, client, transport_error};
use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::TelnyxConfig;

#[derive(serde::Serialize)]
struct Body<'a> {
    to: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messaging_profile_id: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct Created {
    data: Option<CreatedData>,
}

#[derive(serde::Deserialize)]
struct CreatedData {
    id: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct Errors {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(serde::Deserialize)]
struct ErrorItem {
    code: Option<String>,
    title: Option<String>,
}

/// Sends through Telnyx.
pub struct TelnyxSender {
    http: reqwest::Client,
    url: String,
    api_key: SecretString,
    from: Option<String>,
    messaging_profile_id: Option<String>,
    per_country: crate::domain::SenderIds,
}

impl TelnyxSender {
    /// A sender for `settings`.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(settings: &TelnyxConfig) -> Result<Self, SmsError> {
        Ok(Self {
            http: client()?,
            url: format!("{}/v2/messages", settings.base_url.trim_end_matches('/')),
            api_key: settings.api_key.clone(),
            from: settings.from.clone(),
            messaging_profile_id: settings.messaging_profile_id.clone(),
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
impl SmsSender for TelnyxSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        let to = message.phone()?;
        let from = match self.per_country.for_destination(to) {
            Some(id) => Some(id.as_str()),
            None => self.from.as_deref(),
        };
        let body = Body {
            to: to.e164(),
            text: message.body.expose_secret(),
            from,
            messaging_profile_id: self.messaging_profile_id.as_deref(),
        };
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.api_key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error("Telnyx", &e))?;
        let status = response.status();
        if status.is_success() {
            let id = response
                .json::<Created>()
                .await
                .ok()
                .and_then(|c| c.data)
                .and_then(|d| d.id);
            tracing::debug!(
                to = %message.to.masked(),
                message_id = id.as_deref().unwrap_or("?"),
                "Telnyx accepted the message"
            );
            return Ok(());
        }
        let errors: Errors = response.json().await.unwrap_or_default();
        let detail = errors
            .errors
            .first()
            .map(|e| {
                format!(
                    "{} {}",
                    e.code.as_deref().unwrap_or(""),
                    e.title.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_default();
        Err(answer_error("Telnyx", status.as_u16(), detail.trim()))
    }

    fn name(&self) -> &'static str {
        "telnyx"
    }
}
