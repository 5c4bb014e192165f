//! The console's routes. Every page but the login page and the stylesheet needs a session
//! ([`super::session`]); without one (none, forged, expired, its key revoked) the answer is the
//! login page with 401. Every form that changes something carries the session's CSRF token: a
//! missing or wrong one answers 403 and changes nothing. Bad input (a filter out of range, an
//! unknown sid, a number that is not one) answers a page that says so with a 4xx status.
//! Numbers are shown masked everywhere; only the dev outbox shows a message body.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::Markup;
use serde::Deserialize;

use super::overview::{Figures, per_hour};
use super::pages::{self, FilterForm, Frame, OutboxEntry, Row, SafeEntry};
use super::session::{self, Session, SessionError};
use super::{LOGIN_INTERVAL, LOGIN_MAX};
use crate::crypto::api_key_digest;
use crate::domain::{PhoneNumber, Recipient, Timestamp};
use crate::error::Chain;
use crate::http::AppState;
use crate::limiter::Decision;
use crate::policy::{BucketName, BucketRequest, ClientKey, Scope};
use crate::rotation::PHONE_CONTEXT;
use crate::store::console::{ConsoleFilter, Destination, HOUR_MS, LoggedAttempt};
use crate::store::{AttemptKind, StoreError};

/// Rows per attempts page.
const PAGE: u32 = 50;
/// Countries and prefixes listed on the overview.
const TOP: u32 = 10;

/// An HTML answer with the console's security headers: never cached, never framed, no script
/// allowed, forms only to this origin.
pub(super) fn html(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// 303 to `location`, with `cookie` set when given.
pub(super) fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The login page with `status` (and a message), dropping a cookie that opened no session.
fn login_answer(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
    clear: bool,
) -> Response {
    let mut response = html(status, pages::login(error));
    if clear
        && let Ok(v) = HeaderValue::from_str(&session::clear_cookie(state.console.secure_cookies))
    {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// Waits until the attempt log has written what was recorded before this request, so a page
/// shows the requests that came before it.
async fn settle(state: &AppState) {
    if let Some(log) = state.verifier.attempt_log() {
        log.flush().await;
    }
}

/// The session of a request, with what its pages' header needs; else the login page (401).
pub(super) fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Session, Frame), Box<Response>> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let opened = match session::cookie_in(cookies) {
        None => Err(SessionError::Missing),
        Some(value) => Session::open(value, &state.keys, &state.twilio.keys, state.clock.now()),
    };
    match opened {
        Ok(s) => {
            let frame = Frame {
                csrf: s.csrf(&state.keys),
                outbox: state.outbox.is_some(),
            };
            Ok((s, frame))
        }
        Err(SessionError::Missing) => Err(Box::new(login_answer(
            state,
            StatusCode::UNAUTHORIZED,
            None,
            false,
        ))),
        Err(e) => {
            tracing::info!(reason = %e, "console session refused");
            let message = match e {
                SessionError::Expired => "Your session ended. Log in again.",
                _ => "Log in again.",
            };
            Err(Box::new(login_answer(
                state,
                StatusCode::UNAUTHORIZED,
                Some(message),
                true,
            )))
        }
    }
}

/// A page that only says what went wrong.
pub(super) fn message(status: StatusCode, frame: &Frame, title: &str, text: &str) -> Response {
    html(status, pages::message(title, frame, text))
}

/// The answer to a store failure: 503 (or 500), the cause logged, never shown.
pub(super) fn store_failed(frame: &Frame, e: &StoreError) -> Response {
    tracing::error!(error = %Chain(e), "console: store failed");
    let status = match e {
        StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    message(
        status,
        frame,
        "Unavailable",
        "The store did not answer. Nothing was changed; try again in a moment.",
    )
}

pub(super) fn csrf_refused(frame: &Frame) -> Response {
    message(
        StatusCode::FORBIDDEN,
        frame,
        "Form refused",
        "This form did not come from this console session (its CSRF token is missing or wrong). Nothing was changed.",
    )
}

/// A state-changing form's fields.
#[derive(Deserialize, Default)]
pub(super) struct FormFields {
    pub(super) csrf: Option<String>,
    key: Option<String>,
    number: Option<String>,
    pub(super) sid: Option<String>,
    /// An event id (`msg_…`) to replay.
    pub(super) id: Option<String>,
    /// `dead`: replay every dead event.
    pub(super) all: Option<String>,
}

pub(super) fn form(body: &Bytes) -> FormFields {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// Whether the browser says the request came from another site (`Sec-Fetch-Site`), or its
/// `Origin` names another host: the login form accepts neither.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site")
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None | Some("null") => false,
        Some(origin) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            host != Some(origin_host)
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

/// `GET /console/login`.
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if signed_in(&state, &headers).is_ok() {
        return see_other("/console", None);
    }
    login_answer(&state, StatusCode::OK, None, false)
}

/// `POST /console/login` with `key`: rate limited per client address (the login bucket),
/// then a session cookie and 303 to the overview; a wrong key gets the login page again (401)
/// with a message that says nothing about why.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if cross_site(&headers) {
        return login_answer(
            &state,
            StatusCode::FORBIDDEN,
            Some("Log in from the console's own page."),
            false,
        );
    }
    let client = client_key(&state, peer, &headers);
    let bucket = BucketRequest {
        scope: Scope::ConsoleLogin,
        name: BucketName::Ip,
        key: client.as_str().to_owned(),
        max: LOGIN_MAX,
        interval: LOGIN_INTERVAL,
    };
    let now = state.clock.now();
    match state.verifier.limiter().acquire(&[bucket], now).await {
        Ok(Decision::Allowed) => {}
        Ok(Decision::Limited { retry_after, .. }) => {
            let secs = crate::http::error::retry_after_secs(retry_after);
            let mut response = login_answer(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!(
                    "Too many login attempts from your address. Try again in {secs} s."
                )),
                false,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return response;
        }
        Err(e) => {
            tracing::error!(error = %Chain(&e), "console login: the limiter failed");
            return login_answer(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Logins cannot be checked right now. Try again in a moment."),
                false,
            );
        }
    }
    let key = form(&body).key.unwrap_or_default();
    let key = key.trim();
    if key.is_empty() || !state.twilio.keys.accepts(key) {
        tracing::info!(client = client.as_str(), "console login refused");
        return login_answer(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That key is not accepted."),
            false,
        );
    }
    let session = Session::new(&api_key_digest(key), now);
    let cookie = session::set_cookie(
        &session.cookie_value(&state.keys),
        state.console.secure_cookies,
    );
    tracing::info!(client = client.as_str(), "console login");
    see_other("/console", Some(cookie))
}

/// `POST /console/logout` (CSRF token required): removes the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let clear = session::clear_cookie(state.console.secure_cookies);
    let Ok((session, frame)) = signed_in(&state, &headers) else {
        return see_other("/console/login", Some(clear));
    };
    if !session.csrf_matches(&state.keys, &form(&body).csrf.unwrap_or_default()) {
        return csrf_refused(&frame);
    }
    see_other("/console/login", Some(clear))
}

/// `GET /console`: the overview, from the hourly counters.
pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (_, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    settle(&state).await;
    let store = &state.console.store;
    let now_hour = state.clock.now().as_millis().div_euclid(HOUR_MS);
    let (day_from, week_from) = (now_hour - 23, now_hour - 24 * 7 + 1);
    let read = async {
        let (day, week, hours) = tokio::try_join!(
            store.outcome_counts(day_from),
            store.outcome_counts(week_from),
            store.hourly_volume(day_from),
        )?;
        let (cd, cw, pd, pw) = tokio::try_join!(
            store.destinations(day_from, Destination::Country, TOP),
            store.destinations(week_from, Destination::Country, TOP),
            store.destinations(day_from, Destination::Prefix, TOP),
            store.destinations(week_from, Destination::Prefix, TOP),
        )?;
        Ok::<_, StoreError>((day, week, hours, cd, cw, pd, pw))
    };
    let (day, week, hours, cd, cw, pd, pw) = match read.await {
        Ok(r) => r,
        Err(e) => return store_failed(&frame, &e),
    };
    let (day, week) = (Figures::from_counts(&day), Figures::from_counts(&week));
    let hours = per_hour(&hours, now_hour, 24);
    html(
        StatusCode::OK,
        pages::overview(
            &frame,
            &pages::OverviewPage {
                day: &day,
                week: &week,
                hours: &hours,
                countries_day: &cd,
                countries_week: &cw,
                prefixes_day: &pd,
                prefixes_week: &pw,
                price: state.console.sms_price,
            },
        ),
    )
}

/// A number or email address as pages show it: opened and masked, else its prefix and stars.
fn masked(state: &AppState, sealed: Option<&[u8]>, prefix: Option<&str>) -> String {
    sealed
        .and_then(|s| state.keys.open(s, PHONE_CONTEXT).ok())
        .and_then(|p| String::from_utf8(p).ok())
        .and_then(|n| Recipient::parse_stored(&n))
        .map_or_else(
            || prefix.map_or_else(String::new, |p| format!("{p}***")),
            |p| p.masked(),
        )
}

/// Milliseconds as `2026-12-06 14:03:07`.
pub(super) fn when(t: Timestamp) -> String {
    let text = t.to_rfc3339();
    text.get(..19).unwrap_or(&text).replace('T', " ")
}

fn row(state: &AppState, a: &LoggedAttempt) -> Row {
    let r = &a.record;
    let outcome = match r.kind {
        AttemptKind::Refusal => match (&r.reason, &r.bucket) {
            (Some(reason), Some(bucket)) => format!("{reason} ({bucket})"),
            (Some(reason), None) => reason.clone(),
            _ => String::new(),
        },
        _ => r.status.clone().unwrap_or_default(),
    };
    // A flood's summary row stands for several refusals of one client (no number).
    let outcome = if r.times > 1 {
        format!("{outcome} × {} more", r.times)
    } else {
        outcome
    };
    Row {
        time: when(r.time),
        kind: r.kind.as_str(),
        outcome,
        channel: r.channel.clone().unwrap_or_default(),
        country: r.country.clone().unwrap_or_default(),
        number: masked(state, r.phone_sealed.as_deref(), r.prefix.as_deref()),
        verification: r.verification_sid.clone(),
        vendor: r.vendor.clone().unwrap_or_default(),
        delivery: r.delivery.as_ref().map_or_else(String::new, |d| {
            let mut text = d.status.as_str().to_owned();
            if let Some(code) = &d.error_code {
                text.push_str(&format!(" ({code})"));
            }
            match d.failovers {
                0 => {}
                1 => text.push_str(", after 1 failover"),
                n => text.push_str(&format!(", after {n} failovers")),
            }
            text
        }),
    }
}

/// The attempts page's query, as typed.
#[derive(Deserialize, Default)]
struct AttemptQuery {
    from: Option<String>,
    to: Option<String>,
    country: Option<String>,
    channel: Option<String>,
    status: Option<String>,
    number: Option<String>,
    before: Option<String>,
}

/// The earliest year a date filter may name.
const EARLIEST_YEAR: i32 = 2020;

/// `2026-12-06` as a date, if it is one.
fn parse_date(text: &str) -> Option<time::Date> {
    let mut parts = text.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

fn date(text: &str, field: &str, today: time::Date) -> Result<Option<time::Date>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let d = parse_date(text).ok_or_else(|| format!("{field} must be a date like 2026-12-06."))?;
    if d.year() < EARLIEST_YEAR || d > today {
        return Err(format!(
            "{field} is out of range: pick a date from {EARLIEST_YEAR}-01-01 to today ({today}, UTC)."
        ));
    }
    Ok(Some(d))
}

fn midnight_ms(d: time::Date) -> i64 {
    let seconds = d.midnight().assume_utc().unix_timestamp();
    seconds * 1000
}

/// The store filter of a query, or what is wrong with it (shown on the page with 400).
fn filter_of(
    state: &AppState,
    q: &AttemptQuery,
    now: Timestamp,
) -> Result<(ConsoleFilter, Option<i64>), String> {
    let field = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_owned();
    let today = time::OffsetDateTime::from_unix_timestamp(now.as_millis().div_euclid(1000))
        .map(|t| t.date())
        .map_err(|_| "the clock is out of range".to_owned())?;
    let mut f = ConsoleFilter::default();
    let from = date(&field(&q.from), "From", today)?;
    let to = date(&field(&q.to), "To", today)?;
    if let (Some(a), Some(b)) = (from, to)
        && a > b
    {
        return Err("From is after To: nothing can match.".to_owned());
    }
    f.from = from.map(|d| Timestamp::from_millis(midnight_ms(d)));
    f.to = to.map(|d| Timestamp::from_millis(midnight_ms(d) + 24 * HOUR_MS));
    let country = field(&q.country).to_ascii_uppercase();
    if !country.is_empty() {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("Country must be a two-letter code like US.".to_owned());
        }
        f.country = Some(country);
    }
    let channel = field(&q.channel);
    if !channel.is_empty() {
        if !pages::CHANNELS.contains(&channel.as_str()) {
            return Err(format!(
                "Channel must be one of {}.",
                pages::CHANNELS.join(", ")
            ));
        }
        f.channel = Some(channel);
    }
    match field(&q.status).as_str() {
        "" => {}
        "refused" => f.kind = Some(AttemptKind::Refusal),
        s @ ("sent" | "failed") => {
            f.kind = Some(AttemptKind::Send);
            f.status = Some(s.to_owned());
        }
        s if pages::STATUSES.iter().any(|(v, _)| *v == s) => {
            f.kind = Some(AttemptKind::Check);
            f.status = Some(s.to_owned());
        }
        _ => return Err("Status is not one of the listed ones.".to_owned()),
    }
    let number = field(&q.number);
    if !number.is_empty() {
        let to = Recipient::parse(&number).map_err(|_| {
            "Exact number must be a phone number in E.164 form, like +12025550123, or an email address.".to_owned()
        })?;
        f.phone_lookup = Some(state.keys.phone_lookup(&to.key()).to_vec());
    }
    let before = match field(&q.before).as_str() {
        "" => None,
        b => Some(
            b.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| "The page cursor is out of range.".to_owned())?,
        ),
    };
    Ok((f, before))
}

/// `GET /console/attempts`: the log, newest first, filtered, 50 rows a page.
pub async fn attempts(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (_, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let q: AttemptQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let typed = |v: &Option<String>| v.clone().unwrap_or_default();
    let form = FilterForm {
        from: typed(&q.from),
        to: typed(&q.to),
        country: typed(&q.country),
        channel: typed(&q.channel),
        status: typed(&q.status),
        number: typed(&q.number),
    };
    let (filter, before) = match filter_of(&state, &q, state.clock.now()) {
        Ok(f) => f,
        Err(problem) => {
            return html(
                StatusCode::BAD_REQUEST,
                pages::attempts(&frame, &form, Some(&problem), &[], None),
            );
        }
    };
    settle(&state).await;
    let mut found = match state
        .console
        .store
        .logged_attempts(&filter, before, PAGE + 1)
        .await
    {
        Ok(rows) => rows,
        Err(e) => return store_failed(&frame, &e),
    };
    let more = found.len() > PAGE as usize;
    found.truncate(PAGE as usize);
    let older = match (more, found.last()) {
        (true, Some(last)) => {
            let pairs = [
                ("from", form.from.as_str()),
                ("to", form.to.as_str()),
                ("country", form.country.as_str()),
                ("channel", form.channel.as_str()),
                ("status", form.status.as_str()),
                ("number", form.number.as_str()),
            ];
            let mut kept: Vec<(&str, String)> = pairs
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect();
            kept.push(("before", last.seq.to_string()));
            serde_urlencoded::to_string(&kept)
                .ok()
                .map(|q| format!("/console/attempts?{q}"))
        }
        _ => None,
    };
    let rows: Vec<Row> = found.iter().map(|a| row(&state, a)).collect();
    html(
        StatusCode::OK,
        pages::attempts(&frame, &form, None, &rows, older),
    )
}

/// `GET /console/verifications/{sid}`: one verification's rows in the log.
pub async fn verification(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(sid): Path<String>,
) -> Response {
    let (_, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let unknown = || {
        message(
            StatusCode::NOT_FOUND,
            &frame,
            "Unknown verification",
            "No verification with that sid is in the attempt log (a sid is VE followed by 32 hex digits; rows older than VERIFYD_ATTEMPT_RETENTION are purged).",
        )
    };
    if !crate::twilio_api::sid::valid(&sid, "VE") {
        return unknown();
    }
    settle(&state).await;
    let found = match state.console.store.verification_log(&sid).await {
        Ok(rows) => rows,
        Err(e) => return store_failed(&frame, &e),
    };
    if found.is_empty() {
        return unknown();
    }
    let checked = |status: &str| {
        found.iter().any(|a| {
            a.record.kind == AttemptKind::Check && a.record.status.as_deref() == Some(status)
        })
    };
    let state_text = if checked("approved") {
        "approved"
    } else if checked("canceled") {
        "canceled"
    } else if checked("max_attempts") {
        "locked (too many wrong codes)"
    } else {
        "not approved (pending or expired)"
    };
    let rows: Vec<Row> = found.iter().map(|a| row(&state, a)).collect();
    html(
        StatusCode::OK,
        pages::verification(&frame, &sid, state_text, &rows),
    )
}

/// The safe list as shown (numbers masked).
async fn safe_entries(state: &AppState) -> Result<Vec<SafeEntry>, crate::twilio_api::TwilioError> {
    let listed = crate::twilio_api::safelist::list(&state.twilio, &state.keys).await?;
    Ok(listed
        .into_iter()
        .map(|e| SafeEntry {
            number: PhoneNumber::parse(&e.phone_number)
                .map(|p| p.masked())
                .unwrap_or_default(),
            sid: e.sid,
        })
        .collect())
}

fn safe_list_page(
    status: StatusCode,
    frame: &Frame,
    entries: &[SafeEntry],
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    html(status, pages::safe_list(frame, entries, notice, error))
}

/// `GET /console/safe-list`.
pub async fn safe_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (_, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let notice = match query.as_deref() {
        Some("done=added") => Some("Added to the safe list."),
        Some("done=removed") => Some("Removed from the safe list."),
        _ => None,
    };
    match safe_entries(&state).await {
        Ok(entries) => safe_list_page(StatusCode::OK, &frame, &entries, notice, None),
        Err(_) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            &frame,
            "Unavailable",
            "The store did not answer. Try again in a moment.",
        ),
    }
}

/// `POST /console/safe-list` with `number` (CSRF token required): adds it through the same
/// function as `/v2/SafeList/Numbers`.
pub async fn add_safe_number(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let fields = form(&body);
    if !session.csrf_matches(&state.keys, fields.csrf.as_deref().unwrap_or("")) {
        return csrf_refused(&frame);
    }
    let number = fields.number.unwrap_or_default();
    if PhoneNumber::parse(number.trim()).is_err() {
        let entries = safe_entries(&state).await.unwrap_or_default();
        return safe_list_page(
            StatusCode::BAD_REQUEST,
            &frame,
            &entries,
            None,
            Some(
                "That is not a phone number in E.164 form (like +12025550123). Nothing was changed.",
            ),
        );
    }
    match crate::twilio_api::safelist::add(
        &state.twilio,
        &state.keys,
        number.trim(),
        state.clock.now(),
    )
    .await
    {
        Ok(_) => see_other("/console/safe-list?done=added", None),
        Err(_) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            &frame,
            "Unavailable",
            "The store did not answer. Nothing was changed; try again in a moment.",
        ),
    }
}

/// `POST /console/safe-list/remove` with an entry's `sid` (CSRF token required).
pub async fn remove_safe_number(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let fields = form(&body);
    if !session.csrf_matches(&state.keys, fields.csrf.as_deref().unwrap_or("")) {
        return csrf_refused(&frame);
    }
    let sid = fields.sid.unwrap_or_default();
    let listed = match crate::twilio_api::safelist::list(&state.twilio, &state.keys).await {
        Ok(l) => l,
        Err(_) => {
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                &frame,
                "Unavailable",
                "The store did not answer. Nothing was changed; try again in a moment.",
            );
        }
    };
    let Some(entry) = listed.into_iter().find(|e| e.sid == sid) else {
        return message(
            StatusCode::NOT_FOUND,
            &frame,
            "Unknown entry",
            "That safe-list entry does not exist (any more). Nothing was changed.",
        );
    };
    match crate::twilio_api::safelist::remove(&state.twilio, &state.keys, &entry.phone_number).await
    {
        Ok(_) => see_other("/console/safe-list?done=removed", None),
        Err(_) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            &frame,
            "Unavailable",
            "The store did not answer. Nothing was changed; try again in a moment.",
        ),
    }
}

/// `GET /console/settings`: the effective configuration, redacted as `verifyd config`.
pub async fn settings(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers) {
        Ok((_, frame)) => html(
            StatusCode::OK,
            pages::settings(&frame, &state.console.settings),
        ),
        Err(r) => *r,
    }
}

/// `GET /console/outbox`: the console sender's messages (404 with any other sender).
pub async fn outbox(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (_, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Some(outbox) = &state.outbox else {
        return message(
            StatusCode::NOT_FOUND,
            &frame,
            "No dev outbox",
            "The dev outbox exists only with the console sender (VERIFYD_SMS_SENDER=console, development profile).",
        );
    };
    let messages: Vec<OutboxEntry> = outbox
        .messages()
        .into_iter()
        .map(|m| OutboxEntry {
            time: when(m.at),
            to: Recipient::parse(&m.to).map_or_else(|_| "?".to_owned(), |p| p.masked()),
            channel: m.channel,
            body: m.body,
        })
        .collect();
    html(StatusCode::OK, pages::outbox(&frame, &messages))
}

/// `GET /console/assets/console.css` (public: the login page uses it).
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        pages::STYLESHEET,
    )
        .into_response()
}

/// Any other `/console/…` path.
pub async fn not_found(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers) {
        Ok((_, frame)) => message(
            StatusCode::NOT_FOUND,
            &frame,
            "Not found",
            "The console has no such page.",
        ),
        Err(r) => *r,
    }
}
