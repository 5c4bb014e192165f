//! `VERIFYD_SMS_ROUTES` through the HTTP API: Twilio Messaging (the fake Twilio) first, a
//! webhook gateway second. A primary that answers 5xx, times out or refuses the connection
//! fails over (one SMS goes out, 200); a primary that refuses the number (4xx) does not (400);
//! once the primary's breaker is open, sends skip it without waiting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;

use crate::fake_twilio::*;
use crate::helpers::*;

/// A gateway that accepts every POST and counts them.
async fn gateway() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = Router::new().fallback(move || {
        let hits = Arc::clone(&counted);
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            StatusCode::ACCEPTED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

/// An app routing every country to Twilio Messaging at `twilio_url`, then the gateway.
async fn routed_app(twilio_url: &str, gateway: SocketAddr) -> TestApp {
    let url = format!("http://{gateway}/sms");
    let settings = with(
        &messaging_settings(twilio_url),
        &[
            ("VERIFYD_SMS_SENDER", "webhook"),
            ("VERIFYD_SMS_ROUTES", "*=twilio-messaging,webhook"),
            ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
            ("VERIFYD_SMS_WEBHOOK_SECRET", "gateway-secret-0123456789"),
            ("TWILIO_TIMEOUT", "1"),
            ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
            ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
            ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
        ],
    );
    spawn_app_with(&pairs(&settings)).await
}

#[tokio::test]
async fn a_failing_primary_fails_over_and_one_sms_goes_out() {
    let fake = FakeTwilio::start().await;
    let (gw, hits) = gateway().await;
    let app = routed_app(&fake.url(), gw).await;
    // Healthy primary: Twilio carries it, the gateway sees nothing.
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!((fake.messages().len(), hits.load(Ordering::SeqCst)), (1, 0));
    let faults = [
        ("500", Fault::error(500, 20500, "Internal Server Error")),
        ("429", Fault::error(429, 20429, "Too Many Requests")),
        ("timeout", Fault::Slow(Duration::from_millis(1500))),
    ];
    for (i, (name, fault)) in faults.into_iter().enumerate() {
        fake.forget_calls();
        fake.set_fault(Target::Messages, fault);
        let number = format!("+1415555268{i}");
        assert_ok(app.send_code(&number).await, "Verification code sent!").await;
        assert_eq!(fake.messages().len(), 1, "{name}: Twilio tried once");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            i + 1,
            "{name}: the gateway carried it"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_fails_over() {
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (gw, hits) = gateway().await;
    let app = routed_app(&dead, gw).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refusal_of_the_number_is_the_callers_error_and_does_not_fail_over() {
    let fake = FakeTwilio::start().await;
    let (gw, hits) = gateway().await;
    let app = routed_app(&fake.url(), gw).await;
    fake.set_fault(
        Target::Messages,
        Fault::error(400, 21211, "Invalid 'To' Phone Number"),
    );
    assert_error(app.send_code(US_NUMBER).await, 400, "invalid_phone_number").await;
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no failover on a refusal");
}

fn p50(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn with_the_primary_timing_out_its_breaker_opens_and_sends_stop_waiting_on_it() {
    let fake = FakeTwilio::start().await;
    let (gw, hits) = gateway().await;
    let app = routed_app(&fake.url(), gw).await;
    fake.set_fault(Target::Messages, Fault::Slow(Duration::from_millis(1500)));
    // Three timeouts in a row (1 s each) open the breaker.
    for i in 0..3 {
        let number = format!("+1415555270{i}");
        assert_ok(app.send_code(&number).await, "Verification code sent!").await;
    }
    assert_eq!(fake.messages().len(), 3);
    let mut open = Vec::new();
    for i in 0..100 {
        let number = format!("+141555571{i:02}");
        let t = Instant::now();
        assert_ok(app.send_code(&number).await, "Verification code sent!").await;
        open.push(t.elapsed());
    }
    assert_eq!(fake.messages().len(), 3, "the open breaker skips Twilio");
    assert_eq!(hits.load(Ordering::SeqCst), 103);
    // The healthy path for comparison: the gateway alone.
    let url = format!("http://{gw}/sms");
    let direct = spawn_app_with(&[
        ("VERIFYD_SMS_SENDER", "webhook"),
        ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
        ("VERIFYD_SMS_WEBHOOK_SECRET", "gateway-secret-0123456789"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
    ])
    .await;
    let mut healthy = Vec::new();
    for i in 0..100 {
        let number = format!("+141555572{i:02}");
        let t = Instant::now();
        assert_ok(direct.send_code(&number).await, "Verification code sent!").await;
        healthy.push(t.elapsed());
    }
    let (open, healthy) = (p50(open), p50(healthy));
    println!("breaker open: p50 {open:?} per send; gateway alone: p50 {healthy:?}");
    // Far below the primary's 1 s timeout: nothing waits on the dead vendor.
    assert!(open < Duration::from_millis(250), "{open:?}");
}

/// A fake Telnyx Messaging API: records each request (method, path, headers, JSON body) and
/// answers as told (200 with `data.id`, or an error answer with `errors[]`).
#[derive(Default)]
struct FakeTelnyx {
    requests: std::sync::Mutex<Vec<(String, String, axum::http::HeaderMap, serde_json::Value)>>,
    answer: std::sync::Mutex<Option<(u16, &'static str)>>,
}

async fn fake_telnyx() -> (String, Arc<FakeTelnyx>) {
    let state = Arc::new(FakeTelnyx::default());
    let seen = Arc::clone(&state);
    let app = Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: axum::body::Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                seen.requests.lock().unwrap().push((
                    method.to_string(),
                    uri.path().to_owned(),
                    headers,
                    json,
                ));
                let answer = *seen.answer.lock().unwrap();
                match answer {
                    None => (
                        StatusCode::OK,
                        r#"{"data":{"id":"40317c1e-0000-4000-8000-000000000001","record_type":"message"}}"#
                            .to_owned(),
                    ),
                    Some((status, code)) => (
                        StatusCode::from_u16(status).unwrap(),
                        format!(r#"{{"errors":[{{"code":"{code}","title":"refused"}}]}}"#),
                    ),
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

const TELNYX_KEY: &str = "KEY0123456789ABCDEF_test_only";

async fn telnyx_app(telnyx_url: &str, gateway: SocketAddr) -> TestApp {
    let url = format!("http://{gateway}/sms");
    spawn_app_with(&[
        ("VERIFYD_SMS_SENDER", "webhook"),
        ("VERIFYD_SMS_ROUTES", "US,CA=telnyx,webhook;*=webhook"),
        ("TELNYX_API_KEY", TELNYX_KEY),
        ("TELNYX_FROM", "+18445550001"),
        ("TELNYX_BASE_URL", telnyx_url),
        ("VERIFYD_VALID_COUNTRY_CODES", "US,GB"),
        ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
        ("VERIFYD_SMS_WEBHOOK_SECRET", "gateway-secret-0123456789"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ])
    .await
}

/// Checked by hand against Telnyx's documented request (developers.telnyx.com/api/messaging/
/// send-message, "Send a message": `POST https://api.telnyx.com/v2/messages`,
/// `Authorization: Bearer YOUR_API_KEY`, `Content-Type: application/json`,
/// `{"from": "+18445550001", "to": "+18445550002", "text": "Hello, World!"}`).
#[tokio::test]
async fn telnyx_gets_its_documented_request_and_fails_over_but_not_on_a_refusal() {
    let (telnyx, fake) = fake_telnyx().await;
    let (gw, hits) = gateway().await;
    let app = telnyx_app(&telnyx, gw).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (method, path, headers, body) = &requests[0];
    println!("captured Telnyx request: {method} {path}\n{headers:?}\n{body}");
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/v2/messages"));
    assert_eq!(
        headers["authorization"].to_str().unwrap(),
        format!("Bearer {TELNYX_KEY}")
    );
    assert_eq!(headers["content-type"], "application/json");
    let fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["from", "text", "to"], "{body}");
    assert_eq!(body["to"], US_NUMBER);
    assert_eq!(body["from"], "+18445550001");
    assert_eq!(code_in(body["text"].as_str().unwrap()).len(), 6);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // A Telnyx outage (500) fails over to the gateway.
    *fake.answer.lock().unwrap() = Some((500, "10007"));
    assert_ok(
        app.send_code("+14155552672").await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Telnyx refusing the number (40310, invalid `to`) is the caller's error: no failover.
    *fake.answer.lock().unwrap() = Some((400, "40310"));
    assert_error(
        app.send_code("+14155552673").await,
        400,
        "invalid_phone_number",
    )
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "no failover on a refusal");
    // A number outside US/CA goes to the `*` route alone.
    *fake.answer.lock().unwrap() = None;
    let before = fake.requests.lock().unwrap().len();
    assert_ok(
        app.send_code("+447400123456").await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(fake.requests.lock().unwrap().len(), before);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// A request the fake Vonage got: path, content type, form fields.
type VonageRequest = (String, String, Vec<(String, String)>);

/// A fake Vonage SMS API: records each request's path, content type and form fields, and
/// answers HTTP 200 with the part status it is told (`"0"`: accepted).
#[derive(Default)]
struct FakeVonage {
    requests: std::sync::Mutex<Vec<VonageRequest>>,
    status: std::sync::Mutex<Option<&'static str>>,
}

async fn fake_vonage() -> (String, Arc<FakeVonage>) {
    let state = Arc::new(FakeVonage::default());
    let seen = Arc::clone(&state);
    let app = Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
                let content_type = headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                seen.requests
                    .lock()
                    .unwrap()
                    .push((uri.path().to_owned(), content_type, form));
                let status = seen.status.lock().unwrap().unwrap_or("0");
                format!(
                    r#"{{"message-count":"1","messages":[{{"to":"14155552671","message-id":"0A0000000123ABCD1","status":"{status}","remaining-balance":"3.14","message-price":"0.03","network":"12345"}}]}}"#
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

/// Checked by hand against Vonage's documented request (developer.vonage.com, SMS API, "Send
/// an SMS": `POST https://rest.nexmo.com/sms/json` with the form fields `from`, `text`, `to`
/// (no `+`), `api_key`, `api_secret`; the answer's `messages[].status` `"0"` is success).
#[tokio::test]
async fn vonage_gets_its_documented_request_and_a_failed_status_fails_over_but_a_refusal_does_not()
{
    let (vonage, fake) = fake_vonage().await;
    let (gw, hits) = gateway().await;
    let url = format!("http://{gw}/sms");
    let app = spawn_app_with(&[
        ("VERIFYD_SMS_SENDER", "webhook"),
        ("VERIFYD_SMS_ROUTES", "*=vonage,webhook"),
        ("VONAGE_API_KEY", "abcd1234"),
        ("VONAGE_API_SECRET", "vonage-secret-test-only"),
        ("VONAGE_FROM", "AcmeInc"),
        ("VONAGE_BASE_URL", vonage.as_str()),
        ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
        ("VERIFYD_SMS_WEBHOOK_SECRET", "gateway-secret-0123456789"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ])
    .await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (path, content_type, form) = &requests[0];
    println!("captured Vonage request: POST {path} ({content_type})\n{form:?}");
    assert_eq!(path, "/sms/json");
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    let names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["api_key", "api_secret", "from", "to", "text"]);
    let field = |k: &str| form.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(field("to"), US_NUMBER.trim_start_matches('+'));
    assert_eq!(field("from"), "AcmeInc");
    assert_eq!(field("api_key"), "abcd1234");
    assert_eq!(code_in(&field("text")).len(), 6);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // Status 5 (internal error) fails over.
    *fake.status.lock().unwrap() = Some("5");
    assert_ok(
        app.send_code("+14155552672").await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Status 3 (invalid parameters: the number) is the caller's error.
    *fake.status.lock().unwrap() = Some("3");
    assert_error(
        app.send_code("+14155552673").await,
        400,
        "invalid_phone_number",
    )
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "no failover on a refusal");
}

/// `VERIFYD_SMS_FROM` (issue 21) through the Telnyx and Vonage fakes: the destination country's
/// sender, else `*`'s, else the vendor's own `…_FROM` (Vonage without the `+`).
#[tokio::test]
async fn telnyx_and_vonage_send_from_the_destination_countrys_sender_id() {
    let (telnyx, fake) = fake_telnyx().await;
    let app = spawn_app_with(&[
        ("VERIFYD_SMS_SENDER", "telnyx"),
        ("TELNYX_API_KEY", TELNYX_KEY),
        ("TELNYX_FROM", "+18445550001"),
        (
            "TELNYX_MESSAGING_PROFILE_ID",
            "40017a3e-0000-4000-8000-000000000001",
        ),
        ("TELNYX_BASE_URL", telnyx.as_str()),
        ("VERIFYD_SMS_FROM", "GB=Acme,*=+18445550009"),
        ("VERIFYD_VALID_COUNTRY_CODES", "US,GB"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ])
    .await;
    for (to, from) in [(US_NUMBER, "+18445550009"), ("+447400123456", "Acme")] {
        assert_ok(app.send_code(to).await, "Verification code sent!").await;
        let (_, _, _, body) = fake.requests.lock().unwrap().last().cloned().unwrap();
        assert_eq!(body["to"], to);
        assert_eq!(body["from"], from, "to {to}");
    }

    let (vonage, fake) = fake_vonage().await;
    let app = spawn_app_with(&[
        ("VERIFYD_SMS_SENDER", "vonage"),
        ("VONAGE_API_KEY", "abcd1234"),
        ("VONAGE_API_SECRET", "vonage-secret-test-only"),
        ("VONAGE_FROM", "AcmeInc"),
        ("VONAGE_BASE_URL", vonage.as_str()),
        ("VERIFYD_SMS_FROM", "US=+14155550100"),
        ("VERIFYD_VALID_COUNTRY_CODES", "US,GB"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ])
    .await;
    for (to, from) in [(US_NUMBER, "14155550100"), ("+447400123456", "AcmeInc")] {
        assert_ok(app.send_code(to).await, "Verification code sent!").await;
        let (_, _, form) = fake.requests.lock().unwrap().last().cloned().unwrap();
        let field = |k: &str| form.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(field("to"), to.trim_start_matches('+'));
        assert_eq!(field("from"), from, "to {to}");
    }
}
