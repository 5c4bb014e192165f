//! The one place errors become HTTP: every failure maps to a status, a stable machine `code`
//! and the `{statusCode, error, message, code}` envelope of DESIGN.md, plus only the documented
//! extras (`bucket`, `retryAfter`, `attemptsRemaining`). Internal details never reach the body;
//! for 5xx the cause (an error with its own causes) rides in the response extensions, and the
//! request log line writes its chain, once.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{CheckRefusal, CodeError, EmailError, PhoneNumberError, RecipientError};
use crate::error::BoxError;
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
    #[error(transparent)]
    InvalidEmail(#[from] EmailError),
    /// An email address for `sms`, `whatsapp` or `call`.
    #[error("this channel sends to phone numbers; an email address was given")]
    PhoneNumberRequired,
    /// Anything but an email address for `email`.
    #[error("the email channel sends to email addresses; give one as the recipient")]
    EmailRequired,
    #[error("codes cannot be sent to numbers in this country")]
    CountryNotAllowed,
    #[error("this channel is not enabled")]
    ChannelNotAllowed,
    #[error("codes cannot be sent to this type of number")]
    NumberTypeNotAllowed,
    #[error("fraud protection refused codes to this destination for now")]
    FraudBlocked,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyKeyInUse,
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
    Provider(#[source] BoxError),
    #[error("a dependency is unavailable; retry later")]
    Unavailable(#[source] BoxError),
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("unexpected error")]
    Internal(#[source] BoxError),
    #[error(transparent)]
    InvalidLocale(#[from] crate::messages::LocaleError),
    #[error(transparent)]
    InvalidAppHash(#[from] crate::messages::AppHashError),
    /// A delivery receipt without its vendor's valid signature (unsigned or forged).
    #[error("the receipt's signature is missing or does not match")]
    InvalidSignature,
    /// A signed delivery receipt whose signed timestamp is too old or too new (a replay).
    #[error("the receipt's signed timestamp is more than 5 minutes from now")]
    StaleReceipt,
}

/// The stable machine code of an error: clients branch on this, never on `message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidBody,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidPhoneNumber,
    InvalidEmail,
    PhoneNumberRequired,
    EmailRequired,
    CountryNotAllowed,
    ChannelNotAllowed,
    NumberTypeNotAllowed,
    FraudBlocked,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    RateLimited,
    InvalidCode,
    IncorrectCode,
    VerificationNotFound,
    MaxCheckAttempts,
    MaxSendAttempts,
    Unauthorized,
    ProviderError,
    Unavailable,
    NotFound,
    MethodNotAllowed,
    InternalError,
    InvalidLocale,
    InvalidAppHash,
    InvalidSignature,
    StaleReceipt,
}

impl ErrorCode {
    /// The wire name (`rate_limited`, ...).
    pub fn as_str(self) -> &'static str {
        ERROR_CODE_NAMES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("internal_error", |(_, n)| n)
    }
}

const ERROR_CODE_NAMES: &[(ErrorCode, &str)] = &[
    (ErrorCode::InvalidBody, "invalid_body"),
    (ErrorCode::UnsupportedMediaType, "unsupported_media_type"),
    (ErrorCode::PayloadTooLarge, "payload_too_large"),
    (ErrorCode::InvalidPhoneNumber, "invalid_phone_number"),
    (ErrorCode::InvalidEmail, "invalid_email"),
    (ErrorCode::PhoneNumberRequired, "phone_number_required"),
    (ErrorCode::EmailRequired, "email_required"),
    (ErrorCode::CountryNotAllowed, "country_not_allowed"),
    (ErrorCode::ChannelNotAllowed, "channel_not_allowed"),
    (ErrorCode::NumberTypeNotAllowed, "number_type_not_allowed"),
    (ErrorCode::FraudBlocked, "fraud_blocked"),
    (ErrorCode::IdempotencyKeyReused, "idempotency_key_reused"),
    (ErrorCode::IdempotencyKeyInUse, "idempotency_key_in_use"),
    (ErrorCode::RateLimited, "rate_limited"),
    (ErrorCode::InvalidCode, "invalid_code"),
    (ErrorCode::IncorrectCode, "incorrect_code"),
    (ErrorCode::VerificationNotFound, "verification_not_found"),
    (ErrorCode::MaxCheckAttempts, "max_check_attempts"),
    (ErrorCode::MaxSendAttempts, "max_send_attempts"),
    (ErrorCode::Unauthorized, "unauthorized"),
    (ErrorCode::ProviderError, "provider_error"),
    (ErrorCode::Unavailable, "unavailable"),
    (ErrorCode::NotFound, "not_found"),
    (ErrorCode::MethodNotAllowed, "method_not_allowed"),
    (ErrorCode::InternalError, "internal_error"),
    (ErrorCode::InvalidLocale, "invalid_locale"),
    (ErrorCode::InvalidAppHash, "invalid_app_hash"),
    (ErrorCode::InvalidSignature, "invalid_signature"),
    (ErrorCode::StaleReceipt, "stale_receipt"),
];

/// The bucket named by a `rate_limited` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBucket {
    Ip,
    Phone,
    Prefix,
    Country,
    Global,
    User,
    Cooldown,
    /// A `/v2` service's RateLimits bucket (never on `/mfa/*`).
    RateLimit,
}

impl From<BucketName> for RateLimitBucket {
    fn from(b: BucketName) -> Self {
        match b {
            BucketName::Ip => RateLimitBucket::Ip,
            BucketName::Phone => RateLimitBucket::Phone,
            BucketName::Prefix => RateLimitBucket::Prefix,
            BucketName::Country => RateLimitBucket::Country,
            BucketName::Global => RateLimitBucket::Global,
            BucketName::User => RateLimitBucket::User,
            BucketName::Cooldown => RateLimitBucket::Cooldown,
            BucketName::RateLimit => RateLimitBucket::RateLimit,
        }
    }
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    status_code: u16,
    /// The HTTP reason phrase.
    error: &'static str,
    /// For a person; never parsed.
    message: String,
    code: ErrorCode,
    /// On `rate_limited` from one of verifyd's buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<RateLimitBucket>,
    /// Seconds until a retry can succeed, as in `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    /// On `incorrect_code`: checks left for this verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_remaining: Option<u32>,
}

/// The cause of a 5xx answer, attached to the response for the request log line only.
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub Arc<dyn std::error::Error + Send + Sync>);

/// Whole seconds, rounded up, at least 1: what `Retry-After` carries.
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl From<RecipientError> for ApiError {
    fn from(e: RecipientError) -> Self {
        match e {
            RecipientError::Phone(e) => ApiError::InvalidPhone(e),
            RecipientError::Email(e) => ApiError::InvalidEmail(e),
            RecipientError::EmailForPhoneChannel => ApiError::PhoneNumberRequired,
            RecipientError::NotEmailForEmailChannel => ApiError::EmailRequired,
        }
    }
}

impl ApiError {
    /// The HTTP status and stable machine code.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        use ApiError::*;
        use ErrorCode as C;
        match self {
            InvalidBody(_) => (StatusCode::BAD_REQUEST, C::InvalidBody),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, C::UnsupportedMediaType),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, C::PayloadTooLarge),
            InvalidPhone(_) => (StatusCode::BAD_REQUEST, C::InvalidPhoneNumber),
            InvalidEmail(_) => (StatusCode::BAD_REQUEST, C::InvalidEmail),
            PhoneNumberRequired => (StatusCode::BAD_REQUEST, C::PhoneNumberRequired),
            EmailRequired => (StatusCode::BAD_REQUEST, C::EmailRequired),
            CountryNotAllowed => (StatusCode::FORBIDDEN, C::CountryNotAllowed),
            ChannelNotAllowed => (StatusCode::BAD_REQUEST, C::ChannelNotAllowed),
            NumberTypeNotAllowed => (StatusCode::FORBIDDEN, C::NumberTypeNotAllowed),
            FraudBlocked => (StatusCode::FORBIDDEN, C::FraudBlocked),
            IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, C::IdempotencyKeyReused),
            IdempotencyKeyInUse => (StatusCode::CONFLICT, C::IdempotencyKeyInUse),
            RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, C::RateLimited),
            InvalidCode(_) => (StatusCode::BAD_REQUEST, C::InvalidCode),
            IncorrectCode { .. } => (StatusCode::BAD_REQUEST, C::IncorrectCode),
            VerificationNotFound => (StatusCode::NOT_FOUND, C::VerificationNotFound),
            MaxCheckAttempts => (StatusCode::TOO_MANY_REQUESTS, C::MaxCheckAttempts),
            MaxSendAttempts => (StatusCode::TOO_MANY_REQUESTS, C::MaxSendAttempts),
            Unauthorized => (StatusCode::UNAUTHORIZED, C::Unauthorized),
            Provider(_) => (StatusCode::BAD_GATEWAY, C::ProviderError),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, C::Unavailable),
            RouteNotFound => (StatusCode::NOT_FOUND, C::NotFound),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, C::MethodNotAllowed),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, C::InternalError),
            InvalidLocale(_) => (StatusCode::BAD_REQUEST, C::InvalidLocale),
            InvalidAppHash(_) => (StatusCode::BAD_REQUEST, C::InvalidAppHash),
            InvalidSignature => (StatusCode::UNAUTHORIZED, C::InvalidSignature),
            StaleReceipt => (StatusCode::FORBIDDEN, C::StaleReceipt),
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

    /// The cause of a 5xx answer, for the log.
    fn into_cause(self) -> Option<BoxError> {
        match self {
            ApiError::Provider(c) | ApiError::Unavailable(c) | ApiError::Internal(c) => Some(c),
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
            ApiError::IdempotencyKeyInUse => Some(1),
            _ => None,
        };
        let body = ErrorBody {
            status_code: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error"),
            message: self.public_message(),
            code,
            bucket: match &self {
                ApiError::RateLimited { bucket, .. } => bucket.map(RateLimitBucket::from),
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
        if status == StatusCode::UNAUTHORIZED && code == ErrorCode::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(code);
        if let Some(cause) = self.into_cause() {
            response
                .extensions_mut()
                .insert(ErrorDetail(Arc::from(cause)));
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
            StoreError::Unavailable(_) => ApiError::Unavailable(Box::new(e)),
            StoreError::Internal(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

impl From<LimiterError> for ApiError {
    fn from(e: LimiterError) -> Self {
        ApiError::Unavailable(Box::new(e))
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::NotFound => ApiError::VerificationNotFound,
            ProviderError::MaxCheckAttempts => ApiError::MaxCheckAttempts,
            ProviderError::MaxSendAttempts => ApiError::MaxSendAttempts,
            ProviderError::RateLimited { retry_after } => ApiError::RateLimited {
                bucket: None,
                retry_after,
            },
            e @ ProviderError::Delivery(_) => ApiError::Provider(Box::new(e)),
            ProviderError::Store(s) => s.into(),
            e @ ProviderError::Data(_) => ApiError::Internal(Box::new(e)),
            ProviderError::CountryNotAllowed => ApiError::CountryNotAllowed,
            ProviderError::NumberTypeNotAllowed => ApiError::NumberTypeNotAllowed,
            ProviderError::FraudBlocked => ApiError::FraudBlocked,
            ProviderError::InvalidParameter(InvalidParameter::To) => {
                ApiError::InvalidPhone(PhoneNumberError::Invalid)
            }
            ProviderError::InvalidParameter(InvalidParameter::Email) => {
                ApiError::InvalidEmail(EmailError::Refused)
            }
            ProviderError::InvalidParameter(InvalidParameter::Channel) => {
                ApiError::ChannelNotAllowed
            }
            ProviderError::InvalidParameter(InvalidParameter::Code) => {
                ApiError::InvalidCode(CodeError::NotAccepted)
            }
            e @ ProviderError::Upstream(_) => ApiError::Provider(Box::new(e)),
        }
    }
}

impl From<CheckRefusal> for ApiError {
    fn from(refusal: CheckRefusal) -> Self {
        match refusal {
            CheckRefusal::Incorrect {
                attempts_remaining, ..
            } => ApiError::IncorrectCode { attempts_remaining },
            CheckRefusal::Expired | CheckRefusal::NotFound => ApiError::VerificationNotFound,
            CheckRefusal::MaxAttempts => ApiError::MaxCheckAttempts,
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
            ServiceError::Refused(r) => r.into(),
            ServiceError::FraudBlocked(_) => ApiError::FraudBlocked,
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
    fn code_names_match_their_serialization() {
        for (code, name) in ERROR_CODE_NAMES {
            assert_eq!(serde_json::to_value(code).unwrap(), *name);
            assert_eq!(code.as_str(), *name);
        }
        assert_eq!(ERROR_CODE_NAMES.len(), 29, "every variant is listed");
    }

    #[test]
    fn internal_details_never_reach_the_body() {
        let response = ApiError::Internal("secret table name".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.extensions().get::<ErrorDetail>().is_some());
    }
}
