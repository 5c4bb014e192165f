//! Request extractors whose rejections are [`ApiError`]s, so malformed input gets the same
//! envelope as every other error (never axum's plain-text 400/415/422).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use serde_json::{Map, Value};

use super::error::ApiError;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The two request headers the MFA handlers read: `X-Forwarded-For` (every occurrence, in
/// order) and `Idempotency-Key`. Taken out of the request instead of cloning its whole header
/// map, which axum's `HeaderMap` extractor would do for every request.
pub struct MfaHeaders {
    pub forwarded_for: Vec<HeaderValue>,
    pub idempotency_key: Option<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for MfaHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            forwarded_for: parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .cloned()
                .collect(),
            idempotency_key: parts.headers.get("idempotency-key").cloned(),
        })
    }
}

/// A JSON object body (`Content-Type: application/json` or `application/*+json`).
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    ApiError::PayloadTooLarge
                }
                _ => ApiError::InvalidBody("the body could not be read".to_owned()),
            })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::InvalidBody(
                "the body must be a JSON object".to_owned(),
            )),
            Err(_) => Err(ApiError::InvalidBody(
                "the body is not valid JSON".to_owned(),
            )),
        }
    }
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl JsonObject {
    /// A required string field; a missing field or another JSON type is `invalid_body`.
    ///
    /// # Errors
    /// [`ApiError::InvalidBody`] naming the field.
    pub fn required_str(&self, field: &str) -> Result<&str, ApiError> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => {
                Err(ApiError::InvalidBody(format!("`{field}` is required")))
            }
            Some(_) => Err(ApiError::InvalidBody(format!("`{field}` must be a string"))),
        }
    }

    /// An optional string field (absent or null is `None`).
    ///
    /// # Errors
    /// [`ApiError::InvalidBody`] when present with another JSON type.
    pub fn optional_str(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(Some(s)),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(ApiError::InvalidBody(format!("`{field}` must be a string"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
        ] {
            assert!(is_json(Some(&HeaderValue::from_static(ok))), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "application/jsonx",
        ] {
            assert!(!is_json(Some(&HeaderValue::from_static(bad))), "{bad}");
        }
        assert!(!is_json(None));
    }
}
