//! The Twilio-side IP bucket: at `serve` start and with `verifyd twilio sync`, the Verify
//! service's `end_user_ip_address` RateLimit gets exactly one Bucket equal to the IP bucket;
//! idempotent, other RateLimits untouched, failures logged without stopping the service.

use std::process::Stdio;

use crate::fake_twilio::*;
use crate::helpers::*;

async fn start(fake: &FakeTwilio, overrides: &[(&str, &str)]) -> TestApp {
    let settings = with(&verify_settings(&fake.url()), overrides);
    spawn_app_with(&pairs(&settings)).await
}

fn ip_limit(fake: &FakeTwilio) -> FakeRateLimit {
    let limits: Vec<FakeRateLimit> = fake
        .rate_limits()
        .into_iter()
        .filter(|r| r.unique_name == "end_user_ip_address")
        .collect();
    assert_eq!(limits.len(), 1, "{limits:?}");
    limits[0].clone()
}

#[tokio::test]
async fn the_first_start_creates_the_rate_limit_and_bucket_and_a_second_start_changes_nothing() {
    let fake = FakeTwilio::start().await;
    let app = start(&fake, &[]).await;
    let limit = ip_limit(&fake);
    assert_eq!(limit.buckets.len(), 1);
    assert_eq!((limit.buckets[0].max, limit.buckets[0].interval), (4, 60));
    let writes = fake.writes();
    assert_eq!(writes.len(), 2, "{writes:#?}");
    assert_eq!(
        writes[0].path,
        format!("/v2/Services/{SERVICE_SID}/RateLimits")
    );
    assert_eq!(writes[0].field("UniqueName"), Some("end_user_ip_address"));
    assert_eq!(
        writes[1].path,
        format!(
            "/v2/Services/{SERVICE_SID}/RateLimits/{}/Buckets",
            limit.sid
        )
    );
    assert_eq!(writes[1].field("Max"), Some("4"));
    assert_eq!(writes[1].field("Interval"), Some("60"));
    app.stop().await;

    fake.forget_calls();
    let _again = start(&fake, &[]).await;
    assert!(fake.writes().is_empty(), "{:#?}", fake.writes());
    assert_eq!(
        fake.calls().len(),
        2,
        "two reads: the RateLimits, then its buckets"
    );
    assert_eq!(ip_limit(&fake).buckets.len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn a_different_ip_bucket_updates_the_twilio_bucket_in_place() {
    let fake = FakeTwilio::start().await;
    let first = start(&fake, &[]).await;
    let before = ip_limit(&fake).buckets[0].clone();
    first.stop().await;

    fake.forget_calls();
    let _app = start(
        &fake,
        &[
            ("VERIFYD_RATE_LIMIT_IP_MAX", "10"),
            ("VERIFYD_RATE_LIMIT_IP_INTERVAL", "1h"),
        ],
    )
    .await;
    let after = ip_limit(&fake).buckets;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].sid, before.sid, "updated, not replaced");
    assert_eq!((after[0].max, after[0].interval), (10, 3600));
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert!(
        writes[0]
            .path
            .ends_with(&format!("/Buckets/{}", before.sid))
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn other_rate_limits_are_left_alone_and_extra_buckets_are_removed() {
    let fake = FakeTwilio::start().await;
    let phone_limit = fake.seed_rate_limit("phone_number", &[(3, 600), (10, 86_400)]);
    let ip_sid = fake.seed_rate_limit("end_user_ip_address", &[(9, 9), (4, 60), (1, 1)]);
    let _app = start(&fake, &[]).await;

    let ip = ip_limit(&fake);
    assert_eq!(ip.sid, ip_sid);
    assert_eq!(ip.buckets.len(), 1);
    assert_eq!(
        (ip.buckets[0].max, ip.buckets[0].interval),
        (4, 60),
        "the matching one is kept"
    );
    let phone = fake
        .rate_limits()
        .into_iter()
        .find(|r| r.sid == phone_limit)
        .unwrap();
    assert_eq!(phone.buckets.len(), 2);
    assert!(
        fake.calls().iter().all(|c| !c.path.contains(&phone_limit)),
        "never even read"
    );
    let deletes = fake.calls_to("DELETE", "");
    assert_eq!(deletes.len(), 2);
    assert_eq!(fake.writes().len(), 2, "only the two deletes");
}

#[tokio::test]
async fn the_sync_can_be_turned_off() {
    let fake = FakeTwilio::start().await;
    let app = start(&fake, &[("VERIFYD_TWILIO_SYNC_RATE_LIMITS", "false")]).await;
    assert!(fake.calls().is_empty());
    // RateLimits are still sent: the bucket may have been set up by hand.
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    assert!(fake.creates()[0].field("RateLimits").is_some());
}

#[tokio::test]
async fn a_failing_sync_is_logged_and_the_service_still_starts_and_serves() {
    let fake = FakeTwilio::start().await;
    fake.set_fault(
        Target::RateLimits,
        Fault::error(500, 20500, "Internal Server Error"),
    );
    let app = start(&fake, &[]).await;
    assert_eq!(fake.calls().len(), 1, "the first failure stops the sync");
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
}

async fn cli_sync(fake_url: &str, extra: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifyd"));
    cmd.current_dir(dir.path())
        .env_clear()
        .args(["twilio", "sync"])
        .stdin(Stdio::null());
    for (k, v) in verify_settings(fake_url) {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("verifyd runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn verifyd_twilio_sync_creates_then_reports_nothing_to_do() {
    let fake = FakeTwilio::start().await;
    let (code, stdout, stderr) = cli_sync(&fake.url(), &[]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("created RateLimit RK"), "{stdout}");
    assert!(stdout.contains("created bucket BL"), "{stdout}");
    let (code, stdout, _) = cli_sync(
        &fake.url(),
        // The CLI syncs even when the startup sync is off.
        &[("VERIFYD_TWILIO_SYNC_RATE_LIMITS", "false")],
    )
    .await;
    assert_eq!(code, 0);
    assert!(stdout.contains("already in sync"), "{stdout}");
    assert!(!stdout.contains(AUTH_TOKEN));

    let (code, _, stderr) = cli_sync(&fake.url(), &[("VERIFYD_RATE_LIMIT_IP_MAX", "0")]).await;
    assert_eq!(code, 64, "{stderr}");
    let (code, _, stderr) = cli_sync(
        &fake.url(),
        &[("TWILIO_AUTH_TOKEN", "0000000000000000000000000000000a")],
    )
    .await;
    assert_eq!(code, 69, "{stderr}");
    assert!(
        stderr.contains("20003") && stderr.contains("TWILIO_AUTH_TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("0000000000"), "{stderr}");
}
