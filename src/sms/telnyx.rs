//! The `telnyx` vendor: Telnyx Messaging API v2, `POST {TELNYX_BASE_URL}/v2/messages` with
//! `Authorization: Bearer {TELNYX_API_KEY}` and the JSON body `{"to", "text", "from" and/or
//! "messaging_profile_id"}` (developers.telnyx.com, "Send a message"). A 2xx answer holds
//! `data.id`, the message's id; an error answer holds `errors[].code`/`title`, which is all we
//! keep of it. Never retried here: the router decides about the next vendor.
//!
//! With `VERIFYD_PUBLIC_URL` and `TELNYX_PUBLIC_KEY` set, each message asks for its delivery
//! receipts (`webhook_url={public}/callbacks/telnyx`); [`TelnyxReceipts`] verifies them
//! (Ed25519 over `timestamp|body`, the timestamp within 5 minutes).

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::receipt::{
    DeliveryStatus, Receipt, ReceiptError, ReceiptRequest, ReceiptVerifier, fresh,
};
use super::vendor_http::{answer_error, client, transport_error};
use super::{Delivery, OutgoingMessage, SmsError, SmsSender};
use crate::config::TelnyxConfig;

#[derive(serde::Serialize)]
struct Body<'a> {
    to: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messaging_profile_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_url: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct Created {
    data: Option<CreatedData>,
}

#[derive(serde::Deserialize)]
struct CreatedData {
    id: Option<String>,
    #[serde(default)]
    to: Vec<Recipient>,
}

/// One recipient of a message (send answer and receipt alike).
#[derive(serde::Deserialize)]
struct Recipient {
    status: Option<String>,
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
    /// `webhook_url`: where Telnyx posts this message's receipts (none: not asked for).
    webhook_url: Option<String>,
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
            webhook_url: None,
            per_country: crate::domain::SenderIds::default(),
        })
    }

    /// The same sender, asking Telnyx to post each message's receipts to `url`.
    #[must_use]
    pub fn with_webhook_url(mut self, url: Option<String>) -> Self {
        self.webhook_url = url;
        self
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
        self.deliver(message).await.map(|_| ())
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<Delivery, SmsError> {
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
            webhook_url: self.webhook_url.as_deref(),
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
            let data = response.json::<Created>().await.ok().and_then(|c| c.data);
            let status = data
                .as_ref()
                .and_then(|d| d.to.first())
                .and_then(|r| r.status.as_deref())
                .and_then(status_of);
            let id = data.and_then(|d| d.id);
            tracing::debug!(
                to = %message.to.masked(),
                message_id = id.as_deref().unwrap_or("?"),
                "Telnyx accepted the message"
            );
            return Ok(Delivery {
                vendor: self.name(),
                message_id: id,
                failovers: 0,
                status: status
                    .filter(|s| *s == DeliveryStatus::Sent)
                    .unwrap_or(DeliveryStatus::Queued),
            });
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

/// A Telnyx recipient status as a [`DeliveryStatus`] (none for a word Telnyx does not use).
fn status_of(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "queued" => DeliveryStatus::Queued,
        // `delivery_unconfirmed`: the carrier gives no receipt; sent is all that is known.
        "sending" | "sent" | "delivery_unconfirmed" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "delivery_failed" => DeliveryStatus::Undelivered,
        "sending_failed" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// A Telnyx webhook: `{"data": {"event_type", "payload": {"id", "to": [{"status"}], "errors"}}}`.
#[derive(serde::Deserialize)]
struct Webhook {
    data: WebhookData,
}

#[derive(serde::Deserialize)]
struct WebhookData {
    payload: WebhookPayload,
}

#[derive(serde::Deserialize)]
struct WebhookPayload {
    id: String,
    #[serde(default)]
    to: Vec<Recipient>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

/// Verifies Telnyx's message webhooks: `telnyx-signature-ed25519` is the base64 Ed25519
/// signature of `{telnyx-timestamp}|{body}` by the account's key (its public half is
/// `TELNYX_PUBLIC_KEY`); a timestamp more than 5 minutes from now is refused (replay).
pub struct TelnyxReceipts {
    key: ed25519_dalek::VerifyingKey,
}

impl TelnyxReceipts {
    /// A verifier of the account's public key (32 bytes).
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the bytes are not an Ed25519 public key.
    pub fn new(public_key: &[u8; 32]) -> Result<Self, SmsError> {
        ed25519_dalek::VerifyingKey::from_bytes(public_key)
            .map(|key| Self { key })
            .map_err(|_| SmsError::Setup("TELNYX_PUBLIC_KEY is not an Ed25519 key".to_owned()))
    }
}

impl ReceiptVerifier for TelnyxReceipts {
    fn vendor(&self) -> &'static str {
        "telnyx"
    }

    fn verify(&self, request: &ReceiptRequest<'_>) -> Result<Receipt, ReceiptError> {
        use base64::Engine as _;
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| ReceiptError::BadSignature))
                .transpose()
        };
        let (Some(signature), Some(timestamp)) = (
            header("telnyx-signature-ed25519")?,
            header("telnyx-timestamp")?,
        ) else {
            return Err(ReceiptError::Unsigned);
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .ok_or(ReceiptError::BadSignature)?;
        let mut signed = Vec::with_capacity(timestamp.len() + 1 + request.body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.push(b'|');
        signed.extend_from_slice(request.body);
        self.key
            .verify_strict(&signed, &signature)
            .map_err(|_| ReceiptError::BadSignature)?;
        // Signed: now the timestamp can be believed.
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| ReceiptError::Malformed("telnyx-timestamp is not a number".to_owned()))?;
        if !fresh(seconds, request.now) {
            return Err(ReceiptError::Stale);
        }
        let hook: Webhook = serde_json::from_slice(request.body)
            .map_err(|_| ReceiptError::Malformed("not a Telnyx message webhook".to_owned()))?;
        let payload = hook.data.payload;
        let status = payload
            .to
            .first()
            .and_then(|r| r.status.as_deref())
            .ok_or_else(|| ReceiptError::Malformed("no recipient status".to_owned()))?;
        let status = status_of(status)
            .ok_or_else(|| ReceiptError::Malformed(format!("unknown status `{status}`")))?;
        if payload.id.is_empty() {
            return Err(ReceiptError::Malformed("no message id".to_owned()));
        }
        Ok(Receipt {
            message_id: payload.id,
            status,
            error_code: payload.errors.into_iter().find_map(|e| e.code),
        })
    }
}
