//! Delivering a code's message for the local engine. Senders never choose or see anything but
//! the message they are handed; the engine decides what to send. `console` (dev outbox),
//! `twilio_messaging` (Twilio Programmable Messaging) and `webhook` (a signed JSON POST).
//! None of them retries a send whose outcome is unknown.

pub mod channels;
pub mod console;
pub mod email;
pub mod meta_whatsapp;
pub mod null;
pub mod receipt;
pub mod routes;
pub mod telnyx;
pub mod twilio_messaging;
pub mod vendor_http;
pub mod vonage;
pub mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::clock::Clock;
use crate::config::{DeliverySettings, SenderKind, TwilioSettings};
use crate::domain::{Channel, PhoneNumber, Recipient, VerificationSid};

pub use channels::{ChannelRouter, TwilioVoiceSender, TwilioWhatsappSender};
pub use console::{ConsoleSender, Outbox, OutboxMessage};
pub use email::SmtpSender;
pub use meta_whatsapp::MetaWhatsappSender;
pub use null::NullSender;
pub use routes::{Breaker, RoutedSender};
pub use telnyx::TelnyxSender;
pub use twilio_messaging::TwilioMessagingSender;
pub use vonage::VonageSender;
pub use webhook::WebhookSender;

/// One message to deliver. The body contains the code, so it is a secret.
pub struct OutgoingMessage {
    pub to: Recipient,
    pub channel: Channel,
    pub body: SecretString,
    /// The code alone, for senders whose vendor fills it into its own template (Meta's
    /// WhatsApp authentication templates).
    pub code: SecretString,
    pub code_length: usize,
    pub verification_sid: VerificationSid,
    /// The language the body is written in (a call's voice speaks it).
    pub locale: crate::messages::Locale,
    /// The subject, text and HTML of an email (the `email` channel only).
    pub email: Option<crate::messages::EmailParts>,
}

impl OutgoingMessage {
    /// The phone number this message goes to.
    ///
    /// # Errors
    /// [`SmsError::Refused`] when it goes to an email address (a phone sender never sends one).
    pub fn phone(&self) -> Result<&PhoneNumber, SmsError> {
        self.to
            .phone()
            .ok_or_else(|| SmsError::Refused(format!("{} needs a phone number", self.channel)))
    }
}

/// The sender failed; the message may or may not have gone out.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("the SMS sender failed: {0}")]
    Failed(String),
    /// The vendor refused this number or message (an HTTP 4xx other than 429): the caller's
    /// error, never retried with another vendor.
    #[error("the SMS vendor refused the message: {0}")]
    Refused(String),
    /// The sender cannot be built from the settings.
    #[error("the SMS sender cannot be set up: {0}")]
    Setup(String),
}

/// A way to deliver messages.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Delivers `message`.
    ///
    /// # Errors
    /// [`SmsError`] when delivery failed or its outcome is unknown.
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError>;

    /// Delivers `message` and names the vendor that carried it (a router answers the vendor
    /// it chose; any other sender itself).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    async fn send_via(&self, message: &OutgoingMessage) -> Result<&'static str, SmsError> {
        self.send(message).await.map(|()| self.name())
    }

    /// `console`, `twilio-messaging`, `webhook`: for logs and metrics.
    fn name(&self) -> &'static str;
}

/// A sender, and its dev outbox when it has one.
pub type SenderWithOutbox = (Arc<dyn SmsSender>, Option<Arc<Outbox>>);

/// The sender the settings choose, and the dev outbox when it is the console sender (the only
/// sender with an outbox: `/dev/outbox` exists only then).
///
/// # Errors
/// [`SmsError::Setup`] when the chosen sender's settings are missing or its client cannot be built.
pub fn from_settings(
    delivery: &DeliverySettings,
    twilio: &TwilioSettings,
    clock: Arc<dyn Clock>,
) -> Result<SenderWithOutbox, SmsError> {
    if delivery.routes.is_empty() {
        return one_sender(delivery.sender, delivery, twilio, clock);
    }
    routes::from_settings(delivery, twilio, clock)
}

/// The sender of one vendor `kind` (its settings read from `delivery`).
///
/// # Errors
/// As [`from_settings`].
pub fn one_sender(
    kind: SenderKind,
    delivery: &DeliverySettings,
    twilio: &TwilioSettings,
    clock: Arc<dyn Clock>,
) -> Result<SenderWithOutbox, SmsError> {
    match kind {
        SenderKind::Console => {
            let console = ConsoleSender::new(clock);
            let outbox = console.outbox();
            Ok((Arc::new(console), Some(outbox)))
        }
        SenderKind::Null => Ok((Arc::new(NullSender), None)),
        SenderKind::TwilioMessaging => {
            let settings = delivery.twilio_messaging.as_ref().ok_or_else(|| {
                SmsError::Setup("twilio-messaging needs its TWILIO_* settings".to_owned())
            })?;
            let sender =
                TwilioMessagingSender::new(settings, &twilio.api_base_url, twilio.timeout)?
                    .with_sender_ids(delivery.sms_from.clone());
            Ok((Arc::new(sender), None))
        }
        SenderKind::Telnyx => {
            let settings = delivery.telnyx.as_ref().ok_or_else(|| {
                SmsError::Setup("telnyx needs TELNYX_API_KEY and TELNYX_FROM".to_owned())
            })?;
            let sender = TelnyxSender::new(settings)?.with_sender_ids(delivery.sms_from.clone());
            Ok((Arc::new(sender), None))
        }
        SenderKind::Vonage => {
            let settings = delivery.vonage.as_ref().ok_or_else(|| {
                SmsError::Setup("vonage needs VONAGE_API_KEY, _SECRET and _FROM".to_owned())
            })?;
            let sender = VonageSender::new(settings)?.with_sender_ids(delivery.sms_from.clone());
            Ok((Arc::new(sender), None))
        }
        SenderKind::Webhook => {
            let settings = delivery.webhook.as_ref().ok_or_else(|| {
                SmsError::Setup("webhook needs VERIFYD_SMS_WEBHOOK_URL and _SECRET".to_owned())
            })?;
            Ok((Arc::new(WebhookSender::new(settings, clock)?), None))
        }
    }
}

/// `sender` for SMS, with the WhatsApp, voice and email senders the channel settings configure
/// in front of it (every channel without its own sender goes to `sender`).
///
/// # Errors
/// [`SmsError::Setup`] when a channel's client cannot be built.
pub fn with_channels(
    sender: Arc<dyn SmsSender>,
    channels: &crate::config::ChannelSettings,
    twilio: &TwilioSettings,
) -> Result<Arc<dyn SmsSender>, SmsError> {
    let email: Option<Arc<dyn SmsSender>> = match &channels.email {
        Some(settings) => Some(Arc::new(SmtpSender::new(settings)?)),
        None => None,
    };
    let meta: Option<Arc<dyn SmsSender>> = match &channels.meta_whatsapp {
        Some(settings) => Some(Arc::new(MetaWhatsappSender::new(settings)?)),
        None => None,
    };
    let Some(account) = &channels.twilio else {
        if email.is_none() && meta.is_none() {
            return Ok(sender);
        }
        let router = ChannelRouter::new(sender, meta, None);
        return Ok(Arc::new(match email {
            Some(email) => router.with_email(email),
            None => router,
        }));
    };
    let whatsapp: Option<Arc<dyn SmsSender>> = match (&meta, &channels.whatsapp_from) {
        (Some(meta), _) => Some(Arc::clone(meta)),
        (None, Some(from)) => Some(Arc::new(TwilioWhatsappSender::new(
            &twilio.api_base_url,
            &account.account_sid,
            &account.auth_token,
            from,
            twilio.timeout,
        )?)),
        (None, None) => None,
    };
    let call: Option<Arc<dyn SmsSender>> = match &channels.voice_from {
        Some(from) => Some(Arc::new(TwilioVoiceSender::new(
            &twilio.api_base_url,
            &account.account_sid,
            &account.auth_token,
            from,
            twilio.timeout,
        )?)),
        None => None,
    };
    let router = ChannelRouter::new(sender, whatsapp, call);
    Ok(Arc::new(match email {
        Some(email) => router.with_email(email),
        None => router,
    }))
}
