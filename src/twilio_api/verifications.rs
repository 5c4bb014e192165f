//! `…/Verifications` (create 201, fetch, update to canceled/approved) and
//! `…/VerificationCheck` (right: 200 `approved`; wrong: 200 `pending`, counted; none pending:
//! 404/20404; 5 wrong: 429/60202). Every parameter is validated before anything is charged or
//! stored, then the request goes to the same [`Verifier`](crate::service::Verifier) calls as
//! `/mfa/send-code` and `/mfa/verify`, with the service's settings as [`SendOptions`].

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use super::TwilioApi;
use super::error::{TwilioError, from_service};
use super::form::Params;
use crate::domain::{
    Channel, CheckRefusal, CodeLength, NumberType, OtpCode, Recipient, Verification,
    VerificationSid, VerificationStatus,
};
use crate::http::AppState;
use crate::http::auth::Principal;
use crate::messages::{AppHash, Locale};
use crate::policy::{ClientKey, PolicyError};
use crate::provider::{CheckOptions, MessageOptions, ProviderError, SendOptions};
use crate::service::{Caller, ServiceError};
use crate::store::ServiceRecord;

/// Longest `Amount` or `Payee`.
const MAX_PSD2_FIELD: usize = 255;

/// One send attempt as Twilio lists it.
#[derive(Serialize)]
struct SendCodeAttempt {
    attempt_sid: String,
    channel: &'static str,
    time: String,
}

/// Twilio's Verification resource.
#[derive(Serialize)]
pub struct VerificationResource {
    sid: String,
    service_sid: String,
    account_sid: String,
    to: String,
    channel: &'static str,
    status: &'static str,
    valid: bool,
    lookup: Lookup,
    amount: Option<String>,
    payee: Option<String>,
    send_code_attempts: Vec<SendCodeAttempt>,
    date_created: String,
    date_updated: String,
    sna: Option<()>,
    url: String,
}

/// verifyd does no carrier lookup.
#[derive(Serialize)]
struct Lookup {
    carrier: Option<()>,
}

/// Twilio's VerificationCheck resource.
#[derive(Serialize)]
pub struct CheckResource {
    sid: String,
    service_sid: String,
    account_sid: String,
    to: String,
    channel: &'static str,
    status: &'static str,
    valid: bool,
    amount: Option<String>,
    payee: Option<String>,
    date_created: String,
    date_updated: String,
    sna_attempts_error_codes: Vec<()>,
}

/// The PSD2 fields of a request (present only for a `psd2_enabled` service).
#[derive(Clone, Default)]
struct Psd2 {
    amount: Option<String>,
    payee: Option<String>,
}

impl Psd2 {
    /// Required on create and on check for a `psd2_enabled` service (400/60206); ignored (and
    /// answered null) otherwise, as Twilio does.
    fn from_params(service: &ServiceRecord, params: &Params) -> Result<Self, TwilioError> {
        if !service.psd2_enabled {
            return Ok(Self::default());
        }
        let field = |name: &str| -> Result<String, TwilioError> {
            match params.get(name) {
                Some(v) if !v.is_empty() && v.chars().count() <= MAX_PSD2_FIELD => Ok(v.to_owned()),
                Some(v) if !v.is_empty() => Err(TwilioError::invalid(name)),
                _ => Err(TwilioError::new(
                    StatusCode::BAD_REQUEST,
                    60206,
                    "'Amount' and 'Payee' params are required for PSD2 services",
                )),
            }
        };
        Ok(Self {
            amount: Some(field("Amount")?),
            payee: Some(field("Payee")?),
        })
    }

    /// What the code's HMAC binds (length-prefixed, so no two pairs bind alike).
    fn binding(&self) -> Option<String> {
        match (&self.amount, &self.payee) {
            (Some(a), Some(p)) => Some(format!("psd2:{}:{a}\n{p}", a.len())),
            _ => None,
        }
    }
}

fn verification_resource(
    api: &TwilioApi,
    service: &str,
    v: Verification,
    psd2: Psd2,
) -> VerificationResource {
    VerificationResource {
        url: api.url(&format!("/v2/Services/{service}/Verifications/{}", v.sid)),
        valid: v.valid(),
        sid: v.sid.to_string(),
        service_sid: service.to_owned(),
        account_sid: api.account_sid.clone(),
        to: v.to.as_str().to_owned(),
        channel: v.channel.as_str(),
        status: v.status.as_str(),
        lookup: Lookup { carrier: None },
        amount: psd2.amount,
        payee: psd2.payee,
        send_code_attempts: v
            .send_attempts
            .into_iter()
            .map(|a| SendCodeAttempt {
                attempt_sid: a.sid.to_string(),
                channel: a.channel.as_str(),
                time: a.time.to_rfc3339(),
            })
            .collect(),
        date_created: v.created.to_rfc3339(),
        date_updated: v.updated.to_rfc3339(),
        sna: None,
    }
}

fn check_resource(api: &TwilioApi, service: &str, v: Verification, psd2: Psd2) -> CheckResource {
    CheckResource {
        valid: v.valid(),
        sid: v.sid.to_string(),
        service_sid: service.to_owned(),
        account_sid: api.account_sid.clone(),
        to: v.to.as_str().to_owned(),
        channel: v.channel.as_str(),
        status: v.status.as_str(),
        amount: psd2.amount,
        payee: psd2.payee,
        date_created: v.created.to_rfc3339(),
        date_updated: v.updated.to_rfc3339(),
        sna_attempts_error_codes: Vec::new(),
    }
}

/// A verification's `sid` from the path: malformed is as unknown (404/20404).
fn verification_sid(sid: &str, path: &str) -> Result<VerificationSid, TwilioError> {
    VerificationSid::parse(sid).ok_or_else(|| TwilioError::not_found(path))
}

/// verifyd's refusal in Twilio's words; a landline refused by `skip_sms_to_landlines` (or by
/// the number-type rules) is 60205.
fn refusal(api: &TwilioApi, e: ServiceError) -> TwilioError {
    match e {
        ServiceError::Policy(PolicyError::NumberTypeNotAllowed(NumberType::FixedLine)) => {
            TwilioError::new(
                StatusCode::BAD_REQUEST,
                60205,
                "SMS is not supported by landline phone number",
            )
        }
        other => from_service(other, api.ttl),
    }
}

/// Every create parameter, validated (in Twilio's order of meaning) before anything happens.
struct CreateRequest {
    phone: Recipient,
    channel: Channel,
    client: Option<ClientKey>,
    options: SendOptions,
    psd2: Psd2,
    /// `RateLimits`: names and values, charged after every other parameter was checked.
    rate_limits: Option<serde_json::Map<String, serde_json::Value>>,
}

fn parse_create(service: &ServiceRecord, params: &Params) -> Result<CreateRequest, TwilioError> {
    // `To` is judged first, as the recipient of the channel named (a number for an unknown one):
    // an email address only for `email`, a number for every other channel.
    let to = params.required("To")?;
    let named = params
        .get("Channel")
        .and_then(|c| c.parse::<Channel>().ok());
    let phone = Recipient::for_channel(to, named.unwrap_or(Channel::Sms))
        .map_err(super::error::recipient_error)?;
    let channel = params
        .required("Channel")?
        .parse::<Channel>()
        .map_err(|_| TwilioError::invalid("Channel"))?;
    let service_name = match params.get("CustomFriendlyName") {
        None => service.friendly_name.clone(),
        Some(name)
            if !name.is_empty()
                && name.chars().count() <= 30
                && !name.chars().any(char::is_control) =>
        {
            name.to_owned()
        }
        Some(_) => return Err(TwilioError::invalid("CustomFriendlyName")),
    };
    // Every Twilio locale, and a known language with another region (`de-AT` is `de`).
    let locale = params
        .get("Locale")
        .map(Locale::parse)
        .transpose()
        .map_err(|_| TwilioError::invalid("Locale"))?;
    let app_hash = params
        .get("AppHash")
        .map(AppHash::parse)
        .transpose()
        .map_err(|_| TwilioError::invalid("AppHash"))?;
    let custom_code = match params.get("CustomCode") {
        None => None,
        Some(_) if !service.custom_code_enabled => {
            return Err(TwilioError::feature_disabled("CustomCode"));
        }
        Some(code) => Some(
            OtpCode::from_stored(code.to_owned())
                .ok_or_else(|| TwilioError::invalid("CustomCode"))?,
        ),
    };
    let psd2 = Psd2::from_params(service, params)?;
    let client = match params.get("DeviceIp") {
        None => None,
        Some(ip) => Some(ClientKey::from_ip(
            ip.parse::<IpAddr>()
                .map_err(|_| TwilioError::invalid("DeviceIp"))?,
        )),
    };
    let rate_limits = params.json_object("RateLimits")?;
    params.sid("TemplateSid", "HJ")?;
    if let Some(v) = params.get("RiskCheck")
        && !matches!(v, "enable" | "disable")
    {
        return Err(TwilioError::invalid("RiskCheck"));
    }
    for name in [
        "Tags",
        "ChannelConfiguration",
        "TemplateCustomSubstitutions",
    ] {
        params.json_object(name)?;
    }
    if let Some(v) = params.get("SendDigits")
        && (v.len() > 32
            || !v
                .bytes()
                .all(|b| b.is_ascii_digit() || b"wW#*".contains(&b)))
    {
        return Err(TwilioError::invalid("SendDigits"));
    }
    params.bool("EnableSnaClientToken")?;
    let options = SendOptions {
        code_length: CodeLength::new(service.code_length),
        custom_code,
        binding: psd2.binding(),
        message: MessageOptions {
            service_name: Some(service_name),
            do_not_share_warning: service.do_not_share_warning_enabled,
            app_hash,
            locale,
        },
        skip_landlines: service.skip_sms_to_landlines,
        scope: None,
        extra_buckets: Vec::new(),
    };
    Ok(CreateRequest {
        phone,
        channel,
        client,
        options,
        psd2,
        rate_limits,
    })
}

/// Records the masked number on the request's span (never the number itself).
fn with_facts(response: Response, phone: Option<&Recipient>) -> Response {
    let span = tracing::Span::current();
    if let Some(phone) = phone
        && !span.is_disabled()
    {
        span.record("phone", phone.masked().as_str());
    }
    response
}

/// `POST /v2/Services/{VA}/Verifications`: 201 with the verification (a resend within the
/// window: the same `VE`, the same code, one more `send_code_attempts` entry).
pub async fn create_verification(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Response {
    let api = &state.twilio;
    let mut phone = None;
    let result = async {
        let record = api
            .service(&service, &format!("/v2/Services/{service}/Verifications"))
            .await?;
        let mut request = parse_create(&record, &params)?;
        phone = Some(request.phone.clone());
        request.options.scope = api.scope(&service).map(str::to_owned);
        if let Some(limits) = &request.rate_limits {
            request.options.extra_buckets =
                super::rate_limits::charges(api, &state.keys, &service, limits).await?;
        }
        let caller = Caller {
            client: request.client,
            user: None,
            principal: Some(principal.0),
        };
        let verification = state
            .verifier
            .send_code_with(request.phone, request.channel, caller, request.options)
            .await
            .map_err(|e| refusal(api, e))?;
        Ok::<_, TwilioError>(
            (
                StatusCode::CREATED,
                Json(verification_resource(
                    api,
                    &service,
                    verification,
                    request.psd2,
                )),
            )
                .into_response(),
        )
    }
    .await;
    with_facts(
        result.unwrap_or_else(IntoResponse::into_response),
        phone.as_ref(),
    )
}

/// `GET /v2/Services/{VA}/Verifications/{VE}`.
pub async fn fetch_verification(
    State(state): State<AppState>,
    Path((service, sid)): Path<(String, String)>,
) -> Result<Json<VerificationResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/Verifications/{sid}");
    api.service(&service, &path).await?;
    let sid = verification_sid(&sid, &path)?;
    let v = state
        .verifier
        .fetch_verification(&sid, api.scope(&service))
        .await
        .map_err(|e| not_found_or(api, e, &path))?;
    Ok(Json(verification_resource(
        api,
        &service,
        v,
        Psd2::default(),
    )))
}

/// A not-found outcome names the resource; anything else maps as usual.
fn not_found_or(api: &TwilioApi, e: ServiceError, path: &str) -> TwilioError {
    match e {
        ServiceError::Provider(ProviderError::NotFound)
        | ServiceError::Refused(CheckRefusal::NotFound | CheckRefusal::Expired) => {
            TwilioError::not_found(path)
        }
        other => refusal(api, other),
    }
}

/// `POST /v2/Services/{VA}/Verifications/{VE}` with `Status=canceled|approved`.
pub async fn update_verification(
    State(state): State<AppState>,
    Path((service, sid)): Path<(String, String)>,
    params: Params,
) -> Result<Json<VerificationResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/Verifications/{sid}");
    api.service(&service, &path).await?;
    let status = match params.required("Status")? {
        "canceled" => VerificationStatus::Canceled,
        "approved" => VerificationStatus::Approved,
        _ => return Err(TwilioError::invalid("Status")),
    };
    let sid = verification_sid(&sid, &path)?;
    let v = state
        .verifier
        .finish_verification(&sid, api.scope(&service), status)
        .await
        .map_err(|e| not_found_or(api, e, &path))?;
    Ok(Json(verification_resource(
        api,
        &service,
        v,
        Psd2::default(),
    )))
}

/// `POST /v2/Services/{VA}/VerificationCheck`: `Code` and `To` or `VerificationSid`.
pub async fn check_verification(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Response {
    let api = &state.twilio;
    let mut phone = None;
    let result = async {
        let path = format!("/v2/Services/{service}/VerificationCheck");
        let record = api.service(&service, &path).await?;
        let scope = api.scope(&service);
        let raw = params.required("Code")?;
        // A service with custom codes takes any 4 to 10 digits; else exactly its length.
        let code = if record.custom_code_enabled {
            OtpCode::from_stored(raw.to_owned())
        } else {
            CodeLength::new(record.code_length).and_then(|len| OtpCode::parse(raw, len).ok())
        }
        .ok_or_else(|| TwilioError::invalid("Code"))?;
        let to = match (params.get("VerificationSid"), params.get("To")) {
            (Some(sid), _) => {
                let sid = VerificationSid::parse(sid)
                    .ok_or_else(|| TwilioError::invalid("VerificationSid"))?;
                let psd2 = Psd2::from_params(&record, &params)?;
                let found = state
                    .verifier
                    .fetch_verification(&sid, scope)
                    .await
                    .map_err(|e| {
                        not_found_or(
                            api,
                            e,
                            &format!("/v2/Services/{service}/Verifications/{sid}"),
                        )
                    })?;
                (found.to, psd2)
            }
            (None, Some(to)) if !to.is_empty() => (
                Recipient::parse(to).map_err(super::error::recipient_error)?,
                Psd2::from_params(&record, &params)?,
            ),
            _ => return Err(TwilioError::missing("To")),
        };
        let (to, psd2) = to;
        phone = Some(to.clone());
        let caller = Caller {
            client: None,
            user: None,
            principal: Some(principal.0),
        };
        let options = CheckOptions {
            scope: scope.map(str::to_owned),
            binding: psd2.binding(),
        };
        let answer = match state
            .verifier
            .verify_code_with(to, code, caller, options)
            .await
        {
            Ok(v) => check_resource(api, &service, v, psd2),
            Err(ServiceError::Refused(CheckRefusal::Incorrect {
                pending: Some(v), ..
            })) => check_resource(api, &service, *v, psd2),
            Err(e) => return Err(not_found_or(api, e, &path)),
        };
        Ok(Json(answer).into_response())
    }
    .await;
    with_facts(
        result.unwrap_or_else(IntoResponse::into_response),
        phone.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psd2_bindings_differ_for_different_pairs() {
        let pair = |a: &str, p: &str| Psd2 {
            amount: Some(a.to_owned()),
            payee: Some(p.to_owned()),
        };
        assert_ne!(pair("1", "2\n3").binding(), pair("1\n2", "3").binding());
        assert_ne!(pair("10", "x").binding(), pair("1", "x").binding());
        assert_eq!(Psd2::default().binding(), None);
    }
}
