//! `/v2/Services/{VA}/RateLimits` and their `Buckets`: Twilio's rate-limit model, kept in the
//! store per service and charged with verifyd's own limiter. A verification create with
//! `RateLimits={"<unique name>": "<value>", …}` charges, for each named rate limit, each of its
//! buckets keyed by (service, name, value), together with verifyd's own buckets: all or
//! nothing, as everywhere ([`charges`]). Twilio's rules: a unique name once per service
//! (60208), at most 5 buckets per rate limit (60210), no two buckets with one interval (60211).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::form::Params;
use super::services::{Meta, Paging};
use super::{TwilioApi, TwilioError, sid};
use crate::config::BucketConfig;
use crate::crypto::Keys;
use crate::http::AppState;
use crate::policy::{BucketName, BucketRequest, Scope};
use crate::store::{BucketChange, BucketRecord, RateLimitRecord};

/// Longest unique name and description.
const MAX_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 255;
/// Longest bucket interval (one year) and largest max.
const MAX_INTERVAL: i64 = 365 * 86_400;
const MAX_MAX: i64 = 1_000_000_000;

/// Twilio's RateLimit resource.
#[derive(Serialize)]
pub struct RateLimitResource {
    sid: String,
    service_sid: String,
    account_sid: String,
    unique_name: String,
    description: Option<String>,
    date_created: String,
    date_updated: String,
    url: String,
    links: serde_json::Value,
}

impl RateLimitResource {
    fn new(api: &TwilioApi, r: RateLimitRecord) -> Self {
        let url = api.url(&format!(
            "/v2/Services/{}/RateLimits/{}",
            r.service_sid, r.sid
        ));
        Self {
            links: serde_json::json!({ "buckets": format!("{url}/Buckets") }),
            url,
            account_sid: api.account_sid.clone(),
            date_created: r.created.to_rfc3339(),
            date_updated: r.updated.to_rfc3339(),
            sid: r.sid,
            service_sid: r.service_sid,
            unique_name: r.unique_name,
            description: r.description,
        }
    }
}

/// Twilio's Bucket resource.
#[derive(Serialize)]
pub struct BucketResource {
    sid: String,
    rate_limit_sid: String,
    service_sid: String,
    account_sid: String,
    max: u32,
    interval: u32,
    date_created: String,
    date_updated: String,
    url: String,
}

impl BucketResource {
    fn new(api: &TwilioApi, b: BucketRecord) -> Self {
        Self {
            url: api.url(&format!(
                "/v2/Services/{}/RateLimits/{}/Buckets/{}",
                b.service_sid, b.rate_limit_sid, b.sid
            )),
            account_sid: api.account_sid.clone(),
            max: b.max,
            interval: b.interval,
            date_created: b.created.to_rfc3339(),
            date_updated: b.updated.to_rfc3339(),
            sid: b.sid,
            rate_limit_sid: b.rate_limit_sid,
            service_sid: b.service_sid,
        }
    }
}

fn created(body: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

fn description(params: &Params) -> Result<Option<String>, TwilioError> {
    match params.get("Description") {
        Some(d) if d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control) => {
            Err(TwilioError::invalid("Description"))
        }
        d => Ok(d.map(str::to_owned)),
    }
}

/// The rate limit `sid` of `service` (both checked), or 404 for `path`.
async fn rate_limit(
    api: &TwilioApi,
    service: &str,
    sid: &str,
    path: &str,
) -> Result<RateLimitRecord, TwilioError> {
    api.service(service, path).await?;
    if !sid::valid(sid, "RK") {
        return Err(TwilioError::not_found(path));
    }
    api.rate_limits
        .rate_limit(service, sid)
        .await?
        .ok_or_else(|| TwilioError::not_found(path))
}

/// `POST /v2/Services/{VA}/RateLimits`.
pub async fn create_rate_limit(
    State(state): State<AppState>,
    Path(service): Path<String>,
    params: Params,
) -> Response {
    let api = &state.twilio;
    let result = async {
        api.service(&service, &format!("/v2/Services/{service}/RateLimits"))
            .await?;
        let name = params.required("UniqueName")?;
        if name.len() > MAX_NAME || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(TwilioError::invalid("UniqueName"));
        }
        let now = state.clock.now();
        let record = RateLimitRecord {
            sid: sid::generate("RK"),
            service_sid: service.clone(),
            unique_name: name.to_owned(),
            description: description(&params)?,
            created: now,
            updated: now,
        };
        if !api.rate_limits.insert_rate_limit(&record).await? {
            return Err(TwilioError::new(
                StatusCode::CONFLICT,
                60208,
                format!("A rate limit with the unique name {name} already exists"),
            ));
        }
        Ok(created(RateLimitResource::new(api, record)))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Serialize)]
pub struct RateLimitPage {
    rate_limits: Vec<RateLimitResource>,
    meta: Meta,
}

/// `GET /v2/Services/{VA}/RateLimits`.
pub async fn list_rate_limits(
    State(state): State<AppState>,
    Path(service): Path<String>,
    params: Params,
) -> Result<Json<RateLimitPage>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/RateLimits");
    api.service(&service, &path).await?;
    let paging = Paging::from_params(&params, "RK")?;
    let mut rows = api
        .rate_limits
        .rate_limits(&service, paging.after.as_deref(), paging.size + 1)
        .await?;
    let more = rows.len() > paging.size as usize;
    rows.truncate(paging.size as usize);
    let next = more.then(|| rows.last().map(|r| r.sid.clone())).flatten();
    let meta = paging.meta(api, &path, "rate_limits", next.as_deref());
    Ok(Json(RateLimitPage {
        rate_limits: rows
            .into_iter()
            .map(|r| RateLimitResource::new(api, r))
            .collect(),
        meta,
    }))
}

/// `GET /v2/Services/{VA}/RateLimits/{RK}`.
pub async fn fetch_rate_limit(
    State(state): State<AppState>,
    Path((service, sid)): Path<(String, String)>,
) -> Result<Json<RateLimitResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/RateLimits/{sid}");
    let r = rate_limit(api, &service, &sid, &path).await?;
    Ok(Json(RateLimitResource::new(api, r)))
}

/// `POST /v2/Services/{VA}/RateLimits/{RK}`: its description.
pub async fn update_rate_limit(
    State(state): State<AppState>,
    Path((service, sid)): Path<(String, String)>,
    params: Params,
) -> Result<Json<RateLimitResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/RateLimits/{sid}");
    let mut r = rate_limit(api, &service, &sid, &path).await?;
    if params.get("Description").is_some() {
        r.description = description(&params)?;
    }
    r.updated = state.clock.now();
    if !api.rate_limits.update_rate_limit(&r).await? {
        return Err(TwilioError::not_found(&path));
    }
    Ok(Json(RateLimitResource::new(api, r)))
}

/// `DELETE /v2/Services/{VA}/RateLimits/{RK}` (with its buckets).
pub async fn delete_rate_limit(
    State(state): State<AppState>,
    Path((service, sid)): Path<(String, String)>,
) -> Result<StatusCode, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/RateLimits/{sid}");
    rate_limit(api, &service, &sid, &path).await?;
    if !api.rate_limits.delete_rate_limit(&service, &sid).await? {
        return Err(TwilioError::not_found(&path));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A bucket change's outcome in Twilio's words.
fn bucket_answer(
    api: &TwilioApi,
    change: BucketChange,
    path: &str,
) -> Result<BucketResource, TwilioError> {
    match change {
        BucketChange::Done(b) => Ok(BucketResource::new(api, b)),
        BucketChange::TooMany => Err(TwilioError::new(
            StatusCode::BAD_REQUEST,
            60210,
            "A rate limit has at most 5 buckets",
        )),
        BucketChange::SameInterval => Err(TwilioError::new(
            StatusCode::BAD_REQUEST,
            60211,
            "Another bucket of this rate limit has this interval",
        )),
        BucketChange::NotFound => Err(TwilioError::not_found(path)),
    }
}

fn max_and_interval(
    params: &Params,
    required: bool,
) -> Result<(Option<u32>, Option<u32>), TwilioError> {
    let get = |name: &str, top: i64| -> Result<Option<u32>, TwilioError> {
        if required {
            params.required(name)?;
        }
        Ok(params
            .int(name, 1..=top)?
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
    };
    Ok((get("Max", MAX_MAX)?, get("Interval", MAX_INTERVAL)?))
}

/// `POST /v2/Services/{VA}/RateLimits/{RK}/Buckets`.
pub async fn create_bucket(
    State(state): State<AppState>,
    Path((service, limit)): Path<(String, String)>,
    params: Params,
) -> Response {
    let api = &state.twilio;
    let result = async {
        let path = format!("/v2/Services/{service}/RateLimits/{limit}/Buckets");
        rate_limit(api, &service, &limit, &path).await?;
        let (max, interval) = max_and_interval(&params, true)?;
        let now = state.clock.now();
        let bucket = BucketRecord {
            sid: sid::generate("BL"),
            rate_limit_sid: limit.clone(),
            service_sid: service.clone(),
            max: max.unwrap_or(1),
            interval: interval.unwrap_or(1),
            created: now,
            updated: now,
        };
        let change = api.rate_limits.insert_bucket(&bucket).await?;
        Ok::<_, TwilioError>(created(bucket_answer(api, change, &path)?))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Serialize)]
pub struct BucketPage {
    buckets: Vec<BucketResource>,
    meta: Meta,
}

/// `GET /v2/Services/{VA}/RateLimits/{RK}/Buckets`.
pub async fn list_buckets(
    State(state): State<AppState>,
    Path((service, limit)): Path<(String, String)>,
    params: Params,
) -> Result<Json<BucketPage>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/RateLimits/{limit}/Buckets");
    rate_limit(api, &service, &limit, &path).await?;
    let paging = Paging::from_params(&params, "BL")?;
    let mut rows = api
        .rate_limits
        .buckets(&limit, paging.after.as_deref(), paging.size + 1)
        .await?;
    let more = rows.len() > paging.size as usize;
    rows.truncate(paging.size as usize);
    let next = more.then(|| rows.last().map(|b| b.sid.clone())).flatten();
    let meta = paging.meta(api, &path, "buckets", next.as_deref());
    Ok(Json(BucketPage {
        buckets: rows
            .into_iter()
            .map(|b| BucketResource::new(api, b))
            .collect(),
        meta,
    }))
}

/// The bucket `sid` of the rate limit, or 404 for `path`.
async fn bucket(
    api: &TwilioApi,
    service: &str,
    limit: &str,
    sid: &str,
    path: &str,
) -> Result<BucketRecord, TwilioError> {
    rate_limit(api, service, limit, path).await?;
    if !sid::valid(sid, "BL") {
        return Err(TwilioError::not_found(path));
    }
    api.rate_limits
        .bucket(limit, sid)
        .await?
        .ok_or_else(|| TwilioError::not_found(path))
}

/// `GET /v2/Services/{VA}/RateLimits/{RK}/Buckets/{BL}`.
pub async fn fetch_bucket(
    State(state): State<AppState>,
    Path((service, limit, sid)): Path<(String, String, String)>,
) -> Result<Json<BucketResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/RateLimits/{limit}/Buckets/{sid}");
    let b = bucket(api, &service, &limit, &sid, &path).await?;
    Ok(Json(BucketResource::new(api, b)))
}

/// `POST /v2/Services/{VA}/RateLimits/{RK}/Buckets/{BL}`: its max and interval.
pub async fn update_bucket(
    State(state): State<AppState>,
    Path((service, limit, sid)): Path<(String, String, String)>,
    params: Params,
) -> Result<Json<BucketResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/RateLimits/{limit}/Buckets/{sid}");
    let mut b = bucket(api, &service, &limit, &sid, &path).await?;
    let (max, interval) = max_and_interval(&params, false)?;
    b.max = max.unwrap_or(b.max);
    b.interval = interval.unwrap_or(b.interval);
    b.updated = state.clock.now();
    let change = api.rate_limits.update_bucket(&b).await?;
    Ok(Json(bucket_answer(api, change, &path)?))
}

/// `DELETE /v2/Services/{VA}/RateLimits/{RK}/Buckets/{BL}`.
pub async fn delete_bucket(
    State(state): State<AppState>,
    Path((service, limit, sid)): Path<(String, String, String)>,
) -> Result<StatusCode, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Services/{service}/RateLimits/{limit}/Buckets/{sid}");
    bucket(api, &service, &limit, &sid, &path).await?;
    if !api.rate_limits.delete_bucket(&limit, &sid).await? {
        return Err(TwilioError::not_found(&path));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The buckets a verification create's `RateLimits` JSON charges: for each name, every bucket
/// of the service's rate limit by that name, keyed by (service, name, value) through a keyed
/// digest (values may be personal data). A name the service has no rate limit by is 60200.
///
/// # Errors
/// [`TwilioError`]: 60200 naming `RateLimits`, or the store failed.
pub async fn charges(
    api: &TwilioApi,
    keys: &Keys,
    service: &str,
    limits: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<BucketRequest>, TwilioError> {
    let mut values = Vec::with_capacity(limits.len());
    for (name, value) in limits {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(TwilioError::invalid("RateLimits")),
        };
        values.push((name.clone(), value));
    }
    let names: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
    let defined = api.rate_limits.buckets_by_name(service, &names).await?;
    let mut out = Vec::new();
    for (name, value) in &values {
        let Some((_, buckets)) = defined.iter().find(|(n, _)| n == name) else {
            return Err(TwilioError::new(
                StatusCode::BAD_REQUEST,
                60200,
                format!("Invalid parameter: RateLimits (no rate limit named {name})"),
            ));
        };
        let key = keys.bucket_key("rate_limit", &format!("{service}\n{name}\n{value}"));
        for b in buckets {
            out.push(BucketRequest::new(
                Scope::Send,
                BucketName::RateLimit,
                &key,
                BucketConfig {
                    max: b.max,
                    interval: Duration::from_secs(u64::from(b.interval)),
                },
            ));
        }
    }
    Ok(out)
}
