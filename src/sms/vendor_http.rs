//! The HTTP client the SMS vendors share: rustls, short timeouts, no redirects, and the one rule
//! that sorts a vendor's answer into sent, refused (the caller's error) or failed (try the next
//! vendor).

use std::sync::OnceLock;
use std::time::Duration;

use super::SmsError;

/// Time to open a connection to a vendor.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for a whole request to a vendor.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared client (built once; reqwest clients share their connection pool when cloned).
///
/// # Errors
/// [`SmsError::Setup`] when the TLS setup fails.
pub fn client() -> Result<reqwest::Client, SmsError> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                // A redirect would carry the code and the credentials elsewhere: a failure.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("verifyd/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(SmsError::Setup)
}

/// The error of a request that got no answer (the URL, which may hold a key, left out).
pub fn transport_error(vendor: &str, e: &reqwest::Error) -> SmsError {
    let what = if e.is_timeout() {
        "did not answer in time (the message may still go out)"
    } else if e.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    SmsError::Failed(format!("{vendor} {what}: {}", e_without_url(e)))
}

fn e_without_url(e: &reqwest::Error) -> String {
    let mut e = format!("{e}");
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}

/// A non-2xx answer `status` with the vendor's `detail` (its error code and title, never the
/// message): a 4xx other than 401 and 429 is a refusal of this number or message; the rest
/// (5xx, 429 the vendor's rate limit, 401 our credentials, 3xx) make the vendor unusable now.
pub fn answer_error(vendor: &str, status: u16, detail: &str) -> SmsError {
    let text = format!("{vendor} answered HTTP {status} {detail}");
    if (400..500).contains(&status) && !matches!(status, 401 | 429) {
        SmsError::Refused(text)
    } else {
        SmsError::Failed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_4xx_is_a_refusal_except_401_and_429() {
        for (status, refused) in [
            (400, true),
            (422, true),
            (401, false),
            (429, false),
            (500, false),
            (503, false),
            (302, false),
        ] {
            let e = answer_error("x", status, "");
            assert_eq!(matches!(e, SmsError::Refused(_)), refused, "{status}");
        }
    }
}
