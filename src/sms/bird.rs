//! The `bird` vendor: Bird's SMS API, `POST {BIRD_BASE_URL}/v1/sms/messages` with
//! `Authorization: Bearer {BIRD_API_KEY}` and the JSON body `{"to", "from", "text", "category":
//! "authentication"}` (Bird's API reference, "Send an SMS"; the host is
//! `https://{region}.platform.bird.com`, the region read from the `bk_{region}_…` key). The answer
//! is the message with its `id`; an error answer holds `error.code`, all we keep of it.
//! Receipts: Bird signs its webhook events the Standard Webhooks way (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,{base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"}`
//! keyed by the base64 part of the `whsec_…` secret), verified by [`BirdReceipts`] with a
//! five-minute window. The `sms.*` event types give the status.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::receipt::{DeliveryStatus, Receipt, ReceiptError, ReceiptRequest, ReceiptVerifier};
use super::receipt_check::{fresh_unix_seconds, header, hmac_sha256, same};
use super::vendor_http::{answer_error, client, transport_error};
use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::BirdConfig;

#[derive(serde::Serialize)]
struct Body<'a> {
    to: &'a str,
    from: &'a str,
    text: &'a str,
    /// A one-time code is an `authentication` message (Bird's compliance category).
    category: &'static str,
}

#[derive(serde::Deserialize)]
struct Created {
    id: Option<String>,
}

/// Sends through Bird.
pub struct BirdSender {
    http: reqwest::Client,
    url: String,
    api_key: SecretString,
    from: String,
    /// `VERIFYD_SMS_FROM`: the sender per destination country, before `from`.
    per_country: crate::domain::SenderIds,
}

impl BirdSender {
    /// A sender for `settings`.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(settings: &BirdConfig) -> Result<Self, SmsError> {
        Ok(Self {
            http: client()?,
            url: format!(
                "{}/v1/sms/messages",
                settings.base_url.trim_end_matches('/')
            ),
            api_key: settings.api_key.clone(),
            from: settings.from.clone(),
            per_country: crate::domain::SenderIds::default(),
        })
    }

    /// The same sender, sending from `ids`' sender for each destination country that has one.
    #[must_use]
    pub fn with_sender_ids(mut self, ids: crate::domain::SenderIds) -> Self {
        self.per_country = ids;
        self
    }

    /// Sends `message`; Bird's id of it when the answer names one.
    ///
    /// # Errors
    /// [`SmsError::Failed`] on no answer, 5xx, 429 or 401; [`SmsError::Refused`] on another 4xx.
    pub async fn submit(&self, message: &OutgoingMessage) -> Result<Option<String>, SmsError> {
        let body = Body {
            to: message.phone()?.e164(),
            from: self
                .per_country
                .for_destination_or(message.phone()?, &self.from),
            text: message.body.expose_secret(),
            category: "authentication",
        };
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.api_key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error("Bird", &e))?;
        let status = response.status();
        if status.is_success() {
            let id = response.json::<Created>().await.ok().and_then(|c| c.id);
            tracing::debug!(
                to = %message.to.masked(),
                message_id = id.as_deref().unwrap_or("?"),
                "Bird accepted the message"
            );
            return Ok(id);
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| {
                v.pointer("/error/code")
                    .and_then(|c| c.as_str())
                    .map(|c| c.chars().take(60).collect::<String>())
            })
            .unwrap_or_default();
        Err(answer_error("Bird", status.as_u16(), &detail))
    }
}

#[async_trait]
impl SmsSender for BirdSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        self.submit(message).await.map(|_| ())
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<super::Delivery, SmsError> {
        let message_id = self.submit(message).await?;
        // The vendor holds it; its receipts (when asked for) say what became of it.
        Ok(super::Delivery {
            vendor: "bird",
            message_id,
            failovers: 0,
            status: super::DeliveryStatus::Queued,
        })
    }

    fn name(&self) -> &'static str {
        "bird"
    }
}

/// The HMAC key of a `whsec_{base64}` signing secret; `None` when it is not one.
#[must_use]
pub fn webhook_key(secret: &str) -> Option<Vec<u8>> {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    (!key.is_empty()).then_some(key)
}

/// An `sms.*` event: `{"type", "timestamp", "data": {"sms_id", "error": {"code"}, …}}`.
#[derive(serde::Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(serde::Deserialize)]
struct EventData {
    sms_id: String,
    error: Option<EventError>,
}

#[derive(serde::Deserialize)]
struct EventError {
    code: Option<String>,
}

/// Bird's SMS event types.
fn status(kind: &str) -> Option<DeliveryStatus> {
    Some(match kind {
        "sms.accepted" => DeliveryStatus::Queued,
        "sms.sent" => DeliveryStatus::Sent,
        "sms.delivered" => DeliveryStatus::Delivered,
        "sms.undelivered" | "sms.expired" => DeliveryStatus::Undelivered,
        "sms.failed" | "sms.rejected" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Verifies Bird's signed webhook events.
pub struct BirdReceipts {
    key: SecretBox<Vec<u8>>,
}

impl BirdReceipts {
    /// A verifier for the signing secret `secret` (`whsec_…`); `None` when it is not one.
    #[must_use]
    pub fn new(secret: &SecretString) -> Option<Self> {
        webhook_key(secret.expose_secret()).map(|k| Self {
            key: SecretBox::new(Box::new(k)),
        })
    }
}

impl ReceiptVerifier for BirdReceipts {
    fn vendor(&self) -> &'static str {
        "bird"
    }

    fn verify(&self, request: &ReceiptRequest<'_>) -> Result<Receipt, ReceiptError> {
        let (Some(id), Some(timestamp), Some(signatures)) = (
            header(request, "webhook-id"),
            header(request, "webhook-timestamp"),
            header(request, "webhook-signature"),
        ) else {
            return Err(ReceiptError::Unsigned);
        };
        let expected = BASE64.encode(hmac_sha256(
            self.key.expose_secret(),
            &[
                id.as_bytes(),
                b".",
                timestamp.as_bytes(),
                b".",
                request.body,
            ],
        ));
        let signed = signatures.split(' ').any(|entry| {
            entry
                .split_once(',')
                .is_some_and(|(v, sig)| v == "v1" && same(sig.as_bytes(), expected.as_bytes()))
        });
        if !signed {
            return Err(ReceiptError::BadSignature);
        }
        fresh_unix_seconds(timestamp, request.now)?;
        let event: Event = serde_json::from_slice(request.body)
            .map_err(|e| ReceiptError::Malformed(format!("not an SMS event: {e}")))?;
        let status = status(&event.kind).ok_or_else(|| {
            ReceiptError::Malformed(format!("`{}` is not an SMS status", event.kind))
        })?;
        if event.data.sms_id.is_empty() {
            return Err(ReceiptError::Malformed("no sms_id".into()));
        }
        Ok(Receipt {
            message_id: event.data.sms_id,
            status,
            error_code: event.data.error.and_then(|e| e.code),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    /// Standard Webhooks' own test vector (see /work/shared/CRATES.md).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(id: &str, ts: &str, signature: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.parse().unwrap());
        h.insert("webhook-signature", signature.parse().unwrap());
        h
    }

    fn verify(
        h: &axum::http::HeaderMap,
        body: &str,
        now_secs: i64,
    ) -> Result<Receipt, ReceiptError> {
        BirdReceipts::new(&SecretString::from(SECRET))
            .unwrap()
            .verify(&ReceiptRequest {
                url: "https://verifyd.example/callbacks/bird",
                headers: h,
                body: body.as_bytes(),
                now: Timestamp::from_millis(now_secs * 1000),
            })
    }

    fn sign(id: &str, ts: &str, body: &str) -> String {
        let key = webhook_key(SECRET).unwrap();
        format!(
            "v1,{}",
            BASE64.encode(hmac_sha256(&key, &[format!("{id}.{ts}.{body}").as_bytes()]))
        )
    }

    #[test]
    fn the_standard_webhooks_vector_verifies_and_is_not_an_sms_event() {
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        // Signed (the signature matches), but not an SMS status: malformed, not forged.
        assert!(matches!(
            verify(&h, r#"{"test": 2432232314}"#, 1_614_265_330),
            Err(ReceiptError::Malformed(_))
        ));
        assert!(matches!(
            verify(&h, r#"{"test": 2432232315}"#, 1_614_265_330),
            Err(ReceiptError::BadSignature)
        ));
    }

    const EVENT: &str = r#"{"type":"sms.delivered","timestamp":"2023-11-14T22:13:20Z","data":{"sms_id":"sms_4kT01Lq2m","from":"Acme","to":"+14155552671","carrier":null,"mcc_mnc":null,"metadata":null,"tags":null,"workspace_id":"ws_1"}}"#;

    #[test]
    fn a_signed_sms_event_is_read() {
        let ts = "1700000000";
        let signature = format!("v1,bm90IGl0 {}", sign("msg_1", ts, EVENT));
        let r = verify(&headers("msg_1", ts, &signature), EVENT, 1_700_000_000).unwrap();
        assert_eq!(r.message_id, "sms_4kT01Lq2m");
        assert_eq!(r.status, DeliveryStatus::Delivered);
        let failed = EVENT.replace("sms.delivered", "sms.failed").replace(
            "\"workspace_id\"",
            "\"error\":{\"code\":\"invalid_destination\",\"description\":\"x\",\"occurred_at\":\"2023-11-14T22:13:20Z\"},\"workspace_id\"",
        );
        let r = verify(
            &headers("msg_2", ts, &sign("msg_2", ts, &failed)),
            &failed,
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(r.status, DeliveryStatus::Failed);
        assert_eq!(r.error_code.as_deref(), Some("invalid_destination"));
    }

    #[test]
    fn forged_unsigned_stale_and_malformed_events_are_refused() {
        let ts = "1700000000";
        let good = sign("msg_1", ts, EVENT);
        assert!(matches!(
            verify(&headers("msg_2", ts, &good), EVENT, 1_700_000_000),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            verify(
                &headers("msg_1", ts, &good.replace("v1,", "v2,")),
                EVENT,
                1_700_000_000
            ),
            Err(ReceiptError::BadSignature)
        ));
        assert!(matches!(
            verify(&axum::http::HeaderMap::new(), EVENT, 1_700_000_000),
            Err(ReceiptError::Unsigned)
        ));
        // Replayed ten minutes later.
        assert!(matches!(
            verify(&headers("msg_1", ts, &good), EVENT, 1_700_000_600),
            Err(ReceiptError::Stale)
        ));
        let other = EVENT.replace("sms.delivered", "email.delivered");
        assert!(matches!(
            verify(
                &headers("m", ts, &sign("m", ts, &other)),
                &other,
                1_700_000_000
            ),
            Err(ReceiptError::Malformed(_))
        ));
        assert!(webhook_key("whsec_!!").is_none());
        assert!(BirdReceipts::new(&SecretString::from("whsec_")).is_none());
    }
}
