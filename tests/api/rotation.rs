//! Secret rotation: `VERIFYD_SECRET=new,old` keeps every verification, stored answer and bucket
//! of the old secret working; `verifyd rekey` moves the data to the new secret (also while the
//! service runs, losing no check and approving no code twice); the old secret can then be
//! dropped, and a database whose data the configured secrets cannot open refuses to start.
//! API keys rotate by listing both.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use verifyd::app::{Application, Components};
use verifyd::clock::{Clock, ManualClock};
use verifyd::crypto::ServerSecret;
use verifyd::domain::PhoneNumber;
use verifyd::limiter::{Decision, Limiter, MemoryLimiter};
use verifyd::policy::{BucketName, Policy};
use verifyd::rotation;

use crate::helpers::*;

/// The secret before the rotation is the helpers' `SECRET`; this one replaces it.
const NEW_SECRET: &str = "rotated-secret-9876543210-9876543210-fedcba";

fn both() -> String {
    format!("{NEW_SECRET},{SECRET}")
}

/// Settings of these tests: one client sends to many numbers of one prefix.
fn settings_with(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VERIFYD_SECRET", secret.to_owned()),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0".to_owned()),
        ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0".to_owned()),
        ("VERIFYD_VERIFY_RATE_LIMIT_IP_MAX", "0".to_owned()),
    ]
}

fn borrowed<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn key_id(secret: &str) -> String {
    ServerSecret::new(secret.to_owned().into())
        .unwrap()
        .key_id()
        .to_string()
}

/// The real binary in `dir` (whose `verifyd.db` the in-process apps use), bounded in time so
/// a binary that wrongly keeps serving fails the test instead of hanging it.
async fn verifyd(dir: &std::path::Path, secret: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifyd"));
    cmd.current_dir(dir)
        .env_clear()
        .env("VERIFYD_ADDR", "127.0.0.1:0")
        .env("VERIFYD_SECRET", secret)
        .env("VERIFYD_API_KEYS", API_KEY)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("verifyd {args:?} did not exit"))
        .expect("verifyd runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn send_idempotent(app: &TestApp, number: &str, key: &str) -> reqwest::Response {
    app.post_with(
        &app.client,
        "/mfa/send-code",
        &json!({ "recipient": number }),
        &[("idempotency-key", key)],
    )
    .await
}

#[tokio::test]
async fn a_verification_started_before_a_rotation_approves_after_it_and_after_rekey() {
    const N1: &str = "+14155552671";
    const N2: &str = "+14155552672";
    const N3: &str = "+14155552673";
    const N4: &str = "+14155552674";
    let clock = Arc::new(ManualClock::starting_now());
    let dir = tempfile::tempdir().unwrap();

    // Under the old secret alone.
    let old = settings_with(SECRET);
    let app = spawn_app_in(dir, &borrowed(&old), Arc::clone(&clock)).await;
    let code1 = app.send_and_read_code(N1).await;
    let code2 = app.send_and_read_code(N2).await;
    let first = send_idempotent(&app, N3, "rotation-1").await;
    assert_eq!(first.status(), StatusCode::OK);
    let first_body = first.text().await.unwrap();
    let code3 = app.last_code(N3).await;
    let code4 = app.send_and_read_code(N4).await;
    let body = assert_error(app.verify(N2, &wrong(&code2)).await, 400, "incorrect_code").await;
    assert_eq!(body["attemptsRemaining"], 4);
    let (dir, clock) = app.stop().await;

    // Rotated: the new secret first, the old one still listed.
    let rotated = settings_with(&both());
    let app = spawn_app_in(dir, &borrowed(&rotated), Arc::clone(&clock)).await;
    assert_ok(
        app.verify(N1, &code1).await,
        "Verification code is correct!",
    )
    .await;
    assert_ok(app.send_code(N2).await, "Verification code sent!").await;
    assert_eq!(
        app.last_code(N2).await,
        code2,
        "a resend after the rotation re-delivers the same code: still one verification"
    );
    let replay = send_idempotent(&app, N3, "rotation-1").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), first_body);
    let (dir, clock) = app.stop().await;

    // `verifyd rekey` moves everything to the new secret.
    let (code, stdout, stderr) = verifyd(dir.path(), &both(), &["rekey"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("re-keyed 3 verification(s) (1 already under the newest secret)")
            && stdout.contains("re-sealed 1 stored answer(s)")
            && stdout.contains("retired 1 older key id(s)"),
        "{stdout}"
    );
    assert!(!stdout.contains(NEW_SECRET) && !stderr.contains(NEW_SECRET));

    // The old secret alone no longer opens the data: a clear refusal, not an empty database.
    for args in [&["serve"][..], &["check", N4, &code4][..]] {
        let (code, stdout, stderr) = verifyd(dir.path(), SECRET, args).await;
        assert_eq!(code, 64, "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("VERIFYD_SECRET=<redacted> is not valid")
                && stderr.contains(&key_id(NEW_SECRET)),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("listening on"), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
    }

    // The new secret alone: every pending verification, count and stored answer is intact.
    let new = settings_with(NEW_SECRET);
    let app = spawn_app_in(dir, &borrowed(&new), clock).await;
    assert_ok(
        app.verify(N4, &code4).await,
        "Verification code is correct!",
    )
    .await;
    let body = assert_error(app.verify(N2, &wrong(&code2)).await, 400, "incorrect_code").await;
    assert_eq!(
        body["attemptsRemaining"], 3,
        "the wrong check before the rotation still counts"
    );
    assert_ok(
        app.verify(N2, &code2).await,
        "Verification code is correct!",
    )
    .await;
    let replay = send_idempotent(&app, N3, "rotation-1").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), first_body);
    assert_ok(
        app.verify(N3, &code3).await,
        "Verification code is correct!",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_new_secret_alone_before_rekey_is_refused_at_startup() {
    let clock = Arc::new(ManualClock::starting_now());
    let old = settings_with(SECRET);
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &borrowed(&old), clock.clone()).await;
    let code = app.send_and_read_code(US_NUMBER).await;
    let (dir, clock) = app.stop().await;

    let config = load_config(&dir, &borrowed(&settings_with(NEW_SECRET))).unwrap();
    let Err(e) = Application::build_with_clock(config, clock.clone()).await else {
        panic!("a database written under another secret must not start");
    };
    assert_eq!(e.exit_code(), 64);
    let text = e.to_string();
    assert!(
        text.contains("VERIFYD_SECRET") && text.contains(&key_id(SECRET)),
        "{text}"
    );

    // Listing both (new first) starts, and the code still approves.
    let app = spawn_app_in(dir, &borrowed(&settings_with(&both())), clock).await;
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_bucket_filled_before_a_rotation_still_refuses_after_it() {
    // Bucket keys come from the database's stable key, not from the secrets, so the same
    // number keys the same buckets under `old`, `new,old` and (after rekey) `new`. The limiter
    // is shared here as Redis would be between restarts (the in-memory one starts empty).
    let clock: Arc<ManualClock> = Arc::new(ManualClock::starting_now());
    let dir = tempfile::tempdir().unwrap();
    let limiter = MemoryLimiter::new(1000);
    let phone = verifyd::domain::Recipient::from(PhoneNumber::parse(US_NUMBER).unwrap());
    let other = verifyd::domain::Recipient::from(PhoneNumber::parse("+14155559999").unwrap());
    let build = |secret: String| {
        let dir = &dir;
        let clock = Arc::clone(&clock);
        async move {
            let mut settings = settings_with(&secret);
            settings.push(("VERIFYD_RATE_LIMIT_PHONE_MAX", "3".to_owned()));
            let config = load_config(dir, &borrowed(&settings)).unwrap();
            let parts = Components::build(&config, clock).await.unwrap();
            let policy = Policy::new(&config.limits, Arc::clone(&parts.keys));
            (parts, policy)
        }
    };

    let (_before, policy) = build(SECRET.to_owned()).await;
    let charged = policy.send_buckets(&phone, None, None);
    for _ in 0..3 {
        assert_eq!(
            limiter.acquire(&charged, clock.now()).await.unwrap(),
            Decision::Allowed
        );
    }
    let failures = policy.failure_buckets(&phone, "cli");
    for _ in 0..10 {
        limiter.acquire(&failures, clock.now()).await.unwrap();
    }

    // From here on every charge is refused, so it charges nothing: a refusal names the bucket
    // that is full, which is how these checks see that the keys are the same buckets.
    let (during, policy) = build(both()).await;
    let limited = |d: Decision, name: BucketName| {
        assert!(
            matches!(d, Decision::Limited { bucket, .. } if bucket == name),
            "{d:?}"
        );
    };
    let now = clock.now();
    assert_eq!(
        policy
            .send_buckets(&phone, None, None)
            .iter()
            .map(|b| b.storage_key())
            .collect::<Vec<_>>(),
        charged.iter().map(|b| b.storage_key()).collect::<Vec<_>>(),
        "the same buckets"
    );
    limited(
        limiter
            .acquire(&policy.send_buckets(&phone, None, None), now)
            .await
            .unwrap(),
        BucketName::Phone,
    );
    limited(
        limiter
            .acquire(&policy.failure_buckets(&phone, "cli"), now)
            .await
            .unwrap(),
        BucketName::Phone,
    );
    assert_eq!(
        limiter
            .acquire(&policy.send_buckets(&other, None, None), now)
            .await
            .unwrap(),
        Decision::Allowed,
        "another number is not affected"
    );

    rotation::rekey(during.store.as_ref(), &during.keys, now)
        .await
        .unwrap();
    let (_after, policy) = build(NEW_SECRET.to_owned()).await;
    limited(
        limiter
            .acquire(&policy.send_buckets(&phone, None, None), now)
            .await
            .unwrap(),
        BucketName::Phone,
    );
    limited(
        limiter
            .acquire(&policy.failure_buckets(&phone, "cli"), now)
            .await
            .unwrap(),
        BucketName::Phone,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_while_serving_loses_no_check_and_approves_each_code_once() {
    let clock = Arc::new(ManualClock::starting_now());
    let numbers: Vec<String> = (0..24).map(|i| format!("+141555526{i:02}")).collect();
    let app = spawn_app_in(
        tempfile::tempdir().unwrap(),
        &borrowed(&settings_with(SECRET)),
        clock.clone(),
    )
    .await;
    let mut codes = Vec::new();
    for n in &numbers {
        codes.push(app.send_and_read_code(n).await);
    }
    let (dir, clock) = app.stop().await;

    let rotated = settings_with(&both());
    let app = spawn_app_in(dir, &borrowed(&rotated), clock.clone()).await;
    // `verifyd rekey` in another process would use its own connections, like these.
    let config = load_config(&app.dir, &borrowed(&rotated)).unwrap();
    let parts = Components::build(&config, clock.clone()).await.unwrap();
    let now = clock.now();
    let rekey = tokio::spawn(async move {
        let report = rotation::rekey(parts.store.as_ref(), &parts.keys, now).await;
        (report, parts)
    });
    // Meanwhile: half the numbers get a wrong code then the right one twice at once, the
    // other half two wrong codes in a row.
    let outcomes = join_all(
        numbers
            .iter()
            .zip(&codes)
            .enumerate()
            .map(|(i, (n, code))| {
                let app = &app;
                async move {
                    let first = app.verify(n, &wrong(code)).await;
                    let first = assert_error(first, 400, "incorrect_code").await;
                    assert_eq!(first["attemptsRemaining"], 4, "{n}");
                    if i % 2 == 0 {
                        let (a, b) = tokio::join!(app.verify(n, code), app.verify(n, code));
                        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
                        statuses.sort_unstable();
                        assert_eq!(statuses, [200, 404], "{n}: approved exactly once");
                    } else {
                        let second = app.verify(n, &wrong(code)).await;
                        let second = assert_error(second, 400, "incorrect_code").await;
                        assert_eq!(second["attemptsRemaining"], 3, "{n}: no check lost");
                    }
                }
            }),
    )
    .await;
    assert_eq!(outcomes.len(), numbers.len());
    let (report, parts) = rekey.await.unwrap();
    let report = report.unwrap();
    assert_eq!(
        report.verifications + report.untouched,
        numbers.len() as u64,
        "{report:?}"
    );

    // Every row is under the new secret now, and the counts are what the checks left.
    let again = rotation::rekey(parts.store.as_ref(), &parts.keys, clock.now())
        .await
        .unwrap();
    assert_eq!(again.verifications, 0, "{again:?}");
    let (dir, clock) = app.stop().await;
    let app = spawn_app_in(dir, &borrowed(&settings_with(NEW_SECRET)), clock).await;
    for (i, (n, code)) in numbers.iter().zip(&codes).enumerate() {
        if i % 2 == 0 {
            assert_error(app.verify(n, code).await, 404, "verification_not_found").await;
        } else {
            let third =
                assert_error(app.verify(n, &wrong(code)).await, 400, "incorrect_code").await;
            assert_eq!(third["attemptsRemaining"], 2, "{n}");
            assert_ok(app.verify(n, code).await, "Verification code is correct!").await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn api_keys_rotate_by_listing_the_new_and_the_old_key() {
    const NEW_KEY: &str = "rotated-api-key-0123456789";
    let both_keys = format!("{NEW_KEY},{API_KEY}");
    let send = |app: &TestApp, key: &'static str| {
        let request = app
            .client
            .post(app.url("/mfa/send-code"))
            .bearer_auth(key)
            .json(&json!({ "recipient": US_NUMBER }));
        async move { request.send().await.unwrap().status() }
    };
    let app = spawn_app_with(&[("VERIFYD_API_KEYS", &both_keys)]).await;
    assert_eq!(send(&app, NEW_KEY).await, StatusCode::OK);
    assert_eq!(send(&app, API_KEY).await, StatusCode::OK);
    let (dir, clock) = app.stop().await;
    let app = spawn_app_in(dir, &[("VERIFYD_API_KEYS", NEW_KEY)], clock).await;
    assert_eq!(send(&app, NEW_KEY).await, StatusCode::OK);
    assert_eq!(send(&app, API_KEY).await, StatusCode::UNAUTHORIZED);
    app.stop().await;
}
