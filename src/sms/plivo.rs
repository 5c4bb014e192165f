//! The `plivo` vendor: Plivo's Message API, `POST {PLIVO_BASE_URL}/v1/Account/{auth_id}/Message/`
//! with HTTP Basic auth (Auth ID, Auth Token) and the JSON body `{"src", "dst", "text"}` (Plivo
//! docs, "Send a message"). A 202 answer holds `message_uuid: [id]`; an error answer holds
//! `error` (text), all we keep of it. Receipts: Plivo signs its callbacks with signature V3
//! (`X-Plivo-Signature-V3` and `-Nonce`: base64 HMAC-SHA256, keyed by the Auth Token, of the
//! URL, the sorted POST parameters and the nonce), verified by [`PlivoReceipts`]. V3 has no
//! timestamp: a replayed receipt is harmless only because statuses never move backwards.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};

use super::receipt::{DeliveryStatus, Receipt, ReceiptError, ReceiptRequest, ReceiptVerifier};
use super::receipt_check::{header, hmac_sha256, same};
use super::vendor_http::{answer_error, client, transport_error};
use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::PlivoConfig;

#[derive(serde::Serialize)]
struct Body<'a> {
    src: &'a str,
    dst: &'a str,
    text: &'a str,
    /// Where Plivo posts the message's status callbacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'static str>,
}

#[derive(serde::Deserialize)]
struct Queued {
    #[serde(default)]
    message_uuid: Vec<String>,
}

/// Sends through Plivo.
pub struct PlivoSender {
    http: reqwest::Client,
    url: String,
    auth_id: String,
    auth_token: SecretString,
    from: String,
    /// `VERIFYD_SMS_FROM`: the sender per destination country, before `from`.
    per_country: crate::domain::SenderIds,
    callback_url: Option<String>,
}

impl PlivoSender {
    /// Asks Plivo to post each message's status to `url` (`url`, `method: POST`).
    #[must_use]
    pub fn with_callback_url(mut self, url: String) -> Self {
        self.callback_url = Some(url);
        self
    }

    /// A sender for `settings`.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(settings: &PlivoConfig) -> Result<Self, SmsError> {
        Ok(Self {
            http: client()?,
            url: format!(
                "{}/v1/Account/{}/Message/",
                settings.base_url.trim_end_matches('/'),
                settings.auth_id
            ),
            auth_id: settings.auth_id.clone(),
            auth_token: settings.auth_token.clone(),
            from: settings.from.clone(),
            per_country: crate::domain::SenderIds::default(),
            callback_url: None,
        })
    }

    /// The same sender, sending from `ids`' sender for each destination country that has one.
    #[must_use]
    pub fn with_sender_ids(mut self, ids: crate::domain::SenderIds) -> Self {
        self.per_country = ids;
        self
    }

    /// Sends `message`; Plivo's id of it (`message_uuid`) when the answer names one.
    ///
    /// # Errors
    /// [`SmsError::Failed`] on no answer, 5xx, 429 or 401; [`SmsError::Refused`] on another 4xx.
    pub async fn submit(&self, message: &OutgoingMessage) -> Result<Option<String>, SmsError> {
        let body = Body {
            src: self
                .per_country
                .for_destination_or(message.phone()?, &self.from),
            dst: message.phone()?.e164(),
            text: message.body.expose_secret(),
            url: self.callback_url.as_deref(),
            method: self.callback_url.as_ref().map(|_| "POST"),
        };
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.auth_id, Some(self.auth_token.expose_secret()))
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error("Plivo", &e))?;
        let status = response.status();
        if status.is_success() {
            let id = response
                .json::<Queued>()
                .await
                .ok()
                .and_then(|q| q.message_uuid.into_iter().next());
            tracing::debug!(
                to = %message.to.masked(),
                message_id = id.as_deref().unwrap_or("?"),
                "Plivo queued the message"
            );
            return Ok(id);
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(short))
            .unwrap_or_default();
        Err(answer_error("Plivo", status.as_u16(), &detail))
    }
}

/// At most 120 characters of a vendor's error text.
fn short(text: &str) -> String {
    text.chars().take(120).collect()
}

#[async_trait]
impl SmsSender for PlivoSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        self.submit(message).await.map(|_| ())
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<super::Delivery, SmsError> {
        let message_id = self.submit(message).await?;
        // The vendor holds it; its receipts (when asked for) say what became of it.
        Ok(super::Delivery {
            vendor: "plivo",
            message_id,
            failovers: 0,
            status: super::DeliveryStatus::Queued,
        })
    }

    fn name(&self) -> &'static str {
        "plivo"
    }
}

/// Verifies Plivo's V3-signed message status callbacks (form-encoded `MessageUUID`, `Status`,
/// `ErrorCode`, …).
pub struct PlivoReceipts {
    auth_token: SecretString,
}

impl PlivoReceipts {
    /// A verifier keyed by the account's Auth Token.
    #[must_use]
    pub fn new(auth_token: SecretString) -> Self {
        Self { auth_token }
    }
}

/// Plivo's status words.
fn status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "queued" => DeliveryStatus::Queued,
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" | "rejected" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// `name=value` pairs sorted by name, each name's values sorted, joined by `&`.
fn sorted_query(pairs: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = Vec::new();
    for (name, values) in pairs {
        for value in values {
            out.push(format!("{name}={value}"));
        }
    }
    out.join("&")
}

/// Parameters grouped by name, each name's values sorted.
fn grouped(pairs: Vec<(String, String)>) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        map.entry(k).or_default().push(v);
    }
    for values in map.values_mut() {
        values.sort();
    }
    map
}

/// The text Plivo signs for a POST to `url` with the form parameters `params` (before
/// `.{nonce}`): the URL without its query, `?`, the query's parameters sorted as `k=v&…`, a `.`
/// when both are present, then each POST parameter sorted by name as `namevalue`.
fn signed_text(url: &str, params: &BTreeMap<String, Vec<String>>) -> Result<String, ReceiptError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let query: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ReceiptError::Malformed("the callback URL's query is not valid".into()))?;
    let query = sorted_query(&grouped(query));
    let mut text = base.to_owned();
    if params.is_empty() {
        if !query.is_empty() {
            text.push('?');
            text.push_str(&query);
        }
        return Ok(text);
    }
    text.push('?');
    text.push_str(&query);
    if !query.is_empty() {
        text.push('.');
    }
    for (name, values) in params {
        for value in values {
            text.push_str(name);
            text.push_str(value);
        }
    }
    Ok(text)
}

impl PlivoReceipts {
    /// The V3 signature of a POST of `body` (form-encoded) to `url` with `nonce`.
    fn sign(&self, url: &str, body: &[u8], nonce: &str) -> Result<String, ReceiptError> {
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| ReceiptError::Malformed("the body is not form-encoded".into()))?;
        let text = signed_text(url, &grouped(params))?;
        let mac = hmac_sha256(
            self.auth_token.expose_secret().as_bytes(),
            &[text.as_bytes(), b".", nonce.as_bytes()],
        );
        Ok(BASE64.encode(mac))
    }
}

impl ReceiptVerifier for PlivoReceipts {
    fn vendor(&self) -> &'static str {
        "plivo"
    }

    fn verify(&self, request: &ReceiptRequest<'_>) -> Result<Receipt, ReceiptError> {
        let (Some(given), Some(nonce)) = (
            header(request, "x-plivo-signature-v3"),
            header(request, "x-plivo-signature-v3-nonce"),
        ) else {
            return Err(ReceiptError::Unsigned);
        };
        let expected = self.sign(request.url, request.body, nonce)?;
        // Plivo may send several signatures (one per active token), comma-separated.
        if !given
            .split(',')
            .any(|s| same(s.trim().as_bytes(), expected.as_bytes()))
        {
            return Err(ReceiptError::BadSignature);
        }
        let fields: BTreeMap<String, String> = serde_urlencoded::from_bytes(request.body)
            .map_err(|_| ReceiptError::Malformed("the body is not form-encoded".into()))?;
        let message_id = fields
            .get("MessageUUID")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ReceiptError::Malformed("no MessageUUID".into()))?;
        let word = fields
            .get("Status")
            .ok_or_else(|| ReceiptError::Malformed("no Status".into()))?;
        let status = status(word)
            .ok_or_else(|| ReceiptError::Malformed(format!("unknown Status `{word}`")))?;
        let error_code = fields
            .get("ErrorCode")
            .filter(|c| !c.is_empty() && c.as_str() != "000")
            .cloned();
        Ok(Receipt {
            message_id: message_id.clone(),
            status,
            error_code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    const TOKEN: &str = "MzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEy";
    const URL: &str = "https://verifyd.example/callbacks/plivo";

    fn headers(signature: &str, nonce: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-plivo-signature-v3", signature.parse().unwrap());
        h.insert("x-plivo-signature-v3-nonce", nonce.parse().unwrap());
        h
    }

    fn verify(url: &str, h: &axum::http::HeaderMap, body: &[u8]) -> Result<Receipt, ReceiptError> {
        PlivoReceipts::new(SecretString::from(TOKEN)).verify(&ReceiptRequest {
            url,
            headers: h,
            body,
            now: Timestamp::from_millis(1_700_000_000_000),
        })
    }

    /// Signed independently of `signed_text`: the string spelled out by hand.
    fn by_hand(text: &str, nonce: &str) -> String {
        BASE64.encode(hmac_sha256(
            TOKEN.as_bytes(),
            &[text.as_bytes(), b".", nonce.as_bytes()],
        ))
    }

    const BODY: &[u8] =
        b"To=14155552671&From=14155550100&Status=delivered&MessageUUID=db3ce55a-7f1d-11e1-8ea7-1231380bc196&ErrorCode=000";

    #[test]
    fn a_v3_signed_receipt_is_read() {
        let nonce = "05429567804466091622";
        // The POST parameters sorted by name: ErrorCode, From, MessageUUID, Status, To.
        let text = format!(
            "{URL}?ErrorCode000From14155550100MessageUUIDdb3ce55a-7f1d-11e1-8ea7-1231380bc196StatusdeliveredTo14155552671"
        );
        let signature = by_hand(&text, nonce);
        let receipt = verify(URL, &headers(&signature, nonce), BODY).unwrap();
        assert_eq!(receipt.message_id, "db3ce55a-7f1d-11e1-8ea7-1231380bc196");
        assert_eq!(receipt.status, DeliveryStatus::Delivered);
        assert_eq!(receipt.error_code, None);
        // One of several comma-separated signatures is enough.
        let several = format!("bm90IGl0,{signature}");
        assert!(verify(URL, &headers(&several, nonce), BODY).is_ok());
    }

    #[test]
    fn the_query_is_signed_sorted_before_the_parameters() {
        let url = format!("{URL}?z=2&a=1");
        let body = b"MessageUUID=m1&Status=failed&ErrorCode=30";
        let text = format!("{URL}?a=1&z=2.ErrorCode30MessageUUIDm1Statusfailed");
        let receipt = verify(&url, &headers(&by_hand(&text, "n1"), "n1"), body).unwrap();
        assert_eq!(receipt.status, DeliveryStatus::Failed);
        assert_eq!(receipt.error_code.as_deref(), Some("30"));
    }

    #[test]
    fn forged_unsigned_and_malformed_receipts_are_refused() {
        let nonce = "1234";
        let good = PlivoReceipts::new(SecretString::from(TOKEN))
            .sign(URL, BODY, nonce)
            .unwrap();
        // Another token, another nonce, another body, another URL.
        let other = PlivoReceipts::new(SecretString::from("another-token"))
            .sign(URL, BODY, nonce)
            .unwrap();
        assert!(matches!(
            verify(URL, &headers(&other, nonce), BODY),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            verify(URL, &headers(&good, "4321"), BODY),
            Err(ReceiptError::BadSignature)
        ));
        let changed = String::from_utf8_lossy(BODY).replace("delivered", "undelivered");
        assert!(matches!(
            verify(URL, &headers(&good, nonce), changed.as_bytes()),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            verify(&format!("{URL}?x=1"), &headers(&good, nonce), BODY),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            verify(URL, &axum::http::HeaderMap::new(), BODY),
            Err(ReceiptError::Unsigned)
        ));
        // Signed, but not a status callback.
        let body = b"MessageUUID=m1&Status=received";
        let sig = PlivoReceipts::new(SecretString::from(TOKEN))
            .sign(URL, body, nonce)
            .unwrap();
        assert!(matches!(
            verify(URL, &headers(&sig, nonce), body),
            Err(ReceiptError::Malformed(_))
        ));
        let body = b"Status=sent";
        let sig = PlivoReceipts::new(SecretString::from(TOKEN))
            .sign(URL, body, nonce)
            .unwrap();
        assert!(matches!(
            verify(URL, &headers(&sig, nonce), body),
            Err(ReceiptError::Malformed(_))
        ));
    }

    #[test]
    fn plivo_status_words_map_forward() {
        assert_eq!(status("queued"), Some(DeliveryStatus::Queued));
        assert_eq!(status("sent"), Some(DeliveryStatus::Sent));
        assert_eq!(status("delivered"), Some(DeliveryStatus::Delivered));
        assert_eq!(status("undelivered"), Some(DeliveryStatus::Undelivered));
        assert_eq!(status("rejected"), Some(DeliveryStatus::Failed));
        assert_eq!(status("received"), None);
    }
}
