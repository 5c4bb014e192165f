//! Fail closed and recover: with Redis or PostgreSQL gone, send-code and verify answer 503
//! `unavailable` (with Retry-After) within seconds, nothing is sent or approved, `/readyz`
//! names the dependency that is down and `/healthz` stays 200; once it is back the same
//! process serves again, with every per-verification counter as it was.
//!
//! The Redis tests start a `redis-server` of their own; the PostgreSQL tests use the server of
//! `VERIFYD_TEST_POSTGRES_URL` and the Redis of `VERIFYD_TEST_REDIS_URL`. Each skips (or fails,
//! under `VERIFYD_TEST_REQUIRE_ALL=1`) when the machine lacks them.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::shared::*;

/// A second US number.
const OTHER_NUMBER: &str = "+14155550123";

/// The deadline for an outage to turn into an answer: the 2 s store/Redis timeout plus room for
/// a loaded CI machine, far below the 30 s pool wait (or the client's own 30 s) it guards
/// against.
const FAST: Duration = Duration::from_secs(5);

async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Waits (bounded) until `/readyz` answers `status` with these checks; the answer may be
/// cached for up to a second.
async fn wait_for_readiness(app: &TestApp, status: u16, store: &str, limiter: &str) {
    let want = serde_json::json!({
        "status": if status == 200 { "ok" } else { "unavailable" },
        "checks": { "store": store, "limiter": limiter },
    });
    wait_until(
        Duration::from_secs(15),
        &format!("/readyz {want}"),
        || async { readiness(app).await == (status, want.clone()) },
    )
    .await;
}

/// Asserts a 503 `unavailable` with a Retry-After header, answered before the [`FAST`]
/// deadline.
async fn assert_unavailable_fast(response: impl std::future::Future<Output = reqwest::Response>) {
    let response = tokio::time::timeout(FAST, response)
        .await
        .unwrap_or_else(|_| panic!("the outage was not answered within {FAST:?}"));
    assert!(
        response.headers().get("retry-after").is_some(),
        "Retry-After on a 503"
    );
    assert_error(response, 503, "unavailable").await;
}

async fn healthz(app: &TestApp) -> StatusCode {
    app.client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_refuses_sends_and_checks_then_recovers_without_a_restart() {
    // Arrange: a Redis of this test's own, nothing on disk.
    let Some(redis_server) = redis_server_or_skip() else {
        return;
    };
    let mut redis = RedisServer::start(&redis_server).await;
    let prefix = redis_prefix();
    let url = redis.url();
    let app = spawn_app_with(&[
        ("VERIFYD_REDIS_URL", &url),
        ("VERIFYD_REDIS_PREFIX", &prefix),
    ])
    .await;
    wait_for_readiness(&app, 200, "ok", "ok").await;
    let code = app.send_and_read_code(US_NUMBER).await;
    let first = assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(first["attemptsRemaining"], 4);
    let sent_before = app.outbox().await.len();

    // Act: Redis dies.
    redis.kill();

    // Assert: fail closed, quickly, and say why.
    assert_unavailable_fast(app.send_code(OTHER_NUMBER)).await;
    assert_unavailable_fast(app.send_code(US_NUMBER)).await;
    assert_unavailable_fast(app.verify(US_NUMBER, &code)).await;
    assert_eq!(
        app.outbox().await.len(),
        sent_before,
        "no SMS during the outage"
    );
    wait_for_readiness(&app, 503, "ok", "down").await;
    assert_eq!(healthz(&app).await, StatusCode::OK);

    // Redis comes back on the same port (empty: it kept nothing).
    redis.restart().await;
    wait_for_readiness(&app, 200, "ok", "ok").await;
    let again = assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(
        again["attemptsRemaining"], 3,
        "the check count lives in the store and survived the outage"
    );
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    app.send_and_read_code(OTHER_NUMBER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_survive_a_redis_crash_when_redis_keeps_an_append_only_file() {
    let Some(redis_server) = redis_server_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    let mut redis = RedisServer::start_with(
        &redis_server,
        free_port(),
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            &dir_text,
        ],
    )
    .await;
    let prefix = redis_prefix();
    let url = redis.url();
    let app = spawn_app_with(&[
        ("VERIFYD_REDIS_URL", &url),
        ("VERIFYD_REDIS_PREFIX", &prefix),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "2"),
        ("VERIFYD_RATE_LIMIT_IP_INTERVAL", "1h"),
    ])
    .await;
    app.send_and_read_code(US_NUMBER).await;
    app.send_and_read_code(OTHER_NUMBER).await;

    redis.kill();
    redis.restart().await;
    wait_for_readiness(&app, 200, "ok", "ok").await;

    let body = assert_error(app.send_code("+14155550199").await, 429, "rate_limited").await;
    assert_eq!(
        body["bucket"], "ip",
        "the IP bucket was not reset by the crash"
    );
}

/// A shared-mode app (PostgreSQL and Redis, with `extra` settings) whose PostgreSQL is behind a
/// proxy the test can cut, ready; the database and the proxy live as long as the test holds them.
/// `None` (the test skips) when the machine has no PostgreSQL or no Redis.
async fn app_with_postgres_behind_a_proxy(
    extra: &[(&str, &str)],
) -> Option<(TestApp, TcpProxy, TestDb)> {
    let db = postgres_or_skip().await?;
    let redis = redis_or_skip().await?;
    let proxy = TcpProxy::start(db.server).await;
    let prefix = redis_prefix();
    let url = db.url_via(proxy.addr);
    let mut settings = vec![
        ("VERIFYD_DATABASE_URL", url.as_str()),
        ("VERIFYD_REDIS_URL", redis.as_str()),
        ("VERIFYD_REDIS_PREFIX", prefix.as_str()),
    ];
    settings.extend_from_slice(extra);
    let app = spawn_app_with(&settings).await;
    wait_for_readiness(&app, 200, "ok", "ok").await;
    Some((app, proxy, db))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_refuses_sends_and_checks_then_recovers_without_a_restart() {
    // Arrange: PostgreSQL behind a proxy the test can cut.
    let Some((app, proxy, _db)) = app_with_postgres_behind_a_proxy(&[]).await else {
        return;
    };
    let code = app.send_and_read_code(US_NUMBER).await;
    let first = assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(first["attemptsRemaining"], 4);
    let sent_before = app.outbox().await.len();

    // Act: the database goes away (every pooled connection is cut, new ones are refused).
    proxy.close();

    // Assert
    assert_unavailable_fast(app.send_code(OTHER_NUMBER)).await;
    assert_unavailable_fast(app.verify(US_NUMBER, &code)).await;
    assert_unavailable_fast(app.verify(US_NUMBER, &wrong(&code))).await;
    assert_eq!(
        app.outbox().await.len(),
        sent_before,
        "no SMS during the outage"
    );
    wait_for_readiness(&app, 503, "down", "ok").await;
    assert_eq!(healthz(&app).await, StatusCode::OK);

    proxy.open().await;
    wait_for_readiness(&app, 200, "ok", "ok").await;
    let again = assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(
        again["attemptsRemaining"], 3,
        "one wrong check before the outage, none during it, one now"
    );
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    app.send_and_read_code(OTHER_NUMBER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_while_postgres_is_down_refuses_to_start_then_starts_once_it_is_back() {
    // Startup opens the key-check records (secret rotation), which needs the database: with it
    // down the process exits 69 (EX_UNAVAILABLE) and the orchestrator restarts it.
    let Some(db) = postgres_or_skip().await else {
        return;
    };
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let proxy = TcpProxy::start(db.server).await;
    proxy.close();
    let prefix = redis_prefix();
    let url = db.url_via(proxy.addr);
    let settings = [
        ("VERIFYD_DATABASE_URL", url.as_str()),
        ("VERIFYD_REDIS_URL", redis.as_str()),
        ("VERIFYD_REDIS_PREFIX", prefix.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(&dir, &settings).unwrap();
    let clock = std::sync::Arc::new(verifyd::clock::ManualClock::starting_now());
    let refused = verifyd::app::Application::build_with_clock(config, clock).await;
    let err = refused
        .err()
        .expect("startup refused while PostgreSQL is down");
    assert_eq!(err.exit_code(), 69, "{err}");

    proxy.open().await;
    let app = spawn_app_with(&settings).await;
    wait_for_readiness(&app, 200, "ok", "ok").await;
    let code = app.send_and_read_code(US_NUMBER).await;
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sends_that_arrive_together_during_a_postgres_outage_all_fail_fast_then_all_go_in() {
    // New sends to PostgreSQL are inserted in groups: an outage must answer every send of a
    // group 503, quickly, and send nothing; after it, a group goes in whole.
    let Some((app, proxy, _db)) = app_with_postgres_behind_a_proxy(&[
        // Only the store may refuse these sends.
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
        ("VERIFYD_RESEND_COOLDOWN", "0"),
    ])
    .await
    else {
        return;
    };
    let numbers: Vec<String> = (0..12)
        .map(|i| format!("+1212200{:04}", 1000 + i))
        .collect();

    proxy.close();
    futures_util::future::join_all(
        numbers
            .iter()
            .map(|n| assert_unavailable_fast(app.send_code(n))),
    )
    .await;
    assert!(app.outbox().await.is_empty(), "no SMS during the outage");

    proxy.open().await;
    wait_for_readiness(&app, 200, "ok", "ok").await;
    let sent = futures_util::future::join_all(numbers.iter().map(|n| app.send_code(n))).await;
    for response in sent {
        assert_ok(response, "Verification code sent!").await;
    }
    assert_eq!(
        app.outbox().await.len(),
        numbers.len(),
        "one SMS per number"
    );
}
