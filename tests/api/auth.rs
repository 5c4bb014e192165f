//! API-key authentication runs first: without an accepted key nothing else happens.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn requests_without_an_accepted_key_are_401_and_do_nothing() {
    let app = spawn_app().await;
    let body = json!({ "recipient": US_NUMBER });
    let attempts: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("wrong key", Some(format!("Bearer {API_KEY}x"))),
        (
            "prefix of the key",
            Some(format!("Bearer {}", &API_KEY[..10])),
        ),
        ("basic scheme", Some(format!("Basic {API_KEY}"))),
        ("empty bearer", Some("Bearer ".to_owned())),
    ];
    for (case, header) in attempts {
        for path in ["/mfa/send-code", "/mfa/verify"] {
            let mut req = app.client.post(app.url(path)).json(&body);
            if let Some(h) = &header {
                req = req.header("authorization", h);
            }
            let response = req.send().await.unwrap();
            assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
            assert_error(response, 401, "unauthorized").await;
        }
        let response = app.client.get(app.url("/dev/outbox")).send().await.unwrap();
        assert_error(response, 401, "unauthorized").await;
    }
    assert!(app.outbox().await.is_empty());
    // Auth comes before body checks: a huge body without a key is 401, not 413.
    let response = app
        .client
        .post(app.url("/mfa/send-code"))
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn any_of_several_configured_keys_is_accepted() {
    let app = spawn_app_with(&[(
        "VERIFYD_API_KEYS",
        "first-key-0123456789, second-key-0123456789",
    )])
    .await;
    for (key, number) in [
        ("first-key-0123456789", "+14155552671"),
        ("second-key-0123456789", "+14155552672"),
    ] {
        let response = app
            .client
            .post(app.url("/mfa/send-code"))
            .bearer_auth(key)
            .json(&json!({ "recipient": number }))
            .send()
            .await
            .unwrap();
        assert_ok(response, "Verification code sent!").await;
    }
}

#[tokio::test]
async fn probes_are_public_and_say_nothing_about_settings() {
    let app = spawn_app().await;
    let health: serde_json::Value = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({ "status": "ok" }));
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        ready,
        json!({ "status": "ok", "checks": { "store": "ok", "limiter": "ok" } })
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 32);
}
