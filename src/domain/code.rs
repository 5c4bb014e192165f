//! One-time codes: generated from the operating system's CSPRNG without modulo bias, parsed
//! strictly (ASCII digits of the configured length only), and never printable through `Debug`.

use std::fmt;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

/// How many digits a code has: 4 to 10, 6 by default (Twilio Verify's range and default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeLength(u8);

impl CodeLength {
    pub const MIN: u8 = 4;
    pub const MAX: u8 = 10;

    /// A length in `4..=10`, or `None`.
    pub fn new(len: u8) -> Option<Self> {
        (Self::MIN..=Self::MAX).contains(&len).then_some(Self(len))
    }

    /// The number of digits.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl Default for CodeLength {
    fn default() -> Self {
        Self(6)
    }
}

/// Why a submitted code was refused before it was compared with anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("the code must be ASCII digits only")]
    NotDigits,
    #[error("the code must be {expected} digits long")]
    WrongLength { expected: usize },
    /// The provider (Twilio 60200 on `Code`) refused a code this service let through.
    #[error("the code is not in a format the provider accepts")]
    NotAccepted,
}

/// A one-time code: a run of ASCII digits of a known length. The digits are a secret.
#[derive(Clone)]
pub struct OtpCode(SecretString);

impl OtpCode {
    /// A fresh random code of `len` digits from the thread-local CSPRNG (ChaCha, seeded and
    /// periodically reseeded from the OS). `random_range` rejects out-of-range samples instead
    /// of reducing modulo 10, so every digit is uniform.
    pub fn generate(len: CodeLength) -> Self {
        let mut rng = rand::rng();
        let digits: String = (0..len.get())
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        Self(SecretString::from(digits))
    }

    /// Parses what a user typed: exactly `len` ASCII digits, nothing else (no spaces, no other
    /// scripts' digits).
    ///
    /// # Errors
    /// [`CodeError`] naming the first rule broken.
    pub fn parse(input: &str, len: CodeLength) -> Result<Self, CodeError> {
        if !input.bytes().all(|b| b.is_ascii_digit()) || input.is_empty() {
            return Err(CodeError::NotDigits);
        }
        if input.len() != len.get() {
            return Err(CodeError::WrongLength {
                expected: len.get(),
            });
        }
        Ok(Self(SecretString::from(input.to_owned())))
    }

    /// Rebuilds a code that this service generated and stored encrypted. Returns `None` when the
    /// plaintext is not a run of 4 to 10 ASCII digits (which would mean corrupted data).
    pub fn from_stored(plain: String) -> Option<Self> {
        let ok = (usize::from(CodeLength::MIN)..=usize::from(CodeLength::MAX))
            .contains(&plain.len())
            && plain.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(SecretString::from(plain)))
    }

    /// The digits. Callers must not log or return them.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIX: CodeLength = CodeLength(6);

    #[test]
    fn rejects_everything_but_ascii_digits_of_the_right_length() {
        let cases = [
            ("", CodeError::NotDigits),
            ("12345a", CodeError::NotDigits),
            (" 123456", CodeError::NotDigits),
            ("123 456", CodeError::NotDigits),
            ("١٢٣٤٥٦", CodeError::NotDigits), // Arabic-Indic digits
            ("１２３４５６", CodeError::NotDigits), // full-width digits
            ("-12345", CodeError::NotDigits),
            ("12345", CodeError::WrongLength { expected: 6 }),
            ("1234567", CodeError::WrongLength { expected: 6 }),
        ];
        for (input, want) in cases {
            assert_eq!(
                OtpCode::parse(input, SIX).err(),
                Some(want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn generated_codes_have_the_requested_length_and_only_digits() {
        for len in CodeLength::MIN..=CodeLength::MAX {
            let len = CodeLength::new(len).unwrap();
            let code = OtpCode::generate(len);
            assert_eq!(code.expose().len(), len.get());
            assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn digits_are_roughly_uniform() {
        let mut counts = [0u32; 10];
        for _ in 0..2_000 {
            for b in OtpCode::generate(CodeLength(10)).expose().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        // 20 000 digits: each expected 2 000; a biased generator lands far outside this band.
        for (digit, n) in counts.iter().enumerate() {
            assert!((1_700..2_300).contains(n), "digit {digit} seen {n} times");
        }
    }

    #[test]
    fn debug_never_prints_the_digits() {
        let code = OtpCode::parse("123456", SIX).unwrap();
        assert!(!format!("{code:?}").contains("123456"));
    }

    #[test]
    fn length_bounds() {
        assert!(CodeLength::new(3).is_none());
        assert!(CodeLength::new(11).is_none());
        assert_eq!(CodeLength::new(4).unwrap().get(), 4);
    }

    proptest! {
        #[test]
        fn any_run_of_six_ascii_digits_parses(s in "[0-9]{6}") {
            let code = OtpCode::parse(&s, SIX).unwrap();
            prop_assert_eq!(code.expose(), s.as_str());
        }
    }
}
