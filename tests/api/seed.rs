//! The seed's four rows (S1 settings, S2 countries, S3 channels, S4 the IP bucket) and the
//! Linker response shape.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn send_code_answers_the_linker_shape() {
    let app = spawn_app().await;
    let data = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let sid = data["sid"].as_str().unwrap();
    assert!(sid.starts_with("VE") && sid.len() == 34, "{sid}");
    assert_eq!(data["to"], US_NUMBER);
    assert_eq!(data["channel"], "sms");
    assert_eq!(data["status"], "pending");
    assert_eq!(data["valid"], false);
    assert_eq!(data["lookup"], json!({ "carrier": null }));
    assert!(data["amount"].is_null() && data["payee"].is_null());
    let attempts = data["sendCodeAttempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    let attempt_sid = attempts[0]["attempt_sid"].as_str().unwrap();
    assert!(attempt_sid.starts_with("VL") && attempt_sid.len() == 34);
    assert_eq!(attempts[0]["channel"], "sms");
    assert!(attempts[0]["time"].as_str().unwrap().ends_with('Z'));
    assert!(data["dateCreated"].is_string() && data["dateUpdated"].is_string());

    let code = app.last_code(US_NUMBER).await;
    assert_eq!(code.len(), 6);
    let data = assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    assert_eq!(data["sid"], sid);
    assert_eq!(data["status"], "approved");
    assert_eq!(data["valid"], true);
    assert_eq!(data["sendCodeAttempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn s2_country_comes_from_the_number_not_its_prefix() {
    let app = spawn_app().await;
    // +1 416 is Toronto: Canada, refused by the default allowlist (US).
    assert_error(
        app.send_code("+14165550123").await,
        403,
        "country_not_allowed",
    )
    .await;
    assert_error(
        app.send_code("+447400123456").await,
        403,
        "country_not_allowed",
    )
    .await;
    assert!(app.outbox().await.is_empty());

    let app = spawn_app_with(&[("VERIFYD_VALID_COUNTRY_CODES", "US,CA")]).await;
    assert_ok(
        app.send_code("+14165550123").await,
        "Verification code sent!",
    )
    .await;
    assert_error(
        app.send_code("+18765550123").await,
        403,
        "country_not_allowed",
    )
    .await; // Jamaica
}

#[tokio::test]
async fn s3_only_enabled_channels_are_accepted() {
    let app = spawn_app().await;
    for channel in ["call", "whatsapp", "voice", "SMS", "telegram", ""] {
        let response = app
            .post(
                "/mfa/send-code",
                &json!({ "recipient": US_NUMBER, "channel": channel }),
            )
            .await;
        assert_error(response, 400, "channel_not_allowed").await;
    }
    assert!(app.outbox().await.is_empty());
    assert_ok(
        app.post(
            "/mfa/send-code",
            &json!({ "recipient": US_NUMBER, "channel": "sms" }),
        )
        .await,
        "Verification code sent!",
    )
    .await;

    let app = spawn_app_with(&[("VERIFYD_CHANNELS", "sms,call")]).await;
    let data = assert_ok(
        app.post(
            "/mfa/send-code",
            &json!({ "recipient": US_NUMBER, "channel": "call" }),
        )
        .await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(data["channel"], "call");
}

#[tokio::test]
async fn s4_the_fifth_send_from_one_ip_in_a_minute_is_429_with_retry_after() {
    let app = spawn_app().await;
    let numbers = [
        "+14155552671",
        "+14155552672",
        "+14155552673",
        "+14155552674",
        "+14155552675",
    ];
    for n in &numbers[..4] {
        assert_ok(app.send_code(n).await, "Verification code sent!").await;
    }
    let response = app.send_code(numbers[4]).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = assert_error(response, 429, "rate_limited").await;
    assert_eq!(body["bucket"], "ip");
    assert_eq!(body["retryAfter"], retry_after);
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        app.outbox().await.len(),
        4,
        "the refused request sent nothing"
    );

    // After Retry-After the bucket has room for one more; after a full interval, for four.
    app.clock.advance(Duration::from_secs(retry_after));
    assert_ok(app.send_code(numbers[4]).await, "Verification code sent!").await;
    assert_error(app.send_code(numbers[4]).await, 429, "rate_limited").await;
    app.clock.advance(Duration::from_secs(60));
    for n in &numbers[..4] {
        assert_ok(app.send_code(n).await, "Verification code sent!").await;
    }
}

#[tokio::test]
async fn s4_bucket_size_and_interval_are_settings_and_zero_turns_it_off() {
    let app = spawn_app_with(&[
        ("VERIFYD_RATE_LIMIT_IP_MAX", "2"),
        ("VERIFYD_RATE_LIMIT_IP_INTERVAL", "10"),
    ])
    .await;
    assert_ok(
        app.send_code("+14155552671").await,
        "Verification code sent!",
    )
    .await;
    assert_ok(
        app.send_code("+14155552672").await,
        "Verification code sent!",
    )
    .await;
    let response = app.send_code("+14155552673").await;
    assert_eq!(response.headers()["retry-after"], "5");
    assert_error(response, 429, "rate_limited").await;

    let app = spawn_app_with(&[("VERIFYD_RATE_LIMIT_IP_MAX", "0")]).await;
    for i in 0..20 {
        let number = format!("+1415555{:04}", 2600 + i);
        assert_ok(app.send_code(&number).await, "Verification code sent!").await;
    }
}

#[tokio::test]
async fn code_length_and_ttl_are_settings() {
    let app = spawn_app_with(&[("VERIFYD_CODE_LENGTH", "8"), ("VERIFYD_CODE_TTL", "60")]).await;
    let code = app.send_and_read_code(US_NUMBER).await;
    assert_eq!(code.len(), 8);
    assert_error(app.verify(US_NUMBER, &code[..6]).await, 400, "invalid_code").await;
    app.clock.advance(Duration::from_secs(60));
    assert_error(
        app.verify(US_NUMBER, &code).await,
        404,
        "verification_not_found",
    )
    .await;
}
