//! The channels beside SMS through the real server: WhatsApp through Twilio Messaging
//! (`whatsapp:` addresses) and calls through Twilio Voice (TwiML saying the code digit by digit,
//! twice, in the message's language), each against a local fake of Twilio's REST API, and both
//! again through Stoplight Prism with Twilio's published API description; the console sender
//! showing every channel; and the fallback order (WhatsApp fails → SMS carries the same code, the
//! check approves once).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::conformance::{ONE_PRISM, Prism, free_port, spec};
use crate::helpers::*;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const WHATSAPP_FROM: &str = "+14155238886";
const VOICE_FROM: &str = "+14155550199";

/// One request the fake received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    form: Vec<(String, String)>,
    basic_auth: bool,
}

impl Received {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Refuse WhatsApp messages (Twilio's 63016-style refusal) to exercise the fallback.
    fail_whatsapp: bool,
}

/// A fake of Twilio's Messages.json and Calls.json.
#[derive(Clone)]
struct FakeTwilioRest {
    url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTwilioRest {
    async fn start(fail_whatsapp: bool) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            fail_whatsapp,
            ..Inner::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, inner }
    }

    fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"))
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let r = Received {
        path: uri.path().to_owned(),
        form,
        basic_auth: headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == expected.as_bytes()),
    };
    let mut inner = inner.lock().unwrap();
    inner.received.push(r.clone());
    let sid_hex = format!("{:032x}", inner.received.len());
    let date = "Sun, 06 Dec 2026 08:00:00 +0000";
    if r.path == format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json") {
        if inner.fail_whatsapp && r.field("To").is_some_and(|t| t.starts_with("whatsapp:")) {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "code": 63016,
                    "message": "Failed to send freeform message because you are outside the allowed window",
                    "more_info": "https://www.twilio.com/docs/errors/63016",
                    "status": 400
                })),
            )
                .into_response();
        }
        return (
            StatusCode::CREATED,
            axum::Json(json!({
                "account_sid": ACCOUNT,
                "api_version": "2010-04-01",
                "body": r.field("Body"),
                "date_created": date,
                "date_sent": null,
                "date_updated": date,
                "direction": "outbound-api",
                "error_code": null,
                "error_message": null,
                "from": r.field("From"),
                "num_media": "0",
                "num_segments": "1",
                "price": null,
                "price_unit": null,
                "messaging_service_sid": null,
                "sid": format!("SM{sid_hex}"),
                "status": "queued",
                "subresource_uris": {"media": format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/SM{sid_hex}/Media.json")},
                "to": r.field("To"),
                "uri": format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/SM{sid_hex}.json"),
            })),
        )
            .into_response();
    }
    if r.path == format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json") {
        return (
            StatusCode::CREATED,
            axum::Json(json!({
                "account_sid": ACCOUNT,
                "api_version": "2010-04-01",
                "answered_by": null,
                "caller_name": null,
                "date_created": date,
                "date_updated": date,
                "direction": "outbound-api",
                "duration": null,
                "end_time": null,
                "forwarded_from": null,
                "from": r.field("From"),
                "from_formatted": r.field("From"),
                "group_sid": null,
                "parent_call_sid": null,
                "phone_number_sid": null,
                "price": null,
                "price_unit": "USD",
                "sid": format!("CA{sid_hex}"),
                "start_time": null,
                "status": "queued",
                "subresource_uris": {},
                "to": r.field("To"),
                "to_formatted": r.field("To"),
                "trunk_sid": null,
                "uri": format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/CA{sid_hex}.json"),
                "queue_time": "0",
            })),
        )
            .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"code": 20404, "message": "not found", "more_info": "", "status": 404})),
    )
        .into_response()
}

/// The settings of an app whose WhatsApp and calls go to `base_url`; SMS to the console.
fn channel_settings(base_url: &str) -> Vec<(String, String)> {
    [
        ("VERIFYD_PROVIDER", "local"),
        ("VERIFYD_CHANNELS", "sms,whatsapp,call"),
        ("TWILIO_ACCOUNT_SID", ACCOUNT),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_WHATSAPP_FROM", WHATSAPP_FROM),
        ("TWILIO_VOICE_FROM", VOICE_FROM),
        ("TWILIO_API_BASE_URL", base_url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn pairs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

async fn send(app: &TestApp, body: Value) -> Value {
    assert_ok(
        app.post("/mfa/send-code", &body).await,
        "Verification code sent!",
    )
    .await
}

/// Sends on WhatsApp and as a call; the code of each checks.
async fn whatsapp_and_call(app: &TestApp, fake: &FakeTwilioRest) {
    send(app, json!({"recipient": US_NUMBER, "channel": "whatsapp"})).await;
    let received = fake.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let m = &received[0];
    assert_eq!(
        m.path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    assert!(m.basic_auth);
    assert_eq!(
        m.field("To"),
        Some(format!("whatsapp:{US_NUMBER}").as_str())
    );
    assert_eq!(
        m.field("From"),
        Some(format!("whatsapp:{WHATSAPP_FROM}").as_str())
    );
    let body = m.field("Body").unwrap();
    assert!(body.starts_with("Your verification code is: "), "{body}");
    let code = code_in(body);
    eprintln!("captured WhatsApp request: POST {} {:?}", m.path, m.form);
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;

    let other = "+14155550101";
    send(
        app,
        json!({"recipient": other, "channel": "call", "locale": "fr"}),
    )
    .await;
    let received = fake.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let c = &received[1];
    assert_eq!(c.path, format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"));
    assert!(c.basic_auth);
    assert_eq!(c.field("To"), Some(other));
    assert_eq!(c.field("From"), Some(VOICE_FROM));
    let twiml = c.field("Twiml").unwrap();
    eprintln!("captured call request: POST {} {:?}", c.path, c.form);
    let says: Vec<&str> = twiml.matches("<Say language=\"fr-FR\">").collect();
    assert_eq!(says.len(), 2, "said twice: {twiml}");
    assert!(twiml.starts_with("<Response><Say"), "{twiml}");
    assert!(twiml.contains("<Pause length=\"1\"/>"), "{twiml}");
    let spoken = twiml
        .split("<Say language=\"fr-FR\">")
        .nth(1)
        .unwrap()
        .split("</Say>")
        .next()
        .unwrap();
    assert!(
        spoken.starts_with("Votre code de vérification est : "),
        "{spoken}"
    );
    // Digit by digit: six single digits separated by commas.
    let digits: Vec<&str> = spoken.rsplit(": ").next().unwrap().split(", ").collect();
    assert_eq!(digits.len(), 6, "{spoken}");
    assert!(digits.iter().all(|d| d.len() == 1), "{spoken}");
    assert_ok(
        app.verify(other, &digits.concat()).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn whatsapp_goes_through_twilio_messaging_and_a_call_through_twilio_voice() {
    let fake = FakeTwilioRest::start(false).await;
    let app = spawn_app_with(&pairs(&channel_settings(&fake.url))).await;
    whatsapp_and_call(&app, &fake).await;
    // SMS still goes to the configured sender (the console here).
    send(&app, json!({"recipient": "+14155550102"})).await;
    assert_eq!(fake.received().len(), 2, "nothing more reached Twilio");
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["channel"], "sms");
}

#[tokio::test]
async fn whatsapp_and_call_requests_pass_prism_against_twilios_spec() {
    let Some(prism) = prism_or_skip() else {
        return;
    };
    let _one = ONE_PRISM.lock().await;
    let fake = FakeTwilioRest::start(false).await;
    let prism = Prism::start_on(
        &prism,
        &spec("twilio_api_v2010.json"),
        &fake.url,
        free_port(),
    );
    let app = spawn_app_with(&pairs(&channel_settings(&prism.url))).await;
    whatsapp_and_call(&app, &fake).await;
    prism.assert_no_violations();
}

#[tokio::test]
async fn the_console_sender_shows_every_channel() {
    let app = spawn_app_with(&[("VERIFYD_CHANNELS", "sms,whatsapp,call,email")]).await;
    send(&app, json!({"recipient": US_NUMBER, "channel": "whatsapp"})).await;
    send(
        &app,
        json!({"recipient": "+14155550101", "channel": "call", "locale": "de"}),
    )
    .await;
    let outbox = app.outbox().await;
    assert_eq!(outbox[0]["channel"], "whatsapp");
    assert!(
        outbox[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("Your verification code is: ")
    );
    assert_eq!(outbox[1]["channel"], "call");
    let spoken = outbox[1]["body"].as_str().unwrap();
    assert!(
        spoken.starts_with("Ihr Bestätigungscode lautet: "),
        "{spoken}"
    );
    assert_eq!(
        spoken.matches(", ").count(),
        5,
        "six digits read one by one: {spoken}"
    );
}

#[tokio::test]
async fn a_failed_whatsapp_falls_back_to_sms_with_the_same_code_and_the_check_approves_once() {
    let fake = FakeTwilioRest::start(true).await;
    let settings = channel_settings(&fake.url);
    let mut settings = pairs(&settings);
    settings.push(("VERIFYD_CHANNEL_FALLBACK", "whatsapp,sms"));
    let app = spawn_app_with(&settings).await;

    let data = send(&app, json!({"recipient": US_NUMBER, "channel": "whatsapp"})).await;
    let attempts: Vec<&str> = data["sendCodeAttempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["channel"].as_str().unwrap())
        .collect();
    assert_eq!(attempts, ["whatsapp", "sms"], "{data}");
    eprintln!("fallback attempts: {}", data["sendCodeAttempts"]);
    let tried = fake.received();
    assert_eq!(tried.len(), 1, "WhatsApp was tried once");
    let whatsapp_code = code_in(tried[0].field("Body").unwrap());
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["channel"], "sms");
    let sms_code = code_in(outbox[0]["body"].as_str().unwrap());
    assert_eq!(sms_code, whatsapp_code, "the same code on the next channel");

    assert_ok(
        app.verify(US_NUMBER, &sms_code).await,
        "Verification code is correct!",
    )
    .await;
    assert_error(
        app.verify(US_NUMBER, &sms_code).await,
        404,
        "verification_not_found",
    )
    .await;

    // An SMS that fails has no next channel in the order: 502, and nothing else is tried.
    let no_fallback = spawn_app_with(&[
        ("VERIFYD_CHANNELS", "sms,whatsapp"),
        ("VERIFYD_CHANNEL_FALLBACK", "whatsapp,sms"),
    ])
    .await;
    send(
        &no_fallback,
        json!({"recipient": US_NUMBER, "channel": "sms"}),
    )
    .await;
    assert_eq!(no_fallback.outbox().await.len(), 1);
}

#[tokio::test]
async fn bad_channel_settings_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("VERIFYD_CHANNEL_FALLBACK", "whatsapp,sms")],
            "not enabled",
        ),
        (
            &[
                ("VERIFYD_CHANNELS", "sms,whatsapp"),
                ("VERIFYD_CHANNEL_FALLBACK", "sms,sms"),
            ],
            "twice",
        ),
        (
            &[("VERIFYD_CHANNEL_FALLBACK", "sms,pigeon")],
            "not a channel",
        ),
        (
            &[("TWILIO_WHATSAPP_FROM", "+14155238886")],
            "TWILIO_ACCOUNT_SID",
        ),
    ];
    for (settings, expected) in cases {
        let err = load_config(&dir, settings).expect_err(expected);
        assert!(err.to_string().contains(expected), "{settings:?}: {err}");
    }
}
