//! A stateful fake of the Twilio APIs verifyd calls, on 127.0.0.1 port 0: Verify (the Service,
//! Verifications, VerificationCheck, cancel, RateLimits and their Buckets), Messaging
//! (`Messages.json`, the Messaging Service) and the account's IncomingPhoneNumbers (what
//! `verifyd doctor` reads). It checks HTTP Basic auth and the form fields (including what the
//! published spec leaves open: the Channel values, and To/Code on VerificationCheck), keeps
//! verifications the way Twilio does (pending → approved on the right code, 20404 after,
//! 60202 after 5 wrong checks, 60203 after 5 sends), can be told to fail, and records every call
//! (the token never: only whether the credentials matched).
//!
//! Over 800 lines on purpose: one fake server, whose routes share one state (the account, its
//! services, verifications and recorded calls); split by API, each part would reach into the
//! others' state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "fedcba9876543210fedcba9876543210";
pub const SERVICE_SID: &str = "VA0123456789abcdef0123456789abcdef";
pub const MESSAGING_SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
/// The one phone number the fake account owns (SMS-capable).
pub const OWNED_NUMBER: &str = "+15005550006";
/// Twilio's limits per verification: 5 checks, 5 sends.
const MAX_CHECKS: u32 = 5;
const MAX_SENDS: usize = 5;

/// Which endpoint a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Verifications,
    VerificationCheck,
    Cancel,
    RateLimits,
    Messages,
}

/// How the fake misbehaves on a target until told otherwise.
#[derive(Clone, Debug)]
pub enum Fault {
    /// A Twilio error answer.
    Error {
        status: u16,
        code: u32,
        message: &'static str,
        retry_after: Option<u64>,
    },
    /// Answer normally, but only after this long.
    Slow(Duration),
}

impl Fault {
    pub fn error(status: u16, code: u32, message: &'static str) -> Self {
        Fault::Error {
            status,
            code,
            message,
            retry_after: None,
        }
    }
}

/// How the call's credentials compared with the fake's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    Ok,
    Wrong,
    Missing,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub form: Vec<(String, String)>,
    pub auth: Auth,
}

impl Call {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The call as a report line: method, path, query and form, credentials summarised.
    pub fn describe(&self) -> String {
        let query = self
            .query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let auth = match self.auth {
            Auth::Ok => format!("Basic {ACCOUNT_SID}:<redacted>"),
            Auth::Wrong => "Basic <wrong credentials>".to_owned(),
            Auth::Missing => "none".to_owned(),
        };
        format!(
            "{} {}{query}  [Authorization: {auth}; Content-Type: {}]  form {:?}",
            self.method,
            self.path,
            self.content_type.as_deref().unwrap_or("-"),
            self.form
        )
    }
}

#[derive(Clone, Debug)]
struct FakeVerification {
    sid: String,
    to: String,
    channel: String,
    code: String,
    status: &'static str,
    checks: u32,
    attempts: Vec<(String, String, String)>,
    created: String,
    updated: String,
}

#[derive(Clone, Debug)]
pub struct FakeBucket {
    pub sid: String,
    pub max: u64,
    pub interval: u64,
}

#[derive(Clone, Debug)]
pub struct FakeRateLimit {
    pub sid: String,
    pub unique_name: String,
    pub buckets: Vec<FakeBucket>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    violations: Vec<String>,
    faults: HashMap<Target, Fault>,
    verifications: Vec<FakeVerification>,
    rate_limits: Vec<FakeRateLimit>,
    counter: u64,
}

impl Inner {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn sid(&mut self, prefix: &str) -> String {
        let n = self.next();
        format!("{prefix}{n:032x}")
    }

    /// Fake clock for dates: one second per event.
    fn time(&mut self) -> String {
        let n = self.next();
        format!("2026-11-26T12:{:02}:{:02}Z", (n / 60) % 60, n % 60)
    }
}

/// The running fake.
pub struct FakeTwilio {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = Arc<Mutex<Inner>>;

impl FakeTwilio {
    pub async fn start() -> FakeTwilio {
        let inner: Shared = Arc::default();
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake twilio binds");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTwilio {
            addr,
            inner,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Calls whose method is `method` and whose path ends with `suffix`.
    pub fn calls_to(&self, method: &str, suffix: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.ends_with(suffix))
            .collect()
    }

    /// Starts of verifications (`POST …/Verifications`).
    pub fn creates(&self) -> Vec<Call> {
        self.calls_to("POST", "/Verifications")
    }

    pub fn checks(&self) -> Vec<Call> {
        self.calls_to("POST", "/VerificationCheck")
    }

    pub fn messages(&self) -> Vec<Call> {
        self.calls_to("POST", "/Messages.json")
    }

    /// Every call that could change something at Twilio.
    pub fn writes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method != "GET")
            .collect()
    }

    pub fn forget_calls(&self) {
        self.inner.lock().unwrap().calls.clear();
    }

    pub fn set_fault(&self, target: Target, fault: Fault) {
        self.inner.lock().unwrap().faults.insert(target, fault);
    }

    pub fn clear_faults(&self) {
        self.inner.lock().unwrap().faults.clear();
    }

    /// The code of the number's pending verification.
    pub fn code_for(&self, to: &str) -> String {
        self.inner
            .lock()
            .unwrap()
            .verifications
            .iter()
            .find(|v| v.to == to && v.status == "pending")
            .map(|v| v.code.clone())
            .unwrap_or_else(|| panic!("no pending verification for {to}"))
    }

    /// The code of the number's latest verification, whatever its status.
    pub fn code_for_any(&self, to: &str) -> String {
        self.inner
            .lock()
            .unwrap()
            .verifications
            .iter()
            .rev()
            .find(|v| v.to == to)
            .map(|v| v.code.clone())
            .unwrap_or_else(|| panic!("no verification for {to}"))
    }

    pub fn rate_limits(&self) -> Vec<FakeRateLimit> {
        self.inner.lock().unwrap().rate_limits.clone()
    }

    /// Adds a RateLimit with the given `(max, interval)` buckets; returns its sid.
    pub fn seed_rate_limit(&self, unique_name: &str, buckets: &[(u64, u64)]) -> String {
        let mut inner = self.inner.lock().unwrap();
        let sid = inner.sid("RK");
        let buckets = buckets
            .iter()
            .map(|&(max, interval)| FakeBucket {
                sid: inner.sid("BL"),
                max,
                interval,
            })
            .collect();
        inner.rate_limits.push(FakeRateLimit {
            sid: sid.clone(),
            unique_name: unique_name.to_owned(),
            buckets,
        });
        sid
    }

    /// Adds a bucket to an existing RateLimit; returns its sid.
    pub fn add_bucket(&self, rate_limit_sid: &str, max: u64, interval: u64) -> String {
        let mut inner = self.inner.lock().unwrap();
        let sid = inner.sid("BL");
        let limit = inner
            .rate_limits
            .iter_mut()
            .find(|r| r.sid == rate_limit_sid)
            .expect("a known RateLimit");
        limit.buckets.push(FakeBucket {
            sid: sid.clone(),
            max,
            interval,
        });
        sid
    }

    /// What the fake found wrong in verifyd's requests (beyond what the spec checks).
    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().unwrap().violations.clone()
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "the fake Twilio saw bad requests: {v:#?}");
    }
}

fn twilio_error(status: u16, code: u32, message: &str, retry_after: Option<u64>) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    });
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
    }
    if status == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"Twilio API\"".parse().unwrap(),
        );
    }
    response
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn invalid(inner: &mut Inner, violation: String, parameter: &str) -> Response {
    inner.violations.push(violation);
    twilio_error(400, 60200, &format!("Invalid parameter: {parameter}"), None)
}

/// Checks the form has `required`, nothing outside `allowed`, and answers 60200 otherwise.
fn check_fields(
    inner: &mut Inner,
    call: &Call,
    required: &[&str],
    allowed: &[&str],
) -> Option<Response> {
    if call.content_type.as_deref() != Some("application/x-www-form-urlencoded") {
        let v = format!("{} without a form content type", call.path);
        return Some(invalid(inner, v, "Content-Type"));
    }
    for name in required {
        if call.field(name).is_none_or(str::is_empty) {
            let v = format!("{} without {name}", call.path);
            return Some(invalid(inner, v, name));
        }
    }
    for (name, _) in &call.form {
        if !allowed.contains(&name.as_str()) {
            let v = format!("{} with unexpected field {name}", call.path);
            return Some(invalid(inner, v, name));
        }
    }
    let mut seen: Vec<&str> = call.form.iter().map(|(k, _)| k.as_str()).collect();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        let v = format!("{} with a repeated field", call.path);
        return Some(invalid(inner, v, "form"));
    }
    None
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn target_of(method: &Method, segments: &[&str]) -> Option<Target> {
    match (method.as_str(), segments) {
        ("POST", ["v2", "Services", _, "Verifications"]) => Some(Target::Verifications),
        ("POST", ["v2", "Services", _, "VerificationCheck"]) => Some(Target::VerificationCheck),
        ("POST", ["v2", "Services", _, "Verifications", _]) => Some(Target::Cancel),
        (_, ["v2", "Services", _, "RateLimits", ..]) => Some(Target::RateLimits),
        ("POST", ["2010-04-01", "Accounts", _, "Messages.json"]) => Some(Target::Messages),
        _ => None,
    }
}

async fn handle(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let auth = match headers.get(header::AUTHORIZATION) {
        Some(v) if v.as_bytes() == expected.as_bytes() => Auth::Ok,
        Some(_) => Auth::Wrong,
        None => Auth::Missing,
    };
    let form: Vec<(String, String)> = if body.is_empty() {
        Vec::new()
    } else {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    };
    let call = Call {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form,
        auth,
    };
    let segments: Vec<String> = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let fault = {
        let mut guard = inner.lock().unwrap();
        guard.calls.push(call.clone());
        if auth != Auth::Ok {
            return twilio_error(401, 20003, "Authenticate", None);
        }
        target_of(&method, &segments).and_then(|t| guard.faults.get(&t).cloned())
    };
    match fault {
        Some(Fault::Error {
            status,
            code,
            message,
            retry_after,
        }) => return twilio_error(status, code, message, retry_after),
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let mut guard = inner.lock().unwrap();
    let inner = &mut *guard;
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v2", "Services", svc, "Verifications"]) if *svc == SERVICE_SID => {
            create_verification(inner, &call)
        }
        ("POST", ["v2", "Services", svc, "VerificationCheck"]) if *svc == SERVICE_SID => {
            check_verification(inner, &call)
        }
        ("POST", ["v2", "Services", svc, "Verifications", sid]) if *svc == SERVICE_SID => {
            update_verification(inner, &call, sid)
        }
        ("GET", ["v2", "Services", svc, "RateLimits"]) if *svc == SERVICE_SID => {
            list_rate_limits(inner)
        }
        ("POST", ["v2", "Services", svc, "RateLimits"]) if *svc == SERVICE_SID => {
            create_rate_limit(inner, &call)
        }
        ("GET", ["v2", "Services", svc, "RateLimits", rk, "Buckets"]) if *svc == SERVICE_SID => {
            list_buckets(inner, rk)
        }
        ("POST", ["v2", "Services", svc, "RateLimits", rk, "Buckets"]) if *svc == SERVICE_SID => {
            create_bucket(inner, &call, rk)
        }
        ("POST", ["v2", "Services", svc, "RateLimits", rk, "Buckets", bl])
            if *svc == SERVICE_SID =>
        {
            update_bucket(inner, &call, rk, bl)
        }
        ("DELETE", ["v2", "Services", svc, "RateLimits", rk, "Buckets", bl])
            if *svc == SERVICE_SID =>
        {
            delete_bucket(inner, rk, bl)
        }
        ("POST", ["2010-04-01", "Accounts", ac, "Messages.json"]) if *ac == ACCOUNT_SID => {
            create_message(inner, &call)
        }
        ("GET", ["v2", "Services", svc]) if *svc == SERVICE_SID => verify_service(),
        ("GET", ["v1", "Services", mg]) if *mg == MESSAGING_SERVICE_SID => messaging_service(),
        ("GET", ["2010-04-01", "Accounts", ac, "IncomingPhoneNumbers.json"])
            if *ac == ACCOUNT_SID =>
        {
            incoming_numbers(&call)
        }
        // Unknown services: Twilio's 20404 (not a violation: doctor asks on purpose).
        ("GET", ["v2" | "v1", "Services", _]) => {
            twilio_error(404, 20404, "The requested resource was not found", None)
        }
        _ => {
            inner
                .violations
                .push(format!("unexpected call {} {}", method, uri.path()));
            twilio_error(404, 20404, "The requested resource was not found", None)
        }
    }
}

fn verification_json(v: &FakeVerification) -> Value {
    json!({
        "sid": v.sid,
        "service_sid": SERVICE_SID,
        "account_sid": ACCOUNT_SID,
        "to": v.to,
        "channel": v.channel,
        "status": v.status,
        "valid": v.status == "approved",
        "date_created": v.created,
        "date_updated": v.updated,
        "lookup": {},
        "amount": null,
        "payee": null,
        "send_code_attempts": v.attempts.iter().map(|(sid, channel, time)| json!({
            "time": time, "channel": channel.to_uppercase(), "attempt_sid": sid,
        })).collect::<Vec<_>>(),
        "sna": null,
        "url": format!("https://verify.twilio.com/v2/Services/{SERVICE_SID}/Verifications/{}", v.sid),
    })
}

/// VerificationCheck answers: no send_code_attempts, no lookup (as Twilio's).
fn check_json(v: &FakeVerification) -> Value {
    json!({
        "sid": v.sid,
        "service_sid": SERVICE_SID,
        "account_sid": ACCOUNT_SID,
        "to": v.to,
        "channel": v.channel,
        "status": v.status,
        "valid": v.status == "approved",
        "amount": null,
        "payee": null,
        "sna_attempts_error_codes": [],
        "date_created": v.created,
        "date_updated": v.updated,
    })
}

fn create_verification(inner: &mut Inner, call: &Call) -> Response {
    if let Some(r) = check_fields(
        inner,
        call,
        &["To", "Channel"],
        &["To", "Channel", "RateLimits", "Locale"],
    ) {
        return r;
    }
    let to = call.field("To").unwrap_or_default().to_owned();
    let channel = call.field("Channel").unwrap_or_default().to_owned();
    if !is_e164(&to) {
        return invalid(inner, format!("To {to:?} is not E.164"), "To");
    }
    // The published spec has no enum on Channel: the fake holds verifyd to Twilio's list.
    if !["sms", "call", "whatsapp", "email", "sna"].contains(&channel.as_str()) {
        return invalid(
            inner,
            format!("Channel {channel:?} is not one of Twilio's"),
            "Channel",
        );
    }
    if let Some(limits) = call.field("RateLimits") {
        let ok = serde_json::from_str::<Value>(limits).ok().is_some_and(|v| {
            v.as_object().is_some_and(|o| {
                o.len() == 1 && o.get("end_user_ip_address").is_some_and(Value::is_string)
            })
        });
        if !ok {
            let v = format!("RateLimits {limits:?} is not {{\"end_user_ip_address\": \"…\"}}");
            return invalid(inner, v, "RateLimits");
        }
    }
    let now = inner.time();
    let attempt_sid = inner.sid("VL");
    if let Some(i) = inner
        .verifications
        .iter()
        .position(|v| v.to == to && v.status == "pending")
    {
        if inner.verifications[i].attempts.len() >= MAX_SENDS {
            return twilio_error(429, 60203, "Max send attempts reached", None);
        }
        let v = &mut inner.verifications[i];
        v.attempts.push((attempt_sid, channel.clone(), now.clone()));
        v.channel = channel;
        v.updated = now;
        return json_answer(StatusCode::CREATED, verification_json(v));
    }
    let n = inner.next();
    let v = FakeVerification {
        sid: inner.sid("VE"),
        to,
        channel: channel.clone(),
        code: format!("{:06}", (n * 7919 + 123_457) % 1_000_000),
        status: "pending",
        checks: 0,
        attempts: vec![(attempt_sid, channel, now.clone())],
        created: now.clone(),
        updated: now,
    };
    let body = verification_json(&v);
    inner.verifications.push(v);
    json_answer(StatusCode::CREATED, body)
}

fn check_verification(inner: &mut Inner, call: &Call) -> Response {
    // The spec marks nothing required here: the fake requires To and Code itself.
    if let Some(r) = check_fields(inner, call, &["To", "Code"], &["To", "Code"]) {
        return r;
    }
    let code = call.field("Code").unwrap_or_default().to_owned();
    if !(4..=10).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return invalid(inner, format!("Code of length {}", code.len()), "Code");
    }
    let to = call.field("To").unwrap_or_default();
    let now = inner.time();
    let Some(v) = inner
        .verifications
        .iter_mut()
        .find(|v| v.to == to && v.status == "pending")
    else {
        return twilio_error(404, 20404, "The requested resource was not found", None);
    };
    if v.checks >= MAX_CHECKS {
        return twilio_error(429, 60202, "Max check attempts reached", None);
    }
    v.checks += 1;
    v.updated = now;
    if v.code == code {
        v.status = "approved";
    }
    json_answer(StatusCode::OK, check_json(v))
}

fn update_verification(inner: &mut Inner, call: &Call, sid: &str) -> Response {
    if let Some(r) = check_fields(inner, call, &["Status"], &["Status"]) {
        return r;
    }
    if call.field("Status") != Some("canceled") {
        return invalid(inner, "Status is not canceled".to_owned(), "Status");
    }
    let now = inner.time();
    let Some(v) = inner
        .verifications
        .iter_mut()
        .find(|v| v.sid == sid && v.status == "pending")
    else {
        return twilio_error(404, 20404, "The requested resource was not found", None);
    };
    v.status = "canceled";
    v.updated = now;
    json_answer(StatusCode::OK, verification_json(v))
}

fn rate_limit_json(r: &FakeRateLimit) -> Value {
    let url = format!(
        "https://verify.twilio.com/v2/Services/{SERVICE_SID}/RateLimits/{}",
        r.sid
    );
    json!({
        "sid": r.sid,
        "service_sid": SERVICE_SID,
        "account_sid": ACCOUNT_SID,
        "unique_name": r.unique_name,
        "description": "Limit on end user IP Address",
        "date_created": "2026-11-26T12:00:00Z",
        "date_updated": "2026-11-26T12:00:00Z",
        "url": url,
        "links": { "buckets": format!("{url}/Buckets") },
    })
}

fn bucket_json(rk: &str, b: &FakeBucket) -> Value {
    json!({
        "sid": b.sid,
        "rate_limit_sid": rk,
        "service_sid": SERVICE_SID,
        "account_sid": ACCOUNT_SID,
        "max": b.max,
        "interval": b.interval,
        "date_created": "2026-11-26T12:00:00Z",
        "date_updated": "2026-11-26T12:00:00Z",
        "url": format!("https://verify.twilio.com/v2/Services/{SERVICE_SID}/RateLimits/{rk}/Buckets/{}", b.sid),
    })
}

fn page(key: &str, path: &str, items: Vec<Value>) -> Response {
    let url = format!("https://verify.twilio.com{path}?PageSize=100&Page=0");
    json_answer(
        StatusCode::OK,
        json!({
            key: items,
            "meta": {
                "page": 0,
                "page_size": 100,
                "first_page_url": url,
                "previous_page_url": null,
                "url": url,
                "next_page_url": null,
                "key": key,
            },
        }),
    )
}

fn list_rate_limits(inner: &mut Inner) -> Response {
    let items = inner.rate_limits.iter().map(rate_limit_json).collect();
    page(
        "rate_limits",
        &format!("/v2/Services/{SERVICE_SID}/RateLimits"),
        items,
    )
}

fn create_rate_limit(inner: &mut Inner, call: &Call) -> Response {
    if let Some(r) = check_fields(inner, call, &["UniqueName"], &["UniqueName", "Description"]) {
        return r;
    }
    let name = call.field("UniqueName").unwrap_or_default().to_owned();
    if inner.rate_limits.iter().any(|r| r.unique_name == name) {
        return twilio_error(409, 60204, "Rate limit already exists", None);
    }
    let r = FakeRateLimit {
        sid: inner.sid("RK"),
        unique_name: name,
        buckets: Vec::new(),
    };
    let body = rate_limit_json(&r);
    inner.rate_limits.push(r);
    json_answer(StatusCode::CREATED, body)
}

/// `Max` and `Interval` as whole numbers (an interval of at least 1 s).
fn bucket_numbers(call: &Call) -> Option<(u64, u64)> {
    let max = call.field("Max")?.parse::<u64>().ok()?;
    let interval = call.field("Interval")?.parse::<u64>().ok()?;
    (interval > 0).then_some((max, interval))
}

fn bad_bucket(inner: &mut Inner) -> Response {
    invalid(
        inner,
        "bucket without whole Max and Interval".to_owned(),
        "Max",
    )
}

fn list_buckets(inner: &mut Inner, rk: &str) -> Response {
    let Some(r) = inner.rate_limits.iter().find(|r| r.sid == rk) else {
        return twilio_error(404, 20404, "The requested resource was not found", None);
    };
    let items = r.buckets.iter().map(|b| bucket_json(rk, b)).collect();
    page(
        "buckets",
        &format!("/v2/Services/{SERVICE_SID}/RateLimits/{rk}/Buckets"),
        items,
    )
}

fn create_bucket(inner: &mut Inner, call: &Call, rk: &str) -> Response {
    if let Some(r) = check_fields(inner, call, &["Max", "Interval"], &["Max", "Interval"]) {
        return r;
    }
    let Some((max, interval)) = bucket_numbers(call) else {
        return bad_bucket(inner);
    };
    let sid = inner.sid("BL");
    let Some(r) = inner.rate_limits.iter_mut().find(|r| r.sid == rk) else {
        return twilio_error(404, 20404, "The requested resource was not found", None);
    };
    let b = FakeBucket { sid, max, interval };
    let body = bucket_json(rk, &b);
    r.buckets.push(b);
    json_answer(StatusCode::CREATED, body)
}

fn update_bucket(inner: &mut Inner, call: &Call, rk: &str, bl: &str) -> Response {
    if let Some(r) = check_fields(inner, call, &[], &["Max", "Interval"]) {
        return r;
    }
    let Some((max, interval)) = bucket_numbers(call) else {
        return bad_bucket(inner);
    };
    let Some(b) = inner
        .rate_limits
        .iter_mut()
        .find(|r| r.sid == rk)
        .and_then(|r| r.buckets.iter_mut().find(|b| b.sid == bl))
    else {
        return twilio_error(404, 20404, "The requested resource was not found", None);
    };
    b.max = max;
    b.interval = interval;
    let body = bucket_json(rk, b);
    json_answer(StatusCode::OK, body)
}

fn delete_bucket(inner: &mut Inner, rk: &str, bl: &str) -> Response {
    let Some(r) = inner.rate_limits.iter_mut().find(|r| r.sid == rk) else {
        return twilio_error(404, 20404, "The requested resource was not found", None);
    };
    let before = r.buckets.len();
    r.buckets.retain(|b| b.sid != bl);
    if r.buckets.len() == before {
        return twilio_error(404, 20404, "The requested resource was not found", None);
    }
    StatusCode::NO_CONTENT.into_response()
}

fn create_message(inner: &mut Inner, call: &Call) -> Response {
    if let Some(r) = check_fields(
        inner,
        call,
        &["To", "Body"],
        &[
            "To",
            "Body",
            "MessagingServiceSid",
            "From",
            "StatusCallback",
        ],
    ) {
        return r;
    }
    let service = call.field("MessagingServiceSid");
    let from = call.field("From");
    if service.is_some() == from.is_some() {
        let v = "a message needs exactly one of MessagingServiceSid and From".to_owned();
        return invalid(inner, v, "From");
    }
    let to = call.field("To").unwrap_or_default().to_owned();
    if !is_e164(&to) {
        return invalid(inner, format!("To {to:?} is not E.164"), "To");
    }
    let sid = inner.sid("SM");
    let date = "Thu, 26 Nov 2026 12:00:00 +0000";
    json_answer(
        StatusCode::CREATED,
        json!({
            "account_sid": ACCOUNT_SID,
            "api_version": "2010-04-01",
            "body": call.field("Body"),
            "date_created": date,
            "date_sent": null,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": from,
            "num_media": "0",
            "num_segments": "1",
            "price": null,
            "price_unit": null,
            "messaging_service_sid": service,
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"),
            },
            "to": to,
            "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"),
        }),
    )
}

/// The Verify Service resource (the fields of Twilio's published schema).
fn verify_service() -> Response {
    json_answer(
        StatusCode::OK,
        json!({
            "sid": SERVICE_SID,
            "account_sid": ACCOUNT_SID,
            "friendly_name": "verifyd test",
            "code_length": 6,
            "lookup_enabled": false,
            "psd2_enabled": false,
            "skip_sms_to_landlines": false,
            "dtmf_input_required": true,
            "tts_name": null,
            "do_not_share_warning_enabled": false,
            "custom_code_enabled": false,
            "push": { "include_date": false, "apn_credential_sid": null, "fcm_credential_sid": null },
            "totp": { "issuer": null, "time_step": 30, "code_length": 6, "skew": 1 },
            "default_template_sid": null,
            "whatsapp": { "msg_service_sid": null, "from": null },
            "passkeys": null,
            "verify_event_subscription_enabled": false,
            "date_created": "2026-11-26T12:00:00Z",
            "date_updated": "2026-11-26T12:00:00Z",
            "url": format!("https://verify.twilio.com/v2/Services/{SERVICE_SID}"),
            "links": {},
        }),
    )
}

/// The Messaging Service resource (only the fields doctor may read, plus identity).
fn messaging_service() -> Response {
    json_answer(
        StatusCode::OK,
        json!({
            "sid": MESSAGING_SERVICE_SID,
            "account_sid": ACCOUNT_SID,
            "friendly_name": "verifyd senders",
            "date_created": "2026-11-26T12:00:00Z",
            "date_updated": "2026-11-26T12:00:00Z",
            "url": format!("https://messaging.twilio.com/v1/Services/{MESSAGING_SERVICE_SID}"),
        }),
    )
}

/// `IncomingPhoneNumbers.json?PhoneNumber=…`: the owned number, or an empty page.
fn incoming_numbers(call: &Call) -> Response {
    let wanted: Vec<(String, String)> =
        serde_urlencoded::from_str(call.query.as_deref().unwrap_or("")).unwrap_or_default();
    let number = wanted
        .iter()
        .find(|(k, _)| k == "PhoneNumber")
        .map(|(_, v)| v.as_str());
    let items: Vec<Value> = if number == Some(OWNED_NUMBER) {
        vec![json!({
            "account_sid": ACCOUNT_SID,
            "phone_number": OWNED_NUMBER,
            "friendly_name": "(500) 555-0006",
            "sid": "PN0123456789abcdef0123456789abcdef",
            "capabilities": { "voice": true, "sms": true, "mms": false, "fax": false },
            "status": "in-use",
        })]
    } else {
        Vec::new()
    };
    json_answer(
        StatusCode::OK,
        json!({
            "incoming_phone_numbers": items,
            "page": 0,
            "page_size": 50,
            "start": 0,
            "end": 0,
            // Twilio answers relative URIs here, but its spec says `format: uri` (absolute),
            // which Prism enforces: the fake follows the spec.
            "uri": format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json"),
            "first_page_uri": format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json?Page=0"),
            "next_page_uri": null,
            "previous_page_uri": null,
        }),
    )
}

/// The settings of a verifyd in twilio-verify mode against the fake at `base_url`.
pub fn verify_settings(base_url: &str) -> Vec<(String, String)> {
    [
        ("VERIFYD_PROVIDER", "twilio-verify"),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TWILIO_SERVICE_SID", SERVICE_SID),
        ("TWILIO_VERIFY_BASE_URL", base_url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The settings of a local-engine verifyd that delivers through the fake's Messaging API.
pub fn messaging_settings(base_url: &str) -> Vec<(String, String)> {
    [
        ("VERIFYD_PROVIDER", "local"),
        ("VERIFYD_SMS_SENDER", "twilio-messaging"),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TWILIO_MESSAGING_SERVICE_SID", MESSAGING_SERVICE_SID),
        ("TWILIO_API_BASE_URL", base_url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `settings` with `overrides` replacing or adding, as the borrowed pairs `spawn_app_with` takes.
pub fn with(settings: &[(String, String)], overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = settings
        .iter()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .cloned()
        .collect();
    out.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    out
}

/// Borrowed view of owned settings.
pub fn pairs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
