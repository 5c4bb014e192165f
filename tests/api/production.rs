//! `VERIFYD_ENV=production`: the real binary refuses each unsafe setting with exit 64 and a
//! message naming its variable (one test per rule: senders, generated secrets, proxies, test
//! numbers, weak codes, plain http:// URLs), judges only what is in use, cannot run without
//! authentication, logs one startup line, and never serves `/dev/outbox`.

use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;
use verifyd::app::Application;
use verifyd::clock::ManualClock;
use verifyd::config::Profile;

use crate::fake_twilio::{ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID};
use crate::helpers::*;
use crate::process::{Server, run};

const WEBHOOK_SECRET: &str = "webhook-secret-0123456789-0123456789";

/// A production configuration that passes every rule (local engine, webhook sender).
fn good() -> Vec<(&'static str, &'static str)> {
    vec![
        ("VERIFYD_ENV", "production"),
        ("VERIFYD_SECRET", SECRET),
        ("VERIFYD_API_KEYS", API_KEY),
        ("VERIFYD_SMS_SENDER", "webhook"),
        ("VERIFYD_SMS_WEBHOOK_URL", "https://127.0.0.1:9/sms"),
        ("VERIFYD_SMS_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ]
}

/// `good()` without `drop` and with `set`.
fn env(drop: &[&str], set: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env: Vec<_> = good()
        .into_iter()
        .filter(|(k, _)| !drop.contains(k) && !set.iter().any(|(s, _)| s == k))
        .collect();
    env.extend_from_slice(set);
    env
}

/// Runs `verifyd serve` in `dir` and asserts it refused with exit 64 and exactly one problem,
/// naming `variable`; returns stderr.
fn refused_once(dir: &Path, env: &[(&str, &str)], variable: &str) -> String {
    let (code, stdout, stderr) = run(dir, env, &["serve"]);
    assert_eq!(code, 64, "{stdout}{stderr}");
    assert!(
        stderr.contains("(1 problem(s))"),
        "one rule, one problem:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{variable}=")),
        "{variable} not named:\n{stderr}"
    );
    assert!(
        !stderr.contains("listening on"),
        "it must not start:\n{stderr}"
    );
    for secret in [SECRET, API_KEY, WEBHOOK_SECRET] {
        assert!(!stderr.contains(secret), "a secret was echoed:\n{stderr}");
    }
    stderr
}

#[test]
fn production_refuses_the_console_sender_naming_verifyd_sms_sender() {
    let dir = tempfile::tempdir().unwrap();
    // Unset, the sender is the console: that default is refused too.
    let stderr = refused_once(
        dir.path(),
        &env(
            &[
                "VERIFYD_SMS_SENDER",
                "VERIFYD_SMS_WEBHOOK_URL",
                "VERIFYD_SMS_WEBHOOK_SECRET",
            ],
            &[],
        ),
        "VERIFYD_SMS_SENDER",
    );
    assert!(stderr.contains("\"console\""), "{stderr}");
}

#[test]
fn production_refuses_the_null_sender_naming_verifyd_sms_sender() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused_once(
        dir.path(),
        &env(&[], &[("VERIFYD_SMS_SENDER", "null")]),
        "VERIFYD_SMS_SENDER",
    );
    assert!(stderr.contains("\"null\""), "{stderr}");
}

#[test]
fn production_does_not_judge_the_unused_sender_in_twilio_verify_mode() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(
        &[
            "VERIFYD_SMS_SENDER",
            "VERIFYD_SMS_WEBHOOK_URL",
            "VERIFYD_SMS_WEBHOOK_SECRET",
        ],
        &[
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("TWILIO_SERVICE_SID", SERVICE_SID),
        ],
    );
    let (code, stdout, stderr) = run(dir.path(), &env, &["config"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("twilio-verify"), "{stdout}");
}

#[test]
fn production_refuses_a_generated_secret_naming_verifyd_secret() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused_once(dir.path(), &env(&["VERIFYD_SECRET"], &[]), "VERIFYD_SECRET");
    assert!(stderr.contains("VERIFYD_SECRET=<unset>"), "{stderr}");
    assert!(
        !dir.path().join("verifyd.secret").exists(),
        "no secret may be generated"
    );
}

#[test]
fn production_refuses_a_generated_api_key_naming_verifyd_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused_once(
        dir.path(),
        &env(&["VERIFYD_API_KEYS"], &[]),
        "VERIFYD_API_KEYS",
    );
    assert!(stderr.contains("VERIFYD_API_KEYS=<unset>"), "{stderr}");
    assert!(
        !dir.path().join("verifyd.db").exists(),
        "nothing is created before the settings pass"
    );
}

#[test]
fn production_refuses_trusted_proxies_that_trust_every_address() {
    for all in ["0.0.0.0/0", "10.0.0.0/8, ::/0"] {
        let dir = tempfile::tempdir().unwrap();
        let stderr = refused_once(
            dir.path(),
            &env(&[], &[("VERIFYD_TRUSTED_PROXIES", all)]),
            "VERIFYD_TRUSTED_PROXIES",
        );
        assert!(stderr.contains("/0"), "{all}: {stderr}");
    }
    // A real proxy list is fine.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &env(&[], &[("VERIFYD_TRUSTED_PROXIES", "10.0.0.0/8,fd00::/8")]),
        &["config"],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn production_refuses_a_test_number_without_valid_until() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("verifyd.toml"),
        "[[test_numbers]]\nnumber = \"+14155550123\"\ncode = \"424242\"\nvalid_until = \"2099-12-31\"\n\n\
         [[test_numbers]]\nnumber = \"+14155550124\"\ncode = \"424242\"\n",
    )
    .unwrap();
    let stderr = refused_once(dir.path(), &good(), "test_numbers[1]");
    assert!(stderr.contains("valid_until"), "{stderr}");
    assert!(
        !stderr.contains("424242"),
        "the code is a secret:\n{stderr}"
    );
    assert!(
        !stderr.contains("4155550124"),
        "the number is masked:\n{stderr}"
    );
}

#[test]
fn production_refuses_codes_under_6_digits_naming_verifyd_code_length() {
    for length in ["4", "5"] {
        let dir = tempfile::tempdir().unwrap();
        let stderr = refused_once(
            dir.path(),
            &env(&[], &[("VERIFYD_CODE_LENGTH", length)]),
            "VERIFYD_CODE_LENGTH",
        );
        assert!(stderr.contains("6"), "{stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &env(&[], &[("VERIFYD_CODE_LENGTH", "8")]),
        &["config"],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn production_refuses_a_code_ttl_over_600_seconds_naming_verifyd_code_ttl() {
    for ttl in ["601", "15m", "1h"] {
        let dir = tempfile::tempdir().unwrap();
        refused_once(
            dir.path(),
            &env(&[], &[("VERIFYD_CODE_TTL", ttl)]),
            "VERIFYD_CODE_TTL",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &env(&[], &[("VERIFYD_CODE_TTL", "300")]),
        &["config"],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn production_refuses_plain_http_jwks_and_webhook_urls_even_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused_once(
        dir.path(),
        &env(
            &[],
            &[(
                "VERIFYD_SMS_WEBHOOK_URL",
                "http://127.0.0.1:9/sms?token=gw-token-0123",
            )],
        ),
        "VERIFYD_SMS_WEBHOOK_URL",
    );
    assert!(stderr.contains("https://"), "{stderr}");
    assert!(!stderr.contains("gw-token-0123"), "redacted:\n{stderr}");
    let jwt = [
        ("VERIFYD_AUTH", "both"),
        ("VERIFYD_JWT_ISSUER", "https://tenant.example.auth0.com/"),
        ("VERIFYD_JWT_AUDIENCE", "https://verifyd.example/api"),
    ];
    let with_jwks = |url: &'static str| {
        let mut set = jwt.to_vec();
        set.push(("VERIFYD_JWT_JWKS_URL", url));
        env(&[], &set)
    };
    let dir = tempfile::tempdir().unwrap();
    refused_once(
        dir.path(),
        &with_jwks("http://localhost:9/.well-known/jwks.json"),
        "VERIFYD_JWT_JWKS_URL",
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &with_jwks("https://tenant.example.auth0.com/.well-known/jwks.json"),
        &["config"],
    );
    assert_eq!(code, 0, "{stderr}");
    // Reported together with every other bad setting.
    let dir = tempfile::tempdir().unwrap();
    let mut all = with_jwks("http://issuer.example.com/jwks.json");
    all.retain(|(k, _)| !matches!(*k, "VERIFYD_SMS_WEBHOOK_URL" | "VERIFYD_API_KEYS"));
    all.extend([
        ("VERIFYD_SMS_WEBHOOK_URL", "http://sms.example.com/hook"),
        ("VERIFYD_CODE_LENGTH", "4"),
        ("VERIFYD_CODE_TTL", "3600"),
    ]);
    let (code, _, stderr) = run(dir.path(), &all, &["serve"]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("(5 problem(s))"), "{stderr}");
    for name in [
        "VERIFYD_JWT_JWKS_URL=",
        "VERIFYD_SMS_WEBHOOK_URL=",
        "VERIFYD_CODE_LENGTH=",
        "VERIFYD_CODE_TTL=",
        "VERIFYD_API_KEYS=",
    ] {
        assert!(stderr.contains(name), "{name} not named:\n{stderr}");
    }
}

#[test]
fn authentication_cannot_be_turned_off() {
    // Production: an empty key list is not "no auth", it is refused.
    for keys in ["", " , "] {
        let dir = tempfile::tempdir().unwrap();
        refused_once(
            dir.path(),
            &env(&[], &[("VERIFYD_API_KEYS", keys)]),
            "VERIFYD_API_KEYS",
        );
    }
    // Any profile: no setting turns auth off, and a would-be switch is an unknown setting.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("verifyd.toml"), "auth = \"off\"\n").unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &[("VERIFYD_SECRET", SECRET), ("VERIFYD_API_KEYS", API_KEY)],
        &["serve"],
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("VERIFYD_AUTH"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &[("VERIFYD_SECRET", SECRET), ("VERIFYD_API_KEYS", "off")],
        &["serve"],
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("VERIFYD_API_KEYS="), "{stderr}");
}

#[test]
fn production_names_every_problem_at_once_in_serve_and_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("verifyd.toml"),
        "[[test_numbers]]\nnumber = \"+14155550123\"\ncode = \"424242\"\n",
    )
    .unwrap();
    let env = [
        ("VERIFYD_ENV", "production"),
        ("VERIFYD_TRUSTED_PROXIES", "0.0.0.0/0"),
    ];
    for cmd in ["serve", "config"] {
        let (code, _, stderr) = run(dir.path(), &env, &[cmd]);
        assert_eq!(code, 64, "{cmd}: {stderr}");
        assert!(stderr.contains("(5 problem(s))"), "{cmd}: {stderr}");
        for name in [
            "VERIFYD_SMS_SENDER=",
            "VERIFYD_SECRET=",
            "VERIFYD_API_KEYS=",
            "VERIFYD_TRUSTED_PROXIES=",
            "test_numbers[0]=",
        ] {
            assert!(stderr.contains(name), "{cmd}: {name} not named:\n{stderr}");
        }
    }
    let (code, _, stderr) = run(dir.path(), &[("VERIFYD_ENV", "staging")], &["config"]);
    assert_eq!(code, 64);
    assert!(stderr.contains("VERIFYD_ENV=\"staging\""), "{stderr}");
}

#[tokio::test]
async fn a_complete_production_setup_starts_with_one_startup_line_and_no_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &good(), API_KEY);
    let outbox = server
        .http
        .get(format!("http://{}/dev/outbox", server.addr))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(outbox.status(), StatusCode::NOT_FOUND);
    let logs = server.stderr.lock().unwrap().clone();
    let startup: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("listening on"))
        .collect();
    assert_eq!(startup.len(), 1, "{logs}");
    for fact in [
        "profile=\"production\"",
        "provider=\"local\"",
        "sender=\"webhook\"",
        "store=\"sqlite\"",
        "limiter=\"memory\"",
        "auth=\"api-key\"",
    ] {
        let bare = fact.replace('"', "");
        assert!(
            startup[0].contains(fact) || startup[0].contains(&bare),
            "{fact} missing from the startup line: {}",
            startup[0]
        );
    }
    assert!(!logs.contains(SECRET) && !logs.contains(WEBHOOK_SECRET));

    // `verifyd healthcheck` (the container HEALTHCHECK): 0 while it serves, also when
    // VERIFYD_ADDR is the wildcard address; 1 when nothing answers.
    let port = server.addr.port();
    let dir_path = dir.path().to_owned();
    let probe = tokio::task::spawn_blocking(move || {
        let wildcard = format!("0.0.0.0:{port}");
        let mut env = good();
        env.push(("VERIFYD_ADDR", wildcard.as_str()));
        run(&dir_path, &env, &["healthcheck"])
    });
    let (code, _, stderr) = probe.await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    drop(server);
    let dir_path = dir.path().to_owned();
    let probe = tokio::task::spawn_blocking(move || {
        run(
            &dir_path,
            &good(),
            &["healthcheck", "--addr", &format!("127.0.0.1:{port}")],
        )
    });
    let (code, _, stderr) = probe.await.unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/healthz"), "{stderr}");
}

#[tokio::test]
async fn the_dev_outbox_never_exists_in_production_even_with_a_console_sender() {
    // The settings refuse the console sender in production; this checks the second lock:
    // a production profile gets no /dev/outbox whatever the sender.
    let dir = tempfile::tempdir().unwrap();
    let mut config = load_config(&dir, &[]).unwrap();
    config.profile = Profile::Production;
    let app = Application::build_with_clock(config, Arc::new(ManualClock::starting_now()))
        .await
        .unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let http = client(None);
    let outbox = http
        .get(format!("http://{addr}/dev/outbox"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(outbox.status(), StatusCode::NOT_FOUND);
    let spec: serde_json::Value = http
        .get(format!("http://{addr}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"].get("/dev/outbox").is_none(), "{spec}");
    let _ = stop.send(());
    let _ = server.await;
}
