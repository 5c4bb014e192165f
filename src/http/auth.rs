//! API-key authentication: `Authorization: Bearer <key>`, checked against SHA-256 digests of
//! the accepted keys in constant time (every key is compared, whatever matches first).
//! The operator routes (`/dev/outbox`, `/metrics` on the main listener) take an API key only:
//! a user token, however valid, is refused there, so an app user never reads other users'
//! codes or the service's figures.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConstantTimeEq};

use super::error::ApiError;
use super::jwt::JwtVerifier;
use crate::config::AuthMode;
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

    /// Whether one of the keys' digests starts with `prefix` (a console session names the key
    /// it was opened with so, and ends when that key is no longer accepted).
    pub fn has_digest_prefix(&self, prefix: &[u8]) -> bool {
        let mut found = Choice::from(0);
        for d in &self.digests {
            found |= d[..prefix.len().min(32)].ct_eq(prefix);
        }
        !prefix.is_empty() && bool::from(found)
    }

    /// Whether `presented` is one of the keys.
    pub fn accepts(&self, presented: &str) -> bool {
        self.accepts_digest(&api_key_digest(presented))
    }

    /// Whether a key whose digest is `digest` is one of the keys.
    fn accepts_digest(&self, digest: &[u8; 32]) -> bool {
        let mut found = Choice::from(0);
        for d in &self.digests {
            found |= d.ct_eq(digest);
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

/// The user a JWT named (`sub`), for per-user buckets and verification binding.
#[derive(Clone, Debug)]
pub struct AuthUser(pub String);

/// The configured ways to authenticate.
pub struct Authenticator {
    pub mode: AuthMode,
    pub api_keys: ApiKeys,
    pub jwt: Option<Arc<JwtVerifier>>,
}

/// A JWT has three base64url parts; an API key never contains a dot.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

fn unauthorized(invalid_token: bool) -> Response {
    let mut response = ApiError::Unauthorized.into_response();
    if invalid_token {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}

/// Refuses requests without an accepted API key or user token with 401 `unauthorized`
/// (`WWW-Authenticate: Bearer`, plus `error="invalid_token"` for a token that was presented and
/// refused); nothing else runs. Why a token was refused is logged, never answered.
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    // The key's digest is taken once: it is both the check and the principal's label.
    let Some(digest) = bearer_token(&req).map(api_key_digest) else {
        return unauthorized(false);
    };
    if auth.mode.api_keys() && auth.api_keys.accepts_digest(&digest) {
        let principal = Principal(format!("key:{}", hex::encode(&digest[..8])));
        req.extensions_mut().insert(principal);
        return next.run(req).await;
    }
    let Some(token) = bearer_token(&req).map(str::to_owned) else {
        return unauthorized(false);
    };
    match (&auth.jwt, looks_like_jwt(&token)) {
        (Some(jwt), true) if auth.mode.jwt() => match jwt.verify(&token).await {
            Ok(sub) => {
                req.extensions_mut()
                    .insert(Principal(format!("user:{sub}")));
                req.extensions_mut().insert(AuthUser(sub));
                next.run(req).await
            }
            Err(e) => {
                tracing::info!(reason = %e, "bearer token refused");
                unauthorized(true)
            }
        },
        _ => unauthorized(auth.mode.jwt()),
    }
}

/// Guards the operator routes (`/dev/outbox`, and `/metrics` on the main listener): only an
/// accepted API key passes. Anything else, a valid user token included, is refused with 401
/// `unauthorized` (`WWW-Authenticate: Bearer`); no JWT is even verified here. With
/// `VERIFYD_AUTH=jwt` no API key is accepted, so these routes always answer 401 (serve metrics
/// on `VERIFYD_METRICS_ADDR` then).
pub async fn require_api_key(
    State(auth): State<Arc<Authenticator>>,
    req: Request,
    next: Next,
) -> Response {
    let accepted = auth.mode.api_keys()
        && bearer_token(&req).is_some_and(|token| auth.api_keys.accepts(token));
    if accepted {
        next.run(req).await
    } else {
        unauthorized(false)
    }
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
