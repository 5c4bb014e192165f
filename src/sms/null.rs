//! The `null` sender: accepts every message and delivers none. For benchmarks (so a load test
//! measures verifyd, not a terminal) and as the unused sender of the test-number engine in
//! `twilio-verify` mode. Never a production choice.

use async_trait::async_trait;

use super::{OutgoingMessage, SmsError, SmsSender};

/// Discards every message.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSender;

#[async_trait]
impl SmsSender for NullSender {
    async fn send(&self, _message: &OutgoingMessage) -> Result<(), SmsError> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "null"
    }
}
