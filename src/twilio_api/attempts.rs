//! `/v2/Attempts` (list, with Twilio's filters and paging), `/v2/Attempts/{VL}` and
//! `/v2/Attempts/Summary`: the send attempts of the attempt log, of every service and of
//! `/mfa/*` (the default service). An attempt is `converted` once its verification was
//! approved. Each handler first waits for the log's writer to catch up with this replica's
//! requests, so an answer includes every attempt made before it was asked for.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::form::Params;
use super::services::{Meta, Paging};
use super::{TwilioApi, TwilioError, sid};
use crate::crypto::Keys;
use crate::domain::{Recipient, Timestamp};
use crate::http::AppState;
use crate::rotation::PHONE_CONTEXT;
use crate::store::{AttemptFilter, SendAttemptRow};

/// Twilio's `channel_data` of an attempt.
#[derive(Serialize)]
struct ChannelData {
    verification_sid: Option<String>,
    to: Option<String>,
    message_status: Option<String>,
    country: Option<String>,
    /// verifyd's own: the message's locale, SMS encoding (`gsm7`, `ucs2`) and SMS parts, when
    /// verifyd rendered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<u32>,
}

/// Twilio's Verification Attempt resource.
#[derive(Serialize)]
pub struct AttemptResource {
    sid: String,
    account_sid: String,
    service_sid: String,
    verification_sid: Option<String>,
    date_created: String,
    date_updated: String,
    conversion_status: &'static str,
    channel: String,
    price: Option<()>,
    channel_data: ChannelData,
    url: String,
}

impl AttemptResource {
    fn new(api: &TwilioApi, keys: &Keys, row: SendAttemptRow) -> Self {
        let r = row.record;
        let sid = r.sid.unwrap_or_default();
        let to = r
            .phone_sealed
            .as_deref()
            .and_then(|sealed| keys.open(sealed, PHONE_CONTEXT).ok())
            .and_then(|plain| String::from_utf8(plain).ok())
            // A number in E.164 as Twilio lists it; an email address masked (`j***@e***.com`).
            .map(|to| match Recipient::parse_stored(&to) {
                Some(email @ Recipient::Email(_)) => email.masked(),
                _ => to,
            });
        Self {
            url: api.url(&format!("/v2/Attempts/{sid}")),
            account_sid: api.account_sid.clone(),
            service_sid: r.service_sid,
            date_created: r.time.to_rfc3339(),
            date_updated: r.time.to_rfc3339(),
            conversion_status: if row.converted {
                "converted"
            } else {
                "unconverted"
            },
            channel: r.channel.unwrap_or_default(),
            price: None,
            channel_data: ChannelData {
                verification_sid: r.verification_sid.clone(),
                to,
                // The delivery status receipts moved, else the send's own (`sent`, `failed`).
                message_status: r
                    .delivery
                    .as_ref()
                    .map(|d| d.status.as_str().to_owned())
                    .or(r.status),
                country: r.country,
                locale: r.message.map(|m| m.locale),
                encoding: r.message.map(|m| m.encoding),
                segments: r.message.map(|m| m.segments),
            },
            verification_sid: r.verification_sid,
            sid,
        }
    }
}

/// An ISO 8601 date-time parameter.
fn date(params: &Params, name: &str) -> Result<Option<Timestamp>, TwilioError> {
    params
        .get(name)
        .map(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .ok()
                .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
                .map(Timestamp::from_millis)
                .ok_or_else(|| TwilioError::invalid(name))
        })
        .transpose()
}

/// The filters both the list and the summary take.
fn filter(keys: &Keys, params: &Params) -> Result<AttemptFilter, TwilioError> {
    let mut f = AttemptFilter {
        created_after: date(params, "DateCreatedAfter")?,
        created_before: date(params, "DateCreatedBefore")?,
        service_sid: params.sid("VerifyServiceSid", "VA")?.map(str::to_owned),
        ..AttemptFilter::default()
    };
    if let Some(country) = params.get("Country") {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(TwilioError::invalid("Country"));
        }
        f.country = Some(country.to_ascii_uppercase());
    }
    if let Some(channel) = params.get("Channel") {
        if !matches!(channel, "sms" | "call" | "email" | "whatsapp" | "rbm") {
            return Err(TwilioError::invalid("Channel"));
        }
        f.channel = Some(channel.to_owned());
    }
    if let Some(to) = params.get("ChannelData.To") {
        let to = Recipient::parse(to).map_err(|_| TwilioError::invalid("ChannelData.To"))?;
        f.phone_lookup = Some(keys.phone_lookup(&to.key()).to_vec());
    }
    Ok(f)
}

/// Waits until this replica's attempts so far are in the store.
async fn caught_up(state: &AppState) {
    if let Some(log) = state.verifier.attempt_log() {
        log.flush().await;
    }
}

#[derive(Serialize)]
pub struct AttemptPage {
    attempts: Vec<AttemptResource>,
    meta: Meta,
}

/// `GET /v2/Attempts`.
pub async fn list_attempts(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<AttemptPage>, TwilioError> {
    let api = &state.twilio;
    let mut f = filter(&state.keys, &params)?;
    f.verification_sid = params.sid("VerificationSid", "VE")?.map(str::to_owned);
    f.converted = match params.get("Status") {
        None => None,
        Some("converted") => Some(true),
        Some("unconverted") => Some(false),
        Some(_) => return Err(TwilioError::invalid("Status")),
    };
    let paging = Paging::from_params(&params, "VL")?;
    caught_up(&state).await;
    let mut rows = api
        .attempts
        .send_attempts(&f, paging.after.as_deref(), paging.size + 1)
        .await?;
    let more = rows.len() > paging.size as usize;
    rows.truncate(paging.size as usize);
    let next = more
        .then(|| rows.last().and_then(|r| r.record.sid.clone()))
        .flatten();
    let meta = paging.meta(api, "/v2/Attempts", "attempts", next.as_deref());
    Ok(Json(AttemptPage {
        attempts: rows
            .into_iter()
            .map(|r| AttemptResource::new(api, &state.keys, r))
            .collect(),
        meta,
    }))
}

/// `GET /v2/Attempts/{VL}`.
pub async fn fetch_attempt(
    State(state): State<AppState>,
    Path(attempt): Path<String>,
) -> Result<Json<AttemptResource>, TwilioError> {
    let api = &state.twilio;
    let path = format!("/v2/Attempts/{attempt}");
    if !sid::valid(&attempt, "VL") {
        return Err(TwilioError::not_found(&path));
    }
    caught_up(&state).await;
    let row = api
        .attempts
        .send_attempt(&attempt)
        .await?
        .ok_or_else(|| TwilioError::not_found(&path))?;
    Ok(Json(AttemptResource::new(api, &state.keys, row)))
}

/// Twilio's attempts summary.
#[derive(Serialize)]
pub struct Summary {
    total_attempts: u64,
    total_converted: u64,
    total_unconverted: u64,
    conversion_rate_percentage: Option<String>,
    url: String,
}

/// `GET /v2/Attempts/Summary`.
pub async fn summarize_attempts(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<Summary>, TwilioError> {
    let api = &state.twilio;
    let mut f = filter(&state.keys, &params)?;
    if let Some(prefix) = params.get("DestinationPrefix") {
        let digits = prefix.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TwilioError::invalid("DestinationPrefix"));
        }
        f.prefix = Some(prefix.to_owned());
    }
    caught_up(&state).await;
    let (total, converted) = api.attempts.attempt_summary(&f).await?;
    let rate = if total == 0 {
        "0".to_owned()
    } else {
        let pct = converted as f64 * 100.0 / total as f64;
        let text = format!("{pct:.9}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    Ok(Json(Summary {
        total_attempts: total,
        total_converted: converted,
        total_unconverted: total - converted,
        conversion_rate_percentage: Some(rate),
        url: api.url("/v2/Attempts/Summary"),
    }))
}
