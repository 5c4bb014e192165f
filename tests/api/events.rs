//! Signed events (DESIGN.md "Events"), received by a local receiver that checks every
//! signature with the Standard Webhooks algorithm written here on its own (HMAC-SHA256 of
//! `id.timestamp.body` under the base64-decoded `whsec_` key), not with verifyd's code.
//!
//! Every state change yields exactly its event, in order per verification, signed with every
//! secret; a receiver that fails for a while still gets everything (the test clock drives the
//! retry schedule); dead events are listed and replayed by the CLI; an event survives kill -9
//! between its change and its delivery; two replicas on PostgreSQL deliver 1,000 events, each
//! one, none in flight from both at once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::*;
use crate::process::Server;
use crate::v2::{SERVICE, v2, v2_settings};

/// Two signing secrets (rotation): every event must carry a valid signature under each.
const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_dGhpcy1pcy1hLXNlY29uZC1rZXktb2YtMzItYnl0ZXM=";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    kind: String,
    body: Value,
    raw: String,
    /// How many of the configured secrets had a matching `v1,` signature.
    valid_signatures: usize,
    /// The status the receiver answered (0: none, it hung until the sender was gone).
    answered: u16,
}

/// What the receiver does and saw.
#[derive(Default)]
struct ReceiverState {
    seen: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests before answering 200.
    fail_first: AtomicU32,
    /// Always answer 500.
    always_fail: AtomicBool,
    /// Hold requests open (never answer) while set.
    hang: AtomicBool,
    /// Requests in flight, per webhook-id, and whether one id was ever in flight twice.
    in_flight: Mutex<HashMap<String, u32>>,
    overlapped: Mutex<Vec<String>>,
    secrets: Vec<Vec<u8>>,
}

/// A local receiver of events.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    _server: tokio::task::JoinHandle<()>,
}

/// The key of a `whsec_` secret, decoded here independently of verifyd.
fn key_of(secret: &str) -> Vec<u8> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap()
}

/// The Standard Webhooks check: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
fn signature_of(key: &[u8], id: &str, timestamp: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let raw = String::from_utf8(body.to_vec()).unwrap();
    {
        let mut flight = state.in_flight.lock().unwrap();
        let n = flight.entry(id.clone()).or_default();
        *n += 1;
        if *n > 1 {
            state.overlapped.lock().unwrap().push(id.clone());
        }
    }
    let offered: Vec<&str> = signature.split(' ').collect();
    let valid_signatures = state
        .secrets
        .iter()
        .filter(|k| offered.contains(&signature_of(k, &id, &timestamp, &raw).as_str()))
        .count();
    let parsed: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    // A request that arrives while the receiver hangs gets no answer the sender could see
    // (the sender is killed meanwhile): recorded as 0, not delivered.
    let answered = if state.hang.load(Ordering::SeqCst) {
        0
    } else if state.always_fail.load(Ordering::SeqCst)
        || state
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        500
    } else {
        200
    };
    state.seen.lock().unwrap().push(Received {
        id: id.clone(),
        kind: parsed["type"].as_str().unwrap_or_default().to_owned(),
        body: parsed,
        raw,
        valid_signatures,
        answered,
    });
    // Widen the window in which a second delivery of the same id would overlap this one.
    tokio::time::sleep(Duration::from_millis(5)).await;
    while state.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    *state.in_flight.lock().unwrap().get_mut(&id).unwrap() -= 1;
    StatusCode::from_u16(answered.max(200)).unwrap()
}

impl Receiver {
    async fn start(secrets: &[&str]) -> Receiver {
        let state = Arc::new(ReceiverState {
            secrets: secrets.iter().map(|s| key_of(s)).collect(),
            ..ReceiverState::default()
        });
        let app = axum::Router::new()
            .route("/events", axum::routing::post(receive))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            state,
            _server: server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    fn seen(&self) -> Vec<Received> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The accepted (200) requests, deduplicated by webhook-id, in arrival order.
    fn delivered(&self) -> Vec<Received> {
        let mut ids = HashSet::new();
        self.seen()
            .into_iter()
            .filter(|r| r.answered == 200 && ids.insert(r.id.clone()))
            .collect()
    }

    /// Waits (real time, at most `secs`) until `n` distinct events were accepted.
    async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.delivered();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the receiver has seen `n` requests in all.
    async fn wait_for_requests(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.seen();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Lets verifyd record the answer the receiver has just given (its next try is scheduled from
/// then) before the test moves the clock.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn verifications() -> String {
    format!("/v2/Services/{SERVICE}/Verifications")
}

/// Creates a verification through `/v2`; its sid.
async fn create(app: &TestApp, to: &str) -> String {
    let a = v2(
        app,
        "POST",
        &verifications(),
        &[("To", to), ("Channel", "sms")],
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["sid"].as_str().unwrap().to_owned()
}

async fn check(app: &TestApp, to: &str, code: &str) -> Value {
    let a = v2(
        app,
        "POST",
        &format!("/v2/Services/{SERVICE}/VerificationCheck"),
        &[("To", to), ("Code", code)],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

/// The settings of an app sending events to `receiver` with both secrets.
fn event_settings<'a>(url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut s = v2_settings(&[
        ("VERIFYD_EVENTS_URL", url),
        (
            "VERIFYD_EVENTS_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_dGhpcy1pcy1hLXNlY29uZC1rZXktb2YtMzItYnl0ZXM=",
        ),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "0"),
    ]);
    s.extend_from_slice(extra);
    s
}

const A: &str = "+12122000001";
const B: &str = "+12122000002";
const C: &str = "+12122000003";
const D: &str = "+12122000004";

#[tokio::test]
async fn every_state_change_yields_exactly_its_event_in_order_signed_with_every_secret() {
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    let url = receiver.url();
    let app = spawn_app_with(&event_settings(&url, &[])).await;

    // A: sent, re-sent (no event), approved.
    let a = create(&app, A).await;
    create(&app, A).await;
    let code_a = app.last_code(A).await;
    assert_eq!(check(&app, A, &code_a).await["status"], "approved");
    // B: five wrong codes: locked on the fifth.
    let b = create(&app, B).await;
    let code_b = app.last_code(B).await;
    for _ in 0..5 {
        check(&app, B, &wrong(&code_b)).await;
    }
    // C: canceled by update.
    let c = create(&app, C).await;
    let canceled = v2(
        &app,
        "POST",
        &format!("{}/{c}", verifications()),
        &[("Status", "canceled")],
    )
    .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    // D: never checked; its TTL passes (the sweeper notices).
    let d = create(&app, D).await;
    app.clock.advance(Duration::from_secs(601));

    let got = receiver.wait_for(8, 20).await;
    let mut per: HashMap<String, Vec<String>> = HashMap::new();
    for r in &got {
        per.entry(r.body["data"]["sid"].as_str().unwrap().to_owned())
            .or_default()
            .push(r.kind.clone());
    }
    let expected = [
        (&a, vec!["verification.pending", "verification.approved"]),
        (
            &b,
            vec!["verification.pending", "verification.max_attempts_reached"],
        ),
        (&c, vec!["verification.pending", "verification.canceled"]),
        (&d, vec!["verification.pending", "verification.expired"]),
    ];
    for (sid, kinds) in &expected {
        let got: Option<Vec<&str>> = per
            .get(*sid)
            .map(|k| k.iter().map(String::as_str).collect());
        assert_eq!(got.as_ref(), Some(kinds), "events of {sid}: {per:?}");
    }
    assert_eq!(got.len(), 8, "exactly one event per change: {per:?}");
    // Nothing more turns up later (the resend, the first four wrong codes, another sweep).
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.delivered().len(), 8, "no event beyond the changes");

    for r in &got {
        assert_eq!(r.valid_signatures, 2, "{} signed with both secrets", r.id);
        assert!(r.id.starts_with("msg_"), "{}", r.id);
        let data = &r.body["data"];
        assert_eq!(data["service_sid"], SERVICE);
        assert_eq!(data["channel"], "sms");
        assert!(r.body["timestamp"].as_str().unwrap().ends_with('Z'));
        let to = data["to"].as_str().unwrap();
        assert!(!to.contains("2122000"), "the number is masked: {to}");
        for code in [&code_a, &code_b] {
            assert!(!r.raw.contains(code.as_str()), "never a code: {}", r.raw);
        }
    }
    let status = |sid: &str, kind: &str| {
        got.iter()
            .find(|r| r.body["data"]["sid"] == sid && r.kind == kind)
            .unwrap()
            .body["data"]["status"]
            .clone()
    };
    assert_eq!(status(&a, "verification.approved"), "approved");
    assert_eq!(
        status(&b, "verification.max_attempts_reached"),
        "max_attempts_reached"
    );
    assert_eq!(status(&c, "verification.canceled"), "canceled");
    assert_eq!(status(&d, "verification.expired"), "expired");
    let pending_a = got
        .iter()
        .find(|r| r.body["data"]["sid"] == a.as_str())
        .unwrap();
    assert_eq!(
        pending_a.body["data"]["send_code_attempts"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the pending event shows the first send"
    );
}

#[tokio::test]
async fn a_types_filter_and_a_second_endpoint_from_the_toml_file_get_their_own_events() {
    let main = Receiver::start(&[SECRET_A]).await;
    let billing = Receiver::start(&[SECRET_B]).await;
    let toml = format!(
        "[[event_endpoints]]\nname = \"billing\"\nurl = \"{}\"\nsecret = \"{SECRET_B}\"\n\
         types = [\"verification.approved\"]\n",
        billing.url()
    );
    let url = main.url();
    let mut settings = v2_settings(&[
        ("VERIFYD_EVENTS_URL", url.as_str()),
        ("VERIFYD_EVENTS_SECRET", SECRET_A),
        ("VERIFYD_EVENTS_TYPES", "verification.pending"),
    ]);
    settings.push(("VERIFYD_RATE_LIMIT_IP_MAX", "0"));
    let app = spawn_app_with_toml(&toml, &settings).await;

    create(&app, A).await;
    let code = app.last_code(A).await;
    check(&app, A, &code).await;

    let to_main = main.wait_for(1, 10).await;
    let to_billing = billing.wait_for(1, 10).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let kinds = |r: &Receiver| {
        r.delivered()
            .iter()
            .map(|e| e.kind.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(&main), ["verification.pending"]);
    assert_eq!(kinds(&billing), ["verification.approved"]);
    assert_eq!(to_main[0].valid_signatures, 1);
    assert_eq!(to_billing[0].valid_signatures, 1);
}

#[tokio::test]
async fn each_endpoints_copy_of_an_event_has_its_own_id() {
    let main = Receiver::start(&[SECRET_A]).await;
    let audit = Receiver::start(&[SECRET_B]).await;
    let toml = format!(
        "[[event_endpoints]]\nname = \"audit\"\nurl = \"{}\"\nsecret = \"{SECRET_B}\"\n",
        audit.url()
    );
    let url = main.url();
    let mut settings = v2_settings(&[
        ("VERIFYD_EVENTS_URL", url.as_str()),
        ("VERIFYD_EVENTS_SECRET", SECRET_A),
    ]);
    settings.push(("VERIFYD_RATE_LIMIT_IP_MAX", "0"));
    let app = spawn_app_with_toml(&toml, &settings).await;

    create(&app, A).await;
    let code = app.last_code(A).await;
    check(&app, A, &code).await;

    let to_main = main.wait_for(2, 10).await;
    let to_audit = audit.wait_for(2, 10).await;
    for (a, b) in to_main.iter().zip(&to_audit) {
        assert_eq!(a.kind, b.kind, "the same events, in the same order");
        assert_eq!(a.body, b.body, "the same body");
        assert_ne!(a.id, b.id, "each endpoint's row has its own webhook-id");
        for id in [&a.id, &b.id] {
            assert!(verifyd::store::parse_row_id(id).is_some(), "{id}");
        }
    }
}

#[tokio::test]
async fn a_receiver_failing_for_a_while_gets_every_event_at_least_once_and_dedupes_to_once() {
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    receiver.state.fail_first.store(3, Ordering::SeqCst);
    let url = receiver.url();
    // A TTL beyond the retries, so no `verification.expired` joins in.
    let app = spawn_app_with(&event_settings(&url, &[("VERIFYD_CODE_TTL", "86400")])).await;

    let sid = create(&app, A).await;
    // The default schedule: 5 s, 5 min, 30 min, …: the clock moves, nobody waits for minutes.
    receiver.wait_for_requests(1, 10).await;
    settle().await;
    for (wait, tries) in [(5, 2), (300, 3), (1800, 4)] {
        // Before its time nothing is retried.
        app.clock.advance(Duration::from_secs(wait - 1));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(receiver.seen().len(), tries - 1, "no retry before {wait} s");
        app.clock.advance(Duration::from_secs(1));
        let seen = receiver.wait_for_requests(tries, 10).await;
        assert_eq!(seen.len(), tries, "try {tries} after {wait} s");
        settle().await;
    }
    let seen = receiver.seen();
    assert_eq!(
        seen.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    let ids: HashSet<&str> = seen.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "every try carries the same webhook-id");
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 1, "deduped by webhook-id: exactly once");
    assert_eq!(delivered[0].body["data"]["sid"], sid.as_str());
    assert!(seen.iter().all(|r| r.valid_signatures == 2));
}

/// `verifyd events …` against the test app's database.
fn events_cli(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verifyd"))
        .current_dir(app.dir.path())
        .env_clear()
        .env(
            "VERIFYD_DATABASE_URL",
            format!("sqlite://{}", app.dir.path().join("verifyd.db").display()),
        )
        .env("VERIFYD_SECRET", SECRET)
        .env("VERIFYD_API_KEYS", API_KEY)
        .arg("events")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_event_dead_after_its_last_try_is_listed_and_replayed_by_the_cli() {
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    receiver.state.always_fail.store(true, Ordering::SeqCst);
    let url = receiver.url();
    let app = spawn_app_with(&event_settings(
        &url,
        &[
            ("VERIFYD_EVENTS_RETRY_SCHEDULE", "5s,1m"),
            ("VERIFYD_CODE_TTL", "86400"),
        ],
    ))
    .await;
    create(&app, A).await;
    receiver.wait_for_requests(1, 10).await;
    settle().await;
    app.clock.advance(Duration::from_secs(5));
    receiver.wait_for_requests(2, 10).await;
    settle().await;
    app.clock.advance(Duration::from_secs(60));
    receiver.wait_for_requests(3, 10).await;
    settle().await;
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        receiver.seen().len(),
        3,
        "three tries, then dead: no fourth"
    );

    let (code, listed, err) = events_cli(&app, &["list", "--state", "dead"]);
    assert_eq!(code, 0, "{err}");
    let id = receiver.seen()[0].id.clone();
    assert!(
        listed.contains(&id) && listed.contains("dead") && listed.contains("HTTP 500"),
        "{listed}"
    );
    assert!(!listed.contains(A), "no number in the listing: {listed}");

    receiver.state.always_fail.store(false, Ordering::SeqCst);
    let (code, out, err) = events_cli(&app, &["replay", &id]);
    assert_eq!(code, 0, "{out}{err}");
    let delivered = receiver.wait_for(1, 10).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].id, id, "the replay is the same event");
    let (code, _, _) = events_cli(&app, &["replay", "msg_unknown"]);
    assert_eq!(code, 1, "an unknown id is an error");
    let (code, _, _) = events_cli(&app, &["replay"]);
    assert_eq!(code, 64, "replay needs an id or --dead");
}

#[tokio::test]
async fn an_event_survives_kill_9_between_its_change_and_its_delivery() {
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    // The first delivery hangs: verifyd is killed while it is in flight.
    receiver.state.hang.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let url = receiver.url();
    let env = [
        ("VERIFYD_API_KEYS", API_KEY),
        ("VERIFYD_SECRET", SECRET),
        ("VERIFYD_EVENTS_URL", url.as_str()),
        (
            "VERIFYD_EVENTS_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_dGhpcy1pcy1hLXNlY29uZC1rZXktb2YtMzItYnl0ZXM=",
        ),
        // A short lease (timeout + 5 s) so the restarted process need not wait long.
        ("VERIFYD_EVENTS_TIMEOUT", "1"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ];
    let server = Server::start_async(dir.path(), &env, API_KEY).await;
    let made = 3;
    for n in 0..made {
        let to = format!("+1212200010{n}");
        let r = server
            .post("/mfa/send-code", serde_json::json!({ "recipient": to }))
            .await;
        assert_eq!(r.status(), 200);
    }
    let in_flight = receiver.wait_for_requests(1, 10).await;
    assert!(!in_flight.is_empty(), "a delivery is in flight");
    server.kill_9();
    receiver.state.hang.store(false, Ordering::SeqCst);

    let server = Server::start_async(dir.path(), &env, API_KEY).await;
    let delivered = receiver.wait_for(made, 30).await;
    let seen = receiver.seen();
    eprintln!(
        "kill -9: {made} events made, {} delivered (distinct webhook-id), {} requests, {} duplicates",
        delivered.len(),
        seen.len(),
        seen.len() - delivered.len()
    );
    assert_eq!(
        delivered.len(),
        made,
        "every event arrives after the restart"
    );
    assert!(
        delivered
            .iter()
            .all(|r| r.kind == "verification.pending" && r.valid_signatures == 2)
    );
    assert!(
        delivered.iter().any(|r| r.id == in_flight[0].id),
        "the event in flight at the kill is delivered"
    );
    drop(server);
}

#[tokio::test]
async fn two_replicas_on_postgresql_deliver_1000_events_each_once_in_flight() {
    let Some(db) = postgres_or_skip().await else {
        return;
    };
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    let url = receiver.url();
    let db_url = db.url();
    let env = [
        ("VERIFYD_API_KEYS", API_KEY),
        ("VERIFYD_SECRET", SECRET),
        ("VERIFYD_DATABASE_URL", db_url.as_str()),
        ("VERIFYD_STORE_TIMEOUT", "10"),
        ("VERIFYD_EVENTS_URL", url.as_str()),
        (
            "VERIFYD_EVENTS_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_dGhpcy1pcy1hLXNlY29uZC1rZXktb2YtMzItYnl0ZXM=",
        ),
        ("VERIFYD_RESEND_COOLDOWN", "0"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "0"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_async(dir_a.path(), &env, API_KEY).await;
    let b = Server::start_async(dir_b.path(), &env, API_KEY).await;

    let made = 1000;
    let servers = [&a, &b];
    let sends = futures_util::stream::iter(0..made).map(|n| {
        let server = servers[n % 2];
        async move {
            let to = format!("+1212{:07}", 3_000_000 + n);
            server
                .post("/mfa/send-code", serde_json::json!({ "recipient": to }))
                .await
                .status()
        }
    });
    let statuses: Vec<_> = sends.buffer_unordered(16).collect().await;
    let refused: Vec<_> = statuses.iter().filter(|s| s.as_u16() != 200).collect();
    assert!(refused.is_empty(), "every send accepted: {refused:?}");

    let delivered = receiver.wait_for(made, 120).await;
    let seen = receiver.seen();
    let overlapped = receiver.state.overlapped.lock().unwrap().clone();
    eprintln!(
        "two replicas: {made} events made, {} delivered (distinct webhook-id), {} requests, \
         {} duplicates, {} in flight twice at once",
        delivered.len(),
        seen.len(),
        seen.len() - delivered.len(),
        overlapped.len()
    );
    assert_eq!(delivered.len(), made, "each event delivered");
    assert!(
        overlapped.is_empty(),
        "an event in flight twice: {overlapped:?}"
    );
    assert!(delivered.iter().all(|r| r.valid_signatures == 2));
    let subjects: HashSet<String> = delivered
        .iter()
        .map(|r| r.body["data"]["sid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subjects.len(), made, "one pending event per verification");
    drop((a, b));
}

/// The rows of the console's events page (one `<tr data-id=…>` per outbox row) with `id`.
fn console_rows<'a>(body: &'a str, id: &str) -> Vec<&'a str> {
    body.split("<tr data-id=\"")
        .skip(1)
        .filter(|row| row.starts_with(id))
        .collect()
}

/// The console's events page with `query`, waiting (real time, at most 10 s) until the row of
/// `id` shows `state`.
async fn console_until(app: &TestApp, cookie: &str, query: &str, id: &str, state: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) =
            crate::console::page(app, &format!("/console/events{query}"), Some(cookie)).await;
        assert_eq!(status, 200, "{body}");
        let shown = console_rows(&body, id)
            .iter()
            .any(|r| r.contains(&format!("<td class=\"state\">{state}</td>")));
        if shown || tokio::time::Instant::now() > deadline {
            assert!(shown, "{id} is not {state} on {query}: {body}");
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_console_lists_deliveries_and_replays_a_dead_event_only_with_its_csrf_token() {
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    receiver.state.always_fail.store(true, Ordering::SeqCst);
    let url = receiver.url();
    let app = spawn_app_with(&event_settings(
        &url,
        &[
            ("VERIFYD_EVENTS_RETRY_SCHEDULE", "5s"),
            ("VERIFYD_CODE_TTL", "86400"),
        ],
    ))
    .await;
    let sid = create(&app, A).await;
    receiver.wait_for_requests(1, 10).await;
    settle().await;
    app.clock.advance(Duration::from_secs(5));
    receiver.wait_for_requests(2, 10).await;
    settle().await;
    let id = receiver.seen()[0].id.clone();

    let (status, body) = crate::console::page(&app, "/console/events", None).await;
    assert_eq!(status, 401, "no page without a session");
    assert!(!body.contains(&id));
    let cookie = crate::console::session(&app).await;
    let body = console_until(&app, &cookie, "", &id, "dead").await;
    let row = console_rows(&body, &id)[0];
    assert!(
        row.contains("verification.pending")
            && row.contains(&format!("/console/verifications/{sid}"))
            && row.contains("HTTP 500")
            && row.contains("<td class=\"num\">2</td>"),
        "type, verification, last error, tries: {row}"
    );
    assert!(!body.contains(&A[2..]), "no number on the page");
    let code = app.last_code(A).await;
    assert!(!body.contains(&code), "no code on the page");
    let (_, delivered) =
        crate::console::page(&app, "/console/events?status=delivered", Some(&cookie)).await;
    assert!(console_rows(&delivered, &id).is_empty(), "not delivered");
    console_until(&app, &cookie, "?status=dead", &id, "dead").await;
    let (status, bad) =
        crate::console::page(&app, "/console/events?status=lost", Some(&cookie)).await;
    assert_eq!(status, 400);
    assert!(
        bad.contains("Status is not one of the listed ones."),
        "{bad}"
    );

    // Replay: refused without the session's CSRF token, and nothing changes.
    receiver.state.always_fail.store(false, Ordering::SeqCst);
    for csrf in [
        "",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let refused = crate::console::post_form(
            &app,
            "/console/events/replay",
            &cookie,
            &[("csrf", csrf), ("id", &id)],
        )
        .await;
        assert_eq!(refused.status(), 403, "csrf {csrf:?}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.seen().len(), 2, "no try after a refused replay");
    console_until(&app, &cookie, "?status=dead", &id, "dead").await;
    let csrf = crate::console::csrf_in(&body);
    let unknown = crate::console::post_form(
        &app,
        "/console/events/replay",
        &cookie,
        &[("csrf", &csrf), ("id", "msg_unknown")],
    )
    .await;
    assert_eq!(unknown.status(), 404);
    let malformed = crate::console::post_form(
        &app,
        "/console/events/replay",
        &cookie,
        &[("csrf", &csrf), ("id", "'; DROP TABLE events")],
    )
    .await;
    assert_eq!(malformed.status(), 400);

    // With it: pending again (through the function `verifyd events replay` uses), then sent.
    receiver.state.always_fail.store(true, Ordering::SeqCst);
    let replayed = crate::console::post_form(
        &app,
        "/console/events/replay",
        &cookie,
        &[("csrf", &csrf), ("id", &id)],
    )
    .await;
    assert_eq!(replayed.status(), 303);
    assert_eq!(
        replayed.headers()["location"],
        "/console/events?done=replayed&n=1"
    );
    // The dispatcher, woken at once, tries it (the receiver still fails): pending, one try
    // made, the next due in 5 s on the test clock.
    receiver.wait_for_requests(3, 10).await;
    settle().await;
    let body = console_until(&app, &cookie, "?status=failed", &id, "failed").await;
    assert!(
        console_rows(&body, &id)[0].contains("<td class=\"num\">1</td>"),
        "tries reset"
    );
    receiver.state.always_fail.store(false, Ordering::SeqCst);
    app.clock.advance(Duration::from_secs(5));
    let delivered = receiver.wait_for(1, 10).await;
    assert_eq!(delivered[0].id, id, "the same event, delivered");
    console_until(&app, &cookie, "?status=delivered", &id, "delivered").await;
}

/// A guard that blocks fast (as in tests/api/fraud_guard.rs): a long prefix with one settled
/// unconverted code is blocked.
fn quick_guard(mode: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("VERIFYD_FRAUD_GUARD", mode),
        ("VERIFYD_FRAUD_GUARD_UNPROVEN_MAX", "1"),
        ("VERIFYD_FRAUD_GUARD_MIN_SENDS", "1"),
        ("VERIFYD_FRAUD_GUARD_SETTLE", "60"),
        ("VERIFYD_FRAUD_GUARD_BLOCK", "600"),
    ]
}

/// A code into +1 212 555, left unanswered past the settle time, then a second send there.
async fn second_send_into_a_silent_prefix(app: &TestApp) -> reqwest::Response {
    let first = app.send_code("+12125550101").await;
    assert_eq!(first.status(), 200);
    app.clock.advance(Duration::from_secs(90));
    app.send_code("+12125550102").await
}

#[tokio::test]
async fn a_fraud_guard_block_yields_exactly_one_fraud_guard_blocked_event() {
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    let url = receiver.url();
    let app = spawn_app_with(&event_settings(&url, &quick_guard("enforce"))).await;
    let refused = second_send_into_a_silent_prefix(&app).await;
    assert_error(refused, 403, "fraud_blocked").await;
    // The first send's verification.pending and the block's event.
    let got = receiver.wait_for(2, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let blocked: Vec<Received> = receiver
        .delivered()
        .into_iter()
        .filter(|r| r.kind == "fraud_guard.blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "exactly one: {got:?}");
    let event = &blocked[0];
    assert_eq!(event.valid_signatures, 2, "signed with both secrets");
    let data = &event.body["data"];
    assert_eq!(data["service_sid"], SERVICE, "{data}");
    assert_eq!(data["country"], "US");
    assert_eq!(data["prefix"], "+1212555");
    assert_eq!(data["level"], "long_prefix");
    assert_eq!(data["destination"], "+1212555");
    assert_eq!(data["reason"], "blocked");
    assert_eq!(data["channel"], "sms");
    assert!(data["until"].is_string(), "a block ends on its own: {data}");
    let to = data["to"].as_str().unwrap();
    assert!(
        to.ends_with("0102") && !to.contains("5550102"),
        "masked: {to}"
    );
    assert!(
        !event.raw.contains("2125550102"),
        "no full number: {}",
        event.raw
    );
    let code = app.last_code("+12125550101").await;
    assert!(!event.raw.contains(&code), "never a code");

    // The overview counts it from the attempt log's refusal row.
    let cookie = crate::console::session(&app).await;
    let (_, overview) = crate::console::page(&app, "/console", Some(&cookie)).await;
    assert_eq!(crate::console::figure(&overview, "fraud-blocked-24h"), "1");
    assert_eq!(crate::console::figure(&overview, "fraud-blocked-7d"), "1");
}

#[tokio::test]
async fn monitor_mode_sends_and_writes_no_fraud_guard_blocked_event() {
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    let url = receiver.url();
    let app = spawn_app_with(&event_settings(&url, &quick_guard("monitor"))).await;
    let sent = second_send_into_a_silent_prefix(&app).await;
    assert_eq!(sent.status(), 200, "monitor sends what it would refuse");
    let got = receiver.wait_for(2, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        got.iter().all(|r| r.kind == "verification.pending"),
        "{got:?}"
    );
    assert!(
        receiver
            .seen()
            .iter()
            .all(|r| r.kind != "fraud_guard.blocked"),
        "nothing was blocked"
    );
}

#[tokio::test]
async fn an_outbox_that_cannot_take_the_event_leaves_the_refusal_a_403() {
    let receiver = Receiver::start(&[SECRET_A, SECRET_B]).await;
    let url = receiver.url();
    let app = spawn_app_with(&event_settings(&url, &quick_guard("enforce"))).await;
    let first = app.send_code("+12125550101").await;
    assert_eq!(first.status(), 200);
    app.clock.advance(Duration::from_secs(90));
    // The outbox refuses every write (as a store that fails would); the rest of the store works.
    let db = rusqlite::Connection::open(app.dir.path().join("verifyd.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER outbox_down BEFORE INSERT ON event_outbox \
         BEGIN SELECT RAISE(ABORT, 'outbox down'); END;",
    )
    .unwrap();
    let refused = app.send_code("+12125550102").await;
    assert_error(refused, 403, "fraud_blocked").await;
    db.execute_batch("DROP TRIGGER outbox_down").unwrap();
    // Back: the next refusal is an event again, and it is the only one.
    let refused = app.send_code("+12125550103").await;
    assert_error(refused, 403, "fraud_blocked").await;
    receiver.wait_for(2, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let blocked: Vec<Received> = receiver
        .delivered()
        .into_iter()
        .filter(|r| r.kind == "fraud_guard.blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    let to = blocked[0].body["data"]["to"].as_str().unwrap().to_owned();
    assert!(to.ends_with("0103"), "{to}");
}
