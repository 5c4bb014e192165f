//! `/v2/SafeList/Numbers`: add a number (201), fetch it, remove it (204). A safe-listed number
//! is exempt from the country allowlist, the number-type rules and the prefix, country and
//! global buckets (the [`Verifier`](crate::service::Verifier) applies this); never from the
//! per-number and per-IP limits, which stop brute force. The list is account-wide, as Twilio's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::form::Params;
use super::{TwilioApi, TwilioError, sid};
use crate::crypto::Keys;
use crate::domain::{PhoneNumber, Timestamp};
use crate::http::AppState;
use crate::rotation::PHONE_CONTEXT;
use crate::store::SafeListRecord;

/// Twilio's SafeList resource.
#[derive(Serialize)]
pub struct SafeListResource {
    pub sid: String,
    pub phone_number: String,
    pub url: String,
}

fn resource(api: &TwilioApi, sid: String, phone: &PhoneNumber) -> SafeListResource {
    SafeListResource {
        url: api.url(&format!("/v2/SafeList/Numbers/{}", phone.e164())),
        sid,
        phone_number: phone.e164().to_owned(),
    }
}

/// Adds `number` (E.164) to the safe list, or finds its entry (the API's and the CLI's one
/// path).
///
/// # Errors
/// [`TwilioError`]: 60200 naming `PhoneNumber`, or the store failed.
pub async fn add(
    api: &TwilioApi,
    keys: &Keys,
    number: &str,
    now: Timestamp,
) -> Result<SafeListResource, TwilioError> {
    let phone = PhoneNumber::parse(number).map_err(|_| TwilioError::invalid("PhoneNumber"))?;
    let entry = SafeListRecord {
        sid: sid::generate("GN"),
        phone_lookup: keys.phone_lookup(phone.e164()).to_vec(),
        phone_sealed: keys.seal(phone.e164().as_bytes(), PHONE_CONTEXT),
        created: now,
    };
    let stored = api.safe_list.add_safe_number(&entry).await?;
    Ok(resource(api, stored.sid, &phone))
}

/// Removes `number` from the safe list; false when it was not listed (or is no number).
///
/// # Errors
/// [`TwilioError`] when the store failed.
pub async fn remove(api: &TwilioApi, keys: &Keys, number: &str) -> Result<bool, TwilioError> {
    let Ok(phone) = PhoneNumber::parse(number) else {
        return Ok(false);
    };
    Ok(api
        .safe_list
        .remove_safe_number(&keys.phone_lookups(phone.e164()))
        .await?)
}

/// Every entry, oldest first, with its number opened.
///
/// # Errors
/// [`TwilioError`] when the store failed.
pub async fn list(api: &TwilioApi, keys: &Keys) -> Result<Vec<SafeListResource>, TwilioError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = api.safe_list.safe_numbers(after.as_deref(), 500).await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = Some(last.sid.clone());
        for e in page {
            let number = keys
                .open(&e.phone_sealed, PHONE_CONTEXT)
                .ok()
                .and_then(|p| String::from_utf8(p).ok())
                .and_then(|n| PhoneNumber::parse(&n).ok());
            if let Some(phone) = number {
                out.push(resource(api, e.sid, &phone));
            }
        }
    }
}

/// `POST /v2/SafeList/Numbers` with `PhoneNumber` (E.164). Adding a listed number answers its
/// entry again.
pub async fn add_safe_number(State(state): State<AppState>, params: Params) -> Response {
    let api = &state.twilio;
    let result = async {
        let number = params.required("PhoneNumber")?;
        let entry = add(api, &state.keys, number, state.clock.now()).await?;
        Ok::<_, TwilioError>((StatusCode::CREATED, Json(entry)).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The number of a path, or 404 for it (a malformed number is on no list).
fn path_number(number: &str, path: &str) -> Result<PhoneNumber, TwilioError> {
    PhoneNumber::parse(number).map_err(|_| TwilioError::not_found(path))
}

/// `GET /v2/SafeList/Numbers/{PhoneNumber}`.
pub async fn fetch_safe_number(
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<Json<SafeListResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/SafeList/Numbers/{number}");
    let phone = path_number(&number, &path)?;
    let lookups = state.keys.phone_lookups(phone.e164());
    let found = api
        .safe_list
        .safe_number(&lookups)
        .await?
        .ok_or_else(|| TwilioError::not_found(&path))?;
    Ok(Json(resource(api, found.sid, &phone)))
}

/// `DELETE /v2/SafeList/Numbers/{PhoneNumber}`.
pub async fn remove_safe_number(
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<StatusCode, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/SafeList/Numbers/{number}");
    let phone = path_number(&number, &path)?;
    let lookups = state.keys.phone_lookups(phone.e164());
    if api.safe_list.remove_safe_number(&lookups).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(TwilioError::not_found(&path))
    }
}
