//! `Idempotency-Key` on send-code: a retried request with the same key and the same body gets
//! the first answer again and sends no second SMS; the same key with another body is 422
//! `idempotency_key_reused`; while the first is still running, 409 `idempotency_key_in_use`.
//! Keys are scoped to the caller (API key or user), kept 24 hours, stored only as keyed digests,
//! and the stored answer is encrypted (it names the number). 2xx and 4xx answers are stored,
//! except 429; 429 and 5xx are not, so a retry runs afresh.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;
use crate::crypto::Keys;
use crate::error::{Chain, Context};
use crate::store::IdempotencyBegin;

/// How long a key is remembered.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
/// An in-progress claim older than this is considered abandoned (its request timed out).
const STALE: Duration = Duration::from_secs(120);
/// The answer is small; anything bigger is not stored.
const MAX_STORED_BODY: usize = 64 * 1024;

/// A validated `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The request's key, if it sent one.
    ///
    /// # Errors
    /// [`ApiError::InvalidBody`] for an empty, too long or non-ASCII key.
    pub fn from_header(value: Option<&HeaderValue>) -> Result<Option<Self>, ApiError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let text = value
            .to_str()
            .ok()
            .filter(|t| !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::InvalidBody(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned(),
                )
            })?;
        Ok(Some(Self(text.to_owned())))
    }
}

/// The digest of a JSON body with its keys in sorted order, so key order does not matter. It is
/// keyed (an HMAC under the stable key), so a copy of the table cannot be brute-forced back into
/// the numbers the bodies named.
fn request_digest(keys: &Keys, body: &Map<String, Value>) -> [u8; 32] {
    fn canonical(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for k in keys {
                    out.extend_from_slice(serde_json::to_string(k).unwrap_or_default().as_bytes());
                    out.push(b':');
                    canonical(&map[k], out);
                    out.push(b',');
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for i in items {
                    canonical(i, out);
                    out.push(b',');
                }
                out.push(b']');
            }
            other => out.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    let mut bytes = Vec::new();
    canonical(&Value::Object(body.clone()), &mut bytes);
    keys.lookup_digest("idempotency-body", &String::from_utf8_lossy(&bytes))
}

/// Runs `handler` at most once per (caller, key): replays, refuses or records around it.
pub async fn run<F>(
    state: &AppState,
    principal: &str,
    key: IdempotencyKey,
    body: &Map<String, Value>,
    handler: F,
) -> Response
where
    F: Future<Output = Response>,
{
    let key_digest = state
        .keys
        .lookup_digest("idempotency", &format!("{principal}\n{}", key.0));
    let now = state.clock.now();
    let begun = state
        .store
        .idempotency_begin(
            &key_digest,
            &request_digest(&state.keys, body),
            now,
            now.minus(KEEP),
            now.minus(STALE),
        )
        .await;
    match begun {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdempotencyBegin::Mismatch) => ApiError::IdempotencyKeyReused.into_response(),
        Ok(IdempotencyBegin::InProgress) => ApiError::IdempotencyKeyInUse.into_response(),
        Ok(IdempotencyBegin::Replay {
            status,
            body_sealed,
        }) => match state.keys.open(&body_sealed, &key_digest) {
            Ok(bytes) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                let mut response = (status, bytes).into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
                response
            }
            Err(e) => {
                ApiError::Internal(Context::new("stored idempotent answer unreadable", e).into())
                    .into_response()
            }
        },
        Ok(IdempotencyBegin::Started) => {
            let response = handler.await;
            let status = response.status();
            let keep = (status.is_success() || status.is_client_error())
                && status != StatusCode::TOO_MANY_REQUESTS;
            if !keep {
                if let Err(e) = state.store.idempotency_abandon(&key_digest).await {
                    tracing::warn!(error = %Chain(&e), "could not release an idempotency key");
                }
                return response;
            }
            let (parts, body) = response.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
                Ok(b) => b,
                Err(e) => {
                    return ApiError::Internal(
                        Context::new("answer could not be buffered", e).into(),
                    )
                    .into_response();
                }
            };
            let sealed = state.keys.seal(&bytes, &key_digest);
            if let Err(e) = state
                .store
                .idempotency_finish(&key_digest, status.as_u16(), &sealed)
                .await
            {
                // The SMS is out; the answer is still right. A retry would send again, so say so.
                tracing::error!(error = %Chain(&e), "could not record an idempotent answer");
            }
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_digest() {
        let a = json!({ "recipient": "+1", "channel": "sms" });
        let b: Value = serde_json::from_str(r#"{"channel":"sms","recipient":"+1"}"#).unwrap();
        let c = json!({ "recipient": "+1", "channel": "call" });
        let keys = Keys::derive(&crate::crypto::ServerSecret::generate());
        let d = |v: &Value| request_digest(&keys, v.as_object().unwrap());
        assert_eq!(d(&a), d(&b));
        assert_ne!(d(&a), d(&c));
    }
}
