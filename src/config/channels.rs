//! The channels beside SMS and the fallback between channels: the WhatsApp sender
//! (`TWILIO_WHATSAPP_FROM`) and the caller number (`TWILIO_VOICE_FROM`), both used with the
//! account of `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN`, and `VERIFYD_CHANNEL_FALLBACK`, whose
//! channels must all be enabled in `VERIFYD_CHANNELS`.

use std::collections::BTreeSet;
use std::fmt;

use secrecy::SecretString;

use super::limits::LimitDraft;
use super::parse::list;
use super::settings::{ENV_CHANNEL_FALLBACK, ENV_TWILIO_VOICE_FROM, ENV_TWILIO_WHATSAPP_FROM};
use super::source::Reader;
use super::twilio::TwilioDraft;
use crate::domain::{Channel, PhoneNumber};

component! {
    /// The channel settings.
    #[derive(Clone, Debug)]
    pub struct ChannelSettings / ChannelDraft {
        /// WhatsApp through Twilio Messaging, from this WhatsApp sender (E.164).
        pub whatsapp_from: Option<String>,
        /// Calls through Twilio Voice, from this number (E.164).
        pub voice_from: Option<String>,
        /// The Twilio account both use (set when either is).
        pub twilio: Option<TwilioAccount>,
        /// The order in which a failed delivery moves to the next channel (empty: none).
        pub fallback: Vec<Channel>,
    }
}

/// A Twilio account's credentials.
#[derive(Clone)]
pub struct TwilioAccount {
    pub account_sid: String,
    pub auth_token: SecretString,
}

impl fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .finish()
    }
}

fn number(t: &str) -> Result<Option<String>, String> {
    if t.is_empty() {
        return Ok(None);
    }
    PhoneNumber::parse(t)
        .map(|p| Some(p.e164().to_owned()))
        .map_err(|_| "expected a number in E.164, e.g. +14155238886".to_owned())
}

/// Reads the channel settings (after the Twilio credentials and the channel allowlist).
pub(super) fn read(r: &mut Reader<'_>, twilio: &TwilioDraft, limits: &LimitDraft) -> ChannelDraft {
    let whatsapp_from = r.parse(ENV_TWILIO_WHATSAPP_FROM, number);
    let voice_from = r.parse(ENV_TWILIO_VOICE_FROM, number);
    let wanted = matches!(whatsapp_from, Some(Some(_))) || matches!(voice_from, Some(Some(_)));
    let account = match (&twilio.account_sid, &twilio.auth_token) {
        (Some(sid), Some(token)) => Some(TwilioAccount {
            account_sid: sid.clone(),
            auth_token: SecretString::from(token.clone()),
        }),
        _ => None,
    };
    let twilio_account = match (wanted, account) {
        (true, None) => {
            r.unset_problem(
                "TWILIO_ACCOUNT_SID",
                "TWILIO_WHATSAPP_FROM and TWILIO_VOICE_FROM need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
            );
            None
        }
        (true, account) => Some(account),
        (false, _) => Some(None),
    };
    let enabled: Option<&BTreeSet<Channel>> = limits.channels.as_ref();
    let fallback = r.parse(ENV_CHANNEL_FALLBACK, |t| {
        let channels = list(t)
            .map(|item| {
                item.parse::<Channel>()
                    .map_err(|_| format!("`{item}` is not a channel"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if channels.len() == 1 {
            return Err("a fallback needs at least two channels, e.g. `whatsapp,sms`".to_owned());
        }
        for (i, c) in channels.iter().enumerate() {
            if channels[..i].contains(c) {
                return Err(format!("{c} is listed twice"));
            }
            if enabled.is_some_and(|e| !e.contains(c)) {
                return Err(format!("{c} is not enabled in VERIFYD_CHANNELS"));
            }
        }
        Ok(channels)
    });
    ChannelDraft {
        whatsapp_from,
        voice_from,
        twilio: twilio_account,
        fallback,
    }
}
