//! Delivering a code's message. Senders never choose or see anything but the message they are
//! handed; the engine decides what to send.

pub mod console;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::domain::{Channel, PhoneNumber, VerificationSid};

pub use console::{ConsoleSender, Outbox, OutboxMessage};

/// One message to deliver. The body contains the code, so it is a secret.
pub struct OutgoingMessage {
    pub to: PhoneNumber,
    pub channel: Channel,
    pub body: SecretString,
    pub code_length: usize,
    pub verification_sid: VerificationSid,
}

/// The sender failed; the message may or may not have gone out.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("the SMS sender failed: {0}")]
    Failed(String),
}

/// A way to deliver messages.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Delivers `message`.
    ///
    /// # Errors
    /// [`SmsError`] when delivery failed or its outcome is unknown.
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError>;

    /// `console`, `twilio-messaging`, `webhook`: for logs and metrics.
    fn name(&self) -> &'static str;
}

/// The text of a verification message: the code is the only run of digits in it.
pub fn message_body(code: &str) -> SecretString {
    SecretString::from(format!("Your verification code is: {code}"))
}
