//! HTTP Basic authentication as Twilio's API takes it: the user is the account SID, the password
//! one of verifyd's API keys (the same keys as `/mfa/*`, whatever `VERIFYD_AUTH` says: `/v2` is a
//! server-to-server API). Anything else is 401/20003 with `WWW-Authenticate: Basic`, and nothing
//! else runs.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::error::TwilioError;
use crate::crypto::api_key_digest;
use crate::http::AppState;
use crate::http::auth::Principal;

/// The (user, password) of a `Basic` authorization header.
fn basic(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Lets through requests with the account SID and an accepted key, marking them with the key's
/// principal (failed checks are counted per caller, as on `/mfa`).
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some((user, password)) = basic(&req) else {
        return TwilioError::unauthorized().into_response();
    };
    let account = state.twilio.account_sid.as_bytes();
    let user_ok = bool::from(user.as_bytes().ct_eq(account));
    let key_ok = state.twilio.keys.accepts(&password);
    if !(user_ok && key_ok) {
        return TwilioError::unauthorized().into_response();
    }
    let principal = Principal(format!(
        "key:{}",
        hex::encode(&api_key_digest(&password)[..8])
    ));
    req.extensions_mut().insert(principal);
    next.run(req).await
}
