//! The lines that let a phone fill the code in by itself: Android's SMS Retriever hash (an app's
//! 11-character hash, given per request as `appHash` / `AppHash`, on a line of its own) and the
//! WebOTP last line (`@<domain> #<code>`, from `VERIFYD_WEBOTP_DOMAIN`), which a browser reads to
//! offer the code to the page of that domain. Both are validated before anything is sent.

use std::fmt;

/// An Android app's SMS Retriever hash: exactly 11 characters of base64 (`A-Z a-z 0-9 + /`).
#[derive(Clone, PartialEq, Eq)]
pub struct AppHash(String);

/// The app hash is not 11 base64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the app hash must be 11 characters of A-Z, a-z, 0-9, + and /")]
pub struct AppHashError;

impl AppHash {
    /// # Errors
    /// [`AppHashError`] unless `text` is 11 base64 characters.
    pub fn parse(text: &str) -> Result<Self, AppHashError> {
        if text.len() == 11
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(AppHashError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppHash({})", self.0)
    }
}

/// The host of the web page that WebOTP offers the code to: a lowercase DNS name (labels of
/// letters, digits and inner hyphens), optionally with a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebOtpDomain(String);

/// Why a WebOTP domain is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected a host name such as `example.com` or `login.example.com:8443` (no scheme, no path)"
)]
pub struct WebOtpDomainError;

impl WebOtpDomain {
    /// # Errors
    /// [`WebOtpDomainError`] unless `text` is a host name with an optional port.
    pub fn parse(text: &str) -> Result<Self, WebOtpDomainError> {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if let Some(port) = port
            && port.parse::<u16>().map_or(true, |p| p == 0)
        {
            return Err(WebOtpDomainError);
        }
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(WebOtpDomainError);
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The WebOTP line for `code`: `@domain #code`.
pub fn webotp_line(domain: &WebOtpDomain, code: &str) -> String {
    format!("@{} #{code}", domain.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_hash_is_eleven_base64_characters() {
        for good in ["FA+9qCX9VSu", "abcdefghijk", "0123456789/", "He42w354ol9"] {
            assert_eq!(
                AppHash::parse(good).map(|h| h.0),
                Ok(good.to_owned()),
                "{good}"
            );
        }
        for bad in [
            "",
            "FA+9qCX9VS",
            "FA+9qCX9VSuu",
            "FA+9qCX9VS=",
            "FA-9qCX9VSu",
            "FA 9qCX9VSu",
            "FA+9qCX9VS\n",
            "ÄA+9qCX9VS",
        ] {
            assert_eq!(AppHash::parse(bad), Err(AppHashError), "{bad:?}");
        }
    }

    #[test]
    fn webotp_domain_is_a_host_with_an_optional_port() {
        for good in [
            "example.com",
            "Login.Example.com",
            "localhost",
            "a-b.example:8443",
        ] {
            assert!(WebOtpDomain::parse(good).is_ok(), "{good}");
        }
        assert_eq!(
            WebOtpDomain::parse("Login.Example.com").unwrap().as_str(),
            "login.example.com"
        );
        for bad in [
            "",
            "https://example.com",
            "example.com/login",
            "-example.com",
            "example-.com",
            "exa mple.com",
            "example..com",
            ".example.com",
            "example.com:",
            "example.com:0",
            "example.com:99999",
            "@example.com",
            "example.com #1",
        ] {
            assert_eq!(WebOtpDomain::parse(bad), Err(WebOtpDomainError), "{bad:?}");
        }
    }

    #[test]
    fn webotp_line_names_domain_and_code() {
        let d = WebOtpDomain::parse("example.com").unwrap();
        assert_eq!(webotp_line(&d, "123456"), "@example.com #123456");
    }
}
