//! The `twilio-messaging` sender: the local engine's messages go out through Twilio
//! Programmable Messaging, `POST /2010-04-01/Accounts/{AC…}/Messages.json` with `To`, `Body` and
//! either `MessagingServiceSid` (the service picks the sender, its own per-country senders
//! included) or `From` (the destination country's sender of `VERIFYD_SMS_FROM` when it has one,
//! else `TWILIO_FROM`). SMS only. A send is never retried: after a timeout or
//! a 5xx the message may already be queued at Twilio, and a second one would be a second SMS.
//! With `VERIFYD_PUBLIC_URL` set, each message asks for its delivery receipts
//! (`StatusCallback={public}/callbacks/twilio-messaging`); [`TwilioReceipts`] verifies them
//! (`X-Twilio-Signature`).

use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;

use super::receipt::{
    DeliveryStatus, Receipt, ReceiptError, ReceiptRequest, ReceiptVerifier, constant_time_eq,
    form_fields,
};
use super::{Delivery, OutgoingMessage, SmsError, SmsSender};
use crate::config::{MessagingFrom, TwilioMessagingConfig};
use crate::domain::{Channel, SenderIds};
use crate::twilio::{TwilioClient, TwilioError};

/// The part of Twilio's Message resource we read.
#[derive(serde::Deserialize)]
struct Created {
    sid: Option<String>,
    status: Option<String>,
}

/// Sends through Twilio Programmable Messaging.
pub struct TwilioMessagingSender {
    api: TwilioClient,
    from: MessagingFrom,
    /// `StatusCallback`: where Twilio posts this message's receipts (none: not asked for).
    status_callback: Option<String>,
    per_country: SenderIds,
}

impl TwilioMessagingSender {
    /// A sender for the account and origin in `settings`, at `base_url`.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(
        settings: &TwilioMessagingConfig,
        base_url: &str,
        timeout: Duration,
    ) -> Result<Self, SmsError> {
        let api = TwilioClient::new(
            base_url,
            &settings.account_sid,
            settings.auth_token.clone(),
            timeout,
        )
        .map_err(|e| SmsError::Setup(e.to_string()))?;
        Ok(Self {
            api,
            from: settings.from.clone(),
            status_callback: None,
            per_country: SenderIds::default(),
        })
    }

    /// The same sender, asking Twilio to post each message's receipts to `url`.
    #[must_use]
    pub fn with_status_callback(mut self, url: Option<String>) -> Self {
        self.status_callback = url;
        self
    }

    /// The same sender, sending from `ids`' sender for each destination country that has one.
    #[must_use]
    pub fn with_sender_ids(mut self, ids: SenderIds) -> Self {
        self.per_country = ids;
        self
    }
}

#[async_trait]
impl SmsSender for TwilioMessagingSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        self.deliver(message).await.map(|_| ())
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<Delivery, SmsError> {
        if message.channel != Channel::Sms {
            return Err(SmsError::Failed(format!(
                "twilio-messaging delivers sms only, not {}",
                message.channel
            )));
        }
        let to = message.phone()?;
        let mut form = vec![("To", to.e164()), ("Body", message.body.expose_secret())];
        match &self.from {
            MessagingFrom::Service(sid) => form.push(("MessagingServiceSid", sid.as_str())),
            MessagingFrom::Number(from) => {
                form.push(("From", self.per_country.for_destination_or(to, from)));
            }
        }
        if let Some(url) = &self.status_callback {
            form.push(("StatusCallback", url.as_str()));
        }
        let path = format!(
            "/2010-04-01/Accounts/{}/Messages.json",
            self.api.account_sid()
        );
        let created: Created = self.api.post_form(&path, &form).await.map_err(|e| {
            // Twilio refused this number or message (400 21211 invalid To, 21610
            // unsubscribed, …): not an outage, so no other vendor is tried.
            if let TwilioError::Api(failure) = &e
                && (400..500).contains(&failure.status)
                && !matches!(failure.status, 401 | 429)
            {
                return SmsError::Refused(format!("Twilio Messaging: {e}"));
            }
            let hint = match &e {
                TwilioError::Timeout(_) | TwilioError::Transport(_) => {
                    " (the message may still go out; not retried)"
                }
                _ => "",
            };
            SmsError::Failed(format!("Twilio Messaging: {e}{hint}"))
        })?;
        tracing::debug!(
            to = %message.to.masked(),
            message_sid = created.sid.as_deref().unwrap_or("?"),
            "Twilio accepted the message"
        );
        Ok(Delivery {
            vendor: self.name(),
            message_id: created.sid,
            failovers: 0,
            status: match created.status.as_deref() {
                Some("sent" | "delivered") => DeliveryStatus::Sent,
                _ => DeliveryStatus::Queued,
            },
        })
    }

    fn name(&self) -> &'static str {
        "twilio-messaging"
    }
}

/// Verifies Twilio's status callbacks: `X-Twilio-Signature` is the base64 HMAC-SHA1, keyed by
/// the account's Auth Token, of the full URL Twilio called followed by each POST parameter's
/// name and value, sorted by name. Twilio's scheme has no timestamp: a replayed receipt
/// verifies, and the attempt log's forward-only status makes it a no-op.
pub struct TwilioReceipts {
    auth_token: secrecy::SecretString,
}

impl TwilioReceipts {
    /// A verifier keyed by the account's Auth Token.
    #[must_use]
    pub fn new(auth_token: secrecy::SecretString) -> Self {
        Self { auth_token }
    }
}

/// The signature Twilio sends for a POST of `params` to `url` (see [`TwilioReceipts`]).
#[must_use]
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    use base64::Engine as _;
    use hmac_sha1::{KeyInit, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = hmac_sha1::Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl ReceiptVerifier for TwilioReceipts {
    fn vendor(&self) -> &'static str {
        "twilio-messaging"
    }

    fn verify(&self, request: &ReceiptRequest<'_>) -> Result<Receipt, ReceiptError> {
        let given = request
            .headers
            .get("x-twilio-signature")
            .ok_or(ReceiptError::Unsigned)?
            .as_bytes();
        let params = form_fields(request.body)?;
        let expected = twilio_signature(self.auth_token.expose_secret(), request.url, &params);
        if !constant_time_eq(given, expected.as_bytes()) {
            return Err(ReceiptError::BadSignature);
        }
        let field = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let message_id = field("MessageSid")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ReceiptError::Malformed("no MessageSid".to_owned()))?;
        let status = match field("MessageStatus") {
            Some("accepted" | "scheduled" | "queued") => DeliveryStatus::Queued,
            Some("sending" | "sent") => DeliveryStatus::Sent,
            Some("delivered" | "read") => DeliveryStatus::Delivered,
            Some("undelivered") => DeliveryStatus::Undelivered,
            Some("failed" | "canceled") => DeliveryStatus::Failed,
            Some(other) => {
                return Err(ReceiptError::Malformed(format!(
                    "unknown MessageStatus `{other}`"
                )));
            }
            None => return Err(ReceiptError::Malformed("no MessageStatus".to_owned())),
        };
        Ok(Receipt {
            message_id: message_id.to_owned(),
            status,
            error_code: field("ErrorCode")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::twilio_signature;

    /// The worked example of Twilio's webhook-security docs.
    #[test]
    fn signs_twilios_documented_example() {
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}
