//! The `infobip` vendor: Infobip's SMS API v3, `POST {INFOBIP_BASE_URL}/sms/3/messages` with
//! `Authorization: App {INFOBIP_API_KEY}` and the JSON body `{"messages": [{"sender",
//! "destinations": [{"to"}], "content": {"text"}}]}`, the number in international format without
//! `+` (Infobip API docs, "Send SMS message"). A 200 answer lists each message with its
//! `messageId` and a `status` whose group `REJECTED` means Infobip refused it at once (a bad
//! destination is the caller's error, anything else, such as no credit, an outage). Error
//! answers hold `errorCode`/`description` (or the older `requestError.serviceException`).
//! Receipts: Infobip does not sign its delivery reports, so [`InfobipReceipts`] accepts only a
//! report whose URL carries the secret `?token=` (`VERIFYD_INFOBIP_RECEIPT_TOKEN`).

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::receipt::{DeliveryStatus, Receipt, ReceiptError, ReceiptRequest, ReceiptVerifier};
use super::receipt_check::query_token;
use super::vendor_http::{answer_error, client, transport_error};
use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::InfobipConfig;

#[derive(serde::Serialize)]
struct Request<'a> {
    messages: [Message<'a>; 1],
}

#[derive(serde::Serialize)]
struct Message<'a> {
    sender: &'a str,
    destinations: [Destination<'a>; 1],
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhooks: Option<Webhooks<'a>>,
}

#[derive(serde::Serialize)]
struct Webhooks<'a> {
    delivery: Delivery<'a>,
}

#[derive(serde::Serialize)]
struct Delivery<'a> {
    url: &'a str,
}

#[derive(serde::Serialize)]
struct Destination<'a> {
    to: &'a str,
}

#[derive(serde::Serialize)]
struct Content<'a> {
    text: &'a str,
}

#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    messages: Vec<Sent>,
}

#[derive(serde::Deserialize)]
struct Sent {
    #[serde(rename = "messageId")]
    message_id: Option<String>,
    status: Option<Status>,
}

#[derive(serde::Deserialize)]
struct Status {
    #[serde(rename = "groupName")]
    group_name: Option<String>,
    name: Option<String>,
}

/// Sends through Infobip.
pub struct InfobipSender {
    http: reqwest::Client,
    url: String,
    authorization: SecretString,
    from: String,
    /// `VERIFYD_SMS_FROM`: the sender per destination country, before `from`.
    per_country: crate::domain::SenderIds,
    callback_url: Option<String>,
}

impl InfobipSender {
    /// Asks Infobip to post each message's delivery report to `url` (`webhooks.delivery.url`;
    /// give it the `?token=` that [`InfobipReceipts`] expects).
    #[must_use]
    pub fn with_callback_url(mut self, url: String) -> Self {
        self.callback_url = Some(url);
        self
    }

    /// A sender for `settings`.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(settings: &InfobipConfig) -> Result<Self, SmsError> {
        Ok(Self {
            http: client()?,
            url: format!("{}/sms/3/messages", settings.base_url.trim_end_matches('/')),
            authorization: SecretString::from(format!("App {}", settings.api_key.expose_secret())),
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

    /// Sends `message`; Infobip's `messageId` of it when the answer names one.
    ///
    /// # Errors
    /// [`SmsError::Failed`] on no answer, 5xx, 429, 401 or a rejection that is not about the
    /// number; [`SmsError::Refused`] on another 4xx or a rejected destination.
    pub async fn submit(&self, message: &OutgoingMessage) -> Result<Option<String>, SmsError> {
        let body = Request {
            messages: [Message {
                sender: self
                    .per_country
                    .for_destination_or(message.phone()?, &self.from),
                destinations: [Destination {
                    to: message.phone()?.e164().trim_start_matches('+'),
                }],
                content: Content {
                    text: message.body.expose_secret(),
                },
                webhooks: self.callback_url.as_deref().map(|url| Webhooks {
                    delivery: Delivery { url },
                }),
            }],
        };
        let response = self
            .http
            .post(&self.url)
            .header(
                reqwest::header::AUTHORIZATION,
                self.authorization.expose_secret(),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error("Infobip", &e))?;
        let status = response.status();
        if !status.is_success() {
            let detail = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| error_code(&v))
                .unwrap_or_default();
            return Err(answer_error("Infobip", status.as_u16(), &detail));
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| SmsError::Failed(format!("Infobip's answer could not be read: {e}")))?;
        let Some(sent) = answer.messages.into_iter().next() else {
            return Err(SmsError::Failed("Infobip answered no message".to_owned()));
        };
        if let Some(s) = &sent.status
            && s.group_name.as_deref() == Some("REJECTED")
        {
            let name = s.name.as_deref().unwrap_or("REJECTED");
            let text = format!("Infobip rejected it ({name})");
            return Err(if refuses(name) {
                SmsError::Refused(text)
            } else {
                SmsError::Failed(text)
            });
        }
        tracing::debug!(
            to = %message.to.masked(),
            message_id = sent.message_id.as_deref().unwrap_or("?"),
            "Infobip accepted the message"
        );
        Ok(sent.message_id)
    }
}

/// Whether a `REJECTED_*` status is about the number (the caller's error), not the account.
fn refuses(name: &str) -> bool {
    name.contains("DESTINATION") || name.contains("PREFIX") || name.contains("NUMBER")
}

/// The error's code in either of Infobip's error shapes.
fn error_code(v: &serde_json::Value) -> Option<String> {
    v.get("errorCode")
        .or_else(|| v.pointer("/requestError/serviceException/messageId"))
        .and_then(|c| c.as_str())
        .map(|c| c.chars().take(60).collect())
}

#[async_trait]
impl SmsSender for InfobipSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        self.submit(message).await.map(|_| ())
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<super::Delivery, SmsError> {
        let message_id = self.submit(message).await?;
        // The vendor holds it; its receipts (when asked for) say what became of it.
        Ok(super::Delivery {
            vendor: "infobip",
            message_id,
            failovers: 0,
            status: super::DeliveryStatus::Queued,
        })
    }

    fn name(&self) -> &'static str {
        "infobip"
    }
}

/// A delivery report: `{"results": [{"messageId", "status": {"groupName", …}, "error": …}]}`.
#[derive(serde::Deserialize)]
struct Report {
    results: Vec<Result_>,
}

#[derive(serde::Deserialize)]
struct Result_ {
    #[serde(rename = "messageId")]
    message_id: String,
    status: ReportStatus,
    error: Option<ReportError>,
}

#[derive(serde::Deserialize)]
struct ReportStatus {
    #[serde(rename = "groupName")]
    group_name: String,
}

#[derive(serde::Deserialize)]
struct ReportError {
    #[serde(rename = "groupId")]
    group_id: Option<i64>,
    name: Option<String>,
}

/// Infobip's status groups.
fn status(group: &str) -> Option<DeliveryStatus> {
    Some(match group {
        "ACCEPTED" => DeliveryStatus::Queued,
        "PENDING" => DeliveryStatus::Sent,
        "DELIVERED" => DeliveryStatus::Delivered,
        "UNDELIVERABLE" | "EXPIRED" => DeliveryStatus::Undelivered,
        "REJECTED" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Verifies Infobip delivery reports by the secret token in their URL.
pub struct InfobipReceipts {
    token: SecretString,
}

impl InfobipReceipts {
    /// A verifier expecting `?token={token}`.
    #[must_use]
    pub fn new(token: SecretString) -> Self {
        Self { token }
    }
}

impl ReceiptVerifier for InfobipReceipts {
    fn vendor(&self) -> &'static str {
        "infobip"
    }

    /// Reads the report's first result (Infobip sends one per message it was given a URL for).
    fn verify(&self, request: &ReceiptRequest<'_>) -> Result<Receipt, ReceiptError> {
        query_token(request, self.token.expose_secret())?;
        let report: Report = serde_json::from_slice(request.body)
            .map_err(|e| ReceiptError::Malformed(format!("not a delivery report: {e}")))?;
        let Some(result) = report.results.into_iter().next() else {
            return Err(ReceiptError::Malformed("no results".into()));
        };
        let status = status(&result.status.group_name).ok_or_else(|| {
            ReceiptError::Malformed(format!("unknown status `{}`", result.status.group_name))
        })?;
        if result.message_id.is_empty() {
            return Err(ReceiptError::Malformed("no messageId".into()));
        }
        Ok(Receipt {
            message_id: result.message_id,
            status,
            error_code: result
                .error
                .filter(|e| e.group_id.unwrap_or(0) != 0)
                .and_then(|e| e.name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    const TOKEN: &str = "infobip-token-0123456789abcdef";
    const BODY: &str = r#"{"results":[{"bulkId":"BULK-1","messageId":"2250be2d4219-3af1-78856-aabe-1362af1edfd2","to":"41793026727","sentAt":"2023-11-14T22:13:19.000+0000","doneAt":"2023-11-14T22:13:21.000+0000","messageCount":1,"status":{"groupId":3,"groupName":"DELIVERED","id":5,"name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"},"error":{"groupId":0,"groupName":"OK","id":0,"name":"NO_ERROR","description":"No Error","permanent":false}}]}"#;

    fn verify(url: &str, body: &str) -> Result<Receipt, ReceiptError> {
        InfobipReceipts::new(SecretString::from(TOKEN)).verify(&ReceiptRequest {
            url,
            headers: &axum::http::HeaderMap::new(),
            body: body.as_bytes(),
            now: Timestamp::from_millis(1_700_000_000_000),
        })
    }

    #[test]
    fn a_report_with_the_token_is_read() {
        let url = format!("https://verifyd.example/callbacks/infobip?token={TOKEN}");
        let r = verify(&url, BODY).unwrap();
        assert_eq!(r.message_id, "2250be2d4219-3af1-78856-aabe-1362af1edfd2");
        assert_eq!(r.status, DeliveryStatus::Delivered);
        assert_eq!(r.error_code, None);
        let failed = BODY
            .replace(
                "\"groupName\":\"DELIVERED\"",
                "\"groupName\":\"UNDELIVERABLE\"",
            )
            .replace(
                "\"groupId\":0,\"groupName\":\"OK\"",
                "\"groupId\":1,\"groupName\":\"HANDSET_ERRORS\"",
            )
            .replace("NO_ERROR", "EC_ABSENT_SUBSCRIBER");
        let r = verify(&url, &failed).unwrap();
        assert_eq!(r.status, DeliveryStatus::Undelivered);
        assert_eq!(r.error_code.as_deref(), Some("EC_ABSENT_SUBSCRIBER"));
    }

    #[test]
    fn reports_without_the_token_or_malformed_are_refused() {
        let base = "https://verifyd.example/callbacks/infobip";
        assert!(matches!(verify(base, BODY), Err(ReceiptError::Unsigned)));
        assert!(matches!(
            verify(&format!("{base}?token=guess"), BODY),
            Err(ReceiptError::BadSignature)
        ));
        let url = format!("{base}?token={TOKEN}");
        for body in [
            "[]",
            r#"{"results":[]}"#,
            &BODY.replace("DELIVERED\",\"id\"", "LOST\",\"id\""),
        ] {
            assert!(
                matches!(verify(&url, body), Err(ReceiptError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn rejections_about_the_number_are_refusals() {
        assert!(refuses("REJECTED_DESTINATION"));
        assert!(refuses("REJECTED_PREFIX_MISSING"));
        assert!(!refuses("REJECTED_NOT_ENOUGH_CREDITS"));
        assert_eq!(status("PENDING"), Some(DeliveryStatus::Sent));
        assert_eq!(status("EXPIRED"), Some(DeliveryStatus::Undelivered));
    }
}
