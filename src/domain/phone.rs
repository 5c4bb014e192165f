//! Phone numbers in E.164, parsed once with libphonenumber's metadata (the `phonenumber` crate):
//! the region (ISO 3166 alpha-2) and the number type come from the metadata, never from a string
//! prefix, so `+1 416 …` is Canada and `+1 900 …` is premium rate.
//!
//! The crate parses; the region and line type are then decided here, by the crate's own rules
//! over the same metadata patterns, but with each region's patterns compiled once into
//! [`regex::Regex`]es kept for the process ([`classify`]). The crate's `metadata()` and
//! `number_type()` look every pattern up by its full text in one global, mutex-guarded LRU
//! cache on every use, which cost about two thirds of a parse (BENCHMARKS.md). A test checks
//! that both ways agree on every region's example numbers and on random numbers of every
//! calling code.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, RwLock};

use phonenumber::Type;
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};

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
        let parsed =
            phonenumber::parse(region_hint(rest), input).map_err(|_| PhoneNumberError::Invalid)?;
        if parsed.extension().is_some() {
            return Err(PhoneNumberError::InvalidCharacters);
        }
        // libphonenumber calls a number valid when its metadata gives it a known type, so one
        // typing pass both validates and classifies.
        let national = parsed.national().value().to_string();
        let (metadata, kind) = match classify(parsed.code().value(), &national) {
            Classified::Known(metadata, kind) => (metadata, kind),
            Classified::NoRegion => return Err(PhoneNumberError::Invalid),
            // A pattern our regex builder refused (none does today): the crate's slower way.
            Classified::Uncompiled => (
                parsed
                    .metadata(&DATABASE)
                    .ok_or(PhoneNumberError::Invalid)?,
                parsed.number_type(&DATABASE),
            ),
        };
        let number_type = match kind {
            Type::Unknown => return Err(PhoneNumberError::Invalid),
            t => NumberType::from_metadata(t),
        };
        let region = metadata.id().parse::<Region>().ok();
        // E.164 is `+`, the calling code and the national significant number (with its leading
        // zeros), exactly what the crate's E164 formatter prints.
        let e164 = format!("+{}{}", parsed.code().value(), parsed.national());
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

/// The region the `phonenumber` crate would pick for `+digits` (`rest` is what follows the
/// `+`, separators allowed), found with the compiled patterns of [`classify`]. Given to the
/// crate's parser, it spares the crate its own region search (`source_for`), which looks every
/// pattern of every candidate region up by its full text in its regex cache: for `+1`, up to 25
/// regions. `None` (the crate searches itself) for calling codes without a single region
/// (`+800` …) and whenever no region claims the number. A test checks that the hint never
/// changes what the crate parses.
fn region_hint(rest: &str) -> Option<phonenumber::country::Id> {
    let mut buf = [0u8; MAX_DIGITS];
    let mut len = 0;
    for b in rest.bytes().filter(u8::is_ascii_digit) {
        *buf.get_mut(len)? = b;
        len += 1;
    }
    let digits = std::str::from_utf8(&buf[..len]).ok()?;
    // The crate's rule: the calling code is the shortest prefix (1 to 3 digits, no leading 0)
    // that the metadata knows.
    if digits.starts_with('0') {
        return None;
    }
    let (code, national) = (1..=3).find_map(|n| {
        let code = digits.get(..n)?.parse::<u16>().ok()?;
        DATABASE.by_code(&code).map(|_| (code, &digits[n..]))
    })?;
    match classify(code, national.trim_start_matches('0')) {
        Classified::Known(metadata, _) => metadata.id().parse().ok(),
        Classified::NoRegion | Classified::Uncompiled => None,
    }
}

/// Warms libphonenumber's lazily loaded metadata (about 90 ms on first use) and the compiled
/// patterns of the US so that the first request does not pay for them.
pub fn warm_metadata() {
    let _ = PhoneNumber::parse("+14155552671");
}

/// One number-type descriptor: its possible lengths, and its national-number pattern, which
/// must match from the first digit on (the `phonenumber` crate's rule: a match starting at 0).
struct Pattern {
    source: String,
    lengths: Vec<u16>,
    regex: Regex,
}

impl Pattern {
    fn compile(descriptor: &Descriptor) -> Option<Self> {
        let source = descriptor.national_number().as_str();
        // The crate compiles metadata patterns with whitespace ignored; anchoring at the start
        // answers "is there a match starting at 0" without scanning the rest of the number.
        let regex = RegexBuilder::new(&format!("^(?:{source})"))
            .ignore_whitespace(true)
            .build()
            .ok()?;
        Some(Self {
            source: source.to_owned(),
            lengths: descriptor.possible_length().to_vec(),
            regex,
        })
    }

    fn matches(&self, national: &str) -> bool {
        let len = u16::try_from(national.len()).unwrap_or(u16::MAX);
        (self.lengths.is_empty() || self.lengths.contains(&len)) && self.regex.is_match(national)
    }
}

fn optional(descriptor: Option<&Descriptor>) -> Result<Option<Pattern>, ()> {
    descriptor
        .map(|d| Pattern::compile(d).ok_or(()))
        .transpose()
}

fn matches(pattern: Option<&Pattern>, national: &str) -> bool {
    pattern.is_some_and(|p| p.matches(national))
}

/// A region's compiled patterns.
struct Rules {
    leading_digits: Option<Regex>,
    general: Pattern,
    /// Premium rate, toll free, shared cost, VoIP, personal number, pager, UAN, voicemail: the
    /// order in which they are tried.
    special: Vec<(Type, Pattern)>,
    fixed_line: Option<Pattern>,
    mobile: Option<Pattern>,
}

impl Rules {
    fn compile(metadata: &Metadata) -> Result<Self, ()> {
        let d = metadata.descriptors();
        let leading_digits = match metadata.leading_digits() {
            None => None,
            Some(p) => Some(
                RegexBuilder::new(&format!("^(?:{})", p.as_str()))
                    .ignore_whitespace(true)
                    .build()
                    .map_err(|_| ())?,
            ),
        };
        let mut special = Vec::new();
        for (kind, descriptor) in [
            (Type::PremiumRate, d.premium_rate()),
            (Type::TollFree, d.toll_free()),
            (Type::SharedCost, d.shared_cost()),
            (Type::Voip, d.voip()),
            (Type::PersonalNumber, d.personal_number()),
            (Type::Pager, d.pager()),
            (Type::Uan, d.uan()),
            (Type::Voicemail, d.voicemail()),
        ] {
            if let Some(pattern) = optional(descriptor)? {
                special.push((kind, pattern));
            }
        }
        Ok(Self {
            leading_digits,
            general: Pattern::compile(d.general()).ok_or(())?,
            special,
            fixed_line: optional(d.fixed_line())?,
            mobile: optional(d.mobile())?,
        })
    }

    /// libphonenumber's number-type rules, in its order: outside the general pattern nothing;
    /// then the special types; then fixed line, mobile or both (the US uses one pattern for
    /// both, so its numbers are `FixedLineOrMobile`).
    fn number_type(&self, national: &str) -> Type {
        if !self.general.matches(national) {
            return Type::Unknown;
        }
        if let Some((kind, _)) = self.special.iter().find(|(_, p)| p.matches(national)) {
            return *kind;
        }
        let mobile = self.mobile.as_ref();
        if let Some(fixed) = self.fixed_line.as_ref().filter(|f| f.matches(national)) {
            let same = mobile.is_some_and(|m| m.source == fixed.source);
            return if same || matches(mobile, national) {
                Type::FixedLineOrMobile
            } else {
                Type::FixedLine
            };
        }
        if matches(mobile, national) {
            Type::Mobile
        } else {
            Type::Unknown
        }
    }
}

/// Compiled rules by (region id, calling code): non-geographic entities share the id `001`.
type RulesCache = HashMap<(String, u16), Option<Arc<Rules>>>;

static RULES: LazyLock<RwLock<RulesCache>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// The region's compiled rules, compiled on first use (at most once per region and process).
fn rules(metadata: &Metadata) -> Option<Arc<Rules>> {
    let key = (metadata.id().to_owned(), metadata.country_code());
    if let Some(found) = RULES.read().ok()?.get(&key) {
        return found.clone();
    }
    let compiled = Rules::compile(metadata).ok().map(Arc::new);
    RULES.write().ok()?.entry(key).or_insert(compiled).clone()
}

/// What [`classify`] found.
enum Classified {
    /// The number's region metadata and its line type (possibly `Unknown`).
    Known(&'static Metadata, Type),
    /// No region of this calling code claims the number.
    NoRegion,
    /// A pattern could not be compiled: use the crate's own functions.
    Uncompiled,
}

/// The region a number belongs to and its line type, as the `phonenumber` crate's
/// `PhoneNumber::metadata` and `PhoneNumber::number_type` decide them: a calling code with one
/// region is that region; otherwise the first region, in the metadata's order, whose leading
/// digits start the number or, without leading digits, whose patterns give the number a type.
/// `national` is the national number without leading zeros, as the crate uses it there.
fn classify(code: u16, national: &str) -> Classified {
    let database: &'static phonenumber::metadata::Database = &DATABASE;
    let Some(regions) = database.region(&code) else {
        return Classified::NoRegion;
    };
    let metadata = match regions.as_slice() {
        [] => None,
        ["001"] => database.by_code(&code).and_then(|m| m.into_iter().next()),
        [only] => only
            .parse::<phonenumber::country::Id>()
            .ok()
            .and_then(|_| database.by_id(*only)),
        several => {
            for region in several {
                let Some(metadata) = database.by_id(*region) else {
                    continue;
                };
                let Some(rules) = rules(metadata) else {
                    return Classified::Uncompiled;
                };
                match &rules.leading_digits {
                    Some(leading) if leading.is_match(national) => {
                        return Classified::Known(metadata, rules.number_type(national));
                    }
                    Some(_) => {}
                    None => match rules.number_type(national) {
                        Type::Unknown => {}
                        kind => return Classified::Known(metadata, kind),
                    },
                }
            }
            None
        }
    };
    let Some(metadata) = metadata else {
        return Classified::NoRegion;
    };
    match rules(metadata) {
        Some(rules) => Classified::Known(metadata, rules.number_type(national)),
        None => Classified::Uncompiled,
    }
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

    /// The inputs of the agreement test: every region's example numbers, and for every calling
    /// code pseudo-random digit strings of 6 to 12 digits.
    fn agreement_inputs() -> Vec<String> {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut inputs = Vec::new();
        let mut codes: Vec<u16> = DATABASE.iter().map(Metadata::country_code).collect();
        codes.sort_unstable();
        codes.dedup();
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            let d = meta.descriptors();
            let all = [
                Some(d.general()),
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ];
            for example in all.into_iter().flatten().filter_map(Descriptor::example) {
                inputs.push(format!("+{code}{example}"));
            }
        }
        for code in codes {
            for i in 0..6u64 {
                let mut digits = String::new();
                for _ in 0..6 + i % 7 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    digits.push(char::from(b'0' + u8::try_from(seed % 10).unwrap()));
                }
                inputs.push(format!("+{code}{digits}"));
            }
        }
        inputs
    }

    #[test]
    fn region_and_type_agree_with_the_phonenumber_crate() {
        let mut checked = 0;
        for input in agreement_inputs() {
            let Ok(parsed) = phonenumber::parse(None, &input) else {
                continue;
            };
            let national = parsed.national().value().to_string();
            let want = (
                parsed.metadata(&DATABASE).map(|m| m.id().to_owned()),
                parsed.number_type(&DATABASE),
            );
            let got = match classify(parsed.code().value(), &national) {
                Classified::Known(m, t) => (Some(m.id().to_owned()), t),
                Classified::NoRegion => (None, Type::Unknown),
                Classified::Uncompiled => panic!("{input}: a pattern did not compile"),
            };
            assert_eq!(got, want, "{input}");
            assert_eq!(
                format!("+{}{}", parsed.code().value(), parsed.national()),
                parsed.format().mode(phonenumber::Mode::E164).to_string(),
                "{input}"
            );
            checked += 1;
        }
        assert!(checked > 2000, "only {checked} inputs parsed");
    }

    #[test]
    fn the_region_hint_never_changes_what_the_crate_parses() {
        let mut hinted = 0;
        let inputs = agreement_inputs();
        // Also with a national prefix (0) after the calling code, which the crate strips for
        // some regions and not for others.
        let with_zero = inputs.iter().flat_map(|i| {
            (2..=4)
                .filter(|&at| at < i.len())
                .map(move |at| format!("{}0{}", &i[..at], &i[at..]))
        });
        for input in inputs.iter().cloned().chain(with_zero) {
            let Some(rest) = input.strip_prefix('+') else {
                continue;
            };
            let hint = region_hint(rest);
            hinted += usize::from(hint.is_some());
            let plain = phonenumber::parse(None, &input).ok();
            let with_hint = phonenumber::parse(hint, &input).ok();
            assert_eq!(
                with_hint
                    .as_ref()
                    .map(|p| (p.code().value(), p.national().to_string())),
                plain
                    .as_ref()
                    .map(|p| (p.code().value(), p.national().to_string())),
                "{input} (hint {hint:?})"
            );
        }
        assert!(hinted > 2000, "only {hinted} inputs had a hint");
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
