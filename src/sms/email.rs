//! The `email` channel over SMTP (`VERIFYD_SMTP_URL`, `VERIFYD_EMAIL_FROM`), with lettre's
//! tokio transport (rustls for `smtps://` and STARTTLS). One message per code: the rendered
//! subject, and the text and HTML bodies as `multipart/alternative`. It sends to email addresses
//! only, and, like every sender, never retries: a timeout or a 4xx/5xx reply is a failure whose
//! outcome is reported (a fallback, if any, stays on email: none crosses to a number).

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::{OutgoingMessage, SmsError, SmsSender};
use crate::config::EmailSettings;
use crate::domain::Recipient;

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends code emails through one SMTP server.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpSender {
    /// # Errors
    /// [`SmsError::Setup`] when the URL or the sender is not one lettre accepts (the settings
    /// checked both already).
    pub fn new(settings: &EmailSettings) -> Result<Self, SmsError> {
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose_secret())
                .map_err(|e| SmsError::Setup(format!("VERIFYD_SMTP_URL: {e}")))?
                .timeout(Some(TIMEOUT))
                .build();
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|e| SmsError::Setup(format!("VERIFYD_EMAIL_FROM: {e}")))?;
        Ok(Self { transport, from })
    }

    fn message(&self, message: &OutgoingMessage) -> Result<Message, SmsError> {
        let Recipient::Email(address) = &message.to else {
            return Err(SmsError::Refused(
                "the email channel sends to email addresses only".to_owned(),
            ));
        };
        let parts = message
            .email
            .as_ref()
            .ok_or_else(|| SmsError::Failed("the email was not rendered".to_owned()))?;
        let to = address
            .as_str()
            .parse::<Mailbox>()
            .map_err(|e| SmsError::Refused(format!("the address is not a mailbox: {e}")))?;
        // A Message-ID in the sender's own domain (mail filters look for one).
        let id = format!(
            "<{}@{}>",
            hex::encode(rand::random::<[u8; 16]>()),
            self.from.email.domain()
        );
        Message::builder()
            .message_id(Some(id))
            .from(self.from.clone())
            .to(to)
            .subject(parts.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                parts.text.expose_secret().to_owned(),
                parts.html.expose_secret().to_owned(),
            ))
            .map_err(|e| SmsError::Failed(format!("the email cannot be built: {e}")))
    }
}

#[async_trait]
impl SmsSender for SmtpSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        let email = self.message(message)?;
        match self.transport.send(email).await {
            Ok(response) => {
                tracing::debug!(
                    to = %message.to.masked(),
                    smtp_status = response.code().to_string(),
                    "the SMTP server accepted the email"
                );
                Ok(())
            }
            // A permanent refusal (5xx) is the address's fault; anything else may be passing.
            Err(e) if e.is_permanent() => Err(SmsError::Refused(format!(
                "the SMTP server refused the email: {}",
                e.status()
                    .map_or_else(|| "5xx".to_owned(), |c| c.to_string())
            ))),
            Err(e) => Err(SmsError::Failed(format!(
                "SMTP delivery failed ({}; not retried)",
                if e.is_timeout() {
                    "timeout".to_owned()
                } else if let Some(code) = e.status() {
                    code.to_string()
                } else {
                    "connection".to_owned()
                }
            ))),
        }
    }

    fn name(&self) -> &'static str {
        "smtp"
    }
}
