//! The channels beside SMS, over Twilio (email has its own sender, [`super::email`]): `whatsapp` (Twilio Programmable Messaging with
//! `whatsapp:` addresses, from the WhatsApp sender `TWILIO_WHATSAPP_FROM`) and `call` (Twilio
//! Programmable Voice: a call from `TWILIO_VOICE_FROM` whose TwiML says the message, the code digit
//! by digit, twice, in the message's language). [`ChannelRouter`] hands each message to the
//! sender of its channel, and every channel without one to the configured sender (the console
//! sender shows every channel; the webhook passes `channel` on; `twilio-messaging` carries SMS
//! only). Like every sender, none of them retries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{OutgoingMessage, SmsError, SmsSender};
use crate::domain::Channel;
use crate::twilio::{TwilioClient, TwilioError};

/// The part of Twilio's Message and Call resources we read.
#[derive(serde::Deserialize)]
struct Created {
    sid: Option<String>,
}

fn failed(what: &str, e: &TwilioError) -> SmsError {
    let hint = match e {
        TwilioError::Timeout(_) | TwilioError::Transport(_) => {
            " (it may still go out; not retried)"
        }
        _ => "",
    };
    SmsError::Failed(format!("{what}: {e}{hint}"))
}

fn client(
    base_url: &str,
    account_sid: &str,
    auth_token: &SecretString,
    timeout: Duration,
) -> Result<TwilioClient, SmsError> {
    TwilioClient::new(base_url, account_sid, auth_token.clone(), timeout)
        .map_err(|e| SmsError::Setup(e.to_string()))
}

/// WhatsApp through Twilio Programmable Messaging.
pub struct TwilioWhatsappSender {
    api: TwilioClient,
    /// `whatsapp:+E164` of the WhatsApp sender.
    from: String,
}

impl TwilioWhatsappSender {
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(
        base_url: &str,
        account_sid: &str,
        auth_token: &SecretString,
        from: &str,
        timeout: Duration,
    ) -> Result<Self, SmsError> {
        Ok(Self {
            api: client(base_url, account_sid, auth_token, timeout)?,
            from: format!("whatsapp:{from}"),
        })
    }
}

#[async_trait]
impl SmsSender for TwilioWhatsappSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        let to = format!("whatsapp:{}", message.phone()?.e164());
        let form = [
            ("To", to.as_str()),
            ("From", self.from.as_str()),
            ("Body", message.body.expose_secret()),
        ];
        let path = format!(
            "/2010-04-01/Accounts/{}/Messages.json",
            self.api.account_sid()
        );
        let created: Created = self
            .api
            .post_form(&path, &form)
            .await
            .map_err(|e| failed("Twilio WhatsApp", &e))?;
        tracing::debug!(
            to = %message.to.masked(),
            message_sid = created.sid.as_deref().unwrap_or("?"),
            "Twilio accepted the WhatsApp message"
        );
        Ok(())
    }

    fn name(&self) -> &'static str {
        "twilio-whatsapp"
    }
}

/// A voice call through Twilio Programmable Voice.
pub struct TwilioVoiceSender {
    api: TwilioClient,
    from: String,
}

impl TwilioVoiceSender {
    /// # Errors
    /// [`SmsError::Setup`] when the HTTP client cannot be built.
    pub fn new(
        base_url: &str,
        account_sid: &str,
        auth_token: &SecretString,
        from: &str,
        timeout: Duration,
    ) -> Result<Self, SmsError> {
        Ok(Self {
            api: client(base_url, account_sid, auth_token, timeout)?,
            from: from.to_owned(),
        })
    }
}

/// The call's TwiML: the message said twice in `language`, a pause between.
pub fn twiml(text: &str, language: &str) -> String {
    let say = format!(
        "<Say language=\"{}\">{}</Say>",
        crate::messages::escape_markup(language),
        crate::messages::escape_markup(text)
    );
    format!("<Response>{say}<Pause length=\"1\"/>{say}</Response>")
}

#[async_trait]
impl SmsSender for TwilioVoiceSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        let twiml = SecretString::from(twiml(
            message.body.expose_secret(),
            message.locale.wording().voice,
        ));
        let form = [
            ("To", message.phone()?.e164()),
            ("From", self.from.as_str()),
            ("Twiml", twiml.expose_secret()),
        ];
        let path = format!("/2010-04-01/Accounts/{}/Calls.json", self.api.account_sid());
        let created: Created = self
            .api
            .post_form(&path, &form)
            .await
            .map_err(|e| failed("Twilio Voice", &e))?;
        tracing::debug!(
            to = %message.to.masked(),
            call_sid = created.sid.as_deref().unwrap_or("?"),
            "Twilio accepted the call"
        );
        Ok(())
    }

    fn name(&self) -> &'static str {
        "twilio-voice"
    }
}

/// Each message to the sender of its channel; every other channel to the default sender.
pub struct ChannelRouter {
    default: Arc<dyn SmsSender>,
    whatsapp: Option<Arc<dyn SmsSender>>,
    call: Option<Arc<dyn SmsSender>>,
    email: Option<Arc<dyn SmsSender>>,
}

impl ChannelRouter {
    pub fn new(
        default: Arc<dyn SmsSender>,
        whatsapp: Option<Arc<dyn SmsSender>>,
        call: Option<Arc<dyn SmsSender>>,
    ) -> Self {
        Self {
            default,
            whatsapp,
            call,
            email: None,
        }
    }

    /// The same router, sending the `email` channel through `email`.
    #[must_use]
    pub fn with_email(mut self, email: Arc<dyn SmsSender>) -> Self {
        self.email = Some(email);
        self
    }

    fn sender(&self, channel: Channel) -> &dyn SmsSender {
        let specific = match channel {
            Channel::Whatsapp => self.whatsapp.as_deref(),
            Channel::Call => self.call.as_deref(),
            Channel::Email => self.email.as_deref(),
            _ => None,
        };
        specific.unwrap_or(self.default.as_ref())
    }
}

#[async_trait]
impl SmsSender for ChannelRouter {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        self.sender(message.channel).send(message).await
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<super::Delivery, SmsError> {
        self.sender(message.channel).deliver(message).await
    }

    fn name(&self) -> &'static str {
        self.default.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_says_the_text_twice_escaped_in_the_language() {
        assert_eq!(
            twiml("Code <1> & \"2\"", "en-US"),
            "<Response><Say language=\"en-US\">Code &lt;1&gt; &amp; &quot;2&quot;</Say>\
             <Pause length=\"1\"/><Say language=\"en-US\">Code &lt;1&gt; &amp; &quot;2&quot;</Say>\
             </Response>"
        );
    }
}
