//! `/v2/Services`: create, list (paged), fetch, update, delete. Services live in the store, so
//! every replica sees a new or changed one at once. The settings verifyd implements are kept and
//! applied to every verification of the service (`friendly_name` in the message, `code_length`,
//! `custom_code_enabled`, `psd2_enabled`, `skip_sms_to_landlines`,
//! `do_not_share_warning_enabled`); `lookup_enabled` and `default_template_sid` are kept and
//! answered. Parameters of features verifyd lacks (push, TOTP, WhatsApp sender, passkeys, TTS,
//! DTMF, event subscriptions) are validated and ignored, and their fields answer defaults.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::form::Params;
use super::{TwilioApi, TwilioError, sid};
use crate::domain::Timestamp;
use crate::http::AppState;
use crate::store::ServiceRecord;

/// Longest `friendly_name` (Twilio's limit).
const MAX_FRIENDLY_NAME: usize = 30;
/// `PageSize` bounds and default (Twilio's).
const MAX_PAGE_SIZE: i64 = 1000;
const DEFAULT_PAGE_SIZE: i64 = 50;

/// Twilio's Service resource.
#[derive(Serialize)]
pub struct ServiceResource {
    sid: String,
    account_sid: String,
    friendly_name: String,
    code_length: u8,
    lookup_enabled: bool,
    psd2_enabled: bool,
    skip_sms_to_landlines: bool,
    dtmf_input_required: bool,
    tts_name: Option<String>,
    do_not_share_warning_enabled: bool,
    custom_code_enabled: bool,
    push: serde_json::Value,
    totp: serde_json::Value,
    default_template_sid: Option<String>,
    whatsapp: serde_json::Value,
    passkeys: Option<serde_json::Value>,
    verify_event_subscription_enabled: bool,
    date_created: String,
    date_updated: String,
    url: String,
    links: serde_json::Value,
}

impl ServiceResource {
    /// The resource of `s` as the API answers it.
    pub fn new(api: &TwilioApi, s: ServiceRecord) -> Self {
        let base = api.url(&format!("/v2/Services/{}", s.sid));
        let link = |tail: &str| serde_json::Value::String(format!("{base}/{tail}"));
        Self {
            account_sid: api.account_sid.clone(),
            code_length: s.code_length,
            lookup_enabled: s.lookup_enabled,
            psd2_enabled: s.psd2_enabled,
            skip_sms_to_landlines: s.skip_sms_to_landlines,
            dtmf_input_required: false,
            tts_name: None,
            do_not_share_warning_enabled: s.do_not_share_warning_enabled,
            custom_code_enabled: s.custom_code_enabled,
            push: serde_json::json!({
                "include_date": false, "apn_credential_sid": null, "fcm_credential_sid": null
            }),
            totp: serde_json::json!({
                "issuer": s.friendly_name, "time_step": 30, "code_length": 6, "skew": 1
            }),
            default_template_sid: s.default_template_sid,
            whatsapp: serde_json::json!({ "msg_service_sid": null, "from": null }),
            passkeys: None,
            verify_event_subscription_enabled: false,
            date_created: s.created.to_rfc3339(),
            date_updated: s.updated.to_rfc3339(),
            links: serde_json::json!({
                "verification_checks": link("VerificationCheck"),
                "verifications": link("Verifications"),
                "rate_limits": link("RateLimits"),
                "messaging_configurations": link("MessagingConfigurations"),
                "entities": link("Entities"),
                "webhooks": link("Webhooks"),
                "access_tokens": link("AccessTokens"),
            }),
            url: base,
            friendly_name: s.friendly_name,
            sid: s.sid,
        }
    }
}

/// The parameters of features verifyd does not have: checked for their type, then ignored.
fn check_ignored(params: &Params) -> Result<(), TwilioError> {
    for name in [
        "DtmfInputRequired",
        "Push.IncludeDate",
        "VerifyEventSubscriptionEnabled",
    ] {
        params.bool(name)?;
    }
    for name in ["Totp.TimeStep", "Totp.CodeLength", "Totp.Skew"] {
        params.int(name, 0..=i64::from(u32::MAX))?;
    }
    params.sid("Push.ApnCredentialSid", "CR")?;
    params.sid("Push.FcmCredentialSid", "CR")?;
    params.sid("Whatsapp.MsgServiceSid", "MG")?;
    Ok(())
}

fn friendly_name(value: &str) -> Result<String, TwilioError> {
    let n = value.chars().count();
    if n == 0 || n > MAX_FRIENDLY_NAME || value.chars().any(char::is_control) {
        return Err(TwilioError::invalid("FriendlyName"));
    }
    Ok(value.to_owned())
}

/// Applies the settings in `params` to `service` (all validated before anything is kept).
fn apply(api: &TwilioApi, service: &mut ServiceRecord, params: &Params) -> Result<(), TwilioError> {
    if let Some(name) = params.get("FriendlyName") {
        service.friendly_name = friendly_name(name)?;
    }
    if let Some(len) = params.int("CodeLength", 4..=10)? {
        let len = u8::try_from(len).map_err(|_| TwilioError::invalid("CodeLength"))?;
        if service.sid == api.default_service && len != service.code_length {
            return Err(TwilioError::new(
                StatusCode::BAD_REQUEST,
                60200,
                "Invalid parameter: CodeLength (the default service's code length is VERIFYD_CODE_LENGTH)",
            ));
        }
        service.code_length = len;
    }
    let flags: [(&str, &mut bool); 5] = [
        ("LookupEnabled", &mut service.lookup_enabled),
        ("SkipSmsToLandlines", &mut service.skip_sms_to_landlines),
        ("Psd2Enabled", &mut service.psd2_enabled),
        (
            "DoNotShareWarningEnabled",
            &mut service.do_not_share_warning_enabled,
        ),
        ("CustomCodeEnabled", &mut service.custom_code_enabled),
    ];
    for (name, field) in flags {
        if let Some(v) = params.bool(name)? {
            *field = v;
        }
    }
    if let Some(t) = params.sid("DefaultTemplateSid", "HJ")? {
        service.default_template_sid = Some(t.to_owned());
    }
    check_ignored(params)
}

fn created(body: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// Creates a service from Twilio's create parameters (the API's and the CLI's one path).
///
/// # Errors
/// [`TwilioError`]: 60200 naming a bad parameter, or the store failed.
pub async fn new_service(
    api: &TwilioApi,
    params: &Params,
    now: Timestamp,
) -> Result<ServiceRecord, TwilioError> {
    let mut service = ServiceRecord {
        sid: sid::generate("VA"),
        friendly_name: friendly_name(params.required("FriendlyName")?)?,
        code_length: u8::try_from(api.default_code_length.get()).unwrap_or(6),
        lookup_enabled: false,
        skip_sms_to_landlines: false,
        psd2_enabled: false,
        do_not_share_warning_enabled: false,
        custom_code_enabled: false,
        default_template_sid: None,
        created: now,
        updated: now,
    };
    apply(api, &mut service, params)?;
    if !api.services.insert_service(&service).await? {
        return Err(TwilioError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal server error",
        ));
    }
    Ok(service)
}

/// `POST /v2/Services`.
pub async fn create_service(State(state): State<AppState>, params: Params) -> Response {
    let api = &state.twilio;
    match new_service(api, &params, state.clock.now()).await {
        Ok(service) => created(ServiceResource::new(api, service)),
        Err(e) => e.into_response(),
    }
}

/// `GET /v2/Services/{VA}`.
pub async fn fetch_service(
    State(state): State<AppState>,
    Path(sid): Path<String>,
) -> Result<Json<ServiceResource>, TwilioError> {
    let api = &state.twilio;
    let service = api.service(&sid, &format!("/v2/Services/{sid}")).await?;
    Ok(Json(ServiceResource::new(api, service)))
}

/// `POST /v2/Services/{VA}`: changes the settings sent, keeps the others.
pub async fn update_service(
    State(state): State<AppState>,
    Path(sid): Path<String>,
    params: Params,
) -> Result<Json<ServiceResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{sid}");
    let mut service = api.service(&sid, &path).await?;
    apply(api, &mut service, &params)?;
    service.updated = state.clock.now();
    if !api.services.update_service(&service).await? {
        return Err(TwilioError::not_found(&path));
    }
    Ok(Json(ServiceResource::new(api, service)))
}

/// `DELETE /v2/Services/{VA}` (not the default service).
pub async fn delete_service(
    State(state): State<AppState>,
    Path(sid): Path<String>,
) -> Result<StatusCode, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{sid}");
    if sid == api.default_service {
        return Err(TwilioError::new(
            StatusCode::BAD_REQUEST,
            60200,
            "Invalid parameter: Sid (the default service cannot be deleted)",
        ));
    }
    if !sid::valid(&sid, "VA") || !api.services.delete_service(&sid).await? {
        return Err(TwilioError::not_found(&path));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Twilio's list paging: `PageSize` (1–1000, default 50), `Page` and `PageToken` (`PA` + the
/// last sid of the page before). A page after the first needs its token.
pub struct Paging {
    pub size: u32,
    pub page: u32,
    pub after: Option<String>,
}

impl Paging {
    /// The paging parameters of a list request whose items have sids with `prefix`.
    ///
    /// # Errors
    /// 400/60200 naming the bad parameter.
    pub fn from_params(params: &Params, prefix: &str) -> Result<Self, TwilioError> {
        let size = params
            .int("PageSize", 1..=MAX_PAGE_SIZE)?
            .unwrap_or(DEFAULT_PAGE_SIZE);
        let page = params.int("Page", 0..=i64::from(u32::MAX))?.unwrap_or(0);
        let after = match params.get("PageToken") {
            None => None,
            Some(token) => match token.strip_prefix("PA") {
                Some(last) if sid::valid(last, prefix) => Some(last.to_owned()),
                _ => return Err(TwilioError::invalid("PageToken")),
            },
        };
        if page > 0 && after.is_none() {
            return Err(TwilioError::missing("PageToken"));
        }
        Ok(Self {
            size: u32::try_from(size).unwrap_or(50),
            page: u32::try_from(page).unwrap_or(0),
            after,
        })
    }

    /// The `meta` of a page at `path` (absolute URLs) whose last item is `last` when there are
    /// more after it.
    pub fn meta(&self, api: &TwilioApi, path: &str, key: &str, next_after: Option<&str>) -> Meta {
        let page_url = |page: u32, token: Option<&str>| {
            let mut url = format!("{}?PageSize={}&Page={page}", api.url(path), self.size);
            if let Some(t) = token {
                url.push_str(&format!("&PageToken=PA{t}"));
            }
            url
        };
        Meta {
            page: self.page,
            page_size: self.size,
            first_page_url: page_url(0, None),
            previous_page_url: None,
            url: page_url(self.page, self.after.as_deref()),
            next_page_url: next_after.map(|last| page_url(self.page + 1, Some(last))),
            key: key.to_owned(),
        }
    }
}

/// Twilio's list `meta`.
#[derive(Serialize)]
pub struct Meta {
    page: u32,
    page_size: u32,
    first_page_url: String,
    previous_page_url: Option<String>,
    url: String,
    next_page_url: Option<String>,
    key: String,
}

#[derive(Serialize)]
pub struct ServicePage {
    services: Vec<ServiceResource>,
    meta: Meta,
}

/// `GET /v2/Services`.
pub async fn list_services(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<ServicePage>, TwilioError> {
    let api = &state.twilio;
    let paging = Paging::from_params(&params, "VA")?;
    let mut rows = api
        .services
        .services(paging.after.as_deref(), paging.size + 1)
        .await?;
    let more = rows.len() > paging.size as usize;
    rows.truncate(paging.size as usize);
    let next = more.then(|| rows.last().map(|s| s.sid.clone())).flatten();
    let meta = paging.meta(api, "/v2/Services", "services", next.as_deref());
    Ok(Json(ServicePage {
        services: rows
            .into_iter()
            .map(|s| ServiceResource::new(api, s))
            .collect(),
        meta,
    }))
}
