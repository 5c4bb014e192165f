//! `verifyd services list|create` and `verifyd safelist add|remove|list`: the real binary on a
//! test's own SQLite file, then the server on the same file sees what the CLI made.

use std::process::Stdio;
use std::sync::Arc;

use verifyd::clock::ManualClock;

use crate::helpers::*;
use crate::v2::{ACCOUNT, SERVICE, assert_twilio_error, v2, v2_settings};

/// Runs `verifyd args…` with the test app settings of `dir`; (exit code, stdout, stderr).
async fn verifyd(dir: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, String, String) {
    verifyd_with(dir, args, &v2_settings(&[])).await
}

/// [`verifyd`] with these settings.
async fn verifyd_with(
    dir: &tempfile::TempDir,
    args: &[&str],
    with: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifyd"));
    cmd.current_dir(dir.path())
        .env_clear()
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in settings(dir, with) {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("verifyd runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Without `VERIFYD_ACCOUNT_SID` the account SID is generated once, kept in the store, and
/// printed first by `verifyd services list` (the same on every run, as the server uses it).
#[tokio::test]
async fn v2_cli_prints_the_generated_account_sid() {
    let dir = tempfile::tempdir().unwrap();
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let (code, out, err) = verifyd_with(&dir, &["services", "list"], &[]).await;
        assert_eq!(code, Some(0), "{out}{err}");
        let first = out.lines().next().unwrap_or_default().to_owned();
        let sid = first
            .strip_prefix("account ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        assert!(
            sid.len() == 34 && sid.starts_with("AC") && sid != ACCOUNT,
            "{out}"
        );
        accounts.push(sid);
    }
    assert_eq!(accounts[0], accounts[1]);
}

#[tokio::test]
async fn v2_cli_creates_and_lists_services_and_edits_the_safe_list() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = verifyd(
        &dir,
        &["services", "create", "Acme", "--code-length", "8", "--psd2"],
    )
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sid = created["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("VA"));
    assert_eq!(created["account_sid"], ACCOUNT);
    assert_eq!(
        (&created["code_length"], &created["psd2_enabled"]),
        (&serde_json::json!(8), &serde_json::json!(true))
    );
    let (code, out, err) = verifyd(&dir, &["services", "create", ""]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains("60200") && err.contains("FriendlyName"),
        "{err}"
    );

    let (code, out, _) = verifyd(&dir, &["services", "list"]).await;
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!("account {ACCOUNT} ")),
        "{out}"
    );
    assert!(
        lines[1].starts_with(SERVICE) && lines[1].ends_with("(default)"),
        "{out}"
    );
    assert!(
        lines[2].starts_with(&sid)
            && lines[2].contains("Acme")
            && lines[2].contains("code_length=8"),
        "{out}"
    );

    let canada = "+14165550123";
    let (code, out, err) = verifyd(&dir, &["safelist", "add", canada]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let entry: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(entry["sid"].as_str().unwrap().starts_with("GN"));
    let (code, _, err) = verifyd(&dir, &["safelist", "add", "12"]).await;
    assert_eq!(code, Some(1));
    assert!(
        err.contains("60200") && err.contains("PhoneNumber"),
        "{err}"
    );
    for number in ["+19005550100", "+14155550101"] {
        assert_eq!(verifyd(&dir, &["safelist", "add", number]).await.0, Some(0));
    }
    let (code, out, _) = verifyd(&dir, &["safelist", "list"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().next().unwrap().ends_with(canada), "{out}");
    let (code, _, _) = verifyd(&dir, &["safelist", "remove", "+14155550101"]).await;
    assert_eq!(code, Some(0));
    let (code, _, err) = verifyd(&dir, &["safelist", "remove", "+14155550101"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("not on the safe list"), "{err}");

    // The server on the same store sees both.
    let app = spawn_app_in(
        dir,
        &v2_settings(&[]),
        Arc::new(ManualClock::starting_now()),
    )
    .await;
    let service = v2(&app, "GET", &format!("/v2/Services/{sid}"), &[]).await;
    assert_eq!(
        (service.status, &service.body["friendly_name"]),
        (200, &serde_json::json!("Acme"))
    );
    let listed = v2(&app, "GET", &format!("/v2/SafeList/Numbers/{canada}"), &[]).await;
    assert_eq!(listed.body["sid"], entry["sid"]);
    let removed = v2(&app, "GET", "/v2/SafeList/Numbers/+14155550101", &[]).await;
    assert_twilio_error(&removed, 404, 20404, "removed by the CLI");
    let sent = v2(
        &app,
        "POST",
        &format!("/v2/Services/{SERVICE}/Verifications"),
        &[("To", canada), ("Channel", "sms")],
    )
    .await;
    assert_eq!(
        sent.status, 201,
        "the safe-listed number is exempt: {}",
        sent.body
    );
}
