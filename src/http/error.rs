//! The one place errors become HTTP: every failure maps to a status, a stable machine `code`
//! and the `{statusCode, error, message, code}` envelope of DESIGN.md, plus only the documented
//! extras (`bucket`, `retryAfter`, `attemptsRemaining`). Internal details never reach the body;
//! for 5xx they ride in the response extensions for the logging middleware.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{CodeError, PhoneNumberError};
use crate::limiter::LimiterError;
use crate::policy::{BucketName, PolicyError};
use crate::provider::{InvalidParameter, ProviderError};
use crate::service::ServiceError;
use crate::store::StoreError;

/// Seconds a client should wait after a 503.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidBody(String),
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the body is larger than 16 KiB")]
    PayloadTooLarge,
    #[error(transparent)]
    InvalidPhone(#[from] PhoneNumberError),
    #[error("codes cannot be sent to numbers in this country")]
    CountryNotAllowed,
    #[error("this channel is not enabled")]
    ChannelNotAllowed,
    #[error("codes cannot be sent to this type of number")]
    NumberTypeNotAllowed,
    #[error("the provider's fraud protection blocked this number")]
    FraudBlocked,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("too many requests; retry later")]
    RateLimited {
        bucket: Option<BucketName>,
        retry_after: Option<Duration>,
    },
    #[error(transparent)]
    InvalidCode(#[from] CodeError),
    #[error("the code is incorrect")]
    IncorrectCode { attempts_remaining: Option<u32> },
    #[error("no pending verification for this number")]
    VerificationNotFound,
    #[error("too many wrong codes for this verification; request a new code later")]
    MaxCheckAttempts,
    #[error("too many codes sent for this verification; wait for it to expire")]
    MaxSendAttempts,
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("the SMS provider failed")]
    Provider(String),
    #[error("a dependency is unavailable; retry later")]
    Unavailable(String),
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("unexpected error")]
    Internal(String),
}

/// The body of every error answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    status_code: u16,
    error: &'static str,
    message: String,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_remaining: Option<u32>,
}

/// An internal error detail, attached to 5xx responses for the logging middleware only.
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub String);

/// Whole seconds, rounded up, at least 1: what `Retry-After` carries.
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl ApiError {
    /// The HTTP status and stable machine code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ApiError::*;
        match self {
            InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            InvalidPhone(_) => (StatusCode::BAD_REQUEST, "invalid_phone_number"),
            CountryNotAllowed => (StatusCode::FORBIDDEN, "country_not_allowed"),
            ChannelNotAllowed => (StatusCode::BAD_REQUEST, "channel_not_allowed"),
            NumberTypeNotAllowed => (StatusCode::FORBIDDEN, "number_type_not_allowed"),
            FraudBlocked => (StatusCode::FORBIDDEN, "fraud_blocked"),
            IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            InvalidCode(_) => (StatusCode::BAD_REQUEST, "invalid_code"),
            IncorrectCode { .. } => (StatusCode::BAD_REQUEST, "incorrect_code"),
            VerificationNotFound => (StatusCode::NOT_FOUND, "verification_not_found"),
            MaxCheckAttempts => (StatusCode::TOO_MANY_REQUESTS, "max_check_attempts"),
            MaxSendAttempts => (StatusCode::TOO_MANY_REQUESTS, "max_send_attempts"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Provider(_) => (StatusCode::BAD_GATEWAY, "provider_error"),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            RouteNotFound => (StatusCode::NOT_FOUND, "not_found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The person-readable message: fixed texts only, never internal details.
    fn public_message(&self) -> String {
        match self {
            ApiError::Provider(_) => {
                "the SMS provider failed; no code was confirmed sent".to_owned()
            }
            ApiError::Unavailable(_) => "a dependency is unavailable; retry later".to_owned(),
            ApiError::Internal(_) => "unexpected error".to_owned(),
            other => other.to_string(),
        }
    }

    fn internal_detail(&self) -> Option<&str> {
        match self {
            ApiError::Provider(d) | ApiError::Unavailable(d) | ApiError::Internal(d) => Some(d),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } => retry_after.map(retry_after_secs),
            ApiError::Unavailable(_) => Some(retry_after_secs(UNAVAILABLE_RETRY_AFTER)),
            _ => None,
        };
        let body = ErrorBody {
            status_code: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error"),
            message: self.public_message(),
            code,
            bucket: match &self {
                ApiError::RateLimited { bucket, .. } => bucket.map(BucketName::as_str),
                _ => None,
            },
            retry_after,
            attempts_remaining: match &self {
                ApiError::IncorrectCode { attempts_remaining } => *attempts_remaining,
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(detail) = self.internal_detail() {
            response
                .extensions_mut()
                .insert(ErrorDetail(detail.to_owned()));
        }
        response
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::CountryNotAllowed => ApiError::CountryNotAllowed,
            PolicyError::ChannelNotAllowed => ApiError::ChannelNotAllowed,
            PolicyError::NumberTypeNotAllowed(_) => ApiError::NumberTypeNotAllowed,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(d) => ApiError::Unavailable(d),
            StoreError::Internal(d) => ApiError::Internal(d),
        }
    }
}

impl From<LimiterError> for ApiError {
    fn from(e: LimiterError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::NotFound => ApiError::VerificationNotFound,
            ProviderError::IncorrectCode { attempts_remaining } => {
                ApiError::IncorrectCode { attempts_remaining }
            }
            ProviderError::MaxCheckAttempts => ApiError::MaxCheckAttempts,
            ProviderError::MaxSendAttempts => ApiError::MaxSendAttempts,
            ProviderError::RateLimited { retry_after } => ApiError::RateLimited {
                bucket: None,
                retry_after,
            },
            ProviderError::Delivery(d) => ApiError::Provider(d),
            ProviderError::Store(s) => s.into(),
            ProviderError::Data(d) => ApiError::Internal(d),
            ProviderError::CountryNotAllowed => ApiError::CountryNotAllowed,
            ProviderError::NumberTypeNotAllowed => ApiError::NumberTypeNotAllowed,
            ProviderError::FraudBlocked => ApiError::FraudBlocked,
            ProviderError::InvalidParameter(InvalidParameter::To) => {
                ApiError::InvalidPhone(PhoneNumberError::Invalid)
            }
            ProviderError::InvalidParameter(InvalidParameter::Channel) => {
                ApiError::ChannelNotAllowed
            }
            ProviderError::InvalidParameter(InvalidParameter::Code) => {
                ApiError::InvalidCode(CodeError::NotAccepted)
            }
            ProviderError::Upstream(d) => ApiError::Provider(d),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Policy(p) => p.into(),
            ServiceError::RateLimited {
                bucket,
                retry_after,
            } => ApiError::RateLimited {
                bucket: Some(bucket),
                retry_after: Some(retry_after),
            },
            ServiceError::Limiter(l) => l.into(),
            ServiceError::Provider(p) => p.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(14_001)), 15);
        assert_eq!(retry_after_secs(Duration::from_secs(15)), 15);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn internal_details_never_reach_the_body() {
        let response = ApiError::Internal("secret table name".to_owned()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.extensions().get::<ErrorDetail>().is_some());
    }
}
