//! Two replicas: two `verifyd serve` processes (the real binary) on their own ports, sharing one
//! PostgreSQL database and one Redis prefix. Every limit and every code is shared: the IP bucket
//! holds across both, a code sent through one is approved through the other, and single use and
//! the check budget hold under concurrent requests spread over both. Also the shared-mode
//! configuration guard of the binary. The pairs need PostgreSQL and Redis
//! (`VERIFYD_TEST_POSTGRES_URL`, `VERIFYD_TEST_REDIS_URL`) and skip without them.

use std::path::Path;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;
use crate::process::{Server, run};
use crate::shared::*;

/// Two replicas on one fresh database and one fresh Redis prefix.
struct Pair {
    a: Server,
    b: Server,
    _db: TestDb,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    /// `None` (the test skips) when the machine has no PostgreSQL or no Redis.
    async fn start_or_skip() -> Option<Pair> {
        Self::start_with_or_skip(&[]).await
    }

    /// Two replicas with `extra` settings replacing or adding to the common ones; `None` (the
    /// test skips) when the machine has no PostgreSQL or no Redis.
    async fn start_with_or_skip(extra: &[(&str, &str)]) -> Option<Pair> {
        let db = postgres_or_skip().await?;
        let redis = redis_or_skip().await?;
        let url = db.url();
        let prefix = redis_prefix();
        let env = [
            ("VERIFYD_API_KEYS", API_KEY),
            ("VERIFYD_SECRET", SECRET),
            ("VERIFYD_DATABASE_URL", url.as_str()),
            ("VERIFYD_REDIS_URL", redis.as_str()),
            ("VERIFYD_REDIS_PREFIX", prefix.as_str()),
            // Generous pool waits: 100 concurrent requests share 2 × 10 connections on a busy
            // 2-core CI machine; this test is about sharing, not about timeouts.
            ("VERIFYD_STORE_TIMEOUT", "10"),
            // These tests are about the IP bucket and the engine's own limits across replicas:
            // the other layers (tested on their own) would answer first.
            ("VERIFYD_RESEND_COOLDOWN", "0"),
            ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
            ("VERIFYD_VERIFY_RATE_LIMIT_IP_MAX", "0"),
            ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "0"),
        ];
        let mut env: Vec<(&str, &str)> = env
            .into_iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .collect();
        env.extend_from_slice(extra);
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Server::start(dir_a.path(), &env, API_KEY);
        let b = Server::start(dir_b.path(), &env, API_KEY);
        assert_ne!(a.addr, b.addr);
        for server in [&a, &b] {
            let logs = server.stderr.lock().unwrap().clone();
            assert!(
                logs.contains("store=\"postgres\"") && logs.contains("limiter=\"redis\""),
                "{logs}"
            );
        }
        Some(Pair {
            a,
            b,
            _db: db,
            _dirs: (dir_a, dir_b),
        })
    }

    /// Replica `i % 2`.
    fn node(&self, i: usize) -> &Server {
        if i.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        }
    }
}

async fn send(server: &Server, number: &str) -> reqwest::Response {
    server
        .post("/mfa/send-code", json!({ "recipient": number }))
        .await
}

async fn verify(server: &Server, number: &str, code: &str) -> reqwest::Response {
    server
        .post("/mfa/verify", json!({ "recipient": number, "code": code }))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ip_bucket_holds_across_two_replicas() {
    let Some(pair) = Pair::start_or_skip().await else {
        return;
    };
    let numbers = [
        "+14155550101",
        "+14155550102",
        "+14155550103",
        "+14155550104",
    ];
    for (i, number) in numbers.iter().enumerate() {
        assert_ok(send(pair.node(i), number).await, "Verification code sent!").await;
    }
    for server in [&pair.a, &pair.b] {
        let body = assert_error(send(server, "+14155550105").await, 429, "rate_limited").await;
        assert_eq!(body["bucket"], "ip", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_sent_through_one_replica_is_approved_through_the_other() {
    let Some(pair) = Pair::start_or_skip().await else {
        return;
    };
    assert_ok(send(&pair.a, US_NUMBER).await, "Verification code sent!").await;
    let code = pair.a.last_code().await;
    let wrong_on_a = assert_error(
        verify(&pair.a, US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(wrong_on_a["attemptsRemaining"], 4);
    let data = assert_ok(
        verify(&pair.b, US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    assert_eq!(data["status"], "approved");
    assert_error(
        verify(&pair.a, US_NUMBER, &code).await,
        404,
        "verification_not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_right_checks_over_two_replicas_approve_exactly_once() {
    let Some(pair) = Pair::start_or_skip().await else {
        return;
    };
    assert_ok(send(&pair.b, US_NUMBER).await, "Verification code sent!").await;
    let code = pair.b.last_code().await;
    let responses = join_all((0..50).map(|i| verify(pair.node(i), US_NUMBER, &code))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 404, 429].contains(s)),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_wrong_checks_over_two_replicas_evaluate_exactly_five() {
    let Some(pair) = Pair::start_or_skip().await else {
        return;
    };
    assert_ok(send(&pair.a, US_NUMBER).await, "Verification code sent!").await;
    let code = pair.a.last_code().await;
    let bad = wrong(&code);
    let responses = join_all((0..100).map(|i| verify(pair.node(i), US_NUMBER, &bad))).await;
    let mut incorrect = 0;
    let mut locked = 0;
    for r in responses {
        match r.status().as_u16() {
            400 => {
                assert_eq!(
                    r.json::<serde_json::Value>().await.unwrap()["code"],
                    "incorrect_code"
                );
                incorrect += 1;
            }
            429 => locked += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(incorrect, 5, "exactly five checks were evaluated");
    assert_eq!(locked, 95);
    for server in [&pair.a, &pair.b] {
        assert_error(
            verify(server, US_NUMBER, &code).await,
            429,
            "max_check_attempts",
        )
        .await;
    }
}

fn config_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![(
        "VERIFYD_DATABASE_URL",
        "postgres://verifyd:db-password-123@127.0.0.1:5432/verifyd",
    )];
    env.extend_from_slice(extra);
    env
}

#[test]
fn a_postgres_store_without_a_secret_is_refused_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["config", "serve"] {
        let (code, _, stderr) = run(dir.path(), &config_env(&[]), &[cmd]);
        assert_eq!(code, 64, "{cmd}: {stderr}");
        assert!(stderr.contains("VERIFYD_SECRET"), "{cmd}: {stderr}");
        assert!(!stderr.contains("db-password-123"), "{stderr}");
    }
}

#[test]
fn config_warns_when_the_store_is_shared_but_the_limiter_is_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: &Path = tmp.path();
    let (code, stdout, stderr) = run(dir, &config_env(&[("VERIFYD_SECRET", SECRET)]), &["config"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("warning:") && stdout.contains("VERIFYD_REDIS_URL="),
        "{stdout}"
    );
    assert!(
        !stdout.contains("db-password-123"),
        "password redacted:\n{stdout}"
    );

    let (code, stdout, _) = run(
        dir,
        &config_env(&[
            ("VERIFYD_SECRET", SECRET),
            ("VERIFYD_API_KEYS", API_KEY),
            (
                "VERIFYD_REDIS_URL",
                "redis://:redis-password-456@127.0.0.1:6379",
            ),
        ]),
        &["config"],
    );
    assert_eq!(code, 0);
    assert!(!stdout.contains("warning:"), "{stdout}");
    assert!(!stdout.contains("redis-password-456"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_over_two_replicas_are_judged_at_most_the_failure_limit() {
    let Some(pair) =
        Pair::start_with_or_skip(&[("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "1")]).await
    else {
        return;
    };
    assert_ok(send(&pair.a, US_NUMBER).await, "Verification code sent!").await;
    let code = pair.a.last_code().await;
    let bad = wrong(&code);
    let responses = join_all((0..20).map(|i| verify(pair.node(i), US_NUMBER, &bad))).await;
    let mut judged = 0;
    for response in responses {
        let body: serde_json::Value = response.json().await.unwrap();
        match body["code"].as_str() {
            Some("incorrect_code") => judged += 1,
            Some("rate_limited") => assert_eq!(body["bucket"], "phone", "{body}"),
            _ => panic!("unexpected answer {body}"),
        }
    }
    assert_eq!(judged, 1, "one failure allowed, one guess judged");
    // The verification itself saw exactly one wrong check.
    let right = assert_error(verify(&pair.b, US_NUMBER, &code).await, 429, "rate_limited").await;
    assert_eq!(right["bucket"], "phone");
}
