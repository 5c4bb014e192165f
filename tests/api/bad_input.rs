//! Bad input gets its documented status and code and changes nothing: no SMS, no bucket charge,
//! no check counted.

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::helpers::*;

enum Body {
    Json(Value),
    Raw(&'static str, Vec<u8>),
    Missing,
}

async fn post_body(app: &TestApp, path: &str, body: Body) -> reqwest::Response {
    let req = app.client.post(app.url(path)).bearer_auth(API_KEY);
    let req = match body {
        Body::Json(v) => req.json(&v),
        Body::Raw(content_type, bytes) => req.header(CONTENT_TYPE, content_type).body(bytes),
        Body::Missing => req,
    };
    req.send().await.expect("request sent")
}

fn big_json(bytes: usize) -> Vec<u8> {
    format!(
        "{{\"recipient\":\"{US_NUMBER}\",\"pad\":\"{}\"}}",
        "x".repeat(bytes)
    )
    .into_bytes()
}

fn send_code_cases() -> Vec<(&'static str, Body, u16, &'static str)> {
    vec![
        (
            "not JSON",
            Body::Raw("application/json", b"recipient=+14155552671".to_vec()),
            400,
            "invalid_body",
        ),
        (
            "truncated JSON",
            Body::Raw("application/json", b"{\"recipient\":".to_vec()),
            400,
            "invalid_body",
        ),
        (
            "JSON array",
            Body::Json(json!([US_NUMBER])),
            400,
            "invalid_body",
        ),
        (
            "JSON string",
            Body::Json(json!(US_NUMBER)),
            400,
            "invalid_body",
        ),
        (
            "form content type",
            Body::Raw(
                "application/x-www-form-urlencoded",
                b"recipient=%2B14155552671".to_vec(),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "text content type",
            Body::Raw("text/plain", br#"{"recipient":"+14155552671"}"#.to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            "no body, no content type",
            Body::Missing,
            415,
            "unsupported_media_type",
        ),
        ("empty object", Body::Json(json!({})), 400, "invalid_body"),
        (
            "null recipient",
            Body::Json(json!({ "recipient": null })),
            400,
            "invalid_body",
        ),
        (
            "numeric recipient",
            Body::Json(json!({ "recipient": 14155552671_u64 })),
            400,
            "invalid_body",
        ),
        (
            "empty recipient",
            Body::Json(json!({ "recipient": "" })),
            400,
            "invalid_phone_number",
        ),
        (
            "letters",
            Body::Json(json!({ "recipient": "+1415555CALL" })),
            400,
            "invalid_phone_number",
        ),
        (
            "vanity letters",
            Body::Json(json!({ "recipient": "+1-800-FLOWERS" })),
            400,
            "invalid_phone_number",
        ),
        (
            "double plus",
            Body::Json(json!({ "recipient": "++14155552671" })),
            400,
            "invalid_phone_number",
        ),
        (
            "16 digits",
            Body::Json(json!({ "recipient": "+1415555267112345" })),
            400,
            "invalid_phone_number",
        ),
        (
            "no country code",
            Body::Json(json!({ "recipient": "4155552671" })),
            400,
            "invalid_phone_number",
        ),
        (
            "extension",
            Body::Json(json!({ "recipient": "+14155552671 ext. 12" })),
            400,
            "invalid_phone_number",
        ),
        (
            "Arabic-Indic digits",
            Body::Json(json!({ "recipient": "+١٤١٥٥٥٥٢٦٧١" })),
            400,
            "invalid_phone_number",
        ),
        (
            "unassigned area code",
            Body::Json(json!({ "recipient": "+15555552671" })),
            400,
            "invalid_phone_number",
        ),
        (
            "too short",
            Body::Json(json!({ "recipient": "+1415" })),
            400,
            "invalid_phone_number",
        ),
        (
            "numeric channel",
            Body::Json(json!({ "recipient": US_NUMBER, "channel": 1 })),
            400,
            "invalid_body",
        ),
        (
            "unknown channel",
            Body::Json(json!({ "recipient": US_NUMBER, "channel": "pigeon" })),
            400,
            "channel_not_allowed",
        ),
        (
            "disabled channel",
            Body::Json(json!({ "recipient": US_NUMBER, "channel": "call" })),
            400,
            "channel_not_allowed",
        ),
        (
            "Canada",
            Body::Json(json!({ "recipient": "+14165550123" })),
            403,
            "country_not_allowed",
        ),
        (
            "premium rate",
            Body::Json(json!({ "recipient": "+19005550100" })),
            403,
            "number_type_not_allowed",
        ),
        (
            "17 KiB body",
            Body::Raw("application/json", big_json(17 * 1024)),
            413,
            "payload_too_large",
        ),
        (
            "2 MB body",
            Body::Raw("application/json", big_json(2 * 1024 * 1024)),
            413,
            "payload_too_large",
        ),
    ]
}

#[tokio::test]
async fn bad_send_code_requests_get_their_error_and_change_nothing() {
    let app = spawn_app().await;
    for (case, body, status, code) in send_code_cases() {
        let response = post_body(&app, "/mfa/send-code", body).await;
        let got = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{case}: body not JSON: {e}"));
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "case {case}: {body}"
        );
        assert_eq!(body["statusCode"], status, "case {case}");
        assert!(
            !body.to_string().contains("4155552671"),
            "case {case} echoes the number: {body}"
        );
    }
    assert!(app.outbox().await.is_empty(), "no SMS was sent");
    // No refusal charged the IP bucket: all four sends of this minute are still available.
    for i in 0..4 {
        let number = format!("+1415555267{i}");
        assert_ok(app.send_code(&number).await, "Verification code sent!").await;
    }
    assert_error(app.send_code("+14155552679").await, 429, "rate_limited").await;
}

#[tokio::test]
async fn bad_verify_requests_get_their_error_and_count_no_check() {
    let app = spawn_app().await;
    let code = app.send_and_read_code(US_NUMBER).await;
    let cases: Vec<(&str, Body, u16, &str)> = vec![
        (
            "not JSON",
            Body::Raw("application/json", b"code=123456".to_vec()),
            400,
            "invalid_body",
        ),
        (
            "wrong content type",
            Body::Raw("text/plain", b"{}".to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            "missing code",
            Body::Json(json!({ "recipient": US_NUMBER })),
            400,
            "invalid_body",
        ),
        (
            "numeric code",
            Body::Json(json!({ "recipient": US_NUMBER, "code": 123456 })),
            400,
            "invalid_body",
        ),
        (
            "missing recipient",
            Body::Json(json!({ "code": code })),
            400,
            "invalid_body",
        ),
        (
            "bad recipient",
            Body::Json(json!({ "recipient": "++1", "code": code })),
            400,
            "invalid_phone_number",
        ),
        (
            "Arabic-Indic digits",
            Body::Json(json!({ "recipient": US_NUMBER, "code": "١٢٣٤٥٦" })),
            400,
            "invalid_code",
        ),
        (
            "full-width digits",
            Body::Json(json!({ "recipient": US_NUMBER, "code": "１２３４５６" })),
            400,
            "invalid_code",
        ),
        (
            "letters",
            Body::Json(json!({ "recipient": US_NUMBER, "code": "12a456" })),
            400,
            "invalid_code",
        ),
        (
            "spaces",
            Body::Json(json!({ "recipient": US_NUMBER, "code": "123 456" })),
            400,
            "invalid_code",
        ),
        (
            "too short",
            Body::Json(json!({ "recipient": US_NUMBER, "code": "12345" })),
            400,
            "invalid_code",
        ),
        (
            "too long",
            Body::Json(json!({ "recipient": US_NUMBER, "code": "1234567" })),
            400,
            "invalid_code",
        ),
        (
            "empty",
            Body::Json(json!({ "recipient": US_NUMBER, "code": "" })),
            400,
            "invalid_code",
        ),
        (
            "2 MB body",
            Body::Raw("application/json", big_json(2 * 1024 * 1024)),
            413,
            "payload_too_large",
        ),
    ];
    for (case, body, status, expected) in cases {
        let response = post_body(&app, "/mfa/verify", body).await;
        let got = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{case}: body not JSON: {e}"));
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(expected)),
            "case {case}: {body}"
        );
        assert!(
            !body.to_string().contains(&code),
            "case {case} echoes the code: {body}"
        );
    }
    // None of those counted as a check: the first wrong code leaves 4 attempts.
    let body = assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(body["attemptsRemaining"], 4);
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_error(response, 404, "not_found").await;
    let response = app
        .client
        .get(app.url("/mfa/send-code"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "method_not_allowed").await;
}
