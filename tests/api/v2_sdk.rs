//! Twilio's official SDKs, unmodified from their registries, against the `/v2` face: a script
//! under `tests/sdk/` drives a whole session with the SDK's base URL pointed at
//! `prism proxy --errors` (Twilio's description, vendored in tests/specs) in front of verifyd.
//! The test fails on any violation Prism reports, on any answer our own spec check refuses
//! ([`crate::v2_spec`], which checks what Prism skips), and on any step the script did not
//! expect. `VERIFYD_PUBLIC_URL` is Prism's address, so the `next_page_url`s the SDK follows go
//! through Prism too.
//!
//! `scripts/test` installs the pinned SDKs (`pip install twilio==9.13.0`; npm `twilio` 6.3.1 with
//! `npm ci --prefix tools/twilio-node`) and Prism.

use std::process::Stdio;

use crate::conformance::{ONE_PRISM, Prism, free_port, spec};
use crate::helpers::*;
use crate::v2::{ACCOUNT, SERVICE, v2_settings};
use crate::v2_spec::{declared, violations};

/// The pinned SDK versions (scripts/test installs them).
const PYTHON_SDK: &str = "9.13.0";
const NODE_SDK: &str = "6.3.1";

/// Runs `command script` (an SDK session) through Prism in front of a fresh verifyd; checks
/// every exchange against Twilio's description and Prism's log; prints the session.
async fn run_session(name: &str, command: &str, script: &str) {
    let Some(prism_bin) = prism_or_skip() else {
        return;
    };
    let _one = ONE_PRISM.lock().await;
    let port = free_port();
    let prism_url = format!("http://127.0.0.1:{port}");
    let app = spawn_app_with(&v2_settings(&[("VERIFYD_PUBLIC_URL", &prism_url)])).await;
    let prism = Prism::start_on(
        &prism_bin,
        &spec("twilio_verify_v2.json"),
        &app.url(""),
        port,
    );
    let log = app.dir.path().join("sdk-exchanges.jsonl");

    let out = tokio::process::Command::new(command)
        .arg(format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR")))
        .env("VERIFYD_SDK_BASE_URL", &prism.url)
        .env("VERIFYD_URL", app.url(""))
        .env("VERIFYD_ACCOUNT_SID", ACCOUNT)
        .env("VERIFYD_API_KEY", API_KEY)
        .env("VERIFYD_SERVICE_SID", SERVICE)
        .env("VERIFYD_SDK_LOG", &log)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the SDK session runs");
    let session = String::from_utf8_lossy(&out.stdout);
    eprintln!("--- the {name} SDK session (through prism):\n{session}");
    assert!(
        out.status.success(),
        "the {name} SDK session failed:\n{session}\n{}\n\nprism:\n{}",
        String::from_utf8_lossy(&out.stderr),
        prism.traffic()
    );

    let exchanges = std::fs::read_to_string(&log).expect("the session logged its exchanges");
    let (mut count, mut undeclared) = (0, 0);
    for line in exchanges.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let (method, path) = (e["method"].as_str().unwrap(), e["path"].as_str().unwrap());
        let status = u16::try_from(e["status"].as_u64().unwrap()).unwrap();
        let v = violations(method, path, status, e["body"].as_str().unwrap());
        assert!(v.is_empty(), "{method} {path} {status}: {v:#?}");
        count += 1;
        if !declared(method, path, status) {
            assert!(
                (400..500).contains(&status),
                "{method} {path}: {status} is not in Twilio's description"
            );
            undeclared += 1;
        }
    }
    assert!(count >= 40, "only {count} exchanges");
    // Twilio's description declares no error answers (but 429 on create), so Prism flags each
    // of the session's Twilio errors (20404 on a fetch after approval, …) as an undeclared
    // status: exactly those, whose bodies our own check found to be Twilio's error shape, are
    // expected; any other violation fails.
    let traffic = prism.traffic();
    let flagged = traffic
        .lines()
        .filter(|l| l.contains("Violation"))
        .filter(|l| {
            l.contains(
                "Unable to match the returned status code with those defined in the document",
            )
        })
        .count();
    assert_eq!(flagged, undeclared, "prism:\n{traffic}");
    let other: Vec<&str> = traffic
        .lines()
        .filter(|l| l.contains("Violation") || l.contains('✖') || l.contains("error"))
        .filter(|l| !l.contains("Unable to match the returned status code"))
        .collect();
    assert!(
        other.is_empty(),
        "prism reported violations:\n{}",
        other.join("\n")
    );
    assert!(traffic.contains("Forwarding"), "nothing went through prism");
    eprintln!(
        "--- prism: no violation in {count} exchanges ({undeclared} Twilio error answers, which \
         Twilio's description does not declare, flagged as undeclared statuses)"
    );
}

#[tokio::test]
async fn v2_the_official_python_sdk_session_passes_prism_and_twilios_spec() {
    let installed = std::process::Command::new("python3")
        .args(["-c", "import twilio; print(twilio.__version__)"])
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&installed.stdout).trim(),
        PYTHON_SDK,
        "Twilio's Python SDK {PYTHON_SDK} is not installed: run scripts/test (it pip-installs it)"
    );
    run_session("Python", "python3", "python_session.py").await;
}

#[tokio::test]
async fn v2_the_official_node_sdk_session_passes_prism_and_twilios_spec() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools/twilio-node/node_modules/twilio/package.json");
    let installed = std::fs::read_to_string(&manifest).unwrap_or_default();
    assert!(
        installed.contains(&format!("\"version\": \"{NODE_SDK}\"")),
        "Twilio's Node SDK {NODE_SDK} is not installed ({} is missing or another version): run \
         scripts/test (it runs `npm ci --prefix tools/twilio-node`)",
        manifest.display()
    );
    run_session("Node", "node", "node_session.js").await;
}
