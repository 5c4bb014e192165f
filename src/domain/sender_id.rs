//! Who an SMS says it is from, per destination country (`VERIFYD_SMS_FROM`,
//! `US=+14155550100,GB=Acme,*=+14155550100`): some countries require an alphanumeric sender ID
//! (the brand, no reply possible), others forbid it and need a number. A [`SenderId`] is either
//! a valid number in E.164 or an alphanumeric ID by the GSM rule vendors apply: 1 to 11
//! characters of ASCII letters, digits and spaces, at least one letter (an all-digit ID would be
//! read as a number), no space first or last. [`SenderIds`] picks the one for a destination:
//! its country's entry, else `*`, else none (the vendor's own `…_FROM` setting).

use std::collections::BTreeMap;
use std::fmt;

use super::{PhoneNumber, Region};

/// Longest alphanumeric sender ID (GSM 03.40's 11 characters in the originating address).
const MAX_ALPHANUMERIC: usize = 11;

/// An SMS originator.
#[derive(Clone, PartialEq, Eq)]
pub enum SenderId {
    /// A number in E.164.
    Number(String),
    /// An alphanumeric sender ID.
    Alphanumeric(String),
}

/// Why a string is not a sender ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderIdError {
    #[error("`{0}` is not a valid phone number in E.164")]
    Number(String),
    #[error(
        "`{0}` is not an alphanumeric sender ID (1 to 11 letters, digits or spaces, at least one letter, no space at either end)"
    )]
    Alphanumeric(String),
}

impl SenderId {
    /// A number when it starts with `+`, else an alphanumeric ID.
    ///
    /// # Errors
    /// [`SenderIdError`] naming the rule broken.
    pub fn parse(text: &str) -> Result<Self, SenderIdError> {
        if text.starts_with('+') {
            return PhoneNumber::parse(text)
                .map(|p| Self::Number(p.e164().to_owned()))
                .map_err(|_| SenderIdError::Number(text.to_owned()));
        }
        let ok = (1..=MAX_ALPHANUMERIC).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
            && text.bytes().any(|b| b.is_ascii_alphabetic())
            && !text.starts_with(' ')
            && !text.ends_with(' ');
        if ok {
            Ok(Self::Alphanumeric(text.to_owned()))
        } else {
            Err(SenderIdError::Alphanumeric(text.to_owned()))
        }
    }

    /// `+14155550100` or `Acme`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Number(n) | Self::Alphanumeric(n) => n,
        }
    }
}

impl fmt::Debug for SenderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sender ID per destination country, and for every other (`*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderIds {
    by_region: BTreeMap<Region, SenderId>,
    default: Option<SenderId>,
}

impl SenderIds {
    /// `CC=sender` entries separated by commas (`*` for every other country); empty: none.
    ///
    /// # Errors
    /// A sentence naming the first bad entry (unknown country, repeated country, bad sender).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (country, sender) = entry
                .split_once('=')
                .ok_or_else(|| format!("`{entry}` is not COUNTRY=sender"))?;
            let sender = SenderId::parse(sender.trim()).map_err(|e| e.to_string())?;
            match country.trim() {
                "*" if out.default.is_some() => return Err("`*` is listed twice".to_owned()),
                "*" => out.default = Some(sender),
                cc => {
                    let region = cc.parse::<Region>().map_err(|_| {
                        format!("`{cc}` is not a country code (two letters, e.g. US, GB)")
                    })?;
                    if out.by_region.insert(region, sender).is_some() {
                        return Err(format!("{region} is listed twice"));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether no entry is set.
    pub fn is_empty(&self) -> bool {
        self.by_region.is_empty() && self.default.is_none()
    }

    /// The sender for a message to `to`: its country's, else `*`'s, else none.
    pub fn for_destination(&self, to: &PhoneNumber) -> Option<&SenderId> {
        to.region()
            .and_then(|r| self.by_region.get(&r))
            .or(self.default.as_ref())
    }

    /// The sender for `to` as text: its country's (or `*`'s), else `own` (the vendor's own
    /// `…_FROM`).
    pub fn for_destination_or<'a>(&'a self, to: &PhoneNumber, own: &'a str) -> &'a str {
        self.for_destination(to).map_or(own, SenderId::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_ids_are_numbers_or_gsm_alphanumerics() {
        assert_eq!(
            SenderId::parse("+1 415 555 2671"),
            Ok(SenderId::Number("+14155552671".to_owned()))
        );
        for ok in ["Acme", "A", "Acme Bank 1", "ACME2FA", "x1"] {
            assert_eq!(
                SenderId::parse(ok),
                Ok(SenderId::Alphanumeric(ok.to_owned())),
                "{ok}"
            );
        }
        for bad in [
            "",
            "Acme Bank 12",
            "12345",
            " Acme",
            "Acme ",
            "Acme-Bank",
            "Äcme",
            "Acme_1",
            "+12",
            "+1415555267a",
        ] {
            assert!(SenderId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_destinations_country_then_star_then_none() {
        let ids = SenderIds::parse("US=+14155550100, GB=Acme, *=Acme Intl").unwrap();
        let us = PhoneNumber::parse("+14155552671").unwrap();
        let gb = PhoneNumber::parse("+447400123456").unwrap();
        let de = PhoneNumber::parse("+4915123456789").unwrap();
        assert_eq!(ids.for_destination(&us).unwrap().as_str(), "+14155550100");
        assert_eq!(ids.for_destination(&gb).unwrap().as_str(), "Acme");
        assert_eq!(ids.for_destination(&de).unwrap().as_str(), "Acme Intl");
        let no_star = SenderIds::parse("GB=Acme").unwrap();
        assert_eq!(no_star.for_destination(&de), None);
        assert!(SenderIds::parse("").unwrap().is_empty());
        for bad in [
            "US",
            "XX=Acme",
            "USA=Acme",
            "US=Acme,US=Other",
            "*=A,*=B",
            "GB=Way Too Long Name",
            "US=+1",
        ] {
            assert!(SenderIds::parse(bad).is_err(), "{bad}");
        }
    }
}
