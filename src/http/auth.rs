//! API-key authentication: `Authorization: Bearer <key>`, checked against SHA-256 digests of
//! the accepted keys in constant time (every key is compared, whatever matches first).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConstantTimeEq};

use super::error::ApiError;
use crate::crypto::api_key_digest;

/// The accepted API keys, as digests.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    pub fn from_digests(digests: Vec<[u8; 32]>) -> Self {
        Self { digests }
    }

    /// Whether `presented` is one of the keys.
    pub fn accepts(&self, presented: &str) -> bool {
        let digest = api_key_digest(presented);
        let mut found = Choice::from(0);
        for d in &self.digests {
            found |= d.ct_eq(&digest);
        }
        bool::from(found)
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who an authenticated request comes from, as an opaque stable label (never the key itself):
/// it scopes idempotency keys to their caller.
#[derive(Clone, Debug)]
pub struct Principal(pub String);

/// Refuses requests without an accepted key with 401 `unauthorized`; nothing else runs.
pub async fn require_api_key(
    State(keys): State<Arc<ApiKeys>>,
    mut req: Request,
    next: Next,
) -> Response {
    let principal = match bearer_token(&req) {
        Some(token) if keys.accepts(token) => {
            Principal(format!("key:{}", hex::encode(&api_key_digest(token)[..8])))
        }
        _ => return ApiError::Unauthorized.into_response(),
    };
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_listed_keys() {
        let keys = ApiKeys::from_digests(vec![
            api_key_digest("first-key-0123456789"),
            api_key_digest("second-key-0123456789"),
        ]);
        assert!(keys.accepts("first-key-0123456789"));
        assert!(keys.accepts("second-key-0123456789"));
        assert!(!keys.accepts("first-key-012345678"));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::default().accepts("anything"));
    }
}
