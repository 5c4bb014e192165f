//! The `twilio-verify` provider through verifyd's HTTP API, against the fake Twilio: the Linker
//! shape from Twilio's answers, Twilio's lifecycle, every Twilio error mapped to DESIGN.md's
//! table, policy before Twilio, and no create ever retried.

use std::time::Duration;

use serde_json::json;
use verifyd::config::TwilioCredentials;
use verifyd::domain::{Lifecycle, Timestamp, VerificationSid};
use verifyd::provider::{Provider, TwilioVerifyProvider};

use crate::fake_twilio::*;
use crate::helpers::*;
use crate::process::Server;

/// A big IP bucket: on (so RateLimits is sent) but never the reason a test is refused.
const ROOMY_IP_BUCKET: (&str, &str) = ("VERIFYD_RATE_LIMIT_IP_MAX", "1000");

async fn spawn_twilio(fake: &FakeTwilio, overrides: &[(&str, &str)]) -> TestApp {
    let settings = with(&verify_settings(&fake.url()), overrides);
    spawn_app_with(&pairs(&settings)).await
}

#[tokio::test]
async fn send_and_verify_through_twilio_verify_answer_the_linker_shape() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[]).await;

    let sent = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let sid = sent["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("VE") && sid.len() == 34, "{sent}");
    assert_eq!(sent["to"], US_NUMBER);
    assert_eq!(sent["channel"], "sms");
    assert_eq!(sent["status"], "pending");
    assert_eq!(sent["valid"], false);
    assert_eq!(sent["lookup"], json!({ "carrier": null }));
    let attempts = sent["sendCodeAttempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(
        attempts[0]["attempt_sid"]
            .as_str()
            .unwrap()
            .starts_with("VL")
    );
    assert_eq!(attempts[0]["channel"], "sms", "Twilio's SMS is our sms");
    assert!(sent["dateCreated"].as_str().unwrap().ends_with('Z'));

    let creates = fake.creates();
    assert_eq!(creates.len(), 1);
    let create = &creates[0];
    assert_eq!(
        create.path,
        format!("/v2/Services/{SERVICE_SID}/Verifications")
    );
    assert_eq!(create.auth, Auth::Ok);
    assert_eq!(create.field("To"), Some(US_NUMBER));
    assert_eq!(create.field("Channel"), Some("sms"));
    assert_eq!(
        create.field("RateLimits"),
        Some(r#"{"end_user_ip_address":"127.0.0.1"}"#)
    );

    let code = fake.code_for(US_NUMBER);
    let approved = assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    assert_eq!(approved["sid"], sid.as_str());
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["valid"], true);
    assert_eq!(
        approved["sendCodeAttempts"], sent["sendCodeAttempts"],
        "filled from what verifyd recorded at send time"
    );
    assert_eq!(approved["lookup"], json!({ "carrier": null }));
    let check = &fake.checks()[0];
    assert_eq!(check.field("To"), Some(US_NUMBER));
    assert_eq!(check.field("Code"), Some(code.as_str()));
    assert_eq!(check.form.len(), 2);

    // Approved verifications stop existing (Twilio's 20404).
    assert_error(
        app.verify(US_NUMBER, &code).await,
        404,
        "verification_not_found",
    )
    .await;
    fake.assert_no_violations();
}

#[tokio::test]
async fn five_wrong_codes_count_down_and_then_every_check_is_max_check_attempts() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[]).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let code = fake.code_for(US_NUMBER);
    for remaining in (0..5).rev() {
        let body = assert_error(
            app.verify(US_NUMBER, &wrong(&code)).await,
            400,
            "incorrect_code",
        )
        .await;
        assert_eq!(body["attemptsRemaining"], remaining, "{body}");
    }
    for attempt in [code.clone(), wrong(&code)] {
        assert_error(
            app.verify(US_NUMBER, &attempt).await,
            429,
            "max_check_attempts",
        )
        .await;
    }
    assert_eq!(fake.checks().len(), 7, "each check reached Twilio once");
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_check_verifyd_did_not_see_sent_has_no_attempts_remaining_and_no_attempts() {
    // Sent by "another replica": a second verifyd on the same fake.
    let fake = FakeTwilio::start().await;
    let sender = spawn_twilio(&fake, &[]).await;
    let checker = spawn_twilio(&fake, &[]).await;
    assert_ok(sender.send_code(US_NUMBER).await, "Verification code sent!").await;
    let code = fake.code_for(US_NUMBER);
    let body = assert_error(
        checker.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert!(body.get("attemptsRemaining").is_none(), "{body}");
    let data = assert_ok(
        checker.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    assert_eq!(data["sendCodeAttempts"], json!([]));
}

#[tokio::test]
async fn a_resend_reuses_twilios_verification_and_the_sixth_send_is_max_send_attempts() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[ROOMY_IP_BUCKET]).await;
    let first = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    for n in 2..=5 {
        let again = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
        assert_eq!(again["sid"], first["sid"]);
        assert_eq!(again["sendCodeAttempts"].as_array().unwrap().len(), n);
    }
    assert_error(app.send_code(US_NUMBER).await, 429, "max_send_attempts").await;
    assert_eq!(fake.creates().len(), 6);
    // The 5 attempts recorded at send time come back with the approval.
    let data = assert_ok(
        app.verify(US_NUMBER, &fake.code_for(US_NUMBER)).await,
        "Verification code is correct!",
    )
    .await;
    assert_eq!(data["sendCodeAttempts"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn requests_refused_by_policy_never_reach_twilio() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[("VERIFYD_RATE_LIMIT_IP_MAX", "2")]).await;
    fake.forget_calls(); // the startup sync

    assert_error(
        app.send_code("+14165550123").await,
        403,
        "country_not_allowed",
    )
    .await;
    assert_error(
        app.send_code("+19005550100").await,
        403,
        "number_type_not_allowed",
    )
    .await;
    assert_error(app.send_code("+1415555").await, 400, "invalid_phone_number").await;
    assert_error(
        app.post(
            "/mfa/send-code",
            &json!({ "recipient": US_NUMBER, "channel": "call" }),
        )
        .await,
        400,
        "channel_not_allowed",
    )
    .await;
    assert_error(app.verify(US_NUMBER, "12").await, 400, "invalid_code").await;
    assert!(fake.calls().is_empty(), "{:#?}", fake.calls());

    // The IP bucket (2) lets two through; the third never reaches Twilio.
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_ok(
        app.send_code("+14155552672").await,
        "Verification code sent!",
    )
    .await;
    let body = assert_error(app.send_code("+14155552673").await, 429, "rate_limited").await;
    assert_eq!(body["bucket"], "ip");
    assert_eq!(fake.creates().len(), 2);
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test]
async fn twilio_errors_on_send_code_map_to_the_contract_and_no_create_is_retried() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[ROOMY_IP_BUCKET]).await;
    let cases: [(&str, Fault, u16, &str); 11] = [
        (
            "60200 To",
            Fault::error(400, 60200, "Invalid parameter: To"),
            400,
            "invalid_phone_number",
        ),
        (
            "60200 Channel",
            Fault::error(400, 60200, "Invalid parameter: Channel"),
            400,
            "channel_not_allowed",
        ),
        (
            "60605 geo permissions",
            Fault::error(403, 60605, "Verification delivery attempt blocked"),
            403,
            "country_not_allowed",
        ),
        (
            "60410 Fraud Guard",
            Fault::error(403, 60410, "Verification delivery attempt blocked"),
            403,
            "fraud_blocked",
        ),
        (
            "60205 landline",
            Fault::error(400, 60205, "SMS is not supported by landline phone number"),
            403,
            "number_type_not_allowed",
        ),
        (
            "60203 max sends",
            Fault::error(429, 60203, "Max send attempts reached"),
            429,
            "max_send_attempts",
        ),
        (
            "60212 concurrent",
            Fault::error(429, 60212, "Too many concurrent requests for phone number"),
            429,
            "rate_limited",
        ),
        (
            "20429 with Retry-After",
            Fault::Error {
                status: 429,
                code: 20429,
                message: "Too many requests",
                retry_after: Some(7),
            },
            429,
            "rate_limited",
        ),
        (
            "20404 unknown service",
            Fault::error(404, 20404, "The requested resource was not found"),
            502,
            "provider_error",
        ),
        (
            "other 4xx",
            Fault::error(400, 60033, "Invalid phone number"),
            502,
            "provider_error",
        ),
        (
            "500",
            Fault::error(500, 20500, "Internal Server Error"),
            502,
            "provider_error",
        ),
    ];
    for (name, fault, status, code) in cases {
        fake.forget_calls();
        fake.set_fault(Target::Verifications, fault);
        let response = app.send_code(US_NUMBER).await;
        let retry_header = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = assert_error(response, status, code).await;
        assert_eq!(fake.creates().len(), 1, "{name}: exactly one create");
        if code == "rate_limited" {
            let want = if name.starts_with("20429") { 7 } else { 30 };
            assert_eq!(body["retryAfter"], want, "{name}: {body}");
            assert_eq!(retry_header, Some(want.to_string()), "{name}");
        }
        if status == 502 {
            let text = body.to_string();
            assert!(
                !text.contains("Twilio") && !text.contains("605"),
                "{name}: {text}"
            );
        }
    }
    fake.assert_no_violations();
}

#[tokio::test]
async fn twilio_errors_on_verify_map_to_the_contract_and_an_answered_check_is_not_retried() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[]).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let code = fake.code_for(US_NUMBER);
    let cases: [(Fault, u16, &str); 4] = [
        (
            Fault::error(400, 60200, "Invalid parameter: Code"),
            400,
            "invalid_code",
        ),
        (
            Fault::error(429, 20429, "Too many requests"),
            429,
            "rate_limited",
        ),
        (
            Fault::error(500, 20500, "Internal Server Error"),
            502,
            "provider_error",
        ),
        (
            Fault::error(503, 20503, "Service Unavailable"),
            502,
            "provider_error",
        ),
    ];
    for (fault, status, want) in cases {
        fake.forget_calls();
        fake.set_fault(Target::VerificationCheck, fault);
        assert_error(app.verify(US_NUMBER, &code).await, status, want).await;
        assert_eq!(
            fake.checks().len(),
            1,
            "{want}: a check answered by Twilio is not retried"
        );
    }
    fake.clear_faults();
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn a_twilio_reply_slower_than_twilio_timeout_is_502_and_is_not_retried() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(
        &fake,
        &[
            ("TWILIO_TIMEOUT", "1"),
            ("VERIFYD_TWILIO_SYNC_RATE_LIMITS", "false"),
        ],
    )
    .await;
    fake.set_fault(
        Target::Verifications,
        Fault::Slow(Duration::from_millis(1500)),
    );
    assert_error(app.send_code(US_NUMBER).await, 502, "provider_error").await;
    assert_eq!(
        fake.creates().len(),
        1,
        "a timed-out create is never retried"
    );

    fake.clear_faults();
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    fake.set_fault(
        Target::VerificationCheck,
        Fault::Slow(Duration::from_millis(1500)),
    );
    assert_error(
        app.verify(US_NUMBER, &fake.code_for(US_NUMBER)).await,
        502,
        "provider_error",
    )
    .await;
    assert_eq!(fake.checks().len(), 1, "a timed-out check is not retried");
}

#[tokio::test]
async fn wrong_twilio_credentials_are_502_and_the_service_still_starts() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(
        &fake,
        &[("TWILIO_AUTH_TOKEN", "0000000000000000000000000000000a")],
    )
    .await;
    // The startup sync was refused (20003) and logged; the service serves anyway.
    assert_eq!(fake.calls()[0].auth, Auth::Wrong);
    assert!(fake.rate_limits().is_empty());
    let body = assert_error(app.send_code(US_NUMBER).await, 502, "provider_error").await;
    assert!(!body.to_string().contains("0000000000"), "{body}");
    assert_error(app.verify(US_NUMBER, "123456").await, 502, "provider_error").await;
    assert_eq!(fake.creates().len(), 1);
    assert!(fake.calls().iter().all(|c| c.auth == Auth::Wrong));
}

#[tokio::test]
async fn an_unreachable_twilio_is_502() {
    // A port with nothing listening: every connection is refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let fake = FakeTwilio::start().await;
    let settings = with(
        &verify_settings(&format!("http://{closed}")),
        &[("VERIFYD_TWILIO_SYNC_RATE_LIMITS", "false")],
    );
    let app = spawn_app_with(&pairs(&settings)).await;
    assert_error(app.send_code(US_NUMBER).await, 502, "provider_error").await;
    assert_error(app.verify(US_NUMBER, "123456").await, 502, "provider_error").await;
    drop(fake);
}

#[tokio::test]
async fn rate_limits_carry_the_ipv6_64_and_are_left_out_when_the_ip_bucket_is_off() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[("VERIFYD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    assert_ok(
        app.send_code_via(&app.client, US_NUMBER, Some("2001:db8:1:2::5"))
            .await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(
        fake.creates()[0].field("RateLimits"),
        Some(r#"{"end_user_ip_address":"2001:db8:1:2::/64"}"#)
    );

    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[("VERIFYD_RATE_LIMIT_IP_MAX", "0")]).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let create = &fake.creates()[0];
    assert_eq!(create.field("RateLimits"), None);
    assert_eq!(create.form.len(), 2, "{:?}", create.form);
    assert!(
        fake.rate_limits().is_empty(),
        "IP bucket off: nothing synced"
    );
}

#[tokio::test]
async fn cancel_closes_the_verification_at_twilio() {
    let fake = FakeTwilio::start().await;
    let app = spawn_twilio(&fake, &[]).await;
    let sent = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let sid = VerificationSid::parse(sent["sid"].as_str().unwrap()).unwrap();
    let credentials = TwilioCredentials {
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: secrecy::SecretString::from(AUTH_TOKEN.to_owned()),
        service_sid: SERVICE_SID.to_owned(),
    };
    let provider = TwilioVerifyProvider::new(
        &credentials,
        &fake.url(),
        Duration::from_secs(5),
        true,
        Lifecycle::with_ttl(Duration::from_secs(600)),
    )
    .unwrap();
    let canceled = provider
        .cancel(&sid, Timestamp::from_millis(0))
        .await
        .unwrap();
    assert_eq!(canceled.status.as_str(), "canceled");
    assert_eq!(canceled.to.as_str(), US_NUMBER);
    let cancel = fake.calls_to("POST", &format!("/Verifications/{sid}"));
    assert_eq!(cancel.len(), 1);
    assert_eq!(
        cancel[0].form,
        vec![("Status".to_owned(), "canceled".to_owned())]
    );
    assert_error(
        app.verify(US_NUMBER, &fake.code_for_any(US_NUMBER)).await,
        404,
        "verification_not_found",
    )
    .await;
    assert!(matches!(
        provider.cancel(&sid, Timestamp::from_millis(0)).await,
        Err(verifyd::provider::ProviderError::NotFound)
    ));
}

/// `verifyd serve` as a child process against the fake, logging at trace level.
async fn serve(dir: &tempfile::TempDir, settings: &[(String, String)]) -> Server {
    let mut env = vec![
        ("VERIFYD_API_KEYS", API_KEY),
        ("VERIFYD_SECRET", SECRET),
        ("RUST_LOG", "trace"),
    ];
    env.extend(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Server::start_async(dir.path(), &env, API_KEY).await
}

#[tokio::test]
async fn trace_logs_in_twilio_mode_hold_no_token_code_or_full_number() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir, &verify_settings(&fake.url())).await;
    assert_ok(
        server
            .post("/mfa/send-code", json!({ "recipient": US_NUMBER }))
            .await,
        "Verification code sent!",
    )
    .await;
    let code = fake.code_for(US_NUMBER);
    server
        .post(
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": wrong(&code) }),
        )
        .await;
    assert_ok(
        server
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": code }),
            )
            .await,
        "Verification code is correct!",
    )
    .await;
    fake.set_fault(
        Target::Verifications,
        Fault::error(400, 60200, "Invalid parameter `To`: +14155552671"),
    );
    server
        .post("/mfa/send-code", json!({ "recipient": US_NUMBER }))
        .await;
    let logs = server.stop().await;
    assert!(logs.len() > 1000, "trace logging was on:\n{logs}");
    assert!(
        logs.contains("twilio-verify"),
        "the provider is named:\n{logs}"
    );
    assert!(logs.contains("+1415***2671"), "numbers appear masked");
    let wrong_code = wrong(&code);
    let secrets = [AUTH_TOKEN, code.as_str(), wrong_code.as_str(), "4155552671"];
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }

    // Wrong credentials: the log says which settings to check, and still not the token.
    let bad_token = "0000000000000000000000000000000a";
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &dir,
        &with(
            &verify_settings(&fake.url()),
            &[("TWILIO_AUTH_TOKEN", bad_token)],
        ),
    )
    .await;
    assert_error(
        server
            .post("/mfa/send-code", json!({ "recipient": "+14155552672" }))
            .await,
        502,
        "provider_error",
    )
    .await;
    let logs = server.stop().await;
    assert!(
        logs.matches("check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
            .count()
            >= 2,
        "at the startup sync and on the request:\n{logs}"
    );
    assert!(!logs.contains(bad_token));
}
