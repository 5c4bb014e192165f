//! Phone numbers in E.164, parsed once with libphonenumber's metadata (the `phonenumber` crate):
//! the region (ISO 3166 alpha-2) and the number type come from the metadata, never from a string
//! prefix, so `+1 416 …` is Canada and `+1 900 …` is premium rate.

use std::fmt;
use std::str::FromStr;

use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, Type};

/// Longest input we even try to parse; anything longer is not a phone number.
const MAX_INPUT_CHARS: usize = 32;
/// E.164 allows at most 15 digits, country code included.
const MAX_DIGITS: usize = 15;

/// Why a recipient is not a usable phone number. Messages never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("the phone number is empty")]
    Empty,
    #[error(
        "the phone number must be in international format, starting with + and the country code"
    )]
    NotInternational,
    #[error(
        "the phone number may contain only digits, spaces, dashes, dots and parentheses after the leading +"
    )]
    InvalidCharacters,
    #[error("the phone number has more than 15 digits")]
    TooLong,
    #[error("the phone number is not a valid number in any numbering plan")]
    Invalid,
}

/// An ISO 3166-1 alpha-2 region code that libphonenumber knows (`US`, `CA`, `GB`, ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region([u8; 2]);

/// The region string is not a two-letter code known to libphonenumber's metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ISO 3166-1 alpha-2 region code known to libphonenumber")]
pub struct RegionError;

impl Region {
    /// The two uppercase letters.
    pub fn as_str(&self) -> &str {
        // Constructed only from two ASCII uppercase letters.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl FromStr for Region {
    type Err = RegionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let bytes: [u8; 2] = upper.as_bytes().try_into().map_err(|_| RegionError)?;
        if !bytes.iter().all(u8::is_ascii_uppercase) || DATABASE.by_id(&upper).is_none() {
            return Err(RegionError);
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

/// What kind of line a number is, as libphonenumber classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumberType {
    FixedLine,
    Mobile,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    PersonalNumber,
    Voip,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

/// The string is not one of the `NumberType` names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown number type")]
pub struct NumberTypeError;

impl NumberType {
    /// Every type, in documentation order.
    pub const ALL: [NumberType; 12] = [
        NumberType::FixedLine,
        NumberType::Mobile,
        NumberType::FixedLineOrMobile,
        NumberType::TollFree,
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::PersonalNumber,
        NumberType::Voip,
        NumberType::Pager,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::Unknown,
    ];

    /// The snake_case name used in settings (`premium_rate`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            NumberType::FixedLine => "fixed_line",
            NumberType::Mobile => "mobile",
            NumberType::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberType::TollFree => "toll_free",
            NumberType::PremiumRate => "premium_rate",
            NumberType::SharedCost => "shared_cost",
            NumberType::PersonalNumber => "personal_number",
            NumberType::Voip => "voip",
            NumberType::Pager => "pager",
            NumberType::Uan => "uan",
            NumberType::Voicemail => "voicemail",
            NumberType::Unknown => "unknown",
        }
    }

    fn from_metadata(t: Type) -> Self {
        match t {
            Type::FixedLine => NumberType::FixedLine,
            Type::Mobile => NumberType::Mobile,
            Type::FixedLineOrMobile => NumberType::FixedLineOrMobile,
            Type::TollFree => NumberType::TollFree,
            Type::PremiumRate => NumberType::PremiumRate,
            Type::SharedCost => NumberType::SharedCost,
            Type::PersonalNumber => NumberType::PersonalNumber,
            Type::Voip => NumberType::Voip,
            Type::Pager => NumberType::Pager,
            Type::Uan => NumberType::Uan,
            Type::Voicemail => NumberType::Voicemail,
            // Emergency numbers, short codes and the other service categories cannot receive a
            // verification SMS; treat them like numbers that fit no known pattern.
            _ => NumberType::Unknown,
        }
    }
}

impl FromStr for NumberType {
    type Err = NumberTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NumberType::ALL
            .into_iter()
            .find(|t| t.as_str() == s.trim())
            .ok_or(NumberTypeError)
    }
}

/// A valid phone number in E.164 form with the region and type its metadata gives it.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    region: Option<Region>,
    number_type: NumberType,
}

impl PhoneNumber {
    /// Parses an international number (`+` and country code first). Separators (space, `-`,
    /// `.`, parentheses) are allowed; letters, extensions, a second `+`, non-ASCII digits and
    /// more than 15 digits are not.
    ///
    /// # Errors
    /// [`PhoneNumberError`] naming the first rule the input breaks.
    pub fn parse(input: &str) -> Result<Self, PhoneNumberError> {
        let input = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if input.is_empty() {
            return Err(PhoneNumberError::Empty);
        }
        if input.chars().count() > MAX_INPUT_CHARS {
            return Err(PhoneNumberError::TooLong);
        }
        let Some(rest) = input.strip_prefix('+') else {
            return Err(PhoneNumberError::NotInternational);
        };
        let mut digits = 0usize;
        for b in rest.bytes() {
            match b {
                b'0'..=b'9' => digits += 1,
                b' ' | b'-' | b'.' | b'(' | b')' => {}
                _ => return Err(PhoneNumberError::InvalidCharacters),
            }
        }
        if digits > MAX_DIGITS {
            return Err(PhoneNumberError::TooLong);
        }
        let parsed = phonenumber::parse(None, input).map_err(|_| PhoneNumberError::Invalid)?;
        if parsed.extension().is_some() {
            return Err(PhoneNumberError::InvalidCharacters);
        }
        // libphonenumber calls a number valid when its metadata gives it a known type, so one
        // typing pass both validates and classifies.
        let metadata = parsed
            .metadata(&DATABASE)
            .ok_or(PhoneNumberError::Invalid)?;
        let number_type = match parsed.number_type(&DATABASE) {
            Type::Unknown => return Err(PhoneNumberError::Invalid),
            t => NumberType::from_metadata(t),
        };
        let region = metadata.id().parse::<Region>().ok();
        let e164 = parsed.format().mode(Mode::E164).to_string();
        Ok(Self {
            e164,
            region,
            number_type,
        })
    }

    /// The number in E.164 (`+14155552671`).
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The region the number belongs to; `None` for non-geographic numbers (`+800`, `+882`...).
    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// The line type from libphonenumber's metadata.
    pub fn number_type(&self) -> NumberType {
        self.number_type
    }

    /// The number for logs: country code and area kept, the middle hidden, last four kept
    /// (`+1415***2671`); shorter numbers keep less.
    pub fn masked(&self) -> String {
        let digits = &self.e164[1..];
        let (head, tail) = if digits.len() >= 10 { (4, 4) } else { (2, 2) };
        format!("+{}***{}", &digits[..head], &digits[digits.len() - tail..])
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs: never the full number.
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// Warms libphonenumber's lazily loaded metadata (about 90 ms on first use) so that the first
/// request does not pay for it.
pub fn warm_metadata() {
    let _ = PhoneNumber::parse("+14155552671");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_malformed_input_with_the_right_reason() {
        use PhoneNumberError::*;
        let cases = [
            ("", Empty),
            ("   ", Empty),
            ("4155552671", NotInternational),
            ("001 415 555 2671", NotInternational),
            ("++14155552671", InvalidCharacters),
            ("+1415555267a", InvalidCharacters),
            ("+1-800-FLOWERS", InvalidCharacters),
            ("+1 415 555 2671 ext. 12", InvalidCharacters),
            ("+1 415 555 2671;ext=12", InvalidCharacters),
            ("+١٤١٥٥٥٥٢٦٧١", InvalidCharacters),
            ("+1234567890123456", TooLong),
            ("+1 415 555 2671 0000 0000 0000 0000 0000", TooLong),
            ("+1", Invalid),
            ("+999 1234567", Invalid),
            ("+1 555 555 5555", Invalid),
        ];
        for (input, want) in cases {
            assert_eq!(
                PhoneNumber::parse(input).err(),
                Some(want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn region_comes_from_metadata_not_from_the_prefix() {
        let cases = [
            ("+14155552671", "US"),
            ("+14165550123", "CA"),
            ("+18765550123", "JM"),
            ("+17875550123", "PR"),
            ("+447911123456", "GG"),
            ("+447400123456", "GB"),
            ("+33612345678", "FR"),
        ];
        for (input, region) in cases {
            let phone = PhoneNumber::parse(input).unwrap();
            assert_eq!(
                phone.region().map(|r| r.to_string()).as_deref(),
                Some(region),
                "{input}"
            );
        }
    }

    #[test]
    fn number_types_follow_libphonenumber() {
        let cases = [
            ("+14155552671", NumberType::FixedLineOrMobile),
            ("+19005550100", NumberType::PremiumRate),
            ("+18005550100", NumberType::TollFree),
            ("+448712345678", NumberType::PremiumRate),
            ("+443001234567", NumberType::Uan),
            ("+447400123456", NumberType::Mobile),
            ("+442079460000", NumberType::FixedLine),
        ];
        for (input, want) in cases {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().number_type(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn normalises_separators_to_e164() {
        let phone = PhoneNumber::parse(" +1 (415) 555-2671 ").unwrap();
        assert_eq!(phone.e164(), "+14155552671");
        assert_eq!(phone.masked(), "+1415***2671");
        assert!(!format!("{phone:?}").contains("4155552671"));
    }

    #[test]
    fn region_codes_parse_case_insensitively_and_only_known_ones() {
        assert_eq!("us".parse::<Region>().unwrap().as_str(), "US");
        for bad in ["USA", "U", "ZZ", "1A", ""] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
    }

    proptest! {
        // Any NANP number with a valid area code and exchange (2-9 leading digits, not N11,
        // not 555-01xx fiction) is accepted and comes back as the same E.164 string.
        #[test]
        fn valid_us_numbers_round_trip(
            area in prop::sample::select(vec![201u16, 212, 305, 415, 512, 617, 646, 702, 808, 917]),
            exchange in 200u16..999,
            line in 0u16..10_000,
        ) {
            prop_assume!(exchange % 100 != 11);
            let e164 = format!("+1{area}{exchange}{line:04}");
            let phone = PhoneNumber::parse(&e164).unwrap();
            prop_assert_eq!(phone.e164(), e164.as_str());
            prop_assert!(phone.region().is_some());
        }
    }
}
