//! Abuse protection through HTTP: every bucket and interval, the resend cooldown, number-type
//! rules, test numbers, and an SMS-pumping attack that rotates IPs.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;

/// Only the buckets a test names are on.
const ALL_OFF: &[(&str, &str)] = &[
    ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
    ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
    ("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "0"),
    ("VERIFYD_RESEND_COOLDOWN", "0"),
    ("VERIFYD_VERIFY_RATE_LIMIT_IP_MAX", "0"),
    ("VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX", "0"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = ALL_OFF
        .iter()
        .copied()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
    v.extend_from_slice(extra);
    v
}

async fn limited(response: reqwest::Response, bucket: &str) -> u64 {
    let header: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = assert_error(response, 429, "rate_limited").await;
    assert_eq!(body["bucket"], bucket, "{body}");
    assert_eq!(body["retryAfter"], header);
    header
}

#[tokio::test]
async fn the_phone_bucket_has_two_intervals_by_default() {
    // Defaults for the phone key: 5 per 10 minutes and 10 per day.
    let app = spawn_app_with(&with(&[("VERIFYD_RATE_LIMIT_PHONE_MAX", "5")])).await;
    for _ in 0..5 {
        assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    }
    // The 6th is refused by the bucket before the engine's own 5-send rule is even asked.
    assert_eq!(limited(app.send_code(US_NUMBER).await, "phone").await, 120);
    app.clock.advance(Duration::from_secs(600));
    for _ in 0..5 {
        assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    }
    // Ten today: even after the 10-minute bucket refills, the daily one refuses.
    app.clock.advance(Duration::from_secs(600));
    let wait = limited(app.send_code(US_NUMBER).await, "phone").await;
    assert!(
        wait > 3600,
        "the daily bucket answers, retry after {wait} s"
    );
    assert_ok(
        app.send_code("+14155552672").await,
        "Verification code sent!",
    )
    .await;
}

#[tokio::test]
async fn the_prefix_bucket_stops_a_range_of_numbers() {
    let app = spawn_app_with(&with(&[("VERIFYD_RATE_LIMIT_PREFIX_MAX", "20")])).await;
    for i in 0..20 {
        assert_ok(
            app.send_code(&format!("+1415555{:04}", 2600 + i)).await,
            "Verification code sent!",
        )
        .await;
    }
    limited(app.send_code("+14155552699").await, "prefix").await;
    assert_ok(
        app.send_code("+14155562699").await,
        "Verification code sent!",
    )
    .await;
}

#[tokio::test]
async fn the_country_and_global_buckets() {
    let app = spawn_app_with(&with(&[
        ("VERIFYD_RATE_LIMIT_COUNTRY_MAX", "2"),
        ("VERIFYD_VALID_COUNTRY_CODES", "US,CA"),
    ]))
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
    limited(app.send_code("+14155552673").await, "country").await;
    assert_ok(
        app.send_code("+14165550123").await,
        "Verification code sent!",
    )
    .await;

    let app = spawn_app_with(&with(&[
        ("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "3"),
        ("VERIFYD_VALID_COUNTRY_CODES", "US,CA"),
    ]))
    .await;
    for n in ["+14155552671", "+14165550123", "+14155552672"] {
        assert_ok(app.send_code(n).await, "Verification code sent!").await;
    }
    limited(app.send_code("+14165550124").await, "global").await;
}

#[tokio::test]
async fn a_resend_inside_the_cooldown_is_refused_with_the_wait() {
    let app = spawn_app_with(&with(&[("VERIFYD_RESEND_COOLDOWN", "30")])).await;
    let code = app.send_and_read_code(US_NUMBER).await;
    app.clock.advance(Duration::from_secs(10));
    assert_eq!(
        limited(app.send_code(US_NUMBER).await, "cooldown").await,
        20
    );
    assert_eq!(app.outbox().await.len(), 1);
    // Other numbers are not affected.
    assert_ok(
        app.send_code("+14155552672").await,
        "Verification code sent!",
    )
    .await;
    app.clock.advance(Duration::from_secs(20));
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert_eq!(app.last_code(US_NUMBER).await, code);
}

#[tokio::test]
async fn the_verify_ip_bucket() {
    let app = spawn_app_with(&with(&[("VERIFYD_VERIFY_RATE_LIMIT_IP_MAX", "3")])).await;
    for _ in 0..3 {
        assert_error(
            app.verify(US_NUMBER, "123456").await,
            404,
            "verification_not_found",
        )
        .await;
    }
    limited(app.verify(US_NUMBER, "123456").await, "ip").await;
}

#[tokio::test]
async fn failed_checks_are_counted_per_number_across_verifications() {
    let app = spawn_app_with(&with(&[(
        "VERIFYD_VERIFY_RATE_LIMIT_PHONE_FAILURES_MAX",
        "10",
    )]))
    .await;
    let first = app.send_and_read_code(US_NUMBER).await;
    for _ in 0..5 {
        assert_error(
            app.verify(US_NUMBER, &wrong(&first)).await,
            400,
            "incorrect_code",
        )
        .await;
    }
    // A new code does not reset the failure count.
    let second = app.send_and_read_code(US_NUMBER).await;
    for _ in 0..5 {
        assert_error(
            app.verify(US_NUMBER, &wrong(&second)).await,
            400,
            "incorrect_code",
        )
        .await;
    }
    let third = app.send_and_read_code(US_NUMBER).await;
    let wait = limited(app.verify(US_NUMBER, &third).await, "phone").await;
    assert_eq!(
        wait, 360,
        "one failure drains every 6 minutes (10 per hour)"
    );
    // The refused check was not evaluated: after the wait, the right code still approves.
    app.clock.advance(Duration::from_secs(wait));
    assert_ok(
        app.verify(US_NUMBER, &third).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn refused_requests_charge_no_bucket() {
    let app = spawn_app_with(&with(&[
        ("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "3"),
        ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "3"),
    ]))
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
    let refusals = [
        json!({ "recipient": "+14165550123" }),
        json!({ "recipient": "+19005550100" }),
        json!({ "recipient": "+14155552673", "channel": "call" }),
        json!({ "recipient": "+1415555267" }),
        json!({ "recipient": 5 }),
    ];
    for _ in 0..5 {
        for body in &refusals {
            let status = app.post("/mfa/send-code", body).await.status();
            assert!(status.is_client_error() && status != 429, "{status}");
        }
    }
    // Exactly one more fits in both the global and the prefix bucket.
    assert_ok(
        app.send_code("+14155552673").await,
        "Verification code sent!",
    )
    .await;
    let response = app.send_code("+14155552674").await;
    assert_eq!(response.status(), 429);
    assert_eq!(app.outbox().await.len(), 3);
}

#[tokio::test]
async fn number_types_follow_libphonenumber_for_us_and_gb() {
    let app = spawn_app_with(&with(&[("VERIFYD_VALID_COUNTRY_CODES", "US,GB")])).await;
    let table = [
        ("+19005550100", "US premium rate", 403),
        // Blocked by default: toll-free numbers are a classic SMS-pumping target.
        ("+18005550100", "US toll free", 403),
        ("+14155552671", "US fixed line or mobile", 200),
        ("+448712345678", "GB premium rate", 403),
        ("+448431234567", "GB shared cost", 403),
        ("+443001234567", "GB UAN", 403),
        ("+447400123456", "GB mobile", 200),
        ("+442079460000", "GB fixed line", 200),
        ("+447011234567", "GB personal number", 200),
    ];
    for (number, kind, status) in table {
        let response = app.send_code(number).await;
        if status == 200 {
            assert_ok(response, "Verification code sent!").await;
        } else {
            assert_error(response, status, "number_type_not_allowed").await;
        }
        let _ = kind;
    }
    // Adding types to the list refuses them too.
    let app = spawn_app_with(&with(&[
        ("VERIFYD_VALID_COUNTRY_CODES", "US,GB"),
        (
            "VERIFYD_BLOCKED_NUMBER_TYPES",
            "toll_free,fixed_line,premium_rate",
        ),
    ]))
    .await;
    assert_error(
        app.send_code("+18005550100").await,
        403,
        "number_type_not_allowed",
    )
    .await;
    assert_error(
        app.send_code("+442079460000").await,
        403,
        "number_type_not_allowed",
    )
    .await;
    assert_ok(
        app.send_code("+443001234567").await,
        "Verification code sent!",
    )
    .await;
}

const TEST_NUMBERS: &str = r#"
[[test_numbers]]
number = "+14155550123"
code = "424242"

[[test_numbers]]
number = "+14155550124"
code = "131313"
valid_until = "2020-01-31"
"#;

#[tokio::test]
async fn a_test_number_gets_no_sms_and_its_fixed_code_approves() {
    let app = spawn_app_with_toml(TEST_NUMBERS, &[]).await;
    assert_ok(
        app.send_code("+14155550123").await,
        "Verification code sent!",
    )
    .await;
    assert!(app.outbox().await.is_empty(), "no SMS for a test number");
    assert_error(
        app.verify("+14155550123", "111111").await,
        400,
        "incorrect_code",
    )
    .await;
    assert_ok(
        app.verify("+14155550123", "424242").await,
        "Verification code is correct!",
    )
    .await;
    // An expired entry is an ordinary number again.
    assert_ok(
        app.send_code("+14155550124").await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(app.outbox().await.len(), 1);
    assert_ne!(app.last_code("+14155550124").await, "131313");
}

#[test]
fn a_test_code_of_the_wrong_length_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("verifyd.toml"),
        "[[test_numbers]]\nnumber = \"+14155550123\"\ncode = \"4242\"\n",
    )
    .unwrap();
    let err = load_config(&dir, &[]).unwrap_err().to_string();
    assert!(
        err.contains("test_numbers[0]") && err.contains("VERIFYD_CODE_LENGTH"),
        "{err}"
    );
    assert!(!err.contains("4242"), "the code is a secret: {err}");
}

#[tokio::test]
async fn buckets_with_several_intervals_come_from_verifyd_toml() {
    let toml = r#"
[rate_limits.send]
ip = [{ max = 2, interval = 60 }, { max = 3, interval = "1h" }]
"#;
    let app = spawn_app_with_toml(toml, &[("VERIFYD_RESEND_COOLDOWN", "0")]).await;
    let numbers = [
        "+14155552671",
        "+14155552672",
        "+14155552673",
        "+14155552674",
    ];
    assert_ok(app.send_code(numbers[0]).await, "Verification code sent!").await;
    assert_ok(app.send_code(numbers[1]).await, "Verification code sent!").await;
    limited(app.send_code(numbers[2]).await, "ip").await;
    app.clock.advance(Duration::from_secs(60));
    assert_ok(app.send_code(numbers[2]).await, "Verification code sent!").await;
    app.clock.advance(Duration::from_secs(60));
    let wait = limited(app.send_code(numbers[3]).await, "ip").await;
    assert!(wait > 60, "the hourly bucket answers: {wait}");
}

/// 2 000 sends from 500 rotating IPs (250 direct loopback sources, 250 behind a trusted proxy)
/// to sequential numbers of one prefix, while 20 real users in other prefixes sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sms_pumping_attack_costs_at_most_the_prefix_budget() {
    let app = &spawn_app_with(&[("VERIFYD_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let direct: Vec<reqwest::Client> = (2..252)
        .map(|x| client(Some(format!("127.0.0.{x}").parse().unwrap())))
        .collect();
    let mut attempts = 0;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut legit_ok = 0;
    for round in 0..4 {
        // 500 attackers send once per round: 2 000 sends in all, 4 per IP (the IP bucket allows that).
        let direct_sends = direct.iter().enumerate().map(|(i, c)| {
            let number = format!("+1415555{:04}", 2000 + round * 500 + i);
            async move { app.send_code_via(c, &number, None).await.status().as_u16() }
        });
        let proxied_sends = (0..250).map(|i| {
            let number = format!("+1415555{:04}", 2250 + round * 500 + i);
            let xff = format!("10.9.8.7, 198.51.{}.{}", 100 + i / 200, i % 200);
            async move {
                app.send_code_via(&app.client, &number, Some(&xff))
                    .await
                    .status()
                    .as_u16()
            }
        });
        for chunk in join_all(direct_sends)
            .await
            .into_iter()
            .chain(join_all(proxied_sends).await)
        {
            *statuses.entry(chunk).or_default() += 1;
            attempts += 1;
        }
        // Five real users per round, in other prefixes, from their own addresses.
        for u in 0..5 {
            let number = format!("+1212{}{:04}", 300 + round * 10 + u, 1000 + u);
            let xff = format!("192.0.2.{}", round * 10 + u);
            let response = app.send_code_via(&app.client, &number, Some(&xff)).await;
            if response.status() == 200 {
                legit_ok += 1;
            }
        }
    }
    let outbox = app.outbox().await;
    let pumped = outbox
        .iter()
        .filter(|m| m["to"].as_str().unwrap().starts_with("+1415555"))
        .count();
    println!(
        "attack: {attempts} attempts, statuses {statuses:?}, SMS sent to the pumped prefix: {pumped}, legitimate users served: {legit_ok}/20"
    );
    assert_eq!(attempts, 2000);
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [200, 429],
        "only sent or rate limited"
    );
    assert!(
        pumped <= 20,
        "{pumped} SMS went out to the attacked prefix (budget 20)"
    );
    assert_eq!(pumped, 20, "the budget itself is honoured, not undercut");
    assert_eq!(legit_ok, 20, "every legitimate user got a code");
}
