//! Who a code goes to: a phone number (`sms`, `whatsapp`, `call`) or an email address (`email`).
//! [`Recipient::for_channel`] is the only way a face turns a request's `recipient` / `To` into
//! one, so an email address never reaches a phone channel and a number never reaches email.
//! Stored like a number always was: the keyed digest of [`Recipient::key`] for lookup and the
//! AEAD ciphertext of [`Recipient::as_str`], read back with [`Recipient::parse_stored`].

use std::fmt;

use super::{Channel, EmailAddress, EmailError, PhoneNumber, PhoneNumberError, Region};

/// A destination of one-time codes.
#[derive(Clone, PartialEq, Eq)]
pub enum Recipient {
    Phone(PhoneNumber),
    Email(EmailAddress),
}

/// Why a string is not a recipient for the channel asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    #[error(transparent)]
    Phone(#[from] PhoneNumberError),
    #[error(transparent)]
    Email(#[from] EmailError),
    /// An email address (it has an `@`) for `sms`, `whatsapp` or `call`.
    #[error("an email address was given for a phone channel")]
    EmailForPhoneChannel,
    /// Something without an `@` (a number, most likely) for `email`.
    #[error("the email channel needs an email address")]
    NotEmailForEmailChannel,
}

impl Recipient {
    /// `input` as the recipient of `channel`: an email address for `email` (anything without an
    /// `@` is [`RecipientError::NotEmailForEmailChannel`]), a phone number for every other
    /// channel (anything with an `@` is [`RecipientError::EmailForPhoneChannel`]).
    ///
    /// # Errors
    /// [`RecipientError`] naming the first rule the input breaks.
    pub fn for_channel(input: &str, channel: Channel) -> Result<Self, RecipientError> {
        let has_at = input.contains('@');
        match channel {
            Channel::Email if !has_at => Err(RecipientError::NotEmailForEmailChannel),
            Channel::Email => Ok(Self::Email(EmailAddress::parse(input)?)),
            _ if has_at => Err(RecipientError::EmailForPhoneChannel),
            _ => Ok(Self::Phone(PhoneNumber::parse(input)?)),
        }
    }

    /// `input` where no channel is named (a check): an email address when it has an `@`, else
    /// a phone number.
    ///
    /// # Errors
    /// [`RecipientError::Phone`] or [`RecipientError::Email`].
    pub fn parse(input: &str) -> Result<Self, RecipientError> {
        if input.contains('@') {
            Ok(Self::Email(EmailAddress::parse(input)?))
        } else {
            Ok(Self::Phone(PhoneNumber::parse(input)?))
        }
    }

    /// A stored recipient ([`as_str`](Self::as_str) as it was sealed).
    pub fn parse_stored(stored: &str) -> Option<Self> {
        Self::parse(stored).ok()
    }

    /// E.164 for a number, the address for an email: what is sealed and digested.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Phone(p) => p.e164(),
            Self::Email(e) => e.as_str(),
        }
    }

    /// What lookup digests and per-recipient limits know it by (E.164, or the address
    /// lowercased whole).
    pub fn key(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Phone(p) => p.e164().into(),
            Self::Email(e) => e.key().into(),
        }
    }

    /// For logs and pages: `+1415***2671`, `j***@e***.com`.
    pub fn masked(&self) -> String {
        match self {
            Self::Phone(p) => p.masked(),
            Self::Email(e) => e.masked(),
        }
    }

    /// The phone number, when it is one.
    pub fn phone(&self) -> Option<&PhoneNumber> {
        match self {
            Self::Phone(p) => Some(p),
            Self::Email(_) => None,
        }
    }

    /// The email address, when it is one.
    pub fn email(&self) -> Option<&EmailAddress> {
        match self {
            Self::Email(e) => Some(e),
            Self::Phone(_) => None,
        }
    }

    /// The number's region (`None` for an email address or a non-geographic number).
    pub fn region(&self) -> Option<Region> {
        self.phone().and_then(PhoneNumber::region)
    }

    /// Whether a code for this recipient may go out on `channel` (email only to an address,
    /// every other channel only to a number): a fallback never crosses between them.
    pub fn suits(&self, channel: Channel) -> bool {
        matches!(
            (self, channel),
            (Self::Email(_), Channel::Email)
                | (
                    Self::Phone(_),
                    Channel::Sms | Channel::Whatsapp | Channel::Call | Channel::Sna
                )
        )
    }
}

impl From<PhoneNumber> for Recipient {
    fn from(p: PhoneNumber) -> Self {
        Self::Phone(p)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Phone(p) => p.fmt(f),
            Self::Email(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_decides_which_kind_is_accepted() {
        let cases: &[(&str, Channel, Result<&str, RecipientError>)] = &[
            ("+14155552671", Channel::Sms, Ok("+14155552671")),
            ("+14155552671", Channel::Whatsapp, Ok("+14155552671")),
            ("+14155552671", Channel::Call, Ok("+14155552671")),
            (
                "+14155552671",
                Channel::Email,
                Err(RecipientError::NotEmailForEmailChannel),
            ),
            (
                "ann",
                Channel::Email,
                Err(RecipientError::NotEmailForEmailChannel),
            ),
            ("Ann@Example.org", Channel::Email, Ok("Ann@example.org")),
            (
                "ann@example.org",
                Channel::Sms,
                Err(RecipientError::EmailForPhoneChannel),
            ),
            (
                "ann@example.org",
                Channel::Whatsapp,
                Err(RecipientError::EmailForPhoneChannel),
            ),
            (
                "ann@example.org",
                Channel::Call,
                Err(RecipientError::EmailForPhoneChannel),
            ),
            (
                "ann@@example.org",
                Channel::Email,
                Err(RecipientError::Email(EmailError::NotAnAddress)),
            ),
            (
                "12",
                Channel::Sms,
                Err(RecipientError::Phone(PhoneNumberError::NotInternational)),
            ),
        ];
        for (input, channel, want) in cases {
            let got = Recipient::for_channel(input, *channel);
            assert_eq!(
                got.as_ref().map(Recipient::as_str).map_err(Clone::clone),
                want.clone(),
                "{input:?} on {channel}"
            );
            if let Ok(r) = got {
                assert!(r.suits(*channel), "{input:?} suits {channel}");
            }
        }
    }

    #[test]
    fn stored_form_round_trips_and_nothing_crosses_kinds() {
        for s in ["+14155552671", "ann@example.org"] {
            let r = Recipient::parse_stored(s).unwrap();
            assert_eq!(r.as_str(), s);
        }
        let email = Recipient::parse("ann@example.org").unwrap();
        let phone = Recipient::parse("+14155552671").unwrap();
        assert!(!email.suits(Channel::Sms) && !email.suits(Channel::Whatsapp));
        assert!(!phone.suits(Channel::Email));
        assert_eq!(email.masked(), "a***@e***.org");
        assert_eq!(format!("{email:?}"), "EmailAddress(a***@e***.org)");
        assert_eq!(email.region(), None);
    }
}
