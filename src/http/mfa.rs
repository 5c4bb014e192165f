//! `POST /mfa/send-code` and `POST /mfa/verify`, in the Linker shape: parse the body into
//! domain types (in the documented order), call the [`Verifier`](crate::service::Verifier),
//! wrap the verification in `{statusCode, message, data}`. The masked number and the client key
//! are recorded on the request's span (see [`super::log_request`]) as soon as they are known.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use tracing::Span;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{AuthUser, Principal};
use super::error::{ApiError, ErrorBody};
use super::extract::{JsonObject, MfaHeaders};
use super::idempotency::{self, IdempotencyKey};
use crate::domain::{Channel, CodeLength, OtpCode, Recipient, Verification};
use crate::messages::{AppHash, Locale};
use crate::policy::ClientKey;
use crate::provider::{MessageOptions, SendOptions};
use crate::service::Caller;

/// `{statusCode, message, data}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// Always 200 on success.
    pub status_code: u16,
    pub message: &'static str,
    pub data: T,
}

/// The verification as the mobile app reads it (Twilio's fields, Linker's casing).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationData {
    /// `VE` + 32 hex digits.
    #[schema(pattern = "^VE[0-9a-f]{32}$")]
    pub sid: String,
    /// The number in E.164, or the email address.
    pub to: String,
    #[schema(example = "sms")]
    pub channel: &'static str,
    /// `pending` after a send, `approved` after a right code.
    #[schema(example = "pending")]
    pub status: &'static str,
    /// True exactly when approved.
    pub valid: bool,
    pub lookup: Lookup,
    /// Twilio's PSD2 field; always null.
    pub amount: Option<String>,
    /// Twilio's PSD2 field; always null.
    pub payee: Option<String>,
    pub send_code_attempts: Vec<AttemptData>,
    #[schema(format = DateTime)]
    pub date_created: String,
    #[schema(format = DateTime)]
    pub date_updated: String,
}

/// Twilio's `lookup`; verifyd does no carrier lookup.
#[derive(Serialize, ToSchema)]
pub struct Lookup {
    pub carrier: Option<String>,
}

/// One entry of `sendCodeAttempts` (Twilio's snake_case keys, as Linker passes them through).
#[derive(Serialize, ToSchema)]
pub struct AttemptData {
    /// `VL` + 32 hex digits.
    #[schema(pattern = "^VL[0-9a-f]{32}$")]
    pub attempt_sid: String,
    pub channel: &'static str,
    #[schema(format = DateTime)]
    pub time: String,
}

// The request bodies are parsed from the JSON object field by field, in the contract's order
// (`recipient`, then `channel` or `code`), each with its own error code, instead of by serde
// into the struct: serde would refuse a body at its first bad field, whichever it is, with one
// generic error. Their OpenAPI schemas are derived from these same types.

/// The send-code body.
#[derive(ToSchema)]
pub struct SendCodeRequest {
    /// International format, `+` and country code first; with `channel: email`, an email
    /// address instead.
    #[schema(value_type = String, example = "+14155552671")]
    recipient: Recipient,
    /// `sms` when absent; must be enabled in `VERIFYD_CHANNELS`.
    #[schema(value_type = Option<String>, example = "sms")]
    channel: Channel,
    /// The message's language (a BCP 47 tag: `en`, `pt-BR`; a known language with another
    /// region falls back to the language). Absent: `VERIFYD_DEFAULT_LOCALE`.
    #[schema(value_type = Option<String>, example = "pt-BR")]
    locale: Option<Locale>,
    /// Android SMS Retriever hash of the app (11 base64 characters), added on a line of its
    /// own so the app can read the code (SMS only).
    #[schema(value_type = Option<String>, example = "FA+9qCX9VSu")]
    #[serde(rename = "appHash")]
    app_hash: Option<AppHash>,
}

impl SendCodeRequest {
    /// `recipient` (`invalid_body` unless a string; for `email` `email_required` unless it has
    /// an `@`, else `invalid_email` unless an address; for every other channel
    /// `phone_number_required` when it has an `@`, else `invalid_phone_number` unless a number;
    /// the masked recipient is recorded on the request's span), then `channel` (`invalid_body`
    /// unless a string or absent, `channel_not_allowed` for any unknown name; `sms` when
    /// absent). An unknown channel's recipient is judged as a number's.
    fn parse(body: &JsonObject, span: &Span) -> Result<Self, ApiError> {
        let raw = body.required_str("recipient")?;
        let named = body.optional_str("channel")?;
        let channel = named.map(str::parse::<Channel>);
        let judged_as = match channel {
            Some(Ok(c)) => c,
            _ => Channel::Sms,
        };
        let recipient = Recipient::for_channel(raw, judged_as)?;
        record_phone(span, &recipient);
        let channel = match channel {
            None => Channel::Sms,
            Some(c) => c.map_err(|_| ApiError::ChannelNotAllowed)?,
        };
        let locale = body
            .optional_str("locale")?
            .map(Locale::parse)
            .transpose()?;
        let app_hash = body
            .optional_str("appHash")?
            .map(AppHash::parse)
            .transpose()?;
        Ok(Self {
            recipient,
            channel,
            locale,
            app_hash,
        })
    }
}

/// The verify body.
#[derive(ToSchema)]
pub struct VerifyRequest {
    /// The number, or the email address the code went to.
    #[schema(value_type = String, example = "+14155552671")]
    recipient: Recipient,
    /// ASCII digits, exactly the configured length (`VERIFYD_CODE_LENGTH`, 4 to 10).
    #[schema(
        value_type = String,
        example = "123456",
        pattern = "^[0-9]+$",
        min_length = 4,
        max_length = 10
    )]
    code: OtpCode,
}

impl VerifyRequest {
    /// `recipient` (as for a send), then `code` (`invalid_body` unless a string, `invalid_code`
    /// unless `length` ASCII digits).
    fn parse(body: &JsonObject, length: CodeLength, span: &Span) -> Result<Self, ApiError> {
        let recipient = Recipient::parse(body.required_str("recipient")?)?;
        record_phone(span, &recipient);
        let code = OtpCode::parse(body.required_str("code")?, length)?;
        Ok(Self { recipient, code })
    }
}

impl From<Verification> for VerificationData {
    fn from(v: Verification) -> Self {
        Self {
            valid: v.valid(),
            sid: v.sid.to_string(),
            to: v.to.as_str().to_owned(),
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

fn client_key(state: &AppState, peer: SocketAddr, headers: &MfaHeaders) -> ClientKey {
    let forwarded = headers.forwarded_for.iter().filter_map(|v| v.to_str().ok());
    ClientKey::from_ip(state.trusted_proxies.resolve(peer.ip(), forwarded))
}

/// The caller of a request: its client key (also recorded on the request's `span`) and its
/// user.
fn caller(
    state: &AppState,
    peer: SocketAddr,
    headers: &MfaHeaders,
    principal: &Principal,
    user: Option<String>,
    span: &Span,
) -> Caller {
    let client = client_key(state, peer, headers);
    span.record("client", client.as_str());
    Caller {
        client: Some(client),
        user,
        principal: Some(principal.0.clone()),
    }
}

/// Records the masked recipient on the request's `span` (never the recipient itself).
fn record_phone(span: &Span, phone: &Recipient) {
    if !span.is_disabled() {
        span.record("phone", phone.masked().as_str());
    }
}

/// Sends a code (or re-sends the pending one's), after the policy allows it.
#[utoipa::path(
    post,
    path = "/mfa/send-code",
    tag = "mfa",
    request_body = SendCodeRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Makes a retried send return the first answer and send no second SMS (24 h, per caller).",
            min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
    ),
    responses(
        (status = 200, description = "Sent (or re-sent within the TTL: the same code)", body = Envelope<VerificationData>),
        (status = 400, description = "`invalid_body`, `invalid_phone_number`, `invalid_email`, `phone_number_required`, `email_required`, `channel_not_allowed`, `invalid_locale` or `invalid_app_hash`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`country_not_allowed`, `number_type_not_allowed` or `fraud_blocked`", body = ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (names the bucket) or `max_send_attempts`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds"))),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 502, description = "`provider_error`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds"))),
    ),
    security(("api_key" = []))
)]
pub async fn send_code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    user: Option<Extension<AuthUser>>,
    headers: MfaHeaders,
    body: JsonObject,
) -> Response {
    let user = user.map(|Extension(u)| u.0);
    let key = match IdempotencyKey::from_header(headers.idempotency_key.as_ref()) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    match key {
        None => send_code_inner(&state, peer, &headers, &body, &principal, user)
            .await
            .into_response(),
        Some(key) => {
            idempotency::run(&state, &principal.0, key, &body.0, async {
                send_code_inner(&state, peer, &headers, &body, &principal, user)
                    .await
                    .into_response()
            })
            .await
        }
    }
}

async fn send_code_inner(
    state: &AppState,
    peer: SocketAddr,
    headers: &MfaHeaders,
    body: &JsonObject,
    principal: &Principal,
    user: Option<String>,
) -> Result<Json<Envelope<VerificationData>>, ApiError> {
    let span = Span::current();
    let SendCodeRequest {
        recipient,
        channel,
        locale,
        app_hash,
    } = SendCodeRequest::parse(body, &span)?;
    let caller = caller(state, peer, headers, principal, user, &span);
    let options = SendOptions {
        message: MessageOptions {
            locale,
            app_hash,
            ..MessageOptions::default()
        },
        ..SendOptions::default()
    };
    let verification = state
        .verifier
        .send_code_with(recipient, channel, caller, options)
        .await?;
    Ok(Json(Envelope {
        status_code: 200,
        message: "Verification code sent!",
        data: verification.into(),
    }))
}

/// Checks a code against the number's pending verification.
#[utoipa::path(
    post,
    path = "/mfa/verify",
    tag = "mfa",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Approved", body = Envelope<VerificationData>),
        (status = 400, description = "`invalid_body`, `invalid_phone_number`, `invalid_email`, `invalid_code` or `incorrect_code` (with `attemptsRemaining`)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`verification_not_found`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`max_check_attempts` or `rate_limited`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds"))),
        (status = 500, description = "`internal_error`", body = ErrorBody),
        (status = 502, description = "`provider_error`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds"))),
    ),
    security(("api_key" = []))
)]
pub async fn verify_code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    user: Option<Extension<AuthUser>>,
    headers: MfaHeaders,
    body: JsonObject,
) -> Response {
    let user = user.map(|Extension(u)| u.0);
    verify_code_inner(&state, peer, &headers, &body, &principal, user)
        .await
        .into_response()
}

async fn verify_code_inner(
    state: &AppState,
    peer: SocketAddr,
    headers: &MfaHeaders,
    body: &JsonObject,
    principal: &Principal,
    user: Option<String>,
) -> Result<Json<Envelope<VerificationData>>, ApiError> {
    let span = Span::current();
    let VerifyRequest { recipient, code } = VerifyRequest::parse(body, state.code_length, &span)?;
    let caller = caller(state, peer, headers, principal, user, &span);
    let verification = state.verifier.verify_code(recipient, code, caller).await?;
    Ok(Json(Envelope {
        status_code: 200,
        message: "Verification code is correct!",
        data: verification.into(),
    }))
}
