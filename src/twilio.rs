//! Twilio's REST plumbing, shared by the Verify provider, the Verify rate-limit sync and the
//! Messaging sender: one HTTP client (rustls) with a deadline per call, HTTP Basic auth with the
//! Account SID and Auth Token, form-encoded requests, and Twilio's error body
//! (`{code, message, more_info, status}` plus `Retry-After`).
//!
//! It never retries and never logs: each caller knows whether a call may already have had an
//! effect (an SMS out) and decides. The Auth Token leaves its [`SecretString`] only for the
//! `Authorization` header, which reqwest marks sensitive. Twilio's error `message` can echo a
//! phone number, so it is kept private: [`TwilioError`]'s text carries only the HTTP status and
//! Twilio's numeric code.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

/// The longest a connection attempt may take, whatever `TWILIO_TIMEOUT` says: a check may be
/// retried once after a connect error, and both tries must fit in the request's deadline.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Twilio's code for "wrong Account SID or Auth Token".
pub const CODE_AUTHENTICATE: u32 = 20003;

/// Why a Twilio call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// No connection was made: the request never reached Twilio (safe to retry).
    #[error("could not connect to Twilio: {0}")]
    Connect(String),
    /// No answer within `TWILIO_TIMEOUT`: the request may have had its effect.
    #[error("Twilio did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke after the request was sent: it may have had its effect.
    #[error("the call to Twilio failed: {0}")]
    Transport(String),
    /// Twilio answered with an error.
    #[error("{0}")]
    Api(ApiFailure),
    /// Twilio answered 2xx with a body we cannot read.
    #[error("Twilio's answer could not be read: {0}")]
    Decode(String),
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot set up the Twilio client: {0}")]
    Setup(String),
}

/// A Twilio error answer.
pub struct ApiFailure {
    /// The HTTP status.
    pub status: u16,
    /// Twilio's error code (`20404`, `60200`, ...), when the body had one.
    pub code: Option<u32>,
    /// Twilio's `Retry-After`, in seconds, when it sent one.
    pub retry_after: Option<Duration>,
    /// Twilio's message: may contain the phone number, so never displayed or logged.
    message: String,
}

impl ApiFailure {
    /// Whether Twilio's message names `parameter` (60200's message is `Invalid parameter: To`).
    pub fn names_parameter(&self, parameter: &str) -> bool {
        let Some((_, rest)) = self.message.split_once("parameter") else {
            return false;
        };
        rest.split(|c: char| !c.is_ascii_alphanumeric())
            .find(|w| !w.is_empty())
            .is_some_and(|w| w.eq_ignore_ascii_case(parameter))
    }

    /// Wrong Account SID or Auth Token.
    pub fn is_bad_credentials(&self) -> bool {
        self.code == Some(CODE_AUTHENTICATE) || self.status == 401
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Twilio answered HTTP {}", self.status)?;
        if let Some(code) = self.code {
            write!(
                f,
                " with error {code} (https://www.twilio.com/docs/errors/{code})"
            )?;
        }
        if self.is_bad_credentials() {
            f.write_str(
                ": Twilio rejected the credentials; check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiFailure")
            .field("status", &self.status)
            .field("code", &self.code)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    #[serde(default)]
    message: String,
}

/// A client for one Twilio API host, authenticated as one account.
pub struct TwilioClient {
    http: reqwest::Client,
    base_url: String,
    account_sid: String,
    auth_token: SecretString,
    timeout: Duration,
}

impl TwilioClient {
    /// A client for `base_url` (no trailing slash) with a deadline of `timeout` per call.
    ///
    /// # Errors
    /// [`TwilioError::Setup`] when the TLS client cannot be built.
    pub fn new(
        base_url: &str,
        account_sid: &str,
        auth_token: SecretString,
        timeout: Duration,
    ) -> Result<Self, TwilioError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .user_agent(concat!("verifyd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TwilioError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token,
            timeout,
        })
    }

    /// The Account SID this client authenticates as.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// `POST path` with a form body; the 2xx answer decoded as `T`.
    ///
    /// # Errors
    /// [`TwilioError`].
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<T, TwilioError> {
        let request = self.http.post(self.url(path)).form(form);
        self.call(request).await
    }

    /// `GET path` (with its query); the 2xx answer decoded as `T`.
    ///
    /// # Errors
    /// [`TwilioError`].
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, TwilioError> {
        let request = self.http.get(self.url(path));
        self.call(request).await
    }

    /// `GET path`; the 2xx answer decoded as `T`, with the instant of Twilio's `Date` header
    /// when it sent a readable one (`verifyd doctor` compares clocks with it).
    ///
    /// # Errors
    /// [`TwilioError`].
    pub async fn get_dated<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, Option<crate::domain::Timestamp>), TwilioError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        let value =
            serde_json::from_slice(&bytes).map_err(|e| TwilioError::Decode(e.to_string()))?;
        Ok((value, date))
    }

    /// `DELETE path`; any 2xx is success.
    ///
    /// # Errors
    /// [`TwilioError`].
    pub async fn delete(&self, path: &str) -> Result<(), TwilioError> {
        let request = self.http.delete(self.url(path));
        self.send(request).await.map(|_| ())
    }

    /// The path and query of one of Twilio's absolute paging URLs (`next_page_url`), so the
    /// next page is fetched from the configured base URL too.
    pub fn relative_path<'a>(&self, absolute: &'a str) -> Option<&'a str> {
        let after_scheme = absolute
            .split_once("://")
            .map_or(absolute, |(_, rest)| rest);
        after_scheme.find('/').map(|i| &after_scheme[i..])
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, TwilioError> {
        let response = self.send(request).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        serde_json::from_slice(&bytes).map_err(|e| TwilioError::Decode(e.to_string()))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, TwilioError> {
        let response = request
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Option<ErrorBody> = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (code, message) = body.map_or((None, String::new()), |b| (b.code, b.message));
        Err(TwilioError::Api(ApiFailure {
            status: status.as_u16(),
            code,
            retry_after,
            message,
        }))
    }

    /// The error without its URL (a base URL may carry credentials; the path is known).
    fn transport_error(&self, e: reqwest::Error) -> TwilioError {
        let e = e.without_url();
        if e.is_connect() {
            TwilioError::Connect(e.to_string())
        } else if e.is_timeout() {
            TwilioError::Timeout(self.timeout)
        } else {
            TwilioError::Transport(e.to_string())
        }
    }
}

/// An HTTP `Date` (IMF-fixdate: `Thu, 26 Nov 2026 12:00:00 GMT`).
pub fn parse_http_date(text: &str) -> Option<crate::domain::Timestamp> {
    let format = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    let at = time::PrimitiveDateTime::parse(text.trim(), &format)
        .ok()?
        .assume_utc();
    Some(crate::domain::Timestamp::from_millis(
        at.unix_timestamp().saturating_mul(1000),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: u32, message: &str) -> ApiFailure {
        ApiFailure {
            status: 400,
            code: Some(code),
            retry_after: None,
            message: message.to_owned(),
        }
    }

    #[test]
    fn the_invalid_parameter_is_read_from_the_message() {
        assert!(failure(60200, "Invalid parameter: To").names_parameter("To"));
        assert!(failure(60200, "Invalid parameter `Channel`: x").names_parameter("Channel"));
        assert!(!failure(60200, "Invalid parameter: Code").names_parameter("To"));
        assert!(!failure(60200, "Invalid parameter: Tone").names_parameter("To"));
        assert!(!failure(60200, "").names_parameter("To"));
    }

    #[test]
    fn the_display_never_carries_twilios_message() {
        let text = failure(60200, "Invalid parameter `To`: +14155552671").to_string();
        assert!(!text.contains("+1415"), "{text}");
        assert!(text.contains("60200"), "{text}");
        let text = failure(20003, "Authenticate").to_string();
        assert!(text.contains("TWILIO_AUTH_TOKEN"), "{text}");
    }

    #[test]
    fn http_dates_are_read() {
        let t = parse_http_date("Thu, 26 Nov 2026 12:00:01 GMT").unwrap();
        assert_eq!(t.as_millis(), 1_795_694_401_000);
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn paging_urls_are_made_relative() {
        let c = TwilioClient::new(
            "http://127.0.0.1:9",
            "AC0",
            SecretString::from("t".to_owned()),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            c.relative_path("https://verify.twilio.com/v2/Services/VA1/RateLimits?Page=1"),
            Some("/v2/Services/VA1/RateLimits?Page=1")
        );
    }
}
