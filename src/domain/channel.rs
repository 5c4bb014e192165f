//! Delivery channels, named as Twilio Verify names them. Parsing accepts only the exact
//! lowercase names; whether a channel may be used is the policy's decision, not this type's.

use std::fmt;
use std::str::FromStr;

/// A way to deliver a one-time code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Sms,
    Call,
    Whatsapp,
    Email,
    Sna,
}

/// The channel string is not one of Twilio Verify's channel names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel (expected one of sms, call, whatsapp, email, sna)")]
pub struct ChannelError;

impl Channel {
    /// Every channel, in documentation order.
    pub const ALL: [Channel; 5] = [
        Channel::Sms,
        Channel::Call,
        Channel::Whatsapp,
        Channel::Email,
        Channel::Sna,
    ];

    /// The wire name (`sms`, `call`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Call => "call",
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
            Channel::Sna => "sna",
        }
    }
}

impl FromStr for Channel {
    type Err = ChannelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(ChannelError)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_exact_names() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
        }
        for bad in ["SMS", " sms", "sms ", "", "voice", "telegram", "s\u{0}ms"] {
            assert_eq!(bad.parse::<Channel>(), Err(ChannelError), "{bad:?}");
        }
    }
}
