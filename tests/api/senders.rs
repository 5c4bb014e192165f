//! The local engine's other senders through the HTTP API: `twilio-messaging` against the fake
//! Twilio, `webhook` against a fake gateway that verifies the signature. A failed first delivery
//! is 502 `provider_error`, is never retried, and closes the verification.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use verifyd::clock::Clock;

use crate::fake_twilio::*;
use crate::helpers::*;

async fn spawn_messaging(fake: &FakeTwilio, overrides: &[(&str, &str)]) -> TestApp {
    let settings = with(&messaging_settings(&fake.url()), overrides);
    spawn_app_with(&pairs(&settings)).await
}

#[tokio::test]
async fn the_twilio_messaging_sender_posts_to_messages_json_and_the_code_checks() {
    let fake = FakeTwilio::start().await;
    let app = spawn_messaging(&fake, &[]).await;
    let sent = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        m.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    assert_eq!(m.auth, Auth::Ok);
    assert_eq!(m.field("To"), Some(US_NUMBER));
    assert_eq!(m.field("MessagingServiceSid"), Some(MESSAGING_SERVICE_SID));
    assert_eq!(m.field("From"), None);
    let code = code_in(m.field("Body").unwrap());
    assert_eq!(code.len(), 6);
    let data = assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    assert_eq!(data["sid"], sent["sid"], "our engine, our sids");
    // The dev outbox exists only with the console sender.
    let outbox = app
        .client
        .get(app.url("/dev/outbox"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(outbox.status(), 404);
    fake.assert_no_violations();
}

#[tokio::test]
async fn with_twilio_from_the_messaging_sender_sends_from_that_number() {
    let fake = FakeTwilio::start().await;
    let settings = with(
        &messaging_settings(&fake.url()),
        &[("TWILIO_FROM", "+15005550006")],
    );
    let settings: Vec<(String, String)> = settings
        .into_iter()
        .filter(|(k, _)| k != "TWILIO_MESSAGING_SERVICE_SID")
        .collect();
    let app = spawn_app_with(&pairs(&settings)).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let m = &fake.messages()[0];
    assert_eq!(m.field("From"), Some("+15005550006"));
    assert_eq!(m.field("MessagingServiceSid"), None);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_failed_messaging_send_is_502_is_not_retried_and_closes_the_verification() {
    let fake = FakeTwilio::start().await;
    let app = spawn_messaging(
        &fake,
        &[("TWILIO_TIMEOUT", "1"), ("VERIFYD_RATE_LIMIT_IP_MAX", "0")],
    )
    .await;
    let faults = [
        ("500", Fault::error(500, 20500, "Internal Server Error")),
        ("20003", Fault::error(401, 20003, "Authenticate")),
        ("slow", Fault::Slow(Duration::from_millis(1500))),
    ];
    for (name, fault) in faults {
        fake.forget_calls();
        fake.set_fault(Target::Messages, fault);
        let body = assert_error(app.send_code(US_NUMBER).await, 502, "provider_error").await;
        assert_eq!(
            fake.messages().len(),
            1,
            "{name}: one message call, no retry"
        );
        assert!(!body.to_string().contains("Twilio"), "{name}: {body}");
    }
    // Twilio refusing the number is the caller's error (issue 22: never failed over).
    fake.forget_calls();
    fake.set_fault(
        Target::Messages,
        Fault::error(400, 21211, "Invalid 'To' Phone Number"),
    );
    assert_error(app.send_code(US_NUMBER).await, 400, "invalid_phone_number").await;
    assert_eq!(
        fake.messages().len(),
        1,
        "21211: one message call, no retry"
    );
    fake.clear_faults();
    // Each failed first delivery closed its verification: this send starts a new one.
    let data = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(data["sendCodeAttempts"].as_array().unwrap().len(), 1);
}

/// A fake SMS gateway: checks `X-Verifyd-Signature` with its secret and answers as told.
struct FakeGateway {
    addr: SocketAddr,
    state: Arc<GatewayState>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct GatewayState {
    received: Mutex<Vec<(Option<String>, Value, bool)>>,
    answer: Mutex<Option<StatusCode>>,
    delay: Mutex<Option<Duration>>,
}

const GATEWAY_SECRET: &str = "gateway-secret-0123456789";

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn signature_ok(header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else { return false };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(GATEWAY_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

async fn gateway(
    State(state): State<Arc<GatewayState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = headers
        .get("x-verifyd-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ok = signature_ok(header.as_deref(), &body)
        && headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/json");
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.received.lock().unwrap().push((header, json, ok));
    let delay = *state.delay.lock().unwrap();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if !ok {
        return StatusCode::UNAUTHORIZED;
    }
    state.answer.lock().unwrap().unwrap_or(StatusCode::ACCEPTED)
}

impl FakeGateway {
    async fn start() -> FakeGateway {
        let state = Arc::new(GatewayState::default());
        let app = Router::new()
            .route("/sms", axum::routing::post(gateway))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGateway {
            addr,
            state,
            server,
        }
    }

    fn received(&self) -> Vec<(Option<String>, Value, bool)> {
        self.state.received.lock().unwrap().clone()
    }
}

async fn spawn_webhook(gw: &FakeGateway, secret: &str, overrides: &[(&str, &str)]) -> TestApp {
    let url = format!("http://{}/sms", gw.addr);
    let mut settings = vec![
        ("VERIFYD_SMS_SENDER", "webhook"),
        ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
        ("VERIFYD_SMS_WEBHOOK_SECRET", secret),
    ];
    settings.extend_from_slice(overrides);
    spawn_app_with(&settings).await
}

#[tokio::test]
async fn the_webhook_sender_posts_signed_json_and_the_code_checks() {
    let gw = FakeGateway::start().await;
    let app = spawn_webhook(&gw, GATEWAY_SECRET, &[]).await;
    let sent = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let received = gw.received();
    assert_eq!(received.len(), 1);
    let (header, payload, ok) = &received[0];
    assert!(ok, "the gateway verified the signature: {header:?}");
    let now = app.clock.now().as_millis() / 1000;
    assert!(
        header
            .as_deref()
            .unwrap()
            .starts_with(&format!("t={now},v1=")),
        "{header:?}"
    );
    let keys: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.len(),
        5,
        "exactly to, channel, body, code_length, verification_sid: {payload}"
    );
    assert_eq!(payload["to"], US_NUMBER);
    assert_eq!(payload["channel"], "sms");
    assert_eq!(payload["code_length"], 6);
    assert_eq!(payload["verification_sid"], sent["sid"]);
    let code = code_in(payload["body"].as_str().unwrap());
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn a_failed_webhook_is_502_is_not_retried_and_closes_the_verification() {
    let gw = FakeGateway::start().await;
    let app = spawn_webhook(
        &gw,
        GATEWAY_SECRET,
        &[
            ("VERIFYD_SMS_WEBHOOK_TIMEOUT", "1"),
            ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ],
    )
    .await;
    *gw.state.answer.lock().unwrap() = Some(StatusCode::INTERNAL_SERVER_ERROR);
    assert_error(app.send_code(US_NUMBER).await, 502, "provider_error").await;
    *gw.state.answer.lock().unwrap() = None;
    *gw.state.delay.lock().unwrap() = Some(Duration::from_millis(1500));
    assert_error(app.send_code(US_NUMBER).await, 502, "provider_error").await;
    assert_eq!(gw.received().len(), 2, "one POST per send, never retried");
    *gw.state.delay.lock().unwrap() = None;
    let data = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(data["sendCodeAttempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_webhook_signed_with_another_secret_is_refused_by_the_gateway() {
    let gw = FakeGateway::start().await;
    let app = spawn_webhook(&gw, "not-the-gateway-secret-000", &[]).await;
    assert_error(app.send_code(US_NUMBER).await, 502, "provider_error").await;
    assert!(!gw.received()[0].2);
}

/// A server that counts every request it gets, whatever the method and path.
async fn counting_server() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = Router::new().fallback(move || {
        let hits = Arc::clone(&counted);
        async move {
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

#[tokio::test]
async fn the_webhook_sender_never_follows_a_redirect() {
    // The redirect's target records whether it was hit; it would accept anything.
    let (target, hits) = counting_server().await;
    for status in [302u16, 307, 308] {
        let location = format!("http://{target}/elsewhere");
        let app = Router::new().fallback(move || {
            let location = location.clone();
            async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::LOCATION, location)],
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let redirector = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{redirector}/sms");
        let app = spawn_app_with(&[
            ("VERIFYD_SMS_SENDER", "webhook"),
            ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
            ("VERIFYD_SMS_WEBHOOK_SECRET", GATEWAY_SECRET),
        ])
        .await;
        assert_error(app.send_code(US_NUMBER).await, 502, "provider_error").await;
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "HTTP {status}: the redirect was followed"
        );
    }
}

/// `VERIFYD_SMS_FROM` (issue 21): the destination country's sender, else `*`'s, else
/// `TWILIO_FROM`; a messaging service picks its own sender (Twilio takes one of the two).
#[tokio::test]
async fn the_messaging_sender_sends_from_the_destination_countrys_sender_id() {
    let fake = FakeTwilio::start().await;
    let settings = with(
        &messaging_settings(&fake.url()),
        &[
            ("TWILIO_FROM", "+15005550006"),
            ("VERIFYD_SMS_FROM", "US=+14155550100,GB=Acme"),
            ("VERIFYD_VALID_COUNTRY_CODES", "US,GB,DE"),
            ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
            ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
        ],
    );
    let settings: Vec<(String, String)> = settings
        .into_iter()
        .filter(|(k, _)| k != "TWILIO_MESSAGING_SERVICE_SID")
        .collect();
    let app = spawn_app_with(&pairs(&settings)).await;
    for (to, from) in [
        (US_NUMBER, "+14155550100"),
        ("+447400123456", "Acme"),
        ("+4915123456789", "+15005550006"),
    ] {
        assert_ok(app.send_code(to).await, "Verification code sent!").await;
        let m = fake.messages().pop().unwrap();
        assert_eq!(m.field("To"), Some(to));
        assert_eq!(m.field("From"), Some(from), "to {to}");
        assert_eq!(m.field("MessagingServiceSid"), None);
    }

    let fake = FakeTwilio::start().await;
    let settings = with(
        &messaging_settings(&fake.url()),
        &[
            ("VERIFYD_SMS_FROM", "GB=Acme"),
            ("VERIFYD_VALID_COUNTRY_CODES", "US,GB"),
        ],
    );
    let app = spawn_app_with(&pairs(&settings)).await;
    assert_ok(
        app.send_code("+447400123456").await,
        "Verification code sent!",
    )
    .await;
    let sent = fake.messages();
    assert_eq!(
        sent[0].field("MessagingServiceSid"),
        Some(MESSAGING_SERVICE_SID)
    );
    assert_eq!(sent[0].field("From"), None);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_bad_sms_from_setting_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "GB=Acme Bank Limited",
        "GB=12345",
        "XX=Acme",
        "US=+1",
        "GB=Acme,GB=Other",
        "Acme",
    ] {
        let err = load_config(&dir, &[("VERIFYD_SMS_FROM", bad)]).unwrap_err();
        assert!(err.to_string().contains("VERIFYD_SMS_FROM"), "{bad}: {err}");
    }
}
