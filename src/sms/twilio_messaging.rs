//! The `twilio-messaging` sender: the local engine's messages go out through Twilio
//! Programmable Messaging, `POST /2010-04-01/Accounts/{AC…}/Messages.json` with `To`, `Body` and
//! either `MessagingServiceSid` (the service picks the sender, its own per-country senders
//! included) or `From` (the destination country's sender of `VERIFYD_SMS_FROM` when it has one,
//! else `TWILIO_FROM`). SMS only. A send is never retried: after a timeout or
//! a 5xx the message may already be queued at Twilio, and a second one would be a second SMS.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;

use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::{MessagingFrom, TwilioMessagingConfig};
use crate::domain::{Channel, SenderIds};
use crate::twilio::{TwilioClient, TwilioError};

/// The part of Twilio's Message resource we read.
#[derive(serde::Deserialize)]
struct Created {
    sid: Option<String>,
}

/// Sends through Twilio Programmable Messaging.
pub struct TwilioMessagingSender {
    api: TwilioClient,
    from: MessagingFrom,
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
            per_country: SenderIds::default(),
        })
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
                let id = self.per_country.for_destination(to);
                form.push(("From", id.map_or(from.as_str(), |id| id.as_str())));
            }
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
        Ok(())
    }

    fn name(&self) -> &'static str {
        "twilio-messaging"
    }
}
