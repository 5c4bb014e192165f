//! The Plivo, Sinch, Infobip and Bird vendors through the HTTP API, each against a local fake of
//! its API on 127.0.0.1: a send arrives with the vendor's documented auth and body (checked by
//! hand against the vendor's documented request, and for Sinch also by Prism against Sinch's
//! OpenAPI description in tests/specs), a vendor outage (500) fails over to the next vendor, a
//! refusal of the number (4xx) does not; `verifyd doctor` checks each vendor's credentials with
//! one read-only GET.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;

use crate::conformance::{ONE_PRISM, Prism, free_port, spec};
use crate::helpers::*;

/// One request a fake vendor received.
#[derive(Clone, Debug)]
struct Captured {
    method: String,
    /// Path and query.
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The request as text for the report, the credentials and the code masked.
    fn describe(&self, code: &str) -> String {
        let mut out = format!("{} {}\n", self.method, self.target);
        for (name, value) in &self.headers {
            let value = value.to_str().unwrap_or("?");
            let value = if name == "authorization" {
                let scheme = value.split(' ').next().unwrap_or("");
                format!("{scheme} <secret>")
            } else {
                value.to_owned()
            };
            out.push_str(&format!("{name}: {value}\n"));
        }
        let body = String::from_utf8_lossy(&self.body);
        let body = if code.is_empty() {
            body.into_owned()
        } else {
            body.replace(code, &"•".repeat(code.len()))
        };
        out.push_str(&body);
        out
    }
}

/// A fake vendor API: records every request and answers each with the status and JSON body it
/// is told.
struct FakeVendor {
    url: String,
    requests: Arc<Mutex<Vec<Captured>>>,
    answer: Arc<Mutex<(u16, String)>>,
}

impl FakeVendor {
    async fn start(status: u16, body: &str) -> FakeVendor {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new((status, body.to_owned())));
        let (seen, told) = (Arc::clone(&requests), Arc::clone(&answer));
        let app = Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: axum::body::Bytes| {
                let (seen, told) = (Arc::clone(&seen), Arc::clone(&told));
                async move {
                    seen.lock().unwrap().push(Captured {
                        method: method.to_string(),
                        target: uri
                            .path_and_query()
                            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
                        headers,
                        body: body.to_vec(),
                    });
                    let (status, body) = told.lock().unwrap().clone();
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/json")],
                        body,
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeVendor {
            url: format!("http://{addr}"),
            requests,
            answer,
        }
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }

    fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }
}

/// A webhook gateway (the second vendor) that accepts every POST and counts them.
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

/// One vendor's case: its settings (pointed at `base`), and its answers.
struct Case {
    vendor: &'static str,
    settings: fn(&str) -> Vec<(&'static str, String)>,
    accepted: (u16, &'static str),
    outage: (u16, &'static str),
    refusal: (u16, &'static str),
}

const PLIVO_ID: &str = "MAXXXXXXXXXXXXXXXXXX";
const PLIVO_TOKEN: &str = "plivo-token-test-only-0123";
const SINCH_PLAN: &str = "7ef9a2c3d1b04e5f";
const SINCH_TOKEN: &str = "sinch-token-test-only-0123";
const INFOBIP_KEY: &str = "infobip-key-test-only-0123";
const BIRD_KEY: &str = "bk_us1_bird-key-test-only-0123";

const PLIVO: Case = Case {
    vendor: "plivo",
    settings: |base| {
        vec![
            ("PLIVO_AUTH_ID", PLIVO_ID.to_owned()),
            ("PLIVO_AUTH_TOKEN", PLIVO_TOKEN.to_owned()),
            ("PLIVO_FROM", "+14155550100".to_owned()),
            ("PLIVO_BASE_URL", base.to_owned()),
        ]
    },
    accepted: (
        202,
        r#"{"api_id":"db342550-7f1d-11e1-8ea7-1231380bc196","message":"message(s) queued","message_uuid":["db3ce55a-7f1d-11e1-8ea7-1231380bc196"]}"#,
    ),
    outage: (500, r#"{"api_id":"x","error":"internal server error"}"#),
    refusal: (400, r#"{"api_id":"x","error":"invalid 'dst' parameter"}"#),
};

const SINCH: Case = Case {
    vendor: "sinch",
    settings: |base| {
        vec![
            ("SINCH_SERVICE_PLAN_ID", SINCH_PLAN.to_owned()),
            ("SINCH_API_TOKEN", SINCH_TOKEN.to_owned()),
            ("SINCH_FROM", "+14155550100".to_owned()),
            ("SINCH_BASE_URL", base.to_owned()),
        ]
    },
    accepted: (
        201,
        r#"{"id":"01FC66621XXXXX119Z8PMV1QPQ","to":["+14155552671"],"from":"+14155550100","canceled":false,"body":"x","type":"mt_text","created_at":"2026-12-06T10:00:00.000Z","modified_at":"2026-12-06T10:00:00.000Z","delivery_report":"none","expire_at":"2026-12-09T10:00:00.000Z","flash_message":false}"#,
    ),
    outage: (500, r#"{"code":"internal_error","text":"Internal error"}"#),
    refusal: (
        400,
        r#"{"code":"syntax_invalid_parameter_format","text":"The format of parameter 'to[0]' is invalid"}"#,
    ),
};

const INFOBIP: Case = Case {
    vendor: "infobip",
    settings: |base| {
        vec![
            ("INFOBIP_API_KEY", INFOBIP_KEY.to_owned()),
            ("INFOBIP_FROM", "InfoSMS".to_owned()),
            ("INFOBIP_BASE_URL", base.to_owned()),
        ]
    },
    accepted: (
        200,
        r#"{"bulkId":"2034072219640523072","messages":[{"messageId":"2250be2d4219-3af1-78856-aabe-1362af1edfd2","status":{"groupId":1,"groupName":"PENDING","id":26,"name":"PENDING_ACCEPTED","description":"Message sent to next instance"},"destination":"14155552671"}]}"#,
    ),
    outage: (
        500,
        r#"{"errorCode":"E500","description":"Something went wrong.","action":"Try again later.","violations":[],"resources":[]}"#,
    ),
    refusal: (
        400,
        r#"{"errorCode":"E400","description":"Request cannot be processed.","action":"Check the syntax, violations and adjust the request.","violations":[{"property":"messages[0].destinations[0].to","violation":"must be a valid destination"}],"resources":[]}"#,
    ),
};

const BIRD: Case = Case {
    vendor: "bird",
    settings: |base| {
        vec![
            ("BIRD_API_KEY", BIRD_KEY.to_owned()),
            ("BIRD_FROM", "+14155550100".to_owned()),
            ("BIRD_BASE_URL", base.to_owned()),
        ]
    },
    accepted: (
        202,
        r#"{"id":"sms_4kT01Lq2m","status":"accepted","direction":"outbound","from":"+14155550100","to":"+14155552671","category":"authentication"}"#,
    ),
    outage: (
        503,
        r#"{"error":{"code":"service_unavailable","message":"Try again later.","doc_url":"https://bird.com/docs/errors/service_unavailable"}}"#,
    ),
    refusal: (
        422,
        r#"{"error":{"code":"validation_error","message":"`to` is not a valid phone number.","doc_url":"https://bird.com/docs/errors/validation_error"}}"#,
    ),
};

/// An app routing every country to `case`'s vendor at `base`, then the webhook `gateway`.
async fn app_for(case: &Case, base: &str, gateway: SocketAddr) -> TestApp {
    let url = format!("http://{gateway}/sms");
    let routes = format!("*={},webhook", case.vendor);
    let vendor = (case.settings)(base);
    let mut settings: Vec<(&str, &str)> = vec![
        ("VERIFYD_SMS_SENDER", "webhook"),
        ("VERIFYD_SMS_ROUTES", routes.as_str()),
        ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
        ("VERIFYD_SMS_WEBHOOK_SECRET", "gateway-secret-0123456789"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
    ];
    settings.extend(vendor.iter().map(|(k, v)| (*k, v.as_str())));
    spawn_app_with(&settings).await
}

/// Sends through `case`'s fake: accepted (the gateway sees nothing), an outage (fails over to
/// the gateway), a refusal (400 `invalid_phone_number`, no failover). Answers the first request
/// and the code it carried.
async fn exercise(case: &Case) -> (Captured, String) {
    let fake = FakeVendor::start(case.accepted.0, case.accepted.1).await;
    let (gw, hits) = gateway().await;
    let app = app_for(case, &fake.url, gw).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let first = fake.requests();
    assert_eq!(first.len(), 1, "{}: one request", case.vendor);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "{}: no failover",
        case.vendor
    );

    fake.answer(case.outage.0, case.outage.1);
    assert_ok(
        app.send_code("+14155552672").await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(fake.requests().len(), 2, "{}: tried once", case.vendor);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "{}: an outage fails over",
        case.vendor
    );

    fake.answer(case.refusal.0, case.refusal.1);
    assert_error(
        app.send_code("+14155552673").await,
        400,
        "invalid_phone_number",
    )
    .await;
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "{}: no failover on a refusal",
        case.vendor
    );
    let code = code_of(&first[0]);
    (first[0].clone(), code)
}

/// The code in a captured send's message text.
fn code_of(request: &Captured) -> String {
    let json = request.json();
    let text = json
        .pointer("/text")
        .or_else(|| json.pointer("/body"))
        .or_else(|| json.pointer("/messages/0/content/text"))
        .and_then(|t| t.as_str())
        .unwrap_or("");
    code_in(text)
}

/// A message to hand to a sender directly.
fn message() -> verifyd::sms::OutgoingMessage {
    verifyd::sms::OutgoingMessage {
        to: verifyd::domain::Recipient::Phone(
            verifyd::domain::PhoneNumber::parse(US_NUMBER).unwrap(),
        ),
        channel: verifyd::domain::Channel::Sms,
        body: secrecy::SecretString::from("Your verification code is: 123456".to_owned()),
        code: secrecy::SecretString::from("123456".to_owned()),
        code_length: 6,
        verification_sid: verifyd::domain::VerificationSid::generate(),
        locale: verifyd::messages::Locale::english(),
        email: None,
    }
}

const RECEIPTS: &str = "https://verifyd.example/callbacks";

fn plivo_sender(base: &str) -> verifyd::sms::PlivoSender {
    verifyd::sms::PlivoSender::new(&verifyd::config::PlivoConfig {
        auth_id: PLIVO_ID.to_owned(),
        auth_token: PLIVO_TOKEN.into(),
        from: "+14155550100".to_owned(),
        base_url: base.to_owned(),
    })
    .unwrap()
}

fn sinch_sender(base: &str) -> verifyd::sms::SinchSender {
    verifyd::sms::SinchSender::new(&verifyd::config::SinchConfig {
        service_plan_id: SINCH_PLAN.to_owned(),
        api_token: SINCH_TOKEN.into(),
        from: "+14155550100".to_owned(),
        base_url: base.to_owned(),
        webhook_secret: None,
    })
    .unwrap()
}

fn infobip_sender(base: &str) -> verifyd::sms::InfobipSender {
    verifyd::sms::InfobipSender::new(&verifyd::config::InfobipConfig {
        api_key: INFOBIP_KEY.into(),
        from: "InfoSMS".to_owned(),
        base_url: base.to_owned(),
        receipt_token: None,
    })
    .unwrap()
}

/// `submit` answers the vendor's own id of the message (for its receipts), and a sender given a
/// callback URL asks for receipts the way its vendor documents it. Bird takes no per-message
/// URL (its webhooks are subscriptions), so only its id is checked.
#[tokio::test]
async fn submit_answers_the_vendors_message_id_and_asks_for_receipts() {
    let fake = FakeVendor::start(PLIVO.accepted.0, PLIVO.accepted.1).await;
    let id = plivo_sender(&fake.url)
        .with_callback_url(format!("{RECEIPTS}/plivo"))
        .submit(&message())
        .await
        .unwrap();
    assert_eq!(id.as_deref(), Some("db3ce55a-7f1d-11e1-8ea7-1231380bc196"));
    let body = fake.requests()[0].json();
    assert_eq!(body["url"], format!("{RECEIPTS}/plivo"));
    assert_eq!(body["method"], "POST");

    let fake = FakeVendor::start(SINCH.accepted.0, SINCH.accepted.1).await;
    let id = sinch_sender(&fake.url)
        .with_callback_url(format!("{RECEIPTS}/sinch"))
        .submit(&message())
        .await
        .unwrap();
    assert_eq!(id.as_deref(), Some("01FC66621XXXXX119Z8PMV1QPQ"));
    let body = fake.requests()[0].json();
    assert_eq!(body["callback_url"], format!("{RECEIPTS}/sinch"));
    assert_eq!(body["delivery_report"], "per_recipient");

    let fake = FakeVendor::start(INFOBIP.accepted.0, INFOBIP.accepted.1).await;
    let id = infobip_sender(&fake.url)
        .with_callback_url(format!("{RECEIPTS}/infobip?token=t"))
        .submit(&message())
        .await
        .unwrap();
    assert_eq!(
        id.as_deref(),
        Some("2250be2d4219-3af1-78856-aabe-1362af1edfd2")
    );
    let body = fake.requests()[0].json();
    assert_eq!(
        body["messages"][0]["webhooks"],
        serde_json::json!({"delivery": {"url": format!("{RECEIPTS}/infobip?token=t")}})
    );

    let fake = FakeVendor::start(BIRD.accepted.0, BIRD.accepted.1).await;
    let bird = verifyd::sms::BirdSender::new(&verifyd::config::BirdConfig {
        api_key: BIRD_KEY.into(),
        from: "+14155550100".to_owned(),
        base_url: fake.url.clone(),
        webhook_secret: None,
    })
    .unwrap();
    assert_eq!(
        bird.submit(&message()).await.unwrap().as_deref(),
        Some("sms_4kT01Lq2m")
    );
}

fn keys(body: &serde_json::Value) -> Vec<String> {
    body.as_object().unwrap().keys().cloned().collect()
}

/// Checked by hand against Plivo's documented request (plivo.com/docs/messaging/api/message,
/// "Send a message": `POST https://api.plivo.com/v1/Account/{auth_id}/Message/`, HTTP Basic
/// auth with the Auth ID and Auth Token, JSON `{"src", "dst", "text"}`; answer 202 with
/// `message_uuid`). Plivo publishes no OpenAPI description.
#[tokio::test]
async fn plivo_gets_its_documented_request_and_fails_over_but_not_on_a_refusal() {
    let (request, code) = exercise(&PLIVO).await;
    println!("captured Plivo request:\n{}", request.describe(&code));
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, format!("/v1/Account/{PLIVO_ID}/Message/"));
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{PLIVO_ID}:{PLIVO_TOKEN}"));
    assert_eq!(request.header("authorization"), format!("Basic {basic}"));
    assert_eq!(request.header("content-type"), "application/json");
    let body = request.json();
    assert_eq!(keys(&body), ["dst", "src", "text"]);
    assert_eq!(body["dst"], US_NUMBER);
    assert_eq!(body["src"], "+14155550100");
    assert_eq!(code.len(), 6);
}

/// Checked by Prism against Sinch's OpenAPI description (below) and by hand against Sinch's
/// documented request (developers.sinch.com, SMS API, "Send": `POST https://us.sms.api.sinch.com
/// /xms/v1/{service_plan_id}/batches`, `Authorization: Bearer {API token}`, JSON `{"from", "to":
/// [...], "body"}`; answer 201 with the batch `id`).
#[tokio::test]
async fn sinch_gets_its_documented_request_and_fails_over_but_not_on_a_refusal() {
    let (request, code) = exercise(&SINCH).await;
    println!("captured Sinch request:\n{}", request.describe(&code));
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, format!("/xms/v1/{SINCH_PLAN}/batches"));
    assert_eq!(
        request.header("authorization"),
        format!("Bearer {SINCH_TOKEN}")
    );
    assert_eq!(request.header("content-type"), "application/json");
    let body = request.json();
    assert_eq!(keys(&body), ["body", "from", "to"]);
    assert_eq!(body["to"], serde_json::json!([US_NUMBER]));
    assert_eq!(body["from"], "+14155550100");
    assert_eq!(code.len(), 6);
}

/// Checked by hand against Infobip's documented request (Infobip API, SMS, "Send SMS message":
/// `POST https://{base}.api.infobip.com/sms/3/messages`, `Authorization: App {API key}`, JSON
/// `{"messages": [{"sender", "destinations": [{"to": "41793026727"}], "content": {"text"}}]}`, as
/// in Infobip's own Java client tests; answer 200 with `bulkId` and `messages[].messageId`).
#[tokio::test]
async fn infobip_gets_its_documented_request_and_fails_over_but_not_on_a_refusal() {
    let (request, code) = exercise(&INFOBIP).await;
    println!("captured Infobip request:\n{}", request.describe(&code));
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/sms/3/messages");
    assert_eq!(
        request.header("authorization"),
        format!("App {INFOBIP_KEY}")
    );
    assert_eq!(request.header("content-type"), "application/json");
    let body = request.json();
    assert_eq!(keys(&body), ["messages"]);
    let message = &body["messages"][0];
    assert_eq!(keys(message), ["content", "destinations", "sender"]);
    assert_eq!(message["sender"], "InfoSMS");
    assert_eq!(
        message["destinations"],
        serde_json::json!([{"to": US_NUMBER.trim_start_matches('+')}])
    );
    assert_eq!(keys(&message["content"]), ["text"]);
    assert_eq!(code.len(), 6);
}

/// Infobip answers 200 and rejects the message inside: a rejected destination is the caller's
/// error (no failover), no credit is an outage (failover).
#[tokio::test]
async fn an_infobip_rejection_inside_a_200_is_sorted_by_its_reason() {
    let fake = FakeVendor::start(200, "").await;
    let (gw, hits) = gateway().await;
    let app = app_for(&INFOBIP, &fake.url, gw).await;
    let rejected = |name: &str| {
        format!(
            r#"{{"bulkId":"b","messages":[{{"messageId":"m","status":{{"groupId":5,"groupName":"REJECTED","id":51,"name":"{name}","description":"x"}},"destination":"14155552671"}}]}}"#
        )
    };
    fake.answer(200, &rejected("REJECTED_DESTINATION"));
    assert_error(app.send_code(US_NUMBER).await, 400, "invalid_phone_number").await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    fake.answer(200, &rejected("REJECTED_NOT_ENOUGH_CREDITS"));
    assert_ok(
        app.send_code("+14155552672").await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// Checked by hand against Bird's documented request (Bird API reference, SMS, "Send an SMS",
/// and the request model of Bird's official Go SDK, messagebird/bird-sdk-go
/// `SMSMessageSendRequest`: `POST https://{region}.platform.bird.com/v1/sms/messages`,
/// `Authorization: Bearer {bk_… key}`, JSON `{"to", "from", "text", "category"}`). Bird publishes
/// no OpenAPI description.
#[tokio::test]
async fn bird_gets_its_documented_request_and_fails_over_but_not_on_a_refusal() {
    let (request, code) = exercise(&BIRD).await;
    println!("captured Bird request:\n{}", request.describe(&code));
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/v1/sms/messages");
    assert_eq!(
        request.header("authorization"),
        format!("Bearer {BIRD_KEY}")
    );
    assert_eq!(request.header("content-type"), "application/json");
    let body = request.json();
    assert_eq!(keys(&body), ["category", "from", "text", "to"]);
    assert_eq!(body["to"], US_NUMBER);
    assert_eq!(body["category"], "authentication");
    assert_eq!(code.len(), 6);
}

/// `verifyd doctor` with all four vendors configured: one authenticated, read-only GET each,
/// nothing sent, no secret printed.
#[tokio::test]
async fn doctor_checks_each_vendors_credentials_with_one_read_only_get() {
    let fake = FakeVendor::start(200, "{}").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifyd"));
    cmd.current_dir(dir.path())
        .env_clear()
        .arg("doctor")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .env(
            "VERIFYD_SMS_ROUTES",
            "US=plivo,sinch;GB=infobip,bird;*=console",
        );
    for case in [&PLIVO, &SINCH, &INFOBIP, &BIRD] {
        for (k, v) in (case.settings)(&fake.url) {
            cmd.env(k, v);
        }
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("doctor finishes")
        .expect("verifyd runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    for secret in [PLIVO_TOKEN, SINCH_TOKEN, INFOBIP_KEY, BIRD_KEY] {
        assert!(!stdout.contains(secret), "{stdout}");
    }
    for vendor in ["plivo", "sinch", "infobip", "bird"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!("{vendor}: credentials accepted"))),
            "{vendor}:\n{stdout}"
        );
    }
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.method == "GET"), "{requests:?}");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{PLIVO_ID}:{PLIVO_TOKEN}"));
    for (target, auth) in [
        (format!("/v1/Account/{PLIVO_ID}/"), format!("Basic {basic}")),
        (
            format!("/xms/v1/{SINCH_PLAN}/batches?page_size=1"),
            format!("Bearer {SINCH_TOKEN}"),
        ),
        (
            "/account/1/balance".to_owned(),
            format!("App {INFOBIP_KEY}"),
        ),
        ("/v1/sms/messages".to_owned(), format!("Bearer {BIRD_KEY}")),
    ] {
        let r = requests
            .iter()
            .find(|r| r.target == target)
            .unwrap_or_else(|| panic!("no GET {target}: {requests:?}"));
        assert_eq!(r.header("authorization"), auth, "{target}");
    }
    // Refused credentials are named with the settings to check.
    fake.answer(401, r#"{"error":"unauthorized"}"#);
    let out = cmd.output().await.expect("verifyd runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stdout.contains("credentials refused (HTTP 401)") && stdout.contains("PLIVO_AUTH_TOKEN"),
        "{stdout}"
    );
}

/// Sinch's SMS API description (tests/specs/sinch_sms_v1.yaml) in front of the fake Sinch: the
/// send and doctor's batch listing pass Prism's request and response validation.
#[tokio::test]
async fn every_sinch_call_passes_prism_against_sinchs_spec() {
    let Some(prism) = prism_or_skip() else {
        return;
    };
    let _one = ONE_PRISM.lock().await;
    let fake = FakeVendor::start(SINCH.accepted.0, SINCH.accepted.1).await;
    let prism = Prism::start_on(&prism, &spec("sinch_sms_v1.yaml"), &fake.url, free_port());
    let (gw, hits) = gateway().await;
    let app = app_for(&SINCH, &prism.url, gw).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "{}", prism.traffic());
    assert_eq!(fake.requests().len(), 1, "{}", prism.traffic());
    // With a per-recipient delivery report requested.
    let id = sinch_sender(&prism.url)
        .with_callback_url(format!("{RECEIPTS}/sinch"))
        .submit(&message())
        .await
        .unwrap();
    assert_eq!(id.as_deref(), Some("01FC66621XXXXX119Z8PMV1QPQ"));
    assert_eq!(fake.requests().len(), 2, "{}", prism.traffic());
    prism.assert_no_violations();
    println!("prism:\n{}", prism.traffic());
}

/// Infobip's SMS API description is published without a licence that allows redistributing it,
/// so it is not in tests/specs: point `VERIFYD_TEST_INFOBIP_SPEC` at a copy (Infobip's
/// `infobip-sms-openapi.json`) to run the send through Prism; skipped otherwise.
#[tokio::test]
async fn the_infobip_send_passes_prism_against_infobips_spec_when_given() {
    let Ok(path) = std::env::var("VERIFYD_TEST_INFOBIP_SPEC") else {
        eprintln!("skipped: VERIFYD_TEST_INFOBIP_SPEC is not set");
        return;
    };
    let Some(prism) = prism_or_skip() else {
        return;
    };
    let _one = ONE_PRISM.lock().await;
    let fake = FakeVendor::start(INFOBIP.accepted.0, INFOBIP.accepted.1).await;
    let prism = Prism::start_on(&prism, std::path::Path::new(&path), &fake.url, free_port());
    let (gw, hits) = gateway().await;
    let app = app_for(&INFOBIP, &prism.url, gw).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "{}", prism.traffic());
    let id = infobip_sender(&prism.url)
        .with_callback_url(format!("{RECEIPTS}/infobip?token=t"))
        .submit(&message())
        .await
        .unwrap();
    assert!(id.is_some(), "{}", prism.traffic());
    assert_eq!(fake.requests().len(), 2, "{}", prism.traffic());
    prism.assert_no_violations();
    println!("prism:\n{}", prism.traffic());
}

/// Vonage's SMS API description (tests/specs/vonage_sms.yml, MIT) in front of a fake Vonage:
/// the send of the `vonage` vendor (built before this file's four) passes Prism. Prism matches
/// paths without the server's base path (`https://rest.nexmo.com/sms`), so a copy with `/sms`
/// moved into the path is what Prism loads; and the 200 answer's `oneOf: [SMS, Error]` cannot
/// match exactly one (neither schema requires anything, so every answer matches both), so the
/// copy keeps `SMS` alone there. The request is checked as published.
#[tokio::test]
async fn the_vonage_send_passes_prism_against_vonages_spec() {
    let Some(prism) = prism_or_skip() else {
        return;
    };
    let _one = ONE_PRISM.lock().await;
    let fake = FakeVendor::start(
        200,
        r#"{"message-count":"1","messages":[{"to":"14155552671","message-id":"0A0000000123ABCD1","status":"0","remaining-balance":"3.14159265","message-price":"0.03330000","network":"12345"}]}"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let moved = dir.path().join("vonage_sms.yml");
    let text = std::fs::read_to_string(spec("vonage_sms.yml")).unwrap();
    assert!(
        text.contains("\n  /{format}:\n"),
        "the spec's send path moved"
    );
    let one_of = "              schema:\n                oneOf:\n                  - $ref: \"#/components/schemas/SMS\"\n                  - $ref: \"#/components/schemas/Error\"\n";
    assert!(text.contains(one_of), "the spec's 200 answer changed");
    let text = text
        .replace("\n  /{format}:\n", "\n  /sms/{format}:\n")
        .replace(
            one_of,
            "              schema:\n                $ref: \"#/components/schemas/SMS\"\n",
        );
    std::fs::write(&moved, text).unwrap();
    let prism = Prism::start_on(&prism, &moved, &fake.url, free_port());
    let (gw, hits) = gateway().await;
    let url = format!("http://{gw}/sms");
    let app = spawn_app_with(&[
        ("VERIFYD_SMS_SENDER", "webhook"),
        ("VERIFYD_SMS_ROUTES", "*=vonage,webhook"),
        ("VONAGE_API_KEY", "abcd1234"),
        ("VONAGE_API_SECRET", "vonage-secret-test-only"),
        ("VONAGE_FROM", "AcmeInc"),
        ("VONAGE_BASE_URL", prism.url.as_str()),
        ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
        ("VERIFYD_SMS_WEBHOOK_SECRET", "gateway-secret-0123456789"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ])
    .await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "{}", prism.traffic());
    assert_eq!(fake.requests().len(), 1, "{}", prism.traffic());
    prism.assert_no_violations();
    println!("prism:\n{}", prism.traffic());
}

/// `VERIFYD_SMS_FROM` (issue 21) through each of the four vendors' fakes: a destination whose
/// country has a sender gets it; another gets the vendor's own `…_FROM`.
#[tokio::test]
async fn the_four_vendors_send_from_the_destination_countrys_sender_id() {
    for (case, field) in [
        (&PLIVO, "/src"),
        (&SINCH, "/from"),
        (&INFOBIP, "/messages/0/sender"),
        (&BIRD, "/from"),
    ] {
        let fake = FakeVendor::start(case.accepted.0, case.accepted.1).await;
        let vendor = (case.settings)(&fake.url);
        let mut settings: Vec<(&str, &str)> = vec![
            ("VERIFYD_SMS_SENDER", case.vendor),
            ("VERIFYD_SMS_FROM", "GB=Acme"),
            ("VERIFYD_VALID_COUNTRY_CODES", "US,GB"),
            ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
            ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
        ];
        settings.extend(vendor.iter().map(|(k, v)| (*k, v.as_str())));
        let app = spawn_app_with(&settings).await;
        let mut seen = Vec::new();
        for to in ["+447400123456", US_NUMBER] {
            assert_ok(app.send_code(to).await, "Verification code sent!").await;
            let request = fake.requests().last().cloned().unwrap();
            seen.push(request.json().pointer(field).cloned().unwrap());
        }
        let own = vendor
            .iter()
            .find(|(k, _)| k.ends_with("_FROM"))
            .map(|(_, v)| v.clone())
            .unwrap();
        assert_eq!(
            seen,
            [serde_json::json!("Acme"), serde_json::json!(own)],
            "{}: GB's sender, then the vendor's own",
            case.vendor
        );
    }
}
