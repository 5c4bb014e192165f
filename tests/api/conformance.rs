//! Conformance with Twilio's published API descriptions: Stoplight Prism (`prism proxy
//! --errors`, pinned in tools/prism) runs Twilio's OpenAPI file in front of the fake Twilio,
//! verifyd is pointed at Prism, and every call type verifyd makes goes through it. Prism answers
//! a request (or a fake answer) that breaks the spec with its own 4xx/5xx problem body instead
//! of forwarding it, and logs the violation: either fails the test. What the spec leaves open
//! (the Channel values, To and Code on VerificationCheck) the fake checks itself.
//!
//! Prism is installed by `scripts/test` (`npm ci --prefix tools/prism`); without it (or
//! without `node`) these tests skip, or fail under `VERIFYD_TEST_REQUIRE_ALL=1` as in
//! `scripts/test`. `VERIFYD_TEST_PRISM` points them at another Prism.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fake_twilio::*;
use crate::helpers::*;

/// One Prism at a time: loading Twilio's specs is CPU-heavy, and the machine is small.
pub(crate) static ONE_PRISM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Twilio's published API descriptions, vendored unchanged in `tests/specs/` (Apache-2.0).
pub(crate) fn spec(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/specs")
        .join(name);
    assert!(
        path.exists(),
        "Twilio's API description {} is missing from tests/specs",
        path.display()
    );
    path
}

/// A `prism proxy --errors` child process; killed on drop.
pub(crate) struct Prism {
    child: Child,
    pub(crate) url: String,
    log: Arc<Mutex<String>>,
}

/// A free local port (for a Prism whose address must be known before it starts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Prism {
    /// Starts `prism` (from [`prism_or_skip`]) in front of `upstream`.
    fn start(prism: &Path, spec: &Path, upstream: &str) -> Prism {
        Self::start_on(prism, spec, upstream, free_port())
    }

    /// Prism (from [`prism_or_skip`]) on `port`, in front of `upstream`.
    pub(crate) fn start_on(prism: &Path, spec: &Path, upstream: &str, port: u16) -> Prism {
        let mut child = Command::new(prism)
            .args([
                "proxy",
                "--errors",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .arg(spec)
            .arg(upstream)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prism starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        collect(
            child.stdout.take().unwrap(),
            Arc::clone(&log),
            Some(ready_tx),
        );
        collect(child.stderr.take().unwrap(), Arc::clone(&log), None);
        if ready_rx.recv_timeout(Duration::from_secs(180)).is_err() {
            let _ = child.kill();
            panic!("prism did not start:\n{}", log.lock().unwrap());
        }
        Prism {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The log lines after the startup listing of routes.
    pub(crate) fn traffic(&self) -> String {
        let log = self.log.lock().unwrap();
        log.split_once("Prism is listening")
            .map_or(log.as_str(), |(_, rest)| rest)
            .to_owned()
    }

    pub(crate) fn assert_no_violations(&self) {
        let traffic = self.traffic();
        let bad: Vec<&str> = traffic
            .lines()
            .filter(|l| l.contains("Violation") || l.contains('✖') || l.contains("error"))
            .collect();
        assert!(
            bad.is_empty(),
            "prism reported violations:\n{}\n\nfull log:\n{traffic}",
            bad.join("\n")
        );
        assert!(
            traffic.contains("Forwarding"),
            "nothing went through prism:\n{traffic}"
        );
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(
    pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    ready: Option<mpsc::Sender<()>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(tx) = &ready
                && line.contains("Prism is listening")
            {
                let _ = tx.send(());
            }
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

/// `verifyd doctor` with `settings` (Twilio pointed at prism); its exit code and checklist.
async fn doctor_through(settings: &[(String, String)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifyd"));
    cmd.current_dir(dir.path())
        .env_clear()
        .arg("doctor")
        .stdin(Stdio::null());
    for (k, v) in settings {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("verifyd doctor runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn report(title: &str, fake: &FakeTwilio) {
    eprintln!("--- {title}: requests as the fake Twilio received them (through prism)");
    for call in fake.calls() {
        eprintln!("{}", call.describe());
    }
}

#[tokio::test]
async fn every_twilio_verify_call_passes_prism_against_twilios_spec() {
    let Some(prism) = prism_or_skip() else {
        return;
    };
    let _one = ONE_PRISM.lock().await;
    let fake = FakeTwilio::start().await;
    let prism = Prism::start(&prism, &spec("twilio_verify_v2.json"), &fake.url());
    let settings = verify_settings(&prism.url);

    // 1. First start: list RateLimits, create the RateLimit, create its bucket.
    let first = spawn_app_with(&pairs(&settings)).await;
    first.stop().await;
    let limit = fake
        .rate_limits()
        .into_iter()
        .find(|r| r.unique_name == "end_user_ip_address")
        .expect("the sync went through prism");
    // 2. A drifted bucket and an extra one: list buckets, update one, delete the other.
    fake.add_bucket(&limit.sid, 1, 1);
    let app = spawn_app_with(&pairs(&with(
        &settings,
        &[("VERIFYD_RATE_LIMIT_IP_MAX", "10")],
    )))
    .await;
    let buckets = &fake.rate_limits()[0].buckets;
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    assert_eq!(buckets[0].max, 10);

    // 3. Start (with RateLimits), a wrong check, a right check.
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let code = fake.code_for(US_NUMBER);
    assert_error(
        app.verify(US_NUMBER, &wrong(&code)).await,
        400,
        "incorrect_code",
    )
    .await;
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;

    // 4. Cancel, through the CLI (`verifyd cancel VE…`).
    let sent = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let sid = sent["sid"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifyd"));
    cmd.current_dir(dir.path())
        .env_clear()
        .args(["cancel", &sid])
        .stdin(Stdio::null());
    for (k, v) in &settings {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("verifyd cancel runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"status\": \"canceled\""), "{stdout}");

    // 5. `verifyd doctor`: the Service, its RateLimits and Buckets (reads only).
    let (code, checklist) =
        doctor_through(&with(&settings, &[("VERIFYD_RATE_LIMIT_IP_MAX", "10")])).await;
    assert_eq!(code, Some(0), "{checklist}");

    for (method, suffix) in [
        ("GET", &format!("/Services/{SERVICE_SID}")[..]),
        ("GET", "/RateLimits"),
        ("POST", "/RateLimits"),
        ("GET", "/Buckets"),
        ("POST", "/Buckets"),
        ("POST", &format!("/Buckets/{}", buckets[0].sid)),
        ("DELETE", ""),
        ("POST", "/Verifications"),
        ("POST", "/VerificationCheck"),
        ("POST", &format!("/Verifications/{sid}")),
    ] {
        assert!(
            !fake.calls_to(method, suffix).is_empty(),
            "no {method} …{suffix} reached the fake through prism"
        );
    }
    assert!(fake.calls().iter().all(|c| c.auth == Auth::Ok));
    fake.assert_no_violations();
    prism.assert_no_violations();
    report("Twilio Verify", &fake);
}

#[tokio::test]
async fn every_twilio_messaging_call_passes_prism_against_twilios_spec() {
    let Some(prism) = prism_or_skip() else {
        return;
    };
    let _one = ONE_PRISM.lock().await;
    let fake = FakeTwilio::start().await;
    let prism = Prism::start(&prism, &spec("twilio_api_v2010.json"), &fake.url());
    let with_service = messaging_settings(&prism.url);
    let app = spawn_app_with(&pairs(&with_service)).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;

    // The second asks for its delivery receipts (`StatusCallback`), as Twilio's spec describes.
    let with_from: Vec<(String, String)> = with(
        &with_service,
        &[
            ("TWILIO_FROM", "+15005550006"),
            ("VERIFYD_PUBLIC_URL", "https://verifyd.example"),
        ],
    )
    .into_iter()
    .filter(|(k, _)| k != "TWILIO_MESSAGING_SERVICE_SID")
    .collect();
    let app = spawn_app_with(&pairs(&with_from)).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;

    // `verifyd doctor` looks the From number up among the account's numbers.
    let (code, checklist) = doctor_through(&with_from).await;
    assert_eq!(code, Some(0), "{checklist}\n{}", prism.traffic());
    assert!(
        !fake
            .calls_to("GET", "/IncomingPhoneNumbers.json")
            .is_empty(),
        "doctor's lookup went through prism"
    );

    let messages = fake.messages();
    assert_eq!(messages.len(), 2);
    assert!(messages[0].field("MessagingServiceSid").is_some());
    assert!(messages[1].field("From").is_some());
    assert_eq!(
        messages[1].field("StatusCallback"),
        Some("https://verifyd.example/callbacks/twilio-messaging")
    );
    assert!(messages.iter().all(|c| c.auth == Auth::Ok));
    fake.assert_no_violations();
    prism.assert_no_violations();
    report("Twilio Messaging", &fake);
}
