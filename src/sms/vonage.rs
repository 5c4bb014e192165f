//! The `vonage` vendor: Vonage SMS API, `POST {VONAGE_BASE_URL}/sms/json`, form-encoded
//! `api_key`, `api_secret`, `from`, `to` (international format without the `+`) and `text`
//! (developer.vonage.com, SMS API reference, "Send an SMS"). Vonage answers HTTP 200 even when it
//! refuses: each part's `status` says (`"0"` accepted). Statuses about the number or the message
//! (2 missing, 3 invalid parameters, 6 invalid message, 7 number barred, 12 message too long,
//! 29 non-whitelisted destination) are refusals; the rest (1 throttled, 4 bad credentials,
//! 5 internal error, 8/9 account barred or out of quota, …) make the vendor unusable now.
//!
//! With `VERIFYD_PUBLIC_URL` and `VONAGE_SIGNATURE_SECRET` set, each message asks for its
//! delivery receipt (`callback={public}/callbacks/vonage`); [`VonageReceipts`] verifies it
//! (Vonage's signed webhooks, the dashboard's "SHA-256 HMAC" method, timestamp within 5 minutes).

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::receipt::{
    DeliveryStatus, Receipt, ReceiptError, ReceiptRequest, ReceiptVerifier, constant_time_eq,
    form_fields, fresh,
};
use super::vendor_http::{answer_error, client, transport_error};
use super::{Delivery, OutgoingMessage, SmsError, SmsSender};
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
    /// `callback`: where Vonage posts this message's receipt (none: not asked for).
    callback: Option<String>,
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
            callback: None,
            per_country: crate::domain::SenderIds::default(),
        })
    }

    /// The same sender, asking Vonage to post each message's receipt to `url`.
    #[must_use]
    pub fn with_callback(mut self, url: Option<String>) -> Self {
        self.callback = url;
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
impl SmsSender for VonageSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        self.deliver(message).await.map(|_| ())
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<Delivery, SmsError> {
        let phone = message.phone()?;
        let to = phone.e164().trim_start_matches('+');
        // Vonage writes numbers without the `+`.
        let from = self
            .per_country
            .for_destination(phone)
            .map_or(self.from.as_str(), |id| id.as_str().trim_start_matches('+'));
        let mut form = vec![
            ("api_key", self.api_key.as_str()),
            ("api_secret", self.api_secret.expose_secret()),
            ("from", from),
            ("to", to),
            ("text", message.body.expose_secret()),
        ];
        if let Some(url) = &self.callback {
            form.push(("callback", url.as_str()));
        }
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
        Ok(Delivery {
            vendor: self.name(),
            message_id: answer
                .messages
                .into_iter()
                .next()
                .and_then(|p| p.message_id),
            failovers: 0,
            status: DeliveryStatus::Queued,
        })
    }

    fn name(&self) -> &'static str {
        "vonage"
    }
}

/// Verifies Vonage's signed delivery receipts (SMS API): every parameter but `sig`, sorted by
/// name, each value's `&` and `=` replaced by `_`, joined as `&name=value…`; `sig` is the hex
/// HMAC-SHA256 of that under the account's signature secret (the dashboard's "SHA-256 HMAC"
/// method). The signed `timestamp` (seconds) must be within 5 minutes of now (replay). The
/// receipt arrives form-encoded or as a JSON object (the dashboard's `POST` or `POST-JSON`).
pub struct VonageReceipts {
    secret: SecretString,
}

impl VonageReceipts {
    /// A verifier keyed by the account's signature secret.
    #[must_use]
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }
}

/// The `sig` Vonage sends with `params` (see [`VonageReceipts`]), lowercase hex.
#[must_use]
pub fn vonage_signature(secret: &str, params: &[(String, String)]) -> String {
    use hmac::{Hmac, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(n, _)| n != "sig").collect();
    sorted.sort();
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    for (name, value) in sorted {
        mac.update(b"&");
        mac.update(name.as_bytes());
        mac.update(b"=");
        mac.update(value.replace(['&', '='], "_").as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

/// A receipt's parameters, from a form or a flat JSON object (numbers and booleans as text).
fn params_of(body: &[u8]) -> Result<Vec<(String, String)>, ReceiptError> {
    if body.trim_ascii_start().starts_with(b"{") {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|_| ReceiptError::Malformed("the body is not a JSON object".to_owned()))?;
        return Ok(object
            .into_iter()
            .filter_map(|(name, value)| match value {
                serde_json::Value::String(s) => Some((name, s)),
                serde_json::Value::Number(n) => Some((name, n.to_string())),
                serde_json::Value::Bool(b) => Some((name, b.to_string())),
                _ => None,
            })
            .collect());
    }
    form_fields(body)
}

impl ReceiptVerifier for VonageReceipts {
    fn vendor(&self) -> &'static str {
        "vonage"
    }

    fn verify(&self, request: &ReceiptRequest<'_>) -> Result<Receipt, ReceiptError> {
        let params = params_of(request.body)?;
        let field = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let given = field("sig").ok_or(ReceiptError::Unsigned)?;
        let expected = vonage_signature(self.secret.expose_secret(), &params);
        if !constant_time_eq(given.to_ascii_lowercase().as_bytes(), expected.as_bytes()) {
            return Err(ReceiptError::BadSignature);
        }
        let seconds: i64 = field("timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| ReceiptError::Malformed("no signed timestamp".to_owned()))?;
        if !fresh(seconds, request.now) {
            return Err(ReceiptError::Stale);
        }
        let message_id = field("messageId")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ReceiptError::Malformed("no messageId".to_owned()))?;
        let status = match field("status") {
            Some("accepted" | "buffered" | "unknown") => DeliveryStatus::Sent,
            Some("delivered") => DeliveryStatus::Delivered,
            Some("expired") => DeliveryStatus::Undelivered,
            Some("failed" | "rejected") => DeliveryStatus::Failed,
            Some(other) => {
                return Err(ReceiptError::Malformed(format!("unknown status `{other}`")));
            }
            None => return Err(ReceiptError::Malformed("no status".to_owned())),
        };
        Ok(Receipt {
            message_id: message_id.to_owned(),
            status,
            error_code: field("err-code")
                .filter(|c| !c.is_empty() && *c != "0")
                .map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn request<'a>(body: &'a [u8], headers: &'a axum::http::HeaderMap) -> ReceiptRequest<'a> {
        ReceiptRequest {
            url: "https://verifyd.example/callbacks/vonage",
            headers,
            body,
            now: Timestamp::from_millis(1_800_000_000_000),
        }
    }

    #[test]
    fn a_signed_json_receipt_verifies_and_a_changed_one_does_not() {
        let secret = "vonage-signature-secret-0123";
        let mut params: Vec<(String, String)> = [
            ("messageId", "0A0000000123ABCD1"),
            ("status", "delivered"),
            ("err-code", "0"),
            ("text", "a&b=c"),
            ("timestamp", "1800000000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        let sig = vonage_signature(secret, &params);
        params.push(("sig".to_owned(), sig.to_ascii_uppercase()));
        let object: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let body = serde_json::Value::Object(object).to_string();
        let headers = axum::http::HeaderMap::new();
        let verifier = VonageReceipts::new(SecretString::from(secret.to_owned()));
        let receipt = verifier
            .verify(&request(body.as_bytes(), &headers))
            .unwrap();
        assert_eq!(receipt.status, DeliveryStatus::Delivered);
        assert_eq!(receipt.error_code, None);
        let changed = body.replace("delivered", "failed");
        assert!(matches!(
            verifier.verify(&request(changed.as_bytes(), &headers)),
            Err(ReceiptError::BadSignature)
        ));
    }
}
