//! The `webhook` sender: any SMS gateway plugs in by accepting a signed JSON POST.
//!
//! `POST VERIFYD_SMS_WEBHOOK_URL` with `Content-Type: application/json` and the body
//! `{"to": "+E164", "channel": "sms", "body": "<message text>", "code_length": 6,
//! "verification_sid": "VE…"}`, signed in the header
//! `X-Verifyd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` under
//! `VERIFYD_SMS_WEBHOOK_SECRET`. The receiver recomputes the HMAC over the exact bytes it got,
//! compares in constant time, and refuses stale `t` values to stop replays. Any 2xx means
//! sent; anything else (a redirect included: redirects are never followed), or no answer within
//! `VERIFYD_SMS_WEBHOOK_TIMEOUT`, is a failed send, never retried (the gateway may already have
//! sent it). In production the URL must be https://.

use std::sync::Arc;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::{OutgoingMessage, SmsError, SmsSender};
use crate::clock::Clock;
use crate::config::WebhookConfig;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-verifyd-signature";

/// The signature header's value for `body` sent at unix second `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(serde::Serialize)]
struct Payload<'a> {
    to: &'a str,
    channel: &'a str,
    body: &'a str,
    code_length: usize,
    verification_sid: &'a str,
}

/// Posts each message to the configured URL.
pub struct WebhookSender {
    http: reqwest::Client,
    url: String,
    secret: SecretString,
    clock: Arc<dyn Clock>,
}

impl WebhookSender {
    /// A sender for `settings`; the signature's time comes from `clock`.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(settings: &WebhookConfig, clock: Arc<dyn Clock>) -> Result<Self, SmsError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            // Never follow a redirect: it would carry the code (and any token in the URL)
            // somewhere the operator did not configure, possibly over plain http://. A 3xx
            // answer is a failed send.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("verifyd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SmsError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            url: settings.url.clone(),
            secret: settings.secret.clone(),
            clock,
        })
    }
}

#[async_trait]
impl SmsSender for WebhookSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        let body = serde_json::to_vec(&Payload {
            to: message.to.as_str(),
            channel: message.channel.as_str(),
            body: message.body.expose_secret(),
            code_length: message.code_length,
            verification_sid: message.verification_sid.as_str(),
        })
        .map_err(|e| SmsError::Failed(format!("webhook body: {e}")))?;
        let t = self.clock.now().as_millis().div_euclid(1000);
        let signed = signature(self.secret.expose_secret().as_bytes(), t, &body);
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .body(body)
            .send()
            .await
            // The URL may carry a gateway token: keep it out of the error text.
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "did not answer in time (the message may still go out; not retried)"
                } else if e.is_connect() {
                    "could not be reached"
                } else {
                    "failed"
                };
                SmsError::Failed(format!("webhook {what}: {}", e.without_url()))
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() && !matches!(status.as_u16(), 401 | 429) {
            // The gateway refused this number or message: the caller's error, no failover.
            Err(SmsError::Refused(format!(
                "webhook answered HTTP {}",
                status.as_u16()
            )))
        } else {
            Err(SmsError::Failed(format!(
                "webhook answered HTTP {}",
                status.as_u16()
            )))
        }
    }

    fn name(&self) -> &'static str {
        "webhook"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_time_and_body() {
        let a = signature(b"secret", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1="), "{a}");
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(a, signature(b"secret", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature(b"other", 1_700_000_000, b"{}"));
    }
}
