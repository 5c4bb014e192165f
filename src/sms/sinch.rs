//! The `sinch` vendor: Sinch's SMS REST API, `POST {SINCH_BASE_URL}/xms/v1/{service_plan_id}/
//! batches` with `Authorization: Bearer {SINCH_API_TOKEN}` and the JSON body `{"from", "to":
//! [number], "body"}` (developers.sinch.com, SMS API, "Send"). A 201 answer holds the batch's
//! `id`; an error answer holds `code` and `text`, all we keep of it. Receipts: Sinch signs
//! delivery reports with the HMAC secret set up on the service plan (`x-sinch-webhook-signature`:
//! base64 HMAC-SHA256 of `{body}.{nonce}.{timestamp}`, with the `-nonce`, `-timestamp` and
//! `-algorithm` headers), verified by [`SinchReceipts`] with a five-minute window.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};

use super::receipt::{DeliveryStatus, Receipt, ReceiptError, ReceiptRequest, ReceiptVerifier};
use super::receipt_check::{fresh_unix_seconds, header, hmac_sha256, same};
use super::vendor_http::{answer_error, client, transport_error};
use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::SinchConfig;

#[derive(serde::Serialize)]
struct Body<'a> {
    from: &'a str,
    to: [&'a str; 1],
    body: &'a str,
    /// `per_recipient` when a callback URL is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_report: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct Created {
    id: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct Problem {
    code: Option<String>,
    text: Option<String>,
}

/// Sends through Sinch.
pub struct SinchSender {
    http: reqwest::Client,
    url: String,
    api_token: SecretString,
    from: String,
    /// `VERIFYD_SMS_FROM`: the sender per destination country, before `from`.
    per_country: crate::domain::SenderIds,
    callback_url: Option<String>,
}

impl SinchSender {
    /// Asks Sinch for a per-recipient delivery report of each message, posted to `url`.
    #[must_use]
    pub fn with_callback_url(mut self, url: String) -> Self {
        self.callback_url = Some(url);
        self
    }

    /// A sender for `settings`.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(settings: &SinchConfig) -> Result<Self, SmsError> {
        Ok(Self {
            http: client()?,
            url: format!(
                "{}/xms/v1/{}/batches",
                settings.base_url.trim_end_matches('/'),
                settings.service_plan_id
            ),
            api_token: settings.api_token.clone(),
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

    /// Sends `message`; Sinch's id of it (the batch `id`) when the answer names one.
    ///
    /// # Errors
    /// [`SmsError::Failed`] on no answer, 5xx, 429 or 401; [`SmsError::Refused`] on another 4xx.
    pub async fn submit(&self, message: &OutgoingMessage) -> Result<Option<String>, SmsError> {
        let body = Body {
            from: self
                .per_country
                .for_destination_or(message.phone()?, &self.from),
            to: [message.phone()?.e164()],
            body: message.body.expose_secret(),
            delivery_report: self.callback_url.as_ref().map(|_| "per_recipient"),
            callback_url: self.callback_url.as_deref(),
        };
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.api_token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error("Sinch", &e))?;
        let status = response.status();
        if status.is_success() {
            let id = response.json::<Created>().await.ok().and_then(|c| c.id);
            tracing::debug!(
                to = %message.to.masked(),
                message_id = id.as_deref().unwrap_or("?"),
                "Sinch accepted the batch"
            );
            return Ok(id);
        }
        let problem: Problem = response.json().await.unwrap_or_default();
        let detail = format!(
            "{} {}",
            problem.code.as_deref().unwrap_or(""),
            problem
                .text
                .as_deref()
                .map(|t| t.chars().take(120).collect::<String>())
                .unwrap_or_default()
        );
        Err(answer_error("Sinch", status.as_u16(), detail.trim()))
    }
}

#[async_trait]
impl SmsSender for SinchSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        self.submit(message).await.map(|_| ())
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<super::Delivery, SmsError> {
        let message_id = self.submit(message).await?;
        // The vendor holds it; its receipts (when asked for) say what became of it.
        Ok(super::Delivery {
            vendor: "sinch",
            message_id,
            failovers: 0,
            status: super::DeliveryStatus::Queued,
        })
    }

    fn name(&self) -> &'static str {
        "sinch"
    }
}

/// A recipient delivery report (`"type": "recipient_delivery_report_sms"`).
#[derive(serde::Deserialize)]
struct Report {
    #[serde(rename = "type")]
    kind: String,
    batch_id: String,
    status: String,
    code: Option<i64>,
}

/// Sinch's status words (SMS API, "Delivery report statuses").
fn status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "Queued" => DeliveryStatus::Queued,
        // Handed to the carrier; `Unknown`: the carrier never said more.
        "Dispatched" | "Unknown" => DeliveryStatus::Sent,
        "Delivered" => DeliveryStatus::Delivered,
        "Expired" => DeliveryStatus::Undelivered,
        "Aborted" | "Cancelled" | "Rejected" | "Failed" | "Deleted" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Verifies Sinch's HMAC-signed SMS delivery reports.
pub struct SinchReceipts {
    secret: SecretString,
}

impl SinchReceipts {
    /// A verifier keyed by the service plan's callback HMAC secret.
    #[must_use]
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    fn sign(&self, body: &[u8], nonce: &str, timestamp: &str) -> String {
        BASE64.encode(hmac_sha256(
            self.secret.expose_secret().as_bytes(),
            &[body, b".", nonce.as_bytes(), b".", timestamp.as_bytes()],
        ))
    }
}

impl ReceiptVerifier for SinchReceipts {
    fn vendor(&self) -> &'static str {
        "sinch"
    }

    fn verify(&self, request: &ReceiptRequest<'_>) -> Result<Receipt, ReceiptError> {
        let (Some(given), Some(nonce), Some(timestamp)) = (
            header(request, "x-sinch-webhook-signature"),
            header(request, "x-sinch-webhook-signature-nonce"),
            header(request, "x-sinch-webhook-signature-timestamp"),
        ) else {
            return Err(ReceiptError::Unsigned);
        };
        if header(request, "x-sinch-webhook-signature-algorithm").is_some_and(|a| a != "HmacSHA256")
        {
            return Err(ReceiptError::BadSignature);
        }
        let expected = self.sign(request.body, nonce, timestamp);
        if !same(given.as_bytes(), expected.as_bytes()) {
            return Err(ReceiptError::BadSignature);
        }
        fresh_unix_seconds(timestamp, request.now)?;
        let report: Report = serde_json::from_slice(request.body)
            .map_err(|e| ReceiptError::Malformed(format!("not a delivery report: {e}")))?;
        if report.kind != "recipient_delivery_report_sms" {
            return Err(ReceiptError::Malformed(format!(
                "`{}` is not a recipient delivery report",
                report.kind
            )));
        }
        let status = status(&report.status).ok_or_else(|| {
            ReceiptError::Malformed(format!("unknown status `{}`", report.status))
        })?;
        Ok(Receipt {
            message_id: report.batch_id,
            status,
            error_code: report
                .code
                .filter(|c| *c != 0 && status != DeliveryStatus::Delivered)
                .map(|c| c.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    const SECRET: &str = "sinch-callback-secret-0123";
    const NOW: i64 = 1_700_000_000;
    const BODY: &str = r#"{"at":"2023-11-14T22:13:19.000Z","batch_id":"01FC66621XXXXX119Z8PMV1QPQ","code":0,"recipient":"+14155552671","status":"Delivered","type":"recipient_delivery_report_sms"}"#;

    fn headers(signature: &str, nonce: &str, timestamp: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-sinch-webhook-signature", signature.parse().unwrap());
        h.insert("x-sinch-webhook-signature-nonce", nonce.parse().unwrap());
        h.insert(
            "x-sinch-webhook-signature-timestamp",
            timestamp.parse().unwrap(),
        );
        h.insert(
            "x-sinch-webhook-signature-algorithm",
            "HmacSHA256".parse().unwrap(),
        );
        h
    }

    fn by_hand(body: &str, nonce: &str, timestamp: &str) -> String {
        BASE64.encode(hmac_sha256(
            SECRET.as_bytes(),
            &[format!("{body}.{nonce}.{timestamp}").as_bytes()],
        ))
    }

    fn verify(h: &axum::http::HeaderMap, body: &str) -> Result<Receipt, ReceiptError> {
        SinchReceipts::new(SecretString::from(SECRET)).verify(&ReceiptRequest {
            url: "https://verifyd.example/callbacks/sinch",
            headers: h,
            body: body.as_bytes(),
            now: Timestamp::from_millis(NOW * 1000),
        })
    }

    #[test]
    fn a_signed_recipient_report_is_read() {
        let ts = NOW.to_string();
        let r = verify(
            &headers(&by_hand(BODY, "01FJA8B4A7", &ts), "01FJA8B4A7", &ts),
            BODY,
        )
        .unwrap();
        assert_eq!(r.message_id, "01FC66621XXXXX119Z8PMV1QPQ");
        assert_eq!(r.status, DeliveryStatus::Delivered);
        assert_eq!(r.error_code, None);
        let failed = BODY
            .replace("\"code\":0", "\"code\":402")
            .replace("Delivered", "Failed");
        let r = verify(&headers(&by_hand(&failed, "n", &ts), "n", &ts), &failed).unwrap();
        assert_eq!(r.status, DeliveryStatus::Failed);
        assert_eq!(r.error_code.as_deref(), Some("402"));
    }

    #[test]
    fn forged_unsigned_stale_and_malformed_reports_are_refused() {
        let ts = NOW.to_string();
        let good = by_hand(BODY, "n1", &ts);
        let forged = BODY.replace("Delivered", "Failed");
        assert!(matches!(
            verify(&headers(&good, "n1", &ts), &forged),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            verify(&headers(&good, "n2", &ts), BODY),
            Err(ReceiptError::BadSignature)
        ));
        let mut other_algorithm = headers(&good, "n1", &ts);
        other_algorithm.insert(
            "x-sinch-webhook-signature-algorithm",
            "HmacSHA1".parse().unwrap(),
        );
        assert!(matches!(
            verify(&other_algorithm, BODY),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            verify(&axum::http::HeaderMap::new(), BODY),
            Err(ReceiptError::Unsigned)
        ));
        let old = (NOW - 301).to_string();
        assert!(matches!(
            verify(&headers(&by_hand(BODY, "n1", &old), "n1", &old), BODY),
            Err(ReceiptError::Stale)
        ));
        for body in [
            "not json",
            r#"{"type":"delivery_report_sms","batch_id":"b","status":"Delivered"}"#,
            r#"{"type":"recipient_delivery_report_sms","batch_id":"b","status":"Lost"}"#,
        ] {
            assert!(
                matches!(
                    verify(&headers(&by_hand(body, "n", &ts), "n", &ts), body),
                    Err(ReceiptError::Malformed(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn sinch_status_words_map_forward() {
        assert_eq!(status("Queued"), Some(DeliveryStatus::Queued));
        assert_eq!(status("Dispatched"), Some(DeliveryStatus::Sent));
        assert_eq!(status("Expired"), Some(DeliveryStatus::Undelivered));
        assert_eq!(status("Rejected"), Some(DeliveryStatus::Failed));
        assert_eq!(status("delivered"), None);
    }
}
