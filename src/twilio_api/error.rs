//! Twilio's error answer: `{"code", "message", "more_info", "status"}` and nothing else, with the
//! mapping of TWILIO-COMPAT.md from verifyd's outcomes (taken from the `/mfa` face's
//! [`ApiError`], so both faces refuse the same things) to Twilio's codes. 429 and 503 carry
//! `Retry-After` in whole seconds; a 401 carries `WWW-Authenticate: Basic realm="verifyd"`.
//! Internal details never reach the body; they ride in the response extensions for the log.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::ApiError;
use crate::http::error::{ErrorCode, ErrorDetail, retry_after_secs};
use crate::service::ServiceError;
use crate::store::StoreError;

/// Seconds a client should wait after a 503.
const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// One Twilio error answer.
#[derive(Debug)]
pub struct TwilioError {
    pub status: StatusCode,
    /// Twilio's error code (60200, 20404, …).
    pub code: u32,
    pub message: String,
    /// Whole seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// The log's outcome label, when verifyd has one for it.
    outcome: Option<ErrorCode>,
    /// For the log only (5xx).
    detail: Option<crate::error::BoxError>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u32,
    message: &'a str,
    more_info: String,
    status: u16,
}

impl TwilioError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            outcome: None,
            detail: None,
        }
    }

    /// 400/60200 naming the parameter.
    pub fn invalid(parameter: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            60200,
            format!("Invalid parameter: {parameter}"),
        )
        .outcome(ErrorCode::InvalidBody)
    }

    /// 400/60200: a required parameter is missing.
    pub fn missing(parameter: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            60200,
            format!("Invalid parameter: {parameter} is required"),
        )
        .outcome(ErrorCode::InvalidBody)
    }

    /// 404/20404 for the resource at `path`.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {path} was not found"),
        )
        .outcome(ErrorCode::NotFound)
    }

    /// 401/20003.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate").outcome(ErrorCode::Unauthorized)
    }

    /// 403/60204: the service does not have the feature a parameter asks for.
    pub fn feature_disabled(parameter: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            60204,
            format!("Service does not support this feature: {parameter}"),
        )
    }

    fn outcome(mut self, code: ErrorCode) -> Self {
        self.outcome = Some(code);
        self
    }

    fn retry(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Twilio's answer for what `/mfa` would answer with `e`; `ttl` bounds how long a
    /// verification's own limits (60202, 60203) last, for their `Retry-After`.
    pub fn from_api(e: ApiError, ttl: Duration) -> Self {
        use StatusCode as S;
        let (_, outcome) = e.status_and_code();
        let ttl_secs = retry_after_secs(ttl);
        let mapped = match e {
            ApiError::InvalidBody(_) => Self::invalid("the body"),
            ApiError::UnsupportedMediaType => {
                Self::invalid("the body must be application/x-www-form-urlencoded")
            }
            ApiError::PayloadTooLarge => Self::new(
                S::PAYLOAD_TOO_LARGE,
                20413,
                "The request body is larger than 16 KiB",
            ),
            ApiError::InvalidPhone(_) => Self::invalid("To"),
            ApiError::InvalidEmail(e) => Self::new(
                S::BAD_REQUEST,
                60200,
                format!("Invalid parameter: To ({e})"),
            ),
            ApiError::PhoneNumberRequired => Self::new(
                S::BAD_REQUEST,
                60200,
                "Invalid parameter: To (this channel needs a phone number, not an email address)",
            ),
            ApiError::EmailRequired => Self::new(
                S::BAD_REQUEST,
                60200,
                "Invalid parameter: To (the email channel needs an email address)",
            ),
            ApiError::InvalidLocale(_) => Self::invalid("Locale"),
            ApiError::InvalidAppHash(_) => Self::invalid("AppHash"),
            ApiError::InvalidCode(_) => Self::invalid("Code"),
            ApiError::CountryNotAllowed => Self::new(
                S::FORBIDDEN,
                60605,
                "Verification delivery attempt blocked: geo permissions",
            ),
            ApiError::ChannelNotAllowed => Self::new(
                S::BAD_REQUEST,
                60223,
                "Delivery channel disabled: this channel is not enabled",
            ),
            ApiError::NumberTypeNotAllowed | ApiError::FraudBlocked => {
                Self::new(S::FORBIDDEN, 60410, "Verification delivery attempt blocked")
            }
            ApiError::RateLimited { retry_after, .. } => {
                Self::new(S::TOO_MANY_REQUESTS, 20429, "Too many requests")
                    .retry(retry_after.map_or(1, retry_after_secs))
            }
            ApiError::MaxCheckAttempts => {
                Self::new(S::TOO_MANY_REQUESTS, 60202, "Max check attempts reached").retry(ttl_secs)
            }
            ApiError::MaxSendAttempts => {
                Self::new(S::TOO_MANY_REQUESTS, 60203, "Max send attempts reached").retry(ttl_secs)
            }
            ApiError::VerificationNotFound | ApiError::IncorrectCode { .. } => {
                Self::new(S::NOT_FOUND, 20404, "The requested resource was not found")
            }
            // Never on `/v2` (only the receipt route answers them).
            ApiError::Unauthorized | ApiError::InvalidSignature => Self::unauthorized(),
            ApiError::StaleReceipt => Self::new(S::FORBIDDEN, 20403, "Forbidden"),
            ApiError::Provider(d) => {
                let mut t = Self::new(S::BAD_GATEWAY, 60008, "Unexpected error on delivery");
                t.detail = Some(d);
                t
            }
            ApiError::Unavailable(d) => {
                let mut t = Self::new(S::SERVICE_UNAVAILABLE, 20503, "Service unavailable")
                    .retry(UNAVAILABLE_RETRY_AFTER);
                t.detail = Some(d);
                t
            }
            ApiError::RouteNotFound => Self::not_found("at this path"),
            ApiError::MethodNotAllowed => Self::new(
                S::METHOD_NOT_ALLOWED,
                20405,
                "Method not allowed on this resource",
            ),
            ApiError::IdempotencyKeyReused | ApiError::IdempotencyKeyInUse => {
                Self::invalid("Idempotency-Key")
            }
            ApiError::Internal(d) => {
                let mut t = Self::new(S::INTERNAL_SERVER_ERROR, 20500, "Internal server error");
                t.detail = Some(d);
                t
            }
        };
        mapped.outcome(outcome)
    }
}

impl From<StoreError> for TwilioError {
    fn from(e: StoreError) -> Self {
        Self::from_api(ApiError::from(e), Duration::from_secs(1))
    }
}

/// A service outcome in Twilio's words (the TTL for 60202/60203's `Retry-After`).
pub fn from_service(e: ServiceError, ttl: Duration) -> TwilioError {
    TwilioError::from_api(ApiError::from(e), ttl)
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"verifyd\""),
            );
        }
        if let Some(outcome) = self.outcome {
            response.extensions_mut().insert(outcome);
        }
        if let Some(detail) = self.detail {
            response
                .extensions_mut()
                .insert(ErrorDetail(std::sync::Arc::from(detail)));
        }
        response
    }
}

/// 400/60200 naming `To`, saying which rule the recipient broke (a bad number, a bad email
/// address, an address for a phone channel, a number for email).
pub fn recipient_error(e: crate::domain::RecipientError) -> TwilioError {
    match e {
        crate::domain::RecipientError::Phone(_) => TwilioError::invalid("To"),
        other => TwilioError::from_api(other.into(), Duration::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_twilio_compat_md() {
        use crate::policy::BucketName;
        let ttl = Duration::from_secs(600);
        let cases: Vec<(ApiError, u16, u32)> = vec![
            (
                ApiError::InvalidPhone(crate::domain::PhoneNumberError::Invalid),
                400,
                60200,
            ),
            (ApiError::CountryNotAllowed, 403, 60605),
            (ApiError::ChannelNotAllowed, 400, 60223),
            (ApiError::NumberTypeNotAllowed, 403, 60410),
            (ApiError::FraudBlocked, 403, 60410),
            (
                ApiError::RateLimited {
                    bucket: Some(BucketName::Ip),
                    retry_after: Some(Duration::from_millis(1500)),
                },
                429,
                20429,
            ),
            (ApiError::MaxSendAttempts, 429, 60203),
            (ApiError::MaxCheckAttempts, 429, 60202),
            (ApiError::VerificationNotFound, 404, 20404),
            (ApiError::Unauthorized, 401, 20003),
            (ApiError::Provider("x".into()), 502, 60008),
            (ApiError::Unavailable("x".into()), 503, 20503),
            (ApiError::PayloadTooLarge, 413, 20413),
        ];
        for (e, status, code) in cases {
            let t = TwilioError::from_api(e, ttl);
            assert_eq!((t.status.as_u16(), t.code), (status, code), "{t:?}");
            if matches!(status, 429 | 503) {
                assert!(t.retry_after.is_some(), "{t:?}");
            }
        }
    }
}
