//! Twilio Verify's lifecycle on the local engine: one pending verification per number, 10 minute
//! TTL, resends deliver the same code, 5 checks, 5 sends, approved/expired/exhausted are gone.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// No send-side buckets and no cooldown, so a test can send as often as the lifecycle allows.
const NO_IP_BUCKET: &[(&str, &str)] = &[
    ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
    ("VERIFYD_RESEND_COOLDOWN", "0"),
];

#[tokio::test]
async fn a_resend_within_the_ttl_delivers_the_same_code_and_adds_an_attempt() {
    let app = spawn_app_with(NO_IP_BUCKET).await;
    let first = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let code = app.last_code(US_NUMBER).await;
    app.clock.advance(Duration::from_secs(120));
    let second = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(second["sid"], first["sid"], "same verification");
    let attempts = second["sendCodeAttempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_ne!(attempts[0]["attempt_sid"], attempts[1]["attempt_sid"]);
    assert_ne!(second["dateUpdated"], second["dateCreated"]);
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 2);
    assert_eq!(
        code_in(outbox[1]["body"].as_str().unwrap()),
        code,
        "resend carries the same code"
    );
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn the_sixth_send_of_one_verification_is_max_send_attempts() {
    let app = spawn_app_with(NO_IP_BUCKET).await;
    for _ in 0..5 {
        assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    }
    assert_error(app.send_code(US_NUMBER).await, 429, "max_send_attempts").await;
    assert_eq!(app.outbox().await.len(), 5, "no sixth SMS");
    // The code still checks, and after the TTL a new verification can start.
    app.clock.advance(Duration::from_secs(600));
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
}

#[tokio::test]
async fn five_wrong_codes_then_every_check_is_429_until_the_ttl_ends_then_404() {
    let app = spawn_app_with(NO_IP_BUCKET).await;
    let code = app.send_and_read_code(US_NUMBER).await;
    for remaining in (0..5).rev() {
        let body = assert_error(
            app.verify(US_NUMBER, &wrong(&code)).await,
            400,
            "incorrect_code",
        )
        .await;
        assert_eq!(body["attemptsRemaining"], remaining);
    }
    // Even the right code is refused now.
    assert_error(
        app.verify(US_NUMBER, &code).await,
        429,
        "max_check_attempts",
    )
    .await;
    assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        429,
        "max_check_attempts",
    )
    .await;
    app.clock.advance(Duration::from_secs(600));
    assert_error(
        app.verify(US_NUMBER, &code).await,
        404,
        "verification_not_found",
    )
    .await;
}

#[tokio::test]
async fn a_locked_number_can_start_a_new_verification_with_a_new_code() {
    let app = spawn_app_with(NO_IP_BUCKET).await;
    let first = app.send_and_read_code(US_NUMBER).await;
    for _ in 0..5 {
        app.verify(US_NUMBER, &wrong(&first)).await;
    }
    let data = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(
        data["sendCodeAttempts"].as_array().unwrap().len(),
        1,
        "a new verification"
    );
    let second = app.last_code(US_NUMBER).await;
    assert_ok(
        app.verify(US_NUMBER, &second).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn an_approved_code_is_single_use() {
    let app = spawn_app_with(NO_IP_BUCKET).await;
    let code = app.send_and_read_code(US_NUMBER).await;
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    assert_error(
        app.verify(US_NUMBER, &code).await,
        404,
        "verification_not_found",
    )
    .await;
    // A new send starts a new verification.
    let data = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(data["status"], "pending");
    assert_eq!(data["sendCodeAttempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes_and_a_new_send_gets_a_new_verification() {
    let app = spawn_app_with(NO_IP_BUCKET).await;
    let first = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let code = app.last_code(US_NUMBER).await;
    app.clock.advance(Duration::from_secs(599));
    let body = assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(body["attemptsRemaining"], 4);
    app.clock.advance(Duration::from_secs(1));
    assert_error(
        app.verify(US_NUMBER, &code).await,
        404,
        "verification_not_found",
    )
    .await;
    let second = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_ne!(second["sid"], first["sid"]);
    // The old code does not approve the new verification.
    assert_error(app.verify(US_NUMBER, &code).await, 400, "incorrect_code").await;
}

#[tokio::test]
async fn verify_without_a_send_is_404_and_numbers_do_not_share_verifications() {
    let app = spawn_app_with(NO_IP_BUCKET).await;
    assert_error(
        app.verify(US_NUMBER, "123456").await,
        404,
        "verification_not_found",
    )
    .await;
    let code = app.send_and_read_code(US_NUMBER).await;
    assert_error(
        app.verify("+14155552672", &code).await,
        404,
        "verification_not_found",
    )
    .await;
    // Formatting differences are the same number.
    assert_ok(
        app.post(
            "/mfa/verify",
            &json!({ "recipient": "+1 (415) 555-2671", "code": code }),
        )
        .await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn a_restart_keeps_the_verification_and_its_original_expiry() {
    let app = spawn_app_with(NO_IP_BUCKET).await;
    let code = app.send_and_read_code(US_NUMBER).await;
    app.verify(US_NUMBER, &wrong(&code)).await;
    let (dir, clock) = app.stop().await;
    let app = spawn_app_in(dir, NO_IP_BUCKET, clock).await;
    let body = assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(body["attemptsRemaining"], 3);
    app.clock.advance(Duration::from_secs(600));
    assert_error(
        app.verify(US_NUMBER, &code).await,
        404,
        "verification_not_found",
    )
    .await;
}
