//! JWT bearer auth against a JWKS served on 127.0.0.1, with tokens minted here by the tests'
//! own keys (tests/api/fixtures): every way a token can be wrong, key rotation, and the binding
//! of a verification to the user who started it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures_util::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::*;

const ISSUER: &str = "https://tenant.example.auth0.com/";
const AUDIENCE: &str = "https://verifyd.example/api";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/api/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn jwk(kid: &str) -> Value {
    let all: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    all[kid].clone()
}

/// A JWKS endpoint whose keys, availability and fetch count the test controls.
#[derive(Clone)]
struct Issuer {
    keys: Arc<Mutex<Vec<Value>>>,
    up: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

impl Issuer {
    async fn start(kids: &[&str]) -> Issuer {
        let keys = Arc::new(Mutex::new(kids.iter().map(|k| jwk(k)).collect::<Vec<_>>()));
        let up = Arc::new(AtomicBool::new(true));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let issuer = Issuer {
            keys,
            up,
            fetches,
            url,
        };
        let app = axum::Router::new()
            .route(
                "/.well-known/jwks.json",
                get(|State(i): State<Issuer>| async move {
                    i.fetches.fetch_add(1, Ordering::SeqCst);
                    if !i.up.load(Ordering::SeqCst) {
                        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({})));
                    }
                    let keys = i.keys.lock().unwrap().clone();
                    (StatusCode::OK, axum::Json(json!({ "keys": keys })))
                }),
            )
            .with_state(issuer.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    fn add(&self, kid: &str) {
        self.keys.lock().unwrap().push(jwk(kid));
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now_secs(), "exp": now_secs() + 600 })
}

fn sign(kid: &str, alg: Algorithm, claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&fixture(&format!("{kid}.pem"))).unwrap(),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture(&format!("{kid}.pem"))).unwrap(),
        _ => unreachable!(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &key).unwrap()
}

fn user_token(sub: &str) -> String {
    sign("ec-a", Algorithm::ES256, &claims(sub))
}

async fn spawn_jwt(issuer: &Issuer, mode: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut settings: Vec<(&str, &str)> = vec![
        ("VERIFYD_AUTH", mode),
        ("VERIFYD_JWT_JWKS_URL", issuer.url.as_str()),
        ("VERIFYD_JWT_ISSUER", ISSUER),
        ("VERIFYD_JWT_AUDIENCE", AUDIENCE),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(&settings).await
}

async fn post_as(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn assert_invalid_token(response: reqwest::Response) {
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let body = assert_error(response, 401, "unauthorized").await;
    assert_eq!(
        body["message"], "missing or invalid credentials",
        "no detail leaks: {body}"
    );
}

#[tokio::test]
async fn a_valid_user_token_sends_and_verifies() {
    let issuer = Issuer::start(&["ec-a", "rsa-a"]).await;
    // `both`, so the test can read the dev outbox with its API key.
    let app = spawn_jwt(&issuer, "both", &[]).await;
    let token = user_token("auth0|alice");
    assert_ok(
        post_as(
            &app,
            &token,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
    let code = app.last_code(US_NUMBER).await;
    assert_ok(
        post_as(
            &app,
            &token,
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": code }),
        )
        .await,
        "Verification code is correct!",
    )
    .await;
    // RS256 works too.
    let rsa = sign("rsa-a", Algorithm::RS256, &claims("auth0|alice"));
    assert_ok(
        post_as(
            &app,
            &rsa,
            "/mfa/send-code",
            json!({ "recipient": "+14155552672" }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
}

#[tokio::test]
async fn the_outbox_and_metrics_take_the_api_key_only_never_a_user_token() {
    let issuer = Issuer::start(&["ec-a"]).await;
    let app = spawn_jwt(&issuer, "both", &[]).await;
    let token = user_token("auth0|alice");
    // The user's token is good: it sends a code.
    assert_ok(
        post_as(
            &app,
            &token,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
    for path in ["/dev/outbox", "/metrics"] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{path}");
        let body = assert_error(response, 401, "unauthorized").await;
        assert!(
            !body.to_string().contains("2671"),
            "{path} leaked nothing: {body}"
        );
        // The API key still reads them.
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path} with the API key");
    }
}

#[tokio::test]
async fn every_bad_token_is_401_invalid_token_and_does_nothing() {
    let issuer = Issuer::start(&["ec-a", "rsa-a"]).await;
    let app = spawn_jwt(&issuer, "both", &[]).await;
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let mut expired = claims("auth0|alice");
    expired["exp"] = json!(now_secs() - 3600);
    let mut wrong_aud = claims("auth0|alice");
    wrong_aud["aud"] = json!("https://someone-else.example");
    let mut wrong_iss = claims("auth0|alice");
    wrong_iss["iss"] = json!("https://evil.example/");
    let mut no_sub = claims("auth0|alice");
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut not_yet = claims("auth0|alice");
    not_yet["nbf"] = json!(now_secs() + 3600);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT", "kid": "ec-a" })),
        b64(&claims("auth0|alice"))
    );
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-a".to_owned());
        encode(
            &header,
            &claims("auth0|alice"),
            &EncodingKey::from_secret(&fixture("rsa-a.pub.pem")),
        )
        .unwrap()
    };
    let tampered = {
        let good = user_token("auth0|alice");
        let parts: Vec<&str> = good.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            b64(&claims("auth0|mallory")),
            parts[2]
        )
    };
    let wrong_key_for_kid = sign("ec-b", Algorithm::ES256, &claims("auth0|alice")).replacen(
        &b64(&json!({ "typ": "JWT", "alg": "ES256", "kid": "ec-b" })),
        &b64(&json!({ "typ": "JWT", "alg": "ES256", "kid": "ec-a" })),
        1,
    );
    let cases = [
        ("expired", sign("ec-a", Algorithm::ES256, &expired)),
        ("wrong aud", sign("ec-a", Algorithm::ES256, &wrong_aud)),
        ("wrong iss", sign("ec-a", Algorithm::ES256, &wrong_iss)),
        ("no sub", sign("ec-a", Algorithm::ES256, &no_sub)),
        ("not yet valid", sign("ec-a", Algorithm::ES256, &not_yet)),
        ("alg none", alg_none),
        ("HS256 signed with the public key", hs256_with_public_key),
        ("tampered payload", tampered),
        ("signed by another key", wrong_key_for_kid),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (case, token) in cases {
        let response = post_as(
            &app,
            &token,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await;
        assert_eq!(response.status(), 401, "{case}");
        assert_invalid_token(response).await;
    }
    // No token at all: a plain challenge.
    let response = app
        .client
        .post(app.url("/mfa/send-code"))
        .json(&json!({ "recipient": US_NUMBER }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(app.outbox().await.len(), 0);
    // `jwt` mode refuses API keys.
    let jwt_only = spawn_jwt(&issuer, "jwt", &[]).await;
    assert_invalid_token(
        post_as(
            &jwt_only,
            API_KEY,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_at_most_once_a_minute_and_rotation_needs_no_restart() {
    let issuer = Issuer::start(&["ec-a"]).await;
    let app = spawn_jwt(&issuer, "jwt", &[]).await;
    assert_eq!(issuer.fetches(), 1, "fetched at start");
    let unknown = sign("ec-b", Algorithm::ES256, &claims("auth0|alice"));
    // The key is not published: one refetch, then reject.
    app.clock.advance(Duration::from_secs(61));
    assert_invalid_token(
        post_as(
            &app,
            &unknown,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
    )
    .await;
    assert_eq!(issuer.fetches(), 2);
    // A flood of unknown kids within the minute does not hammer the issuer.
    for _ in 0..20 {
        assert_invalid_token(
            post_as(
                &app,
                &unknown,
                "/mfa/send-code",
                json!({ "recipient": US_NUMBER }),
            )
            .await,
        )
        .await;
    }
    assert_eq!(issuer.fetches(), 2);
    // Rotation: the issuer publishes ec-b; a minute later its tokens work, without a restart.
    issuer.add("ec-b");
    app.clock.advance(Duration::from_secs(61));
    assert_ok(
        post_as(
            &app,
            &unknown,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(issuer.fetches(), 3);
    // Old keys keep working.
    assert_ok(
        post_as(
            &app,
            &user_token("auth0|alice"),
            "/mfa/send-code",
            json!({ "recipient": "+14155552672" }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
}

#[tokio::test]
async fn a_code_is_bound_to_the_user_who_asked_for_it() {
    let issuer = Issuer::start(&["ec-a"]).await;
    let app = spawn_jwt(
        &issuer,
        "both",
        &[("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "3")],
    )
    .await;
    let alice = user_token("auth0|alice");
    let bob = user_token("auth0|bob");
    assert_ok(
        post_as(
            &app,
            &alice,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
    let alices_code = app.last_code(US_NUMBER).await;
    // Bob holding Alice's code gets exactly what "nothing pending" looks like.
    let body = assert_error(
        post_as(
            &app,
            &bob,
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": alices_code }),
        )
        .await,
        404,
        "verification_not_found",
    )
    .await;
    assert!(body.get("attemptsRemaining").is_none());
    // So does an API-key caller.
    assert_error(
        app.verify(US_NUMBER, &alices_code).await,
        404,
        "verification_not_found",
    )
    .await;
    // Bob's own send starts his own verification; it does not re-send Alice's code.
    assert_ok(
        post_as(
            &app,
            &bob,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
    let bobs_code = app.last_code(US_NUMBER).await;
    assert_ok(
        post_as(
            &app,
            &alice,
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": alices_code }),
        )
        .await,
        "Verification code is correct!",
    )
    .await;
    assert_ok(
        post_as(
            &app,
            &bob,
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": bobs_code }),
        )
        .await,
        "Verification code is correct!",
    )
    .await;
    // The foreign checks counted on the failure buckets of their own callers: Bob has used 1
    // of his 3, the API key 1. Bob's two more fill his, and only his.
    for _ in 0..2 {
        assert_error(
            post_as(
                &app,
                &bob,
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": "000000" }),
            )
            .await,
            404,
            "verification_not_found",
        )
        .await;
    }
    let body = assert_error(
        post_as(
            &app,
            &bob,
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": "000000" }),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(body["bucket"], "phone");
    // Bob cannot lock Alice out of her own number.
    assert_ok(
        post_as(
            &app,
            &alice,
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
    let code = app.last_code(US_NUMBER).await;
    assert_ok(
        post_as(
            &app,
            &alice,
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": code }),
        )
        .await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_spread_over_many_users_stop_at_the_numbers_ceiling() {
    let issuer = Issuer::start(&["ec-a"]).await;
    // Defaults: 10 failures per caller per hour, 30 for the number. The verify-side IP bucket
    // is off: a distributed attack comes from many addresses.
    let app = spawn_jwt(&issuer, "jwt", &[("VERIFYD_VERIFY_RATE_LIMIT_IP_MAX", "0")]).await;
    let tokens: Vec<String> = (0..100)
        .map(|i| user_token(&format!("attacker|{i}")))
        .collect();
    let responses = join_all(tokens.iter().map(|t| {
        post_as(
            &app,
            t,
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": "123456" }),
        )
    }))
    .await;
    let mut judged = 0;
    for response in responses {
        let body: Value = response.json().await.unwrap();
        match body["code"].as_str() {
            Some("verification_not_found") => judged += 1,
            Some("rate_limited") => assert_eq!(body["bucket"], "phone", "{body}"),
            _ => panic!("unexpected {body}"),
        }
    }
    assert_eq!(
        judged, 30,
        "a hundred users get the number's ceiling, no more"
    );
}

#[tokio::test]
async fn the_user_bucket_limits_sends_per_sub() {
    let issuer = Issuer::start(&["ec-a"]).await;
    let app = spawn_jwt(&issuer, "jwt", &[("VERIFYD_RATE_LIMIT_USER_MAX", "2")]).await;
    let alice = user_token("auth0|alice");
    for n in ["+14155552671", "+14155552672"] {
        assert_ok(
            post_as(&app, &alice, "/mfa/send-code", json!({ "recipient": n })).await,
            "Verification code sent!",
        )
        .await;
    }
    let body = assert_error(
        post_as(
            &app,
            &alice,
            "/mfa/send-code",
            json!({ "recipient": "+14155552673" }),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(body["bucket"], "user");
    assert_ok(
        post_as(
            &app,
            &user_token("auth0|bob"),
            "/mfa/send-code",
            json!({ "recipient": "+14155552673" }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
}

#[tokio::test]
async fn readyz_reports_the_jwks_and_an_outage_keeps_cached_keys_working() {
    let issuer = Issuer::start(&["ec-a"]).await;
    issuer.up.store(false, Ordering::SeqCst);
    let app = spawn_jwt(&issuer, "jwt", &[]).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "no key ever loaded");
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"]["jwks"],
        "down"
    );
    assert_invalid_token(
        post_as(
            &app,
            &user_token("auth0|alice"),
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
    )
    .await;

    let issuer = Issuer::start(&["ec-a"]).await;
    let app = spawn_jwt(&issuer, "jwt", &[]).await;
    issuer.up.store(false, Ordering::SeqCst);
    // An unknown kid a minute later tries a refetch, which fails: keys are now stale.
    app.clock.advance(Duration::from_secs(61));
    assert_invalid_token(
        post_as(
            &app,
            &sign("ec-b", Algorithm::ES256, &claims("x")),
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
    )
    .await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"]["jwks"],
        "stale"
    );
    assert_ok(
        post_as(
            &app,
            &user_token("auth0|alice"),
            "/mfa/send-code",
            json!({ "recipient": US_NUMBER }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
}
