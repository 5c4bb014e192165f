//! Delivering a code's message for the local engine. Senders never choose or see anything but
//! the message they are handed; the engine decides what to send. `console` (dev outbox),
//! `twilio_messaging` (Twilio Programmable Messaging), `webhook` (a signed JSON POST) and the
//! vendors `telnyx`, `vonage`, `plivo`, `sinch`, `infobip` and `bird`, each in its own file with
//! its receipt verifier (`receipt`, `receipt_check`).
//! None of them retries a send whose outcome is unknown.

pub mod bird;
pub mod channels;
pub mod console;
pub mod email;
pub mod infobip;
pub mod meta_whatsapp;
pub mod null;
pub mod plivo;
pub mod receipt;
pub mod receipt_check;
pub mod routes;
pub mod sinch;
pub mod telnyx;
pub mod twilio_messaging;
pub mod vendor_http;
pub mod vonage;
pub mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::clock::Clock;
use crate::config::{DeliverySettings, SenderKind, TwilioSettings};
use crate::domain::{Channel, PhoneNumber, Recipient, VerificationSid};

pub use bird::{BirdReceipts, BirdSender};
pub use channels::{ChannelRouter, TwilioVoiceSender, TwilioWhatsappSender};
pub use console::{ConsoleSender, Outbox, OutboxMessage};
pub use email::SmtpSender;
pub use infobip::{InfobipReceipts, InfobipSender};
pub use meta_whatsapp::MetaWhatsappSender;
pub use null::NullSender;
pub use plivo::{PlivoReceipts, PlivoSender};
pub use receipt::{DeliveryStatus, ReceiptVerifier};
pub use routes::{Breaker, RoutedSender};
pub use sinch::{SinchReceipts, SinchSender};
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

/// What a delivery learned: who carried the message, the vendor's id of it (what its receipts
/// name), after how many failovers, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The vendor that carried it (`twilio-messaging`, `telnyx`, …).
    pub vendor: &'static str,
    /// The vendor's id of the message (Twilio `sid`, Telnyx `data.id`, Vonage `message-id`);
    /// none when the vendor gives none (webhook, console).
    pub message_id: Option<String>,
    /// How many vendors of the route were passed over before this one (failed, or skipped
    /// with their breaker open); 0 without routes.
    pub failovers: u32,
    /// `Queued` (the vendor holds it, receipts will follow) or `Sent` (handed on).
    pub status: DeliveryStatus,
}

impl Delivery {
    /// A message `vendor` handed on and will say no more about.
    #[must_use]
    pub const fn handed_on(vendor: &'static str) -> Self {
        Self {
            vendor,
            message_id: None,
            failovers: 0,
            status: DeliveryStatus::Sent,
        }
    }
}

/// A way to deliver messages.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Delivers `message`.
    ///
    /// # Errors
    /// [`SmsError`] when delivery failed or its outcome is unknown.
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError>;

    /// Delivers `message` and says what the delivery learned (a router answers the vendor it
    /// chose; a vendor whose answer holds a message id overrides this to keep it).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    async fn deliver(&self, message: &OutgoingMessage) -> Result<Delivery, SmsError> {
        self.send(message)
            .await
            .map(|()| Delivery::handed_on(self.name()))
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
                    .with_status_callback(delivery.receipt_url("twilio-messaging"))
                    .with_sender_ids(delivery.sms_from.clone());
            Ok((Arc::new(sender), None))
        }
        SenderKind::Telnyx => {
            let settings = delivery.telnyx.as_ref().ok_or_else(|| {
                SmsError::Setup("telnyx needs TELNYX_API_KEY and TELNYX_FROM".to_owned())
            })?;
            let receipts = settings
                .public_key
                .and_then(|_| delivery.receipt_url("telnyx"));
            let sender = TelnyxSender::new(settings)?
                .with_webhook_url(receipts)
                .with_sender_ids(delivery.sms_from.clone());
            Ok((Arc::new(sender), None))
        }
        SenderKind::Vonage => {
            let settings = delivery.vonage.as_ref().ok_or_else(|| {
                SmsError::Setup("vonage needs VONAGE_API_KEY, _SECRET and _FROM".to_owned())
            })?;
            let receipts = settings
                .signature_secret
                .as_ref()
                .and_then(|_| delivery.receipt_url("vonage"));
            let sender = VonageSender::new(settings)?
                .with_callback(receipts)
                .with_sender_ids(delivery.sms_from.clone());
            Ok((Arc::new(sender), None))
        }
        SenderKind::Plivo => {
            let settings = delivery.more.plivo.as_ref().ok_or_else(|| {
                SmsError::Setup("plivo needs PLIVO_AUTH_ID, _AUTH_TOKEN and _FROM".to_owned())
            })?;
            let mut sender = PlivoSender::new(settings)?.with_sender_ids(delivery.sms_from.clone());
            if let Some(url) = delivery.receipt_url("plivo") {
                sender = sender.with_callback_url(url);
            }
            Ok((Arc::new(sender), None))
        }
        SenderKind::Sinch => {
            let settings = delivery.more.sinch.as_ref().ok_or_else(|| {
                SmsError::Setup(
                    "sinch needs SINCH_SERVICE_PLAN_ID, SINCH_API_TOKEN and SINCH_FROM".to_owned(),
                )
            })?;
            let mut sender = SinchSender::new(settings)?.with_sender_ids(delivery.sms_from.clone());
            if let Some(url) = settings
                .webhook_secret
                .as_ref()
                .and_then(|_| delivery.receipt_url("sinch"))
            {
                sender = sender.with_callback_url(url);
            }
            Ok((Arc::new(sender), None))
        }
        SenderKind::Infobip => {
            let settings = delivery.more.infobip.as_ref().ok_or_else(|| {
                SmsError::Setup("infobip needs INFOBIP_API_KEY and INFOBIP_FROM".to_owned())
            })?;
            let mut sender =
                InfobipSender::new(settings)?.with_sender_ids(delivery.sms_from.clone());
            // Infobip signs nothing: its receipts carry the secret token in the query.
            if let (Some(url), Some(token)) = (
                delivery.receipt_url("infobip"),
                settings.receipt_token.as_ref(),
            ) {
                sender = sender.with_callback_url(format!("{url}?token={}", token.expose_secret()));
            }
            Ok((Arc::new(sender), None))
        }
        SenderKind::Bird => {
            let settings = delivery.more.bird.as_ref().ok_or_else(|| {
                SmsError::Setup("bird needs BIRD_API_KEY and BIRD_FROM".to_owned())
            })?;
            let sender = BirdSender::new(settings)?.with_sender_ids(delivery.sms_from.clone());
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

/// The delivery-receipt verifiers of the vendors the settings configure with what verifies
/// their receipts (`POST /callbacks/{vendor}` looks them up by [`ReceiptVerifier::vendor`]):
/// Twilio Messaging by its Auth Token, Telnyx by `TELNYX_PUBLIC_KEY`, Vonage by
/// `VONAGE_SIGNATURE_SECRET`. A vendor without one has no verifier: its receipts are refused.
///
/// # Errors
/// [`SmsError::Setup`] when a key cannot be used.
pub fn receipt_verifiers(
    delivery: &DeliverySettings,
) -> Result<Vec<Arc<dyn ReceiptVerifier>>, SmsError> {
    let mut verifiers: Vec<Arc<dyn ReceiptVerifier>> = Vec::new();
    if let Some(t) = &delivery.twilio_messaging {
        verifiers.push(Arc::new(twilio_messaging::TwilioReceipts::new(
            t.auth_token.clone(),
        )));
    }
    if let Some(key) = delivery.telnyx.as_ref().and_then(|t| t.public_key) {
        verifiers.push(Arc::new(telnyx::TelnyxReceipts::new(&key)?));
    }
    if let Some(secret) = delivery
        .vonage
        .as_ref()
        .and_then(|v| v.signature_secret.clone())
    {
        verifiers.push(Arc::new(vonage::VonageReceipts::new(secret)));
    }
    verifiers.extend(more_receipt_verifiers(&delivery.more));
    Ok(verifiers)
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

/// The receipt verifiers of the Plivo, Sinch, Infobip and Bird vendors the settings configure,
/// each present only when its key is set (Plivo's is its Auth Token; Sinch's, Infobip's and
/// Bird's are their own settings), for `POST /callbacks/{vendor}` to pick by
/// [`vendor`](receipt::ReceiptVerifier::vendor).
#[must_use]
pub fn more_receipt_verifiers(
    more: &crate::config::MoreVendors,
) -> Vec<Arc<dyn receipt::ReceiptVerifier>> {
    let mut out: Vec<Arc<dyn receipt::ReceiptVerifier>> = Vec::new();
    if let Some(p) = &more.plivo {
        out.push(Arc::new(PlivoReceipts::new(p.auth_token.clone())));
    }
    if let Some(secret) = more.sinch.as_ref().and_then(|s| s.webhook_secret.clone()) {
        out.push(Arc::new(SinchReceipts::new(secret)));
    }
    if let Some(token) = more.infobip.as_ref().and_then(|i| i.receipt_token.clone()) {
        out.push(Arc::new(InfobipReceipts::new(token)));
    }
    if let Some(b) = more
        .bird
        .as_ref()
        .and_then(|b| b.webhook_secret.as_ref())
        .and_then(BirdReceipts::new)
    {
        out.push(Arc::new(b));
    }
    out
}
