//! Locales: a request's `locale` / `Locale` (a BCP 47 tag such as `pt-BR`) resolved to one of
//! the built-in locales. The tag is matched without regard to case (`_` is taken for `-`); a
//! known tag or alias is taken as it is, a known language with a region or script verifyd has
//! no wording of its own for falls back to the language (`de-AT` → `de`), and an unknown
//! language is refused.

use std::fmt;
use std::str::FromStr;

use super::wording::{ALIASES, WORDINGS, Wording};

/// The longest tag considered (BCP 47 tags used for messages are far shorter).
const MAX_TAG: usize = 35;

/// A locale verifyd writes messages in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Locale(&'static Wording);

/// Why a locale tag is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocaleError {
    #[error("the locale is not a language tag (e.g. `en`, `pt-BR`)")]
    Malformed,
    #[error("verifyd has no messages in this language")]
    Unknown,
}

impl Locale {
    /// English, the default of `VERIFYD_DEFAULT_LOCALE`.
    pub fn english() -> Self {
        Self::find("en").unwrap_or(Locale(&WORDINGS[0]))
    }

    /// Every built-in locale, ordered by tag.
    pub fn all() -> impl Iterator<Item = Locale> {
        WORDINGS.iter().map(Locale)
    }

    /// The built-in locale tagged exactly `tag` (canonical case), or an alias of one.
    fn find(tag: &str) -> Option<Self> {
        let tag = ALIASES
            .iter()
            .find(|(alias, _)| *alias == tag)
            .map_or(tag, |(_, target)| target);
        WORDINGS.iter().find(|w| w.tag == tag).map(Locale)
    }

    /// Resolves a request's tag (see the module docs).
    ///
    /// # Errors
    /// [`LocaleError::Malformed`] for anything that is not a language tag,
    /// [`LocaleError::Unknown`] for a language without built-in wording.
    pub fn parse(text: &str) -> Result<Self, LocaleError> {
        if text.is_empty() || text.len() > MAX_TAG {
            return Err(LocaleError::Malformed);
        }
        let mut subtags = text.split(['-', '_']);
        let language = subtags.next().unwrap_or_default();
        if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return Err(LocaleError::Malformed);
        }
        let mut canonical = language.to_ascii_lowercase();
        for sub in subtags {
            if sub.is_empty() || sub.len() > 8 || !sub.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(LocaleError::Malformed);
            }
            canonical.push('-');
            match sub.len() {
                // A region: `GB`, `BR`.
                2 => canonical.push_str(&sub.to_ascii_uppercase()),
                // A script: `Hant`.
                4 => {
                    canonical.push_str(&sub[..1].to_ascii_uppercase());
                    canonical.push_str(&sub[1..].to_ascii_lowercase());
                }
                _ => canonical.push_str(&sub.to_ascii_lowercase()),
            }
        }
        // The whole tag, then ever shorter prefixes of it (`zh-Hant-HK` → `zh-Hant` → `zh`).
        let mut candidate = canonical.as_str();
        loop {
            if let Some(found) = Self::find(candidate) {
                return Ok(found);
            }
            match candidate.rfind('-') {
                Some(cut) => candidate = &candidate[..cut],
                None => return Err(LocaleError::Unknown),
            }
        }
    }

    /// The built-in locale's tag (`pt-BR`).
    pub fn tag(self) -> &'static str {
        self.0.tag
    }

    /// The language part of the tag (`pt`).
    pub fn language(self) -> &'static str {
        self.0.tag.split('-').next().unwrap_or(self.0.tag)
    }

    /// Its built-in wording.
    pub fn wording(self) -> &'static Wording {
        self.0
    }
}

impl FromStr for Locale {
    type Err = LocaleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locale({})", self.0.tag)
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio Verify's `Locale` values: every one must resolve (to itself or its language).
    const TWILIO_LOCALES: &[&str] = &[
        "af", "ar", "bg", "bn", "ca", "cs", "da", "de", "el", "en", "en-GB", "es", "es-419", "et",
        "fi", "fr", "fr-CA", "gu", "he", "hi", "hr", "hu", "id", "it", "ja", "kn", "ko", "lt",
        "ml", "mr", "ms", "nb", "nl", "pa", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sv", "ta",
        "te", "th", "tl", "tr", "uk", "vi", "zh", "zh-CN", "zh-HK",
    ];

    #[test]
    fn every_twilio_locale_resolves_to_wording_in_its_language() {
        for tag in TWILIO_LOCALES {
            let locale = Locale::parse(tag).unwrap_or_else(|e| panic!("{tag}: {e}"));
            assert_eq!(
                locale.language(),
                tag.split('-').next().unwrap(),
                "{tag} resolved to {locale}"
            );
        }
    }

    #[test]
    fn resolves_case_aliases_and_unknown_regions() {
        let cases = [
            ("en", "en"),
            ("EN", "en"),
            ("en-gb", "en-GB"),
            ("en_GB", "en-GB"),
            ("en-US", "en"),
            ("de-AT", "de"),
            ("de-CH-1996", "de"),
            ("pt-br", "pt-BR"),
            ("pt-PT", "pt"),
            ("es-419", "es-419"),
            ("es-MX", "es"),
            ("fr-ca", "fr-CA"),
            ("fr-BE", "fr"),
            ("zh-CN", "zh"),
            ("zh-TW", "zh-HK"),
            ("zh-hant", "zh-HK"),
            ("zh-Hant-TW", "zh-HK"),
            ("zh-Hans-CN", "zh"),
            ("no", "nb"),
            ("fil", "tl"),
        ];
        for (input, tag) in cases {
            assert_eq!(Locale::parse(input).map(Locale::tag), Ok(tag), "{input}");
        }
    }

    #[test]
    fn refuses_unknown_languages_and_malformed_tags() {
        let cases = [
            ("xx", LocaleError::Unknown),
            ("eo", LocaleError::Unknown),
            ("xx-US", LocaleError::Unknown),
            ("", LocaleError::Malformed),
            ("e", LocaleError::Malformed),
            ("english", LocaleError::Malformed),
            ("en-", LocaleError::Malformed),
            ("-en", LocaleError::Malformed),
            ("en--GB", LocaleError::Malformed),
            ("en GB", LocaleError::Malformed),
            ("en-GB!", LocaleError::Malformed),
            ("1n", LocaleError::Malformed),
            ("ен", LocaleError::Malformed),
            ("en-abcdefghi", LocaleError::Malformed),
        ];
        for (input, error) in cases {
            assert_eq!(Locale::parse(input), Err(error), "{input:?}");
        }
        assert_eq!(
            Locale::parse(&format!("en-{}", "a".repeat(40))),
            Err(LocaleError::Malformed)
        );
    }

    #[test]
    fn aliases_point_at_built_in_locales() {
        for (alias, target) in ALIASES {
            assert!(Locale::find(target).is_some(), "{alias} → {target}");
        }
    }
}
