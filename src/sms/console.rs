//! The development sender: prints each message to stdout (logs go to stderr, so shipped logs
//! never carry a code) and keeps the latest ones in memory for `GET /dev/outbox`.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::ExposeSecret;

use super::{OutgoingMessage, SmsError, SmsSender};
use crate::clock::Clock;
use crate::domain::Timestamp;

/// How many messages the outbox keeps (oldest dropped first).
const OUTBOX_CAPACITY: usize = 1000;

/// A message as the dev outbox shows it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OutboxMessage {
    /// The number in E.164, or the email address.
    pub to: String,
    pub channel: String,
    /// The message; for an email, its text body.
    pub body: String,
    /// An email's subject line (absent for every other channel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub time: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub at: Timestamp,
}

/// The messages the console sender delivered, oldest first.
#[derive(Default)]
pub struct Outbox {
    messages: Mutex<VecDeque<OutboxMessage>>,
}

impl Outbox {
    /// A copy of the kept messages, oldest first.
    pub fn messages(&self) -> Vec<OutboxMessage> {
        self.messages
            .lock()
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn push(&self, message: OutboxMessage) {
        if let Ok(mut m) = self.messages.lock() {
            if m.len() == OUTBOX_CAPACITY {
                m.pop_front();
            }
            m.push_back(message);
        }
    }
}

/// Prints to stdout and records in the [`Outbox`].
pub struct ConsoleSender {
    outbox: Arc<Outbox>,
    clock: Arc<dyn Clock>,
}

impl ConsoleSender {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            outbox: Arc::new(Outbox::default()),
            clock,
        }
    }

    /// The outbox, for `GET /dev/outbox`.
    pub fn outbox(&self) -> Arc<Outbox> {
        Arc::clone(&self.outbox)
    }
}

#[async_trait]
impl SmsSender for ConsoleSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        let now = self.clock.now();
        let body = match &message.email {
            Some(email) => email.text.expose_secret(),
            None => message.body.expose_secret(),
        };
        {
            let mut out = std::io::stdout().lock();
            // stdout is the console "phone"; a closed stdout must not fail the send.
            let _ = writeln!(
                out,
                "[console sms] to {} via {}: {}",
                message.to.masked(),
                message.channel,
                body
            );
            let _ = out.flush();
        }
        self.outbox.push(OutboxMessage {
            to: message.to.as_str().to_owned(),
            subject: message.email.as_ref().map(|e| e.subject.clone()),
            channel: message.channel.as_str().to_owned(),
            body: body.to_owned(),
            time: now.to_rfc3339(),
            at: now,
        });
        Ok(())
    }

    fn name(&self) -> &'static str {
        "console"
    }
}
