//! The security counters under attack (issue 16): send and verify buckets apart, failed checks
//! reserved before a code is judged (so concurrent guesses cannot outrun the limit), failures
//! counted per caller under a shared per-number ceiling, idempotency records that do not reveal
//! the number, and an in-memory limiter that never forgets a counter in effect.

use futures_util::future::join_all;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// The defaults the harness turns off for convenience, turned back on.
const DEFAULTS: &[(&str, &str)] = &[
    ("VERIFYD_RESEND_COOLDOWN", "30"),
    ("VERIFYD_RATE_LIMIT_PHONE_MAX", "5"),
];

fn number(i: usize) -> String {
    format!("+1415555{:04}", 2000 + i)
}

#[tokio::test]
async fn sends_do_not_use_up_the_verify_bucket() {
    let app = spawn_app_with(DEFAULTS).await;
    // Four sends fill the send-side IP bucket (4 per minute) ...
    let mut codes = Vec::new();
    for i in 0..4 {
        codes.push(app.send_and_read_code(&number(i)).await);
    }
    let body = assert_error(app.send_code(&number(4)).await, 429, "rate_limited").await;
    assert_eq!(body["bucket"], "ip");
    // ... and the user can still enter the code from the same address.
    assert_ok(
        app.verify(&number(0), &codes[0]).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn verifies_do_not_use_up_the_send_bucket() {
    let app = spawn_app_with(DEFAULTS).await;
    // 30 checks (the verify-side IP bucket, 30 per minute), each of another number.
    for i in 0..30 {
        assert_error(
            app.verify(&number(i), "123456").await,
            404,
            "verification_not_found",
        )
        .await;
    }
    let body = assert_error(app.verify(&number(30), "123456").await, 429, "rate_limited").await;
    assert_eq!(body["bucket"], "ip");
    // Sending is governed by the send-side bucket only.
    assert_ok(app.send_code(&number(40)).await, "Verification code sent!").await;
}

/// Splits answers into judged guesses (`incorrect_code`) and refusals by the failure bucket.
async fn judged(responses: Vec<reqwest::Response>) -> usize {
    let mut judged = 0;
    for response in responses {
        let body: Value = response.json().await.unwrap();
        match body["code"].as_str() {
            Some("incorrect_code" | "verification_not_found") => judged += 1,
            Some("rate_limited") => assert_eq!(body["bucket"], "phone", "{body}"),
            _ => panic!("unexpected answer {body}"),
        }
    }
    judged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_are_judged_at_most_the_failure_limit() {
    let app = spawn_app_with(&[("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "1")]).await;
    let code = app.send_and_read_code(US_NUMBER).await;
    let bad = wrong(&code);
    let responses = join_all((0..20).map(|_| app.verify(US_NUMBER, &bad))).await;
    assert_eq!(judged(responses).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_way_attack_with_the_defaults_gets_ten_guesses_per_caller() {
    let app = spawn_app_with(&[]).await;
    // No pending verification: every judged check is a 404 that counts as a failure.
    let responses = join_all((0..100).map(|_| app.verify(US_NUMBER, "123456"))).await;
    assert_eq!(judged(responses).await, 10);
}

#[tokio::test]
async fn a_right_code_gives_its_reserved_failure_back() {
    let app = spawn_app_with(&[
        ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "2"),
        ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING", "0"),
    ])
    .await;
    for _ in 0..3 {
        let code = app.send_and_read_code(US_NUMBER).await;
        assert_ok(
            app.verify(US_NUMBER, &code).await,
            "Verification code is correct!",
        )
        .await;
    }
    // Three right codes used none of the two failures.
    let code = app.send_and_read_code(US_NUMBER).await;
    for _ in 0..2 {
        assert_error(
            app.verify(US_NUMBER, &wrong(&code)).await,
            400,
            "incorrect_code",
        )
        .await;
    }
    let body = assert_error(app.verify(US_NUMBER, &code).await, 429, "rate_limited").await;
    assert_eq!(body["bucket"], "phone");
}

#[tokio::test]
async fn idempotency_records_hold_no_plain_digest_of_the_body() {
    let app = spawn_app().await;
    let body = json!({ "recipient": US_NUMBER });
    let send = || {
        app.post_with(
            &app.client,
            "/mfa/send-code",
            &body,
            &[("Idempotency-Key", "retry-1")],
        )
    };
    assert_eq!(send().await.status(), 200);
    assert_eq!(send().await.headers()["idempotent-replayed"], "true");
    let db = rusqlite::Connection::open(app.dir.path().join("verifyd.db")).unwrap();
    let stored: Vec<Vec<u8>> = db
        .prepare("SELECT request_digest FROM idempotency_keys")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len(), 1);
    // What an attacker with a dump would try: the SHA-256 of each candidate body.
    let guess = Sha256::digest(format!("{{\"recipient\":\"{US_NUMBER}\",}}").as_bytes());
    assert_ne!(stored[0], guess.to_vec(), "the digest is keyed");
    assert_eq!(stored[0].len(), 32);
}

#[tokio::test]
async fn a_full_limiter_refuses_newcomers_rather_than_forget_a_failure_count() {
    let app = spawn_app_with(&[
        ("VERIFYD_LIMITER_MAX_KEYS", "1000"),
        ("VERIFYD_VERIFY_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "2"),
        ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_CEILING", "0"),
    ])
    .await;
    let victim = "+14155559999";
    assert_error(
        app.verify(victim, "123456").await,
        404,
        "verification_not_found",
    )
    .await;
    // Each check of another number leaves one part-used failure counter behind.
    let mut refused = 0;
    for i in 0..1100 {
        let response = app.verify(&number(i), "123456").await;
        match response.status().as_u16() {
            404 => {}
            503 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 100, "the cap was reached: {refused} refused");
    // The victim's first failure is remembered: one more, then the bucket refuses.
    assert_error(
        app.verify(victim, "123456").await,
        404,
        "verification_not_found",
    )
    .await;
    let body = assert_error(app.verify(victim, "123456").await, 429, "rate_limited").await;
    assert_eq!(body["bucket"], "phone");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("verifyd_limiter_full_total"),
        "a metric says so"
    );
}
