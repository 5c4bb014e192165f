//! Delivery receipts (`POST /callbacks/{vendor}`, issue 22) through the HTTP server, on SQLite
//! and on PostgreSQL. A local fake per vendor (Twilio Messaging, Telnyx, Vonage) answers the
//! send with a message id and records the request, so each test sees that the callback URL was
//! asked for. Receipts are signed here with each vendor's scheme written on its own (not with
//! verifyd's code): Twilio's HMAC-SHA1 over URL + sorted form, Telnyx's Ed25519 over
//! `timestamp|body`, Vonage's HMAC-SHA256 over the sorted `&name=value` string.
//!
//! A correctly signed receipt moves the attempt's delivery status (seen in `/v2/Attempts` and
//! in the attempt log) and a final one writes its event; unsigned, forged, stale, malformed
//! and unknown-message receipts change nothing and get their documented status; a status never
//! moves back, and a replayed final receipt writes no second event.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use verifyd::clock::Clock as _;
use verifyd::config::{SqliteLocation, SqliteSync};
use verifyd::store::{
    AttemptFilter, AttemptStore, EventStore, PostgresSettings, PostgresStore, SqliteStore,
};

/// A second handle on the app's store: its attempt log and its outbox.
struct Stores {
    attempts: Arc<dyn AttemptStore>,
    events: Arc<dyn EventStore>,
}

impl Stores {
    fn of<S: AttemptStore + EventStore + 'static>(store: S) -> Self {
        let store = Arc::new(store);
        Self {
            attempts: store.clone(),
            events: store,
        }
    }
}

use crate::helpers::*;
use crate::shared::TestDb;
use crate::v2::{v2, v2_settings};

const PUBLIC_URL: &str = "https://verifyd.example";
const TWILIO_SID: &str = "AC00000000000000000000000000000000";
const TWILIO_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const TELNYX_SEED: [u8; 32] = [7; 32];
const VONAGE_SECRET: &str = "vonage-signature-secret-0123";

/// The vendors under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vendor {
    Twilio,
    Telnyx,
    Vonage,
}

impl Vendor {
    fn name(self) -> &'static str {
        match self {
            Vendor::Twilio => "twilio-messaging",
            Vendor::Telnyx => "telnyx",
            Vendor::Vonage => "vonage",
        }
    }

    fn callback(self) -> String {
        format!("{PUBLIC_URL}/callbacks/{}", self.name())
    }
}

/// One request a fake vendor got, and the message id it answered.
#[derive(Clone, Debug)]
struct Sent {
    path: String,
    body: Bytes,
    message_id: String,
}

#[derive(Default)]
struct FakeVendor {
    sent: Mutex<Vec<Sent>>,
    counter: AtomicUsize,
}

/// A fake of the three vendors' send endpoints: answers each with a fresh message id.
async fn fake_vendor() -> (String, Arc<FakeVendor>) {
    let state = Arc::new(FakeVendor::default());
    let seen = Arc::clone(&state);
    let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
        let seen = Arc::clone(&seen);
        async move {
            let n = seen.counter.fetch_add(1, Ordering::SeqCst) + 1;
            let path = uri.path().to_owned();
            let (status, id, answer) = if path.ends_with("/Messages.json") {
                let id = format!("SM{n:032x}");
                let answer = json!({"sid": id, "status": "queued"});
                (StatusCode::CREATED, id, answer)
            } else if path == "/v2/messages" {
                let id = format!("40317c1e-0000-4000-8000-{n:012}");
                let answer = json!({"data": {"id": id, "record_type": "message",
                    "to": [{"phone_number": US_NUMBER, "status": "queued"}]}});
                (StatusCode::OK, id, answer)
            } else {
                let id = format!("0A{n:014X}");
                let answer = json!({"message-count": "1", "messages": [
                    {"to": "14155552671", "message-id": id, "status": "0"}]});
                (StatusCode::OK, id, answer)
            };
            seen.sent.lock().unwrap().push(Sent {
                path,
                body,
                message_id: id,
            });
            (status, axum::Json(answer))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

fn telnyx_public_key() -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&TELNYX_SEED);
    STANDARD.encode(key.verifying_key().as_bytes())
}

/// Where the store is.
enum Backend {
    Sqlite,
    Postgres(TestDb),
}

/// The app for `vendor` on `backend`, its events going to a closed port (so they stay in the
/// outbox, where the test reads them), and a second handle on the same store.
async fn app_for(vendor: Vendor, backend: &Backend, fake: &str) -> (TestApp, Stores) {
    let dir = tempfile::tempdir().unwrap();
    let database = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("verifyd.db").display()),
        Backend::Postgres(db) => db.url(),
    };
    let key = telnyx_public_key();
    let mut settings = v2_settings(&[
        ("VERIFYD_DATABASE_URL", database.as_str()),
        ("VERIFYD_PUBLIC_URL", PUBLIC_URL),
        ("VERIFYD_SMS_SENDER", vendor.name()),
        ("VERIFYD_EVENTS_URL", "http://127.0.0.1:9/hook"),
        (
            "VERIFYD_EVENTS_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        ("VERIFYD_EVENTS_TYPES", "attempt.delivered,attempt.failed"),
    ]);
    match vendor {
        Vendor::Twilio => settings.extend([
            ("TWILIO_ACCOUNT_SID", TWILIO_SID),
            ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
            ("TWILIO_FROM", "+18445550001"),
            ("TWILIO_API_BASE_URL", fake),
        ]),
        Vendor::Telnyx => settings.extend([
            ("TELNYX_API_KEY", "KEY0123456789ABCDEF_test_only"),
            ("TELNYX_FROM", "+18445550001"),
            ("TELNYX_BASE_URL", fake),
            ("TELNYX_PUBLIC_KEY", key.as_str()),
        ]),
        Vendor::Vonage => settings.extend([
            ("VONAGE_API_KEY", "abcd1234"),
            ("VONAGE_API_SECRET", "vonage-api-secret"),
            ("VONAGE_FROM", "AcmeInc"),
            ("VONAGE_BASE_URL", fake),
            ("VONAGE_SIGNATURE_SECRET", VONAGE_SECRET),
        ]),
    }
    let app = spawn_app_in(
        dir,
        &settings,
        Arc::new(verifyd::clock::ManualClock::starting_now()),
    )
    .await;
    let store = match backend {
        Backend::Sqlite => Stores::of(
            SqliteStore::connect(
                &SqliteLocation::File(app.dir.path().join("verifyd.db")),
                SqliteSync::Normal,
                Duration::from_secs(5),
            )
            .await
            .unwrap(),
        ),
        Backend::Postgres(db) => Stores::of(
            PostgresStore::connect(
                &db.url(),
                PostgresSettings {
                    pool_size: 2,
                    acquire_timeout: Duration::from_secs(10),
                    statement_timeout: Duration::from_secs(5),
                },
            )
            .await
            .unwrap(),
        ),
    };
    (app, store)
}

/// A receipt as the vendor would post it: body, content type, and headers.
struct Post {
    body: Vec<u8>,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
}

/// Twilio: base64 HMAC-SHA1 (Auth Token) of URL + each sorted name and value.
fn twilio_sign(token: &str, url: &str, form: &[(&str, &str)]) -> String {
    use hmac_sha1::{KeyInit, Mac};
    let mut sorted = form.to_vec();
    sorted.sort();
    let mut text = url.to_owned();
    for (k, v) in sorted {
        text.push_str(k);
        text.push_str(v);
    }
    let mut mac = hmac_sha1::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Vonage: hex HMAC-SHA256 (signature secret) of `&name=value…`, sorted, `&`/`=` in values as `_`.
fn vonage_sign(secret: &str, params: &[(&str, String)]) -> String {
    use hmac::{Hmac, Mac};
    let mut sorted: Vec<(&str, String)> = params.to_vec();
    sorted.sort();
    let text: String = sorted
        .iter()
        .map(|(k, v)| format!("&{k}={}", v.replace(['&', '='], "_")))
        .collect();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// How a test receipt is to be signed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signing {
    Valid,
    Unsigned,
    Forged,
    /// Validly signed, with a timestamp 10 minutes old.
    Stale,
}

/// `vendor`'s receipt saying `status` (the vendor's word) for `message_id`, signed as told,
/// at `now_secs`.
fn receipt(
    vendor: Vendor,
    message_id: &str,
    status: &str,
    signing: Signing,
    now_secs: i64,
) -> Post {
    let when = if signing == Signing::Stale {
        now_secs - 600
    } else {
        now_secs
    };
    match vendor {
        Vendor::Twilio => {
            let form = [
                ("AccountSid", TWILIO_SID),
                ("MessageSid", message_id),
                ("MessageStatus", status),
                ("SmsSid", message_id),
                ("To", US_NUMBER),
                ("ApiVersion", "2010-04-01"),
            ];
            let body = serde_urlencoded::to_string(form).unwrap().into_bytes();
            let token = if signing == Signing::Forged {
                "not-the-auth-token"
            } else {
                TWILIO_TOKEN
            };
            let mut headers = Vec::new();
            if signing != Signing::Unsigned {
                headers.push((
                    "x-twilio-signature",
                    twilio_sign(token, &vendor.callback(), &form),
                ));
            }
            Post {
                body,
                content_type: "application/x-www-form-urlencoded",
                headers,
            }
        }
        Vendor::Telnyx => {
            let body = json!({"data": {"event_type": "message.finalized",
                "id": "b301ed3f-1490-491f-995f-6e64e69674d4", "occurred_at": "2026-12-06T10:00:00Z",
                "payload": {"id": message_id, "direction": "outbound", "errors": [],
                    "to": [{"phone_number": US_NUMBER, "status": status}]},
                "record_type": "event"}, "meta": {"attempt": 1}})
            .to_string()
            .into_bytes();
            let seed = if signing == Signing::Forged {
                [9; 32]
            } else {
                TELNYX_SEED
            };
            let timestamp = when.to_string();
            let mut signed = format!("{timestamp}|").into_bytes();
            signed.extend_from_slice(&body);
            use ed25519_dalek::Signer as _;
            let signature = ed25519_dalek::SigningKey::from_bytes(&seed).sign(&signed);
            let mut headers = vec![("telnyx-timestamp", timestamp)];
            if signing != Signing::Unsigned {
                headers.push((
                    "telnyx-signature-ed25519",
                    STANDARD.encode(signature.to_bytes()),
                ));
            }
            Post {
                body,
                content_type: "application/json",
                headers,
            }
        }
        Vendor::Vonage => {
            let mut params: Vec<(&str, String)> = vec![
                ("msisdn", "14155552671".to_owned()),
                ("to", "AcmeInc".to_owned()),
                ("network-code", "310090".to_owned()),
                ("messageId", message_id.to_owned()),
                ("price", "0.03330000".to_owned()),
                ("status", status.to_owned()),
                ("scts", "2612061000".to_owned()),
                ("err-code", "0".to_owned()),
                ("api-key", "abcd1234".to_owned()),
                ("message-timestamp", "2026-12-06 10:00:00".to_owned()),
                ("timestamp", when.to_string()),
                ("nonce", "b0f5a6c6-0000-4000-8000-000000000001".to_owned()),
            ];
            let secret = if signing == Signing::Forged {
                "another-signature-secret"
            } else {
                VONAGE_SECRET
            };
            if signing != Signing::Unsigned {
                let sig = vonage_sign(secret, &params);
                params.push(("sig", sig));
            }
            Post {
                body: serde_urlencoded::to_string(&params).unwrap().into_bytes(),
                content_type: "application/x-www-form-urlencoded",
                headers: Vec::new(),
            }
        }
    }
}

async fn post_receipt(app: &TestApp, vendor: &str, post: Post) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url(&format!("/callbacks/{vendor}")))
        .header("content-type", post.content_type)
        .body(post.body);
    for (k, v) in post.headers {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The attempt's `channel_data.message_status` in `/v2/Attempts`.
async fn message_status(app: &TestApp) -> String {
    let answer = v2(app, "GET", "/v2/Attempts", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let attempts = answer.body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{}", answer.body);
    attempts[0]["channel_data"]["message_status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A console page, logged in with the API key.
async fn console_page(app: &TestApp, path: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(app.url("/console/login"))
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = browser
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{path}");
    page.text().await.unwrap()
}

/// The `attempt.*` events in the outbox.
async fn events(store: &Stores) -> Vec<Value> {
    let mut rows = store.events.list_events(None, 100).await.unwrap();
    rows.sort_by_key(|r| r.seq);
    rows.into_iter()
        .map(|r| serde_json::from_str(&r.event.payload).unwrap())
        .collect()
}

/// The vendor's three words for sent, delivered and failed.
fn words(vendor: Vendor) -> (&'static str, &'static str, &'static str) {
    match vendor {
        Vendor::Twilio => ("sent", "delivered", "undelivered"),
        Vendor::Telnyx => ("sent", "delivered", "delivery_failed"),
        Vendor::Vonage => ("accepted", "delivered", "failed"),
    }
}

/// The whole story for one vendor on one backend (see the module doc).
async fn receipts_move_the_attempt_forward_and_refusals_change_nothing(
    vendor: Vendor,
    backend: Backend,
) {
    let (fake_url, fake) = fake_vendor().await;
    let (app, store) = app_for(vendor, &backend, &fake_url).await;
    let now = || app.clock.now().as_millis() / 1000;

    // The send asks for receipts at the public URL.
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let sent = fake.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let asked = match vendor {
        Vendor::Twilio => {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&sent[0].body).unwrap();
            form.into_iter()
                .find(|(k, _)| k == "StatusCallback")
                .map(|(_, v)| v)
        }
        Vendor::Telnyx => {
            let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
            body["webhook_url"].as_str().map(str::to_owned)
        }
        Vendor::Vonage => {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&sent[0].body).unwrap();
            form.into_iter()
                .find(|(k, _)| k == "callback")
                .map(|(_, v)| v)
        }
    };
    assert_eq!(
        asked,
        Some(vendor.callback()),
        "{:?} at {}",
        vendor,
        sent[0].path
    );
    let id = sent[0].message_id.clone();

    // The attempt log names the vendor, its message id, no failover, `queued`.
    let rows = store
        .attempts
        .send_attempts(&AttemptFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].record.vendor.as_deref(), Some(vendor.name()));
    let delivery = rows[0].record.delivery.clone().expect("delivery recorded");
    assert_eq!(delivery.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(delivery.failovers, 0);
    assert_eq!(message_status(&app).await, "queued");

    let (sent_word, delivered, failed) = words(vendor);
    // Refusals: nothing changes.
    let mut refusals = vec![
        (
            "unsigned",
            receipt(vendor, &id, delivered, Signing::Unsigned, now()),
            401,
        ),
        (
            "forged",
            receipt(vendor, &id, delivered, Signing::Forged, now()),
            401,
        ),
    ];
    if vendor != Vendor::Twilio {
        // Twilio's scheme has no timestamp.
        refusals.push((
            "stale",
            receipt(vendor, &id, delivered, Signing::Stale, now()),
            403,
        ));
    }
    refusals.push((
        "malformed (a status the vendor never sends)",
        receipt(vendor, &id, "teleported", Signing::Valid, now()),
        400,
    ));
    for (case, post, want) in refusals {
        let (status, body) = post_receipt(&app, vendor.name(), post).await;
        assert_eq!(status, want, "{case}: {body}");
        assert_eq!(message_status(&app).await, "queued", "{case}");
    }
    let (status, _) = post_receipt(
        &app,
        vendor.name(),
        Post {
            body: b"\x00not a receipt".to_vec(),
            content_type: "application/octet-stream",
            headers: Vec::new(),
        },
    )
    .await;
    assert!(matches!(status, 400 | 401), "garbage: {status}");
    // A message verifyd never sent: taken (vendors retry anything else) and ignored.
    let (status, _) = post_receipt(
        &app,
        vendor.name(),
        receipt(
            vendor,
            "SM-unknown-message",
            delivered,
            Signing::Valid,
            now(),
        ),
    )
    .await;
    assert_eq!(status, 200, "unknown message");
    assert_eq!(message_status(&app).await, "queued");
    assert!(events(&store).await.is_empty(), "no event yet");

    // Sent: forward, no event (not final).
    let (status, body) = post_receipt(
        &app,
        vendor.name(),
        receipt(vendor, &id, sent_word, Signing::Valid, now()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(message_status(&app).await, "sent");
    assert!(events(&store).await.is_empty());
    // Delivered: final, with its event.
    let (status, _) = post_receipt(
        &app,
        vendor.name(),
        receipt(vendor, &id, delivered, Signing::Valid, now()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(message_status(&app).await, "delivered");
    let written = events(&store).await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["type"], "attempt.delivered");
    // Its subject is the verification, begun with this (its only) send: the per-subject order
    // keys on that beginning, the same on every event of the verification.
    let outbox = store.events.list_events(None, 10).await.unwrap();
    assert_eq!(
        outbox[0].event.subject.as_str(),
        rows[0].record.verification_sid.as_deref().unwrap()
    );
    assert_eq!(outbox[0].event.subject_created, rows[0].record.time);
    let data = &written[0]["data"];
    assert_eq!(data["vendor"], vendor.name());
    assert_eq!(data["vendor_message_id"], id.as_str());
    assert_eq!(data["status"], "delivered");
    assert_eq!(data["attempt_sid"], rows[0].record.sid.clone().unwrap());
    assert_eq!(
        data["to"], "+1415***2671",
        "masked like the verification events"
    );
    // The console's attempt and verification pages show the vendor and the delivery.
    let verification = rows[0].record.verification_sid.clone().unwrap();
    for path in [
        "/console/attempts".to_owned(),
        format!("/console/verifications/{verification}"),
    ] {
        let html = console_page(&app, &path).await;
        assert!(
            html.contains(&format!("<td>{}</td><td>delivered</td>", vendor.name())),
            "{path}: {html}"
        );
    }
    // Replayed, late `sent`, then `failed`: never backwards, never a second event.
    for (case, word) in [
        ("replay", delivered),
        ("late sent", sent_word),
        ("failed after delivered", failed),
    ] {
        let (status, _) = post_receipt(
            &app,
            vendor.name(),
            receipt(vendor, &id, word, Signing::Valid, now()),
        )
        .await;
        assert_eq!(status, 200, "{case}");
        assert_eq!(message_status(&app).await, "delivered", "{case}");
    }
    assert_eq!(events(&store).await.len(), 1);

    // A vendor without receipts here, and a body over 16 KiB.
    let (status, body) = post_receipt(
        &app,
        "sinch-nowhere",
        receipt(vendor, &id, delivered, Signing::Valid, now()),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = post_receipt(
        &app,
        vendor.name(),
        Post {
            body: vec![b'a'; 17 * 1024],
            content_type: "application/x-www-form-urlencoded",
            headers: Vec::new(),
        },
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(message_status(&app).await, "delivered");
    assert_eq!(events(&store).await.len(), 1);
}

/// A failed delivery writes `attempt.failed`.
async fn a_failed_receipt_writes_attempt_failed(vendor: Vendor) {
    let (fake_url, fake) = fake_vendor().await;
    let (app, store) = app_for(vendor, &Backend::Sqlite, &fake_url).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let id = fake.sent.lock().unwrap()[0].message_id.clone();
    let (_, _, failed) = words(vendor);
    let now = app.clock.now().as_millis() / 1000;
    let (status, _) = post_receipt(
        &app,
        vendor.name(),
        receipt(vendor, &id, failed, Signing::Valid, now),
    )
    .await;
    assert_eq!(status, 200);
    let status = message_status(&app).await;
    assert!(
        matches!(status.as_str(), "undelivered" | "failed"),
        "{status}"
    );
    let written = events(&store).await;
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["type"], "attempt.failed");
    assert_eq!(written[0]["data"]["status"], status.as_str());
}

macro_rules! per_vendor {
    ($($name:ident: $vendor:expr),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test]
                async fn sqlite() {
                    receipts_move_the_attempt_forward_and_refusals_change_nothing(
                        $vendor,
                        Backend::Sqlite,
                    )
                    .await;
                }

                #[tokio::test]
                async fn postgres() {
                    let Some(db) = postgres_or_skip().await else {
                        return;
                    };
                    receipts_move_the_attempt_forward_and_refusals_change_nothing(
                        $vendor,
                        Backend::Postgres(db),
                    )
                    .await;
                }

                #[tokio::test]
                async fn failed() {
                    a_failed_receipt_writes_attempt_failed($vendor).await;
                }
            }
        )*
    };
}

per_vendor! {
    twilio_messaging: Vendor::Twilio,
    telnyx: Vendor::Telnyx,
    vonage: Vendor::Vonage,
}

/// Without `VERIFYD_PUBLIC_URL`, no callback is asked for; the vendor's receipts are still
/// verified (at the listen address) when they come.
#[tokio::test]
async fn without_a_public_url_no_receipt_is_asked_for() {
    let (fake_url, fake) = fake_vendor().await;
    let app = spawn_app_with(&[
        ("VERIFYD_SMS_SENDER", "twilio-messaging"),
        ("TWILIO_ACCOUNT_SID", TWILIO_SID),
        ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
        ("TWILIO_FROM", "+18445550001"),
        ("TWILIO_API_BASE_URL", fake_url.as_str()),
    ])
    .await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&fake.sent.lock().unwrap()[0].body).unwrap();
    assert!(form.iter().all(|(k, _)| k != "StatusCallback"), "{form:?}");
}

/// The route is in the OpenAPI document, public, with every status it answers.
#[tokio::test]
async fn the_receipt_route_is_documented_with_its_statuses() {
    let app = spawn_app().await;
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &spec["paths"]["/callbacks/{vendor}"]["post"];
    for status in ["200", "400", "401", "403", "404", "413", "503"] {
        assert!(op["responses"][status].is_object(), "{status}: {op}");
    }
    assert!(op.get("security").is_none(), "public: {op}");
    // Served: a configured vendor's route answers (here 401 to an unsigned receipt), not 404.
    let (fake_url, _fake) = fake_vendor().await;
    let (app, _) = app_for(Vendor::Telnyx, &Backend::Sqlite, &fake_url).await;
    let (status, body) = post_receipt(
        &app,
        "telnyx",
        Post {
            body: b"{}".to_vec(),
            content_type: "application/json",
            headers: Vec::new(),
        },
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_signature"))
    );
}
