//! `POST /mfa/send-code` and `POST /mfa/verify`, in the Linker shape: parse the body into
//! domain types (in the documented order), call the [`Verifier`](crate::service::Verifier),
//! wrap the verification in `{statusCode, message, data}`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::extract::JsonObject;
use crate::domain::{Channel, OtpCode, PhoneNumber, Verification};
use crate::policy::ClientKey;
use crate::service::Caller;

/// `{statusCode, message, data}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub status_code: u16,
    pub message: &'static str,
    pub data: T,
}

/// The verification as the mobile app reads it (Twilio's fields, Linker's casing).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationData {
    pub sid: String,
    pub to: String,
    pub channel: &'static str,
    pub status: &'static str,
    pub valid: bool,
    pub lookup: Lookup,
    pub amount: Option<String>,
    pub payee: Option<String>,
    pub send_code_attempts: Vec<AttemptData>,
    pub date_created: String,
    pub date_updated: String,
}

/// Twilio's `lookup`; verifyd does no carrier lookup.
#[derive(Serialize)]
pub struct Lookup {
    pub carrier: Option<String>,
}

/// One entry of `sendCodeAttempts` (Twilio's snake_case keys, as Linker passes them through).
#[derive(Serialize)]
pub struct AttemptData {
    pub attempt_sid: String,
    pub channel: &'static str,
    pub time: String,
}

impl From<Verification> for VerificationData {
    fn from(v: Verification) -> Self {
        Self {
            valid: v.valid(),
            sid: v.sid.to_string(),
            to: v.to.e164().to_owned(),
            channel: v.channel.as_str(),
            status: v.status.as_str(),
            lookup: Lookup { carrier: None },
            amount: None,
            payee: None,
            send_code_attempts: v
                .send_attempts
                .into_iter()
                .map(|a| AttemptData {
                    attempt_sid: a.sid.to_string(),
                    channel: a.channel.as_str(),
                    time: a.time.to_rfc3339(),
                })
                .collect(),
            date_created: v.created.to_rfc3339(),
            date_updated: v.updated.to_rfc3339(),
        }
    }
}

fn client_key(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> ClientKey {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    ClientKey::from_ip(state.trusted_proxies.resolve(peer.ip(), forwarded))
}

/// Sends a code: recipient, then channel, then the verifier's policy and provider.
///
/// # Errors
/// Any [`ApiError`] of the send-code rows.
#[tracing::instrument(name = "send_code", skip_all, fields(phone, client))]
pub async fn send_code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Json<Envelope<VerificationData>>, ApiError> {
    let phone = PhoneNumber::parse(body.required_str("recipient")?)?;
    let span = tracing::Span::current();
    span.record("phone", phone.masked());
    let channel = match body.optional_str("channel")? {
        None => Channel::Sms,
        Some(name) => name
            .parse::<Channel>()
            .map_err(|_| ApiError::ChannelNotAllowed)?,
    };
    let client = client_key(&state, peer, &headers);
    span.record("client", client.as_str());
    let verification = state
        .verifier
        .send_code(
            phone,
            channel,
            Caller {
                client: Some(client),
                user: None,
            },
        )
        .await?;
    tracing::info!(sid = %verification.sid, "verification code sent");
    Ok(Json(Envelope {
        status_code: 200,
        message: "Verification code sent!",
        data: verification.into(),
    }))
}

/// Checks a code: recipient, then code format, then the verifier.
///
/// # Errors
/// Any [`ApiError`] of the verify rows.
#[tracing::instrument(name = "verify_code", skip_all, fields(phone))]
pub async fn verify_code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Json<Envelope<VerificationData>>, ApiError> {
    let phone = PhoneNumber::parse(body.required_str("recipient")?)?;
    tracing::Span::current().record("phone", phone.masked());
    let code = OtpCode::parse(body.required_str("code")?, state.code_length)?;
    let caller = Caller {
        client: Some(client_key(&state, peer, &headers)),
        user: None,
    };
    let verification = state.verifier.verify_code(phone, code, caller).await?;
    tracing::info!(sid = %verification.sid, "verification approved");
    Ok(Json(Envelope {
        status_code: 200,
        message: "Verification code is correct!",
        data: verification.into(),
    }))
}
