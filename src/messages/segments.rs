//! How an SMS is encoded and into how many parts it is split: GSM-7 (the GSM 03.38 default
//! alphabet and its extension table, where `€`, `[`, `{`, … cost two septets) when every
//! character is in it, else UCS-2 (UTF-16 code units). One part holds 160 septets or 70 units;
//! a longer message is sent as concatenated parts of 153 septets or 67 units each (the rest is
//! the concatenation header), and a part never splits an escape pair or a surrogate pair.
//! National language shift tables (Turkish, Indian scripts, …) are not used: they depend on the
//! carrier, and a message that relies on one may arrive garbled.

use std::fmt;

/// GSM 03.38 default alphabet, every character that costs one septet (ESC excluded).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: each costs an escape and itself, two septets.
const GSM_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// Septets in one unsplit GSM-7 message, and per part of a split one.
const GSM_SINGLE: usize = 160;
const GSM_PART: usize = 153;
/// UTF-16 units in one unsplit UCS-2 message, and per part of a split one.
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// The SMS data coding a message needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The GSM 7-bit default alphabet (with its extension table).
    Gsm7,
    /// UCS-2 (UTF-16): any other character makes the whole message UCS-2.
    Ucs2,
}

impl Encoding {
    /// `gsm7` or `ucs2`: for logs, metrics and the attempt log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message's encoding, length in that encoding's units and number of parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// How many SMS parts the message is sent as (at least 1, even when empty).
    pub count: usize,
}

/// Septets `c` costs in GSM-7, or `None` when GSM-7 cannot carry it.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Parts needed for characters costing `costs` units, `single` fitting unsplit and `part` per
/// part otherwise; a character is never split between parts.
fn parts(costs: impl Iterator<Item = usize> + Clone, single: usize, part: usize) -> (usize, usize) {
    let total: usize = costs.clone().sum();
    if total <= single {
        return (total, 1);
    }
    let (mut count, mut used) = (1, 0);
    for cost in costs {
        if used + cost > part {
            count += 1;
            used = 0;
        }
        used += cost;
    }
    (total, count)
}

/// The encoding and parts of `text` as an SMS.
pub fn segments(text: &str) -> Segments {
    if text.chars().all(|c| gsm_septets(c).is_some()) {
        let (units, count) = parts(
            text.chars().map(|c| gsm_septets(c).unwrap_or(1)),
            GSM_SINGLE,
            GSM_PART,
        );
        Segments {
            encoding: Encoding::Gsm7,
            units,
            count,
        }
    } else {
        let (units, count) = parts(text.chars().map(char::len_utf16), UCS2_SINGLE, UCS2_PART);
        Segments {
            encoding: Encoding::Ucs2,
            units,
            count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parts_at_the_boundaries_of_each_encoding() {
        let cases: &[(&str, String, Encoding, usize, usize)] = &[
            ("empty", String::new(), Encoding::Gsm7, 0, 1),
            ("160 ascii", "a".repeat(160), Encoding::Gsm7, 160, 1),
            ("161 ascii", "a".repeat(161), Encoding::Gsm7, 161, 2),
            ("306 ascii", "a".repeat(306), Encoding::Gsm7, 306, 2),
            ("307 ascii", "a".repeat(307), Encoding::Gsm7, 307, 3),
            ("80 euro signs", "€".repeat(80), Encoding::Gsm7, 160, 1),
            ("81 euro signs", "€".repeat(81), Encoding::Gsm7, 162, 2),
            // 152 septets then an escape pair: the pair moves to the second part whole.
            (
                "escape pair at a part boundary",
                format!("{}€{}", "a".repeat(152), "a".repeat(10)),
                Encoding::Gsm7,
                164,
                2,
            ),
            (
                "gsm accents",
                "éèùìòÇØÅÆßÉÄÖÑÜäöñüà".to_owned(),
                Encoding::Gsm7,
                20,
                1,
            ),
            ("70 cyrillic", "д".repeat(70), Encoding::Ucs2, 70, 1),
            ("71 cyrillic", "д".repeat(71), Encoding::Ucs2, 71, 2),
            ("134 cyrillic", "д".repeat(134), Encoding::Ucs2, 134, 2),
            ("135 cyrillic", "д".repeat(135), Encoding::Ucs2, 135, 3),
            (
                "one ó makes it ucs2",
                format!("{}ó", "a".repeat(69)),
                Encoding::Ucs2,
                70,
                1,
            ),
            (
                "emoji are two units",
                "😀".repeat(35),
                Encoding::Ucs2,
                70,
                1,
            ),
            // 66 units then a surrogate pair: the pair moves to the second part whole.
            (
                "surrogate pair at a part boundary",
                format!("{}😀{}", "д".repeat(66), "д".repeat(10)),
                Encoding::Ucs2,
                78,
                2,
            ),
        ];
        for (name, text, encoding, units, count) in cases {
            let s = segments(text);
            assert_eq!(
                (s.encoding, s.units, s.count),
                (*encoding, *units, *count),
                "{name}"
            );
        }
    }

    #[test]
    fn every_gsm_character_is_gsm_and_nothing_else_is() {
        for c in GSM_BASIC.chars().chain(GSM_EXTENSION.chars()) {
            assert_eq!(segments(&c.to_string()).encoding, Encoding::Gsm7, "{c:?}");
        }
        for c in ['ó', 'ç', 'ş', 'ğ', 'ą', 'ê', '`', '\u{1B}', '\t', '中', 'й'] {
            assert_eq!(segments(&c.to_string()).encoding, Encoding::Ucs2, "{c:?}");
        }
    }
}
