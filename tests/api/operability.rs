//! Operating verifyd: the OpenAPI document and Swagger UI, idempotent sends, probes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// Every route the service serves, with its method; the OpenAPI document must list each.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/mfa/send-code"),
    ("post", "/mfa/verify"),
    ("get", "/dev/outbox"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/guard"),
    ("post", "/guard/unblock"),
    // Served for each vendor with receipts configured (tests/api/receipts.rs); this app has
    // none, so it answers `not_found` for every vendor.
    ("post", "/callbacks/{vendor}"),
];

#[tokio::test]
async fn the_openapi_document_describes_every_route_error_and_the_bearer_scheme() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} missing from /openapi.json"
        );
    }
    assert_eq!(
        paths.len(),
        ROUTES.len(),
        "the document lists a route this test does not know: {:?}",
        paths.keys()
    );
    // And every documented operation exists on the server.
    for (method, path) in ROUTES.iter().filter(|(_, p)| !p.contains('{')) {
        let req = match *method {
            "post" => app
                .client
                .post(app.url(path))
                .bearer_auth(API_KEY)
                .json(&json!({})),
            _ => app.client.get(app.url(path)).bearer_auth(API_KEY),
        };
        let body: Value = req
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        assert_ne!(
            body["code"], "not_found",
            "{method} {path} is documented but not served"
        );
    }
    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for code in [
        "invalid_body",
        "unsupported_media_type",
        "payload_too_large",
        "invalid_phone_number",
        "country_not_allowed",
        "channel_not_allowed",
        "number_type_not_allowed",
        "fraud_blocked",
        "idempotency_key_reused",
        "rate_limited",
        "invalid_code",
        "incorrect_code",
        "verification_not_found",
        "max_check_attempts",
        "max_send_attempts",
        "unauthorized",
        "provider_error",
        "unavailable",
    ] {
        assert!(
            codes.contains(&code),
            "{code} missing from the ErrorCode enum"
        );
    }
    let send = &paths["/mfa/send-code"]["post"];
    for status in [
        "200", "400", "401", "403", "413", "415", "422", "429", "502", "503",
    ] {
        assert!(
            send["responses"].get(status).is_some(),
            "send-code lacks {status}"
        );
    }
    assert_eq!(send["security"], json!([{ "api_key": [] }]));
    assert_eq!(
        paths["/healthz"]["get"]["security"],
        json!([{}]),
        "probes are public"
    );
}

#[tokio::test]
async fn swagger_ui_is_served_without_a_key() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.text().await.unwrap().contains("swagger"),
        "Swagger UI page"
    );
}

async fn send_with_key(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post_with(
        &app.client,
        "/mfa/send-code",
        &body,
        &[("idempotency-key", key)],
    )
    .await
}

#[tokio::test]
async fn a_retried_send_with_the_same_key_replays_the_first_answer_and_sends_nothing() {
    let app = spawn_app().await;
    let body = json!({ "recipient": US_NUMBER });
    let first = send_with_key(&app, "order-42", body.clone()).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    // Key order in the body does not matter.
    let reordered = json!({ "channel": "sms", "recipient": US_NUMBER });
    let retry = send_with_key(&app, "order-42", json!({ "recipient": US_NUMBER })).await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first, "the very same answer");
    assert_eq!(app.outbox().await.len(), 1, "no second SMS");
    // The same key with another body is refused and changes nothing.
    assert_error(
        send_with_key(&app, "order-42", reordered).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    assert_error(
        send_with_key(&app, "order-42", json!({ "recipient": "+14155552672" })).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(app.outbox().await.len(), 1);
}

#[tokio::test]
async fn client_errors_are_replayed_but_429_is_not() {
    let app = spawn_app_with(&[("VERIFYD_RESEND_COOLDOWN", "30")]).await;
    // A 4xx answer is kept: the retry gets it again.
    assert_error(
        send_with_key(&app, "bad", json!({ "recipient": "+1415" })).await,
        400,
        "invalid_phone_number",
    )
    .await;
    assert_error(
        send_with_key(&app, "bad", json!({ "recipient": "+1415" })).await,
        400,
        "invalid_phone_number",
    )
    .await;
    // A 429 is not: after the wait, the retry with the same key runs afresh and sends.
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let limited = send_with_key(&app, "resend-1", json!({ "recipient": US_NUMBER })).await;
    assert_error(limited, 429, "rate_limited").await;
    app.clock.advance(Duration::from_secs(30));
    assert_ok(
        send_with_key(&app, "resend-1", json!({ "recipient": US_NUMBER })).await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(app.outbox().await.len(), 2);
}

#[tokio::test]
async fn keys_are_scoped_to_their_caller_and_kept_a_day() {
    let keys = format!("first-key-0123456789,second-key-0123456789,{API_KEY}");
    let app = spawn_app_with(&[
        ("VERIFYD_API_KEYS", &keys),
        ("VERIFYD_RESEND_COOLDOWN", "0"),
    ])
    .await;
    let send = |key: &'static str, number: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/mfa/send-code"))
                .bearer_auth(key)
                .header("idempotency-key", "same")
                .json(&json!({ "recipient": number }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        send("first-key-0123456789", "+14155552671").await.status(),
        200
    );
    // Another caller's identical key is its own.
    assert_eq!(
        send("second-key-0123456789", "+14155552672").await.status(),
        200
    );
    assert_eq!(app.outbox().await.len(), 2);
    assert_eq!(
        send("first-key-0123456789", "+14155552671").await.headers()["idempotent-replayed"],
        "true"
    );
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    let after = send("first-key-0123456789", "+14155552671").await;
    assert!(after.headers().get("idempotent-replayed").is_none());
    assert_eq!(after.status(), 200);
    assert_eq!(
        app.outbox().await.len(),
        3,
        "after 24 h the key is new again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_send_one_sms() {
    let app = spawn_app().await;
    let responses = futures_util::future::join_all(
        (0..10).map(|_| send_with_key(&app, "tap-tap", json!({ "recipient": US_NUMBER }))),
    )
    .await;
    for r in responses {
        assert!([200, 409].contains(&r.status().as_u16()), "{}", r.status());
    }
    assert_eq!(app.outbox().await.len(), 1);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let long = "k".repeat(256);
    for bad in ["", long.as_str(), "has space"] {
        let response = send_with_key(&app, bad, json!({ "recipient": US_NUMBER })).await;
        assert_error(response, 400, "invalid_body").await;
    }
    assert!(app.outbox().await.is_empty());
}
